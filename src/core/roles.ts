/**
 * Who may call what. A caller has one role; every procedure has one kind, derived from the
 * contract (methods marked `idempotency_level = NO_SIDE_EFFECTS` are reads; SelectCluster is the
 * routing call; everything else writes).
 */

/** The roles an operator grants (tokens file, client certificates). */
export const ROLES = ["admin", "viewer", "router"] as const;
/**
 * `agent` is never granted by an operator: it is the role of a pull-mode agent's credential,
 * issued by JoinCluster and bound to one cluster.
 */
export type Role = (typeof ROLES)[number] | "agent";

export function isRole(value: unknown): value is (typeof ROLES)[number] {
  return typeof value === "string" && (ROLES as readonly string[]).includes(value);
}

/**
 * - `open`: anyone, even without credentials (grpc.health.v1, so probes and balancers work);
 * - `discovery`: any authenticated caller (server reflection);
 * - `read`: Get/List and sync status;
 * - `route`: SelectCluster;
 * - `write`: everything that changes state;
 * - `agent`: AgentService but JoinCluster (the handler then checks the agent credential itself).
 */
export type ProcedureKind = "open" | "discovery" | "read" | "route" | "write" | "agent";

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
const AGENT_SERVICE = "clusterplane.v1.AgentService";
/** A join token in the request is the credential: the agent has nothing else yet. */
const JOIN_METHOD = `${AGENT_SERVICE}/JoinCluster`;

export function procedureKind(procedure: ProcedureFacts): ProcedureKind {
  if (OPEN_SERVICES.has(procedure.service) || `${procedure.service}/${procedure.method}` === JOIN_METHOD) return "open";
  if (procedure.service === AGENT_SERVICE) return "agent";
  if (DISCOVERY_SERVICES.has(procedure.service)) return "discovery";
  if (ROUTING_METHODS.has(`${procedure.service}/${procedure.method}`)) return "route";
  return procedure.sideEffectFree ? "read" : "write";
}

const GRANTS: Record<Role, ReadonlySet<ProcedureKind>> = {
  // Admins pass the gate to AgentService (with auth off everyone is an admin), and are then asked
  // for an agent credential by the service itself.
  admin: new Set(["open", "discovery", "read", "route", "write", "agent"]),
  viewer: new Set(["open", "discovery", "read"]),
  router: new Set(["open", "discovery", "read", "route"]),
  agent: new Set(["open", "agent"]),
};

/** Whether `role` may call a procedure of `kind`. */
export function mayCall(role: Role, kind: ProcedureKind): boolean {
  return GRANTS[role].has(kind);
}

/** The roles allowed a kind, for messages ("needs role admin"). */
export function rolesAllowed(kind: ProcedureKind): Role[] {
  return [...ROLES, "agent" as const].filter((role) => mayCall(role, kind));
}
