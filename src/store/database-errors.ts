/**
 * Errors that say the database server is out of reach or overloaded for now (not that the request
 * was wrong): the caller should retry, so they answer UNAVAILABLE rather than INTERNAL. SQLite
 * has none of these (its file is local; its "locked" is mapped by the unit of work).
 */
const TRANSIENT_SQLSTATES = new Set([
  "57P01", // admin_shutdown: the server is restarting
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now: starting up
  "53300", // too_many_connections
  "57014", // query_canceled: the statement timeout ran out
]);
const SOCKET_ERRORS = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENOTFOUND"]);
/** `pg` reports a lost or never-made connection by message only. */
const DRIVER_MESSAGES = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/;

export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") {
    // Class 08: connection exceptions.
    if (code.startsWith("08") && code.length === 5) return true;
    if (TRANSIENT_SQLSTATES.has(code) || SOCKET_ERRORS.has(code)) return true;
  }
  return DRIVER_MESSAGES.test(error.message);
}
