import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { Health } from "./health.js";
import { age, isoTime } from "./health.js";
import { now } from "./store.js";
import { canAct, identity } from "./session.js";

export function HealthBadge({ health }: { health: Health }) {
  return (
    <span class={`badge badge-${health.level}`} data-health={health.level}>
      <span aria-hidden="true" class="dot" />
      {health.label}
    </span>
  );
}

/** "3 min ago" with the exact time as a <time> element. */
export function Age({ at }: { at: Timestamp | undefined }) {
  if (!at) return <span class="muted">never</span>;
  return (
    <time dateTime={isoTime(at)} title={isoTime(at)}>
      {age(at, now.value)}
    </time>
  );
}

/** A message the user must see: role="alert" for errors, role="status" otherwise. */
export function Notice({ kind, children }: { kind: "error" | "info" | "ok"; children: ComponentChildren }) {
  return (
    <p class={`notice notice-${kind}`} role={kind === "error" ? "alert" : "status"}>
      {children}
    </p>
  );
}

/** Explains why an action is not offered to the signed-in role. */
export function ReadOnlyNote() {
  if (canAct.value) return null;
  return (
    <p class="muted read-only-note">
      Read-only: {identity.value?.name || "this token"} has role {identity.value?.role ?? "none"}; actions need role admin (the server refuses them otherwise).
    </p>
  );
}

export interface ConfirmProps {
  title: string;
  confirmLabel: string;
  danger?: boolean;
  onConfirm(): Promise<void> | void;
  onClose(): void;
  children: ComponentChildren;
}

/** A modal confirmation (native <dialog>: focus stays inside, Escape cancels). */
export function Confirm({ title, confirmLabel, danger, onConfirm, onClose, children }: ConfirmProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog?.close();
  }, []);
  return (
    <dialog ref={ref} class="confirm" aria-labelledby="confirm-title" onClose={onClose}>
      <h2 id="confirm-title">{title}</h2>
      <div class="confirm-body">{children}</div>
      <div class="actions">
        <button type="button" onClick={() => ref.current?.close()} disabled={busy}>
          Cancel
        </button>
        <button
          type="button"
          class={danger ? "danger" : "primary"}
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            try {
              await onConfirm();
            } finally {
              setBusy(false);
              ref.current?.close();
            }
          }}
        >
          {confirmLabel}
        </button>
      </div>
    </dialog>
  );
}
