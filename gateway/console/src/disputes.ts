// The disputes list: every disputed task with its Release and Refund buttons.

import type { TaskView } from "gavel-client";
import { h } from "./dom.js";

export type Outcome = "release" | "refund";

/** The list (or "No disputes."): `open` shows a task, `resolve` settles it. */
export function renderDisputes(disputed: TaskView[], open: (id: string) => void, resolve: (id: string, outcome: Outcome) => void): HTMLElement {
  if (disputed.length === 0) return h("p", {}, "No disputes.");
  return h(
    "ul",
    {},
    ...disputed.map((t) =>
      h(
        "li",
        { "data-dispute": t.task_id },
        h("button", { class: "link", "data-key": `dispute:${t.task_id}:open`, onclick: () => open(t.task_id) }, t.task_id),
        ` ${t.owner} vs ${t.assigned?.coach_id ?? "?"}, ${t.revisions} revisions `,
        h("button", { "data-key": `dispute:${t.task_id}:release`, onclick: () => resolve(t.task_id, "release") }, "Release"),
        h("button", { "data-key": `dispute:${t.task_id}:refund`, onclick: () => resolve(t.task_id, "refund") }, "Refund"),
      ),
    ),
  );
}
