//! A snapshot at N open tasks (issue 12): bytes, encode, decode and the write into a SQLite
//! store, for the stored binary frame (`gavel_storage::snapshot_codec`: format 2, the engine's
//! snapshot record by position, and format 1, MessagePack with field names, which earlier
//! versions wrote) and for plain JSON (still what `gavel snapshot export` writes). Best of
//! three runs.
//!
//! `cargo run --release -p gavel-benches --example snapshot_format [-- TASKS]`

#![allow(clippy::print_stdout)]

use std::time::Instant;

use gavel_benches::market;
use gavel_engine::snapshot_record::StateRecordRef;
use gavel_engine::{Engine, EngineConfig, Snapshot};
use gavel_storage::{Store, StoredSnapshot, snapshot_codec};

type Encode = fn(&Snapshot) -> Vec<u8>;
type Decode = fn(&[u8]) -> Snapshot;

fn main() {
    let tasks: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let m = market(tasks, 1_000);
    let snapshot = m.engine.snapshot();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("gavel-snapshot-format-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = runtime.block_on(Store::open_sqlite(&dir)).unwrap();
    let formats: [(&str, Encode, Decode); 3] = [
        (
            "json",
            |s| serde_json::to_vec(s).unwrap(),
            |b| serde_json::from_slice(b).unwrap(),
        ),
        (
            "format1",
            |s| snapshot_codec::encode_format_1(&s.state),
            |b| snapshot_codec::decode(b).unwrap(),
        ),
        (
            "format2",
            |s| snapshot_codec::encode(&s.state),
            |b| snapshot_codec::decode(b).unwrap(),
        ),
    ];
    println!("{tasks} open tasks, 1,000 coaches (best of 3)");
    for (name, encode, decode) in formats {
        let best = |f: &mut dyn FnMut() -> f64| (0..3).map(|_| f()).fold(f64::MAX, f64::min);
        let bytes = encode(&snapshot);
        let enc = best(&mut || {
            let t = Instant::now();
            std::hint::black_box(encode(&snapshot));
            t.elapsed().as_secs_f64() * 1e3
        });
        let dec = best(&mut || {
            let t = Instant::now();
            let back = decode(&bytes);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            assert!(back.state == snapshot.state, "{name} round trip");
            ms
        });
        let write = best(&mut || {
            let t = Instant::now();
            let row = StoredSnapshot {
                seq: snapshot.state.seq,
                at: snapshot.state.now,
                state: bytes.clone(),
            };
            runtime.block_on(store.write_snapshot(&row)).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        });
        let restore = best(&mut || {
            let t = Instant::now();
            let engine = Engine::restore(EngineConfig::default(), decode(&bytes)).unwrap();
            std::hint::black_box(engine);
            t.elapsed().as_secs_f64() * 1e3
        });
        println!(
            "{name:7} {:>7.2} MB  encode {enc:>6.1} ms  store write {write:>6.1} ms  \
             decode {dec:>6.1} ms  decode+restore {restore:>6.1} ms",
            bytes.len() as f64 / 1e6
        );
    }
    // Where each binary encode's time goes: the encoding pass, then LZ4 over its bytes.
    let passes: [(&str, &dyn Fn() -> Vec<u8>); 2] = [
        ("format1 = MessagePack", &|| {
            rmp_serde::to_vec_named(&snapshot).unwrap()
        }),
        ("format2 = postcard record", &|| {
            postcard::to_allocvec(&(snapshot.version, StateRecordRef::new(&snapshot.state)))
                .unwrap()
        }),
    ];
    for (name, pass) in passes {
        let t = Instant::now();
        let raw = pass();
        let encode = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let packed = lz4_flex::block::compress(&raw);
        let lz4 = t.elapsed().as_secs_f64() * 1e3;
        println!(
            "{name} {encode:.1} ms ({:.1} MB) + LZ4 {lz4:.1} ms ({:.2} MB)",
            raw.len() as f64 / 1e6,
            packed.len() as f64 / 1e6
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
