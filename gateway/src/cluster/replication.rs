//! Durable batches from the leader to every follower. The leader's journal writer hands each
//! committed group's rows — already encoded for the journal — to [`publish_commits`], which
//! publishes them to one Redis channel, once. Each follower's [`follow`] applies them in `seq`
//! order; Redis pub/sub is fire-and-forget (a reconnect or a Redis restart silently drops
//! messages), so any gap — a message that starts past the next expected `seq`, or silence
//! for `poll_ms` — is filled from the Postgres journal before anything after it is applied.
//! With Redis down, followers keep up by reading the journal every `poll_ms`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use gavel_engine::Event;
use gavel_protocol::Seq;
use gavel_storage::{Store, StoredEvent};
use tokio::sync::{mpsc, watch};

use crate::cluster::state::ClusterState;
use crate::sequencer::handle::EngineHandle;
use crate::sequencer::messages::EngineMsg;

/// Committed groups waiting to be published (full → dropped; followers fill from the journal).
pub const PUBLISH_QUEUE: usize = 1024;
/// Most journal rows read per gap-filling query.
const FILL_PAGE: u32 = 1000;
const MAGIC: &str = "gavel1";

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One published message: a header line `gavel1 <first> <last> <commit_ms>`, then one line per
/// row: `<seq> <at> <kind> <payload>` (the payload is compact JSON: no raw newlines).
pub fn encode(rows: &[StoredEvent], commit_ms: u64) -> Vec<u8> {
    let first = rows.first().map_or(0, |r| r.seq);
    let last = rows.last().map_or(0, |r| r.seq);
    let size: usize = rows
        .iter()
        .map(|r| r.payload.len() + r.kind.len() + 24)
        .sum();
    let mut out = String::with_capacity(size + 48);
    // Written in place: no string per row (this runs once per commit, on the leader).
    let _ = writeln!(out, "{MAGIC} {first} {last} {commit_ms}");
    for row in rows {
        let _ = writeln!(out, "{} {} {} {}", row.seq, row.at, row.kind, row.payload);
    }
    out.into_bytes()
}

/// A decoded message.
#[derive(Debug)]
pub struct Published {
    pub first: Seq,
    pub last: Seq,
    pub commit_ms: u64,
    pub rows: Vec<StoredEvent>,
}

/// Reads a message made by [`encode`]; `None` if it is not one.
pub fn decode(bytes: &[u8]) -> Option<Published> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    let mut header = lines.next()?.split(' ');
    if header.next()? != MAGIC {
        return None;
    }
    let first = header.next()?.parse().ok()?;
    let last = header.next()?.parse().ok()?;
    let commit_ms = header.next()?.parse().ok()?;
    let mut rows = Vec::new();
    for line in lines {
        let mut parts = line.splitn(4, ' ');
        rows.push(StoredEvent {
            seq: parts.next()?.parse().ok()?,
            at: parts.next()?.parse().ok()?,
            kind: parts.next()?.to_owned(),
            payload: parts.next()?.to_owned(),
            task: gavel_storage::RowTask::Unknown,
        });
    }
    Some(Published {
        first,
        last,
        commit_ms,
        rows,
    })
}

/// The leader's side: publishes every committed group until the writer stops.
pub async fn publish_commits(
    cluster: Arc<ClusterState>,
    mut commits: mpsc::Receiver<Arc<Vec<StoredEvent>>>,
) {
    let pool = match deadpool_redis::Config::from_url(cluster.redis_url.as_str())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
    {
        Ok(pool) => pool,
        Err(error) => {
            tracing::error!(%error, "bad Redis URL: followers will read the journal instead");
            while commits.recv().await.is_some() {}
            return;
        }
    };
    while let Some(rows) = commits.recv().await {
        let message = encode(&rows, wall_ms());
        let published = tokio::time::timeout(Duration::from_secs(1), async {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            redis::cmd("PUBLISH")
                .arg(&cluster.config.channel)
                .arg(message)
                .query_async::<i64>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        })
        .await;
        match published {
            Ok(Ok(_)) => cluster.metrics.redis_published.inc(),
            Ok(Err(error)) => {
                cluster.metrics.redis_errors.inc();
                tracing::debug!(%error, "publishing to Redis failed");
            }
            Err(_) => {
                cluster.metrics.redis_errors.inc();
                tracing::debug!("publishing to Redis timed out");
            }
        }
    }
}

/// The follower's side: feeds the replica every durable event after `applied`, in order.
pub async fn follow(
    store: Store,
    cluster: Arc<ClusterState>,
    engine: EngineHandle,
    applied: Seq,
    mut stopped: watch::Receiver<bool>,
) {
    let (messages, mut inbox) = mpsc::channel(PUBLISH_QUEUE);
    tokio::spawn(listen(cluster.clone(), messages, stopped.clone()));
    let mut next = applied + 1;
    let poll = Duration::from_millis(cluster.config.poll_ms);
    let mut received: u64 = 0;
    loop {
        let message = tokio::select! {
            message = inbox.recv() => message,
            () = tokio::time::sleep(poll) => None,
            () = crate::cluster::until_stopped(&mut stopped) => return,
        };
        if message.is_some() {
            received += 1;
            let every = cluster.drop_replication_every.unwrap_or(0);
            if every > 0 && received.is_multiple_of(every) {
                continue; // the test hook: as if Redis had dropped it
            }
        }
        let published = message.and_then(|bytes: Vec<u8>| decode(&bytes));
        let result = match published {
            Some(message) if message.last < next => Ok(next),
            Some(message) => apply_published(&store, &cluster, &engine, next, message).await,
            // Silence (or a dropped message): whatever the journal has past `next`.
            None => fill(&store, &cluster, &engine, next, None).await,
        };
        match result {
            Ok(now_next) => next = now_next,
            Err(Stop::EngineGone) => return,
            Err(Stop::Journal(error)) => {
                tracing::warn!(%error, "reading the journal to fill a gap failed; retrying");
            }
        }
    }
}

enum Stop {
    EngineGone,
    Journal(gavel_storage::StorageError),
}

/// Applies a message, filling any gap before it from the journal first.
async fn apply_published(
    store: &Store,
    cluster: &ClusterState,
    engine: &EngineHandle,
    mut next: Seq,
    message: Published,
) -> Result<Seq, Stop> {
    cluster.note_tip(message.last);
    if message.first > next {
        next = fill(store, cluster, engine, next, Some(message.first - 1)).await?;
        if next < message.first {
            // The journal did not have the gap yet (it must: the rows were committed).
            return Ok(next);
        }
    }
    let rows: Vec<&StoredEvent> = message.rows.iter().filter(|r| r.seq >= next).collect();
    let events = decode_rows(rows.into_iter())?;
    let now = wall_ms();
    cluster
        .metrics
        .replication_seconds
        .observe(now.saturating_sub(message.commit_ms) as f64 / 1000.0);
    hand_over(engine, events).await?;
    Ok(message.last + 1)
}

/// Reads the journal from `next` (up to `until`, or to its end) and applies it.
async fn fill(
    store: &Store,
    cluster: &ClusterState,
    engine: &EngineHandle,
    mut next: Seq,
    until: Option<Seq>,
) -> Result<Seq, Stop> {
    loop {
        let rows = store
            .read_after(next - 1, FILL_PAGE)
            .await
            .map_err(Stop::Journal)?;
        let rows: Vec<&StoredEvent> = rows
            .iter()
            .take_while(|r| until.is_none_or(|u| r.seq <= u))
            .collect();
        if rows.is_empty() {
            return Ok(next);
        }
        let count = rows.len() as u64;
        let last = rows.last().map_or(next, |r| r.seq);
        cluster.metrics.gap_fills.inc();
        cluster.metrics.gap_filled_events.inc_by(count);
        cluster.note_tip(last);
        let events = decode_rows(rows.into_iter())?;
        hand_over(engine, events).await?;
        next = last + 1;
        if count < u64::from(FILL_PAGE) || until.is_some_and(|u| next > u) {
            return Ok(next);
        }
    }
}

fn decode_rows<'a>(rows: impl Iterator<Item = &'a StoredEvent>) -> Result<Vec<(Seq, Event)>, Stop> {
    rows.map(|row| row.decode().map(|event| (row.seq, event)))
        .collect::<Result<_, _>>()
        .map_err(Stop::Journal)
}

async fn hand_over(engine: &EngineHandle, events: Vec<(Seq, Event)>) -> Result<(), Stop> {
    if events.is_empty() {
        return Ok(());
    }
    engine
        .send(EngineMsg::Replicated(events))
        .await
        .map_err(|()| Stop::EngineGone)
}

/// Subscribes to the channel and passes messages on; reconnects for as long as it runs.
async fn listen(
    cluster: Arc<ClusterState>,
    messages: mpsc::Sender<Vec<u8>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut connected_before = false;
    loop {
        let subscribed = async {
            let client = redis::Client::open(cluster.redis_url.as_str())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&cluster.config.channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            result = tokio::time::timeout(Duration::from_secs(2), subscribed) => result,
            () = crate::cluster::until_stopped(&mut stopped) => return,
        };
        match pubsub {
            Ok(Ok(pubsub)) => {
                if connected_before {
                    cluster.metrics.redis_reconnects.inc();
                }
                connected_before = true;
                backoff = Duration::from_millis(100);
                tracing::info!("subscribed to the journal channel on Redis");
                let mut stream = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        message = stream.next() => match message {
                            Some(message) => {
                                let _ = messages.try_send(message.get_payload_bytes().to_vec());
                            }
                            None => break,
                        },
                        () = crate::cluster::until_stopped(&mut stopped) => return,
                    }
                }
                tracing::warn!("lost the Redis subscription; reading the journal meanwhile");
            }
            Ok(Err(error)) => {
                cluster.metrics.redis_errors.inc();
                tracing::debug!(%error, "cannot subscribe on Redis");
            }
            Err(_) => cluster.metrics.redis_errors.inc(),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = crate::cluster::until_stopped(&mut stopped) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_decodes_to_the_rows_it_was_made_of() {
        let rows = vec![
            StoredEvent {
                seq: 7,
                at: 100,
                kind: "task_posted".into(),
                payload: r#"{"a":"b c\nd"}"#.into(),
                task: gavel_storage::RowTask::Unknown,
            },
            StoredEvent {
                seq: 8,
                at: 101,
                kind: "bid_placed".into(),
                payload: "{}".into(),
                task: gavel_storage::RowTask::Unknown,
            },
        ];
        let decoded = decode(&encode(&rows, 5)).expect("decodes");
        assert_eq!((decoded.first, decoded.last, decoded.commit_ms), (7, 8, 5));
        assert_eq!(decoded.rows, rows);
        assert!(decode(b"not a message").is_none());
    }
}
