//! One webhook's delivery loop (contract §14): read the journal after the webhook's durable
//! cursor, POST each matching event (its admin view) in `seq` order, and advance the cursor
//! only past what the receiver acknowledged with a 2xx — so delivery is at least once, in
//! order, and a restart resumes after the last acknowledged event. Failures are retried with
//! exponential backoff and jitter; nothing after an unacknowledged event is sent meanwhile.
//! `gavel_webhook_pending{webhook}` is the backlog: journal events after the cursor.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gavel_engine::Event;
use gavel_engine::routing::deliveries;
use gavel_protocol::{Seq, Topic};
use gavel_storage::Store;
use rand::Rng;
use serde_json::json;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::webhooks::http_post::post;
use crate::webhooks::signature::sign;
use crate::webhooks::{Webhook, WebhookStatus};

/// Journal rows read per step.
const PAGE: u32 = 256;
/// How often a webhook that has caught up looks at the journal again.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// The longest wait between two attempts of one event.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often the backlog gauge is refreshed while a failing event waits out its backoff (up to
/// 5 minutes): new events keep arriving behind it, and the lag alert needs to see them.
const PENDING_REFRESH: Duration = Duration::from_secs(10);

/// Everything one delivery loop works with.
#[derive(Debug)]
pub struct Delivery {
    pub hook: Webhook,
    pub store: Store,
    pub epoch: String,
    pub status: Arc<Mutex<WebhookStatus>>,
    pub metrics: Arc<Metrics>,
    pub stop: watch::Receiver<bool>,
    /// The highest journal end read so far (by a page, or by a refresh during a backoff):
    /// what the backlog gauge is measured against.
    pub known_end: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Delivery {
    /// Runs until the server stops; its backlog gauge goes with it (another node, or the next
    /// pipeline, reports from then on).
    pub async fn run(mut self) {
        self.run_until_stopped().await;
        let _ = self
            .metrics
            .webhook_pending
            .remove_label_values(&[&self.hook.name]);
    }

    async fn run_until_stopped(&mut self) {
        let Some(mut cursor) = self.start_cursor().await else {
            return;
        };
        self.set_status(|s| s.cursor_seq = cursor);
        self.refresh_pending().await;
        while !*self.stop.borrow() {
            let page = match self.store.read_after(cursor, PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(webhook = %self.hook.name, error = %e, "webhook: the journal could not be read");
                    if self.pause(Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            if page.is_empty() {
                // Nothing after the cursor: caught up.
                self.set_pending(0);
                if self.pause(IDLE_POLL).await {
                    return;
                }
                continue;
            }
            // The journal's end, read once per page (at least this page's last row).
            let last = page.last().map_or(cursor, |row| row.seq);
            self.known_end.fetch_max(last, Ordering::Relaxed);
            self.refresh_pending().await;
            let mut saved = cursor;
            for row in &page {
                let event = match row.decode() {
                    Ok(event) => event,
                    Err(e) => {
                        // Never skipped (that would lose it): reported, and read again later.
                        let error = format!("journal row {} cannot be decoded: {e}", row.seq);
                        tracing::error!(webhook = %self.hook.name, %error, "webhook: stuck at a journal row");
                        self.set_status(|s| s.last_error = Some(error));
                        if self.pause(Duration::from_secs(5)).await {
                            return;
                        }
                        break;
                    }
                };
                if let Some(body) = self.body(row.seq, &event) {
                    if !self.deliver(row.seq, &body).await {
                        return;
                    }
                    // Acknowledged: durable before the next one goes out, so a restart
                    // resends at most the one in flight.
                    if !self.save(row.seq).await {
                        return;
                    }
                    saved = row.seq;
                }
                cursor = row.seq;
                self.set_status(|s| s.cursor_seq = cursor);
                // Against the latest end known: a long backoff may have read a later one.
                let end = self.known_end.load(Ordering::Relaxed);
                self.set_pending(end.saturating_sub(cursor));
            }
            // Events the webhook does not want: skipped, durably, once per page.
            if cursor > saved && !self.save(cursor).await {
                return;
            }
        }
    }

    /// The durable cursor (set before the server took its first command: see
    /// [`crate::webhooks::prepare_cursors`]).
    async fn start_cursor(&mut self) -> Option<Seq> {
        loop {
            match self.store.webhook_cursor(&self.hook.url).await {
                Ok(Some(seq)) => return Some(seq),
                Ok(None) => {
                    tracing::error!(webhook = %self.hook.name, "webhook: no cursor was prepared");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(webhook = %self.hook.name, error = %e, "webhook: its cursor could not be read");
                    if self.pause(Duration::from_secs(1)).await {
                        return None;
                    }
                }
            }
        }
    }

    /// The POST body of `event` if the webhook wants it: `{"seq", "epoch", "event"}` with the
    /// admin view of the event.
    fn body(&self, seq: Seq, event: &Event) -> Option<String> {
        let wire = deliveries(event)
            .into_iter()
            .find(|d| d.topic == Topic::Admin)?
            .event;
        let body = json!({"seq": seq, "epoch": self.epoch, "event": wire});
        let kind = body["event"]["kind"].as_str().unwrap_or_default();
        if !self.hook.wants(kind) {
            return None;
        }
        Some(body.to_string())
    }

    /// POSTs one event until the receiver acknowledges it (`false`: the server is stopping).
    async fn deliver(&mut self, seq: Seq, body: &str) -> bool {
        let id = format!("{}-{seq}", self.epoch);
        let mut backoff = self.hook.retry;
        loop {
            if *self.stop.borrow() {
                return false;
            }
            let timestamp = now_ms() / 1000;
            let headers = [
                ("webhook-id", id.clone()),
                ("webhook-timestamp", timestamp.to_string()),
                (
                    "webhook-signature",
                    sign(self.hook.secret.as_bytes(), &id, timestamp, body),
                ),
            ];
            let sending = post(
                &self.hook.uri,
                self.hook.tls.as_ref(),
                &headers,
                body.to_owned(),
                self.hook.timeout,
            );
            // A stopping server (a leader stepping down) sends nothing more: the next leader
            // resumes from the durable cursor, so two senders never interleave for long.
            let outcome = tokio::select! {
                outcome = sending => outcome,
                _ = self.stop.changed() => return false,
            };
            let error = match outcome {
                Ok(status) if (200..300).contains(&status) => {
                    self.count("ok");
                    self.set_status(|s| {
                        s.last_error = None;
                        s.next_attempt_at = None;
                    });
                    return true;
                }
                Ok(status) => format!("HTTP {status}"),
                Err(e) => e,
            };
            self.count("failed");
            // Jitter: a random wait in [backoff, 1.25 × backoff].
            let wait = backoff + (backoff / 4).mul_f64(rand::thread_rng().r#gen::<f64>());
            self.set_status(|s| {
                s.last_error = Some(error.clone());
                s.next_attempt_at = Some(now_ms() + wait.as_millis() as u64);
            });
            tracing::debug!(webhook = %self.hook.name, seq, %error, ?wait, "webhook delivery failed; retrying");
            if self.backoff(wait).await {
                return false;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Makes the cursor durable (`false`: the server is stopping).
    async fn save(&mut self, cursor: Seq) -> bool {
        loop {
            match self.store.set_webhook_cursor(&self.hook.url, cursor).await {
                Ok(()) => return true,
                Err(e) => {
                    tracing::warn!(webhook = %self.hook.name, error = %e, "webhook: its cursor could not be saved");
                    if self.pause(Duration::from_secs(1)).await {
                        return false;
                    }
                }
            }
        }
    }

    fn count(&self, outcome: &str) {
        self.metrics
            .webhook_deliveries
            .with_label_values(&[&self.hook.name, outcome])
            .inc();
    }

    /// Sets `gavel_webhook_pending` from the journal's end now; returns that end (`None`: the
    /// journal could not be read, the gauge is left as it was).
    async fn refresh_pending(&self) -> Option<Seq> {
        let end = self.store.latest_seq().await.ok()?;
        self.known_end.fetch_max(end, Ordering::Relaxed);
        let cursor = self.status.lock().expect("webhook status lock").cursor_seq;
        self.set_pending(end.saturating_sub(cursor));
        Some(end)
    }

    fn set_pending(&self, pending: Seq) {
        self.metrics
            .webhook_pending
            .with_label_values(&[&self.hook.name])
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }

    fn set_status(&self, change: impl FnOnce(&mut WebhookStatus)) {
        change(&mut self.status.lock().expect("webhook status lock"));
    }

    /// Waits out a failed attempt's backoff (as [`Self::pause`]), refreshing the backlog gauge
    /// every [`PENDING_REFRESH`] meanwhile.
    async fn backoff(&mut self, d: Duration) -> bool {
        let until = tokio::time::Instant::now() + d;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return *self.stop.borrow();
            }
            if self.pause(left.min(PENDING_REFRESH)).await {
                return true;
            }
            self.refresh_pending().await;
        }
    }

    /// Sleeps `d`, or less if the server stops (`true` then).
    async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => *self.stop.borrow(),
            _ = self.stop.changed() => true,
        }
    }
}
