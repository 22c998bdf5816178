import { randomBytes } from "node:crypto";
import { renameSync, writeFileSync } from "node:fs";
import type { Interceptor } from "@connectrpc/connect";
import type { Role } from "../../src/core/roles.js";

export interface TestToken {
  token: string;
  role: Role;
  name: string;
}

/** A fresh random token for `name` with `role`. */
export function newToken(role: Role, name: string = `${role}-caller`): TestToken {
  return { token: randomBytes(24).toString("base64url"), role, name };
}

/** Writes a tokens file (atomically, as a mounted Secret changes) with a comment and a blank line. */
export function writeTokensFile(path: string, tokens: readonly TestToken[]): void {
  const lines = ["# clusterplane tokens: <token> <role> <name>", "", ...tokens.map((t) => `${t.token} ${t.role} ${t.name}`), ""];
  writeFileSync(`${path}.tmp`, lines.join("\n"), { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

/** Sends `Authorization: Bearer <token>` on every call of a Connect transport. */
export function bearer(token: string): Interceptor {
  return (next) => (request) => {
    request.header.set("Authorization", `Bearer ${token}`);
    return next(request);
  };
}
