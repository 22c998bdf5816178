import { create } from "@bufbuild/protobuf";
import { Command, Option } from "commander";
import {
  ExecutionClusterLabelSchema,
  ExecutionClusterLabelScopeSchema,
  GetExecutionClusterLabelResponseSchema,
  SelectClusterResponseSchema,
  type ExecutionClusterLabel,
  type GetExecutionClusterLabelResponse,
  type SelectClusterRequest,
} from "../../gen/clusterplane/v1/execution_cluster_label_pb.js";
import { collect, type Session } from "./client.js";
import { confirm } from "./confirm.js";
import { editLoop } from "./edit.js";
import { CliError } from "./exit.js";
import { executionClusterLabelManifest as codec, manifestText, parseManifestText, readManifestFile } from "./manifests.js";
import { messageJson, outputOption, printChanged, printList, renderTable, serialize, type Column, type Format } from "./output.js";
import { editOption, fileOptions, listOptions, manifestPath, yesOption, type Verbs } from "./verbs.js";
import { watchList, watchOption, type Watchable } from "./watch.js";
import { ResourceKind } from "../../gen/clusterplane/v1/watch_pb.js";

const NOUN = "execution-cluster-label";
type Flags = Record<string, unknown>;
type Scope = Pick<ExecutionClusterLabel, "org" | "project" | "domain" | "workflow" | "launchPlan">;

const SCOPE_FIELDS = [
  ["project", "project"],
  ["domain", "domain"],
  ["workflow", "workflow"],
  ["launchPlan", "launch_plan"],
] as const;

/** flytectl's scope flags: -p project, -d domain, the workflow as an argument, plus a launch plan. */
function scopeOptions(): Option[] {
  return [
    new Option("-p, --project <project>", "project id"),
    new Option("-d, --domain <domain>", "domain, e.g. development"),
    new Option("--launch-plan <name>", "launch plan (instead of a workflow)"),
  ];
}

function scopeFromFlags(workflow: string | undefined, flags: Flags): Partial<Record<(typeof SCOPE_FIELDS)[number][0], string>> {
  return {
    project: flags.project as string | undefined,
    domain: flags.domain as string | undefined,
    workflow,
    launchPlan: flags.launchPlan as string | undefined,
  };
}

/**
 * The attrFile gives the scope, and the flags may repeat it (flytectl's `-p project1 -d development
 * workflow --attrFile workflow-ecl.yaml`); a flag that contradicts the file is a mistake, not an override.
 */
function withFlags(assignment: ExecutionClusterLabel, workflow: string | undefined, flags: Flags, source: string, session: Session): ExecutionClusterLabel {
  const given = scopeFromFlags(workflow, flags);
  for (const [field, yamlKey] of SCOPE_FIELDS) {
    const flag = given[field];
    if (flag === undefined) continue;
    if (assignment[field] !== "" && assignment[field] !== flag) {
      throw new CliError(`${source} has ${yamlKey}: ${assignment[field]} but the command line says ${flag}`);
    }
    assignment[field] = flag;
  }
  if (typeof flags.value === "string") {
    if (assignment.value !== "" && assignment.value !== flags.value) throw new CliError(`${source} has value: ${assignment.value} but --value says ${flags.value}`);
    assignment.value = flags.value;
  }
  assignment.org ||= session.org;
  return assignment;
}

/** Just the scope fields: the request of Get/DeleteExecutionClusterLabel. */
function keyOf({ org, project, domain, workflow, launchPlan }: Scope): Scope {
  return { org, project, domain, workflow, launchPlan };
}

function describeScope(scope: Scope): string {
  const parts = [`project ${scope.project}`];
  if (scope.domain) parts.push(`domain ${scope.domain}`);
  if (scope.workflow) parts.push(`workflow ${scope.workflow}`);
  if (scope.launchPlan) parts.push(`launch plan ${scope.launchPlan}`);
  return parts.join(", ");
}

const columns: Column<ExecutionClusterLabel>[] = [
  { header: "PROJECT", cell: (row) => row.project },
  { header: "DOMAIN", cell: (row) => row.domain },
  { header: "WORKFLOW", cell: (row) => row.workflow },
  { header: "LAUNCH PLAN", cell: (row) => row.launchPlan },
  { header: "VALUE", cell: (row) => row.value },
];

/** What lists and `get … --watch` show of assignments. */
const watchable: Watchable<typeof ExecutionClusterLabelSchema> = {
  schema: ExecutionClusterLabelSchema,
  columns,
  plural: "execution cluster labels",
  kind: ResourceKind.EXECUTION_CLUSTER_LABEL,
  resourceOf: (change) => (change.resource.case === "executionClusterLabel" ? change.resource.value : undefined),
};

const scopeColumns: Column<{ scope: Scope; answer: GetExecutionClusterLabelResponse }>[] = [
  ...columns.slice(0, 4).map((column) => ({ header: column.header, cell: ({ scope }: { scope: Scope }) => column.cell(scope as ExecutionClusterLabel) })),
  { header: "VALUE", cell: ({ answer }) => answer.executionClusterLabel?.value ?? "" },
  { header: "EFFECTIVE", cell: ({ answer }) => answer.effectiveValue },
  {
    header: "FROM",
    cell: ({ answer }) => ExecutionClusterLabelScopeSchema.values.find((v) => v.number === answer.effectiveScope && v.number !== 0)?.localName.toLowerCase() ?? "",
  },
];

function requireProject(scope: Scope, verb: string): void {
  if (!scope.project) throw new CliError(`which scope? ${verb} ${NOUN} -p PROJECT [-d DOMAIN] [WORKFLOW], or --attrFile FILE`);
}

export function registerExecutionClusterLabels(verbs: Verbs): void {
  const format = (flags: Flags) => flags.output as Format;

  const update = verbs.update
    .command(`${NOUN} [workflow]`)
    .description("assign a label to a project, project-domain, workflow or launch plan (replaces what is there)");
  for (const option of [...scopeOptions(), new Option("--value <label>", "the label to assign"), ...fileOptions(), editOption(), yesOption("apply the --edit change"), outputOption()]) {
    update.addOption(option);
  }
  update.action(async (workflow: string | undefined, flags: Flags) => {
    const session = verbs.session();
    const path = manifestPath(flags);
    const parse = (raw: unknown, source: string) => withFlags(codec.fromManifest(raw, source), workflow, flags, source, session);
    let stored: ExecutionClusterLabel | undefined;
    const upsert = async (assignment: ExecutionClusterLabel) =>
      (await session.api.labels.updateExecutionClusterLabel({ executionClusterLabel: assignment })).executionClusterLabel!;
    if (flags.edit) {
      if (path) throw new CliError("--edit and --attrFile both give the assignment; use one");
      const scope = withFlags(create(ExecutionClusterLabelSchema), workflow, { ...flags, value: undefined }, "the command line", session);
      const current = scope.project ? (await session.api.labels.getExecutionClusterLabel(keyOf(scope))).executionClusterLabel : undefined;
      const before = current ? manifestText(codec, current) : "";
      stored = await editLoop({
        fileName: `${NOUN}.yaml`,
        action: `update ${NOUN}${scope.project ? ` for ${describeScope(scope)}` : ""}`,
        text: before || (scope.project ? manifestText(codec, { ...scope, value: "label1" } as ExecutionClusterLabel) : codec.template("")),
        before,
        parse: (text) => parse(parseManifestText(text, "the edited attrFile"), "the edited attrFile"),
        canonical: (assignment) => manifestText(codec, assignment),
        apply: upsert,
        yes: flags.yes as boolean | undefined,
      });
      if (!stored) {
        process.stdout.write(`${NOUN} for ${describeScope(scope)}: no changes\n`);
        return;
      }
    } else {
      const assignment = path ? parse(readManifestFile(path), path) : withFlags(create(ExecutionClusterLabelSchema), workflow, flags, "the command line", session);
      requireProject(assignment, "update");
      stored = await upsert(assignment);
    }
    printChanged(format(flags), ExecutionClusterLabelSchema, stored, `Updated ${NOUN} of ${describeScope(stored)}: ${stored.value}`);
  });

  const get = verbs.get
    .command(`${NOUN} [workflow]`)
    .description("list assignments; with -p and -d, show the one at that scope and the label in effect there");
  for (const option of [...scopeOptions(), ...listOptions(), watchOption(), outputOption()]) get.addOption(option);
  get.action(async (workflow: string | undefined, flags: Flags) => {
    const session = verbs.session();
    const scope = withFlags(create(ExecutionClusterLabelSchema), workflow, flags, "the command line", session);
    if (flags.watch) {
      const inScope = (item: ExecutionClusterLabel) =>
        (!scope.project || item.project === scope.project) && (!scope.domain || item.domain === scope.domain) &&
        (!scope.workflow || item.workflow === scope.workflow) && (!scope.launchPlan || item.launchPlan === scope.launchPlan);
      await watchList(session, watchable, format(flags), inScope);
      return;
    }
    if (scope.project && (scope.domain || scope.workflow || scope.launchPlan)) {
      const answer = await session.api.labels.getExecutionClusterLabel(keyOf(scope));
      const output = format(flags);
      if (output === "table") process.stdout.write(renderTable(scopeColumns, [{ scope, answer }]));
      else process.stdout.write(serialize(output, messageJson(GetExecutionClusterLabelResponseSchema, answer)));
      return;
    }
    const { items, truncated } = await collect(
      async (pageSize, pageToken) => {
        const page = await session.api.labels.listExecutionClusterLabels({ org: session.org, project: scope.project, domain: scope.domain, pageSize, pageToken });
        return { items: page.executionClusterLabels, nextPageToken: page.nextPageToken };
      },
      flags.limit as number | undefined,
      flags.pageSize as number | undefined,
    );
    printList(format(flags), watchable, items, truncated);
  });

  const remove = verbs.delete.command(`${NOUN} [workflow]`).description("remove the assignment at a scope (asks first)");
  for (const option of [...scopeOptions(), ...fileOptions(), yesOption("delete")]) remove.addOption(option);
  remove.action(async (workflow: string | undefined, flags: Flags) => {
    const session = verbs.session();
    const path = manifestPath(flags);
    const scope = path
      ? withFlags(codec.fromManifest(readManifestFile(path), path), workflow, flags, path, session)
      : withFlags(create(ExecutionClusterLabelSchema), workflow, flags, "the command line", session);
    requireProject(scope, "delete");
    await confirm(`Delete the ${NOUN} of ${describeScope(scope)}?`, flags.yes as boolean | undefined);
    await session.api.labels.deleteExecutionClusterLabel(keyOf(scope));
    process.stdout.write(`Deleted ${NOUN} of ${describeScope(scope)}\n`);
  });

  registerDefaultLabel(verbs);
}

/** flyteadmin's defaultExecutionLabel: the label used when no assignment matches. */
function registerDefaultLabel(verbs: Verbs): void {
  verbs.get
    .command("default-label")
    .description("show the label used when no execution cluster label matches")
    .addOption(outputOption())
    .action(async (flags: Flags) => {
      const { api, org } = verbs.session();
      const { label } = await api.labels.getDefaultClusterLabel({ org });
      const output = flags.output as Format;
      if (output === "table") process.stdout.write(label ? `${label}\n` : "(none)\n");
      else process.stdout.write(serialize(output, { label }));
    });

  verbs.update
    .command("default-label <label>")
    .description('set the default label ("" clears it)')
    .addOption(outputOption())
    .action(async (wanted: string, flags: Flags) => {
      const { api, org } = verbs.session();
      const { label } = await api.labels.setDefaultClusterLabel({ org, label: wanted });
      const output = flags.output as Format;
      if (output === "table") process.stdout.write(label ? `default label set to ${label}\n` : "default label cleared\n");
      else process.stdout.write(serialize(output, { label }));
    });
}

/**
 * `select-cluster`: where an execution would run and why, the question an execution engine asks
 * (the seed's `pyflyte run --project … --domain …`), for an operator checking the routing.
 */
export function registerSelectCluster(program: Command, verbs: Verbs): void {
  program
    .command("select-cluster [workflow]")
    .description("show which cluster an execution of this project, domain and workflow is routed to, and why")
    .addOption(new Option("-p, --project <project>", "project id").makeOptionMandatory())
    .addOption(new Option("-d, --domain <domain>", "domain, e.g. development").makeOptionMandatory())
    .addOption(new Option("--launch-plan <name>", "launch plan"))
    .addOption(new Option("--execution-id <id>", "execution id; the same id always gets the same answer (default: a random one)"))
    .addOption(new Option("--label <label>", "route by this label instead of the assignments").conflicts(["queue", "cluster"]))
    .addOption(new Option("--queue <queue>", "route through this queue").conflicts(["cluster"]))
    .addOption(new Option("--cluster <cluster>", "ask for exactly this cluster"))
    .addOption(outputOption())
    .action(async (workflow: string | undefined, flags: Flags) => {
      const { api, org } = verbs.session();
      const target: SelectClusterRequest["target"] = flags.label
        ? { case: "label", value: flags.label as string }
        : flags.queue
          ? { case: "queue", value: flags.queue as string }
          : flags.cluster
            ? { case: "cluster", value: flags.cluster as string }
            : { case: undefined };
      const executionId = (flags.executionId as string | undefined) ?? `cli-${crypto.randomUUID()}`;
      const answer = await api.labels.selectCluster({
        org,
        project: flags.project as string,
        domain: flags.domain as string,
        workflow: workflow ?? "",
        launchPlan: (flags.launchPlan as string | undefined) ?? "",
        executionId,
        target,
      });
      const output = flags.output as Format;
      if (output !== "table") {
        process.stdout.write(serialize(output, messageJson(SelectClusterResponseSchema, answer)));
        return;
      }
      const rows = [{ executionId, ...answer }];
      process.stdout.write(
        renderTable(
          [
            { header: "CLUSTER", cell: (row: (typeof rows)[number]) => row.cluster },
            { header: "POOL", cell: (row) => row.pool },
            { header: "ENDPOINT", cell: (row) => row.endpoint },
            { header: "LABEL", cell: (row) => row.label },
            { header: "REASON", cell: (row) => row.reason },
            { header: "EXECUTION ID", cell: (row) => row.executionId },
          ],
          rows,
        ),
      );
    });
}
