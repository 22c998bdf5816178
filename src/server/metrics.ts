import { Code } from "@connectrpc/connect";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { grpcStatusName } from "../core/values.js";
import type { Cluster } from "../core/cluster.js";
import type { Stores } from "../store/stores.js";
import type { ClusterReport } from "../sync/sync-loop.js";

/** Seconds; RPCs served from memory take microseconds, writes a few milliseconds. */
const RPC_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

let processRegistry: Registry | undefined;

/**
 * Node's process metrics (CPU, memory, event-loop lag, GC), collected once per process however
 * many servers it runs (tests start several), and shown by each.
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** The gRPC name of a status code: OK, UNAUTHENTICATED, PERMISSION_DENIED, … */
export function grpcCodeName(code: Code | null): string {
  if (code === null) return "OK";
  return grpcStatusName(Code[code]);
}

/** The labelled children of one method: found once, not per call (prom-client hashes labels on every lookup). */
interface MethodMetrics {
  duration: ReturnType<Histogram<"service" | "method">["labels"]>;
  requests: Map<Code | null, ReturnType<Counter<"service" | "method" | "code">["labels"]>>;
  service: string;
  method: string;
}

/** One Prometheus registry per server: RPCs, latency, and the cluster-sync loop. */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly rpcRequests = new Counter({
    name: "clusterplane_rpc_requests_total",
    help: "RPCs handled, by service, method and gRPC status code.",
    labelNames: ["service", "method", "code"] as const,
    registers: [this.registry],
  });
  readonly rpcDuration = new Histogram({
    name: "clusterplane_rpc_duration_seconds",
    help: "Time to answer an RPC (for streams: until the response starts), by service and method.",
    labelNames: ["service", "method"] as const,
    buckets: RPC_BUCKETS,
    registers: [this.registry],
  });
  readonly syncPasses = new Counter({
    name: "clusterplane_sync_passes_total",
    help: "Cluster-sync passes run by this process, by cluster and outcome (success or failure).",
    labelNames: ["org", "cluster", "outcome"] as const,
    registers: [this.registry],
  });
  readonly syncApplied = new Counter({
    name: "clusterplane_sync_objects_applied_total",
    help: "Objects applied to a cluster (created or changed) by this process's sync passes.",
    labelNames: ["org", "cluster"] as const,
    registers: [this.registry],
  });
  readonly syncFailed = new Counter({
    name: "clusterplane_sync_objects_failed_total",
    help: "Objects that failed to apply to a cluster in this process's sync passes.",
    labelNames: ["org", "cluster"] as const,
    registers: [this.registry],
  });

  /** Whether this process runs the cluster-sync loop (holds the database's sync lease); set by the server. */
  leadsSync: () => boolean = () => false;

  /**
   * What `/metrics` answers. A worker process replaces it with the sum over every worker (asked
   * of the primary), so a scrape that lands on any of them sees the whole server.
   */
  exposition: () => Promise<string> = () => this.text();

  /** The clusters as read for the scrape in progress (read before it: the gauges' collect is synchronous). */
  private scrapeClusters: Cluster[] | null = null;
  private readonly methods = new Map<string, MethodMetrics>();

  constructor(private readonly stores: Stores) {
    const metrics = this;
    new Gauge({
      name: "clusterplane_sync_leader",
      help: "1 while this process holds the sync lease and runs the cluster-sync loop, else 0 (summed over workers: the number of leaders, 1 or 0).",
      registers: [this.registry],
      collect() {
        this.set(metrics.leadsSync() ? 1 : 0);
      },
    });
    new Gauge({
      name: "clusterplane_change_log_revision",
      help: "The newest change-log revision this process has applied to its routing index and watchers.",
      registers: [this.registry],
      collect() {
        this.set(stores.changes.appliedRevision);
      },
    });
    this.clusterGauges();
  }

  /**
   * Per-cluster gauges, read at scrape time from the database: they survive restarts, include
   * passes run by other processes (the sync leader, `clusterplane sync --once`), and drop deleted
   * clusters.
   */
  private clusterGauges(): void {
    // One read of the clusters serves every gauge of a scrape; text() starts each scrape afresh.
    const clusters = () => this.scrapeClusters ?? [];
    this.clusterGauge(clusters, "clusterplane_sync_last_success_timestamp_seconds",
      "When the last successful sync pass of a cluster ended (Unix seconds), as stored in the database.", [],
      (cluster) => (cluster.sync?.lastSuccessTime ? [[{}, cluster.sync.lastSuccessTime.getTime() / 1000]] : []));
    this.clusterGauge(clusters, "clusterplane_cluster_condition",
      "1 for the status each condition of a cluster has after its last sync pass (Reachable, Authorized, Provisioned, Degraded).",
      ["condition", "status"],
      (cluster) => (cluster.sync?.conditions ?? []).map((condition) => [{ condition: condition.type, status: condition.status }, 1]));
    this.clusterGauge(clusters, "clusterplane_cluster_project_domains_provisioned",
      "Project-domains whose namespace and service account are on a cluster (executions of the others are not routed there).", [],
      (cluster) => (cluster.sync ? [[{}, cluster.sync.projectDomainsProvisioned]] : []));
  }

  private clusterGauge(
    clusters: () => Cluster[],
    name: string,
    help: string,
    extraLabels: string[],
    valuesOf: (cluster: Cluster) => [Record<string, string>, number][],
  ): void {
    new Gauge({
      name,
      help,
      labelNames: ["org", "cluster", ...extraLabels],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const cluster of clusters()) {
          for (const [labels, value] of valuesOf(cluster)) this.set({ org: cluster.org, cluster: cluster.name, ...labels }, value);
        }
      },
    });
  }

  /**
   * Counts one RPC and observes its duration; the one place both transports (connect-node's
   * interceptor and the lean gRPC path) record calls.
   */
  observeRpc(service: string, method: string, code: Code | null, seconds: number): void {
    const key = `${service}/${method}`;
    let children = this.methods.get(key);
    if (!children) {
      children = { duration: this.rpcDuration.labels(service, method), requests: new Map(), service, method };
      this.methods.set(key, children);
    }
    let counter = children.requests.get(code);
    if (!counter) {
      counter = this.rpcRequests.labels(service, method, grpcCodeName(code));
      children.requests.set(code, counter);
    }
    counter.inc();
    children.duration.observe(seconds);
  }

  /** Counts one finished sync pass (SyncLoop.onPass). */
  recordPass(report: ClusterReport): void {
    const labels = { org: report.org, cluster: report.cluster };
    this.syncPasses.inc({ ...labels, outcome: report.ok ? "success" : "failure" });
    this.syncApplied.inc(labels, report.applied);
    this.syncFailed.inc(labels, report.failed);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition: this server's metrics, then the process's. */
  async text(): Promise<string> {
    await this.startScrape();
    return (await this.registry.metrics()) + (await processMetrics().metrics());
  }

  /** The same as prom-client's JSON, for a primary process to sum over workers (AggregatorRegistry). */
  async json(): Promise<object[][]> {
    await this.startScrape();
    return [await this.registry.getMetricsAsJSON(), await processMetrics().getMetricsAsJSON()];
  }

  /** Every scrape reads the clusters afresh, once, before the gauges collect. */
  private async startScrape(): Promise<void> {
    this.scrapeClusters = this.stores.engine.isOpen ? await this.stores.clusters.all() : [];
  }
}

