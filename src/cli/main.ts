import { Command, CommanderError } from "commander";
import packageJson from "../../package.json" with { type: "json" };
import { openSession, type Session } from "./client.js";
import { registerExecutionClusterLabels, registerSelectCluster } from "./execution-cluster-label.js";
import { EXIT, EXIT_CODES_HELP, explainFailure } from "./exit.js";
import { registerImport } from "./import-flyteadmin.js";
import { registerJoinTokens } from "./join-tokens.js";
import { registerResources } from "./resources.js";
import { setCommandContext } from "./translate.js";
import type { Verbs } from "./verbs.js";

/**
 * A reader that stops early (`clusterplane --help | head -1`) closes the pipe. Like any Unix
 * filter, the rest of the output is dropped quietly; the command itself still finishes, so a
 * change is never left half-applied because nobody read its progress.
 */
function dropOutputOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    stream.write = (() => true) as typeof stream.write;
  });
}
dropOutputOnClosedPipe(process.stdout);
dropOutputOnClosedPipe(process.stderr);

const CONNECTION_HELP = `Connection (options go before the command: clusterplane --endpoint http://cp:8080 get cluster):
  endpoint  --endpoint, else CLUSTERPLANE_ENDPOINT, else \`endpoint:\` in the config file, else http://127.0.0.1:8080
  token     --token, else CLUSTERPLANE_TOKEN, else \`token:\` in the config file; sent as Authorization: Bearer
  org       --org, else CLUSTERPLANE_ORG, else \`org:\` in the config file, else the server's default organization
  config file: $CLUSTERPLANE_CONFIG, else ~/.config/clusterplane/cli.yaml (keys endpoint, token, org)

Examples:
  clusterplane create cluster-pool prod --file prod-pool.yaml
  clusterplane get cluster-pool prod
  clusterplane create cluster prod-us-east-1 --pool prod --endpoint https://10.0.0.1:443 \\
      --token-path /var/run/credentials/prod_token --ca-cert-path /var/run/credentials/prod_cacert
  clusterplane update execution-cluster-label --attrFile ecl.yaml
  clusterplane import flyteadmin values-override.yaml --dry-run`;

const program = new Command()
  .name("clusterplane")
  .description("Multi-cluster control plane: cluster pools, clusters, queues, labels and routing.")
  // Connection options come before the verb, so `create cluster --endpoint` can mean the cluster's API.
  .enablePositionalOptions()
  .exitOverride()
  .version(packageJson.version, "-v, --version", "print the version of clusterplane")
  .option("--endpoint <url>", "clusterplane server URL")
  .option("--token <token>", "bearer token for the server")
  .option("--org <org>", "organization (default: the server's default organization)")
  .addHelpText("after", `\n${CONNECTION_HELP}\n\n${EXIT_CODES_HELP}\n`);

// The server's own commands load their modules only when run: operator commands start faster.
program
  .command("serve")
  .description("run the server: gRPC, gRPC-Web and Connect on one port, state in SQLite")
  .option("--host <address>", "address to bind (env CLUSTERPLANE_HOST, default 127.0.0.1)")
  .option("--port <port>", "port to listen on, 0 for any free one (env CLUSTERPLANE_PORT, default 8080)")
  .option("--db <path|url>", "SQLite database file, or postgres://user@host:5432/name (env CLUSTERPLANE_DB, default ./clusterplane.db)")
  .option("--shutdown-grace-ms <ms>", "time in-flight calls get to finish on shutdown (env CLUSTERPLANE_SHUTDOWN_GRACE_MS, default 10000)")
  .option("--domains <list>", "comma-separated domains every project gets (env CLUSTERPLANE_DOMAINS, default development,staging,production)")
  .option("--sync-config <file>", "YAML file of cluster-sync settings and templates (env CLUSTERPLANE_SYNC_CONFIG)")
  .option("--no-sync", "do not run the cluster-sync loop in this process (env CLUSTERPLANE_SYNC=off)")
  .option("--config <file>", "YAML configuration file; flags and environment override it (env CLUSTERPLANE_CONFIG_FILE)")
  .option("--tokens-file <file>", "bearer tokens, one '<token> <role> <name>' per line (env CLUSTERPLANE_TOKENS_FILE)")
  .option("--allow-unauthenticated", "serve without authentication beyond loopback (env CLUSTERPLANE_ALLOW_UNAUTHENTICATED)")
  .option("--tls-cert <file>", "serve TLS with this PEM certificate (env CLUSTERPLANE_TLS_CERT)")
  .option("--tls-key <file>", "the certificate's PEM private key (env CLUSTERPLANE_TLS_KEY)")
  .option("--tls-client-ca <file>", "ask clients for certificates signed by this CA (env CLUSTERPLANE_TLS_CLIENT_CA)")
  .option("--cors-origin <origin>", "browser origin allowed to call the API; repeat for more (env CLUSTERPLANE_CORS_ORIGINS)",
    (origin: string, previous: string[] = []) => [...previous, origin])
  .option("--workers <n>", "server processes sharing the port, or auto for one per core (env CLUSTERPLANE_WORKERS, default 1)")
  .option("--db-pool-size <n>", "PostgreSQL connections per server process (env CLUSTERPLANE_DB_POOL_SIZE, default 10)")
  .option("--statement-timeout-ms <ms>", "PostgreSQL: the longest one statement may run, 0 for no limit (env CLUSTERPLANE_STATEMENT_TIMEOUT_MS, default 30000)")
  .action(async (flags) => (await import("./serve.js")).serve(flags));

program
  .command("sync")
  .description("run the cluster-sync loop against the database directly")
  .requiredOption("--once", "one pass over every enabled cluster, then exit (non-zero when a cluster failed)")
  .option("--full", "apply every object again, ignoring what was applied before (repairs drift)")
  .option("--db <path|url>", "SQLite database file, or postgres://user@host:5432/name (env CLUSTERPLANE_DB, default ./clusterplane.db)")
  .option("--domains <list>", "comma-separated domains (env CLUSTERPLANE_DOMAINS)")
  .option("--sync-config <file>", "YAML file of cluster-sync settings and templates (env CLUSTERPLANE_SYNC_CONFIG)")
  .action(async (flags) => (await import("./sync-once.js")).syncOnce(flags));

program
  .command("migrate")
  .description(
    "apply pending schema migrations to the database, then exit (for an init container); " +
      "or, with --from and --to, copy a SQLite database into an empty PostgreSQL one",
  )
  .option("--db <path|url>", "SQLite database file, or postgres://user@host:5432/name (env CLUSTERPLANE_DB, default ./clusterplane.db)")
  .option("--config <file>", "YAML configuration file; flags and environment override it (env CLUSTERPLANE_CONFIG_FILE)")
  .option("--from <file>", "copy this SQLite database file (only read; a server may keep using it); needs --to")
  .option("--to <url>", "into this empty database, postgres://user@host:5432/name (or a SQLite file); needs --from")
  .addHelpText("after", "\nExamples:\n  clusterplane migrate --db postgres://cp@db:5432/cp\n  clusterplane migrate --from clusterplane.db --to postgres://cp@db:5432/cp\n")
  .action(async (flags) => (await import("./migrate.js")).migrate(flags));

program
  .command("agent")
  .description("run the pull-mode agent in a data-plane cluster: join, pull its desired state, apply it, report, renew its lease")
  .option("--control-plane <url>", "the control plane's URL, https (http for loopback only) (env CLUSTERPLANE_CONTROL_PLANE)")
  .option("--ca-file <file>", "PEM CA the control plane's certificate is signed by, for a private CA (env CLUSTERPLANE_CA_FILE)")
  .option("--join-token <token>", "the one-time join token `create cluster` printed (env CLUSTERPLANE_JOIN_TOKEN)")
  .option("--join-token-file <file>", "read the join token from this file, e.g. a mounted Secret (env CLUSTERPLANE_JOIN_TOKEN_FILE)")
  .option("--credential-file <file>", "where the agent credential is kept, mode 0600 (env CLUSTERPLANE_AGENT_CREDENTIAL_FILE, default ./clusterplane-agent.credential)")
  .option("--kubeconfig <file>", "kubeconfig for the cluster's API (default: KUBECONFIG, else in-cluster credentials)")
  .option("--interval <duration>", "re-run a pass this often; unchanged objects are not sent (env CLUSTERPLANE_AGENT_INTERVAL, default 60s)")
  .option("--heartbeat <duration>", "renew the lease this often (env CLUSTERPLANE_AGENT_HEARTBEAT, default 10s)")
  .option("--full-resync <duration>", "apply every object again this often to repair drift, 0 for never (env CLUSTERPLANE_AGENT_FULL_RESYNC, default 10m)")
  .option("--request-timeout <duration>", "deadline of each Kubernetes API request (env CLUSTERPLANE_AGENT_REQUEST_TIMEOUT, default 10s)")
  .option("--log-level <level>", "trace, debug, info, warn, error (env CLUSTERPLANE_LOG_LEVEL, default info)")
  .addHelpText(
    "after",
    `
Kubernetes access: --kubeconfig, else KUBECONFIG, else the pod's service account
(/var/run/secrets/kubernetes.io/serviceaccount and KUBERNETES_SERVICE_HOST/PORT).

Example (the command \`clusterplane create cluster NAME --pool POOL\` printed):
  clusterplane agent --control-plane https://clusterplane.example.com --join-token cpjoin_… \\
      --ca-file /etc/clusterplane/ca.crt --credential-file /var/lib/clusterplane/agent.credential

Exit codes: 0 stopped by SIGTERM/SIGINT; 1 the control plane refused the join token or the agent
credential (start it again with a new join token); 2 bad usage or unusable local files.
`,
  )
  .action(async (flags) => (await import("./agent.js")).agent(flags));

let session: Session | undefined;
const verb = (name: string, description: string) => program.command(name).description(description);
const verbs: Verbs = {
  create: verb("create", "create a cluster-pool, cluster, queue, project or label"),
  get: verb("get", "show one object, or list them"),
  update: verb("update", "change an object, an execution-cluster-label or the default-label"),
  delete: verb("delete", "delete an object (asks first; --yes skips the question)"),
  drain: verb("drain", "stop routing new executions to a cluster or queue"),
  activate: verb("activate", "route to a drained cluster or queue again, or reactivate an archived project"),
  archive: verb("archive", "archive a project: no longer synced or routable"),
  session: () => (session ??= openSession(program.opts())),
};
// What runs decides how server messages are put: flags for a command line, keys for a manifest.
program.hook("preAction", (_program, action) => {
  const parent = action.parent && action.parent !== program ? `${action.parent.name()} ` : "";
  const flags = action.opts();
  setCommandContext({ command: `${parent}${action.name()}`, manifest: Boolean(flags.file ?? flags.attrFile ?? flags.edit) });
});
registerResources(verbs);
registerExecutionClusterLabels(verbs);
registerSelectCluster(program, verbs);
registerImport(program, verbs);
registerJoinTokens(verbs);

try {
  await program.parseAsync();
} catch (error) {
  if (error instanceof CommanderError) {
    // Commander has printed the problem (or the help); only the exit code is ours to choose.
    process.exitCode = error.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  } else {
    const { message, exitCode } = explainFailure(error, session?.endpoint);
    process.stderr.write(`Error: ${message}\n`);
    process.exitCode = exitCode;
  }
}
