//! The bytes of a stored snapshot: a versioned, checksummed binary frame.
//!
//! ```text
//! offset  size  field
//!      0     8  magic  "gavelsnp"
//!      8     4  format (u32 LE): 2 = postcard record, LZ4 block-compressed
//!                              (1 = MessagePack with field names, LZ4: read, no longer written)
//!     12     4  CRC-32C (u32 LE) of bytes 16.. (the length and the payload)
//!     16     8  length of the uncompressed payload (u64 LE)
//!     24     …  payload: LZ4 block of the encoded `(version, state)`
//! ```
//!
//! Format 2 writes the state as [`gavel_engine::snapshot_record`] lays it out: by position
//! (postcard, no field names), without the indexes that follow from the tasks. Format 1 wrote
//! the engine's state itself as MessagePack *with* field names, because its protocol types'
//! serde attributes (`skip_serializing_if`, internally tagged enums) need a self-describing
//! format; it cost as much to encode as JSON (docs/benchmarks.md). The frame's `format`
//! changes when the encoding does; the engine's [`SNAPSHOT_VERSION`] inside changes when the
//! state's meaning does.
//!
//! Snapshots of earlier versions — format 1 frames, and plain JSON (starting with `{`) — are
//! still read, so an upgrade recovers from the snapshot it finds. JSON stays available as an
//! export (`gavel snapshot export`).

use gavel_engine::snapshot_record::{StateRecord, StateRecordRef};
use gavel_engine::{SNAPSHOT_VERSION, Snapshot, State};

/// The frame's first bytes.
pub const MAGIC: &[u8; 8] = b"gavelsnp";
/// The encoding this build writes.
pub const FORMAT: u32 = 2;
/// The MessagePack encoding of earlier versions, still read.
const FORMAT_MSGPACK: u32 = 1;
const HEADER: usize = 24;
/// No snapshot decompresses to more than this (a corrupt length must not allocate it).
const MAX_RAW: u64 = 1 << 36;

const CRC32C: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// Encodes `state` as a snapshot frame.
pub fn encode(state: &State) -> Vec<u8> {
    let raw = postcard::to_allocvec(&(SNAPSHOT_VERSION, StateRecordRef::new(state)))
        .expect("engine state always serializes");
    frame(FORMAT, &raw)
}

/// Encodes `state` as the format-1 frame earlier versions wrote (MessagePack with field
/// names): what upgrades find on disk, kept for the tests that read it back and for the
/// benchmark that compares the two.
pub fn encode_format_1(state: &State) -> Vec<u8> {
    let raw = rmp_serde::to_vec_named(
        &(Snapshot1 {
            version: SNAPSHOT_VERSION,
            state,
        }),
    )
    .expect("engine state always serializes");
    frame(FORMAT_MSGPACK, &raw)
}

/// Format 1's payload: [`Snapshot`], borrowed.
#[derive(serde::Serialize)]
struct Snapshot1<'a> {
    version: u32,
    state: &'a State,
}

/// The frame around an encoded payload: header, LZ4 block, checksum.
fn frame(format: u32, raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + lz4_flex::block::get_maximum_output_size(raw.len()));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    out.resize(out.capacity(), 0);
    let written = lz4_flex::block::compress_into(raw, &mut out[HEADER..])
        .expect("the buffer has the maximum compressed size");
    out.truncate(HEADER + written);
    // The buffer was sized for incompressible input (the raw length and more): keep only
    // the frame while it waits for the database.
    out.shrink_to_fit();
    let crc = CRC32C.checksum(&out[16..]);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a stored snapshot: this module's frame (either format), or an older plain JSON
/// snapshot. Any damage (bad checksum, truncation, an unknown format) is an error naming what
/// is wrong.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    if bytes.first() == Some(&b'{') {
        return serde_json::from_slice(bytes).map_err(|e| format!("JSON snapshot: {e}"));
    }
    let (format, raw) = payload(bytes)?;
    if format == FORMAT_MSGPACK {
        return rmp_serde::from_slice(&raw).map_err(|e| format!("snapshot payload: {e}"));
    }
    let ((version, record), rest): ((u32, StateRecord), _) =
        postcard::take_from_bytes(&raw).map_err(|e| format!("snapshot payload: {e}"))?;
    if !rest.is_empty() {
        return Err(format!(
            "snapshot payload: {} bytes after the state",
            rest.len()
        ));
    }
    Ok(Snapshot {
        version,
        state: record.into_state()?,
    })
}

/// The frame's format and payload, checked and decompressed.
fn payload(bytes: &[u8]) -> Result<(u32, Vec<u8>), String> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err("not a gavel snapshot (no header)".into());
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let format = word(8);
    if format != FORMAT && format != FORMAT_MSGPACK {
        return Err(format!(
            "snapshot encoding {format} is not supported (this build reads {FORMAT_MSGPACK} and {FORMAT})"
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
    let raw = lz4_flex::block::decompress(&bytes[HEADER..], raw_len as usize)
        .map_err(|e| format!("snapshot payload: {e}"))?;
    Ok((format, raw))
}

/// The snapshot as pretty JSON (for `gavel snapshot export`): the shape the JSON snapshots
/// of earlier versions had, less the derived `live_bids` of each coach.
pub fn to_json(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let snapshot = decode(bytes)?;
    serde_json::to_vec_pretty(&snapshot).map_err(|e| format!("snapshot to JSON: {e}"))
}
