/**
 * Who may call what. A caller has one role; every procedure has one kind, derived from the
 * contract (methods marked `idempotency_level = NO_SIDE_EFFECTS` are reads; SelectCluster is the
 * routing call; everything else writes).
 */

export const ROLES = ["admin", "viewer", "router"] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === "string" && (ROLES as readonly string[]).includes(value);
}

/**
 * - `open`: anyone, even without credentials (grpc.health.v1, so probes and balancers work);
 * - `discovery`: any authenticated caller (server reflection);
 * - `read`: Get/List and sync status;
 * - `route`: SelectCluster;
 * - `write`: everything that changes state.
 */
export type ProcedureKind = "open" | "discovery" | "read" | "route" | "write";

export interface ProcedureFacts {
  /** Fully-qualified service name, e.g. `clusterplane.v1.ClusterService`. */
  service: string;
  /** Method name as in the proto, e.g. `GetCluster`. */
  method: string;
  /** The method is declared `idempotency_level = NO_SIDE_EFFECTS`. */
  sideEffectFree: boolean;
}

const OPEN_SERVICES = new Set(["grpc.health.v1.Health"]);
const DISCOVERY_SERVICES = new Set(["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]);
const ROUTING_METHODS = new Set(["clusterplane.v1.ExecutionClusterLabelService/SelectCluster"]);

export function procedureKind(procedure: ProcedureFacts): ProcedureKind {
  if (OPEN_SERVICES.has(procedure.service)) return "open";
  if (DISCOVERY_SERVICES.has(procedure.service)) return "discovery";
  if (ROUTING_METHODS.has(`${procedure.service}/${procedure.method}`)) return "route";
  return procedure.sideEffectFree ? "read" : "write";
}

const GRANTS: Record<Role, ReadonlySet<ProcedureKind>> = {
  admin: new Set(["open", "discovery", "read", "route", "write"]),
  viewer: new Set(["open", "discovery", "read"]),
  router: new Set(["open", "discovery", "read", "route"]),
};

/** Whether `role` may call a procedure of `kind`. */
export function mayCall(role: Role, kind: ProcedureKind): boolean {
  return GRANTS[role].has(kind);
}

/** The roles allowed a kind, for messages ("needs role admin"). */
export function rolesAllowed(kind: ProcedureKind): Role[] {
  return ROLES.filter((role) => mayCall(role, kind));
}
