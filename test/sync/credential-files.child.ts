/**
 * Run by credential-files.test.ts in its own process, started with NODE_EXTRA_CA_CERTS naming the
 * stand-in's CA: here the stand-in is trusted by Node's default store, as a cluster with a publicly
 * trusted certificate would be. Connects the way a sync pass does (readCredentials, then
 * KubeConnection), then makes one request without any CA option as a control.
 *
 * Arguments: endpoint, token path, CA path, credential directory. Prints one JSON line.
 */
import https from "node:https";
import { KubeConnection, readCredentials } from "../../src/sync/kube-connection.js";

const [endpoint = "", tokenPath = "", caCertPath = "", directory = ""] = process.argv.slice(2);

async function syncLikeAPass(): Promise<string> {
  try {
    const credentials = readCredentials(endpoint, { kind: "bearer_token_file", tokenPath, caCertPath }, [directory]);
    const connection = new KubeConnection(credentials, { requestTimeoutMs: 5_000, maxSockets: 1 });
    try {
      await connection.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: "sent-with-the-default-store" } }, new AbortController().signal);
    } finally {
      connection.close();
    }
    return "applied";
  } catch (error) {
    return `${(error as Error).name}: ${(error as Error).message}`;
  }
}

/** The status of a request trusting the default store only, without a token: proves that store trusts the stand-in. */
function controlRequest(): Promise<number> {
  return new Promise((resolve) => {
    https
      .get(`${endpoint}/control-without-token`, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      })
      .on("error", () => resolve(-1));
  });
}

const outcome = await syncLikeAPass();
const control = await controlRequest();
process.stdout.write(`${JSON.stringify({ outcome, control })}\n`);
