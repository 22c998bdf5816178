import cluster, { type Worker } from "node:cluster";
import { AggregatorRegistry, type Aggregator } from "prom-client";
import { openStores } from "../store/stores.js";
import type { Logger } from "./logging.js";
import type { ServerMetrics } from "./metrics.js";
import { shutDown, startServer, type ServerConfig } from "./server.js";

/**
 * `clusterplane serve --workers N`: one primary process forks N workers that share the port
 * (node:cluster hands each accepted connection to a worker in turn). Each worker is a whole
 * server (startServer): it follows the change log like any replica, and the database's sync lease
 * lets exactly one process run the cluster-sync loop. The primary only supervises: it applies
 * migrations once, announces the server when every worker listens, replaces a worker that dies,
 * sums `/metrics` over the workers, and stops them all on SIGTERM or SIGINT.
 */
export interface WorkerHooks {
  /** The operator's explanation of a start-up failure (ends with exit 2), or undefined for a crash. */
  explainStartFailure(error: unknown): string | undefined;
  /** Logs the start-up line, once, when every worker listens. */
  announce(url: string, fields: Record<string, unknown>): void;
}

/** Whether this process is a worker forked by `serve --workers` (it serves whatever its settings say). */
export const isWorker = cluster.isWorker;

export function serveWithWorkers(config: ServerConfig, logger: Logger, hooks: WorkerHooks): Promise<void> {
  return cluster.isPrimary ? runPrimary(config, logger, hooks) : runWorker(config, logger, hooks);
}

/** Messages over node:cluster's IPC channel, worker to primary. */
type FromWorker =
  | { type: "clusterplane:listening"; url: string }
  | { type: "clusterplane:refused"; problem: string }
  | { type: "clusterplane:scrape"; id: number }
  | { type: "clusterplane:metrics"; id: number; metrics?: object[][]; error?: string };

/** Primary to worker. */
type FromPrimary =
  | { type: "clusterplane:shutdown" }
  | { type: "clusterplane:collect"; id: number }
  | { type: "clusterplane:scraped"; id: number; text?: string; error?: string };

/** A replacement waits this long after the first crash, twice as long after each further one… */
const RESTART_BACKOFF_MS = 250;
/** …up to this; a worker that crashes in a loop costs little while the operator looks. */
const RESTART_BACKOFF_CAP_MS = 30_000;
/** A worker that served this long before dying starts its slot's backoff afresh. */
const STABLE_MS = 60_000;
/** How long a scrape waits for the workers' metrics. */
const SCRAPE_TIMEOUT_MS = 5_000;
/** After the shutdown grace, how long workers get to close the database and exit before they are killed. */
const EXIT_MARGIN_MS = 10_000;

/**
 * How metrics combine over workers where summing would be wrong. Everything else sums: RPC
 * counters and histograms, sync pass counters, `clusterplane_sync_leader` (1 with sync on), and
 * Node's process metrics (memory, CPU: the whole server's).
 */
const AGGREGATION: Record<string, Aggregator> = {
  // The revision every worker has reached: a lagging worker shows.
  clusterplane_change_log_revision: "min",
  // Read from the one database: every worker reports the same values.
  clusterplane_sync_last_success_timestamp_seconds: "first",
  clusterplane_cluster_condition: "first",
  clusterplane_cluster_project_domains_provisioned: "first",
};

interface WorkerState {
  slot: number;
  /** When it said it listens; undefined while starting. */
  listeningSince?: number;
  /** Why it could not start, as the operator should read it. */
  refused?: string;
}

async function runPrimary(config: ServerConfig, logger: Logger, hooks: WorkerHooks): Promise<void> {
  const count = config.workers ?? 1;
  // Migrations run here once, so that workers starting together do not race to apply them.
  await (await openStores({ path: config.databasePath, ...config.databasePool, domains: config.domains, lockTimeoutMs: config.lockTimeoutMs })).engine.close();

  const workers = new Map<Worker, WorkerState>();
  const failures = new Array<number>(count).fill(0);
  const restarts = new Set<NodeJS.Timeout>();
  let phase: "starting" | "running" | "stopping" = "starting";
  let url = "";
  let killTimer: NodeJS.Timeout | undefined;
  const scrapes = new Map<number, Scrape>();
  let nextScrape = 0;

  const fork = (slot: number) => {
    const worker = cluster.fork();
    workers.set(worker, { slot });
    worker.on("message", (message: FromWorker) => onMessage(worker, message));
    worker.once("exit", (code, signal) => {
      // A message sent just before exiting may still be unread: decide once the channel has closed too.
      if (worker.isConnected()) worker.once("disconnect", () => onExit(worker, code, signal));
      else onExit(worker, code, signal);
    });
  };

  const onMessage = (worker: Worker, message: FromWorker) => {
    const state = workers.get(worker);
    if (!state) return;
    switch (message.type) {
      case "clusterplane:listening":
        state.listeningSince = Date.now();
        url = message.url;
        if (phase === "starting" && [...workers.values()].every((w) => w.listeningSince !== undefined)) {
          phase = "running";
          hooks.announce(url, { workers: [...workers].map(([w, s]) => ({ worker: w.id, pid: w.process.pid, slot: s.slot })) });
        } else if (phase === "stopping") {
          // It was still starting when the others were told to stop.
          send(worker, { type: "clusterplane:shutdown" });
        } else if (phase === "running") {
          logger.info({ worker: worker.id, pid: worker.process.pid }, `a replacement worker listens; all ${count} workers serve again`);
        }
        return;
      case "clusterplane:refused":
        state.refused = message.problem;
        return;
      case "clusterplane:scrape":
        collect().then(
          (text) => send(worker, { type: "clusterplane:scraped", id: message.id, text }),
          (error: Error) => send(worker, { type: "clusterplane:scraped", id: message.id, error: error.message }),
        );
        return;
      case "clusterplane:metrics":
        scrapes.get(message.id)?.answer(worker, message);
        return;
    }
  };

  const onExit = (worker: Worker, code: number | null, signal: string | null) => {
    const state = workers.get(worker)!;
    workers.delete(worker);
    for (const scrape of scrapes.values()) scrape.forget(worker);
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    if (phase === "stopping") {
      // One still starting when told to stop may fail as the one that stopped the start did.
      if (code !== 0 && state.listeningSince !== undefined) {
        logger.error({ worker: worker.id, exitCode: code, signal }, `worker ${worker.id} did not stop cleanly (${how}); its log lines above say why`);
        process.exitCode ??= 1;
      }
      if (workers.size === 0) stopped();
      return;
    }
    if (state.listeningSince === undefined && phase === "starting") {
      // Failing before listening is a setting to fix (port taken, bad TLS file) or a bug: restarting would only loop.
      if (state.refused) process.stderr.write(`clusterplane: ${state.refused}\n`);
      else logger.error({ worker: worker.id, exitCode: code, signal }, `a worker failed to start (${how}); its error is above. Nothing listens: fix the cause and start again`);
      process.exitCode = state.refused ? 2 : 1;
      stop("a worker failed to start");
      return;
    }
    if (state.listeningSince !== undefined && Date.now() - state.listeningSince >= STABLE_MS) failures[state.slot] = 0;
    const failed = ++failures[state.slot]!;
    const delay = Math.min(RESTART_BACKOFF_CAP_MS, RESTART_BACKOFF_MS * 2 ** (failed - 1));
    logger.error(
      { worker: worker.id, pid: worker.process.pid, exitCode: code, signal, problem: state.refused, restartInMs: delay, failuresInARow: failed },
      `worker ${worker.id} exited unexpectedly (${how}); the other workers keep serving and a replacement starts in ${delay} ms. ` +
        `If this repeats, its last log lines (worker: ${worker.id}) and stderr say why`,
    );
    const timer = setTimeout(() => {
      restarts.delete(timer);
      fork(state.slot);
    }, delay);
    restarts.add(timer);
  };

  /** Every listening worker's metrics, combined per metric (AGGREGATION). */
  const collect = (): Promise<string> => {
    const asked = [...workers].filter(([w, s]) => s.listeningSince !== undefined && w.isConnected()).map(([w]) => w);
    const id = nextScrape++;
    const scrape = new Scrape(asked);
    scrapes.set(id, scrape);
    for (const worker of asked) send(worker, { type: "clusterplane:collect", id });
    scrape.check();
    return scrape.result.finally(() => scrapes.delete(id));
  };

  const stop = (why: string) => {
    if (phase === "stopping") return;
    phase = "stopping";
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
    for (const timer of restarts) clearTimeout(timer);
    logger.info({ reason: why, workers: workers.size }, "shutting down: every worker finishes its in-flight calls");
    for (const worker of workers.keys()) send(worker, { type: "clusterplane:shutdown" });
    killTimer = setTimeout(() => {
      logger.error(
        { workers: [...workers.keys()].map((w) => w.id), waitedMs: config.shutdownGraceMs + EXIT_MARGIN_MS },
        "workers did not exit after the shutdown grace; killing them (their last log lines say where they hung)",
      );
      process.exitCode = 1;
      for (const worker of workers.keys()) worker.process.kill("SIGKILL");
    }, config.shutdownGraceMs + EXIT_MARGIN_MS);
    if (workers.size === 0) stopped();
  };
  const stopped = () => {
    clearTimeout(killTimer);
    logger.info("stopped; every worker has exited");
  };
  const onSignal = (signal: string) => stop(signal);
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  for (let slot = 0; slot < count; slot++) fork(slot);
}

/** One scrape in progress: the metrics of the workers asked, until each has answered or exited. */
class Scrape {
  readonly result: Promise<string>;
  /** Each worker's registries, as getMetricsAsJSON gives them. */
  private readonly answers: object[][] = [];
  private readonly waiting: Set<Worker>;
  private settled = false;
  private settle!: (outcome: string | Error) => void;

  constructor(asked: Worker[]) {
    this.waiting = new Set(asked);
    this.result = new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.settle(new Error(`workers did not answer within ${SCRAPE_TIMEOUT_MS} ms`)), SCRAPE_TIMEOUT_MS);
      this.settle = (outcome) => {
        if (this.settled) return;
        this.settled = true;
        clearTimeout(timer);
        if (outcome instanceof Error) reject(outcome);
        else resolve(outcome);
      };
    });
  }

  answer(worker: Worker, message: Extract<FromWorker, { type: "clusterplane:metrics" }>): void {
    if (!this.waiting.delete(worker)) return;
    if (message.error !== undefined) return this.settle(new Error(`worker ${worker.id}: ${message.error}`));
    this.answers.push(...(message.metrics ?? []));
    this.check();
  }

  /** A worker that exits mid-scrape is left out: its counts left with it, as a restarted server's do. */
  forget(worker: Worker): void {
    if (this.waiting.delete(worker)) this.check();
  }

  /** Combines the answers once every worker asked has answered (or exited). */
  check(): void {
    if (this.waiting.size > 0 || this.settled) return;
    Promise.resolve()
      .then(() => AggregatorRegistry.aggregate(this.answers).metrics())
      .then(this.settle, this.settle);
  }
}

function send(worker: Worker, message: FromPrimary): void {
  // A worker that has just exited cannot be told anything; its exit is handled on its own.
  if (worker.isConnected()) worker.send(message, () => undefined);
}

async function runWorker(config: ServerConfig, parentLogger: Logger, hooks: WorkerHooks): Promise<void> {
  const worker = cluster.worker!;
  const logger = parentLogger.child({ worker: worker.id });
  let server;
  try {
    server = await startServer(config, logger);
  } catch (error) {
    const problem = hooks.explainStartFailure(error);
    if (problem === undefined) throw error;
    // The primary prints it once, for every worker fails the same way.
    process.exitCode = 2;
    tell({ type: "clusterplane:refused", problem }, leave);
    return;
  }
  const running = server;
  shareMetrics(running.metrics);

  let stopping = false;
  const stop = (reason: string) => {
    if (stopping) return;
    stopping = true;
    void shutDown(running, logger, { reason }).finally(leave);
  };
  process.on("message", (message: FromPrimary) => {
    if (message.type === "clusterplane:shutdown") stop("the primary process is shutting down");
  });
  // A terminal's Ctrl-C reaches every process of the group, workers too: stop gracefully with the primary.
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  tell({ type: "clusterplane:listening", url: running.url });
}

/**
 * `/metrics` may land on any worker: it asks the primary, which combines every worker's metrics,
 * and answers the primary's requests for its own.
 */
function shareMetrics(metrics: ServerMetrics): void {
  for (const metric of metrics.registry.getMetricsAsArray()) {
    const aggregator = AGGREGATION[metric.name];
    if (aggregator) metric.aggregator = aggregator;
  }
  const pending = new Map<number, (message: Extract<FromPrimary, { type: "clusterplane:scraped" }>) => void>();
  let nextId = 0;
  process.on("message", (message: FromPrimary) => {
    if (message.type === "clusterplane:collect") {
      metrics.json().then(
        (json) => tell({ type: "clusterplane:metrics", id: message.id, metrics: json }),
        (error: Error) => tell({ type: "clusterplane:metrics", id: message.id, error: error.message }),
      );
    } else if (message.type === "clusterplane:scraped") {
      pending.get(message.id)?.(message);
    }
  });
  metrics.exposition = () =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      // The primary answers within its own timeout; this one only guards against a lost message.
      const timer = setTimeout(() => answered({ type: "clusterplane:scraped", id, error: "the primary process did not answer" }), 2 * SCRAPE_TIMEOUT_MS);
      const answered = (message: Extract<FromPrimary, { type: "clusterplane:scraped" }>) => {
        clearTimeout(timer);
        pending.delete(id);
        if (message.text !== undefined) resolve(message.text);
        else reject(new Error(`metrics of all workers: ${message.error}`));
      };
      pending.set(id, answered);
      tell({ type: "clusterplane:scrape", id }, (error) => error && answered({ type: "clusterplane:scraped", id, error: "the primary process is gone" }));
    });
}

/** Closes the channel to the primary, so that the worker exits once nothing else keeps it running. */
function leave(): void {
  if (process.connected) cluster.worker!.disconnect();
}

/** Sends to the primary; `sent` learns whether it could (the channel closes as the worker stops, or if the primary dies). */
function tell(message: FromWorker, sent: (error: Error | null) => void = () => undefined): void {
  if (process.connected) process.send!(message, undefined, undefined, sent);
  else sent(new Error("not connected to the primary process"));
}

