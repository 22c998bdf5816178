import type { Cluster } from "../../../gen/clusterplane/v1/cluster_pb.js";
import { Age, HealthBadge } from "../components.js";
import { clusterHealth, modeLabel, provisionedLabel, stateLabel } from "../health.js";
import { href } from "../session.js";
import { clusters, now, pools } from "../store.js";

/** Pools as groups, clusters as rows: whether anything needs an operator, at a glance. */
export function Overview() {
  const all = [...clusters.value.values()];
  const byPool = new Map<string, Cluster[]>();
  for (const name of [...pools.value.keys()].sort()) byPool.set(name, []);
  for (const cluster of all.sort((a, b) => a.name.localeCompare(b.name))) {
    const list = byPool.get(cluster.pool) ?? [];
    list.push(cluster);
    byPool.set(cluster.pool, list);
  }
  const healths = all.map((c) => clusterHealth(c, now.value));
  const attention = healths.filter((h) => h.level === "bad" || h.level === "warn").length;
  const drained = all.filter((c) => stateLabel(c) === "drained").length;
  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">Overview</h1>
      <p class={`summary ${attention ? "summary-attention" : "summary-ok"}`} data-testid="summary">
        {all.length} cluster{all.length === 1 ? "" : "s"} in {byPool.size} pool{byPool.size === 1 ? "" : "s"}:{" "}
        {attention ? <strong>{attention} need{attention === 1 ? "s" : ""} attention</strong> : "nothing needs attention"}
        {drained ? `, ${drained} drained` : ""}.
      </p>
      {[...byPool.entries()].map(([pool, members]) => (
        <section class="pool" aria-labelledby={`pool-${pool}`} key={pool}>
          <h2 id={`pool-${pool}`}>
            Pool {pool} <span class="muted">({members.length} cluster{members.length === 1 ? "" : "s"})</span>
          </h2>
          {members.length === 0 ? (
            <p class="muted">No clusters in this pool.</p>
          ) : (
            <div class="table-wrap">
              <table class="clusters">
                <caption class="visually-hidden">Clusters of pool {pool}</caption>
                <thead>
                  <tr>
                    <th scope="col">Cluster</th>
                    <th scope="col">Health</th>
                    <th scope="col">Mode</th>
                    <th scope="col">State</th>
                    <th scope="col">Last successful sync</th>
                    <th scope="col">Provisioned</th>
                    <th scope="col">Failed objects</th>
                    <th scope="col">Reason</th>
                  </tr>
                </thead>
                <tbody>
                  {members.map((cluster) => (
                    <ClusterRow cluster={cluster} key={cluster.name} />
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </section>
      ))}
    </section>
  );
}

function ClusterRow({ cluster }: { cluster: Cluster }) {
  const health = clusterHealth(cluster, now.value);
  const state = stateLabel(cluster);
  const mode = modeLabel(cluster);
  const failed = cluster.syncStatus?.objectsFailed ?? 0;
  return (
    <tr data-cluster={cluster.name} data-state={state}>
      <th scope="row" data-label="Cluster">
        <a href={href("cluster", cluster.name)}>{cluster.name}</a>
      </th>
      <td data-label="Health">
        <HealthBadge health={health} />
      </td>
      <td data-label="Mode">
        {mode}
        {mode === "pull" ? (
          <span class="muted small">
            {" "}
            agent {cluster.agent?.version || "not joined"}
            {cluster.agent?.lastHeartbeatTime ? (
              <>
                , heartbeat <Age at={cluster.agent.lastHeartbeatTime} />
              </>
            ) : null}
          </span>
        ) : null}
      </td>
      <td data-label="State">
        <span class={`state state-${state}`}>{state}</span>
      </td>
      <td data-label="Last successful sync">
        <Age at={cluster.syncStatus?.lastSuccessTime} />
      </td>
      <td data-label="Provisioned">{provisionedLabel(cluster)}</td>
      <td data-label="Failed objects" class={failed ? "warn-text" : ""}>
        {failed}
      </td>
      <td data-label="Reason" class="reason">
        {health.reason}
      </td>
    </tr>
  );
}
