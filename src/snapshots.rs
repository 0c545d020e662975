//! `serve --snapshot-dir`: start from the newest snapshot, and write one periodically
//! and on shutdown.
//!
//! # Contract
//! - A snapshot is one complete logical time: the translation loop publishes a time's
//!   gateways and its status under the same lock a snapshot is taken under.
//! - Before the first live time, nothing is written (the served state is the loaded
//!   snapshot's); a time already written is not written again.
//! - Writing runs on its own thread (periodic) or on the main thread (shutdown);
//!   the translation loop only pays for the lock and `Arc` clones.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sluice_pipeline::model::{Object, ObjectId, ObjectKey};
use sluice_sinks::encode::EncodeConfig;
use sluice_sinks::state::{GatewayResources, XdsHub};
use sluice_sinks::status::StatusBoard;
use sluice_snapshot::Snapshot;
use sluice_snapshot::dir::SnapshotDir;
use sluice_sources::log::StreamState;

/// The state a snapshot is taken of.
#[derive(Debug, Default)]
pub struct Latest {
    pub time: u64,
    pub log_offset: Option<u64>,
    pub board: StatusBoard,
    /// With `--record`: the objects the time was translated from (the source state a
    /// replay continues from at `log_offset`).
    pub objects: imbl::OrdMap<ObjectId, Object>,
    /// A live time was published (the served state is no longer the loaded one).
    pub live: bool,
    written: Option<u64>,
}

#[derive(Debug)]
struct Shared {
    dir: Mutex<SnapshotDir>,
    latest: Mutex<Latest>,
    hub: Arc<XdsHub>,
    encode: EncodeConfig,
    controller: String,
}

/// The snapshot directory of a running `serve`.
#[derive(Debug, Clone)]
pub struct Snapshots {
    shared: Arc<Shared>,
}

/// What a warm start loaded and published.
#[derive(Debug)]
pub struct Warm {
    /// Gateways the snapshot had: each is replaced (or emptied) by the first live time.
    pub gateways: BTreeSet<ObjectKey>,
}

impl Snapshots {
    /// Opens (creates) the directory; publishes the newest snapshot that checks out to
    /// `hub`. Damaged ones are reported and skipped; none at all is a cold start.
    pub fn open(
        dir: &Path,
        keep: usize,
        hub: Arc<XdsHub>,
        encode: EncodeConfig,
        controller: String,
    ) -> anyhow::Result<(Self, Option<Warm>)> {
        let dir = SnapshotDir::open(dir, keep)?;
        let newest = dir.newest()?;
        for e in &newest.skipped {
            tracing::error!("skipping snapshot: {e}");
        }
        let mut warm = None;
        if let Some(loaded) = newest.loaded {
            match loaded.gateways() {
                Ok(gateways) => {
                    let keys: BTreeSet<ObjectKey> =
                        gateways.iter().map(|(k, _)| k.clone()).collect();
                    let resources: usize = gateways
                        .iter()
                        .map(|(_, g)| g.by_type.iter().map(|m| m.len()).sum::<usize>())
                        .sum();
                    for (key, state) in gateways {
                        hub.publish(&key, state);
                    }
                    tracing::info!(
                        snapshot = loaded.path(),
                        time = loaded.time(),
                        gateways = keys.len(),
                        resources,
                        bytes = loaded.len(),
                        load_ms = newest.elapsed.as_secs_f64() * 1e3,
                        "warm start: serving the snapshot until the sources have caught up"
                    );
                    warm = Some(Warm { gateways: keys });
                }
                Err(e) => tracing::error!("skipping snapshot: {e}"),
            }
        } else {
            tracing::info!(dir = %dir.path().display(), "no snapshot to start from: cold start");
        }
        let shared = Shared {
            dir: Mutex::new(dir),
            latest: Mutex::new(Latest::default()),
            hub,
            encode,
            controller,
        };
        Ok((
            Snapshots {
                shared: Arc::new(shared),
            },
            warm,
        ))
    }

    /// The lock a logical time is published under.
    pub fn lock(&self) -> MutexGuard<'_, Latest> {
        self.shared.latest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a snapshot every `every` (when there is a new time) on its own thread.
    pub fn spawn_periodic(&self, every: Duration) -> anyhow::Result<()> {
        let this = self.clone();
        std::thread::Builder::new()
            .name("snapshots".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    this.write("periodic");
                }
            })?;
        Ok(())
    }

    /// Writes a snapshot of the latest live time now, unless it was written already.
    /// A failure is logged; serving goes on.
    pub fn write(&self, why: &str) {
        let started = Instant::now();
        let (time, log_offset, gateways, board, objects) = {
            let latest = self.lock();
            if !latest.live || latest.written == Some(latest.time) {
                return;
            }
            (
                latest.time,
                latest.log_offset,
                self.shared.hub.all(),
                latest.board.clone(),
                latest.objects.clone(),
            )
        };
        let addresses = |gw: &ObjectKey| vec![self.shared.encode.address_for(gw).to_string()];
        let status = board
            .to_json(&self.shared.controller, &addresses)
            .to_string();
        let mut snapshot = Snapshot::capture(
            time,
            log_offset,
            gateways
                .iter()
                .map(|(k, g)| (k, g.as_ref() as &GatewayResources)),
            status,
        );
        if log_offset.is_some() {
            let state = StreamState::by_kind(objects.values());
            match serde_json::to_string(&state) {
                Ok(json) => snapshot.sources_json = json,
                Err(e) => tracing::warn!("the snapshot goes without its source state: {e}"),
            }
        }
        let captured = started.elapsed();
        let written = {
            let mut dir = self.shared.dir.lock().unwrap_or_else(|e| e.into_inner());
            dir.write(&snapshot)
        };
        match written {
            Ok(w) => {
                self.lock().written = Some(time);
                tracing::info!(
                    why,
                    time,
                    path = %w.path.display(),
                    bytes = w.bytes,
                    capture_ms = captured.as_secs_f64() * 1e3,
                    write_ms = w.elapsed.as_secs_f64() * 1e3,
                    removed = w.removed,
                    "snapshot written"
                );
            }
            Err(e) => tracing::error!("writing a snapshot: {e}"),
        }
    }
}
