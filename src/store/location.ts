/**
 * What a `--db` value names: a `postgres://` / `postgresql://` URL is a PostgreSQL database;
 * anything else is a SQLite file (`sqlite:PATH` and ":memory:" included). Kept apart from the
 * engines so that reading a setting loads neither driver.
 */
export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/** `sqlite:PATH` (or `sqlite://PATH`) is PATH; a plain path is itself. */
export function sqlitePath(location: string): string {
  const match = /^sqlite:(\/\/)?(.*)$/i.exec(location);
  return match ? match[2]! : location;
}

/** The location with a URL's password replaced, for logs and error messages. */
export function redactUrl(location: string): string {
  if (!isPostgresUrl(location)) return location;
  try {
    const url = new URL(location);
    if (url.password) url.password = "***";
    return url.toString();
  } catch {
    return "postgres://…";
  }
}
