import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["scripts/test-global-setup.mjs"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
