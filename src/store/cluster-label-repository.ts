import type { ClusterLabel, LabelMember } from "../core/cluster-label.js";
import { alreadyExists, failedPrecondition, invalidArgument, listInWords, notFound } from "../core/errors.js";
import { checkEtag, makeEtag } from "../core/etag.js";
import type { PageRequest } from "../core/paging.js";
import type { ChangeLog } from "./changes.js";
import { nextUpdateTime, type Page } from "./rows.js";
import type { Db } from "./database.js";

interface LabelRow {
  org: string;
  name: string;
  create_time: number;
  update_time: number;
  version: number;
  revision: number;
}

/** Cluster labels (`labelClusterMap`) and each organization's default label, in SQLite. */
export class ClusterLabelRepository {
  constructor(
    private readonly db: Db,
    private readonly changes: ChangeLog,
  ) {}

  create(org: string, name: string, members: readonly LabelMember[]): ClusterLabel {
    return this.changes.write(() => {
      if (this.findRow(org, name)) throw alreadyExists(`label "${name}" already exists; use UpdateClusterLabel to change its clusters`);
      const now = Date.now();
      this.db
        .prepare("INSERT INTO cluster_labels (org, name, create_time, update_time, version) VALUES (?, ?, ?, ?, 1)")
        .run(org, name, now, now);
      this.writeMembers(org, name, members);
      this.changes.record({ kind: "label", org, name });
      return this.get(org, name);
    });
  }

  get(org: string, name: string): ClusterLabel {
    const label = this.find(org, name);
    if (!label) throw notFound(`label "${name}" does not exist; ListClusterLabels shows the labels there are`);
    return label;
  }

  find(org: string, name: string): ClusterLabel | undefined {
    const row = this.findRow(org, name);
    return row && toLabel(row, this.members(org, name));
  }

  /**
   * Throws INVALID_ARGUMENT naming `field` unless the label exists: a request that names a label
   * (an assignment, the default) is bad input when there is no such label.
   */
  requireExisting(org: string, name: string, field: string): void {
    if (!this.findRow(org, name)) {
      throw invalidArgument([{ field, description: `label "${name}" does not exist; create it first (CreateClusterLabel)` }]);
    }
  }

  list(org: string, page: PageRequest): Page<ClusterLabel> {
    const rows = this.db
      .prepare("SELECT * FROM cluster_labels WHERE org = ? AND name > ? ORDER BY name LIMIT ?")
      .all(org, page.after?.[0] ?? "", page.size + 1) as LabelRow[];
    return {
      items: rows.slice(0, page.size).map((row) => toLabel(row, this.members(org, row.name))),
      hasMore: rows.length > page.size,
    };
  }

  /** Every label of every organization, for the routing index. */
  all(): ClusterLabel[] {
    const rows = this.db.prepare("SELECT * FROM cluster_labels ORDER BY org, name").all() as LabelRow[];
    return rows.map((row) => toLabel(row, this.members(row.org, row.name)));
  }

  update(org: string, name: string, members: readonly LabelMember[], etag: string): ClusterLabel {
    return this.changes.write(() => {
      const current = this.get(org, name);
      checkEtag("label", name, etag, current.etag);
      this.db
        .prepare("UPDATE cluster_labels SET update_time = ?, version = version + 1 WHERE org = ? AND name = ?")
        .run(nextUpdateTime(current), org, name);
      this.writeMembers(org, name, members);
      this.changes.record({ kind: "label", org, name });
      return this.get(org, name);
    });
  }

  delete(org: string, name: string): void {
    this.changes.write(() => {
      this.get(org, name);
      const uses = this.usesOf(org, name);
      if (uses.length) throw failedPrecondition(`label "${name}" is still used: ${uses.join("; ")}`);
      this.db.prepare("DELETE FROM cluster_labels WHERE org = ? AND name = ?").run(org, name);
      this.changes.record({ kind: "label", org, name });
    });
  }

  getDefault(org: string): string {
    return (this.db.prepare("SELECT label FROM default_cluster_labels WHERE org = ?").pluck().get(org) as string | undefined) ?? "";
  }

  /** The default label with the change-log revision that set it, or undefined when none is set. */
  defaultEntry(org: string): { org: string; label: string; revision: number } | undefined {
    const row = this.db.prepare("SELECT label, revision FROM default_cluster_labels WHERE org = ?").get(org) as
      | { label: string; revision: number }
      | undefined;
    return row && { org, ...row };
  }

  /** Every organization's default label, for the routing index. */
  allDefaults(): Map<string, string> {
    const rows = this.db.prepare("SELECT org, label FROM default_cluster_labels").all() as { org: string; label: string }[];
    return new Map(rows.map((row) => [row.org, row.label]));
  }

  /** Sets the default label, or clears it when `label` is empty; `field` names it in errors. */
  setDefault(org: string, label: string, field: string): string {
    this.changes.write(() => {
      if (label === "") {
        this.db.prepare("DELETE FROM default_cluster_labels WHERE org = ?").run(org);
      } else {
        this.requireExisting(org, label, field);
        this.db
          .prepare("INSERT INTO default_cluster_labels (org, label) VALUES (?, ?) ON CONFLICT (org) DO UPDATE SET label = excluded.label")
          .run(org, label);
      }
      this.changes.record({ kind: "default-label", org });
    });
    return label;
  }

  /** Names of the labels that route to `cluster`, for refusing to delete it. */
  labelsNaming(org: string, cluster: string): string[] {
    return this.db
      .prepare("SELECT label FROM cluster_label_members WHERE org = ? AND cluster = ? ORDER BY label")
      .pluck()
      .all(org, cluster) as string[];
  }

  private usesOf(org: string, name: string): string[] {
    const uses: string[] = [];
    if (this.getDefault(org) === name) uses.push("it is the default label (SetDefaultClusterLabel with another label, or empty, first)");
    const scopes = this.db
      .prepare(
        `SELECT project, domain, workflow, launch_plan FROM execution_cluster_labels
         WHERE org = ? AND value = ? ORDER BY project, domain, workflow, launch_plan LIMIT 11`,
      )
      .all(org, name) as { project: string; domain: string; workflow: string; launch_plan: string }[];
    if (scopes.length) {
      const described = scopes.slice(0, 10).map((s) => [s.project, s.domain, s.workflow || s.launch_plan].filter(Boolean).join("/"));
      const more = scopes.length > 10 ? " and more" : "";
      uses.push(`it is assigned to ${listInWords(described)}${more} (DeleteExecutionClusterLabel there first)`);
    }
    return uses;
  }

  private writeMembers(org: string, label: string, members: readonly LabelMember[]): void {
    this.db.prepare("DELETE FROM cluster_label_members WHERE org = ? AND label = ?").run(org, label);
    const missing = this.db
      .prepare(
        `SELECT value FROM json_each(?) WHERE value NOT IN (SELECT name FROM clusters WHERE org = ?)`,
      )
      .pluck()
      .all(JSON.stringify(members.map((m) => m.cluster)), org) as string[];
    if (missing.length) {
      throw failedPrecondition(`cluster(s) ${listInWords(missing)} are not registered; a label may only name registered clusters (CreateCluster first)`);
    }
    const insert = this.db.prepare(
      "INSERT INTO cluster_label_members (org, label, cluster, weight, position) VALUES (?, ?, ?, ?, ?)",
    );
    members.forEach((member, position) => insert.run(org, label, member.cluster, member.weight, position));
  }

  private members(org: string, label: string): LabelMember[] {
    return this.db
      .prepare("SELECT cluster, weight FROM cluster_label_members WHERE org = ? AND label = ? ORDER BY position")
      .all(org, label) as LabelMember[];
  }

  private findRow(org: string, name: string): LabelRow | undefined {
    return this.db.prepare("SELECT * FROM cluster_labels WHERE org = ? AND name = ?").get(org, name) as LabelRow | undefined;
  }
}

function toLabel(row: LabelRow, clusters: LabelMember[]): ClusterLabel {
  return {
    org: row.org,
    name: row.name,
    clusters,
    createTime: new Date(row.create_time),
    updateTime: new Date(row.update_time),
    etag: makeEtag(row.version, row.update_time),
    revision: row.revision,
  };
}
