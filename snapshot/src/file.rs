//! The file image: header, checks, and the memory map.

use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use rkyv::rancor;

use crate::{ArchivedSnapshot, Error, Result, Snapshot};

pub const MAGIC: &[u8; 8] = b"SLUICESN";
pub const VERSION: u32 = 1;
/// Header length; a multiple of 16 so that the archive is aligned in a mapped file.
pub const HEADER_LEN: usize = 32;

/// The header for an archive.
pub fn header(archive: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&crc32fast::hash(archive).to_le_bytes());
    h[16..24].copy_from_slice(&(archive.len() as u64).to_le_bytes());
    h
}

/// Writes header and archive of `snapshot` to `out`; returns the bytes written.
pub fn write_to(snapshot: &Snapshot, out: &mut impl Write) -> Result<u64, WriteError> {
    let archive = snapshot.to_archive().map_err(WriteError::Encode)?;
    out.write_all(&header(&archive)).map_err(WriteError::Io)?;
    out.write_all(&archive).map_err(WriteError::Io)?;
    Ok((HEADER_LEN + archive.len()) as u64)
}

#[derive(Debug)]
pub enum WriteError {
    Encode(Error),
    Io(std::io::Error),
}

/// Checks a whole file image: magic, version, length, checksum, then the archive's
/// structure.
pub fn check(path: &str, bytes: &[u8]) -> Result<()> {
    let damaged = |what: String| Error::Damaged {
        path: path.to_string(),
        what,
    };
    if bytes.len() < HEADER_LEN {
        if bytes.len() >= MAGIC.len() && &bytes[..MAGIC.len()] != MAGIC {
            return Err(Error::Foreign {
                path: path.to_string(),
            });
        }
        return Err(damaged(format!(
            "{} bytes: shorter than the {HEADER_LEN}-byte header (truncated)",
            bytes.len()
        )));
    }
    if &bytes[..8] != MAGIC {
        return Err(Error::Foreign {
            path: path.to_string(),
        });
    }
    let le32 = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&bytes[r]);
        u32::from_le_bytes(b)
    };
    let version = le32(8..12);
    if version != VERSION {
        return Err(Error::Version {
            path: path.to_string(),
            version,
        });
    }
    if bytes[24..HEADER_LEN].iter().any(|b| *b != 0) {
        return Err(damaged(
            "the header's reserved bytes (24..32) are not zero: the file was damaged".into(),
        ));
    }
    let crc = le32(12..16);
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[16..24]);
    let len = u64::from_le_bytes(len);
    let have = (bytes.len() - HEADER_LEN) as u64;
    if len != have {
        return Err(damaged(format!(
            "the header says the archive is {len} bytes, the file holds {have} (truncated or appended to)"
        )));
    }
    let archive = &bytes[HEADER_LEN..];
    let actual = crc32fast::hash(archive);
    if actual != crc {
        return Err(damaged(format!(
            "checksum mismatch (header {crc:08x}, archive {actual:08x}): the file was damaged"
        )));
    }
    if !(archive.as_ptr() as usize).is_multiple_of(16) {
        return Err(damaged(
            "the archive is not 16-byte aligned in memory".into(),
        ));
    }
    rkyv::access::<ArchivedSnapshot, rancor::Error>(archive)
        .map_err(|e| damaged(format!("the archive does not validate: {e}")))?;
    Ok(())
}

/// The root of an archive [`check`] accepted.
pub fn access(archive: &[u8]) -> &ArchivedSnapshot {
    // SAFETY: every `Loaded` holds bytes that passed `check` (checksum and
    // `rkyv::access` validation of this very archive); they are immutable since (a
    // `Bytes` over a private read-only map or an owned buffer).
    #[allow(unsafe_code)]
    unsafe {
        rkyv::access_unchecked::<ArchivedSnapshot>(archive)
    }
}

/// Maps a file read-only and checks it.
pub fn map_checked(path: &Path) -> Result<Bytes> {
    let name = path.display().to_string();
    let io = |source| Error::Io {
        path: name.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len == 0 {
        return Err(Error::Damaged {
            path: name,
            what: "empty file".into(),
        });
    }
    // SAFETY: the map is read-only and private. Snapshot files are never changed
    // in place: they are written under another name, fsynced and renamed, and
    // deleted only by unlinking (a mapped, unlinked file stays valid). A process
    // that truncated one behind our back could make reads fault; nothing of ours does.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::MmapOptions::new().map_copy_read_only(&file) }.map_err(io)?;
    let bytes = Bytes::from_owner(map);
    check(&name, &bytes)?;
    Ok(bytes)
}
