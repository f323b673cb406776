//! What a market connection checks and does with each event it receives: the topic and the
//! order of its `seq`, then per kind the field it reads (a malformed one is a protocol
//! violation) and what follows — a coach's bid, a seeker's cancel.

use std::sync::atomic::Ordering;

use gavel_protocol::command::PlaceBid;
use gavel_protocol::views::FeedTask;
use gavel_protocol::{Command, Topic};

use super::super::RoleSpec;
use super::super::frame::EventHead;
use super::{Client, On, Pending};
use crate::client::parse_task_id;
use crate::digest::fnv;
use crate::net::{Ws, unix_micros};

impl Client {
    pub(super) async fn on_event(
        &mut self,
        ws: &mut Ws,
        ev: EventHead<'_>,
        now_us: u64,
    ) -> Result<(), String> {
        let stats = self.ctx.stats.clone();
        let on = match ev.topic.as_ref() {
            "feed" => On::Feed,
            "admin" => On::Admin,
            other => match other.parse::<Topic>() {
                Ok(Topic::Task(_)) => On::Task,
                Ok(_) => On::Other,
                Err(e) => {
                    stats.violation(format!("{}: an event on topic {other:?}: {e}", self.user));
                    return Ok(());
                }
            },
        };
        if ev.kind == "stats" {
            stats.stats_frames.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = ev.whole() {
                stats.violation(format!("{} on {}: stats: {e}", self.user, ev.topic));
            }
            return Ok(());
        }
        stats.event_arrived(now_us);
        let now_ms = now_us / 1000;
        if now_ms >= ev.at {
            self.lat_at.record((now_ms - ev.at) * 1000);
        }
        if let Err(last) = self.order.check(&ev.topic, ev.seq) {
            stats.violation(format!(
                "{} on {}: seq {} after {last} ({})",
                self.user, ev.topic, ev.seq, ev.kind
            ));
        }
        let Some(task) = ev.task_id() else {
            return Ok(());
        };
        let Some((group, sent_us)) = parse_task_id(task, &self.ctx.run) else {
            return Ok(()); // another run's task
        };
        let mine = group == self.ctx.worker;
        if let Err(e) = self
            .act_on(ws, &ev, on, task, mine, sent_us, now_us)
            .await?
        {
            stats.violation(format!("{} on {}: {}: {e}", self.user, ev.topic, ev.kind));
        }
        Ok(())
    }

    /// Checks and acts on one event of this run's `task`. Each arm reads what it acts on, so a
    /// malformed field is a violation (the inner `Err`); every other kind is read whole, so an
    /// unknown kind or field is one too. The outer `Err` is the connection's (a send failed).
    #[allow(clippy::too_many_arguments)] // the event's parts, worked out once by `on_event`
    async fn act_on(
        &mut self,
        ws: &mut Ws,
        ev: &EventHead<'_>,
        on: On,
        task: &str,
        mine: bool,
        sent_us: u64,
        now_us: u64,
    ) -> Result<Result<(), String>, String> {
        Ok(match (on, ev.kind.as_ref()) {
            (On::Feed, "task.opened") => match ev.opened_task() {
                Ok(view) => {
                    self.digest.opened(task);
                    self.lat_feed.record(now_us.saturating_sub(sent_us));
                    self.on_opened(ws, view, task, mine).await?;
                    Ok(())
                }
                Err(e) => Err(e),
            },
            (On::Feed | On::Admin, "task.bid_count") => ev
                .bid_count()
                .map(|count| self.digest.bid_count(task, count)),
            (On::Feed | On::Admin, "task.closed") => {
                ev.closed_status().map(|_| self.digest.closed(task))
            }
            (On::Admin, "task.opened") => ev.opened_task().map(|_| {
                self.digest.opened(task);
                self.lat_admin.record(now_us.saturating_sub(sent_us));
            }),
            (On::Admin, "bid.placed") => ev.bid().map(|bid| {
                self.digest.bid_placed(bid.bid_id.as_str());
                if let Some(l) = self.bid_latency(task, bid.coach_id.as_str(), now_us) {
                    self.lat_admin.record(l);
                }
            }),
            (On::Task, "bid.placed") => match ev.bid() {
                Ok(bid) => {
                    if let Some(l) = self.bid_latency(task, bid.coach_id.as_str(), now_us) {
                        self.lat_task.record(l);
                    }
                    self.bid_seen(task, bid.bid_id.as_str(), bid.coach_id.as_str());
                    self.maybe_cancel(ws, task).await?;
                    Ok(())
                }
                Err(e) => Err(e),
            },
            _ => ev.whole().map(|_| ()),
        })
    }

    /// A task opened on `feed`: a filtered coach checks it passed its filter, a chosen bidder
    /// bids. An error is the connection's (the bid could not be sent).
    async fn on_opened(
        &mut self,
        ws: &mut Ws,
        view: FeedTask,
        task: &str,
        mine: bool,
    ) -> Result<(), String> {
        if let Some(f) = &self.filter
            && !f.matches_task(&view)
        {
            self.ctx
                .stats
                .violation(format!("{}: {task} passed its filter", self.user));
        }
        let bids = match self.role {
            RoleSpec::Coach(_, Some(slot), _) => mine && self.chosen(slot, task),
            _ => false,
        };
        if !bids {
            return Ok(());
        }
        let [min, max] = view.price_range;
        let amount = min + fnv(&[task.as_bytes(), self.user.as_bytes()]) % (max - min + 1);
        self.ctx
            .bid_sent
            .lock()
            .expect("bid map lock")
            .insert(format!("{task}|{}", self.user), unix_micros());
        let command = Command::PlaceBid(PlaceBid {
            task_id: view.task_id,
            amount,
            eta_hours: 1,
        });
        self.command(
            ws,
            Pending::Bid {
                task: task.to_owned(),
            },
            command,
        )
        .await
    }
}
