//! The messages of the pipeline: sessions and the HTTP API → engine task ([`EngineMsg`]),
//! engine task → publisher ([`PublishItem`]). Both channels are bounded.

use std::time::Instant;

use gavel_engine::{Engine, Rejection, Reply, Request};
use gavel_protocol::views::Snapshot;
use gavel_protocol::{FeedFilter, RequestId, Seq, Topic};
use gavel_storage::{Batch, StorageError};
use tokio::sync::oneshot;

use crate::fanout::archive_reads::{ArchiveRead, ArchiveReply};
use crate::fanout::outbox::{ConnHandle, ConnId};

/// Commands waiting for the engine. Full → the session answers `UNAVAILABLE` (counted in
/// `gavel_queue_full_rejections_total`); nothing waits unboundedly.
pub const COMMAND_QUEUE: usize = 4096;
/// Decided batches waiting to be published (the engine waits when this is full, which in
/// turn fills the command queue: backpressure, not memory growth).
pub const PUBLISH_QUEUE: usize = 1024;
/// Most messages the engine takes into one batch.
pub const MAX_BATCH: usize = 512;

/// Where a command's reply goes.
#[derive(Debug)]
pub enum ReplyTo {
    /// A WebSocket client: an `ok`/`error` frame, when the frame carried an `id` (errors
    /// always).
    Conn {
        conn: ConnHandle,
        id: Option<RequestId>,
    },
    /// An HTTP request waiting for the outcome.
    Http(oneshot::Sender<Result<Reply, Rejection>>),
    /// A command a cluster follower forwarded to this leader: the outcome and the `seq` the
    /// follower's replica must reach before it relays the reply (read your writes).
    Forward(oneshot::Sender<(Seq, Result<Reply, Rejection>)>),
}

/// A `subscribe` on its way through the pipeline.
#[derive(Debug)]
pub struct SubscribeRequest {
    pub actor: gavel_engine::Actor,
    pub topic: Topic,
    pub filter: Option<FeedFilter>,
    /// On `feed`: only the newest `limit` open tasks in the snapshot, with `total`.
    pub limit: Option<u32>,
    pub since: Option<Seq>,
    pub epoch: Option<String>,
    pub conn: ConnHandle,
    pub id: Option<RequestId>,
    /// A resume the publisher could not serve, sent back for a fresh snapshot (`reset: true`).
    pub resume_failed: bool,
    /// For such a resume sent back by a catch-up reader: that reader's generation (the
    /// snapshot is wanted only if nothing superseded it meanwhile).
    pub reset_generation: Option<u64>,
}

/// What reaches the engine task.
pub enum EngineMsg {
    Command {
        request: Request,
        reply_to: ReplyTo,
        received: Instant,
    },
    Subscribe(SubscribeRequest),
    Unsubscribe {
        conn: ConnHandle,
        topic: Topic,
        id: Option<RequestId>,
    },
    Disconnected {
        conn: ConnId,
    },
    /// `list_tasks` (contract §9): the engine cuts the live page, the archive the rest.
    ListTasks {
        actor: gavel_engine::Actor,
        command: gavel_protocol::command::ListTasks,
        conn: ConnHandle,
        id: Option<RequestId>,
    },
    /// A read of the engine's state (e.g. `GET /v1/tasks/{id}`), run on the engine task.
    Query(Box<dyn FnOnce(&Engine) + Send>),
    /// A cluster follower's replica input: durable events from the leader, in `seq` order
    /// and contiguous with what came before.
    Replicated(Vec<(Seq, gavel_engine::Event)>),
    /// A cluster follower's forwarded command, answered by the leader: relayed once the
    /// replica has applied everything up to `after`.
    Forwarded {
        after: Seq,
        reply_to: ReplyTo,
        result: Result<Reply, Rejection>,
        command: &'static str,
        received: Instant,
    },
}

impl std::fmt::Debug for EngineMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineMsg::Command { request, .. } => write!(f, "Command({})", request.command.name()),
            EngineMsg::Subscribe(s) => write!(f, "Subscribe({})", s.topic),
            EngineMsg::Unsubscribe { topic, .. } => write!(f, "Unsubscribe({topic})"),
            EngineMsg::Disconnected { conn } => write!(f, "Disconnected({conn})"),
            EngineMsg::ListTasks { .. } => f.write_str("ListTasks"),
            EngineMsg::Query(_) => f.write_str("Query"),
            EngineMsg::Replicated(events) => write!(f, "Replicated({})", events.len()),
            EngineMsg::Forwarded { command, .. } => write!(f, "Forwarded({command})"),
        }
    }
}

/// A subscription the publisher registers once every event up to `seq` is out.
#[derive(Debug)]
pub struct Subscription {
    pub request: SubscribeRequest,
    /// Whether the subscriber sees the privileged view of a task (owner, admin).
    pub privileged: bool,
    /// The engine's position when the subscription was decided.
    pub seq: Seq,
    /// The snapshot at `seq`, or `None` for a resume after `request.since`.
    pub snapshot: Option<Snapshot>,
    /// Set when a resume could not be honoured and this is its fresh snapshot.
    pub reset: bool,
    /// A `feed` snapshot too large for the engine task: the replica builds it (`snapshot`
    /// is then `None` and this is not a resume).
    pub deferred: bool,
}

/// One step of a published batch, taken once every event up to `after` is out.
#[derive(Debug)]
pub enum Step {
    Reply {
        after: Seq,
        reply_to: ReplyTo,
        result: Result<Reply, Rejection>,
        command: &'static str,
        received: Instant,
    },
    Subscribe {
        after: Seq,
        subscription: Box<Subscription>,
    },
    Unsubscribe {
        after: Seq,
        conn: ConnHandle,
        topic: Topic,
        id: Option<RequestId>,
    },
    Disconnected {
        conn: ConnId,
    },
    /// A read of the archive, served once every event up to `after` is durable.
    Archive {
        after: Seq,
        read: ArchiveRead,
        reply: ArchiveReply,
    },
}

impl Step {
    /// The position after which the step is taken.
    pub fn after(&self) -> Seq {
        match self {
            Step::Reply { after, .. }
            | Step::Subscribe { after, .. }
            | Step::Unsubscribe { after, .. }
            | Step::Archive { after, .. } => *after,
            Step::Disconnected { .. } => 0,
        }
    }
}

/// A decided batch: its events (to be durable first), and the steps to take after them.
#[derive(Debug)]
pub struct PublishItem {
    /// The journal writer's answer for `events`; `None` when the batch has no events.
    pub commit: Option<oneshot::Receiver<Result<(), StorageError>>>,
    pub events: Batch,
    pub steps: Vec<Step>,
    pub decided_at: Instant,
}

/// What reaches the publisher.
#[derive(Debug)]
pub enum PublisherMsg {
    Item(PublishItem),
    /// The engine rebuilt itself from the journal after a failed commit: publishing resumes.
    Rebuilt {
        seq: Seq,
    },
}
