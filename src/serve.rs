//! `sluice serve`: watch a manifest directory, translate every change incrementally,
//! and serve the result over ADS; optionally keep a status file current.
//!
//! ```text
//!  files ─notify/scan─► DirectorySource ─changes @ t─► Pipeline ─Delta─► Translator ─► XdsHub ─► ADS streams
//!                                                                   └──► StatusBoard ─► status file
//! ```
//! The translation loop runs on its own thread (timely blocks its threads); the ADS
//! server runs on tokio.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context;
use sluice_pipeline::Pipeline;
use sluice_pipeline::ir::StatusOutput;
use sluice_pipeline::model::ObjectKey;
use sluice_sinks::encode::EncodeConfig;
use sluice_sinks::state::XdsHub;
use sluice_sinks::status::StatusBoard;
use sluice_sinks::translator::Translator;
use sluice_sources::watch::DirectorySource;

use crate::ServeArgs;

/// Parses `NAMESPACE/NAME=IP`.
pub fn parse_gateway_address(s: &str) -> Result<(ObjectKey, String), String> {
    let (gw, ip) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAMESPACE/NAME=IP"))?;
    let (ns, name) = gw
        .split_once('/')
        .ok_or_else(|| format!("{gw:?}: expected NAMESPACE/NAME"))?;
    ip.parse::<std::net::IpAddr>()
        .map_err(|e| format!("{ip:?}: {e}"))?;
    Ok((ObjectKey::new(ns, name), ip.to_string()))
}

/// What the translation loop needs.
struct Loop {
    source: DirectorySource,
    pipeline: Pipeline,
    translator: Translator,
    hub: Arc<XdsHub>,
    /// The status stream of each time that changed status, to the status writer
    /// thread.
    status: Option<mpsc::Sender<StatusBatch>>,
}

/// One logical time's status stream.
type StatusBatch = (u64, Vec<(StatusOutput, isize)>);

/// Keeps the status board and rewrites the status file, off the translation thread:
/// rendering every status is O(objects), so bursts are coalesced into one write.
struct StatusWriter {
    board: StatusBoard,
    path: PathBuf,
    encode: EncodeConfig,
    controller: String,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let ServeArgs {
        from,
        xds,
        listen_address,
        gateway_addresses,
        port_offset,
        status_file,
        pipeline,
    } = args;
    let config = pipeline.config();
    let encode = EncodeConfig {
        default_address: listen_address,
        gateway_addresses: gateway_addresses.into_iter().collect(),
        port_offset,
    };
    let hub = XdsHub::new();
    let status = match status_file {
        Some(path) => {
            let writer = StatusWriter {
                board: StatusBoard::default(),
                path,
                encode: encode.clone(),
                controller: config.controller_name.clone(),
            };
            Some(writer.spawn()?)
        }
        None => None,
    };
    let mut lp = Loop {
        source: DirectorySource::new(from),
        pipeline: Pipeline::new(config)?,
        translator: Translator::new(encode),
        hub: hub.clone(),
        status,
    };
    lp.step()?; // the initial state, before any proxy is served
    std::thread::Builder::new()
        .name("translate".into())
        .spawn(move || {
            if let Err(e) = lp.watch() {
                tracing::error!("translation loop stopped: {e:#}");
                std::process::exit(1);
            }
        })
        .context("starting the translation thread")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        tracing::info!(%xds, "serving ADS");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        sluice_sinks::ads::serve(hub, xds, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

impl Loop {
    /// Scan the files; translate and publish what changed (one logical time).
    fn step(&mut self) -> anyhow::Result<()> {
        let scan = self.source.scan();
        for w in &scan.warnings {
            tracing::warn!("{w}");
        }
        for e in &scan.errors {
            tracing::error!("{e}");
        }
        if scan.changes.is_empty() && self.pipeline.time() > 0 {
            return Ok(());
        }
        let started = Instant::now();
        let n = scan.changes.len();
        let delta = self.pipeline.apply(scan.changes)?;
        let translated = started.elapsed();
        let published = self.translator.apply(&delta)?;
        for (gateway, resources) in &published {
            self.hub.publish(gateway, resources.clone());
        }
        let encoded = started.elapsed();
        let outputs = delta.len();
        if let Some(status) = &self.status
            && !delta.status.is_empty()
        {
            status
                .send((delta.time, delta.status))
                .map_err(|_| anyhow::anyhow!("the status writer stopped"))?;
        }
        tracing::info!(
            time = delta.time,
            changes = n,
            outputs,
            gateways = published.len(),
            pipeline_us = translated.as_micros() as u64,
            published_us = encoded.as_micros() as u64,
            total_us = started.elapsed().as_micros() as u64,
            "applied"
        );
        Ok(())
    }

    /// Wait for file-system events (or a periodic rescan) and step.
    fn watch(&mut self) -> anyhow::Result<()> {
        let (_watcher, events) = self
            .source
            .notifications()
            .context("watching the manifest paths")?;
        loop {
            match events.recv_timeout(Duration::from_secs(2)) {
                Ok(()) => {
                    // Let a burst of events (an editor's save, a copy) settle into one time.
                    std::thread::sleep(Duration::from_millis(2));
                    while events.try_recv().is_ok() {}
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("file watcher stopped")
                }
            }
            self.step()?;
        }
    }
}

impl StatusWriter {
    fn spawn(mut self) -> anyhow::Result<mpsc::Sender<StatusBatch>> {
        let (tx, rx) = mpsc::channel::<StatusBatch>();
        std::thread::Builder::new()
            .name("status".into())
            .spawn(move || {
                while let Ok((time, status)) = rx.recv() {
                    self.board.apply(time, &status);
                    while let Ok((time, status)) = rx.try_recv() {
                        self.board.apply(time, &status);
                    }
                    if let Err(e) = self.write() {
                        tracing::error!("writing the status file: {e:#}");
                    }
                }
            })
            .context("starting the status thread")?;
        Ok(tx)
    }

    fn write(&self) -> anyhow::Result<()> {
        let addresses = |gw: &ObjectKey| vec![self.encode.address_for(gw).to_string()];
        let doc = self.board.to_json(&self.controller, &addresses);
        write_atomically(&self.path, &serde_json::to_vec_pretty(&doc)?)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}
