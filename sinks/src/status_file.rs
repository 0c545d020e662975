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
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

use sluice_pipeline::model::ObjectKey;

use tokio::sync::watch;

use crate::encode::EncodeConfig;
use crate::state::Verdicts;
use crate::status::{StatusBoard, document_with_rejections};

/// Where and how the status file is written.
#[derive(Debug, Clone)]
pub struct StatusFile {
    pub path: PathBuf,
    /// Gives each Gateway's `status.addresses`.
    pub encode: EncodeConfig,
    /// The `controllerName` written into route parent statuses.
    pub controller: String,
    /// What proxies rejected ([`crate::state::XdsHub::verdicts`]): a change rewrites
    /// the file with the last board.
    pub verdicts: Option<watch::Receiver<Verdicts>>,
}

/// How often the writer thread looks for changed verdicts.
const VERDICT_POLL: Duration = Duration::from_millis(100);

impl StatusFile {
    /// Starts the writer thread; send it a board snapshot after each logical time
    /// whose status changed. The thread ends when the sender is dropped.
    pub fn spawn(mut self) -> std::io::Result<Sender<StatusBoard>> {
        let (tx, rx) = mpsc::channel::<StatusBoard>();
        std::thread::Builder::new()
            .name("status-file".into())
            .spawn(move || {
                let mut last = None;
                loop {
                    match rx.recv_timeout(VERDICT_POLL) {
                        Ok(board) => last = Some(board),
                        Err(RecvTimeoutError::Timeout) => {
                            let changed = (self.verdicts.as_ref())
                                .is_some_and(|v| v.has_changed().unwrap_or(false));
                            if !changed || last.is_none() {
                                continue;
                            }
                        }
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    while let Ok(newer) = rx.try_recv() {
                        last = Some(newer);
                    }
                    let Some(board) = &last else { continue };
                    if let Err(e) = self.write(board) {
                        tracing::error!(path = %self.path.display(), "writing the status file: {e}");
                    }
                }
            })?;
        Ok(tx)
    }

    /// Renders the board and replaces the file with it.
    pub fn write(&mut self, board: &StatusBoard) -> std::io::Result<()> {
        let addresses = |gw: &ObjectKey| vec![self.encode.address_for(gw).to_string()];
        let mut doc = board.to_json(&self.controller, &addresses);
        if let Some(verdicts) = &mut self.verdicts {
            doc = document_with_rejections(doc, board, &verdicts.borrow_and_update());
        }
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
