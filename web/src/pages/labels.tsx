import { useState } from "preact/hooks";
import { ClusterState } from "../../../gen/clusterplane/v1/cluster_pb.js";
import { ExecutionClusterLabelScope, type ClusterLabel, type ExecutionClusterLabel } from "../../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { describeError } from "../api.js";
import { Notice } from "../components.js";
import { canRoute, href } from "../session.js";
import { simulate, type Simulation } from "../simulate.js";
import { assignments, clusters, defaultLabel, labels, projects } from "../store.js";

const SCOPES: [ExecutionClusterLabelScope, string][] = [
  [ExecutionClusterLabelScope.LAUNCH_PLAN, "Launch plan"],
  [ExecutionClusterLabelScope.WORKFLOW, "Workflow"],
  [ExecutionClusterLabelScope.PROJECT_DOMAIN, "Project and domain"],
  [ExecutionClusterLabelScope.PROJECT, "Project"],
  [ExecutionClusterLabelScope.DEFAULT, "Default"],
];

function share(value: number, total: number): number {
  return total > 0 ? (value / total) * 100 : 0;
}

function pct(value: number): string {
  return `${value.toFixed(1)} %`;
}

function LabelBars({ label }: { label: ClusterLabel }) {
  const total = label.clusters.reduce((sum, w) => sum + w.weight, 0);
  return (
    <section class="label" aria-labelledby={`label-${label.name}`} data-label={label.name}>
      <h3 id={`label-${label.name}`}>
        {label.name}
        {label.name === defaultLabel.value ? <span class="tag">default</span> : null}
      </h3>
      <ul class="bars">
        {label.clusters.map((w) => {
          const cluster = clusters.value.get(w.cluster);
          const drained = cluster?.state === ClusterState.DRAINED;
          return (
            <li key={w.cluster} class={drained ? "drained" : ""}>
              <span class="bar-name">
                <a href={href("cluster", w.cluster)}>{w.cluster}</a>
                {drained ? " (drained)" : cluster ? "" : " (not registered)"}
              </span>
              <span class="bar-track" aria-hidden="true">
                <span class="bar" style={{ width: `${share(w.weight, total)}%` }} />
              </span>
              <span class="bar-value">
                weight {w.weight} · {pct(share(w.weight, total))}
              </span>
            </li>
          );
        })}
      </ul>
    </section>
  );
}

function assignmentTarget(a: ExecutionClusterLabel): string {
  return [a.project, a.domain, a.workflow, a.launchPlan].filter(Boolean).join(" / ") || "organization";
}

export function LabelsPage() {
  const all = [...labels.value.values()].sort((a, b) => a.name.localeCompare(b.name));
  const byScope = new Map<ExecutionClusterLabelScope, ExecutionClusterLabel[]>();
  for (const a of assignments.value.values()) byScope.set(a.scope, [...(byScope.get(a.scope) ?? []), a]);
  return (
    <section aria-labelledby="labels-title">
      <h1 id="labels-title">Labels and routing</h1>
      <p>
        Default cluster label: <strong data-testid="default-label">{defaultLabel.value || "none"}</strong>
      </p>
      <h2>Cluster labels</h2>
      {all.length === 0 ? <p class="muted">No cluster labels.</p> : all.map((label) => <LabelBars label={label} key={label.name} />)}
      <h2>Execution cluster labels</h2>
      {assignments.value.size === 0 ? (
        <p class="muted">No assignments: every execution uses the default label.</p>
      ) : (
        SCOPES.filter(([scope]) => byScope.has(scope)).map(([scope, title]) => (
          <section key={scope} aria-labelledby={`scope-${scope}`}>
            <h3 id={`scope-${scope}`}>{title}</h3>
            <ul>
              {byScope
                .get(scope)!
                .sort((a, b) => assignmentTarget(a).localeCompare(assignmentTarget(b)))
                .map((a) => (
                  <li key={assignmentTarget(a)}>
                    {assignmentTarget(a)} → <strong>{a.value}</strong>
                  </li>
                ))}
            </ul>
          </section>
        ))
      )}
      <Simulator />
    </section>
  );
}

function Simulator() {
  const projectList = [...projects.value.values()].filter((p) => p.state !== 2).sort((a, b) => a.id.localeCompare(b.id));
  const [project, setProject] = useState("");
  const [domain, setDomain] = useState("");
  const [workflow, setWorkflow] = useState("");
  const [count, setCount] = useState(10_000);
  const [running, setRunning] = useState(false);
  const [done, setDone] = useState(0);
  const [result, setResult] = useState<Simulation | null>(null);
  const chosen = projects.value.get(project) ?? projectList[0];
  const domains = chosen?.domains ?? [];
  const chosenDomain = domains.some((d) => d.id === domain) ? domain : (domains[0]?.id ?? "");
  const run = async (event: Event) => {
    event.preventDefault();
    if (!chosen) return;
    setRunning(true);
    setResult(null);
    setDone(0);
    try {
      setResult(await simulate({ project: chosen.id, domain: chosenDomain, workflow: workflow.trim(), count }, setDone));
    } finally {
      setRunning(false);
    }
  };
  const label = result ? labels.value.get(result.label) : undefined;
  const weights = new Map(label?.clusters.map((w) => [w.cluster, w.weight]) ?? []);
  const totalWeight = [...weights.values()].reduce((a, b) => a + b, 0);
  const rows = result ? [...new Set([...weights.keys(), ...result.counts.keys()])] : [];
  const answered = result ? result.asked - result.failed : 0;
  return (
    <section aria-labelledby="sim-title" class="simulator">
      <h2 id="sim-title">Routing simulator</h2>
      <p class="muted">
        Asks SelectCluster where execution ids sim-0 … sim-{count - 1} would run (32 calls at a time), and compares the shares with the label's weights.
      </p>
      {!canRoute.value ? <Notice kind="info">SelectCluster is a routing call: it needs role admin or router, so the server will refuse this token.</Notice> : null}
      <form onSubmit={run} class="form-grid">
        <label for="sim-project">Project</label>
        <select id="sim-project" value={chosen?.id ?? ""} onChange={(e) => setProject((e.target as HTMLSelectElement).value)}>
          {projectList.map((p) => (
            <option value={p.id} key={p.id}>
              {p.id}
            </option>
          ))}
        </select>
        <label for="sim-domain">Domain</label>
        <select id="sim-domain" value={chosenDomain} onChange={(e) => setDomain((e.target as HTMLSelectElement).value)}>
          {domains.map((d) => (
            <option value={d.id} key={d.id}>
              {d.id}
            </option>
          ))}
        </select>
        <label for="sim-workflow">Workflow (optional)</label>
        <input id="sim-workflow" value={workflow} onInput={(e) => setWorkflow((e.target as HTMLInputElement).value)} placeholder="e.g. train.daily" />
        <label for="sim-count">Execution ids</label>
        <select id="sim-count" value={String(count)} onChange={(e) => setCount(Number((e.target as HTMLSelectElement).value))}>
          <option value="1000">1 000</option>
          <option value="10000">10 000</option>
        </select>
        <div class="form-actions">
          <button type="submit" class="primary" disabled={running || !chosen}>
            {running ? `Asking… ${done}/${count}` : "Simulate"}
          </button>
        </div>
      </form>
      {!chosen ? <p class="muted">Create a project first: routing resolves per project and domain.</p> : null}
      {result ? (
        <div class="sim-result" data-testid="sim-result" data-asked={result.asked} data-failed={result.failed}>
          {result.failed ? <Notice kind="error">{result.failed} of {result.asked} calls failed: {describeError(result.firstError)}</Notice> : null}
          {answered ? (
            <>
              <p data-testid="sim-resolution">
                Resolution: <strong>{result.reason || "—"}</strong> → label <strong>{result.label || "—"}</strong>. {answered} execution ids answered in{" "}
                {(result.ms / 1000).toFixed(1)} s.
              </p>
              <table class="sim-table">
                <caption>Where {answered} execution ids land, next to each cluster's weight</caption>
                <thead>
                  <tr>
                    <th scope="col">Cluster</th>
                    <th scope="col">Executions</th>
                    <th scope="col">Share vs weight</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((name) => {
                    const n = result.counts.get(name) ?? 0;
                    const weight = weights.get(name) ?? 0;
                    return (
                      <tr key={name} data-sim-cluster={name} data-count={n}>
                        <th scope="row" data-label="Cluster">{name}</th>
                        <td data-label="Executions">{n}</td>
                        <td data-label="Share vs weight">
                          <div class="pair">
                            <span class="bar-track" aria-hidden="true">
                              <span class="bar" style={{ width: `${share(n, answered)}%` }} />
                            </span>
                            <span>{pct(share(n, answered))} of executions</span>
                            <span class="bar-track" aria-hidden="true">
                              <span class="bar bar-weight" style={{ width: `${share(weight, totalWeight)}%` }} />
                            </span>
                            <span>
                              {pct(share(weight, totalWeight))} of weight ({weight})
                            </span>
                          </div>
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </>
          ) : null}
        </div>
      ) : null}
    </section>
  );
}
