// One task in full: the admin view (ranked bids with each coach's reputation, the assignment,
// escrow), and every event of its history — read from the journal (`GET /v1/tasks/{id}/events`,
// archived tasks too), then live from `task:<id>` resumed after the last of them. The view is
// fetched from the HTTP API again after each event, so it is the server's.

import type { Event, GavelClient, TaskView, Topic } from "gavel-client";
import type { Api } from "./api.js";
import { clock, h, money } from "./dom.js";

export class Detail {
  taskId: string | null = null;
  view: TaskView | null = null;
  history: { seq: number; event: Event }[] = [];
  note = "";
  error = "";
  #unsubscribe: (() => void) | null = null;
  #refetch: ReturnType<typeof setTimeout> | null = null;
  /** Bumped by every close: what an earlier opening still has in flight is dropped. */
  #opened = 0;

  constructor(
    private readonly client: GavelClient,
    private readonly api: Api,
    private readonly changed: () => void,
    /** Closing by the × button or Escape: the page decides where focus goes. */
    readonly onClose: () => void,
  ) {}

  open(taskId: string): void {
    if (this.taskId === taskId) return;
    this.close();
    this.taskId = taskId;
    this.#refresh();
    this.changed();
    void this.#follow(taskId, this.#opened);
  }

  /**
   * The history from the journal, then the topic from the position it covers (`upto`), so
   * nothing is missed or shown twice. `opened` tells a stale run (the panel was closed or
   * opened again meanwhile) from the current one.
   */
  async #follow(taskId: string, opened: number): Promise<void> {
    let after = 0;
    let upto = 0;
    try {
      for (;;) {
        const page = await this.api.history(taskId, after);
        if (this.#opened !== opened) return;
        this.history.push(...page.events);
        upto = page.upto;
        if (page.next === null || page.next === undefined) break;
        after = page.next;
      }
    } catch (e) {
      if (this.#opened === opened) this.error = String(e);
      this.changed();
      return;
    }
    this.changed();
    const topic = `task:${taskId}` as Topic;
    this.#unsubscribe = this.client.subscribe(
      topic,
      (m) => {
        if (m.type === "event") {
          this.history.push({ seq: m.seq, event: m.event });
          this.#scheduleRefresh();
        } else if (m.type === "snapshot") {
          this.view = m.snapshot as TaskView;
          if (!this.view.archived) this.note = "The server could not resume after the history; a fresh view from here on.";
        } else {
          this.error = m.error.message;
        }
        this.changed();
      },
      { since: upto },
    );
  }

  close(): void {
    this.#opened += 1;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    if (this.#refetch) clearTimeout(this.#refetch);
    this.taskId = null;
    this.view = null;
    this.history = [];
    this.note = "";
    this.error = "";
    this.changed();
  }

  #scheduleRefresh(): void {
    if (this.#refetch) return;
    this.#refetch = setTimeout(() => {
      this.#refetch = null;
      this.#refresh();
    }, 50);
  }

  #refresh(): void {
    const id = this.taskId;
    if (!id) return;
    this.api.task(id).then(
      (view) => {
        if (this.taskId === id) this.view = view;
        this.changed();
      },
      (e) => {
        if (this.taskId === id) this.error = String(e);
        this.changed();
      },
    );
  }

  render(resolve: (taskId: string, outcome: "release" | "refund") => void): HTMLElement | null {
    if (!this.taskId) return null;
    const t = this.view;
    const close = h("button", { class: "close", "data-key": "detail:close", onclick: () => this.onClose(), "aria-label": "close the task" }, "×");
    if (!t) return h("div", { class: "detail" }, close, h("h2", { id: "detail-title", "data-key": "detail:title", tabindex: -1 }, this.taskId), h("p", {}, this.error || "loading…"));
    const row = (k: string, v: string | number) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v));
    return h(
      "div",
      { class: "detail", "data-detail": t.task_id },
      close,
      h("h2", { id: "detail-title", "data-key": "detail:title", tabindex: -1 }, `${t.task_id} `, h("span", { class: `status ${t.status}` }, t.status)),
      t.archived ? h("p", { class: "note" }, "Archived: the final view from storage, the history from the journal.") : null,
      this.note ? h("p", { class: "note" }, this.note) : null,
      this.error ? h("p", { class: "error", role: "alert" }, this.error) : null,
      h(
        "table",
        { class: "facts" },
        row("owner", t.owner),
        row("resume", t.resume_id),
        row("type · tier", `${t.task_type} · ${t.urgency}`),
        row("price", `${money(t.suggested_price)} (range ${money(t.price_range[0])}–${money(t.price_range[1])})`),
        row("bidding closes", clock(t.bidding_closes_at)),
        row("assigned", t.assigned ? `${t.assigned.coach_id} at ${money(t.assigned.amount)}${t.assigned.on_call ? " (on call)" : ""}, due ${clock(t.assigned.deadline)}` : "—"),
        row("escrow", `held ${money(t.escrow.held)} · released ${money(t.escrow.released)} · refunded ${money(t.escrow.refunded)}`),
        row("revisions", t.revisions),
      ),
      t.status === "disputed"
        ? h(
            "p",
            { class: "actions" },
            h("button", { "data-key": "detail:release", onclick: () => resolve(t.task_id, "release") }, "Release to coach"),
            h("button", { "data-key": "detail:refund", onclick: () => resolve(t.task_id, "refund") }, "Refund seeker"),
          )
        : null,
      h("h3", {}, `Bids (${t.bids.length}, best first)`),
      t.bids.length === 0
        ? h("p", {}, "No pending bids.")
        : h(
            "ol",
            { class: "bids" },
            ...t.bids.map((b) =>
              h(
                "li",
                {},
                h("strong", {}, b.coach?.display_name ?? b.coach_id),
                ` ${money(b.amount)} · ${b.eta_hours} h · score ${b.score}`,
                b.coach ? h("span", { class: "rep" }, ` ★${(b.coach.rating / 100).toFixed(2)}, ${b.coach.ratings_count} ratings, ${b.coach.completed} done`) : null,
              ),
            ),
          ),
      h("h3", {}, `History (${this.history.length} events)`),
      h(
        "ol",
        { class: "history" },
        ...this.history.map(({ seq, event }) => h("li", {}, h("code", {}, `#${seq}`), ` ${clock(event.at)} `, h("strong", {}, event.kind), ` ${summary(event)}`)),
      ),
    );
  }
}

/** The fields of an event besides its kind, time and task, in a line. */
function summary(event: Event): string {
  const { kind: _kind, at: _at, task_id: _task, ...rest } = event as Record<string, unknown>;
  return Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)}`)
    .join(" ")
    .slice(0, 300);
}
