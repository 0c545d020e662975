//! A directory of snapshots: atomic writes, keeping the newest N, loading the newest
//! one that checks out.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::file::{self, WriteError};
use crate::{Error, Loaded, Result, Snapshot};

const SUFFIX: &str = ".sluice";

/// `snapshot-<20-digit sequence>-t<logical time>.sluice`: names sort in the order
/// they were written in, across restarts (the logical time starts over with each
/// process; the sequence goes on from the directory's highest).
fn file_name(time: u64, seq: u64) -> String {
    format!("snapshot-{seq:020}-t{time}{SUFFIX}")
}

/// The directory `sluice serve --snapshot-dir` writes to and starts from.
#[derive(Debug)]
pub struct SnapshotDir {
    dir: PathBuf,
    keep: usize,
    seq: u64,
}

/// What one write did.
#[derive(Debug)]
pub struct Written {
    pub path: PathBuf,
    pub bytes: u64,
    /// Encoding, writing and fsync.
    pub elapsed: Duration,
    /// Older snapshots deleted to keep the newest N.
    pub removed: usize,
}

/// What loading the newest snapshot found.
#[derive(Debug, Default)]
pub struct Newest {
    pub loaded: Option<Loaded>,
    /// Files that did not check out, newest first, with why (each is reported, then
    /// the next older one is tried).
    pub skipped: Vec<Error>,
    pub elapsed: Duration,
}

impl SnapshotDir {
    /// Creates the directory if needed. Keeps the newest `keep` snapshots (at least 1).
    pub fn open(dir: &Path, keep: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let seq = Self::list(dir)?
            .iter()
            .filter_map(|p| sequence(p))
            .max()
            .map_or(0, |s| s + 1);
        Ok(Self {
            dir: dir.to_path_buf(),
            keep: keep.max(1),
            seq,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Snapshot files, oldest first (by name: their sequence).
    fn list(dir: &Path) -> Result<Vec<PathBuf>> {
        let io = |source| Error::Io {
            path: dir.display().to_string(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("snapshot-") && name.ends_with(SUFFIX) {
                files.push(entry.path());
            }
        }
        files.sort();
        Ok(files)
    }

    /// Writes `snapshot` atomically: a temporary file, fsync, rename, fsync of the
    /// directory; then deletes all but the newest `keep`.
    pub fn write(&mut self, snapshot: &Snapshot) -> Result<Written> {
        let started = Instant::now();
        let name = file_name(snapshot.time, self.seq);
        self.seq += 1;
        let path = self.dir.join(&name);
        let bytes = write_file(snapshot, &path)?;
        let elapsed = started.elapsed();
        let mut removed = 0;
        let files = Self::list(&self.dir)?;
        let excess = files.len().saturating_sub(self.keep);
        for old in files.iter().take(excess) {
            match std::fs::remove_file(old) {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!("removing old snapshot {}: {e}", old.display()),
            }
        }
        Ok(Written {
            path,
            bytes,
            elapsed,
            removed,
        })
    }

    /// Loads the newest snapshot that checks out; files that do not are reported in
    /// [`Newest::skipped`] and left where they are (for a person to look at).
    pub fn newest(&self) -> Result<Newest> {
        let started = Instant::now();
        let mut newest = Newest::default();
        for path in Self::list(&self.dir)?.iter().rev() {
            match Loaded::open(path) {
                Ok(loaded) => {
                    newest.loaded = Some(loaded);
                    break;
                }
                Err(e) => newest.skipped.push(e),
            }
        }
        newest.elapsed = started.elapsed();
        Ok(newest)
    }
}

/// The sequence number in a snapshot's file name.
fn sequence(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?.strip_prefix("snapshot-")?;
    name.split('-').next()?.parse().ok()
}

/// Writes `snapshot` to `path` atomically: a hidden temporary file beside it, fsync,
/// rename, fsync of the directory. A failure leaves `path` as it was. Returns the
/// bytes written.
pub fn write_file(snapshot: &Snapshot, path: &Path) -> Result<u64> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| Error::Io { path: p, source }
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "snapshot".into());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        // Owner-only: a snapshot holds the served Secrets (listener private keys).
        let mut out = {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io(&tmp))?
        };
        let bytes = {
            let mut buf = std::io::BufWriter::with_capacity(1 << 20, &mut out);
            let n = file::write_to(snapshot, &mut buf).map_err(|e| match e {
                WriteError::Encode(e) => e,
                WriteError::Io(source) => io(&tmp)(source),
            })?;
            buf.flush().map_err(io(&tmp))?;
            n
        };
        out.sync_all().map_err(io(&tmp))?;
        drop(out);
        std::fs::rename(&tmp, path).map_err(io(path))?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir))?;
        Ok(bytes)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
