//! One WebSocket connection: a single task that reads client frames, writes queued frames
//! (everything queued, then one flush), pings, and enforces the per-connection rules — bad
//! frame policy (1008), size limit (1009), token expiry (4001), silence (closed after the idle
//! timeout), slow consumer (4008, decided by whoever found the queue full).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use gavel_engine::{Actor, Command, Rejection, Request};
use gavel_protocol::command::Command as WireCommand;
use gavel_protocol::{Claims, CloseCode, ErrorCode, RequestId, parse_client_frame};
use tokio::sync::OwnedSemaphorePermit;

use crate::app::AppState;
use crate::cluster::forward::{Charge, Forward};
use crate::durability::replies::{error_frame, ok_empty_frame, ok_value_frame};
use crate::fanout::outbox::{ConnHandle, Outbox, connection};
use crate::ingress::rate_limit::UserRateLimiter;
use crate::ingress::read_wake::ReadWake;
use crate::sequencer::handle::unavailable;
use crate::sequencer::messages::{EngineMsg, ReplyTo, SubscribeRequest};

/// Frames written per flush at most (the rest go in the next round).
const MAX_FRAMES_PER_FLUSH: usize = 256;

/// Serves one upgraded connection until it closes.
///
/// A plain function returning an `async move` block rather than an `async fn`: an `async fn`
/// keeps its arguments and the copies its body moves them into side by side in its state, so
/// the 368-byte socket would be held twice by every connection's task.
#[allow(clippy::manual_async_fn)]
pub fn run(
    mut socket: WebSocket,
    claims: Claims,
    state: Arc<AppState>,
    permit: OwnedSemaphorePermit,
) -> impl Future<Output = ()> {
    async move {
        // No `conn` span around the task: `.instrument(span)` entered and left it on every poll
        // (~650 instructions per wake-up, one wake-up per delivered frame) and kept ~388 bytes
        // per connection in the subscriber. The session's own log lines carry
        // `conn`/`user`/`role` instead — nothing else logs on this task.
        let id = state.conn_ids.next();
        let (handle, mut outbox) = connection(id, claims.sub.clone(), state.metrics.clone());
        state
            .connections
            .lock()
            .expect("connection registry lock")
            .insert(id, handle.clone());
        state.metrics.connections.inc();
        tracing::debug!(conn = id, user = %claims.sub, role = %claims.role, "connected");
        let mut session = Session {
            state: state.clone(),
            actor: Actor::new(claims.sub.clone(), claims.role),
            handle,
            bad_frames: VecDeque::new(),
        };
        let code = session.serve(&mut socket, &mut outbox, claims.exp).await;
        // The TCP connection closes now, before the bookkeeping (as when `serve` owned it).
        drop(socket);
        tracing::debug!(conn = id, user = %claims.sub, role = %claims.role, ?code, "disconnected");
        state
            .connections
            .lock()
            .expect("connection registry lock")
            .remove(&id);
        state.metrics.connections.dec();
        let _ = state.engine.try_send(EngineMsg::Disconnected { conn: id });
        drop(permit);
    }
}

struct Session {
    state: Arc<AppState>,
    actor: Actor,
    handle: ConnHandle,
    /// When recent bad frames arrived (for the 1008 policy).
    bad_frames: VecDeque<Instant>,
}

impl Session {
    /// The connection's loop; returns the close code sent, if any.
    ///
    /// Kept small and cheap per wake-up, since an idle connection is mostly this future and
    /// every delivered frame wakes it once: the socket read only when its read side woke
    /// ([`ReadWake`]), one timer for both the ping and the token's expiry
    /// ([`Heartbeat`]), a write timer only when a write cannot complete at once, writes polled
    /// by hand ([`write_within`]), the socket and outbox borrowed (an `async fn` keeps its
    /// arguments apart from its body's state: moved in, the 368-byte socket would be held
    /// twice), and the close handshake boxed (it runs once, at the end).
    async fn serve(
        &mut self,
        socket: &mut WebSocket,
        outbox: &mut Outbox,
        exp: u64,
    ) -> Option<CloseCode> {
        // What the loop needs of the limits, not a copy of them all (it would live in every
        // connection's future).
        let limits = &self.state.limits;
        let write_timeout = Duration::from_secs(limits.write_timeout_secs);
        let idle_timeout = Duration::from_secs(limits.idle_timeout_secs);
        let max_frame_bytes = limits.max_frame_bytes;
        let mut heartbeat = Heartbeat::new(Duration::from_secs(limits.ping_interval_secs), exp);
        let mut last_heard = Instant::now();
        let read_wake = ReadWake::new();
        let close_code = loop {
            tokio::select! {
                biased;
                frame = outbox.recv() => match frame {
                    Some(first) => {
                        let rest = take_rest(outbox);
                        let deadline = write_deadline(write_timeout, &first, &rest);
                        let frames = std::iter::once(first).chain(rest).map(Message::Text);
                        match write_within(socket, frames, deadline).await {
                            Written::Done => outbox.written(),
                            Written::Failed => break None,
                            Written::TimedOut => return self.write_timed_out(),
                        }
                    }
                    None => break outbox.close_code(),
                },
                incoming = read_wake.next(socket) => {
                    last_heard = Instant::now();
                    match incoming {
                        Some(Ok(Message::Text(text))) => {
                            if text.len() > max_frame_bytes {
                                break Some(CloseCode::TooBig);
                            }
                            if let Some(code) = self.on_text(&text) {
                                break Some(code);
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            let rejection = Rejection { code: ErrorCode::BadRequest, message: "binary frames are not supported; send JSON text".into(), field: None };
                            self.handle.send(error_frame(None, &rejection, None));
                            if self.bad_frame() {
                                break Some(CloseCode::Policy);
                            }
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) | None => break None,
                        // tungstenite refuses frames over the size limit before we see them.
                        Some(Err(e)) if is_too_long(&e) => break Some(CloseCode::TooBig),
                        Some(Err(_)) => break None,
                    }
                }
                beat = heartbeat.next() => match beat {
                    Beat::TokenExpired => break Some(CloseCode::TokenExpired),
                    Beat::Ping => {
                        if last_heard.elapsed() > idle_timeout {
                            break Some(CloseCode::Idle);
                        }
                        let ping = std::iter::once(Message::Ping(Default::default()));
                        match write_within(socket, ping, write_timeout).await {
                            Written::Done => {}
                            Written::Failed => break None,
                            Written::TimedOut => return self.write_timed_out(),
                        }
                    }
                },
            }
        };
        if let Some(code) = close_code {
            Box::pin(close_handshake(socket, code)).await;
        }
        close_code
    }

    /// A write did not complete within `write_timeout_secs`: the client stopped reading and
    /// its socket buffer is full. No close frame can get through a full socket, so the
    /// connection is dropped at once (4008 is what it counts as) and its queue freed.
    fn write_timed_out(&self) -> Option<CloseCode> {
        tracing::debug!(
            conn = self.handle.id(),
            user = %self.actor.user,
            role = %self.actor.role,
            "write timed out: closing as a slow consumer"
        );
        self.state.metrics.write_timeouts.inc();
        self.state.metrics.slow_consumer_closes.inc();
        self.handle.close(CloseCode::SlowConsumer);
        Some(CloseCode::SlowConsumer)
    }

    /// Records a bad frame; `true` when the policy says close.
    fn bad_frame(&mut self) -> bool {
        self.state.metrics.bad_frames.inc();
        let now = Instant::now();
        let window = Duration::from_secs(self.state.limits.bad_frame_window_secs);
        while self
            .bad_frames
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.bad_frames.pop_front();
        }
        self.bad_frames.push_back(now);
        self.bad_frames.len() >= self.state.limits.bad_frames as usize
    }

    /// Handles one text frame; returns a close code when the connection must close.
    /// Checks one of the per-user limits (`[limits] subscribes_per_minute` for subscribes,
    /// `commands_per_minute` for commands and reads); over it the client is told when to retry.
    fn allowed(&self, limiter: &UserRateLimiter, what: &str, id: Option<RequestId>) -> bool {
        let Err(wait_ms) = limiter.check(&self.actor.user) else {
            return true;
        };
        self.state.metrics.rate_limited.inc();
        let rejection = Rejection {
            code: ErrorCode::RateLimited,
            message: format!("too many {what}; slow down"),
            field: None,
        };
        self.handle.send(error_frame(id, &rejection, Some(wait_ms)));
        false
    }

    /// Serves a read (`msg`, to the engine task) within the user's command budget. Where this
    /// node decides, its own limiter counts it; on a cluster follower the leader's one limiter
    /// does (contract §12: one budget across the cluster), asked over the forward link before
    /// the read is served here from the replica.
    fn read(&self, msg: EngineMsg, id: Option<RequestId>) {
        let busy = |why| {
            self.handle
                .send(error_frame(id.clone(), &unavailable(why), None));
        };
        let Some(link) = &self.state.forward else {
            if self.allowed(&self.state.rate_limiter, "commands", id.clone())
                && self.state.engine.try_send(msg).is_err()
            {
                busy("the server is busy; retry shortly");
            }
            return;
        };
        let charge = Charge {
            user: self.actor.user.clone(),
            read: msg,
            local: self.state.rate_limiter.clone(),
            conn: self.handle.clone(),
            id: id.clone(),
            received: Instant::now(),
        };
        if link.try_send(Forward::Charge(charge)).is_err() {
            busy("too many commands waiting for the leader; retry shortly");
        }
    }

    fn on_text(&mut self, text: &str) -> Option<CloseCode> {
        let frame = match parse_client_frame(text) {
            Ok(frame) => frame,
            Err(e) => {
                let rejection = Rejection {
                    code: e.code,
                    message: e.message,
                    field: e.field,
                };
                self.handle.send(error_frame(e.id, &rejection, None));
                return self.bad_frame().then_some(CloseCode::Policy);
            }
        };
        let id = frame.id;
        let busy = |handle: &ConnHandle, id| {
            handle.send(error_frame(
                id,
                &unavailable("the server is busy; retry shortly"),
                None,
            ));
        };
        match frame.command {
            WireCommand::Ping => {
                if let Some(id) = id {
                    self.handle.send(ok_empty_frame(id));
                }
            }
            WireCommand::Subscribe(s) => {
                if !self.allowed(&self.state.subscribe_limiter, "subscribes", id.clone()) {
                    return None;
                }
                let request = SubscribeRequest {
                    actor: self.actor.clone(),
                    topic: s.topic,
                    filter: s.filter,
                    limit: s.limit,
                    since: s.since,
                    epoch: s.epoch,
                    conn: self.handle.clone(),
                    id: id.clone(),
                    resume_failed: false,
                    reset_generation: None,
                };
                if self
                    .state
                    .engine
                    .try_send(EngineMsg::Subscribe(request))
                    .is_err()
                {
                    busy(&self.handle, id);
                }
            }
            // Reads count as commands (contract §1 exempts only subscriptions and pings).
            WireCommand::ListTasks(command) => {
                let msg = EngineMsg::ListTasks {
                    actor: self.actor.clone(),
                    command,
                    conn: self.handle.clone(),
                    id: id.clone(),
                };
                self.read(msg, id);
            }
            WireCommand::Quote(quote) => {
                let conn = self.handle.clone();
                let reply_id = id.clone();
                let metrics = self.state.metrics.clone();
                let msg = EngineMsg::Query(Box::new(move |engine| {
                    if let Some(id) = reply_id {
                        conn.send(ok_value_frame(id, &engine.quote(&quote)));
                    }
                    metrics.commands.with_label_values(&["quote", "ok"]).inc();
                }));
                self.read(msg, id);
            }
            WireCommand::Unsubscribe(u) => {
                let msg = EngineMsg::Unsubscribe {
                    conn: self.handle.clone(),
                    topic: u.topic,
                    id: id.clone(),
                };
                if self.state.engine.try_send(msg).is_err() {
                    busy(&self.handle, id);
                }
            }
            command => {
                // On a cluster follower the leader applies the limit (one limiter for the
                // whole cluster); here only when this node decides.
                let limited_here = self.state.cluster.as_ref().is_none_or(|c| {
                    matches!(c.role(), crate::cluster::state::NodeRole::Leader { .. })
                });
                let checked = if limited_here {
                    self.state.rate_limiter.check(&self.actor.user)
                } else {
                    Ok(())
                };
                if let Err(wait_ms) = checked {
                    self.state.metrics.rate_limited.inc();
                    let rejection = Rejection {
                        code: ErrorCode::RateLimited,
                        message: "too many commands; slow down".into(),
                        field: None,
                    };
                    self.handle.send(error_frame(id, &rejection, Some(wait_ms)));
                    return None;
                }
                let command = Command::from_client(command)
                    .expect("subscriptions and pings are handled above");
                let request = Request {
                    actor: self.actor.clone(),
                    request_id: id.clone(),
                    command,
                };
                let reply_to = ReplyTo::Conn {
                    conn: self.handle.clone(),
                    id: id.clone(),
                };
                let msg = EngineMsg::Command {
                    request,
                    reply_to,
                    received: Instant::now(),
                };
                if self.state.engine.try_send(msg).is_err() {
                    busy(&self.handle, id);
                }
            }
        }
        None
    }
}

/// Whether a read failed because the client's frame exceeded the size limit (tungstenite
/// refuses it before we see it).
fn is_too_long(error: &axum::Error) -> bool {
    use std::error::Error as _;
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::error::CapacityError;
    matches!(
        error.source().and_then(|e| e.downcast_ref::<WsError>()),
        Some(WsError::Capacity(CapacityError::MessageTooLong { .. }))
    )
}

/// Whatever is queued behind a first frame, up to [`MAX_FRAMES_PER_FLUSH`] frames in all:
/// empty (no allocation) when the first frame came alone, as it does at light load.
fn take_rest(outbox: &mut Outbox) -> Vec<Utf8Bytes> {
    let mut rest = Vec::new();
    while rest.len() + 1 < MAX_FRAMES_PER_FLUSH {
        match outbox.try_recv() {
            Some(frame) => rest.push(frame),
            None => break,
        }
    }
    rest
}

/// A write must go at least this fast once past `write_timeout_secs`: a large snapshot gets
/// the time it needs at that rate, a client that stops reading none.
const WRITE_RATE_FLOOR_BYTES_PER_SEC: u64 = 1024 * 1024;

/// How long writing a batch may take: the write timeout, plus what its size needs at
/// [`WRITE_RATE_FLOOR_BYTES_PER_SEC`] (a batch of ordinary frames adds nothing that matters).
fn write_deadline(write_timeout: Duration, first: &Utf8Bytes, rest: &[Utf8Bytes]) -> Duration {
    let bytes: u64 = std::iter::once(first)
        .chain(rest)
        .map(|f| f.as_str().len() as u64)
        .sum();
    write_timeout + Duration::from_millis(bytes * 1000 / WRITE_RATE_FLOOR_BYTES_PER_SEC)
}

/// How a write ended.
enum Written {
    Done,
    /// The socket failed (the client went away).
    Failed,
    /// The write did not finish within its deadline: the client stopped reading.
    TimedOut,
}

/// Writes `frames`, then flushes once, giving it all `deadline` to finish. A write that
/// completes at once — the socket had room, as it has for a client that reads — needs no
/// timer: the timer (a registration in tokio's timer wheel, inserted and removed) is made only
/// when the write has to wait. Polled by hand rather than composed of `feed`/`flush` futures
/// and a `select!` in an `async fn`: their state, held inside every connection's task, was
/// ~350 bytes larger.
fn write_within(
    socket: &mut WebSocket,
    mut frames: impl Iterator<Item = Message>,
    deadline: Duration,
) -> impl Future<Output = Written> {
    let mut next = frames.next();
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(move |cx| {
        let written = loop {
            let Some(frame) = next.take() else {
                break socket.poll_flush_unpin(cx);
            };
            match socket.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
                Poll::Pending => {
                    next = Some(frame);
                    break Poll::Pending;
                }
            }
            if let Err(e) = socket.start_send_unpin(frame) {
                break Poll::Ready(Err(e));
            }
            next = frames.next();
        };
        match written {
            Poll::Ready(Ok(())) => Poll::Ready(Written::Done),
            Poll::Ready(Err(_)) => Poll::Ready(Written::Failed),
            Poll::Pending => {
                let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(deadline)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Written::TimedOut),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    })
}

/// Sends the close frame, then waits (briefly) for the client's close reply, reading whatever
/// it sent meanwhile (pongs, commands): closing the TCP connection with unread data makes the
/// kernel reset it, and a reset discards the client's unread bytes — the close frame (with its
/// code: 1001, 4008, …) among them.
async fn close_handshake(socket: &mut WebSocket, code: CloseCode) {
    let frame = CloseFrame {
        code: code.code(),
        reason: Utf8Bytes::from_static(code.reason()),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        if socket.send(Message::Close(Some(frame))).await.is_ok() {
            while let Some(Ok(msg)) = socket.recv().await {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
            }
        }
    })
    .await;
}

/// What the connection's one timer says.
enum Beat {
    /// Time to ping (and to check the client was heard from within the idle timeout).
    Ping,
    /// The token's `exp` has passed: close with 4001.
    TokenExpired,
}

/// The connection's one timer, for both its pings and its token's expiry: an idle connection
/// holds one timer entry instead of two (a ping `Interval` and a `Sleep` until `exp`).
struct Heartbeat {
    timer: Pin<Box<tokio::time::Sleep>>,
    every: Duration,
    next_ping: tokio::time::Instant,
    expires: tokio::time::Instant,
}

impl Heartbeat {
    fn new(every: Duration, exp: u64) -> Self {
        let now = tokio::time::Instant::now();
        let now_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // A token's remaining life, at most a century: `Instant + Duration` panics past what
        // the clock can hold, and a token may say `exp` = u64::MAX (`gavel token --ttl`).
        let life_secs = exp.saturating_sub(now_secs).min(100 * 365 * 86_400);
        let expires = now + Duration::from_secs(life_secs);
        let next_ping = now + every;
        Heartbeat {
            timer: Box::pin(tokio::time::sleep_until(next_ping.min(expires))),
            every,
            next_ping,
            expires,
        }
    }

    /// Waits for the next ping or the token's expiry, whichever comes first (expiry wins a tie).
    async fn next(&mut self) -> Beat {
        self.timer.as_mut().await;
        let now = tokio::time::Instant::now();
        if now >= self.expires {
            return Beat::TokenExpired;
        }
        // The next ping a full period after this one, however late this one ran.
        self.next_ping = now + self.every;
        let at = self.next_ping.min(self.expires);
        self.timer.as_mut().reset(at);
        Beat::Ping
    }
}

/// Closes every connection with 1001 (shutdown).
pub fn close_all(state: &AppState) {
    for handle in state
        .connections
        .lock()
        .expect("connection registry lock")
        .values()
    {
        handle.close(CloseCode::GoingAway);
    }
}

/// The bytes each part of a connection's task takes (an idle connection is mostly this task):
/// a measurement, not a check — sizes differ between debug and release builds and between
/// compilers. `cargo test --release -p gavel-gateway --lib future_sizes -- --ignored --nocapture`
#[cfg(test)]
mod future_sizes {
    use super::*;

    fn size_of_future<A, F: Future>(_: impl Fn(A) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    fn serve<'a>(a: (&'a mut Session, &'a mut WebSocket, &'a mut Outbox, u64)) -> impl Future + 'a {
        a.0.serve(a.1, a.2, a.3)
    }

    fn write(a: (&mut WebSocket, Utf8Bytes, Vec<Utf8Bytes>)) -> impl Future + '_ {
        let frames = std::iter::once(a.1).chain(a.2).map(Message::Text);
        write_within(a.0, frames, Duration::ZERO)
    }

    #[test]
    #[ignore = "a measurement: run it with --nocapture"]
    #[allow(clippy::print_stderr)]
    fn future_sizes() {
        let run = size_of_future(
            |a: (WebSocket, Claims, Arc<AppState>, OwnedSemaphorePermit)| run(a.0, a.1, a.2, a.3),
        );
        eprintln!(
            "bytes: run {run}, serve {}, write {}, socket {}, session {}, heartbeat {}",
            size_of_future(serve),
            size_of_future(write),
            std::mem::size_of::<WebSocket>(),
            std::mem::size_of::<Session>(),
            std::mem::size_of::<Heartbeat>(),
        );
    }
}
