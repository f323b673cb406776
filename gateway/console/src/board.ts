// The task board: every task the console knows, by state, kept current from the `admin`
// topic; tasks that found no coach (`task.unfilled`) are highlighted until one takes them.

import { type Event, type FeedTask, type GavelClient, type ListTasksResult, reduceTask, type TaskStatus, type TaskView } from "gavel-client";
import type { Api } from "./api.js";
import { h, money } from "./dom.js";

export const COLUMNS: { title: string; statuses: TaskStatus[] }[] = [
  { title: "Open", statuses: ["open"] },
  { title: "Assigned", statuses: ["assigned"] },
  { title: "In progress", statuses: ["in_progress"] },
  { title: "Submitted", statuses: ["submitted"] },
  { title: "Disputed", statuses: ["disputed"] },
  { title: "Finished", statuses: ["completed", "canceled", "refunded"] },
];
const FINISHED_SHOWN = 20;
/** Task fetches (`GET /v1/tasks/{id}`) in flight at once. */
const FETCHES_AT_ONCE = 8;

/** A task first seen through its `task.opened`: what the event says, the rest fetched. */
function fromOpened(task: FeedTask): TaskView {
  return {
    ...task,
    owner: "…",
    resume_id: "…",
    award: "manual",
    status: "open",
    bids: [],
    top3: [],
    assigned: null,
    escrow: { held: 0, released: 0, refunded: 0 },
    revisions: 0,
  } as TaskView;
}

export class Board {
  readonly tasks = new Map<string, TaskView>();
  readonly unfilled = new Set<string>();
  #loaded = false;
  #generation = 0;
  #held: Event[] = [];
  /** Tasks being fetched; `true` when an event of theirs came meanwhile (fetch again). */
  #fetching = new Map<string, boolean>();
  /** Fetches in flight and waiting (a new lane per reload). */
  #lane = { running: 0, waiting: [] as string[] };

  constructor(
    private readonly api: Api,
    private readonly changed: () => void,
  ) {}

  /** Forgets everything and loads afresh (at start, and after a reset of `admin`). */
  reload(client: GavelClient): void {
    this.#generation += 1;
    const generation = this.#generation;
    this.tasks.clear();
    this.unfilled.clear();
    this.#fetching = new Map();
    this.#lane = { running: 0, waiting: [] };
    this.#loaded = false;
    this.#held = [];
    this.changed();
    this.#load(client, generation).catch(() => {
      // Retried until the server answers; events meanwhile are held (their tasks fetched later).
      if (generation === this.#generation) setTimeout(() => this.#generation === generation && this.reload(client), 2000);
    });
  }

  /**
   * The newest tasks (two pages of `list_tasks`). An event that arrived while the list was on
   * its way may or may not be in it: its task is fetched again once the list is in.
   */
  async #load(client: GavelClient, generation: number): Promise<void> {
    let before: string | null = null;
    for (let page = 0; page < 2; page++) {
      const result: ListTasksResult = await client.command("list_tasks", before ? { limit: 100, before } : { limit: 100 });
      if (generation !== this.#generation) return;
      for (const task of result.tasks) if (!this.tasks.has(task.task_id)) this.tasks.set(task.task_id, task);
      if (page === 0) {
        const touched = new Set(this.#held.map((e) => e.task_id).filter((id): id is string => !!id));
        this.#held = [];
        this.#loaded = true;
        for (const id of touched) this.#fetch(id);
      }
      before = result.next ?? null;
      if (!before) break;
    }
    this.changed();
  }

  /** One event of the `admin` topic. */
  apply(event: Event): void {
    if (!this.#loaded) {
      // At most what a page of tasks can be touched by; past that the task list decides.
      if (this.#held.length < 10_000) this.#held.push(event);
      return;
    }
    const id = event.task_id;
    if (!id) return;
    if (event.kind === "task.unfilled") this.unfilled.add(id);
    if (event.kind === "task.assigned" || event.kind === "task.closed" || event.kind === "task.canceled") this.unfilled.delete(id);
    if (this.#fetching.has(id)) this.#fetching.set(id, true);
    const known = this.tasks.get(id);
    if (known) {
      this.tasks.set(id, reduceTask(known, event) ?? known);
    } else if (event.kind === "task.opened") {
      this.tasks.set(id, fromOpened(event.task));
      this.#fetch(id);
    } else {
      this.#fetch(id);
    }
    this.changed();
  }

  /**
   * The server's view of one task (it replaces what the board had). An event of the task that
   * arrives while the answer is on its way may not be in it: then it is fetched once more. At
   * most `FETCHES_AT_ONCE` are in flight; the rest wait their turn (after a reload under load
   * thousands of tasks may want one).
   */
  #fetch(id: string): void {
    if (this.#fetching.has(id)) {
      this.#fetching.set(id, true);
      return;
    }
    this.#fetching.set(id, false);
    this.#lane.waiting.push(id);
    this.#pump();
  }

  #pump(): void {
    const lane = this.#lane;
    const fetching = this.#fetching;
    while (lane.running < FETCHES_AT_ONCE && lane.waiting.length > 0) {
      const id = lane.waiting.shift() as string;
      lane.running += 1;
      const done = () => {
        lane.running -= 1;
        // A reload since has a lane and a map of its own: this answer is no longer wanted.
        if (lane === this.#lane) this.#pump();
      };
      this.api.task(id).then(
        (full) => {
          done();
          if (lane !== this.#lane) return;
          const again = fetching.get(id) === true;
          fetching.delete(id);
          this.tasks.set(id, full);
          this.changed();
          if (again) this.#fetch(id);
        },
        () => {
          done();
          fetching.delete(id);
        },
      );
    }
  }

  byStatus(statuses: TaskStatus[]): TaskView[] {
    const tasks = [...this.tasks.values()].filter((t) => statuses.includes(t.status));
    tasks.sort((a, b) => b.created_at - a.created_at || b.task_id.localeCompare(a.task_id));
    return statuses.includes("completed") ? tasks.slice(0, FINISHED_SHOWN) : tasks;
  }

  render(open: (id: string) => void): HTMLElement[] {
    return COLUMNS.map(({ title, statuses }) => {
      const tasks = this.byStatus(statuses);
      const id = `col-${statuses[0]}`;
      return h(
        "section",
        { class: "column", "aria-labelledby": id },
        h("h3", { id }, `${title} `, h("span", { class: "count" }, tasks.length)),
        h("ul", {}, ...tasks.map((t) => h("li", {}, this.#card(t, open)))),
      );
    });
  }

  #card(t: TaskView, open: (id: string) => void): HTMLElement {
    const unfilled = this.unfilled.has(t.task_id) && t.status === "open";
    return h(
      "button",
      { class: `card ${t.urgency}${unfilled ? " unfilled" : ""}`, "data-task": t.task_id, "data-key": `card:${t.task_id}`, onclick: () => open(t.task_id) },
      h("strong", {}, t.task_id),
      h("span", { class: `tier ${t.urgency}` }, t.urgency),
      unfilled ? h("span", { class: "flag" }, "no coach") : null,
      h("span", { class: "meta" }, `${money(t.assigned?.amount ?? t.suggested_price)} · ${t.bid_count} bid${t.bid_count === 1 ? "" : "s"}`),
    );
  }
}
