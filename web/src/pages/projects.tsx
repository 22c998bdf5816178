import { useState } from "preact/hooks";
import { ProjectState, type Project } from "../../../gen/clusterplane/v1/project_pb.js";
import { ClusterState } from "../../../gen/clusterplane/v1/cluster_pb.js";
import { api, describeError, fieldViolations } from "../api.js";
import { Confirm, Notice, ReadOnlyNote } from "../components.js";
import { canAct, href } from "../session.js";
import { clusters, projects } from "../store.js";

/**
 * Where a project's namespaces are: the API reports provisioning per cluster as counts
 * (project_domains_provisioned of project_domains_desired) and the objects that failed, not per
 * project. A cluster with every project-domain has this project's; one short of some may not, and
 * a failed object in the project's namespace says it does not.
 */
function placement(project: Project): { full: string[]; partial: { name: string; label: string; failing: boolean }[]; unknown: string[] } {
  const full: string[] = [];
  const partial: { name: string; label: string; failing: boolean }[] = [];
  const unknown: string[] = [];
  for (const cluster of [...clusters.value.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    const status = cluster.syncStatus;
    if (!status?.lastAttemptTime && !status?.projectDomainsDesired) {
      unknown.push(cluster.name);
      continue;
    }
    const failing = status.objectFailures.some((f) => f.key.includes(`/${project.id}-`));
    if (status.projectDomainsDesired > 0 && status.projectDomainsProvisioned >= status.projectDomainsDesired && !failing) full.push(cluster.name);
    else partial.push({ name: cluster.name, label: `${status.projectDomainsProvisioned}/${status.projectDomainsDesired}`, failing });
  }
  return { full, partial, unknown };
}

export function ProjectsPage() {
  const [confirm, setConfirm] = useState<{ project: Project; action: "archive" | "activate" } | null>(null);
  const [message, setMessage] = useState<{ kind: "error" | "ok"; text: string } | null>(null);
  const all = [...projects.value.values()].sort((a, b) => a.id.localeCompare(b.id));
  const act = async (project: Project, action: "archive" | "activate") => {
    setMessage(null);
    try {
      if (action === "archive") await api.projects.archiveProject({ id: project.id });
      else await api.projects.activateProject({ id: project.id });
      setMessage({ kind: "ok", text: `Project ${project.id} is ${action === "archive" ? "archived" : "active"}.` });
    } catch (error) {
      setMessage({ kind: "error", text: describeError(error) });
    }
  };
  const activeClusters = [...clusters.value.values()].filter((c) => c.state === ClusterState.ACTIVE).length;
  return (
    <section aria-labelledby="projects-title">
      <h1 id="projects-title">Projects</h1>
      <ReadOnlyNote />
      <p class="muted">
        Where namespaces are provisioned: the API reports provisioning per cluster as a count of project-domains (and the objects that failed), not per project. A cluster listed
        under "all project-domains" has this project's namespaces; one with fewer may lack some of them. {activeClusters} active cluster{activeClusters === 1 ? "" : "s"}.
      </p>
      {message ? <Notice kind={message.kind}>{message.text}</Notice> : null}
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Project</th>
              <th scope="col">Name</th>
              <th scope="col">State</th>
              <th scope="col">Domains</th>
              <th scope="col">Namespaces provisioned on</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {all.map((project) => {
              const archived = project.state === ProjectState.ARCHIVED;
              const where = placement(project);
              return (
                <tr key={project.id} data-project={project.id}>
                  <th scope="row" data-label="Project">{project.id}</th>
                  <td data-label="Name">{project.name}</td>
                  <td data-label="State">{archived ? "archived" : "active"}</td>
                  <td data-label="Domains">{project.domains.map((d) => d.id).join(", ")}</td>
                  <td data-label="Provisioned on">
                    {archived ? (
                      <span class="muted">archived: not provisioned</span>
                    ) : (
                      <>
                        {where.full.length ? (
                          <span>
                            all project-domains:{" "}
                            {where.full.map((n, i) => (
                              <span key={n}>
                                {i ? ", " : ""}
                                <a href={href("cluster", n)}>{n}</a>
                              </span>
                            ))}
                          </span>
                        ) : null}
                        {where.partial.map((p) => (
                          <span key={p.name} class="warn-text">
                            {" "}
                            {p.name} {p.label}
                            {p.failing ? " (objects in its namespaces failed)" : ""}
                          </span>
                        ))}
                        {where.unknown.length ? <span class="muted"> not synced yet: {where.unknown.join(", ")}</span> : null}
                        {!where.full.length && !where.partial.length && !where.unknown.length ? <span class="muted">no clusters</span> : null}
                      </>
                    )}
                  </td>
                  <td>
                    <button
                      type="button"
                      disabled={!canAct.value}
                      aria-label={`${archived ? "Activate" : "Archive"} project ${project.id}`}
                      onClick={() => setConfirm({ project, action: archived ? "activate" : "archive" })}
                    >
                      {archived ? "Activate…" : "Archive…"}
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {confirm ? (
        <Confirm
          title={`${confirm.action === "archive" ? "Archive" : "Activate"} project ${confirm.project.id}?`}
          confirmLabel={confirm.action === "archive" ? "Archive" : "Activate"}
          danger={confirm.action === "archive"}
          onConfirm={() => act(confirm.project, confirm.action)}
          onClose={() => setConfirm(null)}
        >
          <p>
            {confirm.action === "archive"
              ? "An archived project is no longer provisioned on the clusters, and its executions are no longer routed."
              : "The project is provisioned on the clusters again, and its executions routed."}
          </p>
        </Confirm>
      ) : null}
      <NewProject />
    </section>
  );
}

function NewProject() {
  const [id, setId] = useState("");
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [error, setError] = useState("");
  const [violations, setViolations] = useState<{ field: string; description: string }[]>([]);
  const create = async (event: Event) => {
    event.preventDefault();
    setError("");
    setViolations([]);
    try {
      await api.projects.createProject({ project: { id: id.trim(), name: name.trim() || id.trim(), description } });
      setId("");
      setName("");
      setDescription("");
    } catch (caught) {
      setError(describeError(caught));
      setViolations(fieldViolations(caught));
    }
  };
  const problem = (field: string) => violations.find((v) => v.field.endsWith(field))?.description;
  return (
    <form onSubmit={create} class="form-grid" aria-labelledby="new-project-title">
      <h2 id="new-project-title" class="span-all">
        New project
      </h2>
      <label for="project-id">Id</label>
      <div>
        <input id="project-id" required value={id} disabled={!canAct.value} aria-invalid={Boolean(problem(".id"))} aria-describedby="project-id-problem" onInput={(e) => setId((e.target as HTMLInputElement).value)} />
        <span id="project-id-problem" class="field-problem">{problem(".id") ?? ""}</span>
      </div>
      <label for="project-name">Name</label>
      <div>
        <input id="project-name" value={name} disabled={!canAct.value} aria-describedby="project-name-problem" onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        <span id="project-name-problem" class="field-problem">{problem(".name") ?? ""}</span>
      </div>
      <label for="project-description">Description</label>
      <input id="project-description" value={description} disabled={!canAct.value} onInput={(e) => setDescription((e.target as HTMLInputElement).value)} />
      <div class="form-actions">
        <button type="submit" class="primary" disabled={!canAct.value}>
          Create project
        </button>
      </div>
      {error ? (
        <div class="span-all">
          <Notice kind="error">{error}</Notice>
        </div>
      ) : null}
    </form>
  );
}
