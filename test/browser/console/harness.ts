import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

/** Debian's Chromium (`apt-get install chromium`); .ci/run installs it. Playwright never downloads a browser here. */
export const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export const chromiumAvailable = existsSync(CHROMIUM);
if (!chromiumAvailable) {
  if (process.env.CI) throw new Error(`CI must install Debian's chromium (${CHROMIUM}); see .ci/run`);
  process.stderr.write(`\n${"!".repeat(100)}\n!! ${CHROMIUM} is missing: SKIPPING the web console's browser tests.\n!! apt-get install -y --no-install-recommends chromium\n${"!".repeat(100)}\n\n`);
}

export const ARTIFACTS = resolve("test-artifacts", "console");
export const VIEWPORTS = { desktop: { width: 1280, height: 800 }, narrow: { width: 390, height: 844 } } as const;

export function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
}

export interface ConsoleTab {
  context: BrowserContext;
  page: Page;
  /** Content-Security-Policy violations and page errors the browser reported. */
  problems: string[];
  close(): Promise<void>;
}

/** A fresh context (its own sessionStorage) with one tab, recording CSP violations and errors. */
export async function openTab(browser: Browser, url: string, viewport: { width: number; height: number } = VIEWPORTS.desktop, options: { ignoreHTTPSErrors?: boolean } = {}): Promise<ConsoleTab> {
  const context = await browser.newContext({ viewport, ignoreHTTPSErrors: options.ignoreHTTPSErrors });
  const page = await context.newPage();
  // Shorter than the tests' own timeouts, so a step that waits in vain fails with its locator.
  page.setDefaultTimeout(10_000);
  const problems: string[] = [];
  page.on("console", (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  await page.goto(url);
  return { context, page, problems, close: () => context.close() };
}

/** Signs in through the form (when auth is on) and waits for the live feed. */
export async function signIn(page: Page, token: string): Promise<void> {
  await page.getByLabel("Access token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForSelector('[data-feed="live"]', { timeout: 20_000 });
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  targets: string[];
}

/**
 * axe-core's WCAG 2 A/AA rules on the page. Evaluated through the DevTools protocol, which the
 * page's Content-Security-Policy does not govern (an injected <script> would be refused).
 */
export async function axe(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(`${AXE_SOURCE}\n;undefined`);
  return page.evaluate(async () => {
    const result = await (window as unknown as { axe: { run(context: unknown, options: unknown): Promise<{ violations: { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }[] }> } }).axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
    });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(" ")) }));
  });
}

/** Serious and critical violations: what the tests refuse. */
export function seriousOf(violations: AxeViolation[]): AxeViolation[] {
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical");
}
