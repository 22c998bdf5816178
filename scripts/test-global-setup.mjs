// Tests spawn bin/clusterplane.mjs, which runs dist/: build it from the current sources first, so
// `npm test` after an edit never exercises a stale bundle. esbuild takes about a second.
import { build } from "./build.mjs";

export default async function setup() {
  try {
    await build({ quiet: true });
  } catch (error) {
    if (!Array.isArray(error?.errors)) throw error;
    throw new Error("npm run build failed (esbuild printed why, above); tests of bin/clusterplane.mjs would run a stale dist/");
  }
}
