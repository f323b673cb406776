//! The bytes of a stored snapshot: a versioned, checksummed binary frame.
//!
//! ```text
//! offset  size  field
//!      0     8  magic  "gavelsnp"
//!      8     4  format (u32 LE): 1 = MessagePack with field names, LZ4 block-compressed
//!     12     4  CRC-32C (u32 LE) of bytes 16.. (the length and the payload)
//!     16     8  length of the uncompressed payload (u64 LE)
//!     24     …  payload: LZ4 block of the MessagePack `Snapshot { version, state }`
//! ```
//!
//! MessagePack *with field names* because it is self-describing: the engine's state holds
//! protocol types whose serde attributes (`skip_serializing_if`, internally tagged enums)
//! formats without field names (postcard, bincode, MessagePack arrays) cannot read back. The
//! names cost bytes, and LZ4 takes them back (100,000 open tasks: JSON 52 MB, this 3.5 MB;
//! see docs/benchmarks.md). The frame's `format` changes when the encoding does; the
//! engine's [`SNAPSHOT_VERSION`] inside changes when the state's shape does.
//!
//! Snapshots written before this format (plain JSON, starting with `{`) are still read, so an
//! upgrade recovers from the snapshot it finds. JSON stays available as an export
//! (`gavel snapshot export`).

use gavel_engine::{SNAPSHOT_VERSION, Snapshot, State};
use serde::Serialize;

/// The frame's first bytes.
pub const MAGIC: &[u8; 8] = b"gavelsnp";
/// The encoding this build writes (and the only binary one it reads).
pub const FORMAT: u32 = 1;
const HEADER: usize = 24;
/// No snapshot decompresses to more than this (a corrupt length must not allocate it).
const MAX_RAW: u64 = 1 << 36;

const CRC32C: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// The snapshot's serialized shape, written from a borrowed state (same shape as
/// [`Snapshot`], without copying the state first).
#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    state: &'a State,
}

/// Encodes `state` as a snapshot frame.
pub fn encode(state: &State) -> Vec<u8> {
    let snapshot = SnapshotRef {
        version: SNAPSHOT_VERSION,
        state,
    };
    let raw = rmp_serde::to_vec_named(&snapshot).expect("engine state always serializes");
    let mut out = Vec::with_capacity(HEADER + lz4_flex::block::get_maximum_output_size(raw.len()));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    out.resize(out.capacity(), 0);
    let written = lz4_flex::block::compress_into(&raw, &mut out[HEADER..])
        .expect("the buffer has the maximum compressed size");
    out.truncate(HEADER + written);
    // The buffer was sized for incompressible input (the raw length and more): keep only
    // the frame while it waits for the database.
    out.shrink_to_fit();
    let crc = CRC32C.checksum(&out[16..]);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a stored snapshot: this module's frame, or an older plain JSON snapshot. Any
/// damage (bad checksum, truncation, an unknown format) is an error naming what is wrong.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    if bytes.first() == Some(&b'{') {
        return serde_json::from_slice(bytes).map_err(|e| format!("JSON snapshot: {e}"));
    }
    let raw = payload(bytes)?;
    rmp_serde::from_slice(&raw).map_err(|e| format!("snapshot payload: {e}"))
}

/// The frame's payload, checked and decompressed.
fn payload(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err("not a gavel snapshot (no header)".into());
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let format = word(8);
    if format != FORMAT {
        return Err(format!(
            "snapshot encoding {format} is not supported (this build reads {FORMAT})"
        ));
    }
    let crc = CRC32C.checksum(&bytes[16..]);
    if crc != word(12) {
        return Err(format!(
            "snapshot checksum mismatch (stored {:08x}, computed {crc:08x})",
            word(12)
        ));
    }
    let raw_len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    if raw_len > MAX_RAW {
        return Err(format!("snapshot length {raw_len} is not plausible"));
    }
    lz4_flex::block::decompress(&bytes[HEADER..], raw_len as usize)
        .map_err(|e| format!("snapshot payload: {e}"))
}

/// The snapshot as pretty JSON (for `gavel snapshot export`): the shape the JSON snapshots
/// of earlier versions had, less the derived `live_bids` of each coach.
pub fn to_json(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let snapshot = decode(bytes)?;
    serde_json::to_vec_pretty(&snapshot).map_err(|e| format!("snapshot to JSON: {e}"))
}
