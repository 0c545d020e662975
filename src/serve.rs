//! `sluice serve`: watch a manifest directory (`--from`) or a Kubernetes API server
//! (`--kube`), translate every change incrementally, and serve the result over ADS;
//! keep status current in a file or, with `--kube`, on the objects themselves.
//!
//! ```text
//!  files ─notify/scan─► DirectorySource ─┐                            ┌─xDS─► XdsHub ─► ADS streams
//!                                        ├─changes @ t─► Controller ─┤
//!  API server ─watch─► KubeSource ───────┘              (runtime)    └─status board─► status file, or
//!                                                                       API server writer (Lease leader)
//! ```
//! The translation loop runs on its own thread (timely blocks its threads); the ADS
//! server runs on tokio.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::Context;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sluice_pipeline::model::{Change, ObjectKey};
use sluice_pipeline::spec::gateway::BindAddresses;
use sluice_runtime::{Controller, ControllerConfig};
use sluice_sinks::admin::Admin;
use sluice_sinks::ads::AdsServer;
use sluice_sinks::encode::EncodeConfig;
use sluice_sinks::kube_status::StatusWriterConfig;
use sluice_sinks::lease::LeaseConfig;
use sluice_sinks::state::XdsHub;
use sluice_sinks::status::StatusBoard;
use sluice_sinks::status_file::StatusFile;
use sluice_sources::kubernetes::KubeSource;
use sluice_sources::log::Recorder;
use sluice_sources::watch::DirectorySource;

use crate::ServeArgs;

/// How often the manifest paths are scanned without a file-system event (a missed
/// event, a watch lost with its directory).
const RESCAN: Duration = Duration::from_secs(2);
use crate::snapshots::{Snapshots, Warm};

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

/// `--kube` and what goes with it.
#[derive(Debug, clap::Args)]
pub struct KubeArgs {
    /// Watch a Kubernetes API server instead of files, and write status back to it.
    #[arg(long)]
    kube: bool,
    /// Kubeconfig to use (default: in-cluster config in a pod, else `$KUBECONFIG` or
    /// `~/.kube/config`).
    #[arg(long, requires = "kube", env = "SLUICE_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Watch only this namespace (repeatable; default: every namespace).
    #[arg(long = "namespace", requires = "kube")]
    namespaces: Vec<String>,
    /// Namespace of the Lease that elects the replica writing status.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    #[arg(long, default_value = "sluice-status-writer")]
    lease_name: String,
    /// This replica's name in the Lease (default: the pod name, else host and pid).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// How long the status Lease lasts without renewal (failover takes about this long).
    #[arg(long, default_value_t = 15)]
    lease_duration_secs: u64,
    /// Longest time a burst of watch events is gathered into one logical time (a
    /// burst ends earlier once no event came for 2 ms).
    #[arg(long, default_value_t = 20)]
    batch_delay_ms: u64,
}

/// Where the loop's changes come from.
enum Input {
    Files(DirectorySource),
    Kube(KubeSource),
}

/// Where the loop's status goes.
enum StatusSink {
    None,
    /// Board snapshots, to the status file's thread.
    File(mpsc::Sender<StatusBoard>),
    /// The newest board, to the API server writer.
    Kube(tokio::sync::watch::Sender<StatusBoard>),
}

/// What the translation loop needs: the source and the runtime around which the xDS
/// hub and the status writer sit.
struct Loop {
    controller: Controller,
    hub: Arc<XdsHub>,
    status: StatusSink,
    metrics: LoopMetrics,
    /// `--record`: where the source's events go, before they are applied.
    recorder: Option<Recorder>,
    /// `--snapshot-dir`: each time is published under its lock.
    snapshots: Option<Snapshots>,
    /// After a warm start: the snapshot's gateways, until the first live time
    /// replaces them (a gateway the live state does not have is emptied).
    warm: Option<Warm>,
}

/// The translation loop's metrics.
#[derive(Debug)]
struct LoopMetrics {
    times: Counter,
    changes: Counter,
    seconds: Histogram,
}

impl LoopMetrics {
    fn new(registry: &mut Registry) -> Self {
        let m = LoopMetrics {
            times: Counter::default(),
            changes: Counter::default(),
            // 50 µs .. ~1.6 s
            seconds: Histogram::new(exponential_buckets(0.00005, 2.0, 16)),
        };
        registry.register("logical_times", "Logical times applied", m.times.clone());
        registry.register(
            "changes",
            "Object changes handed to the pipeline",
            m.changes.clone(),
        );
        registry.register(
            "translation_seconds",
            "Time from a logical time's changes to its xDS and status (pipeline, translation, status board)",
            m.seconds.clone(),
        );
        m
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let ServeArgs {
        from,
        kube,
        xds,
        xds_max_connections,
        xds_idle_timeout_secs,
        xds_tls_cert,
        xds_tls_key,
        xds_client_ca,
        insecure_serve_secrets,
        listen_address,
        gateway_addresses,
        port_offset,
        status_file,
        admin,
        record,
        snapshot_dir,
        snapshot_every_secs,
        snapshot_keep,
        pipeline,
    } = args;
    let started = std::time::Instant::now();
    let encode = EncodeConfig {
        bind: BindAddresses {
            default: listen_address,
            per_gateway: gateway_addresses.into_iter().collect(),
        },
        port_offset,
    };
    let config = ControllerConfig {
        pipeline: pipeline.config(),
        encode,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let hub = XdsHub::new();
    let mut registry = Registry::with_prefix("sluice");
    let mut lp = Loop {
        controller: Controller::new(config.clone())?,
        hub: hub.clone(),
        status: StatusSink::None,
        metrics: LoopMetrics::new(&mut registry),
        recorder: None,
        snapshots: None,
        warm: None,
    };
    if let Some(dir) = &snapshot_dir {
        let (snapshots, warm) = Snapshots::open(
            dir,
            snapshot_keep,
            hub.clone(),
            config.encode.clone(),
            config.pipeline.controller_name.clone(),
        )
        .context("opening the --snapshot-dir")?;
        lp.snapshots = Some(snapshots);
        lp.warm = warm;
    }
    if let Some(path) = &record {
        let recorder = Recorder::open(path).context("opening the --record log")?;
        if let Some(at) = recorder.recovered_at() {
            tracing::warn!(
                "{}: cut off a short last frame at byte {at} (a crash mid-write); recording continues after it",
                path.display()
            );
        }
        tracing::info!(log = %path.display(), bytes = recorder.offset(), "recording events");
        lp.recorder = Some(recorder);
    }
    if let Some(path) = status_file {
        lp.status = status_file_sink(path, &config, &hub)?;
    }
    let mut input = if kube.kube {
        let (mut source, board) =
            runtime.block_on(start_kube(&kube, &config, &hub, &mut registry))?;
        lp.status = StatusSink::Kube(board);
        if record.is_some() {
            source.record();
        }
        Input::Kube(source)
    } else {
        let mut source = DirectorySource::new(from);
        if record.is_some() {
            source.record();
        }
        Input::Files(source)
    };
    let delay = Duration::from_millis(kube.batch_delay_ms);
    let mut limits = sluice_sinks::ads::Limits {
        idle: Duration::from_secs(xds_idle_timeout_secs.max(3)),
        ..Default::default()
    };
    if let Some(max) = xds_max_connections {
        limits.max_connections = max.max(1);
    }
    tracing::info!(
        max_connections = limits.max_connections,
        idle_secs = limits.idle.as_secs(),
        "xDS port limits"
    );
    let server = AdsServer::new(hub.clone())
        .with_limits(limits)
        .with_secret_policy(secret_policy(
            xds_client_ca.is_some(),
            insecure_serve_secrets,
        ));
    let server = match (&xds_tls_cert, &xds_tls_key) {
        (Some(cert), Some(key)) => {
            let read =
                |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
            let ca = xds_client_ca.as_ref().map(read).transpose()?;
            server.with_tls(&read(cert)?, &read(key)?, ca.as_deref())
        }
        _ => server,
    };
    server.stats().register(&mut registry);
    {
        let _runtime = runtime.enter();
        sluice_sinks::ads::track_rejections(&hub, &mut registry);
    }
    let ready = Arc::new(AtomicBool::new(false));
    if let Some(addr) = admin {
        let (ready, hub) = (ready.clone(), hub.clone());
        let listener = runtime.block_on(sluice_sinks::admin::bind(addr))?;
        runtime.spawn(
            Admin {
                registry,
                ready,
                hub,
            }
            .serve(listener),
        );
        tracing::info!(%addr, "admin port: /healthz /readyz /metrics /debug/xds");
    }
    // Proxies are served a complete state only: a warm start's snapshot at once, else
    // the initial state once the sources have it.
    let mut ads = None;
    if lp.warm.is_some() {
        ads = Some(spawn_ads(&runtime, server.clone(), xds, started)?);
        ready.store(true, Ordering::Release);
    }
    match &mut input {
        Input::Files(source) => {
            lp.scan(source, true)?;
        }
        Input::Kube(source) => lp.next_kube(source, delay)?,
    }
    ready.store(true, Ordering::Release);
    let ads = match ads {
        Some(ads) => ads,
        None => spawn_ads(&runtime, server, xds, started)?,
    };
    let snapshots = lp.snapshots.clone();
    if let Some(s) = &snapshots {
        s.spawn_periodic(Duration::from_secs(snapshot_every_secs.max(1)))?;
    }
    lp.spawn(input, delay)?;
    runtime.block_on(ads)??;
    if let Some(s) = &snapshots {
        s.write("shutdown");
    }
    Ok(ExitCode::SUCCESS)
}

/// Who is sent Secrets, logged once.
fn secret_policy(client_auth: bool, insecure: bool) -> sluice_sinks::ads::SecretPolicy {
    use sluice_sinks::ads::SecretPolicy;
    if client_auth {
        tracing::info!(
            "xDS clients authenticate with certificates: each is sent the Secrets of the Gateways its certificate names"
        );
        SecretPolicy::Authenticated
    } else if insecure {
        tracing::warn!(
            "--insecure-serve-secrets: private keys of HTTPS listeners are sent to any proxy that connects to the xDS port"
        );
        SecretPolicy::Insecure
    } else {
        tracing::info!(
            "xDS clients are not authenticated: no proxy is sent Secrets, so HTTPS listeners cannot complete a handshake (use --xds-client-ca, or --insecure-serve-secrets on loopback)"
        );
        SecretPolicy::Never
    }
}

/// Binds `xds` and serves ADS on it until Ctrl-C or SIGTERM.
fn spawn_ads(
    runtime: &tokio::runtime::Runtime,
    server: AdsServer,
    xds: std::net::SocketAddr,
    started: std::time::Instant,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(xds))
        .with_context(|| format!("binding the xDS address {xds}"))?;
    tracing::info!(
        %xds,
        since_start_ms = started.elapsed().as_secs_f64() * 1e3,
        "serving ADS"
    );
    Ok(runtime.spawn(async move {
        server.serve_on(listener, shutdown_signal()).await?;
        Ok(())
    }))
}

/// Ctrl-C (SIGINT) or SIGTERM (what Kubernetes sends a pod it stops).
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match &mut term {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
        () = term => tracing::info!("SIGTERM: shutting down"),
    }
}

/// The status file writer's thread.
fn status_file_sink(
    path: PathBuf,
    config: &ControllerConfig,
    hub: &XdsHub,
) -> anyhow::Result<StatusSink> {
    let file = StatusFile {
        path,
        encode: config.encode.clone(),
        controller: config.pipeline.controller_name.clone(),
        verdicts: Some(hub.verdicts()),
    };
    let tx = file.spawn().context("starting the status file writer")?;
    Ok(StatusSink::File(tx))
}

/// Connects, starts the watchers, the status lease and the status writer.
async fn start_kube(
    args: &KubeArgs,
    config: &ControllerConfig,
    hub: &XdsHub,
    registry: &mut Registry,
) -> anyhow::Result<(KubeSource, tokio::sync::watch::Sender<StatusBoard>)> {
    let client = sluice_sources::kubernetes::client(args.kubeconfig.as_deref())
        .await
        .map_err(anyhow::Error::msg)?;
    let source = KubeSource::start(client.clone(), &args.namespaces).await;
    source.stats().register(registry);
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let leader = sluice_sinks::lease::spawn(
        client.clone(),
        LeaseConfig {
            namespace: args.lease_namespace.clone(),
            name: args.lease_name.clone(),
            identity,
            duration: Duration::from_secs(args.lease_duration_secs.max(1)),
            renew_every: Duration::from_millis(args.lease_duration_secs.max(1) * 200),
        },
    );
    let (board, rx) = tokio::sync::watch::channel(StatusBoard::default());
    let writer = StatusWriterConfig {
        controller: config.pipeline.controller_name.clone(),
        encode: config.encode.clone(),
        min_interval: Duration::from_millis(200),
        namespaces: args.namespaces.clone(),
    };
    sluice_sinks::kube_status::spawn(client, writer, rx, leader, hub.verdicts()).register(registry);
    Ok((source, board))
}

impl Loop {
    /// Runs the loop on its own thread (timely blocks it) from here on; the process
    /// exits if it stops.
    fn spawn(mut self, input: Input, delay: Duration) -> anyhow::Result<()> {
        std::thread::Builder::new()
            .name("translate".into())
            .spawn(move || {
                let stopped = match input {
                    Input::Files(source) => self.watch(source),
                    Input::Kube(mut source) => loop {
                        if let Err(e) = self.next_kube(&mut source, delay) {
                            break Err(e);
                        }
                    },
                };
                if let Err(e) = stopped {
                    tracing::error!("translation loop stopped: {e:#}");
                    std::process::exit(1);
                }
            })
            .context("starting the translation thread")?;
        Ok(())
    }

    /// Scan the files; translate and publish what changed (one logical time). Says
    /// when to scan again without a file-system event, and whether to watch anew.
    fn scan(
        &mut self,
        source: &mut DirectorySource,
        first: bool,
    ) -> anyhow::Result<(Option<Duration>, bool)> {
        let scan = source.scan();
        let again = (scan.retry_in, scan.rewatch);
        for w in &scan.warnings {
            tracing::warn!("{w}");
        }
        for e in &scan.errors {
            tracing::error!("{e}");
        }
        self.record(scan.log);
        if scan.changes.is_empty() && !first {
            return Ok(again);
        }
        self.step(scan.changes)?;
        Ok(again)
    }

    /// Wait for the next batch of watch events; translate and publish it.
    fn next_kube(&mut self, source: &mut KubeSource, delay: Duration) -> anyhow::Result<()> {
        let first = self.controller.time() == 0;
        let batch = source
            .next_batch(delay)
            .ok_or_else(|| anyhow::anyhow!("every Kubernetes watcher stopped"))?;
        for w in &batch.warnings {
            tracing::warn!("{w}");
        }
        self.record(batch.log);
        if batch.changes.is_empty() && !first {
            return Ok(());
        }
        if first {
            tracing::info!(objects = source.objects(), "every watch listed once");
        }
        self.step(batch.changes)
    }

    /// Appends the source's events to the `--record` log at the time they are about to
    /// be applied at. A failed write stops recording (said once), never serving.
    fn record(&mut self, events: Vec<sluice_eventlog::Event>) {
        let Some(recorder) = &mut self.recorder else {
            return;
        };
        if events.is_empty() {
            return;
        }
        if let Err(e) = recorder.write(self.controller.time(), events) {
            tracing::error!("recording stopped: {e}");
            self.recorder = None;
        }
    }

    /// Apply one logical time; publish its xDS and status.
    fn step(&mut self, changes: Vec<Change>) -> anyhow::Result<()> {
        let step = self.controller.apply(changes)?;
        self.metrics.times.inc();
        self.metrics.changes.inc_by(step.changes as u64);
        self.metrics
            .seconds
            .observe(step.timings.total().as_secs_f64());
        // One time's gateways and status go out together for a snapshot.
        let mut latest = self.snapshots.as_ref().map(|s| s.lock());
        for (gateway, resources) in &step.xds {
            self.hub.publish(gateway, resources.clone());
        }
        if let Some(warm) = self.warm.take() {
            // The first live time: what the snapshot had and the live state does not
            // is gone. Streams send each proxy only what differs from the snapshot.
            let gone: Vec<&ObjectKey> = (warm.gateways.iter())
                .filter(|k| !step.xds.contains_key(*k))
                .collect();
            for key in &gone {
                let empty = sluice_sinks::state::GatewayResources {
                    time: step.time,
                    ..Default::default()
                };
                self.hub.publish(key, Arc::new(empty));
            }
            tracing::info!(
                time = step.time,
                gateways = step.xds.len(),
                removed = gone.len(),
                "warm start: the live state replaces the snapshot"
            );
        }
        if let Some(latest) = &mut latest {
            latest.time = step.time;
            latest.live = true;
            latest.log_offset = self.recorder.as_ref().map(Recorder::offset);
            if latest.log_offset.is_some() {
                latest.objects = self.controller.object_map();
            }
            if !step.status.is_empty() || step.time == 0 {
                latest.board = self.controller.status().clone();
            }
        }
        drop(latest);
        if !step.status.is_empty() || step.time == 0 {
            let board = self.controller.status().clone();
            let sent = match &self.status {
                StatusSink::None => true,
                StatusSink::File(tx) => tx.send(board).is_ok(),
                StatusSink::Kube(tx) => tx.send(board).is_ok(),
            };
            anyhow::ensure!(sent, "the status writer stopped");
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
    fn watch(&mut self, mut source: DirectorySource) -> anyhow::Result<()> {
        let (mut _watcher, mut events) = source
            .notifications()
            .context("watching the manifest paths")?;
        let mut wait = RESCAN;
        loop {
            match events.recv_timeout(wait) {
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
            let (retry_in, rewatch) = self.scan(&mut source, false)?;
            wait = retry_in.map_or(RESCAN, |r| r.min(RESCAN));
            if rewatch {
                // A root was deleted and is back: its old watch went with it.
                match source.notifications() {
                    Ok((w, e)) => {
                        (_watcher, events) = (w, e);
                        tracing::info!("manifest paths are back; watching them again");
                        // What was written before the new watch started.
                        wait = Duration::ZERO;
                    }
                    Err(e) => tracing::warn!("watching the manifest paths again: {e}"),
                }
            }
        }
    }
}
