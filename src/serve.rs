//! `sluice serve`: watch a manifest directory, translate every change incrementally,
//! and serve the result over ADS; optionally keep a status file current.
//!
//! ```text
//!  files ─notify/scan─► DirectorySource ─changes @ t─► Controller ─xDS─► XdsHub ─► ADS streams
//!                                                     (runtime)   └─status board─► status file
//! ```
//! The translation loop runs on its own thread (timely blocks its threads); the ADS
//! server runs on tokio.

use std::process::ExitCode;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::Context;
use sluice_pipeline::model::ObjectKey;
use sluice_runtime::{Controller, ControllerConfig};
use sluice_sinks::encode::EncodeConfig;
use sluice_sinks::state::XdsHub;
use sluice_sinks::status::StatusBoard;
use sluice_sinks::status_file::StatusFile;
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

/// What the translation loop needs: the file source and the runtime around which
/// the xDS hub and the status writer sit.
struct Loop {
    source: DirectorySource,
    controller: Controller,
    hub: Arc<XdsHub>,
    /// Board snapshots, to the status writer thread.
    status: Option<mpsc::Sender<StatusBoard>>,
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
    let config = ControllerConfig {
        pipeline: pipeline.config(),
        encode: EncodeConfig {
            default_address: listen_address,
            gateway_addresses: gateway_addresses.into_iter().collect(),
            port_offset,
        },
    };
    let hub = XdsHub::new();
    let status = match status_file {
        Some(path) => {
            let file = StatusFile {
                path,
                encode: config.encode.clone(),
                controller: config.pipeline.controller_name.clone(),
            };
            Some(file.spawn().context("starting the status file writer")?)
        }
        None => None,
    };
    let mut lp = Loop {
        source: DirectorySource::new(from),
        controller: Controller::new(config)?,
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
        if scan.changes.is_empty() && self.controller.time() > 0 {
            return Ok(());
        }
        let step = self.controller.apply(scan.changes)?;
        for (gateway, resources) in &step.xds {
            self.hub.publish(gateway, resources.clone());
        }
        if let Some(status) = &self.status
            && !step.status.is_empty()
        {
            status
                .send(self.controller.status().clone())
                .map_err(|_| anyhow::anyhow!("the status writer stopped"))?;
        }
        let us = |d: Duration| d.as_micros() as u64;
        tracing::info!(
            time = step.time,
            changes = step.changes,
            outputs = step.outputs,
            gateways = step.xds.len(),
            pipeline_us = us(step.timings.pipeline),
            translate_us = us(step.timings.translate),
            total_us = us(step.timings.total()),
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
