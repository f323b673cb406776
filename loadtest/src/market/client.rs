//! One market connection — a seeker, a coach or an admin: its subscriptions, the commands it
//! sends, and what it checks and measures in every frame it receives.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::StreamExt;
use gavel_protocol::command::{CancelTask, PostTask, Subscribe, Unsubscribe};
use gavel_protocol::reply::{ErrorReply, OkReply};
use gavel_protocol::views::{PlaceBidResult, PostTaskResult, TaskView};
use gavel_protocol::{Command, FeedFilter, Role, TaskId, Topic, Urgency};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use super::frame::Frame;
use super::{Ctx, Outcome, Phase, RoleSpec, TaskRec, admin_id, coach_id, seeker_id};
use crate::client::{Order, close, encode, send_text, unexpected_close};
use crate::digest::{Acc, BASE_PRICES, Digest, TASK_TYPES, filter_class, fnv};
use crate::net::{Ws, unix_micros};
use crate::stats::{Batch, Class};

mod events;

#[derive(Debug)]
enum Pending {
    /// `initial`: the connection's first subscription (its latency is connect+subscribe).
    Subscribe {
        topic: String,
        initial: bool,
    },
    Unsubscribe {
        topic: String,
    },
    Post {
        task: String,
    },
    Bid {
        task: String,
    },
    Cancel {
        task: String,
    },
}

/// Which kind of topic an event came on.
#[derive(Debug, Clone, Copy)]
enum On {
    Feed,
    Admin,
    Task,
    /// `coach:` or `seeker:` (the market subscribes to neither).
    Other,
}

#[derive(Debug, Default)]
struct SeekerTask {
    seen: HashSet<String>,
    acc: Acc,
    cancel_sent: bool,
}

struct Client {
    ctx: Arc<Ctx>,
    role: RoleSpec,
    user: String,
    filter: Option<FeedFilter>,
    kind: Option<String>,
    next_id: u64,
    pending: HashMap<String, (Pending, Instant)>,
    order: Order,
    digest: Digest,
    tasks: HashMap<String, SeekerTask>,
    lat_feed: Batch,
    lat_task: Batch,
    lat_admin: Batch,
    lat_command: Batch,
    lat_at: Batch,
    dialed: Instant,
    ready: Option<mpsc::UnboundedSender<bool>>,
}

pub(super) async fn client(
    ctx: Arc<Ctx>,
    role: RoleSpec,
    ready: mpsc::UnboundedSender<bool>,
    mut phase: watch::Receiver<Phase>,
    mut trigger: Option<mpsc::Receiver<()>>,
) -> Outcome {
    let stats = ctx.stats.clone();
    let (user, role_name, filter, kind) = match role {
        RoleSpec::Seeker(i) => (seeker_id(&ctx.run, i), Role::Seeker, None, None),
        RoleSpec::Coach(i, _, class) => (
            coach_id(&ctx.run, i),
            Role::Coach,
            filter_class(class),
            Some(format!("feed:{class}")),
        ),
        RoleSpec::Admin(i) => (
            admin_id(&ctx.run, i),
            Role::Admin,
            None,
            Some("admin".into()),
        ),
    };
    let dialed = Instant::now();
    let token = match ctx.minter.mint(&user, role_name) {
        Ok(t) => t,
        Err(e) => {
            stats.transport(&format!("token: {e}"));
            let _ = ready.send(false);
            return Outcome::default();
        }
    };
    let mut ws = match ctx.dialer.dial(None, Some(&token)).await {
        Ok(ws) => ws,
        Err(e) => {
            stats.transport(&e.key);
            let _ = ready.send(false);
            return Outcome::default();
        }
    };
    stats.open.fetch_add(1, Ordering::Relaxed);
    let mut c = Client {
        lat_feed: Batch::new(&stats, Class::Feed),
        lat_task: Batch::new(&stats, Class::Task),
        lat_admin: Batch::new(&stats, Class::Admin),
        lat_command: Batch::new(&stats, Class::Command),
        lat_at: Batch::new(&stats, Class::EngineAt),
        ctx,
        role,
        user,
        filter,
        kind,
        next_id: 0,
        pending: HashMap::new(),
        order: Order::default(),
        digest: Digest::default(),
        tasks: HashMap::new(),
        dialed,
        ready: Some(ready),
    };
    let first = match role {
        RoleSpec::Seeker(_) => None,
        RoleSpec::Coach(..) => Some(Topic::Feed),
        RoleSpec::Admin(_) => Some(Topic::Admin),
    };
    let started = match first {
        Some(topic) => c.subscribe(&mut ws, topic, true).await,
        None => {
            stats.connected.fetch_add(1, Ordering::Relaxed);
            c.signal_ready(true);
            Ok(())
        }
    };
    let mut ended = started.is_err();
    if let Err(e) = started {
        stats.transport(&e);
        c.signal_ready(false);
    }
    while !ended {
        let next_trigger = async {
            match trigger.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() == Phase::Finish {
                    close(&mut ws, &stats).await;
                    break;
                }
            }
            Some(()) = next_trigger => {
                if let Err(e) = c.post(&mut ws).await {
                    stats.transport(&e);
                    ended = true;
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if let Err(e) = c.on_text(&mut ws, text.as_str()).await {
                        stats.transport(&e);
                        ended = true;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    unexpected_close(&stats, frame.as_ref());
                    ended = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    stats.transport(&format!("read: {e}"));
                    ended = true;
                }
                None => {
                    unexpected_close(&stats, None);
                    ended = true;
                }
            }
        }
    }
    c.signal_ready(false);
    stats.open.fetch_sub(1, Ordering::Relaxed);
    Outcome {
        digest: c.kind.clone().map(|k| (k, c.digest)),
        tasks: c.tasks.iter().map(|(t, s)| (t.clone(), s.acc)).collect(),
    }
}

impl Client {
    fn signal_ready(&mut self, ok: bool) {
        if let Some(tx) = self.ready.take() {
            let _ = tx.send(ok);
        }
    }

    /// Sends a command, remembering what it was for its reply.
    async fn command(
        &mut self,
        ws: &mut Ws,
        pending: Pending,
        command: Command,
    ) -> Result<(), String> {
        self.next_id += 1;
        let id = self.next_id.to_string();
        let text = encode(&id, command);
        self.pending.insert(id, (pending, Instant::now()));
        self.ctx.stats.sent.fetch_add(1, Ordering::Relaxed);
        self.ctx.stats.outstanding.fetch_add(1, Ordering::Relaxed);
        send_text(ws, text).await
    }

    async fn subscribe(&mut self, ws: &mut Ws, topic: Topic, initial: bool) -> Result<(), String> {
        let filter = if topic == Topic::Feed {
            self.filter.clone()
        } else {
            None
        };
        let pending = Pending::Subscribe {
            topic: topic.to_string(),
            initial,
        };
        let command = Command::Subscribe(Subscribe {
            limit: None,
            topic,
            filter,
            since: None,
            epoch: None,
        });
        self.command(ws, pending, command).await
    }

    /// A seeker posts a task whose id carries the send time.
    async fn post(&mut self, ws: &mut Ws) -> Result<(), String> {
        let ctx = self.ctx.clone();
        let n = ctx.task_no.fetch_add(1, Ordering::Relaxed);
        let task = format!("{}-{}-{n}-{}", ctx.run, ctx.worker, unix_micros());
        let h = fnv(&[task.as_bytes()]);
        let urgency = Urgency::ALL[(h % 3) as usize];
        let task_type = TASK_TYPES[((h >> 8) % 2) as usize];
        let base = BASE_PRICES[((h >> 16) % 3) as usize];
        ctx.ledger.lock().expect("ledger lock").insert(
            task.clone(),
            TaskRec {
                urgency: Some(urgency),
                task_type: task_type.to_owned(),
                ..TaskRec::default()
            },
        );
        let command = Command::PostTask(PostTask {
            resume_id: format!("resume-{n}"),
            task_type: Some(task_type.to_owned()),
            urgency,
            base_price: Some(base),
            award: None,
            task_id: Some(TaskId::new(&task).expect("harness task ids are valid")),
            owner: None,
        });
        self.tasks.insert(task.clone(), SeekerTask::default());
        self.command(ws, Pending::Post { task }, command).await
    }

    async fn on_text(&mut self, ws: &mut Ws, text: &str) -> Result<(), String> {
        let now_us = unix_micros();
        match Frame::parse(text) {
            Ok(Frame::Ok(ok)) => self.on_ok(ws, ok).await,
            Ok(Frame::Error(e)) => {
                self.on_error(e);
                Ok(())
            }
            Ok(Frame::Event(ev)) => self.on_event(ws, ev, now_us).await,
            Err(e) => {
                let cut: String = text.chars().take(200).collect();
                self.ctx
                    .stats
                    .violation(format!("undecodable frame ({e}): {cut}"));
                Ok(())
            }
        }
    }

    fn on_error(&mut self, e: ErrorReply) {
        let stats = self.ctx.stats.clone();
        stats.replies_err.fetch_add(1, Ordering::Relaxed);
        stats.error(e.code.as_str());
        let pending =
            e.id.as_ref()
                .and_then(|id| self.pending.remove(id.as_str()));
        if let Some((p, _)) = pending {
            stats.outstanding.fetch_sub(1, Ordering::Relaxed);
            if matches!(p, Pending::Subscribe { initial: true, .. }) {
                self.signal_ready(false);
            }
            stats.error_example(format!(
                "{}: {:?} refused: {} {}",
                self.user,
                p,
                e.code.as_str(),
                e.message
            ));
        }
    }

    async fn on_ok(&mut self, ws: &mut Ws, ok: OkReply) -> Result<(), String> {
        let stats = self.ctx.stats.clone();
        let Some((pending, sent)) = self.pending.remove(ok.id.as_str()) else {
            stats.violation(format!("{}: a reply to unknown id {}", self.user, ok.id));
            return Ok(());
        };
        stats.replies_ok.fetch_add(1, Ordering::Relaxed);
        stats.outstanding.fetch_sub(1, Ordering::Relaxed);
        let took = sent.elapsed().as_micros() as u64;
        match pending {
            Pending::Subscribe { topic, initial } => {
                let seq = ok.result.get("seq").and_then(|s| s.as_u64()).unwrap_or(0);
                self.order.start(&topic, seq);
                if initial {
                    stats.record(Class::Connect, self.dialed.elapsed().as_micros() as u64);
                    stats.connected.fetch_add(1, Ordering::Relaxed);
                    self.signal_ready(true);
                }
                if let Some(task) = topic.strip_prefix("task:") {
                    // Bids placed before the subscription are in the snapshot.
                    let view = ok
                        .result
                        .get("snapshot")
                        .cloned()
                        .map(serde_json::from_value::<TaskView>);
                    match view {
                        Some(Ok(view)) => {
                            for bid in view.bids {
                                self.bid_seen(task, bid.bid_id.as_str(), bid.coach_id.as_str());
                            }
                            self.maybe_cancel(ws, task).await?;
                        }
                        _ => stats.violation(format!("{topic}: subscribe without a task snapshot")),
                    }
                }
            }
            Pending::Unsubscribe { topic } => self.order.forget(&topic),
            Pending::Post { task } => {
                self.lat_command.record(took);
                match serde_json::from_value::<PostTaskResult>(ok.result) {
                    Ok(r) => {
                        // Acknowledged: from now on its events are owed to every subscriber.
                        if let Some(rec) =
                            self.ctx.ledger.lock().expect("ledger lock").get_mut(&task)
                        {
                            rec.suggested = Some(r.suggested_price);
                        }
                        let topic = Topic::Task(r.task_id);
                        self.subscribe(ws, topic, false).await?;
                    }
                    Err(e) => stats.violation(format!("post_task result: {e}")),
                }
            }
            Pending::Bid { task } => {
                self.lat_command.record(took);
                match serde_json::from_value::<PlaceBidResult>(ok.result) {
                    Ok(r) => self
                        .ctx
                        .ledger
                        .lock()
                        .expect("ledger lock")
                        .entry(task)
                        .or_default()
                        .bids
                        .push(r.bid_id.to_string()),
                    Err(e) => stats.violation(format!("place_bid result: {e}")),
                }
            }
            Pending::Cancel { task } => {
                self.lat_command.record(took);
                if let Some(rec) = self.ctx.ledger.lock().expect("ledger lock").get_mut(&task) {
                    rec.canceled = true;
                }
                let topic = Topic::Task(TaskId::new(&task).expect("valid"));
                let pending = Pending::Unsubscribe {
                    topic: topic.to_string(),
                };
                self.command(ws, pending, Command::Unsubscribe(Unsubscribe { topic }))
                    .await?;
            }
        }
        Ok(())
    }

    /// A seeker saw a bid on its task (in the snapshot or as `bid.placed`).
    fn bid_seen(&mut self, task: &str, bid: &str, coach: &str) {
        let Some(t) = self.tasks.get_mut(task) else {
            self.ctx.stats.violation(format!(
                "{}: a bid on a task it does not own: {task}",
                self.user
            ));
            return;
        };
        if !t.seen.insert(bid.to_owned()) {
            self.ctx
                .stats
                .violation(format!("task:{task}: bid {bid} delivered twice"));
        }
        t.acc.add(&[bid.as_bytes()]);
        let _ = coach;
    }

    async fn maybe_cancel(&mut self, ws: &mut Ws, task: &str) -> Result<(), String> {
        let k = self.ctx.k;
        if self.ctx.args.no_cancel {
            return Ok(());
        }
        let Some(t) = self.tasks.get_mut(task) else {
            return Ok(());
        };
        if t.cancel_sent || t.seen.len() < k {
            return Ok(());
        }
        t.cancel_sent = true;
        let command = Command::CancelTask(CancelTask {
            task_id: TaskId::new(task).expect("valid"),
            reason: None,
        });
        let pending = Pending::Cancel {
            task: task.to_owned(),
        };
        self.command(ws, pending, command).await
    }

    fn bid_latency(&self, task: &str, coach: &str, now_us: u64) -> Option<u64> {
        let key = format!("{task}|{coach}");
        let sent = *self.ctx.bid_sent.lock().expect("bid map lock").get(&key)?;
        Some(now_us.saturating_sub(sent))
    }

    /// Whether this bidder (local slot) is one of the `k` chosen for `task`.
    fn chosen(&self, slot: usize, task: &str) -> bool {
        let n = self.ctx.local_bidders;
        if n == 0 {
            return false;
        }
        let first = (fnv(&[task.as_bytes()]) % n as u64) as usize;
        (slot + n - first) % n < self.ctx.k
    }
}
