import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { grpcStatusName } from "../core/values.js";
import { describeViolation, translateText } from "./translate.js";

/**
 * Exit codes of the operator commands. Scripts branch on them, so they are part of the
 * interface: documented in `clusterplane --help` and docs/cli.md, never renumbered.
 */
export const EXIT = {
  OK: 0,
  /** The server rejected the request (or something else went wrong). */
  REJECTED: 1,
  /** Bad usage, or a local file or YAML problem; nothing was sent. */
  USAGE: 2,
  /** Confirmation refused, or impossible (no terminal and no --yes); nothing was changed. */
  REFUSED: 3,
  /** The server could not be reached. */
  UNREACHABLE: 4,
} as const;

export const EXIT_CODES_HELP = `Exit codes:
  0  success
  1  the server rejected the request (its message is printed)
  2  bad usage, or a local file or YAML problem (nothing was sent)
  3  confirmation refused, or not possible without a terminal (pass --yes); nothing changed
  4  the server could not be reached`;

/** A failure the CLI detected itself, with the exit code it ends in. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.USAGE,
  ) {
    super(message);
    this.name = "CliError";
  }
}

export function refused(message: string): CliError {
  return new CliError(message, EXIT.REFUSED);
}

// Errors in the cause chain that mean no answer came back from the server at all.
const NETWORK_ERRORS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "UND_ERR_SOCKET",
]);

/** True when the call never got an answer: nothing to show the operator but where we tried. */
export function isUnreachable(error: unknown): boolean {
  if (!(error instanceof ConnectError)) return false;
  if (error.code === Code.Unavailable || error.code === Code.DeadlineExceeded) return true;
  for (let cause: unknown = error.cause; cause instanceof Error; cause = cause.cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code && NETWORK_ERRORS.has(code)) return true;
  }
  return false;
}

/** `INVALID_ARGUMENT`, as the API documentation spells codes. */
export function codeName(code: Code): string {
  return grpcStatusName(Code[code] ?? String(code));
}

/**
 * The server's answer in the CLI's words: the code, then each field violation named by the flag
 * or manifest key that sets it, and RPC names as the commands that make those calls. A message
 * that says more than its violations (another server might) is kept, translated, above them.
 */
export function describeRejection(error: ConnectError): string {
  const violations = error.findDetails(BadRequestSchema).flatMap((detail) => detail.fieldViolations);
  let rest = error.rawMessage;
  for (const violation of violations) rest = rest.replace(`${violation.field}: ${violation.description}`, "");
  const lines = rest.replace(/[;\s]+/g, "") === "" ? [] : [translateText(error.rawMessage)];
  lines.push(...violations.map((violation) => describeViolation(violation.field, violation.description)));
  if (lines.length === 0) return codeName(error.code);
  if (lines.length === 1) return `${codeName(error.code)}: ${lines[0]}`;
  return `${codeName(error.code)}:\n  ${lines.join("\n  ")}`;
}

/** What to print and which code to exit with, for anything an action threw. */
export function explainFailure(error: unknown, endpoint: string | undefined): { message: string; exitCode: number } {
  if (error instanceof CliError) return { message: error.message, exitCode: error.exitCode };
  if (error instanceof ConnectError) {
    if (isUnreachable(error)) {
      return {
        message:
          `cannot reach the clusterplane server at ${endpoint ?? "(no endpoint)"}: ${error.rawMessage}\n` +
          "Set another with --endpoint URL (before the command), CLUSTERPLANE_ENDPOINT, or `endpoint:` in the config file.",
        exitCode: EXIT.UNREACHABLE,
      };
    }
    const hint =
      error.code === Code.Unauthenticated
        ? "\nGive a token with --token TOKEN (before the command), CLUSTERPLANE_TOKEN, or `token:` in the config file."
        : "";
    return { message: describeRejection(error) + hint, exitCode: EXIT.REJECTED };
  }
  return { message: error instanceof Error ? error.message : String(error), exitCode: EXIT.REJECTED };
}
