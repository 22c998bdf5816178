import type { Selectable } from "kysely";
import type { ClusterLabel, LabelMember } from "../core/cluster-label.js";
import { alreadyExists, failedPrecondition, invalidArgument, listInWords, notFound } from "../core/errors.js";
import { checkEtag, makeEtag } from "../core/etag.js";
import type { PageRequest } from "../core/paging.js";
import type { ChangeLog } from "./changes.js";
import { nextUpdateTime, type Page } from "./rows.js";
import type { Tables } from "./schema.js";

type LabelRow = Selectable<Tables["cluster_labels"]>;

/** Cluster labels (`labelClusterMap`) and each organization's default label. */
export class ClusterLabelRepository {
  constructor(private readonly changes: ChangeLog) {}

  /** The current unit of work's transaction, or the shared handle. */
  private get db() {
    return this.changes.db;
  }

  create(org: string, name: string, members: readonly LabelMember[]): Promise<ClusterLabel> {
    return this.changes.write(async () => {
      if (await this.findRow(org, name)) throw alreadyExists(`label "${name}" already exists; use UpdateClusterLabel to change its clusters`);
      const now = Date.now();
      await this.db.insertInto("cluster_labels").values({ org, name, create_time: now, update_time: now, version: 1 }).execute();
      await this.writeMembers(org, name, members);
      await this.changes.record({ kind: "label", org, name });
      return this.get(org, name);
    });
  }

  async get(org: string, name: string): Promise<ClusterLabel> {
    const label = await this.find(org, name);
    if (!label) throw notFound(`label "${name}" does not exist; ListClusterLabels shows the labels there are`);
    return label;
  }

  async find(org: string, name: string): Promise<ClusterLabel | undefined> {
    const row = await this.findRow(org, name);
    return row && toLabel(row, await this.members(org, name));
  }

  /**
   * Throws INVALID_ARGUMENT naming `field` unless the label exists: a request that names a label
   * (an assignment, the default) is bad input when there is no such label.
   */
  async requireExisting(org: string, name: string, field: string): Promise<void> {
    if (!(await this.findRow(org, name))) {
      throw invalidArgument([{ field, description: `label "${name}" does not exist; create it first (CreateClusterLabel)` }]);
    }
  }

  async list(org: string, page: PageRequest): Promise<Page<ClusterLabel>> {
    const rows = await this.db
      .selectFrom("cluster_labels")
      .selectAll()
      .where("org", "=", org)
      .where("name", ">", page.after?.[0] ?? "")
      .orderBy("name")
      .limit(page.size + 1)
      .execute();
    const items: ClusterLabel[] = [];
    for (const row of rows.slice(0, page.size)) items.push(toLabel(row, await this.members(org, row.name)));
    return { items, hasMore: rows.length > page.size };
  }

  /** Every label of every organization, for the routing index. */
  async all(): Promise<ClusterLabel[]> {
    const rows = await this.db.selectFrom("cluster_labels").selectAll().orderBy("org").orderBy("name").execute();
    const labels: ClusterLabel[] = [];
    for (const row of rows) labels.push(toLabel(row, await this.members(row.org, row.name)));
    return labels;
  }

  update(org: string, name: string, members: readonly LabelMember[], etag: string): Promise<ClusterLabel> {
    return this.changes.write(async () => {
      const current = await this.get(org, name);
      checkEtag("label", name, etag, current.etag);
      await this.db
        .updateTable("cluster_labels")
        .set((eb) => ({ update_time: nextUpdateTime(current), version: eb("version", "+", 1) }))
        .where("org", "=", org)
        .where("name", "=", name)
        .execute();
      await this.writeMembers(org, name, members);
      await this.changes.record({ kind: "label", org, name });
      return this.get(org, name);
    });
  }

  delete(org: string, name: string): Promise<void> {
    return this.changes.write(async () => {
      await this.get(org, name);
      const uses = await this.usesOf(org, name);
      if (uses.length) throw failedPrecondition(`label "${name}" is still used: ${uses.join("; ")}`);
      await this.db.deleteFrom("cluster_labels").where("org", "=", org).where("name", "=", name).execute();
      await this.changes.record({ kind: "label", org, name });
    });
  }

  async getDefault(org: string): Promise<string> {
    const row = await this.db.selectFrom("default_cluster_labels").select("label").where("org", "=", org).executeTakeFirst();
    return row?.label ?? "";
  }

  /** The default label with the change-log revision that set it, or undefined when none is set. */
  async defaultEntry(org: string): Promise<{ org: string; label: string; revision: number } | undefined> {
    const row = await this.db.selectFrom("default_cluster_labels").select(["label", "revision"]).where("org", "=", org).executeTakeFirst();
    return row && { org, ...row };
  }

  /** Every organization's default label, for the routing index. */
  async allDefaults(): Promise<Map<string, string>> {
    const rows = await this.db.selectFrom("default_cluster_labels").select(["org", "label"]).execute();
    return new Map(rows.map((row) => [row.org, row.label]));
  }

  /** Sets the default label, or clears it when `label` is empty; `field` names it in errors. */
  async setDefault(org: string, label: string, field: string): Promise<string> {
    await this.changes.write(async () => {
      if (label === "") {
        await this.db.deleteFrom("default_cluster_labels").where("org", "=", org).execute();
      } else {
        await this.requireExisting(org, label, field);
        await this.db
          .insertInto("default_cluster_labels")
          .values({ org, label })
          .onConflict((conflict) => conflict.column("org").doUpdateSet((eb) => ({ label: eb.ref("excluded.label") })))
          .execute();
      }
      await this.changes.record({ kind: "default-label", org });
    });
    return label;
  }

  /** Names of the labels that route to `cluster`, for refusing to delete it. */
  async labelsNaming(org: string, cluster: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom("cluster_label_members")
      .select("label")
      .where("org", "=", org)
      .where("cluster", "=", cluster)
      .orderBy("label")
      .execute();
    return rows.map((row) => row.label);
  }

  private async usesOf(org: string, name: string): Promise<string[]> {
    const uses: string[] = [];
    if ((await this.getDefault(org)) === name) uses.push("it is the default label (SetDefaultClusterLabel with another label, or empty, first)");
    const scopes = await this.db
      .selectFrom("execution_cluster_labels")
      .select(["project", "domain", "workflow", "launch_plan"])
      .where("org", "=", org)
      .where("value", "=", name)
      .orderBy("project")
      .orderBy("domain")
      .orderBy("workflow")
      .orderBy("launch_plan")
      .limit(11)
      .execute();
    if (scopes.length) {
      const described = scopes.slice(0, 10).map((s) => [s.project, s.domain, s.workflow || s.launch_plan].filter(Boolean).join("/"));
      const more = scopes.length > 10 ? " and more" : "";
      uses.push(`it is assigned to ${listInWords(described)}${more} (DeleteExecutionClusterLabel there first)`);
    }
    return uses;
  }

  private async writeMembers(org: string, label: string, members: readonly LabelMember[]): Promise<void> {
    await this.db.deleteFrom("cluster_label_members").where("org", "=", org).where("label", "=", label).execute();
    const named = members.map((member) => member.cluster);
    const registered = named.length
      ? new Set((await this.db.selectFrom("clusters").select("name").where("org", "=", org).where("name", "in", named).execute()).map((row) => row.name))
      : new Set<string>();
    const missing = named.filter((cluster) => !registered.has(cluster));
    if (missing.length) {
      throw failedPrecondition(`cluster(s) ${listInWords(missing)} are not registered; a label may only name registered clusters (CreateCluster first)`);
    }
    if (members.length === 0) return;
    await this.db
      .insertInto("cluster_label_members")
      .values(members.map((member, position) => ({ org, label, cluster: member.cluster, weight: member.weight, position })))
      .execute();
  }

  private members(org: string, label: string): Promise<LabelMember[]> {
    return this.db
      .selectFrom("cluster_label_members")
      .select(["cluster", "weight"])
      .where("org", "=", org)
      .where("label", "=", label)
      .orderBy("position")
      .execute();
  }

  private findRow(org: string, name: string): Promise<LabelRow | undefined> {
    return this.db.selectFrom("cluster_labels").selectAll().where("org", "=", org).where("name", "=", name).executeTakeFirst();
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
