import { useState } from "preact/hooks";
import { ClusterState, type Cluster } from "../../../gen/clusterplane/v1/cluster_pb.js";
import { api, describeError } from "../api.js";
import { Age, Confirm, HealthBadge, Notice, ReadOnlyNote } from "../components.js";
import { clusterHealth, conditionStatusLabel, isoTime, modeLabel, provisionedLabel, stateLabel } from "../health.js";
import { canAct, href } from "../session.js";
import { SyncHealth } from "../../../gen/clusterplane/v1/cluster_pb.js";
import { clusters, defaultLabel, labels, now, passes, queues, transitions, type PassRecord } from "../store.js";

const HEALTH_WORDS: Record<SyncHealth, string> = {
  [SyncHealth.UNSPECIFIED]: "not synced",
  [SyncHealth.HEALTHY]: "healthy",
  [SyncHealth.FAILING]: "failing",
  [SyncHealth.DISABLED]: "disabled",
  [SyncHealth.DEGRADED]: "degraded",
};

/** What draining or activating does to routing, named before the user confirms. */
export function routingEffect(cluster: Cluster, action: "drain" | "activate"): string[] {
  const lines: string[] = [];
  const containing = [...labels.value.values()].filter((label) => label.clusters.some((w) => w.cluster === cluster.name));
  if (action === "drain") {
    lines.push(`SelectCluster stops choosing ${cluster.name} for new executions; running executions finish, and it keeps being synced.`);
    for (const label of containing) {
      const others = label.clusters.filter((w) => w.cluster !== cluster.name && clusters.value.get(w.cluster)?.state === ClusterState.ACTIVE);
      lines.push(
        others.length
          ? `Label ${label.name}${label.name === defaultLabel.value ? " (the default)" : ""}: its executions go to ${others.map((w) => `${w.cluster} (weight ${w.weight})`).join(", ")}.`
          : `Label ${label.name}${label.name === defaultLabel.value ? " (the default)" : ""}: no other active cluster — executions routed to it will find no cluster.`,
      );
    }
    if (containing.length === 0) lines.push("No cluster label names it; only direct targets (cluster or queue) reach it.");
  } else {
    lines.push(`SelectCluster may choose ${cluster.name} again for new executions${containing.length ? `, by the weights of ${containing.map((l) => l.name).join(", ")}` : ""}.`);
  }
  return lines;
}

export function ClusterPage({ name }: { name: string }) {
  const cluster = clusters.value.get(name);
  const [confirm, setConfirm] = useState<"drain" | "activate" | null>(null);
  const [message, setMessage] = useState<{ kind: "error" | "ok"; text: string } | null>(null);
  if (!cluster) {
    return (
      <section aria-labelledby="cluster-title">
        <h1 id="cluster-title">Cluster {name}</h1>
        <Notice kind="info">No cluster named {name} (it may have been deleted). <a href={href("overview")}>Back to the overview</a>.</Notice>
      </section>
    );
  }
  const health = clusterHealth(cluster, now.value);
  const status = cluster.syncStatus;
  const state = stateLabel(cluster);
  const clusterQueues = [...queues.value.values()].filter((q) => q.clusters.includes(cluster.name));
  const clusterLabels = [...labels.value.values()].filter((l) => l.clusters.some((w) => w.cluster === cluster.name));
  const act = async (action: "drain" | "activate") => {
    setMessage(null);
    try {
      if (action === "drain") await api.clusters.drainCluster({ name: cluster.name });
      else await api.clusters.activateCluster({ name: cluster.name });
      setMessage({ kind: "ok", text: `${cluster.name} is ${action === "drain" ? "drained" : "active"}.` });
    } catch (error) {
      setMessage({ kind: "error", text: describeError(error) });
    }
  };
  return (
    <section aria-labelledby="cluster-title" data-cluster={cluster.name}>
      <p class="crumbs">
        <a href={href("overview")}>Overview</a> › pool {cluster.pool}
      </p>
      <h1 id="cluster-title">
        Cluster {cluster.name} <HealthBadge health={health} />
      </h1>
      {health.reason ? <p class="reason">{health.reason}</p> : null}
      <dl class="facts">
        <dt>State</dt>
        <dd data-testid="cluster-state">{state}</dd>
        <dt>Mode</dt>
        <dd>{modeLabel(cluster)}</dd>
        {cluster.endpoint ? (
          <>
            <dt>Endpoint</dt>
            <dd class="mono">{cluster.endpoint}</dd>
          </>
        ) : null}
        <dt>Enabled</dt>
        <dd>{cluster.enabled === false ? "no" : "yes"}</dd>
        {cluster.agent ? (
          <>
            <dt>Agent</dt>
            <dd>
              version {cluster.agent.version || "unknown"}, joined <Age at={cluster.agent.joinTime} />, heartbeat <Age at={cluster.agent.lastHeartbeatTime} />
            </dd>
          </>
        ) : null}
        <dt>Registered</dt>
        <dd>
          <Age at={cluster.createTime} />
        </dd>
      </dl>
      <div class="actions">
        {state === "drained" ? (
          <button type="button" class="primary" disabled={!canAct.value} onClick={() => setConfirm("activate")}>
            Activate…
          </button>
        ) : (
          <button type="button" class="danger" disabled={!canAct.value} onClick={() => setConfirm("drain")}>
            Drain…
          </button>
        )}
      </div>
      <ReadOnlyNote />
      {message ? <Notice kind={message.kind}>{message.text}</Notice> : null}
      {confirm ? (
        <Confirm
          title={`${confirm === "drain" ? "Drain" : "Activate"} ${cluster.name}?`}
          confirmLabel={confirm === "drain" ? `Drain ${cluster.name}` : `Activate ${cluster.name}`}
          danger={confirm === "drain"}
          onConfirm={() => act(confirm)}
          onClose={() => setConfirm(null)}
        >
          <p>Effect on routing:</p>
          <ul>
            {routingEffect(cluster, confirm).map((line) => (
              <li key={line}>{line}</li>
            ))}
          </ul>
        </Confirm>
      ) : null}

      <h2>Conditions</h2>
      {cluster.conditions.length === 0 ? (
        <p class="muted">None yet: no sync pass has reached this cluster.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Type</th>
                <th scope="col">Status</th>
                <th scope="col">Reason</th>
                <th scope="col">Message</th>
                <th scope="col">Last transition</th>
              </tr>
            </thead>
            <tbody>
              {cluster.conditions.map((c) => (
                <tr key={c.type}>
                  <th scope="row" data-label="Type">{c.type}</th>
                  <td data-label="Status">{conditionStatusLabel(c.status)}</td>
                  <td data-label="Reason">{c.reason}</td>
                  <td data-label="Message">{c.message}</td>
                  <td data-label="Last transition">
                    <Age at={c.lastTransitionTime} /> <span class="muted small">{isoTime(c.lastTransitionTime)}</span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <History name={cluster.name} />

      <h2>Sync status</h2>
      <dl class="facts">
        <dt>Last attempt</dt>
        <dd>
          <Age at={status?.lastAttemptTime} />
        </dd>
        <dt>Last success</dt>
        <dd>
          <Age at={status?.lastSuccessTime} />
        </dd>
        <dt>Provisioned project-domains</dt>
        <dd>{provisionedLabel(cluster)}</dd>
        <dt>Last pass</dt>
        <dd>
          {status?.objectsApplied ?? 0} applied, {status?.objectsUnchanged ?? 0} unchanged, {status?.objectsFailed ?? 0} failed
        </dd>
        <dt>Consecutive failures</dt>
        <dd>{status?.consecutiveFailures ?? 0}</dd>
        {status?.failureKind ? (
          <>
            <dt>Failure</dt>
            <dd>{status.failureKind}</dd>
          </>
        ) : null}
        {status?.lastError ? (
          <>
            <dt>Last error</dt>
            <dd>{status.lastError}</dd>
          </>
        ) : null}
      </dl>
      {status?.objectFailures.length ? (
        <>
          <h3>Objects that failed in the last pass</h3>
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Object</th>
                  <th scope="col">Kind of failure</th>
                  <th scope="col">What the API server said</th>
                </tr>
              </thead>
              <tbody>
                {status.objectFailures.map((f) => (
                  <tr key={f.key}>
                    <th scope="row" class="mono" data-label="Object">{f.key}</th>
                    <td data-label="Kind">{f.kind}</td>
                    <td data-label="Message">{f.message}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      ) : null}

      <h2>Queues</h2>
      {clusterQueues.length === 0 ? (
        <p class="muted">No queue includes it.</p>
      ) : (
        <ul>
          {clusterQueues.map((q) => (
            <li key={q.name}>
              {q.name} — {q.state === 2 ? "drained" : "active"}
              {q.clusterManaged ? " (its implicit queue)" : ""}, clusters {q.clusters.join(", ")}
            </li>
          ))}
        </ul>
      )}

      <h2>Labels</h2>
      {clusterLabels.length === 0 ? (
        <p class="muted">No cluster label names it.</p>
      ) : (
        <ul>
          {clusterLabels.map((l) => {
            const total = l.clusters.reduce((sum, w) => sum + w.weight, 0);
            const own = l.clusters.find((w) => w.cluster === cluster.name)?.weight ?? 0;
            return (
              <li key={l.name}>
                <a href={href("labels")}>{l.name}</a>
                {l.name === defaultLabel.value ? " (default)" : ""}: weight {own} of {total} ({total ? Math.round((own / total) * 100) : 0} %)
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}

/** What the stream brought while this tab was open: condition changes and sync passes. */
function History({ name }: { name: string }) {
  const changes = transitions.value.get(name) ?? [];
  // A failing cluster is retried with backoff: equal passes in a row are shown once, with a count.
  const seen: (PassRecord & { times: number })[] = [];
  for (const pass of passes.value.get(name) ?? []) {
    const last = seen.at(-1);
    if (last && last.health === pass.health && last.error === pass.error && last.applied === pass.applied && last.failed === pass.failed) last.times++;
    else seen.push({ ...pass, times: 1 });
  }
  return (
    <>
      <h3>Condition changes seen in this tab</h3>
      {changes.length === 0 ? (
        <p class="muted">None since the page opened (the API keeps each condition's last transition, above).</p>
      ) : (
        <ul data-testid="condition-history">
          {changes.map((t, i) => (
            <li key={i}>
              <Age at={t.at} />: {t.type} {t.from === undefined ? "" : `${conditionStatusLabel(t.from)} → `}
              {conditionStatusLabel(t.to)} ({t.reason}){t.message ? ` — ${t.message}` : ""}
            </li>
          ))}
        </ul>
      )}
      <h3>Sync passes seen in this tab</h3>
      {seen.length === 0 ? (
        <p class="muted">None since the page opened.</p>
      ) : (
        <ul data-testid="pass-history">
          {seen.map((p, i) => (
            <li key={i}>
              <Age at={p.at} />: {HEALTH_WORDS[p.health]}, {p.applied} applied, {p.unchanged} unchanged, {p.failed} failed{p.error ? ` — ${p.error}` : ""}
              {p.times > 1 ? ` (×${p.times} in a row)` : ""}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
