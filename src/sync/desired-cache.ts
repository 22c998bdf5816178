import { canonicalJson, renderProjectDomain, type DesiredObject, type ProjectDomain, type ProvisioningSpec } from "../core/desired-state.js";
import type { ProjectRepository } from "../store/project-repository.js";

/** What every cluster of an organization should have. */
export interface DesiredState {
  objects: DesiredObject[];
  /** Templates that could not be rendered, one message per template and project-domain. */
  errors: string[];
  /** Every project-domain that should be provisioned (rendered or not). */
  pairs: ProjectDomain[];
  /**
   * What makes each project-domain provisioned: its namespace and service account. Worked out once
   * per organization, not per cluster and pass: a hundred clusters share it.
   */
  provisioning: PairProvisioning[];
}

export interface PairProvisioning {
  pair: ProjectDomain;
  /** Empty when they could not be rendered: the pair cannot be provisioned. */
  core: DesiredObject[];
}

/**
 * The desired state per organization, computed once and shared by every cluster's pass until a
 * project or the provisioning spec changes.
 */
export class DesiredStateCache {
  /** The computation per organization, shared by the passes that ask while it runs. */
  private readonly byOrg = new Map<string, Promise<DesiredState>>();
  private specFingerprint = "";
  private spec: ProvisioningSpec | null = null;

  constructor(
    private readonly projects: ProjectRepository,
    private readonly domains: readonly string[],
  ) {}

  /** Adopts a freshly loaded spec; returns true when it differs from the one in use. */
  useSpec(spec: ProvisioningSpec): boolean {
    const fingerprint = canonicalJson(spec);
    if (fingerprint === this.specFingerprint) return false;
    this.specFingerprint = fingerprint;
    this.spec = spec;
    this.invalidate();
    return true;
  }

  invalidate(): void {
    this.byOrg.clear();
  }

  forOrg(org: string): Promise<DesiredState> {
    let state = this.byOrg.get(org);
    if (!state) {
      state = this.compute(org);
      this.byOrg.set(org, state);
      // A failed read is not remembered: the next pass reads again.
      state.catch(() => {
        if (this.byOrg.get(org) === state) this.byOrg.delete(org);
      });
    }
    return state;
  }

  private async compute(org: string): Promise<DesiredState> {
    const state: DesiredState = { objects: [], errors: [], pairs: [], provisioning: [] };
    const spec = this.spec;
    if (!spec) return state;
    for (const project of await this.projects.allInState("ACTIVE")) {
      if (project.org !== org) continue;
      for (const domain of this.domains) {
        const pair = { project: project.id, domain };
        const rendered = renderProjectDomain(spec, pair);
        state.pairs.push(pair);
        state.provisioning.push({ pair, core: rendered.objects.filter((object) => object.role !== "template") });
        state.objects.push(...rendered.objects);
        state.errors.push(...rendered.errors);
      }
    }
    return state;
  }
}
