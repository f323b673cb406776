//! Golden wire examples: every file in `tests/golden/` is a frame exactly as it crosses the
//! wire, and must decode into the protocol types and re-encode to the same JSON.
//!
//! File names say what a file holds:
//! - `client.<type>[.<variant>].json` — a client frame, decoded by `parse_client_frame`;
//! - `server.<type>[.<variant>].json` — a server frame (`ok`, `error`, `event`);
//! - `event.<kind>.json` — an `event` frame carrying that event kind;
//! - `result.<command>[.<variant>].json` — an `ok` frame whose `result` is that command's typed
//!   result (`result.subscribe.<topic kind>.json` for `subscribe`).
//!
//! Every client frame type, every event kind and every server frame type must have a file, so a
//! new kind added without a golden example fails here.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use gavel_protocol::views::{
    AcceptBidResult, AcceptVerificationResult, CancelTaskResult, ListTasksResult, PlaceBidResult,
    PostTaskResult, QuoteResult, RequestChangesResult, Snapshot, SubscribeResult,
};
use gavel_protocol::{Command, EventPayload, ServerFrame, Topic, parse_client_frame};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const GOLDEN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");

/// The three `type`s a server frame may have.
const SERVER_TYPES: &[&str] = &["ok", "error", "event"];

/// Every golden file, sorted by name.
fn golden_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(GOLDEN_DIR)
        .unwrap_or_else(|e| panic!("cannot read {GOLDEN_DIR}: {e}"))
        .map(|entry| entry.expect("readable directory entry").path())
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_else(|| panic!("{}: file name is not UTF-8", path.display()))
}

/// The part of a golden file name between `<prefix>.` and `.json`.
fn stem<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    name.strip_prefix(prefix)?
        .strip_prefix('.')?
        .strip_suffix(".json")
}

fn read(path: &Path) -> (String, Value) {
    let name = file_name(path);
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: cannot read: {e}"));
    let value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: not valid JSON: {e}"));
    (text, value)
}

/// Decodes `value` as `T` and checks it re-encodes to the same JSON.
fn round_trip<T: Serialize + DeserializeOwned>(name: &str, what: &str, value: &Value) -> T {
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{name}: does not decode as {what}: {e}"));
    let again = serde_json::to_value(&typed)
        .unwrap_or_else(|e| panic!("{name}: {what} does not re-encode: {e}"));
    assert_eq!(
        &again, value,
        "{name}: {what} re-encodes differently (left: re-encoded, right: file)"
    );
    typed
}

fn check_client(path: &Path, ty: &str) {
    let name = file_name(path);
    let (text, value) = read(path);
    assert!(
        Command::TYPES.contains(&ty),
        "{name}: `{ty}` is not a client frame type (Command::TYPES)"
    );
    assert_eq!(
        value.get("type").and_then(Value::as_str),
        Some(ty),
        "{name}: `type` does not match the file name"
    );
    let frame = parse_client_frame(&text)
        .unwrap_or_else(|e| panic!("{name}: refused by parse_client_frame: {e:?}"));
    assert_eq!(
        frame.command.type_name(),
        ty,
        "{name}: decoded as another command"
    );
    let again = serde_json::to_value(&frame)
        .unwrap_or_else(|e| panic!("{name}: client frame does not re-encode: {e}"));
    assert_eq!(
        again, value,
        "{name}: client frame re-encodes differently (left: re-encoded, right: file)"
    );
}

fn check_server(path: &Path, ty: &str) -> (ServerFrame, Value) {
    let name = file_name(path);
    let (_, value) = read(path);
    let frame: ServerFrame = round_trip(name, "ServerFrame", &value);
    let actual = match &frame {
        ServerFrame::Ok(_) => "ok",
        ServerFrame::Error(_) => "error",
        ServerFrame::Event(_) => "event",
    };
    assert_eq!(actual, ty, "{name}: decoded as a server `{actual}` frame");
    (frame, value)
}

fn check_event(path: &Path, kind: &str) {
    let name = file_name(path);
    let (frame, value) = check_server(path, "event");
    let ServerFrame::Event(frame) = frame else {
        unreachable!("checked above")
    };
    assert!(
        EventPayload::KINDS.contains(&kind),
        "{name}: `{kind}` is not an event kind (EventPayload::KINDS)"
    );
    assert_eq!(
        value.pointer("/event/kind").and_then(Value::as_str),
        Some(kind),
        "{name}: `event.kind` does not match the file name"
    );
    assert_eq!(
        frame.event.kind(),
        kind,
        "{name}: Event::kind() differs from the file's `event.kind`"
    );
    if let Topic::Task(id) = &frame.topic {
        assert_eq!(
            frame.event.task_id.as_ref(),
            Some(id),
            "{name}: an event on `task:<id>` must carry that task_id"
        );
    }
}

fn check_result(path: &Path, what: &str) {
    let name = file_name(path);
    let (_, value) = check_server(path, "ok");
    let result = value
        .get("result")
        .unwrap_or_else(|| panic!("{name}: `ok` frame without `result`"));
    // `result.<command>[.<variant>[.<more>]].json`: the variant names the topic kind.
    let (command, variant) = what.split_once('.').unwrap_or((what, ""));
    let variant = variant.split('.').next().unwrap_or(variant);
    match command {
        "subscribe" => {
            let r: SubscribeResult = round_trip(name, "SubscribeResult", result);
            if !variant.is_empty() {
                assert_eq!(
                    r.topic.kind(),
                    variant,
                    "{name}: result topic is not a `{variant}` topic"
                );
            }
            // The untagged snapshot must decode as the shape the topic calls for.
            let shape = match &r.snapshot {
                None => None,
                Some(Snapshot::Feed(_)) => Some("feed"),
                Some(Snapshot::Task(_)) => Some("task"),
                Some(Snapshot::Coach(_)) => Some("coach"),
                Some(Snapshot::Admin(_)) => Some("admin"),
                Some(Snapshot::Seeker(_)) => Some("seeker"),
            };
            if let Some(shape) = shape {
                assert_eq!(
                    shape,
                    r.topic.kind(),
                    "{name}: snapshot decoded as a `{shape}` snapshot on a `{}` topic",
                    r.topic.kind()
                );
            }
            // `result.subscribe.task.archived.json`: a task served from the archive (§9).
            if what.ends_with(".archived") {
                let archived = matches!(&r.snapshot, Some(Snapshot::Task(view)) if view.archived);
                assert!(
                    archived,
                    "{name}: the snapshot is a task view with `archived: true`"
                );
            }
        }
        "post_task" => {
            round_trip::<PostTaskResult>(name, "PostTaskResult", result);
        }
        "place_bid" => {
            round_trip::<PlaceBidResult>(name, "PlaceBidResult", result);
        }
        "accept_bid" => {
            round_trip::<AcceptBidResult>(name, "AcceptBidResult", result);
        }
        "accept_verification" => {
            round_trip::<AcceptVerificationResult>(name, "AcceptVerificationResult", result);
        }
        "request_changes" => {
            round_trip::<RequestChangesResult>(name, "RequestChangesResult", result);
        }
        "cancel_task" => {
            round_trip::<CancelTaskResult>(name, "CancelTaskResult", result);
        }
        "list_tasks" => {
            round_trip::<ListTasksResult>(name, "ListTasksResult", result);
        }
        "quote" => {
            round_trip::<QuoteResult>(name, "QuoteResult", result);
        }
        other => panic!("{name}: no typed result is known for `{other}`"),
    }
}

#[test]
fn every_golden_file_round_trips() {
    let files = golden_files();
    assert!(!files.is_empty(), "no golden files in {GOLDEN_DIR}");
    for path in &files {
        let name = file_name(path);
        if let Some(rest) = stem(name, "client") {
            let ty = rest.split('.').next().unwrap_or(rest);
            check_client(path, ty);
        } else if let Some(rest) = stem(name, "server") {
            let ty = rest.split('.').next().unwrap_or(rest);
            assert!(
                SERVER_TYPES.contains(&ty),
                "{name}: `{ty}` is not a server frame type"
            );
            check_server(path, ty);
        } else if let Some(kind) = stem(name, "event") {
            check_event(path, kind);
        } else if let Some(what) = stem(name, "result") {
            check_result(path, what);
        } else {
            panic!(
                "{name}: a golden file must be named client.*.json, server.*.json, \
                 event.*.json or result.*.json"
            );
        }
    }
}

#[test]
fn every_frame_type_and_event_kind_has_a_golden_file() {
    let names: BTreeSet<String> = golden_files()
        .iter()
        .map(|p| file_name(p).to_owned())
        .collect();
    let mut missing = Vec::new();
    let expected = Command::TYPES
        .iter()
        .map(|t| format!("client.{t}.json"))
        .chain(SERVER_TYPES.iter().map(|t| format!("server.{t}.json")))
        .chain(
            EventPayload::KINDS
                .iter()
                .map(|k| format!("event.{k}.json")),
        );
    for file in expected {
        if !names.contains(&file) {
            missing.push(file);
        }
    }
    assert!(
        missing.is_empty(),
        "golden examples missing in {GOLDEN_DIR}: {missing:?}"
    );
}

#[test]
fn every_typed_result_has_a_golden_file() {
    let names: BTreeSet<String> = golden_files()
        .iter()
        .map(|p| file_name(p).to_owned())
        .collect();
    let expected = [
        "result.subscribe.feed.json",
        "result.subscribe.task.json",
        "result.subscribe.coach.json",
        "result.subscribe.admin.json",
        "result.subscribe.seeker.json",
        "result.subscribe.task.archived.json",
        "result.post_task.json",
        "result.place_bid.json",
        "result.accept_bid.json",
        "result.accept_verification.json",
        "result.request_changes.json",
        "result.cancel_task.json",
        "result.list_tasks.json",
        "result.quote.json",
        // Not a result, but a topic of its own (§9): an event as the seeker's dashboard gets it.
        "server.event.seeker.json",
    ];
    let missing: Vec<&str> = expected
        .into_iter()
        .filter(|f| !names.contains(*f))
        .collect();
    assert!(
        missing.is_empty(),
        "golden examples missing in {GOLDEN_DIR}: {missing:?}"
    );
}
