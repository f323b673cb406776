//! Writes the protocol's JSON Schema to `docs/protocol.schema.json`.
//!
//! Run after changing any wire type: `cargo run -p gavel-protocol --example write_schema`
//! (the `schema` test fails while the file is stale).

use std::path::Path;

const SCHEMA_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.schema.json");

#[allow(clippy::print_stdout)] // reporting what was written is the point of this tool
fn main() -> std::io::Result<()> {
    let path = Path::new(SCHEMA_PATH);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = gavel_protocol::schema::protocol_schema_text();
    std::fs::write(path, &text)?;
    println!("wrote {} ({} bytes)", path.display(), text.len());
    Ok(())
}
