import { Command } from "commander";
import { serve } from "./serve.js";
import { syncOnce } from "./sync-once.js";

const program = new Command()
  .name("clusterplane")
  .description("Multi-cluster control plane: cluster pools, clusters, queues, labels and routing.");

program
  .command("serve")
  .description("run the server: gRPC, gRPC-Web and Connect on one port, state in SQLite")
  .option("--host <address>", "address to bind (env CLUSTERPLANE_HOST, default 127.0.0.1)")
  .option("--port <port>", "port to listen on, 0 for any free one (env CLUSTERPLANE_PORT, default 8080)")
  .option("--db <path>", "SQLite database file (env CLUSTERPLANE_DB, default ./clusterplane.db)")
  .option("--shutdown-grace-ms <ms>", "time in-flight calls get to finish on shutdown (env CLUSTERPLANE_SHUTDOWN_GRACE_MS, default 10000)")
  .option("--domains <list>", "comma-separated domains every project gets (env CLUSTERPLANE_DOMAINS, default development,staging,production)")
  .option("--sync-config <file>", "YAML file of cluster-sync settings and templates (env CLUSTERPLANE_SYNC_CONFIG)")
  .option("--no-sync", "do not run the cluster-sync loop in this process (env CLUSTERPLANE_SYNC=off)")
  .action(serve);

program
  .command("sync")
  .description("run the cluster-sync loop against the database directly")
  .requiredOption("--once", "one pass over every enabled cluster, then exit (non-zero when a cluster failed)")
  .option("--full", "apply every object again, ignoring what was applied before (repairs drift)")
  .option("--db <path>", "SQLite database file (env CLUSTERPLANE_DB, default ./clusterplane.db)")
  .option("--domains <list>", "comma-separated domains (env CLUSTERPLANE_DOMAINS)")
  .option("--sync-config <file>", "YAML file of cluster-sync settings and templates (env CLUSTERPLANE_SYNC_CONFIG)")
  .action(syncOnce);

await program.parseAsync();
