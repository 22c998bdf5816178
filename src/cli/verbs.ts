import { clone, create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Command, Option } from "commander";
import type { Page, Session } from "./client.js";
import { collect } from "./client.js";
import { confirm } from "./confirm.js";
import { editLoop } from "./edit.js";
import { CliError } from "./exit.js";
import { manifestText, parseManifestText, readManifestFile, type ManifestCodec } from "./manifests.js";
import { outputOption, printChanged, printList, printOne, type Format } from "./output.js";
import { watchList, watchOption, type Watchable } from "./watch.js";

/** The verb commands nouns register under: `clusterplane <verb> <noun> …`, as in the seeds. */
export interface Verbs {
  create: Command;
  get: Command;
  update: Command;
  delete: Command;
  drain: Command;
  activate: Command;
  archive: Command;
  /** The connected session, opened on first use so `--help` and usage errors need no server. */
  session(): Session;
}

export type Lifecycle = "drain" | "activate" | "archive";

/** Field flags of create/update (`--endpoint`, `--cluster a=1`, …) for one noun. */
export interface FieldFlags<S extends DescMessage> {
  options(verb: "create" | "update"): Option[];
  /** Sets what the flags name on `item`; returns the fields set (the update mask). */
  apply(item: MessageShape<S>, flags: Record<string, unknown>): string[];
}

/** A noun whose objects are named (or, for projects, have an id): pools, clusters, queues, labels, projects. */
export interface NamedResource<S extends DescMessage> extends Watchable<S> {
  noun: string;
  keyField: "name" | "id";
  codec: ManifestCodec<S>;
  flags: FieldFlags<S>;
  listOptions?: Option[];
  get(session: Session, key: string): Promise<MessageShape<S>>;
  list(session: Session, filters: Record<string, unknown>, pageSize: number, pageToken: string): Promise<Page<MessageShape<S>>>;
  create(session: Session, item: MessageShape<S>): Promise<MessageShape<S>>;
  /** `fields` are the fields to change; every updatable one for a whole manifest. */
  update(session: Session, item: MessageShape<S>, fields: string[] | "all"): Promise<MessageShape<S>>;
  remove?(session: Session, key: string): Promise<void>;
  lifecycle: Partial<Record<Lifecycle, { past: string; call(session: Session, key: string): Promise<MessageShape<S>> }>>;
  /** More about one object, shown under its row by `get NOUN NAME` (a cluster's conditions). */
  details?(item: MessageShape<S>): string;
}

type Flags = Record<string, unknown>;

export function fileOptions(): Option[] {
  return [
    new Option("-f, --file <path>", "manifest YAML file (- for stdin)"),
    new Option("--attrFile <path>", "same as --file (flytectl's name)"),
  ];
}

export function editOption(): Option {
  return new Option("--edit", "open $EDITOR on a template (create) or the current object (update)");
}

export function yesOption(what: string): Option {
  return new Option("-y, --yes", `${what} without asking`);
}

/** The manifest path from --file or its flytectl alias --attrFile. */
export function manifestPath(flags: Flags): string | undefined {
  const { file, attrFile } = flags as { file?: string; attrFile?: string };
  if (file !== undefined && attrFile !== undefined && file !== attrFile) {
    throw new CliError("--file and --attrFile name the same thing; give one");
  }
  return file ?? attrFile;
}

export function listOptions(): Option[] {
  return [
    new Option("--limit <n>", "show at most n items (pages through the list)").argParser(positiveInteger("--limit")),
    // Only the page size of each request; tests use it to walk several pages.
    new Option("--page-size <n>").argParser(positiveInteger("--page-size")).hideHelp(),
  ];
}

export function positiveInteger(flag: string): (value: string) => number {
  return (value) => {
    const number = Number(value);
    if (!Number.isInteger(number) || number < 1) throw new CliError(`${flag} "${value}" must be a whole number of at least 1`);
    return number;
  };
}

/** Collects an option given once per item (`--cluster a=1 --cluster b=0.5`). */
export function repeatable(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `NAME=VALUE`, as `--cluster dataplane_1=1` and `--cluster-endpoint dataplane_1=https://…` take it. */
export function splitPair(value: string, flag: string, example: string): [string, string] {
  const match = /^([^=]+)=(.+)$/.exec(value);
  if (!match) throw new CliError(`${flag} "${value}" must be NAME=VALUE, for example ${example}`);
  return [match[1]!, match[2]!];
}

function addOptions(command: Command, options: readonly Option[]): Command {
  for (const option of options) command.addOption(option);
  return command;
}

/**
 * Registers a named noun under every verb it supports. The patterns are the same for every noun;
 * what differs (RPCs, columns, manifest, field flags) comes from the resource.
 */
export function registerNamedResource<S extends DescMessage>(verbs: Verbs, resource: NamedResource<S>): void {
  const { noun, keyField, codec } = resource;
  const keyArg = keyField === "id" ? "id" : "name";
  const named = (key: string) => `${noun} "${key}"`;
  type Item = MessageShape<S>;
  const keyOf = (item: Item) => String((item as Record<string, unknown>)[keyField] ?? "");

  /** The key on the command line and in the manifest must agree; either may supply it. */
  const settle = (item: Item, key: string | undefined, source: string): Item => {
    const record = item as Record<string, unknown>;
    const inManifest = keyOf(item);
    if (key && inManifest && key !== inManifest) {
      throw new CliError(`${source} names ${noun} "${inManifest}" but the command names "${key}"`);
    }
    if (!key && !inManifest) throw new CliError(`which ${noun}? give its ${keyArg} on the command line or as \`${keyField}:\` in the manifest`);
    record[keyField] = key || inManifest;
    if (!record.org) record.org = verbs.session().org;
    return item;
  };
  const fromText = (text: string, key: string | undefined, source: string) =>
    settle(codec.fromManifest(parseManifestText(text, source), source), key, source);
  const fromFile = (path: string, key: string | undefined) => {
    const source = path === "-" ? "stdin" : path;
    return settle(codec.fromManifest(readManifestFile(path), source), key, source);
  };
  const canonical = (item: Item) => manifestText(codec, item);
  const format = (flags: Flags) => flags.output as Format;

  addOptions(
    verbs.create
      .command(`${noun} [${keyArg}]`)
      .description(`create a ${noun} from flags, --file or --edit`),
    [...resource.flags.options("create"), ...fileOptions(), editOption(), yesOption("create after --edit"), outputOption()],
  ).action(async (key: string | undefined, flags: Flags) => {
    const session = verbs.session();
    const path = manifestPath(flags);
    if (flags.edit) {
      if (path) throw new CliError("--edit and --file both give the manifest; use one");
      const created = await editLoop({
        fileName: `${noun}-${key ?? "new"}.yaml`,
        action: `create ${noun}${key ? ` ${key}` : ""}`,
        text: codec.template(key ?? ""),
        before: "",
        parse: (text) => fromText(text, key, "the edited manifest"),
        canonical,
        apply: (item) => resource.create(session, item),
        yes: flags.yes as boolean | undefined,
      });
      printChanged(format(flags), resource.schema, created, created ? `${named(keyOf(created))} created` : "nothing to create");
      return;
    }
    const item = path ? fromFile(path, key) : settle(create(resource.schema) as Item, key, "the command line");
    resource.flags.apply(item, flags);
    const created = await resource.create(session, item);
    printChanged(format(flags), resource.schema, created, `${named(keyOf(created))} created`);
  });

  addOptions(
    verbs.get.command(`${noun} [${keyArg}]`).description(`show one ${noun}, or list them when no ${keyArg} is given`),
    [...(resource.listOptions ?? []), ...listOptions(), watchOption(), outputOption()],
  ).action(async (key: string | undefined, flags: Flags) => {
    const session = verbs.session();
    if (flags.watch) {
      await watchList(session, resource, format(flags), key ? (item) => keyOf(item) === key : undefined, flags);
      return;
    }
    if (key) {
      const item = await resource.get(session, key);
      printOne(format(flags), resource, item);
      if (format(flags) === "table" && resource.details) process.stdout.write(resource.details(item));
      return;
    }
    const { items, truncated } = await collect(
      (pageSize, pageToken) => resource.list(session, flags, pageSize, pageToken),
      flags.limit as number | undefined,
      flags.pageSize as number | undefined,
    );
    printList(format(flags), resource, items, truncated);
  });

  addOptions(
    verbs.update
      .command(`${noun} [${keyArg}]`)
      .description(`change a ${noun}: field flags change only those fields; --file / --edit replace it`),
    [...resource.flags.options("update"), ...fileOptions(), editOption(), yesOption("apply the --edit change"), outputOption()],
  ).action(async (key: string | undefined, flags: Flags) => {
    const session = verbs.session();
    const path = manifestPath(flags);
    let updated: Item | undefined;
    if (flags.edit) {
      if (path) throw new CliError("--edit and --file both give the manifest; use one");
      if (!key) throw new CliError(`which ${noun}? update ${noun} ${keyArg.toUpperCase()} --edit`);
      const current = await resource.get(session, key);
      const before = canonical(current);
      updated = await editLoop({
        fileName: `${noun}-${key}.yaml`,
        action: `update ${noun} ${key}`,
        text: before,
        before,
        parse: (text) => {
          const item = fromText(text, key, "the edited manifest") as Item & { etag: string };
          // The etag of what was shown: a change made meanwhile by someone else is refused (ABORTED).
          item.etag ||= (current as Item & { etag: string }).etag;
          return item;
        },
        canonical,
        apply: (item) => resource.update(session, item, "all"),
        yes: flags.yes as boolean | undefined,
      });
      if (!updated) {
        process.stdout.write(`${named(key)}: no changes\n`);
        return;
      }
    } else if (path) {
      updated = await resource.update(session, fromFile(path, key), "all");
    } else {
      if (!key) throw new CliError(`which ${noun}? give its ${keyArg}, or --file / --edit`);
      const item = clone(resource.schema, await resource.get(session, key));
      const fields = resource.flags.apply(item, flags);
      if (fields.length === 0) throw new CliError(`nothing to change: give field flags (see --help), --file or --edit`);
      updated = await resource.update(session, item, fields);
    }
    printChanged(format(flags), resource.schema, updated, `${named(keyOf(updated))} updated`);
  });

  if (resource.remove) {
    const remove = resource.remove;
    verbs.delete
      .command(`${noun} <${keyArg}>`)
      .description(`delete a ${noun} (asks first)`)
      .addOption(yesOption("delete"))
      .action(async (key: string, flags: Flags) => {
        const session = verbs.session();
        // Read it first: a typo fails as NOT_FOUND instead of prompting about nothing.
        await resource.get(session, key);
        await confirm(`Delete ${named(key)}?`, flags.yes as boolean | undefined);
        await remove(session, key);
        process.stdout.write(`${named(key)} deleted\n`);
      });
  }

  for (const [verb, step] of Object.entries(resource.lifecycle) as [Lifecycle, NonNullable<NamedResource<S>["lifecycle"][Lifecycle]>][]) {
    verbs[verb]
      .command(`${noun} <${keyArg}>`)
      .description(`${verb} a ${noun}`)
      .addOption(outputOption())
      .action(async (key: string, flags: Flags) => {
        const changed = await step.call(verbs.session(), key);
        printChanged(format(flags), resource.schema, changed, `${named(key)} ${step.past}`);
      });
  }
}
