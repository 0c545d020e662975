//! Sluice's event log: the watch events its sources saw, in order, with the logical
//! times they were given. The log is the source of truth; every output can be rebuilt
//! by replaying it.
//!
//! # Format, version 2
//!
//! All integers are little-endian.
//!
//! ```text
//! header  = magic "SLUICELG" (8 bytes) · version u32 (= 2)
//! frame   = length u32 · crc32 u32 (of the record bytes) · record (length bytes)
//! record  = time u64 · wall u64 · op u8 · api_version str · kind str · namespace str
//!           · name str · object bytes
//! str     = length u32 · UTF-8 bytes        bytes = length u32 · bytes
//! op      = 0 apply · 1 delete · 2 resync-begin · 3 resync-end
//! ```
//!
//! `time` is the logical time the source gave the event; events of one time are
//! consecutive and times never decrease. `wall` is when it was recorded, in
//! microseconds since the Unix epoch (0: unknown), for replaying at the recorded pace.
//! `object` is the object as the source read it (JSON; lossless). A delete carries
//! the last known object or nothing. The resync markers bracket a relist of one
//! stream: `kind`, and as its scope `namespace` (a per-namespace watch) or `name` (a
//! watch of one cluster-scoped object), empty for all; objects of that kind and scope
//! not re-applied between them are gone. A record is at most [`MAX_RECORD`] bytes.
//!
//! Version 1 is version 2 without `wall`; it is still read, and appending to a
//! version 1 log writes version 1 frames.
//!
//! # Damage
//!
//! Appending is one `write` per frame, so a crash can only leave the last frame
//! short. A [`Reader`] reports such a tail ([`Reader::truncated_at`]) and ends
//! there; [`Writer::append`] cuts it off and continues after the last whole frame.
//! Anything else (a wrong magic, an unknown version, a checksum that does not match
//! a whole frame, a malformed record) is an [`Error`] naming the byte offset of the
//! header or frame; every event before it has been read.

mod crc32;
mod reader;
mod record;
mod summary;
mod writer;

pub use crc32::crc32;
pub use reader::Reader;
pub use summary::Summary;
pub use writer::Writer;

/// The first 8 bytes of every log.
pub const MAGIC: &[u8; 8] = b"SLUICELG";
/// The format version this crate writes (and the newest it reads).
pub const VERSION: u32 = 2;
/// The oldest format version this crate reads.
pub const MIN_VERSION: u32 = 1;
/// Header size: magic and version.
pub const HEADER_LEN: u64 = 12;
/// Frame overhead: length and checksum.
pub const FRAME_OVERHEAD: u64 = 8;
/// The largest record a frame may hold (64 MiB): a longer length is damage.
pub const MAX_RECORD: u32 = 64 << 20;

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Apply,
    Delete,
    /// A relist of `kind` starts: what it does not re-apply before
    /// [`Op::ResyncEnd`] was deleted while the watch was down.
    ResyncBegin,
    ResyncEnd,
}

impl Op {
    fn code(self) -> u8 {
        match self {
            Op::Apply => 0,
            Op::Delete => 1,
            Op::ResyncBegin => 2,
            Op::ResyncEnd => 3,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Op::Apply,
            1 => Op::Delete,
            2 => Op::ResyncBegin,
            3 => Op::ResyncEnd,
            _ => return None,
        })
    }

    /// `apply`, `delete`, `resync-begin` or `resync-end`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Apply => "apply",
            Op::Delete => "delete",
            Op::ResyncBegin => "resync-begin",
            Op::ResyncEnd => "resync-end",
        }
    }
}

/// One event of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The logical time the source gave the event.
    pub time: u64,
    /// When it was recorded: microseconds since the Unix epoch (0: unknown).
    pub wall_micros: u64,
    pub op: Op,
    /// `group/version`, or `version` for the core group (`v1`).
    pub api_version: String,
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
    /// The object as the source read it (JSON), or empty.
    pub object: Vec<u8>,
}

/// Why a log cannot be read or written past some point.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: byte {offset}: {what}")]
    Damaged {
        path: String,
        offset: u64,
        what: String,
    },
    /// An event that cannot be written (nothing was).
    #[error("{path}: {what}")]
    Refused { path: String, what: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
