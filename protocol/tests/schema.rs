//! The published JSON Schema (`docs/protocol.schema.json`) must match the protocol types.

use gavel_protocol::schema::protocol_schema_text;
use gavel_protocol::{Command, EventPayload};

const SCHEMA_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.schema.json");
const REGENERATE: &str =
    "run `cargo run -p gavel-protocol --example write_schema` to regenerate it";

#[test]
fn published_schema_is_up_to_date() {
    let published = std::fs::read_to_string(SCHEMA_PATH)
        .unwrap_or_else(|e| panic!("cannot read {SCHEMA_PATH} ({e}); {REGENERATE}"));
    // Not assert_eq!: a diff of two whole schemas would drown the instruction.
    assert!(
        published == protocol_schema_text(),
        "{SCHEMA_PATH} is stale: it differs from protocol_schema_text(); {REGENERATE}"
    );
}

#[test]
fn schema_mentions_every_command_type_and_event_kind() {
    let text = protocol_schema_text();
    let missing: Vec<&str> = Command::TYPES
        .iter()
        .chain(EventPayload::KINDS)
        .copied()
        .filter(|name| !text.contains(&format!("\"{name}\"")))
        .collect();
    assert!(
        missing.is_empty(),
        "the protocol schema does not mention {missing:?}"
    );
}
