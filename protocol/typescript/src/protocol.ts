// Generated from docs/protocol.schema.json by scripts/generate.mjs: do not edit.
// Regenerate with `npm run generate` (CI checks that this file is up to date).
/* eslint-disable */

/** `accept_bid`: the owner picks a bid. */
export type AcceptBid = {
  bid_id: BidId;
  task_id: TaskId;
};

/** Result of `accept_bid`. */
export type AcceptBidResult = {
  amount: number;
  coach_id: UserId;
  deadline: number;
  task_id: TaskId;
};

/** `accept_verification`: the owner accepts the delivery and rates it; the escrow is released. */
export type AcceptVerification = {
  /** 1–5. */
  rating: number;
  task_id: TaskId;
};

/** Result of `accept_verification`. */
export type AcceptVerificationResult = {
  coach_amount: number;
  platform_fee: number;
};

/** Snapshot of `admin`: marketplace counts. */
export type AdminSnapshot = {
  /** WebSocket connections on this node. */
  connections: number;
  /** Tasks in `open`, all urgencies together. */
  open_tasks: number;
  /** Tasks in `open`, by urgency. */
  open_tasks_by_urgency: UrgencyCounts;
  /** Every task, by status (statuses with no task are omitted). */
  tasks_by_status: {
    [key: string]: number;
  };
};

/** Who holds a task and on what terms. */
export type AssignedView = {
  amount: number;
  /** The accepted bid; `null` when the task went to an on-call coach. */
  bid_id?: BidId | null;
  coach_id: UserId;
  /** Delivery deadline. */
  deadline: number;
  on_call: boolean;
};

/** Who picks the winning bid when the bidding window closes. */
export type Award = "manual" | "auto";

/** What a seeker sees of the coach behind a bid: "★4.80, 127 verifications". */
export type BidCoach = {
  /** Tasks completed as the assigned coach. */
  completed: number;
  /** Shared with the coach's profile: a bid carries it without a copy. */
  display_name: string;
  /** In hundredths (0–500; 0 = unrated). */
  rating: number;
  ratings_count: number;
};

export type BidId = string;

/** The state of one bid. */
export type BidStatus = "pending" | "accepted" | "rejected" | "withdrawn";

/** One bid as its coach, the task's owner and admins see it. */
export type BidView = {
  amount: number;
  bid_id: BidId;
  /** The bidding coach's reputation, in the owner's and admins' views (contract §10). */
  coach?: BidCoach | null;
  coach_id: UserId;
  created_at: number;
  eta_hours: number;
  /** The ranking score; higher ranks first. */
  score: number;
  status: BidStatus;
  task_id: TaskId;
};

/** `cancel_task`: the owner (open or assigned) or an admin (any non-final state) cancels. */
export type CancelTask = {
  /** Up to 4000 characters. */
  reason?: string | null;
  task_id: TaskId;
};

/** Result of `cancel_task`. */
export type CancelTaskResult = {
  /** Cents returned to the owner (0 when nothing was held). */
  refunded: number;
};

/** One frame from a client. */
export type ClientFrame = {
  /** Echoed in the reply; for state-changing commands also the idempotency key. */
  id?: RequestId | null;
} & (
  | {
      type: "subscribe";
    } & Subscribe
  | {
      type: "unsubscribe";
    } & Unsubscribe
  | {
      type: "post_task";
    } & PostTask
  | {
      type: "place_bid";
    } & PlaceBid
  | {
      type: "withdraw_bid";
    } & WithdrawBid
  | {
      type: "accept_bid";
    } & AcceptBid
  | {
      type: "start_work";
    } & StartWork
  | {
      type: "submit_verification";
    } & SubmitVerification
  | {
      type: "accept_verification";
    } & AcceptVerification
  | {
      type: "request_changes";
    } & RequestChanges
  | {
      type: "cancel_task";
    } & CancelTask
  | {
      type: "resolve_dispute";
    } & ResolveDispute
  | {
      type: "send_message";
    } & SendMessage
  | {
      type: "list_tasks";
    } & ListTasks
  | {
      type: "quote";
    } & Quote
  | {
      type: "ping";
    }
);

/** Snapshot of `coach:<id>`: its live bids and the tasks it holds. */
export type CoachSnapshot = {
  assignments: TaskView[];
  bids: BidView[];
  coach_id: UserId;
  /** Tasks completed as the assigned coach. */
  completed?: number;
  /** Rating in hundredths (0–500; 0 = unrated; contract §10). */
  rating?: number;
  ratings_count?: number;
};

/**
 * `PUT /v1/coaches/{id}`: register or update a coach (a full replacement: absent fields take
 * their defaults).
 */
export type CoachUpsert = {
  /** At least 1; default 3. */
  capacity?: number;
  /** 1–100 characters. */
  display_name: string;
  on_call?: boolean;
  /** 0.0–5.0 (0 = unrated); kept in hundredths, rounded. */
  rating?: number;
  /** How many ratings `rating` already summarises (imported reputation; contract §10). */
  ratings_count?: number;
  suspended?: boolean;
  verified?: boolean;
};

/** A registered coach, as the HTTP API and admins see it. */
export type CoachView = {
  /** Tasks currently assigned, in progress, submitted or disputed. */
  active: number;
  capacity: number;
  coach_id: UserId;
  /** Tasks completed as the assigned coach. */
  completed?: number;
  /** Shared (not copied) by every bid's [`BidCoach`] summary. */
  display_name: string;
  on_call: boolean;
  /** Rating in hundredths (0–500; 0 = unrated), as the ranking uses it (contract §10). */
  rating?: number;
  /** Rating in hundredths (0–500; 0 = unrated); the same as `rating`. */
  rating_centi: number;
  /** How many ratings `rating` summarises. */
  ratings_count?: number;
  strikes: number;
  suspended: boolean;
  verified: boolean;
};

/** How an admin ends a dispute. */
export type DisputeOutcome = "release" | "refund";

/** Why a frame or a command was refused. Every refusal on the wire carries exactly one. */
export type ErrorCode = "BAD_REQUEST" | "VALIDATION_ERROR" | "UNAUTHORIZED" | "FORBIDDEN" | "NOT_FOUND" | "CONFLICT" | "RATE_LIMITED" | "UNAVAILABLE" | "INTERNAL";

/** A frame or command was refused; nothing was applied. */
export type ErrorReply = {
  code: ErrorCode;
  /** The offending field, for `VALIDATION_ERROR`. */
  field?: string | null;
  /** The frame's `id`; absent when the frame had none (or no valid one). */
  id?: RequestId | null;
  /** For people, not programs: wording may change. */
  message: string;
  /** For `RATE_LIMITED`: when to try again. */
  retry_after_ms?: number | null;
};

/**
 * The escrow ledger of one task, in cents. Money is conserved: everything ever held is
 * released, refunded or still held.
 */
export type EscrowView = {
  held: number;
  refunded: number;
  released: number;
};

/** One event: when, about which task, and what. */
export type Event = {
  /** The engine's time when it happened. */
  at: number;
  /** The task it concerns (absent only for marketplace-wide events such as `stats`). */
  task_id?: TaskId | null;
} & (
  | {
      kind: "task.opened";
      task: FeedTask;
    }
  | {
      bid_count: number;
      kind: "task.bid_count";
    }
  | {
      kind: "task.closed";
      status: TaskStatus;
    }
  | {
      bid: BidView;
      kind: "bid.placed";
    }
  | {
      bid: BidView;
      kind: "bid.updated";
    }
  | {
      bid_id: BidId;
      coach_id: UserId;
      kind: "bid.withdrawn";
    }
  | {
      bid_id: BidId;
      coach_id: UserId;
      kind: "bid.accepted";
    }
  | {
      bid_id: BidId;
      coach_id: UserId;
      kind: "bid.rejected";
    }
  | {
      amount: number;
      /** `null` when assigned on call. */
      bid_id?: BidId | null;
      coach_id: UserId;
      deadline: number;
      kind: "task.assigned";
      on_call: boolean;
    }
  | {
      kind: "task.started";
    }
  | {
      kind: "task.submitted";
      notes?: string | null;
    }
  | {
      kind: "task.changes_requested";
      reason: string;
      revisions: number;
    }
  | {
      kind: "task.disputed";
    }
  | {
      coach_amount: number;
      kind: "task.completed";
      platform_fee: number;
      /** `null` after a dispute. */
      rating?: number | null;
    }
  | {
      kind: "task.canceled";
      reason?: string | null;
    }
  | {
      kind: "task.unfilled";
    }
  | {
      deadline: number;
      kind: "task.reminder";
    }
  | {
      from_coach_id: UserId;
      kind: "task.reassigned";
      /** `null` when the task reopened for bids instead. */
      to_coach_id?: UserId | null;
    }
  | {
      from: UserId;
      kind: "task.message";
      text: string;
    }
  | {
      amount: number;
      kind: "payment.held";
    }
  | {
      coach_amount: number;
      kind: "payment.released";
      platform_fee: number;
    }
  | {
      amount: number;
      kind: "payment.refunded";
    }
  | {
      kind: "payment.failed";
    }
  | {
      connections: number;
      events_per_sec: number;
      kind: "stats";
      open_tasks: UrgencyCounts;
      subscriptions: number;
    }
);

/** An event pushed to a subscriber of `topic`. */
export type EventFrame = {
  event: Event;
  /** The event's position in the journal: increasing per topic, no gaps, no duplicates. */
  seq: number;
  topic: Topic;
};

/** Narrows the `feed` topic: every given criterion must hold (all are optional). */
export type FeedFilter = {
  /** Only tasks whose suggested price is at least this many cents. */
  min_price?: number | null;
  /** Only these task types (absent: all); at most 64 (`MAX_FILTER_TASK_TYPES`). */
  task_type?: string[] | null;
  /** Only these urgencies (absent: all). */
  urgency?: Urgency[] | null;
};

/** Snapshot of `feed`. */
export type FeedSnapshot = {
  tasks: FeedTask[];
  /** With a `limit`: how many open tasks match in all (`tasks` holds the newest of them). */
  total?: number | null;
};

/** An open task as a coach sees it on `feed`: no owner, no other coaches' bids. */
export type FeedTask = {
  bid_count: number;
  bidding_closes_at: number;
  created_at: number;
  /** The subscriber's own bid (only in snapshots; live changes arrive on `coach:<id>`). */
  my_bid?: BidView | null;
  price_range: [number, number];
  suggested_price: number;
  task_id: TaskId;
  task_type: string;
  urgency: Urgency;
};

/** One event of a [`TaskHistory`], at its journal position. */
export type HistoryEvent = {
  event: Event;
  seq: number;
};

/** The error body of the HTTP API: `{"error": {"code", "message", "field?"}}`. */
export type HttpError = {
  error: HttpErrorDetail;
};

/** The inside of [`HttpError`]. */
export type HttpErrorDetail = {
  code: ErrorCode;
  field?: string | null;
  message: string;
};

/** `list_tasks`: a page of the tasks the sender may see, newest first (contract §9). */
export type ListTasks = {
  /** The `next` cursor of the previous page. */
  before?: string | null;
  /** Admin only: the tasks one coach was ever assigned. */
  coach_id?: UserId | null;
  /** 1–100, default 20. */
  limit?: number | null;
  /** Admin only: one seeker's tasks. */
  owner?: UserId | null;
  /** Only tasks in these states (on the wire: one state or a list). */
  status?: OneOrMany | null;
};

/** Result of `list_tasks` (contract §9): newest first; `next` continues after the last one. */
export type ListTasksResult = {
  /** The cursor of the next page (`before`), `null` after the last page. */
  next?: string | null;
  tasks: TaskView[];
};

/**
 * Accepted amounts of recent tasks of one type and tier (contract §11), percentiles by
 * nearest rank.
 */
export type MarketStats = {
  median: number;
  p25: number;
  p75: number;
  samples: number;
};

/** A command succeeded; `result`'s shape follows the command (see [`crate::views`]). */
export type OkReply = {
  id: RequestId;
  result: unknown;
};

/** One value or a list of them (how `list_tasks` takes `status`; for the schema). */
export type OneOrMany = TaskStatus | TaskStatus[];

/** `place_bid`: a coach offers to do a task for `amount` within `eta_hours`. */
export type PlaceBid = {
  amount: number;
  eta_hours: number;
  task_id: TaskId;
};

/** Result of `place_bid`. */
export type PlaceBidResult = {
  bid_id: BidId;
};

/** `post_task`: a seeker (or an admin on a seeker's behalf) asks for a verification. */
export type PostTask = {
  /** Default `manual`. */
  award?: Award | null;
  /** Cents before the tier multiplier; default 2500. */
  base_price?: number | null;
  /**
   * The seeker the task belongs to: required from admins, must be absent (or the sender)
   * from seekers.
   */
  owner?: UserId | null;
  /** The app's id of the resume to review (1–128 characters, no control characters). */
  resume_id: string;
  /** A client-chosen task id (the server picks one when absent). */
  task_id?: TaskId | null;
  /** Default `resume_review_full`. */
  task_type?: string | null;
  urgency: Urgency;
};

/** Result of `post_task` (and `POST /v1/tasks`). */
export type PostTaskResult = {
  bidding_closes_at: number;
  price_range: [number, number];
  suggested_price: number;
  task_id: TaskId;
};

/** `quote`: what each tier would cost now, and what the market pays (contract §11). */
export type Quote = {
  /** Cents before the tier multiplier: prices as a `post_task` with this `base_price`. */
  base_price?: number | null;
  /** Default `resume_review_full`. */
  task_type?: string | null;
};

/** Result of `quote` (contract §11). */
export type QuoteResult = {
  task_type: string;
  tiers: QuoteTiers;
};

/** The three tiers of a quote. */
export type QuoteTiers = {
  flexible: TierQuote;
  standard: TierQuote;
  urgent: TierQuote;
};

/** `request_changes`: the owner sends the delivery back. */
export type RequestChanges = {
  /** 1–4000 characters. */
  reason: string;
  task_id: TaskId;
};

/** Result of `request_changes`. */
export type RequestChangesResult = {
  revisions: number;
};

export type RequestId = string;

/** `resolve_dispute`: an admin ends a dispute. */
export type ResolveDispute = {
  outcome: DisputeOutcome;
  task_id: TaskId;
};

/** Snapshot of `seeker:<id>`: the seeker's tasks still in memory, newest first (owner view). */
export type SeekerSnapshot = {
  seeker_id: UserId;
  tasks: TaskView[];
};

/** `send_message`: the owner and the assigned coach talk about a task. */
export type SendMessage = {
  task_id: TaskId;
  /** 1–4000 characters. */
  text: string;
};

/** One frame from the server. */
export type ServerFrame = {
  type: "ok";
} & OkReply | {
  type: "error";
} & ErrorReply | {
  type: "event";
} & EventFrame;

/** The snapshot a `subscribe` result carries; its shape follows the topic. */
export type Snapshot = TaskView | CoachSnapshot | AdminSnapshot | SeekerSnapshot | FeedSnapshot;

/** `start_work`: the assigned coach begins. */
export type StartWork = {
  task_id: TaskId;
};

/** `submit_verification`: the assigned coach delivers. */
export type SubmitVerification = {
  /** Up to 4000 characters. */
  notes?: string | null;
  task_id: TaskId;
};

/** `subscribe`: start receiving a topic (with a snapshot, or resuming after `since`). */
export type Subscribe = {
  /** The epoch `since` was seen in (a different epoch means reset). */
  epoch?: string | null;
  /** Only on `feed`. */
  filter?: FeedFilter | null;
  /**
   * Only on `feed` (1–1000): the snapshot holds the `limit` newest matching open tasks and
   * their `total`; live events still cover every matching task.
   */
  limit?: number | null;
  /** The last `seq` the client saw on this topic. */
  since?: number | null;
  topic: Topic;
};

/** Result of `subscribe`. */
export type SubscribeResult = {
  /** The journal's identity; a resume with another epoch gets a reset. */
  epoch: string;
  /** `true` when `since` could not be honoured and a fresh snapshot was sent. */
  reset?: boolean | null;
  /** The snapshot's position: live events follow from after it. */
  seq: number;
  /** Absent when the resume replays events instead. */
  snapshot?: Snapshot | null;
  topic: Topic;
};

/**
 * `GET /v1/tasks/{id}/events`: a page of one task's history, oldest first — every event an
 * admin subscribed to `task:<id>` receives, archived tasks' too.
 */
export type TaskHistory = {
  events: HistoryEvent[];
  /** The `after` of the next page; `null` when this page reaches `upto`. */
  next?: number | null;
  task_id: TaskId;
  /**
   * The journal position the history covers (with `next` null: every event of the task up
   * to it has been listed). A `subscribe` to `task:<id>` with `since: upto` goes on live.
   */
  upto: number;
};

export type TaskId = string;

/** The life cycle of a task (contract §5). */
export type TaskStatus = "open" | "assigned" | "in_progress" | "submitted" | "disputed" | "completed" | "canceled" | "refunded";

/** A task as its owner and admins see it (and, with only its own bid, its assigned coach). */
export type TaskView = {
  /** The task has left memory and is served from the archive (contract §9). */
  archived?: boolean;
  assigned?: AssignedView | null;
  award: Award;
  /** Pending bids. */
  bid_count: number;
  bidding_closes_at: number;
  /** Pending bids, best first (the coach's view: only its own). */
  bids: BidView[];
  created_at: number;
  escrow: EscrowView;
  owner: UserId;
  /** `[min, max]` a bid's amount must fall in. */
  price_range: [number, number];
  resume_id: string;
  /** Change requests so far (the third disputes the task). */
  revisions: number;
  status: TaskStatus;
  suggested_price: number;
  task_id: TaskId;
  task_type: string;
  /** The first three `bid_id`s of `bids` (empty in the coach's view). */
  top3: BidId[];
  urgency: Urgency;
};

/** One tier of a quote: the price a `post_task` sent now would get, and the market around it. */
export type TierQuote = {
  /** Coaches in good standing below their capacity (the same in every tier). */
  coaches_available: number;
  /** `null` while the tier has no sample yet. */
  market?: MarketStats | null;
  /** Open tasks of this type and tier. */
  open_tasks: number;
  price_range: [number, number];
  suggested_price: number;
};

export type Topic = string;

/** `unsubscribe`: stop receiving a topic. */
export type Unsubscribe = {
  topic: Topic;
};

/** How soon a task must be delivered; selects the tier (price multiplier and windows). */
export type Urgency = "urgent" | "standard" | "flexible";

/** Open tasks counted by urgency. */
export type UrgencyCounts = {
  flexible: number;
  standard: number;
  urgent: number;
};

export type UserId = string;

/** `withdraw_bid`: a coach takes its pending bid back. */
export type WithdrawBid = {
  bid_id: BidId;
};

/** Every frame of docs/protocol.md. Generated by `cargo run -p gavel-protocol --example write_schema`; do not edit. */
export type Frame = ClientFrame | ServerFrame;

/** What each client frame type answers with in `ok.result`. */
export interface CommandResults {
  subscribe: SubscribeResult;
  unsubscribe: Record<string, never>;
  post_task: PostTaskResult;
  place_bid: PlaceBidResult;
  withdraw_bid: Record<string, never>;
  accept_bid: AcceptBidResult;
  start_work: Record<string, never>;
  submit_verification: Record<string, never>;
  accept_verification: AcceptVerificationResult;
  request_changes: RequestChangesResult;
  cancel_task: CancelTaskResult;
  resolve_dispute: Record<string, never>;
  send_message: Record<string, never>;
  list_tasks: ListTasksResult;
  quote: QuoteResult;
  ping: Record<string, never>;
}
