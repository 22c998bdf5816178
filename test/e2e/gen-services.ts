import { readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { DescMethod, DescService } from "@bufbuild/protobuf";

const GEN = fileURLToPath(new URL("../../gen", import.meta.url));

/** Every service generated into gen/, so a new one is covered without editing the tests. */
export async function servicesInGen(): Promise<DescService[]> {
  const services = new Map<string, DescService>();
  for (const file of generatedFiles(GEN)) {
    const module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    for (const value of Object.values(module)) {
      if (isService(value)) services.set(value.typeName, value);
    }
  }
  return [...services.values()].sort((a, b) => a.typeName.localeCompare(b.typeName));
}

export function methodsOf(services: readonly DescService[]): DescMethod[] {
  return services.flatMap((service) => service.methods);
}

/** `/package.Service/Method`, as every protocol addresses it. */
export function pathOf(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

export function isUnary(method: DescMethod): boolean {
  return method.methodKind === "unary";
}

function generatedFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return generatedFiles(path);
    return entry.name.endsWith("_pb.ts") ? [path] : [];
  });
}

function isService(value: unknown): value is DescService {
  return typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "service";
}
