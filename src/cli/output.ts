import { toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { JsonValue } from "@bufbuild/protobuf";
import { Option } from "commander";
import { stringify as toYaml } from "yaml";

export type Format = "table" | "json" | "yaml";

export function outputOption(): Option {
  return new Option("-o, --output <format>", "output format").choices(["table", "json", "yaml"]).default("table");
}

/** A table column: its header and how to show one item in it. */
export interface Column<T> {
  header: string;
  cell(item: T): string;
}

/** One item's cells; empty ones show as "-" so columns never look shifted. */
function cellsOf<T>(columns: readonly Column<T>[], item: T): string[] {
  return columns.map((column) => column.cell(item) || "-");
}

/**
 * A table's layout: each column as wide as its header and the widest cell of `items`. Rows of
 * items that come later (a watch) keep these widths; a longer cell pushes the rest of its row.
 */
export interface TableLayout<T> {
  header: string;
  row(item: T): string;
}

export function tableLayout<T>(columns: readonly Column<T>[], items: readonly T[]): TableLayout<T> {
  const headers = columns.map((column) => column.header);
  const widths = headers.map((header) => header.length);
  for (const item of items) cellsOf(columns, item).forEach((cell, index) => (widths[index] = Math.max(widths[index]!, cell.length)));
  const line = (cells: string[]) => cells.map((cell, index) => cell.padEnd(widths[index]!)).join("   ").trimEnd();
  return { header: line(headers), row: (item) => line(cellsOf(columns, item)) };
}

/** Aligned columns for a person: the header, then a row per item. */
export function renderTable<T>(columns: readonly Column<T>[], items: readonly T[]): string {
  const layout = tableLayout(columns, items);
  return [layout.header, ...items.map((item) => layout.row(item))].join("\n") + "\n";
}

/** JSON or YAML of plain data, as `-o json` / `-o yaml` print it. */
export function serialize(format: "json" | "yaml", value: unknown): string {
  return format === "json" ? `${JSON.stringify(value, null, 2)}\n` : toYaml(value);
}

/** The protobuf JSON form (camelCase, enum names, RFC 3339 times): what -o json and -o yaml show. */
export function messageJson<S extends DescMessage>(schema: S, message: MessageShape<S>): JsonValue {
  return toJson(schema, message);
}

/** What to show for a list, and how. */
export interface Listing<S extends DescMessage> {
  schema: S;
  columns: readonly Column<MessageShape<S>>[];
  /** e.g. "cluster pools", for "No cluster pools." */
  plural: string;
}

/** A list: a table, or a JSON array / YAML sequence of the objects. */
export function printList<S extends DescMessage>(format: Format, listing: Listing<S>, items: readonly MessageShape<S>[], truncated = false): void {
  if (format !== "table") {
    process.stdout.write(serialize(format, items.map((item) => messageJson(listing.schema, item))));
  } else if (items.length === 0) {
    process.stderr.write(`No ${listing.plural}.\n`);
  } else {
    process.stdout.write(renderTable(listing.columns, items));
  }
  if (truncated) process.stderr.write(`(the first ${items.length} ${listing.plural}; more exist: raise --limit)\n`);
}

/** One object: a one-row table, or the object as JSON / YAML. */
export function printOne<S extends DescMessage>(format: Format, listing: Listing<S>, item: MessageShape<S>): void {
  if (format === "table") process.stdout.write(renderTable(listing.columns, [item]));
  else process.stdout.write(serialize(format, messageJson(listing.schema, item)));
}

/**
 * The outcome of a change: a sentence for a person (table format), else the resulting object so a
 * script can read what the server stored.
 */
export function printChanged<S extends DescMessage>(format: Format, schema: S, item: MessageShape<S> | undefined, sentence: string): void {
  if (format === "table" || item === undefined) process.stdout.write(`${sentence}\n`);
  else process.stdout.write(serialize(format, messageJson(schema, item)));
}
