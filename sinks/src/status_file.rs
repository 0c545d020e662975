//! The status file sink: every Gateway's and route's status, rewritten atomically
//! after each logical time that changed any status.
//!
//! ```text
//!  runtime ── StatusBoard snapshot (O(1) clone) ──► channel ──► "status" thread ──► FILE.tmp ─rename─► FILE
//! ```
//!
//! Rendering every status is O(objects), so it runs on its own thread and a burst of
//! snapshots is coalesced: only the newest board is written. A write that fails is
//! logged and the next snapshot tries again; translation never waits for the disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};

use sluice_pipeline::model::ObjectKey;

use crate::encode::EncodeConfig;
use crate::status::StatusBoard;

/// Where and how the status file is written.
#[derive(Debug, Clone)]
pub struct StatusFile {
    pub path: PathBuf,
    /// Gives each Gateway's `status.addresses`.
    pub encode: EncodeConfig,
    /// The `controllerName` written into route parent statuses.
    pub controller: String,
}

impl StatusFile {
    /// Starts the writer thread; send it a board snapshot after each logical time
    /// whose status changed. The thread ends when the sender is dropped.
    pub fn spawn(self) -> std::io::Result<Sender<StatusBoard>> {
        let (tx, rx) = mpsc::channel::<StatusBoard>();
        std::thread::Builder::new()
            .name("status-file".into())
            .spawn(move || {
                while let Ok(mut board) = rx.recv() {
                    while let Ok(newer) = rx.try_recv() {
                        board = newer;
                    }
                    if let Err(e) = self.write(&board) {
                        tracing::error!(path = %self.path.display(), "writing the status file: {e}");
                    }
                }
            })?;
        Ok(tx)
    }

    /// Renders the board and replaces the file with it.
    pub fn write(&self, board: &StatusBoard) -> std::io::Result<()> {
        let addresses = |gw: &ObjectKey| vec![self.encode.address_for(gw).to_string()];
        let doc = board.to_json(&self.controller, &addresses);
        let bytes = serde_json::to_vec_pretty(&doc)?;
        write_atomically(&self.path, &bytes)
    }
}

/// Write to `PATH.tmp`, flush it to disk, then rename it over `PATH`: a reader sees
/// the old file or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let with_path = |what: &str, p: &Path, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
    };
    let mut file = std::fs::File::create(&tmp).map_err(|e| with_path("creating", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| with_path("writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| with_path("renaming over", path, e))
}
