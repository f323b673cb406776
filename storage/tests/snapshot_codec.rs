//! The snapshot frame (`gavel_storage::snapshot_codec`): round trips, reads the JSON snapshots
//! of earlier versions, and turns every kind of damage into an error, never a wrong state.

mod common;

use common::market_events;
use gavel_engine::{Actor, Command, SNAPSHOT_VERSION, Snapshot, State};
use gavel_protocol::command::PlaceBid;
use gavel_protocol::{RequestId, Role, UserId};
use gavel_storage::snapshot_codec::{MAGIC, decode, encode, encode_format_1, to_json};

/// A state with tasks, ranked bids, coaches and a remembered reply (an internally tagged
/// enum inside the idempotency table).
fn state() -> State {
    let (mut engine, _) = market_events(6);
    let now = engine.state().now;
    let outcome = engine.execute(
        &gavel_engine::Request {
            actor: Actor::new(UserId::new("ana").unwrap(), Role::Coach),
            request_id: Some(RequestId::new("again").unwrap()),
            command: Command::PlaceBid(PlaceBid {
                task_id: gavel_engine::ids::task_id(0),
                amount: 2900,
                eta_hours: 4,
            }),
        },
        now,
    );
    outcome.reply.expect("the bid is placed");
    engine.state().clone()
}

#[test]
fn a_frame_round_trips_and_is_smaller_than_json() {
    let state = state();
    let bytes = encode(&state);
    assert_eq!(&bytes[..8], MAGIC);
    let back = decode(&bytes).expect("decodes");
    assert_eq!(back.version, SNAPSHOT_VERSION);
    assert_eq!(back.state, state);
    let json = serde_json::to_vec(&back).unwrap();
    assert!(
        bytes.len() < json.len(),
        "{} vs {}",
        bytes.len(),
        json.len()
    );
}

#[test]
fn json_snapshots_of_earlier_versions_still_load() {
    let state = state();
    let json = serde_json::to_vec(&Snapshot {
        version: SNAPSHOT_VERSION,
        state: state.clone(),
    })
    .unwrap();
    assert_eq!(decode(&json).expect("decodes").state, state);
}

#[test]
fn format_1_frames_of_earlier_versions_still_load() {
    let state = state();
    let back = decode(&encode_format_1(&state)).expect("decodes");
    assert_eq!(back.state, state);
    assert_eq!(
        &encode(&state)[8..12],
        &2u32.to_le_bytes(),
        "this build writes format 2"
    );
}

#[test]
fn the_export_is_the_json_snapshot() {
    let state = state();
    let json = to_json(&encode(&state)).unwrap();
    let parsed: Snapshot = serde_json::from_slice(&json).unwrap();
    assert_eq!(parsed.state, state);
}

#[test]
fn damage_is_an_error_never_a_wrong_state() {
    let bytes = encode(&state());
    for at in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[at] ^= 0x5a;
        assert!(decode(&bad).is_err(), "flipped byte {at} was accepted");
    }
    for len in 0..bytes.len() {
        assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
    }
    let mut future = bytes.clone();
    future[8] = 3;
    let err = decode(&future).unwrap_err();
    assert!(err.contains("encoding 3 is not supported"), "{err}");
}
