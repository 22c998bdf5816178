import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConnectError } from "@connectrpc/connect";
import { confirm } from "./confirm.js";
import { CliError, describeRejection, isUnreachable, refused } from "./exit.js";

export interface EditSession<T, R> {
  /** Temp file name; ends in .yaml so editors highlight it. */
  fileName: string;
  /** What the operator is doing, e.g. "create cluster-pool prod". */
  action: string;
  /** The text to start from: a commented template, or the current object's manifest. */
  text: string;
  /** The current object's manifest text; "" when creating. */
  before: string;
  /** Reads the edited text; throws CliError on a YAML or manifest problem. */
  parse(text: string): T;
  /** The manifest text of a parsed object, compared with `before` to show the change. */
  canonical(item: T): string;
  apply(item: T): Promise<R>;
  yes: boolean | undefined;
}

const ERROR_PREFIX = "# ERROR:";

/**
 * Opens $EDITOR until the text parses and the server accepts it. Each problem re-opens the file
 * with the problem at the top; saving unchanged or emptying the file cancels (exit 3). Returns
 * undefined when the edit changes nothing.
 */
export async function editLoop<T, R>(session: EditSession<T, R>): Promise<R | undefined> {
  // Loaded here, not at start-up: every other command would pay for it (a few ms) for nothing.
  const { spawnSync } = await import("node:child_process");
  const dir = mkdtempSync(join(tmpdir(), "clusterplane-edit-"));
  const file = join(dir, session.fileName);
  const initial = `# ${session.action}: save and close to apply; save it unchanged or empty it to cancel.\n${session.text}`;
  let body = initial;
  let problem: string | undefined;
  let keep = false;
  try {
    for (;;) {
      const written = errorHeader(problem) + body;
      writeFileSync(file, written);
      runEditor(file, spawnSync);
      const edited = readFileSync(file, "utf8");
      if (edited === written || isBlank(edited)) {
        // Keep work the operator would lose: their edits of an earlier round.
        keep = body !== initial;
        const kept = keep ? ` (your edits are kept in ${file})` : "";
        const last = problem ? `\nThe last problem was: ${problem}` : "";
        throw refused(`edit cancelled: the file was ${isBlank(edited) ? "emptied" : "saved unchanged"}; nothing applied${kept}${last}`);
      }
      body = stripErrorHeader(edited);
      let item: T;
      try {
        item = session.parse(body);
      } catch (error) {
        if (!(error instanceof CliError)) throw error;
        problem = error.message;
        continue;
      }
      const after = session.canonical(item);
      if (after === session.before) return undefined;
      process.stderr.write(`${session.action}:\n${lineDiff(session.before, after)}`);
      await confirm(`Apply (${session.action})?`, session.yes);
      try {
        return await session.apply(item);
      } catch (error) {
        if (!(error instanceof ConnectError) || isUnreachable(error)) throw error;
        problem = `the server rejected it: ${describeRejection(error)}`;
      }
    }
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

/** $EDITOR may carry arguments (`code --wait`), so the shell splits it, as git does. */
function runEditor(file: string, spawnSync: typeof import("node:child_process").spawnSync): void {
  const editor = process.env.CLUSTERPLANE_EDITOR || process.env.VISUAL || process.env.EDITOR || "vi";
  const result = spawnSync("sh", ["-c", `${editor} "$@"`, "sh", file], { stdio: "inherit" });
  if (result.error) throw new CliError(`cannot run the editor "${editor}": ${result.error.message}`);
  if (result.status !== 0) throw refused(`the editor "${editor}" exited with status ${result.status ?? result.signal}; nothing applied`);
}

function errorHeader(problem: string | undefined): string {
  if (!problem) return "";
  return `${problem.split("\n").map((line) => `${ERROR_PREFIX} ${line}`.trimEnd()).join("\n")}\n#\n`;
}

function stripErrorHeader(text: string): string {
  const lines = text.split("\n");
  let start = 0;
  while (start < lines.length && lines[start]!.startsWith(ERROR_PREFIX)) start += 1;
  if (start > 0 && lines[start] === "#") start += 1;
  return lines.slice(start).join("\n");
}

function isBlank(text: string): boolean {
  return text.split("\n").every((line) => line.trim() === "" || line.trimStart().startsWith("#"));
}

/** A line diff (longest common subsequence): `-` old, `+` new, two spaces unchanged. */
export function lineDiff(before: string, after: string): string {
  const a = before === "" ? [] : before.replace(/\n$/, "").split("\n");
  const b = after.replace(/\n$/, "").split("\n");
  const common: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      common[i]![j] = a[i] === b[j] ? common[i + 1]![j + 1]! + 1 : Math.max(common[i + 1]![j]!, common[i]![j + 1]!);
    }
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      out.push(`  ${a[i++]}`);
      j++;
    } else if (i < a.length && (j === b.length || common[i + 1]![j]! >= common[i]![j + 1]!)) {
      out.push(`- ${a[i++]}`);
    } else {
      out.push(`+ ${b[j++]}`);
    }
  }
  return `${out.join("\n")}\n`;
}
