/** A YAML/JSON mapping (an object that is not an array or null). */
export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * A status code's name as gRPC spells it (PERMISSION_DENIED), from Connect's enum name
 * (PermissionDenied); Connect's Canceled is gRPC's CANCELLED.
 */
export function grpcStatusName(connectName: string): string {
  if (connectName === "Canceled") return "CANCELLED";
  return connectName.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}
