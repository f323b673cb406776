// The task board: every live task by state, the newest finished ones, kept current from the
// `admin` topic; open tasks that found no coach (`task.unfilled`) are highlighted until one
// takes them or they reopen.

import { type Event, type FeedTask, type GavelClient, GavelError, type ListTasks, type ListTasksResult, reduceTask, type TaskStatus, type TaskView } from "gavel-client";
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
const LIVE: TaskStatus[] = ["open", "assigned", "in_progress", "submitted", "disputed"];
const FINISHED: TaskStatus[] = ["completed", "canceled", "refunded"];
const FINISHED_SHOWN = 20;
/** Task fetches (`GET /v1/tasks/{id}` and its history) in flight at once. */
const FETCHES_AT_ONCE = 8;

/** What a fetch asks the HTTP API for: the task's view, or whether it is unfilled. */
type Job = "view" | "unfilled";

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

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class Board {
  readonly tasks = new Map<string, TaskView>();
  readonly unfilled = new Set<string>();
  #loaded = false;
  #generation = 0;
  #held: Event[] = [];
  /** Jobs (`view:<id>`, `unfilled:<id>`) in flight; `true` when an event of theirs came meanwhile. */
  #fetching = new Map<string, boolean>();
  /** Fetches in flight and waiting (a new lane per reload). */
  #lane = { running: 0, waiting: [] as [Job, string][] };

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
   * Every live task (all the pages of `list_tasks` with the live states), then the newest
   * finished ones. An event that arrived while a page was on its way may or may not be in it:
   * its task is fetched again once the first page is in; a task that changes state between
   * pages is fetched when its event arrives.
   */
  async #load(client: GavelClient, generation: number): Promise<void> {
    let before: string | null = null;
    do {
      const page = await this.#list(client, { status: LIVE, limit: 100, ...(before ? { before } : {}) }, generation);
      if (!page) return;
      this.#add(page.tasks);
      if (!this.#loaded) this.#ready();
      before = page.next ?? null;
      this.changed();
    } while (before);
    const finished = await this.#list(client, { status: FINISHED, limit: FINISHED_SHOWN }, generation);
    if (!finished) return;
    this.#add(finished.tasks);
    this.changed();
  }

  /** One page of `list_tasks`, waiting out the rate limit; null once a reload superseded it. */
  async #list(client: GavelClient, fields: ListTasks, generation: number): Promise<ListTasksResult | null> {
    for (;;) {
      try {
        const result = await client.command("list_tasks", fields);
        return generation === this.#generation ? result : null;
      } catch (e) {
        if (!(e instanceof GavelError && e.code === "RATE_LIMITED")) throw e;
        await pause(e.retryAfterMs ?? 1000);
        if (generation !== this.#generation) return null;
      }
    }
  }

  /** Tasks of a page: what an event already brought is newer; open ones are checked for unfilled. */
  #add(tasks: TaskView[]): void {
    for (const task of tasks) {
      if (!this.tasks.has(task.task_id)) this.tasks.set(task.task_id, task);
      if (task.status === "open") this.#fetch(task.task_id, "unfilled");
    }
  }

  /** The first page is in: events from now on are applied, the held ones' tasks fetched. */
  #ready(): void {
    const touched = new Set<string>();
    for (const event of this.#held) {
      this.#mark(event);
      if (event.task_id) touched.add(event.task_id);
    }
    this.#held = [];
    this.#loaded = true;
    for (const id of touched) {
      // A held event (a reopen, say) may postdate a check already on its way: run it again.
      const check = `unfilled:${id}`;
      if (this.#fetching.has(check)) this.#fetching.set(check, true);
      this.#fetch(id);
    }
  }

  /** The highlight: on with `task.unfilled`, off once the task is taken, closed or reopened. */
  #mark(event: Event): void {
    const id = event.task_id;
    if (!id) return;
    if (event.kind === "task.unfilled") this.unfilled.add(id);
    if (event.kind === "task.assigned" || event.kind === "task.closed" || event.kind === "task.canceled" || event.kind === "task.opened") this.unfilled.delete(id);
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
    this.#mark(event);
    for (const job of ["view", "unfilled"] as const) if (this.#fetching.has(`${job}:${id}`)) this.#fetching.set(`${job}:${id}`, true);
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
   * Queues a job for one task: its server view (which replaces the board's), or whether it is
   * unfilled. An event of the task that arrives while the answer is on its way may not be in
   * it: then the job runs once more. At most `FETCHES_AT_ONCE` are in flight; the rest wait
   * their turn (after a reload thousands of tasks may want one).
   */
  #fetch(id: string, job: Job = "view"): void {
    const key = `${job}:${id}`;
    if (this.#fetching.has(key)) {
      this.#fetching.set(key, true);
      return;
    }
    this.#fetching.set(key, false);
    this.#lane.waiting.push([job, id]);
    this.#pump();
  }

  #pump(): void {
    const lane = this.#lane;
    const fetching = this.#fetching;
    while (lane.running < FETCHES_AT_ONCE && lane.waiting.length > 0) {
      const [job, id] = lane.waiting.shift() as [Job, string];
      const key = `${job}:${id}`;
      lane.running += 1;
      const done = () => {
        lane.running -= 1;
        // A reload since has a lane and a map of its own: this answer is no longer wanted.
        if (lane === this.#lane) this.#pump();
      };
      // A view is shown even when an event overtook it (and fetched again); a check is redone.
      const work = job === "view" ? this.api.task(id).then((full) => () => this.tasks.set(id, full)) : this.#opening(id).then((at) => () => this.#checkUnfilled(id, at));
      work.then(
        (commit) => {
          done();
          if (lane !== this.#lane) return;
          const again = fetching.get(key) === true;
          fetching.delete(key);
          if (!again || job === "view") commit();
          this.changed();
          if (again) this.#fetch(id, job);
        },
        () => {
          done();
          fetching.delete(key);
        },
      );
    }
  }

  /**
   * The bidding window the task's latest `task.opened` set, from its history. Only that event
   * and `task.unfilled` (which no history carries: it goes to `admin` alone) move the window.
   */
  async #opening(id: string): Promise<number | null> {
    let opened: number | null = null;
    let after = 0;
    for (;;) {
      const page = await this.api.history(id, after);
      for (const { event } of page.events) if (event.kind === "task.opened") opened = event.task.bidding_closes_at;
      if (page.next === null || page.next === undefined) return opened;
      after = page.next;
    }
  }

  /** An open task whose window moved since it opened: a window closed without a coach. */
  #checkUnfilled(id: string, opened: number | null): void {
    const task = this.tasks.get(id);
    if (task?.status === "open" && opened !== null && task.bidding_closes_at !== opened) this.unfilled.add(id);
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
