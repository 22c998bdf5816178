import { createInterface } from "node:readline/promises";
import { refused } from "./exit.js";

/**
 * Asks before a change. `--yes` skips the question; without a terminal there is nobody to ask,
 * so the change is refused rather than made silently (exit 3).
 */
export async function confirm(question: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) {
    throw refused(`"${question}" needs an answer and there is no terminal to ask on; pass --yes. Nothing was changed.`);
  }
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await prompt.question(`${question} [y/N] `)).trim().toLowerCase();
    if (answer !== "y" && answer !== "yes") throw refused("not confirmed; nothing was changed");
  } finally {
    prompt.close();
  }
}
