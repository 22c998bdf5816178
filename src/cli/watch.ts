import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Option } from "commander";
import { ChangeOperation, ResourceKind, type ResourceChange } from "../../gen/clusterplane/v1/watch_pb.js";
import type { Session } from "./client.js";
import { messageJson, renderTable, serialize, tableLayout, type Format, type Listing, type TableLayout } from "./output.js";

export function watchOption(): Option {
  return new Option("-w, --watch", "after the list, print a line for every change as it happens (Ctrl-C ends)");
}

/** What `get NOUN --watch` follows: a kind of the Watch RPC and how to read its resource. */
export interface Watchable<S extends DescMessage> extends Listing<S> {
  kind: ResourceKind;
  /** `get`'s filter flags (`--pool`, `--state`), each named as the field it filters on. */
  listOptions?: readonly Option[];
  /** The resource of a change of this kind. */
  resourceOf(change: ResourceChange): MessageShape<S> | undefined;
  /**
   * Another kind whose changes alter what the rows show (a cluster's sync status changes its
   * READY and PROVISIONED columns), and how to read the object again when one comes.
   */
  related?: { kind: ResourceKind; refetch(session: Session, change: ResourceChange): Promise<MessageShape<S> | undefined> };
}

/**
 * What `get`'s list flags keep: each one given (`--pool prod`, `--state drained`) names the field
 * of the object it must equal, as the List RPCs filter. Flags of `get` that are not filters
 * (`--limit`, `--output`…) are not among `listOptions`.
 */
export function listFilter<S extends DescMessage>(watchable: Watchable<S>, flags: Record<string, unknown>): (item: MessageShape<S>) => boolean {
  const wanted: [string, unknown][] = [];
  for (const option of watchable.listOptions ?? []) {
    const field = option.attributeName();
    if (flags[field] === undefined) continue;
    if (!watchable.schema.fields.some((candidate) => candidate.localName === field)) {
      throw new Error(`${option.long} filters ${watchable.plural}, but they have no field "${field}" to watch it by`);
    }
    wanted.push([field, flags[field]]);
  }
  return (item) => wanted.every(([field, value]) => (item as Record<string, unknown>)[field] === value);
}

/**
 * `kubectl get -w` for our nouns: the list as the Watch snapshot has it, then a row per change.
 * With `-o json`, every event is one line of JSON (`{"type":"PUT","revision":"12","object":{…}}`,
 * `SNAPSHOT_COMPLETE` after the list), for scripts that read line by line; `-o yaml` prints the
 * same events as YAML documents.
 *
 * Only objects that `matches` and `get`'s list flags in `flags` keep are shown. One shown that
 * stops matching (a cluster drained while watching `--state active`) leaves as a deleted one does,
 * as a Kubernetes watch with a selector has it: a `DELETE` event, or in a table its row once more,
 * marked `(no longer matches)` instead of `(deleted)`. If it matches again, it comes back as a PUT.
 */
export async function watchList<S extends DescMessage>(
  session: Session,
  watchable: Watchable<S>,
  format: Format,
  matches: (item: MessageShape<S>) => boolean = () => true,
  flags: Record<string, unknown> = {},
): Promise<void> {
  const filter = listFilter(watchable, flags);
  const kept = (item: MessageShape<S>) => matches(item) && filter(item);
  /** What the snapshot has, by name, until it is complete (a table is laid out from all of it). */
  const snapshot = new Map<string, MessageShape<S>>();
  /** Names of the objects shown and not since gone. */
  const shown = new Set<string>();
  /** The table's columns: laid out from the list, or from the first row if the list was empty. */
  let layout: TableLayout<MessageShape<S>> | null = null;
  let listed = false;
  const kinds = watchable.related ? [watchable.kind, watchable.related.kind] : [watchable.kind];
  const stream = session.api.watch.watch({ org: session.org, kinds }, { timeoutMs: 0 });
  for await (const { event } of stream) {
    if (event.case === "snapshotComplete") {
      listed = true;
      if (format !== "table") {
        printEvent(format, { type: "SNAPSHOT_COMPLETE", revision: String(event.value.revision) });
        continue;
      }
      const items = [...snapshot.values()];
      if (items.length === 0) {
        process.stderr.write(`No ${watchable.plural} yet; watching.\n`);
      } else {
        layout = tableLayout(watchable.columns, items);
        process.stdout.write(renderTable(watchable.columns, items));
      }
      continue;
    }
    if (event.case !== "change") continue;
    const change = event.value;
    const related = change.kind !== watchable.kind;
    // In the snapshot the objects themselves already show their related state.
    if (related && !listed) continue;
    const item = related ? await watchable.related!.refetch(session, change) : watchable.resourceOf(change);
    if (!item) continue;
    const deleted = !related && change.operation === ChangeOperation.DELETE;
    let gone: Gone | undefined;
    if (deleted || !kept(item)) {
      if (!shown.delete(change.name)) continue;
      gone = deleted ? "deleted" : "no longer matches";
    } else {
      shown.add(change.name);
    }
    if (format !== "table") {
      printEvent(format, { type: gone ? "DELETE" : "PUT", revision: String(change.revision), object: messageJson(watchable.schema, item) });
    } else if (!listed) {
      if (gone) snapshot.delete(change.name);
      else snapshot.set(change.name, item);
    } else {
      if (layout === null) {
        layout = tableLayout(watchable.columns, [item]);
        process.stdout.write(`${layout.header}\n`);
      }
      process.stdout.write(`${layout.row(item)}${gone ? `   (${gone})` : ""}\n`);
    }
  }
  process.stderr.write("the server ended the watch (it is shutting down?); run the command again to resume\n");
}

type Gone = "deleted" | "no longer matches";

function printEvent(format: "json" | "yaml", event: object): void {
  process.stdout.write(format === "json" ? `${JSON.stringify(event)}\n` : `---\n${serialize("yaml", event)}`);
}
