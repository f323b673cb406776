//! A Postgres outage under load: while a writer appends continuously through the group-commit
//! [`JournalHandle`], its server backends are killed (`pg_terminate_backend`) and then the
//! database refuses connections for a while. Writes must resume afterwards, and every
//! acknowledged event must be in the journal exactly as acknowledged; events that were not
//! acknowledged may or may not be there, but only as whole batches.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gavel_engine::{Event, EventKind};
use gavel_protocol::{Seq, UserId};
use gavel_storage::{JournalHandle, Store, StoredEvent, WriterStats};
use rand::{Rng, SeedableRng};
use sqlx::{Connection, PgConnection};
use tokio::sync::Mutex;

/// Batch `id`'s `i`th of `k` events; the text identifies it in the journal.
fn marked_event(id: u64, i: usize, k: usize) -> Event {
    Event {
        at: id,
        origin: None,
        owner: None,
        kind: EventKind::TaskMessage {
            task_id: gavel_engine::ids::task_id(id),
            from: UserId::new("outage").unwrap(),
            coach_id: None,
            text: format!("outage {id} {i}/{k}"),
        },
    }
}

/// `(batch id, index, size)` of a journaled event written by [`marked_event`].
fn marker(row: &StoredEvent) -> (u64, usize, usize) {
    let event = row
        .decode()
        .unwrap_or_else(|e| panic!("seq {}: {e}", row.seq));
    let EventKind::TaskMessage { text, .. } = &event.kind else {
        panic!("seq {}: unexpected event {:?}", row.seq, event.kind);
    };
    let parse = || -> Option<(u64, usize, usize)> {
        let mut words = text.strip_prefix("outage ")?.split(' ');
        let id = words.next()?.parse().ok()?;
        let (i, k) = words.next()?.split_once('/')?;
        Some((id, i.parse().ok()?, k.parse().ok()?))
    };
    parse().unwrap_or_else(|| panic!("seq {}: not an outage marker: {text}", row.seq))
}

/// What the writer was told.
#[derive(Debug, Default)]
struct Log {
    /// Acknowledged batches: their events as appended, and when the acknowledgement came.
    acknowledged: Vec<(Vec<(Seq, Event)>, Instant)>,
    /// Appends that failed (not acknowledged).
    failed: usize,
    /// Times the writer re-read the journal's end and renumbered from there.
    resyncs: usize,
}

impl Log {
    fn acknowledged_since(&self, t: Instant) -> usize {
        self.acknowledged.iter().filter(|(_, at)| *at > t).count()
    }
}

/// Models the engine: appends batches continuously (several in flight), and after any failure
/// re-reads the durable end from the store — retrying until the database answers — hands it to
/// the writer ([`JournalHandle::set_durable`], as the gateway's rebuild does) and numbers on
/// from it.
async fn write_continuously(
    store: Store,
    journal: JournalHandle,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let mut next: Seq = 1;
    let mut id = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut waits = Vec::new();
        for _ in 0..rng.gen_range(1..=3) {
            id += 1;
            let k = rng.gen_range(1..=20);
            let batch: Vec<(Seq, Event)> = (0..k)
                .map(|i| (next + i as Seq, marked_event(id, i, k)))
                .collect();
            let batch = Arc::new(batch);
            match journal.try_append(batch.clone()) {
                Ok(wait) => waits.push((batch, wait)),
                Err(e) => panic!("the writer's queue never fills here: {e}"),
            }
            next += k as Seq;
        }
        let mut failed = false;
        for (batch, wait) in waits {
            let outcome = wait.await.expect("the writer answers every batch");
            let mut log = log.lock().await;
            match outcome {
                Ok(()) => log
                    .acknowledged
                    .push((batch.as_ref().clone(), Instant::now())),
                Err(_) => {
                    log.failed += 1;
                    failed = true;
                }
            }
        }
        if failed {
            // As the engine's rebuild does: read where the journal ends (a commit whose reply
            // was lost may have landed), tell the writer, number on from there.
            let end = loop {
                match store.latest_seq().await {
                    Ok(seq) => break seq,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            };
            journal.set_durable(end);
            next = end + 1;
            log.lock().await.resyncs += 1;
        }
    }
}

async fn terminate_backends(admin: &mut PgConnection, db: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(db)
    .fetch_one(admin)
    .await
    .unwrap()
}

async fn allow_connections(admin: &mut PgConnection, db: &str, allow: bool) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {db} ALLOW_CONNECTIONS {allow}"
    )))
    .execute(admin)
    .await
    .unwrap();
}

/// Waits until the writer has `n` acknowledgements after `since`, or panics after `limit`.
async fn wait_for_acks(log: &Mutex<Log>, since: Instant, n: usize, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    while log.lock().await.acknowledged_since(since) < n {
        assert!(
            Instant::now() < deadline,
            "{what}: the writer did not resume within {limit:?}: {:?} failed, {} resyncs",
            log.lock().await.failed,
            log.lock().await.resyncs
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)] // the summary line, shown with --nocapture
async fn postgres_writer_survives_killed_backends_and_refused_connections() {
    let url = common::fresh_postgres("outage").await;
    let (_, db) = url.rsplit_once('/').unwrap();
    let db = db.to_owned();
    let store = Store::open_postgres(&url).await.unwrap();
    let stats = Arc::new(WriterStats::default());
    let journal = JournalHandle::spawn(store.clone(), 0, stats.clone());
    let log = Arc::new(Mutex::new(Log::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_continuously(
        store.clone(),
        journal.clone(),
        log.clone(),
        stop.clone(),
    ));
    // The admin session lives in the test database, not the one being cut off.
    let mut admin = PgConnection::connect(&common::database_url())
        .await
        .unwrap();
    let started = Instant::now();
    wait_for_acks(&log, started, 20, Duration::from_secs(10), "start").await;

    // 1. Kill the writer's backends, several times, while it writes.
    let mut killed = 0;
    let mut rng = rand::thread_rng();
    for _ in 0..10 {
        killed += terminate_backends(&mut admin, &db).await;
        let t = Instant::now();
        wait_for_acks(
            &log,
            t,
            5,
            Duration::from_secs(15),
            "after pg_terminate_backend",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..30))).await;
    }
    assert!(killed > 0, "there were backends to kill");

    // 2. Refuse connections for a while (and kill the open ones).
    allow_connections(&mut admin, &db, false).await;
    terminate_backends(&mut admin, &db).await;
    let outage_started = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let acked_in_outage = {
        // Anything committed just before the kill may be answered in the first moments.
        let log = log.lock().await;
        log.acknowledged_since(outage_started + Duration::from_millis(200))
    };
    allow_connections(&mut admin, &db, true).await;
    let reopened = Instant::now();
    assert_eq!(
        acked_in_outage, 0,
        "nothing is acknowledged while the database refuses connections"
    );

    // 3. Writes resume.
    wait_for_acks(
        &log,
        reopened,
        50,
        Duration::from_secs(30),
        "after the outage",
    )
    .await;
    let resumed_after = {
        let log = log.lock().await;
        log.acknowledged
            .iter()
            .find(|(_, at)| *at > reopened)
            .map(|(_, at)| *at - reopened)
            .unwrap()
    };
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let log = Arc::into_inner(log).unwrap().into_inner();
    assert!(log.failed > 0, "the outage made some appends fail");

    // 4. Every acknowledged event is there exactly; whatever else is there is whole batches.
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_after(after, 10_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        rows.extend(page);
    }
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.seq, i as Seq + 1, "the journal is contiguous");
    }
    let mut batches: HashMap<u64, (Seq, usize, usize)> = HashMap::new(); // id -> (first, k, seen)
    for row in &rows {
        let (id, i, k) = marker(row);
        let entry = batches.entry(id).or_insert((row.seq, k, 0));
        assert_eq!(
            (row.seq, k),
            (entry.0 + i as Seq, entry.1),
            "seq {}: batch {id} is contiguous",
            row.seq
        );
        entry.2 += 1;
    }
    for (id, (first, k, seen)) in &batches {
        assert_eq!(seen, k, "batch {id} from seq {first} is whole");
    }
    for (batch, _) in &log.acknowledged {
        for (seq, event) in batch {
            let row = rows
                .get(*seq as usize - 1)
                .unwrap_or_else(|| panic!("acknowledged seq {seq} is in the journal"));
            assert_eq!(
                row,
                &StoredEvent::encode(*seq, event),
                "acknowledged seq {seq} is stored exactly"
            );
        }
    }
    let acknowledged_events: usize = log.acknowledged.iter().map(|(b, _)| b.len()).sum();
    eprintln!(
        "outage: {killed} backends killed, {} batches acknowledged ({acknowledged_events} events), \
         {} failed, {} resyncs, {} commit failures; journal {} events ({} not acknowledged); \
         first acknowledgement {resumed_after:?} after connections were allowed again; {:.1?} in all",
        log.acknowledged.len(),
        log.failed,
        log.resyncs,
        stats.failures.load(Ordering::Relaxed),
        rows.len(),
        rows.len() - acknowledged_events,
        started.elapsed(),
    );

    drop(journal);
    if let Store::Postgres(pool) = store {
        pool.close().await;
    }
    admin.close().await.unwrap();
    common::drop_postgres(&url).await;
}

/// A TCP proxy in front of Postgres that can lose the reply to one statement: once armed with
/// a byte pattern, the connection that sends it gets its statement through to the server, but
/// the server's answer is dropped; then every proxied connection is cut and new ones are
/// refused (accepted and closed at once) until [`LossyProxy::heal`].
#[derive(Debug, Clone)]
struct LossyProxy {
    port: u16,
    refuse: Arc<AtomicBool>,
    trap: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    cut: Arc<tokio::sync::watch::Sender<u64>>,
}

impl LossyProxy {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = LossyProxy {
            port: listener.local_addr().unwrap().port(),
            refuse: Arc::default(),
            trap: Arc::default(),
            cut: Arc::new(tokio::sync::watch::channel(0).0),
        };
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if p.refuse.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees its connection closed
                }
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(p.clone().relay(client, server));
            }
        });
        proxy
    }

    /// Loses the reply to the statement whose bytes contain `pattern`.
    fn arm(&self, pattern: &str) {
        *self.trap.lock().unwrap() = Some(pattern.as_bytes().to_vec());
    }

    fn heal(&self) {
        self.refuse.store(false, Ordering::SeqCst);
    }

    async fn relay(self, client: tokio::net::TcpStream, server: tokio::net::TcpStream) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client_r, mut client_w) = client.into_split();
        let (mut server_r, mut server_w) = server.into_split();
        let doomed = Arc::new(AtomicBool::new(false));
        let (mut cut_up, mut cut_down) = (self.cut.subscribe(), self.cut.subscribe());
        let up = {
            let (proxy, doomed) = (self.clone(), doomed.clone());
            async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen: Vec<u8> = Vec::new();
                loop {
                    let n = tokio::select! {
                        n = client_r.read(&mut buf) => n.unwrap_or(0),
                        _ = cut_up.changed() => 0,
                    };
                    if n == 0 {
                        break;
                    }
                    {
                        let mut trap = proxy.trap.lock().unwrap();
                        if let Some(pattern) = trap.as_ref() {
                            // Keep a tail so a pattern split across reads is still found.
                            seen.extend_from_slice(&buf[..n]);
                            if seen.windows(pattern.len()).any(|w| w == pattern.as_slice()) {
                                *trap = None;
                                doomed.store(true, Ordering::SeqCst);
                                proxy.refuse.store(true, Ordering::SeqCst);
                            } else {
                                let keep = seen.len().saturating_sub(pattern.len());
                                seen.drain(..keep);
                            }
                        }
                    }
                    if server_w.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        };
        let down = {
            let proxy = self.clone();
            async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = tokio::select! {
                        n = server_r.read(&mut buf) => n.unwrap_or(0),
                        _ = cut_down.changed() => 0,
                    };
                    if n == 0 {
                        break;
                    }
                    if doomed.load(Ordering::SeqCst) {
                        // The server answered (after committing, at `Sync`): lose the answer
                        // and cut every connection, so that nothing can ask what happened.
                        proxy.cut.send_modify(|generation| *generation += 1);
                        break;
                    }
                    if client_w.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        };
        tokio::join!(up, down);
    }
}

/// `url` with its host and port replaced by `127.0.0.1:<port>`; and the original `host:port`.
fn via_port(url: &str, port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').expect("a URL with a database");
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    let upstream = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    (
        format!("{scheme}://{user}127.0.0.1:{port}/{path}"),
        upstream,
    )
}

/// The hardest case for the writer: a commit lands but its reply is lost, and the database
/// cannot be asked where the journal ends right then. The batch is answered neither way until
/// the journal's end can be read; once the database answers again the writer finds the batch
/// there (whole) and acknowledges it, and writes continue after it — never a refusal of
/// something durable, never a hole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commit_with_a_lost_reply_is_acknowledged_once_the_journal_end_is_read() {
    let url = common::fresh_postgres("lostreply").await;
    let direct = Store::open_postgres(&url).await.unwrap();
    let proxy = LossyProxy::start(via_port(&url, 0).1).await;
    let store = Store::open_postgres(&via_port(&url, proxy.port).0)
        .await
        .unwrap();
    let journal = JournalHandle::spawn(store.clone(), 0, Arc::new(WriterStats::default()));
    let batch = |id: u64, first: Seq, k: usize| -> Arc<Vec<(Seq, Event)>> {
        Arc::new(
            (0..k)
                .map(|i| (first + i as Seq, marked_event(id, i, k)))
                .collect(),
        )
    };

    journal.append(batch(1, 1, 5)).await.unwrap();
    journal.append(batch(2, 6, 5)).await.unwrap();

    // Batch 3 commits, but its reply is lost and the database then refuses connections.
    proxy.arm("outage 3 ");
    let pending = {
        let journal = journal.clone();
        tokio::spawn(async move { journal.append(batch(3, 11, 5)).await })
    };
    // The outcome is ambiguous until the journal's end can be read: no answer either way
    // while the database refuses (an answer now could only be a guess).
    let mut waited = 0;
    while direct.latest_seq().await.unwrap() < 15 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
        assert!(waited < 500, "premise: the commit lands");
    }
    assert!(
        store.latest_seq().await.is_err(),
        "premise: the database refuses"
    );
    assert!(
        !pending.is_finished(),
        "not answered while the end is unknown"
    );
    assert_eq!(journal.durable(), 10, "not yet known to be durable");

    // The database answers again: the writer reads the journal's end, finds batch 3 there and
    // acknowledges it — a commit that landed is never refused.
    proxy.heal();
    pending
        .await
        .unwrap()
        .expect("a commit that landed is acknowledged once the journal's end is read");
    assert_eq!(journal.durable(), 15);
    journal.append(batch(4, 16, 5)).await.unwrap();
    journal.append(batch(5, 21, 5)).await.unwrap();
    assert_eq!(journal.durable(), 25);

    let rows = direct.read_after(0, 100).await.unwrap();
    assert_eq!(rows.len(), 25);
    for (row, expected) in rows.iter().zip(
        [1, 2, 3, 4, 5]
            .into_iter()
            .flat_map(|id| (0..5).map(move |i| (id, i, 5))),
    ) {
        assert_eq!(marker(row), expected, "seq {}", row.seq);
    }

    for store in [store, direct] {
        if let Store::Postgres(pool) = store {
            pool.close().await;
        }
    }
    common::drop_postgres(&url).await;
}

/// A journal write that hangs (here: a lock held on the table by another session) fails at
/// the statement timeout instead of holding the writer for ever; its batch is refused once
/// the journal's end can be read (it did not land), and writes go on after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_hung_append_fails_at_the_statement_timeout() {
    let url = common::fresh_postgres("hung").await;
    let store = Store::open_postgres_with(&url, Duration::from_millis(500))
        .await
        .unwrap();
    let stats = Arc::new(WriterStats::default());
    let journal = JournalHandle::spawn(store.clone(), 0, stats.clone());
    let batch = |id: u64, first: Seq| -> Arc<Vec<(Seq, Event)>> {
        Arc::new(
            (0..3)
                .map(|i| (first + i, marked_event(id, i as usize, 3)))
                .collect(),
        )
    };
    journal.append(batch(1, 1)).await.unwrap();

    let mut locker = PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE journal IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let pending = {
        let journal = journal.clone();
        tokio::spawn(async move { journal.append(batch(2, 4)).await })
    };
    // The append times out while the lock is held (and so does every read of the journal's
    // end); once it is released the end is known (3) and the batch is refused, not left
    // hanging. Wait for the writer to have seen the failure, not for a fixed time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stats.failures.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the append timed out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !pending.is_finished(),
        "not answered while the journal's end is unknown"
    );
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(20), pending)
        .await
        .expect("answered once the lock is gone")
        .unwrap();
    assert!(
        refused.is_err(),
        "the timed-out append did not land: {refused:?}"
    );
    assert_eq!(journal.durable(), 3);
    journal.append(batch(3, 4)).await.unwrap();
    assert_eq!(store.latest_seq().await.unwrap(), 6);
    if let Store::Postgres(pool) = store {
        pool.close().await;
    }
    common::drop_postgres(&url).await;
}
