/**
 * What changed in the store, announced after each committed write so in-memory views (the
 * routing index) and the sync loop stay current without polling.
 */
export type Change =
  | { kind: "cluster"; org: string; name: string }
  /** The sync loop's verdict on a cluster changed (routing eligibility may follow). */
  | { kind: "cluster-sync"; org: string; name: string }
  | { kind: "queue"; org: string; name: string }
  | { kind: "project"; org: string; id: string }
  | { kind: "label"; org: string; name: string }
  | { kind: "assignment"; org: string; project: string; domain: string; workflow: string; launchPlan: string }
  | { kind: "default-label"; org: string };

export type ChangeListener = (change: Change) => void;

export class ChangeFeed {
  private readonly listeners = new Set<ChangeListener>();

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Tells every listener. The write is already committed: a listener that throws must neither turn
   * it into an error for the caller nor keep the listeners after it from hearing of it.
   */
  publish(change: Change): void {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (error) {
        this.onListenerError(error, change);
      }
    }
  }

  /** Where listener failures go; the server points it at its logger. */
  onListenerError: (error: unknown, change: Change) => void = (error) => {
    process.emitWarning(`change listener failed: ${(error as Error).message}`);
  };
}
