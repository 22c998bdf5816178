import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Option } from "commander";
import { ChangeOperation, ResourceKind, type ResourceChange } from "../../gen/clusterplane/v1/watch_pb.js";
import type { Session } from "./client.js";
import { messageJson, renderTable, serialize, type Format, type Listing } from "./output.js";

export function watchOption(): Option {
  return new Option("-w, --watch", "after the list, print a line for every change as it happens (Ctrl-C ends)");
}

/** What `get NOUN --watch` follows: a kind of the Watch RPC and how to read its resource. */
export interface Watchable<S extends DescMessage> extends Listing<S> {
  kind: ResourceKind;
  /** The resource of a change of this kind. */
  resourceOf(change: ResourceChange): MessageShape<S> | undefined;
  /**
   * Another kind whose changes alter what the rows show (a cluster's sync status changes its
   * READY and PROVISIONED columns), and how to read the object again when one comes.
   */
  related?: { kind: ResourceKind; refetch(session: Session, change: ResourceChange): Promise<MessageShape<S> | undefined> };
}

/**
 * `kubectl get -w` for our nouns: the list as the Watch snapshot has it, then a row per change.
 * With `-o json`, every event is one line of JSON (`{"type":"PUT","revision":"12","object":{…}}`,
 * `SNAPSHOT_COMPLETE` after the list), for scripts that read line by line; `-o yaml` prints the
 * same events as YAML documents.
 */
export async function watchList<S extends DescMessage>(
  session: Session,
  watchable: Watchable<S>,
  format: Format,
  matches: (item: MessageShape<S>) => boolean = () => true,
): Promise<void> {
  const snapshot: MessageShape<S>[] = [];
  let widths: number[] | null = null;
  let listed = false;
  const kinds = watchable.related ? [watchable.kind, watchable.related.kind] : [watchable.kind];
  const stream = session.api.watch.watch({ org: session.org, kinds }, { timeoutMs: 0 });
  for await (const { event } of stream) {
    if (event.case === "snapshotComplete") {
      listed = true;
      if (format === "table") widths = printSnapshot(watchable, snapshot);
      else printEvent(format, { type: "SNAPSHOT_COMPLETE", revision: String(event.value.revision) });
      continue;
    }
    if (event.case !== "change") continue;
    const related = event.value.kind !== watchable.kind;
    // In the snapshot the objects themselves already show their related state.
    if (related && !listed) continue;
    const item = related ? await watchable.related!.refetch(session, event.value) : watchable.resourceOf(event.value);
    if (!item || !matches(item)) continue;
    const deleted = !related && event.value.operation === ChangeOperation.DELETE;
    if (format !== "table") {
      printEvent(format, { type: deleted ? "DELETE" : "PUT", revision: String(event.value.revision), object: messageJson(watchable.schema, item) });
    } else if (widths === null) {
      snapshot.push(item);
    } else {
      process.stdout.write(row(watchable, item, widths, deleted));
    }
  }
  process.stderr.write("the server ended the watch (it is shutting down?); run the command again to resume\n");
}

function printEvent(format: "json" | "yaml", event: object): void {
  process.stdout.write(format === "json" ? `${JSON.stringify(event)}\n` : `---\n${serialize("yaml", event)}`);
}

/** The list as a table; returns the column widths later rows keep. */
function printSnapshot<S extends DescMessage>(watchable: Watchable<S>, items: MessageShape<S>[]): number[] {
  const table = renderTable(watchable.columns, items);
  if (items.length === 0) process.stderr.write(`No ${watchable.plural} yet; watching.\n`);
  else process.stdout.write(table);
  const header = table.split("\n")[0]!;
  // Each column is as wide as the header shows it (the last one takes what it needs).
  const starts = watchable.columns.map((column) => header.indexOf(column.header));
  return starts.map((start, index) => (index + 1 < starts.length ? starts[index + 1]! - start - 3 : 0));
}

function row<S extends DescMessage>(watchable: Watchable<S>, item: MessageShape<S>, widths: number[], deleted: boolean): string {
  const cells = watchable.columns.map((column, index) => (column.cell(item) || "-").padEnd(widths[index]!));
  return `${cells.join("   ").trimEnd()}${deleted ? "   (deleted)" : ""}\n`;
}
