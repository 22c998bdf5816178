import { createInterface } from "node:readline/promises";
import { refused } from "./exit.js";

/**
 * Asks before a change. `--yes` skips the question; without a terminal there is nobody to ask,
 * so the change is refused rather than made silently (exit 3).
 */
export async function confirm(question: string, action: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) {
    throw refused(`not ${action}: confirmation needed and there is no terminal to ask on; pass --yes`);
  }
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await prompt.question(`${question} [y/N] `)).trim().toLowerCase();
    if (answer !== "y" && answer !== "yes") throw refused(`not ${action}: not confirmed`);
  } finally {
    prompt.close();
  }
}
