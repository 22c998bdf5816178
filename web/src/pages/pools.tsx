import { useRef, useState } from "preact/hooks";
import { Code, ConnectError } from "@connectrpc/connect";
import { describeError, fieldViolations, api } from "../api.js";
import { Notice, ReadOnlyNote } from "../components.js";
import { canAct, href } from "../session.js";
import { clusters, pools } from "../store.js";
import { lineOfField, NEW_POOL_TEMPLATE, parsePoolYaml, poolToYaml, SECRET_STORE_TYPES, type Problem } from "../pool-yaml.js";

export function PoolsPage() {
  const [editing, setEditing] = useState<{ mode: "create" | "edit"; name: string; text: string } | null>(null);
  const all = [...pools.value.values()].sort((a, b) => a.name.localeCompare(b.name));
  return (
    <section aria-labelledby="pools-title">
      <h1 id="pools-title">Cluster pools</h1>
      <ReadOnlyNote />
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Pool</th>
              <th scope="col">Object store</th>
              <th scope="col">Secret store</th>
              <th scope="col">Image registry</th>
              <th scope="col">Clusters</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {all.map((pool) => {
              const type = pool.config?.secretStore?.type ?? 0;
              const members = [...clusters.value.values()].filter((c) => c.pool === pool.name).map((c) => c.name);
              return (
                <tr key={pool.name} data-pool={pool.name}>
                  <th scope="row" data-label="Pool">{pool.name}</th>
                  <td data-label="Object store" class="mono">{pool.config?.objectStoreRef?.uri || "–"}</td>
                  <td data-label="Secret store">
                    {type ? SECRET_STORE_TYPES[type - 1] : "–"} {pool.config?.secretStore?.locator}
                  </td>
                  <td data-label="Image registry" class="mono">{pool.config?.imageRegistry?.locator || "–"}</td>
                  <td data-label="Clusters">
                    {members.length
                      ? members.map((name, i) => (
                          <span key={name}>
                            {i ? ", " : ""}
                            <a href={href("cluster", name)}>{name}</a>
                          </span>
                        ))
                      : "none"}
                  </td>
                  <td>
                    <button type="button" disabled={!canAct.value} onClick={() => setEditing({ mode: "edit", name: pool.name, text: poolToYaml(pool) })} aria-label={`Edit pool ${pool.name}`}>
                      Edit
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <div class="actions">
        <button type="button" class="primary" disabled={!canAct.value} onClick={() => setEditing({ mode: "create", name: "", text: NEW_POOL_TEMPLATE })}>
          New pool…
        </button>
      </div>
      {editing ? <PoolEditor {...editing} onDone={() => setEditing(null)} key={`${editing.mode}-${editing.name}`} /> : null}
    </section>
  );
}

function PoolEditor({ mode, name, text: initial, onDone }: { mode: "create" | "edit"; name: string; text: string; onDone(): void }) {
  const [text, setText] = useState(initial);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [error, setError] = useState("");
  const [saving, setSaving] = useState(false);
  const area = useRef<HTMLTextAreaElement>(null);
  const goToLine = (line: number) => {
    const element = area.current;
    if (!element) return;
    const lines = element.value.split("\n");
    const start = lines.slice(0, line - 1).reduce((sum, l) => sum + l.length + 1, 0);
    element.focus();
    element.setSelectionRange(start, start + (lines[line - 1]?.length ?? 0));
  };
  const save = async (event: Event) => {
    event.preventDefault();
    setError("");
    const parsed = parsePoolYaml(text);
    setProblems(parsed.problems);
    if (!parsed.pool) return;
    if (mode === "edit" && parsed.pool.name !== name) {
      setProblems([{ line: lineOfField(text, "name"), field: "name", message: `a pool cannot be renamed: keep name ${name}` }]);
      return;
    }
    setSaving(true);
    try {
      if (mode === "create") await api.pools.createClusterPool({ clusterPool: parsed.pool });
      else await api.pools.updateClusterPool({ clusterPool: parsed.pool });
      onDone();
    } catch (caught) {
      const violations = fieldViolations(caught);
      setProblems(violations.map((v) => ({ field: v.field, line: lineOfField(text, v.field), message: v.description })));
      const connectError = ConnectError.from(caught);
      setError(connectError.code === Code.InvalidArgument && violations.length ? "The server refused the manifest:" : describeError(caught));
    } finally {
      setSaving(false);
    }
  };
  const lines = text.split("\n").length;
  return (
    <form class="editor" onSubmit={save} aria-labelledby="editor-title">
      <h2 id="editor-title">{mode === "create" ? "New cluster pool" : `Edit pool ${name}`}</h2>
      <label for="pool-yaml">Pool manifest (YAML, the seed's form: snake_case keys, short secret-store types)</label>
      <div class="code-editor">
        <pre class="gutter" aria-hidden="true">
          {Array.from({ length: lines }, (_, i) => {
            const bad = problems.some((p) => p.line === i + 1);
            return <span class={bad ? "bad-line" : ""} key={i}>{`${i + 1}\n`}</span>;
          })}
        </pre>
        <textarea
          id="pool-yaml"
          ref={area}
          value={text}
          rows={Math.max(12, lines + 1)}
          spellcheck={false}
          aria-describedby="pool-problems"
          aria-invalid={problems.length > 0}
          onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
        />
      </div>
      <div id="pool-problems" aria-live="polite">
        {error ? <Notice kind="error">{error}</Notice> : null}
        {problems.length ? (
          <ul class="problems" data-testid="pool-problems">
            {problems.map((p, i) => (
              <li key={i}>
                {p.line ? (
                  <button type="button" class="link" onClick={() => goToLine(p.line!)}>
                    line {p.line}
                  </button>
                ) : null}
                {p.field ? <code>{p.field}</code> : null} {p.message}
              </li>
            ))}
          </ul>
        ) : null}
      </div>
      <div class="actions">
        <button type="button" onClick={onDone}>
          Cancel
        </button>
        <button type="submit" class="primary" disabled={saving}>
          {mode === "create" ? "Create pool" : "Save pool"}
        </button>
      </div>
    </form>
  );
}
