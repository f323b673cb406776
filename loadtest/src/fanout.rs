//! The `fanout` scenario: N `feed` subscribers (in the workers) and one publisher (in the
//! parent) posting tasks at increasing rates, step by step. Each task id carries its step and
//! send time (`<run>-f<step>-<n>-<µs>`), so every subscriber attributes each delivery to its
//! step exactly. Against gavel the publisher posts with `POST /v1/tasks` (the HTTP API is not
//! rate-limited per user, a seeker socket is); against the baseline server it sends, on a
//! `/pub` WebSocket, the same `task.opened` event frame gavel would deliver — same traffic
//! shape, same bytes per delivery.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::cli::{FanoutArgs, Scenario};
use crate::client::{Lite, Order, close, parse_task_id, send_text, unexpected_close};
use crate::conns::{connect_and_subscribe, subscriber_id};
use crate::digest::{Digest, LossBook};
use crate::market::drain;
use crate::net::{Dialer, Http, Minter, Ws, unix_micros};
use crate::stats::{Batch, Class, EncHist, Stats, new_hist};
use crate::worker::{Ctl, Link, Up, WorkerResult, WorkerSpec};

/// What the subscribers of one worker received in one step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepObs {
    pub step: u32,
    pub count: u64,
    pub hist: EncHist,
}

/// Per-step histograms shared by a worker's subscribers.
#[derive(Debug, Default)]
struct StepSink {
    steps: Mutex<Vec<(u64, Histogram<u64>)>>,
}

impl StepSink {
    fn record(&self, samples: &[(u32, u64)]) {
        let mut steps = self.steps.lock().expect("step lock");
        for &(step, us) in samples {
            let i = step as usize;
            while steps.len() <= i {
                steps.push((0, new_hist()));
            }
            steps[i].0 += 1;
            let _ = steps[i].1.record(us.clamp(1, crate::stats::MAX_MICROS));
        }
    }
}

pub async fn worker(spec: WorkerSpec, link: &mut Link) -> anyhow::Result<WorkerResult> {
    let Scenario::Fanout(args) = spec.scenario().clone() else {
        unreachable!("fanout worker");
    };
    let stats = Stats::new();
    let dialer = Arc::new(
        Dialer::new(spec.target.clone(), spec.cli.common.source_addrs.clone())
            .spread(spec.cli.common.spread_to.clone()),
    );
    let minter = Arc::new(Minter::new(&spec.secret, Duration::from_secs(6 * 3600)));
    let sink = Arc::new(StepSink::default());
    let (finish_tx, finish_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<bool>();
    let mine = spec.share(args.subscribers);
    let n = mine.len();
    let pace = Duration::from_secs_f64(spec.count as f64 / args.connect_rate.max(1.0));
    let start = tokio::time::Instant::now();
    let mut subs = Vec::with_capacity(n);
    for (k, i) in mine.enumerate() {
        tokio::time::sleep_until(start + pace * k as u32).await;
        subs.push(tokio::spawn(subscriber(
            dialer.clone(),
            minter.clone(),
            stats.clone(),
            sink.clone(),
            spec.run_id.clone(),
            subscriber_id(&spec.run_id, i),
            ready_tx.clone(),
            finish_rx.clone(),
        )));
    }
    let mut failures = 0;
    for _ in 0..n {
        if !ready_rx.recv().await.unwrap_or(false) {
            failures += 1;
        }
    }
    link.send(Up::Ready);
    let ticker = link.ticker(&stats);
    let mut early = false;
    loop {
        match link.recv().await {
            Ctl::Stop => break,
            Ctl::Finish => {
                early = true;
                break;
            }
            Ctl::Go => {}
        }
    }
    if !early {
        drain(&stats, Duration::from_secs(1), Duration::from_secs(30)).await;
        link.send(Up::Quiet);
        while !matches!(link.recv().await, Ctl::Finish) {}
    }
    let _ = finish_tx.send(true);
    let mut loss = LossBook::default();
    for s in subs {
        if let Ok(Some(d)) = s.await {
            loss.observe("fanout", d);
        }
    }
    ticker.abort();
    let steps = sink
        .steps
        .lock()
        .expect("step lock")
        .iter()
        .enumerate()
        .map(|(i, (count, h))| StepObs {
            step: i as u32,
            count: *count,
            hist: EncHist::encode(h),
        })
        .collect();
    Ok(WorkerResult {
        totals: stats.totals(),
        loss,
        steps,
        setup_failures: failures,
        ..WorkerResult::default()
    })
}

#[allow(clippy::too_many_arguments)]
async fn subscriber(
    dialer: Arc<Dialer>,
    minter: Arc<Minter>,
    stats: Arc<Stats>,
    sink: Arc<StepSink>,
    run: String,
    user: String,
    ready: mpsc::UnboundedSender<bool>,
    mut finish: watch::Receiver<bool>,
) -> Option<Digest> {
    let t0 = Instant::now();
    let mut ws = match connect_and_subscribe(&dialer, &minter, &user).await {
        Ok(ws) => ws,
        Err(e) => {
            stats.transport(&e);
            let _ = ready.send(false);
            return None;
        }
    };
    stats.record(Class::Connect, t0.elapsed().as_micros() as u64);
    stats.connected.fetch_add(1, Ordering::Relaxed);
    stats.open.fetch_add(1, Ordering::Relaxed);
    let _ = ready.send(true);
    let mut digest = Digest::default();
    let mut order = Order::default();
    let mut lat = Batch::new(&stats, Class::Feed);
    let mut lat_at = Batch::new(&stats, Class::EngineAt);
    let mut local: Vec<(u32, u64)> = Vec::with_capacity(256);
    let mut local_since = Instant::now();
    let mut ok = true;
    loop {
        tokio::select! {
            _ = finish.changed() => {
                close(&mut ws, &stats).await;
                break;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let now_us = unix_micros();
                    let Ok(f) = serde_json::from_str::<Lite>(text.as_str()) else {
                        stats.violation(format!("{user}: undecodable frame"));
                        continue;
                    };
                    if f.ty == "error" {
                        stats.error(f.code.as_deref().unwrap_or("?"));
                        continue;
                    }
                    let Some(ev) = f.event.as_ref() else { continue };
                    if ev.kind == "stats" {
                        continue;
                    }
                    stats.event_arrived(now_us);
                    if let (Some(topic), Some(seq)) = (f.topic.as_deref(), f.seq)
                        && let Err(last) = order.check(topic, seq)
                    {
                        stats.violation(format!("{user} on {topic}: seq {seq} after {last}"));
                    }
                    if ev.kind != "task.opened" {
                        continue;
                    }
                    let Some(task) = ev.task_id.as_deref() else { continue };
                    let Some((group, sent_us)) = parse_task_id(task, &run) else { continue };
                    let Some(step) = group.strip_prefix('f').and_then(|s| s.parse::<u32>().ok()) else {
                        continue;
                    };
                    digest.opened(task);
                    if now_us / 1000 >= ev.at {
                        lat_at.record((now_us / 1000 - ev.at) * 1000);
                    }
                    let l = now_us.saturating_sub(sent_us);
                    lat.record(l);
                    if local.is_empty() {
                        local_since = Instant::now();
                    }
                    local.push((step, l));
                    if local.len() >= 256 || local_since.elapsed() >= Duration::from_millis(100) {
                        sink.record(&local);
                        local.clear();
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    unexpected_close(&stats, frame.as_ref());
                    ok = false;
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    stats.transport(&format!("read: {e}"));
                    ok = false;
                    break;
                }
                None => {
                    unexpected_close(&stats, None);
                    ok = false;
                    break;
                }
            }
        }
    }
    sink.record(&local);
    stats.open.fetch_sub(1, Ordering::Relaxed);
    let _ = ok;
    Some(digest)
}

/// What the publisher did in one step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepPub {
    pub step: u32,
    /// Tasks per second asked for.
    pub rate: f64,
    pub posted: u64,
    pub failed: u64,
    /// Arrivals that found every publishing connection busy (sent late).
    pub late: u64,
    pub secs: f64,
}

enum Channel {
    /// A pool of keep-alive HTTP connections (gavel).
    Http {
        pool_tx: mpsc::UnboundedSender<Http>,
        pool_rx: mpsc::UnboundedReceiver<Http>,
        token: String,
    },
    /// One WebSocket on the baseline's `/pub`.
    Ws(Box<Ws>),
}

/// The publisher: posts tasks at a rate for a step at a time.
pub struct Publisher {
    run: String,
    channel: Channel,
    expected: Arc<Mutex<Digest>>,
    posted: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    n: u64,
    seq: u64,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Publisher { .. }")
    }
}

impl Publisher {
    pub async fn new(
        dialer: &Dialer,
        args: &FanoutArgs,
        run: &str,
        minter: &Minter,
        stats: Arc<Stats>,
    ) -> anyhow::Result<Publisher> {
        let channel = if dialer.target().baseline {
            let ws = dialer
                .dial(Some("/pub"), None)
                .await
                .map_err(|e| anyhow::anyhow!("publisher: {e}"))?;
            Channel::Ws(Box::new(ws))
        } else {
            let (pool_tx, pool_rx) = mpsc::unbounded_channel();
            for _ in 0..args.http_conns.max(1) {
                let _ = pool_tx.send(Http::new(dialer.target()));
            }
            Channel::Http {
                pool_tx,
                pool_rx,
                token: minter.mint(&format!("{run}-pub"), gavel_protocol::Role::Admin)?,
            }
        };
        Ok(Publisher {
            run: run.to_owned(),
            channel,
            expected: Arc::new(Mutex::new(Digest::default())),
            posted: Arc::new(AtomicU64::new(0)),
            failed: Arc::new(AtomicU64::new(0)),
            n: 0,
            seq: 0,
            stats,
        })
    }

    /// What every subscriber should have received: every task acknowledged (gavel) or sent
    /// (baseline).
    pub fn expected(&self) -> Digest {
        *self.expected.lock().expect("digest lock")
    }

    /// Publishes at `rate` tasks per second for `secs`.
    pub async fn run_step(mut self, step: u32, rate: f64, secs: Duration) -> (Publisher, StepPub) {
        let posted0 = self.posted.load(Ordering::Relaxed);
        let failed0 = self.failed.load(Ordering::Relaxed);
        let start = tokio::time::Instant::now();
        let total = (rate * secs.as_secs_f64()).round() as u64;
        let mut late = 0;
        let mut inflight = Vec::new();
        for i in 0..total {
            let at = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(at).await;
            self.n += 1;
            let task = format!("{}-f{step}-{}-{}", self.run, self.n, unix_micros());
            match &mut self.channel {
                Channel::Http {
                    pool_tx,
                    pool_rx,
                    token,
                } => {
                    let mut http = match pool_rx.try_recv() {
                        Ok(h) => h,
                        Err(_) => {
                            late += 1;
                            match pool_rx.recv().await {
                                Some(h) => h,
                                None => break,
                            }
                        }
                    };
                    let pool_tx = pool_tx.clone();
                    let token = token.clone();
                    let expected = self.expected.clone();
                    let posted = self.posted.clone();
                    let failed = self.failed.clone();
                    let stats = self.stats.clone();
                    let run = self.run.clone();
                    let n = self.n;
                    inflight.push(tokio::spawn(async move {
                        let body = serde_json::json!({
                            "owner": format!("{run}-seeker"),
                            "resume_id": format!("r{n}"),
                            "urgency": "standard",
                            "task_id": task,
                        })
                        .to_string();
                        let sent = Instant::now();
                        let r = http
                            .request(
                                "POST",
                                "/v1/tasks",
                                Some(&token),
                                &[("Idempotency-Key", &task)],
                                Some(body.as_bytes()),
                            )
                            .await;
                        match r {
                            Ok(resp) if resp.status == 201 => {
                                stats.record(Class::Command, sent.elapsed().as_micros() as u64);
                                expected.lock().expect("digest lock").opened(&task);
                                posted.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(resp) => {
                                let code = serde_json::from_slice::<serde_json::Value>(&resp.body)
                                    .ok()
                                    .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
                                    .unwrap_or_else(|| format!("HTTP {}", resp.status));
                                stats.error(&code);
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                stats.transport(&format!("publisher http: {e}"));
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        let _ = pool_tx.send(http);
                    }));
                    inflight.retain(|h| !h.is_finished());
                }
                Channel::Ws(ws) => {
                    self.seq += 1;
                    let ms = unix_micros() / 1000;
                    let frame = serde_json::json!({
                        "type": "event",
                        "topic": "feed",
                        "seq": self.seq,
                        "event": {
                            "at": ms,
                            "task_id": task,
                            "kind": "task.opened",
                            "task": {
                                "task_id": task,
                                "task_type": "resume_review_full",
                                "urgency": "standard",
                                "suggested_price": 2500,
                                "price_range": [2500, 5000],
                                "bid_count": 0,
                                "bidding_closes_at": ms + 1_800_000,
                                "created_at": ms,
                                "my_bid": null
                            }
                        }
                    })
                    .to_string();
                    match send_text(ws, frame).await {
                        Ok(()) => {
                            self.expected.lock().expect("digest lock").opened(&task);
                            self.posted.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            self.stats.transport(&format!("publisher ws: {e}"));
                            self.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        for h in inflight {
            let _ = h.await;
        }
        let step_pub = StepPub {
            step,
            rate,
            posted: self.posted.load(Ordering::Relaxed) - posted0,
            failed: self.failed.load(Ordering::Relaxed) - failed0,
            late,
            secs: start.elapsed().as_secs_f64(),
        };
        (self, step_pub)
    }

    pub async fn close(self) {
        if let Channel::Ws(mut ws) = self.channel {
            close(&mut ws, &self.stats).await;
        }
    }
}
