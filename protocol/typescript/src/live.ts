// Live views: a topic's snapshot kept current by its events, as the screens of the seed's app
// (and the admin console) show them. Where an event carries too little to update a view
// exactly (a seeker's new task, a coach's new assignment), the view asks the server for a fresh
// snapshot instead of guessing.

import type {
  AdminSnapshot,
  BidView,
  CoachSnapshot,
  Event,
  FeedSnapshot,
  SeekerSnapshot,
  TaskStatus,
  TaskView,
  Topic,
} from "./protocol.js";
import type { GavelClient, SubscribeOptions } from "./client.js";
import type { GavelError } from "./errors.js";
import type { TopicMessage, TopicSnapshot } from "./topic.js";

type EventOf<K extends Event["kind"]> = Extract<Event, { kind: K }>;

/** Applies one event to a view: the new view, or `null` when only a fresh snapshot can tell. */
export type Reducer<S> = (view: S, event: Event) => S | null;

/**
 * Pending bids best first: higher score, then lower amount, then the earlier bid (contract §5)
 * — earlier by the engine's bid number, as the engine ranks them.
 */
export function rankBids(bids: BidView[]): BidView[] {
  return [...bids].sort((a, b) => b.score - a.score || a.amount - b.amount || bidNo(a) - bidNo(b));
}

const bidNo = (b: BidView): number => Number(b.bid_id.replace(/^\D+/, "")) || 0;

function withBids(view: TaskView, bids: BidView[]): TaskView {
  const ranked = rankBids(bids);
  return { ...view, bids: ranked, bid_count: ranked.length, top3: ranked.slice(0, 3).map((b) => b.bid_id) };
}

const status = (view: TaskView, next: TaskStatus): TaskView => ({ ...view, status: next });

/** The owner's (or admin's) `TaskView` after one event of its task. */
export const reduceTask: Reducer<TaskView> = (view, event) => {
  if (event.task_id !== view.task_id) return view;
  switch (event.kind) {
    case "bid.placed":
    case "bid.updated": {
      const e = event as EventOf<"bid.placed">;
      return withBids(view, [...view.bids.filter((b) => b.bid_id !== e.bid.bid_id), e.bid]);
    }
    case "bid.withdrawn":
    case "bid.accepted":
    case "bid.rejected": {
      const e = event as EventOf<"bid.withdrawn">;
      return withBids(view, view.bids.filter((b) => b.bid_id !== e.bid_id));
    }
    case "task.opened": {
      const e = event as EventOf<"task.opened">;
      return { ...view, status: "open", assigned: null, bidding_closes_at: e.task.bidding_closes_at };
    }
    case "task.assigned": {
      const e = event as EventOf<"task.assigned">;
      const assigned = { coach_id: e.coach_id, bid_id: e.bid_id ?? null, amount: e.amount, deadline: e.deadline, on_call: e.on_call };
      return { ...withBids(view, []), status: "assigned", assigned };
    }
    case "task.reassigned": {
      const e = event as EventOf<"task.reassigned">;
      // To a coach: a `task.assigned` with the new terms follows. Reopened: `task.opened` follows.
      return e.to_coach_id ? view : { ...view, assigned: null };
    }
    case "task.started":
      return status(view, "in_progress");
    case "task.submitted":
      return status(view, "submitted");
    case "task.changes_requested": {
      const e = event as EventOf<"task.changes_requested">;
      return { ...view, status: "in_progress", revisions: e.revisions };
    }
    case "task.disputed":
      return status(view, "disputed");
    case "task.completed":
      return status(view, "completed");
    case "task.canceled":
      return { ...withBids(view, []), status: "canceled" };
    case "payment.held": {
      const e = event as EventOf<"payment.held">;
      return { ...view, escrow: { ...view.escrow, held: view.escrow.held + e.amount } };
    }
    case "payment.released": {
      const e = event as EventOf<"payment.released">;
      return { ...view, escrow: { ...view.escrow, released: view.escrow.released + e.coach_amount + e.platform_fee } };
    }
    case "payment.refunded": {
      const e = event as EventOf<"payment.refunded">;
      const escrow = { ...view.escrow, refunded: view.escrow.refunded + e.amount };
      // A refunded dispute ends the task; other refunds come with their own status change.
      return { ...view, escrow, status: view.status === "disputed" ? "refunded" : view.status };
    }
    case "payment.failed":
      // The hold never happened: what was held and not yet paid out or back is gone.
      return { ...view, assigned: null, escrow: { ...view.escrow, held: view.escrow.released + view.escrow.refunded } };
    default:
      return view;
  }
};

/** The `feed` after one event: tasks open, counted and closed. */
export const reduceFeed: Reducer<FeedSnapshot> = (view, event) => {
  const total = view.total;
  switch (event.kind) {
    case "task.opened": {
      const e = event as EventOf<"task.opened">;
      const known = view.tasks.some((t) => t.task_id === e.task.task_id);
      const tasks = [...view.tasks.filter((t) => t.task_id !== e.task.task_id), e.task];
      return { ...view, tasks, ...(total != null && !known ? { total: total + 1 } : {}) };
    }
    case "task.bid_count": {
      const e = event as EventOf<"task.bid_count">;
      return { ...view, tasks: view.tasks.map((t) => (t.task_id === e.task_id ? { ...t, bid_count: e.bid_count } : t)) };
    }
    case "task.closed": {
      const tasks = view.tasks.filter((t) => t.task_id !== event.task_id);
      return { ...view, tasks, ...(total != null ? { total: Math.max(0, total - 1) } : {}) };
    }
    default:
      return view;
  }
};

/** A seeker's dashboard after one event: its task updated, or a refresh for a new task. */
export const reduceSeeker: Reducer<SeekerSnapshot> = (view, event) => {
  const index = view.tasks.findIndex((t) => t.task_id === event.task_id);
  if (index < 0) return event.kind === "task.opened" ? null : view;
  const task = reduceTask(view.tasks[index] as TaskView, event);
  if (task === null) return null;
  const tasks = view.tasks.slice();
  tasks[index] = task;
  return { ...view, tasks };
};

/** A coach's bids and assignments: bids tracked exactly, assignments refreshed. */
export const reduceCoach: Reducer<CoachSnapshot> = (view, event) => {
  switch (event.kind) {
    case "bid.placed":
    case "bid.updated": {
      const e = event as EventOf<"bid.placed">;
      return { ...view, bids: [...view.bids.filter((b) => b.bid_id !== e.bid.bid_id), e.bid] };
    }
    case "bid.withdrawn":
    case "bid.rejected": {
      const e = event as EventOf<"bid.withdrawn">;
      return { ...view, bids: view.bids.filter((b) => b.bid_id !== e.bid_id) };
    }
    case "task.reminder":
    case "task.message":
      return view;
    default:
      // bid.accepted, task.assigned, task.completed, task.reassigned, … change the assignments
      // and the coach's record: the server's view is the exact one.
      return null;
  }
};

/** The admin counters: connections and open tasks from each `stats`. */
export const reduceAdmin: Reducer<AdminSnapshot> = (view, event) => {
  if (event.kind !== "stats") return view;
  const e = event as EventOf<"stats">;
  const open = e.open_tasks;
  return { ...view, connections: e.connections, open_tasks: open.urgent + open.standard + open.flexible, open_tasks_by_urgency: open };
};

/** The reducer of a topic. */
export function reducerFor(topic: Topic): Reducer<unknown> {
  if (topic === "feed") return reduceFeed as Reducer<unknown>;
  if (topic === "admin") return reduceAdmin as Reducer<unknown>;
  if (topic.startsWith("task:")) return reduceTask as Reducer<unknown>;
  if (topic.startsWith("seeker:")) return reduceSeeker as Reducer<unknown>;
  return reduceCoach as Reducer<unknown>;
}

/** A live view starts from a snapshot: `filter` and `limit` only (no `since`). */
export type LiveOptions = Omit<SubscribeOptions, "since" | "epoch">;

/** What a live topic holds at one moment. */
export interface LiveState<S> {
  status: "loading" | "live" | "error";
  view: S | null;
  /** The last `seq` applied. */
  seq: number | null;
  /** How many times the server could not resume and sent a fresh snapshot. */
  resets: number;
  error: GavelError | null;
}

/** A topic's live view: `get()` now, `onChange` for every change, `close()` when done. */
export class LiveTopic<S> {
  #state: LiveState<S> = { status: "loading", view: null, seq: null, resets: 0, error: null };
  #listeners = new Set<() => void>();
  #unsubscribe: () => void;
  #client: GavelClient;
  readonly topic: Topic;

  constructor(client: GavelClient, topic: Topic, options?: LiveOptions) {
    this.topic = topic;
    this.#client = client;
    const reduce = reducerFor(topic) as Reducer<S>;
    const { filter, limit } = options ?? {};
    const fields = { ...(filter ? { filter } : {}), ...(limit !== undefined ? { limit } : {}) };
    this.#unsubscribe = client.subscribe(topic, (m: TopicMessage<unknown>) => this.#apply(m, reduce), fields);
  }

  get(): LiveState<S> {
    return this.#state;
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    this.#unsubscribe();
    this.#listeners.clear();
  }

  #apply(message: TopicMessage<unknown>, reduce: Reducer<S>): void {
    const s = this.#state;
    if (message.type === "error") {
      this.#set({ ...s, status: "error", error: message.error });
    } else if (message.type === "snapshot") {
      this.#set({ ...s, status: "live", view: message.snapshot as S, seq: message.seq, resets: s.resets + (message.reset ? 1 : 0) });
    } else if (s.view !== null) {
      const next = reduce(s.view, message.event);
      if (next === null) this.#client.resync(this.topic);
      else if (next !== s.view || message.event.kind !== "stats") this.#set({ ...s, view: next, seq: message.event.kind === "stats" ? s.seq : message.seq });
    }
  }

  #set(state: LiveState<S>): void {
    this.#state = state;
    for (const listener of [...this.#listeners]) listener();
  }
}

/** A live view of `topic` (see `LiveTopic`). */
export function live<T extends Topic>(client: GavelClient, topic: T, options?: LiveOptions): LiveTopic<TopicSnapshot<T>> {
  return new LiveTopic<TopicSnapshot<T>>(client, topic, options);
}
