#!/usr/bin/env node
// Runs the bundle `npm run build` writes (npm ci and npm pack build it): plain JavaScript, so
// start-up pays for no TypeScript loader.
const command = process.argv[2];
// The long-running commands map stack traces in their logs back to src/; short operator commands
// skip reading the source maps, which would cost start-up time for nothing.
if (command === "serve" || command === "sync") process.setSourceMapsEnabled(true);

try {
  await import("../dist/main.js");
} catch (error) {
  if (error?.code !== "ERR_MODULE_NOT_FOUND" || !String(error.message).includes("/dist/main.js")) throw error;
  process.stderr.write(
    "clusterplane: dist/main.js is missing: this checkout has not been built. Run `npm run build` " +
      "(`npm ci` runs it too), or for development `npx tsx src/cli/main.ts`.\n",
  );
  process.exitCode = 1;
}
