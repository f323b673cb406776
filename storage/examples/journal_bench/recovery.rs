//! Section 3, recovery of a large journal: full replay, and snapshot + tail, with where the
//! time goes (DB read, JSON decode, `evolve`, snapshot load).

use std::time::{Duration, Instant};

use gavel_engine::{Engine, EngineConfig, Event};
use gavel_protocol::Seq;
use gavel_storage::{StoredEvent, StoredSnapshot, encode_snapshot, recover, snapshot_codec};

use crate::market::Market;
use crate::{Stores, close};

pub(crate) async fn recovery(stores: &mut Stores, backend: &str, events: Seq) {
    println!("### recovery of {events} journaled events\n");
    let store = stores.fresh(backend, "recovery").await;
    let generated = Instant::now();
    let mut market = Market::new(7);
    let snapshot_at = events / 10 * 9;
    let mut snapshot = None;
    let mut write = Duration::ZERO;
    while market.engine.seq() < events {
        market.step();
        if snapshot.is_none() && market.engine.seq() >= snapshot_at {
            let s = market.engine.snapshot();
            snapshot = Some(StoredSnapshot {
                seq: market.engine.seq(),
                at: s.state.now,
                state: encode_snapshot(&s),
            });
        }
        if market.out.len() >= 10_000 || market.engine.seq() >= events {
            let rows: Vec<StoredEvent> = market
                .out
                .drain(..)
                .map(|(seq, e)| StoredEvent::encode(seq, &e))
                .collect();
            let t = Instant::now();
            store.append(&rows).await.unwrap();
            write += t.elapsed();
        }
    }
    let journaled = market.engine.seq();
    let snapshot = snapshot.unwrap();
    let state = market.engine.state();
    println!(
        "journal: {journaled} events from {} tasks ({} commands refused by the engine); \
         generated and written in {:.1?} (of which DB writes {:.1?}); \
         {} tasks in the final state",
        market.tasks,
        market.rejected,
        generated.elapsed(),
        write,
        state.tasks.len(),
    );

    let (full, report) = recover(&store, EngineConfig::default()).await.unwrap();
    assert_eq!(report.replayed, journaled);
    let same_full = full.state() == state;
    drop(full);

    store.write_snapshot(&snapshot).await.unwrap();
    let (tail, tail_report) = recover(&store, EngineConfig::default()).await.unwrap();
    assert_eq!(tail_report.snapshot_seq, snapshot.seq);
    let same_tail = tail.state() == state;
    drop(tail);
    // The same snapshot as earlier versions wrote it (format 1), for the comparison.
    let format_1 = StoredSnapshot {
        state: snapshot_codec::encode_format_1(
            &snapshot_codec::decode(&snapshot.state).unwrap().state,
        ),
        ..snapshot.clone()
    };
    store.write_snapshot(&format_1).await.unwrap();
    let (tail_1, tail_1_report) = recover(&store, EngineConfig::default()).await.unwrap();
    let same_tail_1 = tail_1.state() == state;
    drop(tail_1);
    store.write_snapshot(&snapshot).await.unwrap();
    println!(
        "snapshot at seq {}: {:.1} MB (binary snapshot frame, `snapshot_codec`; format 1: {:.1} MB)\n",
        snapshot.seq,
        snapshot.state.len() as f64 / 1e6,
        format_1.state.len() as f64 / 1e6
    );
    println!("| recovery | events replayed | time | equals the live engine |");
    println!("|---|---:|---:|---|");
    println!(
        "| full replay (no snapshot) | {} | {:.2} s | {same_full} |",
        report.replayed,
        report.took.as_secs_f64()
    );
    println!(
        "| snapshot at {} + tail | {} | {:.2} s | {same_tail} |",
        tail_report.snapshot_seq,
        tail_report.replayed,
        tail_report.took.as_secs_f64()
    );
    println!(
        "| the same, snapshot in format 1 (MessagePack with names) | {} | {:.2} s | {same_tail_1} |",
        tail_1_report.replayed,
        tail_1_report.took.as_secs_f64()
    );
    println!();

    // Where the time goes: the same steps `recover` takes, timed one by one.
    let t = Instant::now();
    let mut rows = Vec::with_capacity(journaled as usize);
    let mut after = 0;
    loop {
        let page = store.read_after(after, 10_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        rows.extend(page);
    }
    let read = t.elapsed();
    let t = Instant::now();
    let decoded: Vec<Event> = rows.iter().map(|r| r.decode().unwrap()).collect();
    let decode = t.elapsed();
    let t = Instant::now();
    let mut engine = Engine::new(EngineConfig::default());
    for event in &decoded {
        engine.evolve(event);
    }
    let evolve = t.elapsed();
    drop(engine);
    let t = Instant::now();
    let stored = store.latest_snapshot().await.unwrap().unwrap();
    let snapshot_read = t.elapsed();
    let t = Instant::now();
    let parsed = snapshot_codec::decode(&stored.state).unwrap();
    let snapshot_decode = t.elapsed();
    let t = Instant::now();
    let restored = Engine::restore(EngineConfig::default(), parsed).unwrap();
    let restore = t.elapsed();
    drop(restored);
    let tail_from = stored.seq as usize;
    let mut engine = Engine::restore(
        EngineConfig::default(),
        snapshot_codec::decode(&stored.state).unwrap(),
    )
    .unwrap();
    let t = Instant::now();
    for event in &decoded[tail_from..] {
        engine.evolve(event);
    }
    let tail_evolve = t.elapsed();
    let per = |d: Duration, n: usize| format!("{:.2} µs/event", d.as_secs_f64() * 1e6 / n as f64);
    let n = rows.len();
    let tail_n = n - tail_from;
    println!("| step | time | per event |");
    println!("|---|---:|---:|");
    println!(
        "| DB read, all {n} rows (pages of 10,000) | {:.2} s | {} |",
        read.as_secs_f64(),
        per(read, n)
    );
    println!(
        "| JSON decode of {n} events | {:.2} s | {} |",
        decode.as_secs_f64(),
        per(decode, n)
    );
    println!(
        "| `evolve` of {n} events | {:.2} s | {} |",
        evolve.as_secs_f64(),
        per(evolve, n)
    );
    println!(
        "| snapshot row read | {:.2} s | |",
        snapshot_read.as_secs_f64()
    );
    println!(
        "| snapshot decode (LZ4 + postcard record) | {:.2} s | |",
        snapshot_decode.as_secs_f64()
    );
    println!(
        "| `Engine::restore` (index rebuild) | {:.2} s | |",
        restore.as_secs_f64()
    );
    println!(
        "| `evolve` of the {tail_n}-event tail | {:.2} s | {} |",
        tail_evolve.as_secs_f64(),
        per(tail_evolve, tail_n.max(1))
    );
    println!();
    close(store).await;
}
