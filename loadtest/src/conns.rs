//! The `connections` scenario, one worker's share: ramp to N subscribed idle `feed`
//! connections at a rate, hold them until told to finish. Measures connect+subscribe latency
//! (dialing started → `subscribe` reply); the parent samples the server's RSS.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gavel_protocol::command::Subscribe;
use gavel_protocol::{Command, Role, Topic};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::cli::Scenario;
use crate::client::{Lite, close, encode, send_text, unexpected_close};
use crate::net::{Dialer, Minter, Ws, unix_micros};
use crate::stats::{Class, Stats};
use crate::worker::{Ctl, Link, Up, WorkerResult, WorkerSpec};

/// User id of subscriber `i`.
pub fn subscriber_id(run: &str, i: usize) -> String {
    format!("{run}-f{i}")
}

pub async fn worker(spec: WorkerSpec, link: &mut Link) -> anyhow::Result<WorkerResult> {
    let Scenario::Connections(args) = spec.scenario().clone() else {
        unreachable!("connections worker");
    };
    let stats = Stats::new();
    let hold = spec.cli.common.duration.unwrap_or(Duration::from_secs(30));
    let mine = spec.share(args.connections);
    let n = mine.len();
    let dialer = Arc::new(
        Dialer::new(spec.target.clone(), spec.cli.common.source_addrs.clone())
            .spread(spec.cli.common.spread_to.clone()),
    );
    let ramp_secs = args.connections as f64 / args.rate.max(1.0);
    let minter = Arc::new(Minter::new(
        &spec.secret,
        hold + Duration::from_secs_f64(ramp_secs) + Duration::from_secs(3600),
    ));
    link.send(Up::Ready);
    let ticker = link.ticker(&stats);
    loop {
        match link.recv().await {
            Ctl::Go => break,
            Ctl::Finish => {
                ticker.abort();
                return Ok(WorkerResult::default());
            }
            Ctl::Stop => {}
        }
    }
    let (finish_tx, finish_rx) = watch::channel(false);
    let (ramped_tx, mut ramped_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    let limit = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let pace = Duration::from_secs_f64(spec.count as f64 / args.rate.max(1.0));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(n);
    let spawner = {
        let stats = stats.clone();
        let run = spec.run_id.clone();
        tokio::spawn(async move {
            for (k, i) in mine.enumerate() {
                tokio::time::sleep_until(start + pace * k as u32).await;
                let permit = limit.clone().acquire_owned().await.expect("open semaphore");
                tasks.push(tokio::spawn(hold_one(
                    dialer.clone(),
                    minter.clone(),
                    stats.clone(),
                    subscriber_id(&run, i),
                    permit,
                    ramped_tx.clone(),
                    finish_rx.clone(),
                )));
            }
            tasks
        })
    };
    let mut failures = 0;
    for _ in 0..n {
        if !ramped_rx.recv().await.unwrap_or(false) {
            failures += 1;
        }
    }
    let tasks = spawner.await?;
    link.send(Up::Ramped);
    while !matches!(link.recv().await, Ctl::Finish) {}
    let _ = finish_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    ticker.abort();
    Ok(WorkerResult {
        totals: stats.totals(),
        setup_failures: failures,
        ..WorkerResult::default()
    })
}

async fn hold_one(
    dialer: Arc<Dialer>,
    minter: Arc<Minter>,
    stats: Arc<Stats>,
    user: String,
    permit: tokio::sync::OwnedSemaphorePermit,
    ramped: tokio::sync::mpsc::UnboundedSender<bool>,
    mut finish: watch::Receiver<bool>,
) {
    let t0 = Instant::now();
    let mut ws = match connect_and_subscribe(&dialer, &minter, &user).await {
        Ok(ws) => ws,
        Err(e) => {
            stats.transport(&e);
            drop(permit);
            let _ = ramped.send(false);
            return;
        }
    };
    drop(permit);
    stats.record(Class::Connect, t0.elapsed().as_micros() as u64);
    stats.connected.fetch_add(1, Ordering::Relaxed);
    stats.open.fetch_add(1, Ordering::Relaxed);
    let _ = ramped.send(true);
    loop {
        tokio::select! {
            _ = finish.changed() => {
                close(&mut ws, &stats).await;
                break;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(f) = serde_json::from_str::<Lite>(text.as_str()) {
                        match f.ty.as_ref() {
                            "event" if f.event.as_ref().is_some_and(|e| e.kind == "stats") => {
                                stats.stats_frames.fetch_add(1, Ordering::Relaxed);
                            }
                            "event" => stats.event_arrived(unix_micros()),
                            "error" => stats.error(f.code.as_deref().unwrap_or("?")),
                            _ => {}
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    unexpected_close(&stats, frame.as_ref());
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    stats.transport(&format!("read: {e}"));
                    break;
                }
                None => {
                    unexpected_close(&stats, None);
                    break;
                }
            }
        }
    }
    stats.open.fetch_sub(1, Ordering::Relaxed);
}

/// Dials, sends `subscribe feed` and waits for its reply.
pub async fn connect_and_subscribe(
    dialer: &Dialer,
    minter: &Minter,
    user: &str,
) -> Result<Ws, String> {
    let baseline = dialer.target().baseline;
    let token = if baseline {
        None
    } else {
        Some(
            minter
                .mint(user, Role::Coach)
                .map_err(|e| format!("token: {e}"))?,
        )
    };
    let mut ws = dialer
        .dial(None, token.as_deref())
        .await
        .map_err(|e| e.key)?;
    let subscribe = Command::Subscribe(Subscribe {
        limit: None,
        topic: Topic::Feed,
        filter: None,
        since: None,
        epoch: None,
    });
    send_text(&mut ws, encode("sub", subscribe)).await?;
    let reply = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Text(text)) => {
                    let f: Lite = serde_json::from_str(text.as_str())
                        .map_err(|e| format!("undecodable reply: {e}"))?;
                    match (f.ty.as_ref(), f.id.as_deref()) {
                        ("ok", Some("sub")) => return Ok(()),
                        ("error", Some("sub")) => {
                            return Err(format!(
                                "subscribe refused: {}",
                                f.code.as_deref().unwrap_or("?")
                            ));
                        }
                        _ => {}
                    }
                }
                Ok(Message::Close(frame)) => {
                    return Err(format!(
                        "closed while subscribing: {}",
                        frame.map(|f| u16::from(f.code)).unwrap_or(1005)
                    ));
                }
                Ok(_) => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        Err("closed while subscribing".into())
    })
    .await;
    match reply {
        Ok(Ok(())) => Ok(ws),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("subscribe timeout".into()),
    }
}
