// One subscribed topic on the client: where it stands (`seq`, `epoch`) so that a reconnect
// resumes exactly, and the rule that each event reaches the handler once and in order.

import type {
  AdminSnapshot,
  CoachSnapshot,
  Event,
  EventFrame,
  FeedFilter,
  FeedSnapshot,
  SeekerSnapshot,
  Snapshot,
  SubscribeResult,
  TaskView,
  Topic,
} from "./protocol.js";
import { GavelError } from "./errors.js";

/** The snapshot a topic's subscription carries (contract §8, §9). */
export type TopicSnapshot<T extends string> = T extends "feed"
  ? FeedSnapshot
  : T extends "admin"
    ? AdminSnapshot
    : T extends `task:${string}`
      ? TaskView
      : T extends `coach:${string}`
        ? CoachSnapshot
        : T extends `seeker:${string}`
          ? SeekerSnapshot
          : Snapshot;

/** What a subscription's handler receives. */
export type TopicMessage<S = Snapshot> =
  | {
      type: "snapshot";
      topic: Topic;
      seq: number;
      epoch: string;
      snapshot: S;
      /** The server could not resume from the last `seq`: forget what came before. */
      reset: boolean;
    }
  | { type: "event"; topic: Topic; seq: number; event: Event }
  | { type: "error"; topic: Topic; error: GavelError };

type Settle = { resolve: (r: SubscribeResult) => void; reject: (e: GavelError) => void };

export class TopicStream {
  readonly topic: Topic;
  /** The last `seq` handed to the handler (null before the first snapshot). */
  seq: number | null;
  epoch: string | null;
  readonly ready: Promise<SubscribeResult>;
  #filter: FeedFilter | undefined;
  #limit: number | undefined;
  #handler: (message: TopicMessage<unknown>) => void;
  #pendingId: string | null = null;
  /** A `subscribe` to retry after a refusal that allows it (RATE_LIMITED, UNAVAILABLE). */
  retry: ReturnType<typeof setTimeout> | null = null;
  /** Refusals in a row, for the retry's backoff. */
  refusals = 0;
  #settleReady: Settle | null;
  #closed = false;

  constructor(
    topic: Topic,
    options: { filter?: FeedFilter; limit?: number; since?: number; epoch?: string },
    handler: (message: TopicMessage<unknown>) => void,
  ) {
    this.topic = topic;
    this.seq = options.since ?? null;
    this.epoch = options.epoch ?? null;
    this.#filter = options.filter;
    this.#limit = options.limit;
    this.#handler = handler;
    let settle: Settle | null = null;
    this.ready = new Promise<SubscribeResult>((resolve, reject) => {
      settle = { resolve, reject };
    });
    // Nobody has to await `ready`: a refusal also reaches the handler.
    this.ready.catch(() => {});
    this.#settleReady = settle;
  }

  /** The `subscribe` fields: a resume from where the handler stands, else a fresh snapshot. */
  request(): Record<string, unknown> {
    const fields: Record<string, unknown> = {};
    if (this.#filter) fields.filter = this.#filter;
    if (this.#limit !== undefined) fields.limit = this.#limit;
    if (this.seq !== null) {
      fields.since = this.seq;
      if (this.epoch !== null) fields.epoch = this.epoch;
    }
    return fields;
  }

  /** The id of the `subscribe` whose answer this stream waits for. */
  get pendingId(): string | null {
    return this.#pendingId;
  }

  subscribing(id: string): void {
    this.#pendingId = id;
  }

  /** The next subscribe asks for a snapshot instead of resuming. */
  forget(): void {
    this.seq = null;
    this.epoch = null;
  }

  disconnected(): void {
    this.#pendingId = null;
    this.cancelRetry();
  }

  cancelRetry(): void {
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
  }

  /**
   * A refusal that will be retried: until the retry is answered, events of the topic still
   * belong to a previous subscription (the retry's answer covers everything after it).
   */
  retrying(): void {
    this.refusals += 1;
  }

  subscribed(result: SubscribeResult): void {
    if (this.#closed) return;
    this.#pendingId = null;
    this.epoch = result.epoch;
    if (result.snapshot !== undefined && result.snapshot !== null) {
      this.seq = result.seq;
      this.#handler({
        type: "snapshot",
        topic: this.topic,
        seq: result.seq,
        epoch: result.epoch,
        snapshot: result.snapshot,
        reset: result.reset === true,
      });
    } else if (this.seq === null) {
      this.seq = result.seq;
    }
    this.refusals = 0;
    this.#settleReady?.resolve(result);
    this.#settleReady = null;
  }

  refused(error: GavelError): void {
    this.#closed = true;
    this.#pendingId = null;
    this.cancelRetry();
    this.#handler({ type: "error", topic: this.topic, error });
    this.#settleReady?.reject(error);
    this.#settleReady = null;
  }

  close(): void {
    this.#closed = true;
    this.cancelRetry();
    this.#settleReady?.reject(new GavelError("CLOSED", `unsubscribed from ${this.topic}`));
    this.#settleReady = null;
  }

  event(frame: EventFrame): void {
    if (this.#closed) return;
    if (this.#pendingId !== null) {
      // Before the answer to our subscribe, frames of the topic are a previous subscription's
      // on this connection: the server answers first and then sends everything after the
      // answer's position (contract §4), so nothing here is needed.
      return;
    }
    if (frame.event.kind === "stats") {
      // Not journaled: it carries the last event's seq and is never replayed (contract §8).
      this.#handler({ type: "event", topic: this.topic, seq: frame.seq, event: frame.event });
      return;
    }
    if (this.seq !== null && frame.seq <= this.seq) return;
    this.seq = frame.seq;
    this.#handler({ type: "event", topic: this.topic, seq: frame.seq, event: frame.event });
  }
}
