import { computed, signal } from "@preact/signals";
import type { Identity } from "./api.js";

/** Who is signed in; null until known (or signed out). */
export const identity = signal<Identity | null>(null);
/** Admins act; viewers and routers see the console read-only (the server refuses them anyway). */
export const canAct = computed(() => identity.value?.role === "admin");
/** SelectCluster is a routing call: admins and routers. */
export const canRoute = computed(() => identity.value?.role === "admin" || identity.value?.role === "router");

/** The page: `#/`, `#/cluster/<name>`, `#/labels`, `#/pools`, `#/projects`. */
export const route = signal(parseRoute(window.location.hash));

export interface Route {
  page: "overview" | "cluster" | "labels" | "pools" | "projects";
  name: string;
}

export function parseRoute(hash: string): Route {
  const [, page = "", name = ""] = hash.replace(/^#/, "").split("/");
  switch (page) {
    case "cluster":
      return { page: "cluster", name: decodeURIComponent(name) };
    case "labels":
    case "pools":
    case "projects":
      return { page, name: decodeURIComponent(name) };
    default:
      return { page: "overview", name: "" };
  }
}

window.addEventListener("hashchange", () => {
  route.value = parseRoute(window.location.hash);
});

export function href(page: Route["page"], name = ""): string {
  return page === "overview" ? "#/" : `#/${page}${name ? `/${encodeURIComponent(name)}` : ""}`;
}
