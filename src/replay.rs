//! `sluice replay`: an event log through the runtime, as fast as it goes (or at the
//! recorded pace), with what it cost and digests of what it produced.
//!
//! ```text
//!  event log ─LogSource (one time at a time)─► Controller ─► Step ─┬─► latency, counts
//!                                              (runtime)           └─► XdsHub ─► ADS (--xds)
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use sluice_pipeline::spec::gateway::BindAddresses;
use sluice_runtime::{Controller, ControllerConfig};
use sluice_sinks::encode::EncodeConfig;
use sluice_sinks::state::{GatewayResources, XdsHub};
use sluice_sources::log::{LogReplay, LogSource, StreamState};

use crate::PipelineArgs;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The event log.
    file: PathBuf,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Replay at this multiple of the recorded pace (1: as recorded); default: as
    /// fast as it goes.
    #[arg(long)]
    speed: Option<f64>,
    /// Stop after this logical time (of the log).
    #[arg(long)]
    until: Option<u64>,
    /// Serve the replayed state over ADS on this address as it goes, and keep serving
    /// the final state until Ctrl-C.
    #[arg(long)]
    xds: Option<std::net::SocketAddr>,
    /// Write the final state as `sluice translate --output json` prints it (every
    /// Gateway's xDS and status, every route's status) to this file.
    #[arg(long)]
    dump: Option<PathBuf>,
    /// Apply this many logical times of the log as one step of the runtime (their
    /// net changes); the final state is the same, the per-time overhead is paid once
    /// per batch. Latencies are then per batch.
    #[arg(long = "batch", value_name = "TIMES", default_value_t = 1)]
    batch_times: usize,
    /// Start from this snapshot (written by `replay --snapshot-out`, or by `serve
    /// --record --snapshot-dir`): its source state is applied as one time, and the
    /// log is read from the position the snapshot reflects.
    #[arg(long, value_name = "FILE")]
    from_snapshot: Option<PathBuf>,
    /// Write a snapshot of the final state (xDS, status, source state and log
    /// position) to this file; `--from-snapshot` continues from it.
    #[arg(long, value_name = "FILE")]
    snapshot_out: Option<PathBuf>,
    /// Address Envoy listeners bind (as for `serve`).
    #[arg(long, default_value = "0.0.0.0")]
    listen_address: String,
    /// Added to every listener port (as for `serve`).
    #[arg(long, default_value_t = 0)]
    port_offset: u16,
    #[command(flatten)]
    pipeline: PipelineArgs,
}

/// What a replay did and produced.
#[derive(Debug, Default)]
struct Summary {
    events: u64,
    times: u64,
    /// Runtime steps (logical times of the log, or batches of them).
    steps: u64,
    /// The last logical time of the log applied.
    last_time: Option<u64>,
    wall: Duration,
    /// Reading and converting the log (the rest of `wall` is the runtime's).
    source: Duration,
    /// Per step: events in to xDS and status ready.
    latencies: Vec<Duration>,
    warnings: u64,
    log_bytes: u64,
    truncated_at: Option<u64>,
    damage: Option<String>,
    from_snapshot: Option<FromSnapshot>,
}

/// Where a replay started when it started from a snapshot.
#[derive(Debug)]
struct FromSnapshot {
    /// The last logical time of the log the snapshot reflects.
    time: u64,
    log_offset: u64,
    objects: usize,
    /// Mapping and checking the file, and decoding its source state.
    load: Duration,
    /// Applying the source state as one time.
    apply: Duration,
}

/// A snapshot's source state, ready to continue a log from.
struct Restored {
    time: u64,
    log_offset: u64,
    replay: LogReplay,
    changes: Vec<sluice_pipeline::model::Change>,
    load: Duration,
}

/// Loads `path` and decodes its source state.
fn restore(path: &Path) -> anyhow::Result<Restored> {
    let started = Instant::now();
    let loaded = sluice_snapshot::Loaded::open(path)?;
    let log_offset = loaded.log_offset().with_context(|| {
        format!(
            "{}: the snapshot has no log position (it was written without --record)",
            path.display()
        )
    })?;
    anyhow::ensure!(
        !loaded.sources_json().is_empty(),
        "{}: the snapshot has no source state to continue from",
        path.display()
    );
    let state: Vec<StreamState> = serde_json::from_str(loaded.sources_json())
        .with_context(|| format!("{}: the snapshot's source state", path.display()))?;
    let mut replay = LogReplay::restore(state);
    let changes = replay.take();
    Ok(Restored {
        time: loaded.time(),
        log_offset,
        replay,
        changes,
        load: started.elapsed(),
    })
}

/// Writes the replay's final state as a snapshot `--from-snapshot` continues from.
fn write_snapshot(
    path: &Path,
    summary: &Summary,
    controller: &Controller,
    source: &LogSource,
) -> anyhow::Result<u64> {
    let status = controller
        .status()
        .to_json(controller.controller_name(), &|gw| {
            vec![controller.encode_config().address_for(gw).to_string()]
        })
        .to_string();
    let mut snapshot = sluice_snapshot::Snapshot::capture(
        summary.last_time.unwrap_or_default(),
        Some(source.position()),
        controller.gateways().map(|(k, g)| (k, g.as_ref())),
        status,
    );
    snapshot.sources_json = serde_json::to_string(&source.replay().state())?;
    Ok(sluice_snapshot::dir::write_file(&snapshot, path)?)
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let ReplayArgs {
        file,
        report,
        speed,
        until,
        xds,
        dump,
        batch_times,
        from_snapshot,
        snapshot_out,
        listen_address,
        port_offset,
        pipeline,
    } = args;
    if let Some(s) = speed {
        anyhow::ensure!(s > 0.0 && s.is_finite(), "--speed must be above 0");
    }
    let (opened, restored) = match &from_snapshot {
        None => (LogSource::open(&file), None),
        Some(path) => match restore(path) {
            Ok(r) => (
                LogSource::resume(&file, r.log_offset, r.replay),
                Some((r.time, r.log_offset, r.changes, r.load)),
            ),
            Err(e) => {
                eprintln!("error: {e:#}");
                return Ok(ExitCode::from(2));
            }
        },
    };
    let mut source = match opened {
        Ok(source) => source,
        Err(e @ sluice_eventlog::Error::Damaged { .. }) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let config = ControllerConfig {
        pipeline: pipeline.config(),
        encode: EncodeConfig {
            bind: BindAddresses {
                default: listen_address,
                per_gateway: Default::default(),
            },
            port_offset,
        },
    };
    let mut controller = Controller::new(config)?;
    let hub = XdsHub::new();
    let runtime = match xds {
        Some(addr) => Some(serve_ads(hub.clone(), addr)?),
        None => None,
    };

    let mut summary = Summary::default();
    if let Some((time, log_offset, changes, load)) = restored {
        let objects = changes.len();
        let applied = Instant::now();
        let step = controller.apply(changes)?;
        for (gateway, resources) in &step.xds {
            hub.publish(gateway, resources.clone());
        }
        summary.last_time = Some(time);
        summary.log_bytes = log_offset;
        summary.from_snapshot = Some(FromSnapshot {
            time,
            log_offset,
            objects,
            load,
            apply: applied.elapsed(),
        });
    }
    let mut progress =
        sluice_scale::Progress::new("replay", size.saturating_sub(summary.log_bytes) as usize);
    let started = Instant::now();
    let mut pace = Pace::new(speed);
    loop {
        let read = Instant::now();
        let next = source.next_times(batch_times, until);
        summary.source += read.elapsed();
        let batch = match next {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(e) => {
                summary.damage = Some(e.to_string());
                break;
            }
        };
        pace.wait(batch.wall_micros);
        for w in &batch.warnings {
            tracing::warn!("{w}");
        }
        summary.warnings += batch.warnings.len() as u64;
        let applied = Instant::now();
        let step = controller.apply(batch.changes)?;
        summary.latencies.push(applied.elapsed());
        for (gateway, resources) in &step.xds {
            hub.publish(gateway, resources.clone());
        }
        summary.events += batch.events;
        summary.times += batch.times;
        summary.steps += 1;
        summary.last_time = Some(batch.time);
        progress.tick((source.offset().saturating_sub(summary.log_bytes)) as usize);
        summary.log_bytes = source.offset();
    }
    summary.wall = started.elapsed();
    summary.log_bytes = source.offset();
    summary.truncated_at = source.truncated_at();
    progress.finish();

    if let Some(path) = &snapshot_out {
        let written = write_snapshot(path, &summary, &controller, &source)?;
        eprintln!(
            "snapshot at time {} ({written} bytes, log position {}) written to {}",
            summary.last_time.unwrap_or_default(),
            source.position(),
            path.display()
        );
    }
    let json = report_json(&summary, &controller, &pipeline, until)?;
    print!("{}", table(&json));
    if let Some(path) = report {
        let text = serde_json::to_string_pretty(&json)? + "\n";
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = dump {
        let doc = crate::translate::document(&controller)?;
        let text = serde_json::to_string_pretty(&doc)? + "\n";
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(damage) = &summary.damage {
        eprintln!("error: {damage} (everything before it was replayed)");
        return Ok(ExitCode::from(2));
    }
    if let Some(runtime) = runtime {
        eprintln!("serving the final state over ADS until Ctrl-C");
        runtime.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts an ADS server for `hub` on `addr` on its own runtime.
fn serve_ads(
    hub: Arc<XdsHub>,
    addr: std::net::SocketAddr,
) -> anyhow::Result<tokio::runtime::Runtime> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .with_context(|| format!("binding the xDS address {addr}"))?;
    let server = sluice_sinks::ads::AdsServer::new(hub);
    runtime.spawn(async move {
        let never = std::future::pending::<()>();
        if let Err(e) = server.serve_on(listener, never).await {
            tracing::error!("ADS server stopped: {e}");
        }
    });
    tracing::info!(%addr, "serving ADS");
    Ok(runtime)
}

/// Waits so that logical times are applied at `speed` times their recorded pace.
#[derive(Debug)]
struct Pace {
    speed: Option<f64>,
    /// The first time's recorded wall clock and when it was applied.
    origin: Option<(u64, Instant)>,
}

impl Pace {
    fn new(speed: Option<f64>) -> Self {
        Self {
            speed,
            origin: None,
        }
    }

    fn wait(&mut self, wall_micros: u64) {
        let Some(speed) = self.speed else { return };
        if wall_micros == 0 {
            return; // not recorded (a version 1 log): as fast as it goes
        }
        let (first, at) = *self.origin.get_or_insert((wall_micros, Instant::now()));
        let due = Duration::from_micros(wall_micros.saturating_sub(first)).div_f64(speed);
        if let Some(left) = due.checked_sub(at.elapsed()) {
            std::thread::sleep(left);
        }
    }
}

/// Digest (FNV-1a, 64 bits) of every gateway's resources: gateway, type, name,
/// version and bytes, in order.
fn xds_digest(controller: &Controller) -> String {
    let mut gateways: Vec<(_, &Arc<GatewayResources>)> = controller.gateways().collect();
    gateways.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Fnv::default();
    for (key, resources) in gateways {
        h.field(key.to_string().as_bytes());
        for (ty, map) in resources.by_type.iter().enumerate() {
            h.field(&[ty as u8]);
            for (name, r) in map {
                h.field(name.as_bytes());
                h.field(r.version.as_bytes());
                h.field(&r.body);
            }
        }
        h.field(b"api_listeners");
        for (name, r) in &resources.api_listeners {
            h.field(name.as_bytes());
            h.field(&r.body);
        }
    }
    h.hex()
}

/// Digest of every Gateway's and route's status (as the status file writes it,
/// without its logical time).
fn status_digest(controller: &Controller) -> anyhow::Result<String> {
    let mut doc = controller
        .status()
        .to_json(controller.controller_name(), &|_| Vec::new());
    if let Some(map) = doc.as_object_mut() {
        map.remove("time");
    }
    let mut h = Fnv::default();
    h.field(&serde_json::to_vec(&doc)?);
    Ok(h.hex())
}

/// FNV-1a over length-prefixed fields.
#[derive(Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn field(&mut self, bytes: &[u8]) {
        for b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn report_json(
    s: &Summary,
    controller: &Controller,
    pipeline: &PipelineArgs,
    until: Option<u64>,
) -> anyhow::Result<Value> {
    let mut sorted = s.latencies.clone();
    sorted.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let secs = s.wall.as_secs_f64().max(f64::MIN_POSITIVE);
    let (_, peak) = sluice_scale::rss();
    Ok(json!({
        "events": s.events,
        "logical_times": s.times,
        "steps": s.steps,
        "last_time": s.last_time,
        "until": until,
        "wall_ms": ms(s.wall),
        "source_ms": ms(s.source),
        "events_per_s": s.events as f64 / secs,
        "latency_ms": {
            "p50": ms(percentile(&sorted, 0.50)),
            "p99": ms(percentile(&sorted, 0.99)),
            "max": ms(sorted.last().copied().unwrap_or_default()),
        },
        "peak_rss_bytes": peak,
        "workers": pipeline.workers,
        "objects": controller.objects().count(),
        "gateways": controller.gateways().count(),
        "warnings": s.warnings,
        "log_bytes": s.log_bytes,
        "truncated_at": s.truncated_at,
        "damage": s.damage,
        "from_snapshot": s.from_snapshot.as_ref().map(|f| json!({
            "time": f.time,
            "log_offset": f.log_offset,
            "objects": f.objects,
            "load_ms": ms(f.load),
            "apply_ms": ms(f.apply),
        })),
        "xds_digest": xds_digest(controller),
        "status_digest": status_digest(controller)?,
    }))
}

/// The summary as lines of `name: value`.
fn table(report: &Value) -> String {
    let get = |k: &str| report.get(k).cloned().unwrap_or(Value::Null);
    let lat = |k: &str| report["latency_ms"][k].as_f64().unwrap_or_default();
    let mut out = String::new();
    out += &format!("events: {}\n", get("events"));
    out += &format!(
        "logical times: {} (last {}) in {} steps\n",
        get("logical_times"),
        get("last_time"),
        get("steps")
    );
    out += &format!(
        "wall: {:.1} ms, {:.0} events/s\n",
        get("wall_ms").as_f64().unwrap_or_default(),
        get("events_per_s").as_f64().unwrap_or_default()
    );
    out += &format!(
        "of which reading and converting the log: {:.1} ms\n",
        get("source_ms").as_f64().unwrap_or_default()
    );
    out += &format!(
        "latency per step (events in → xDS ready): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms\n",
        lat("p50"),
        lat("p99"),
        lat("max")
    );
    let mib = get("peak_rss_bytes").as_u64().unwrap_or_default() as f64 / (1 << 20) as f64;
    out += &format!("peak RSS: {mib:.1} MiB\n");
    out += &format!(
        "objects: {}, gateways: {}\n",
        get("objects"),
        get("gateways")
    );
    if let Some(f) = report["from_snapshot"].as_object() {
        let num = |k: &str| f.get(k).and_then(Value::as_f64).unwrap_or_default();
        out += &format!(
            "started from a snapshot at time {} (log byte {}): {} objects, loaded in {:.3} ms, applied in {:.1} ms\n",
            num("time"),
            num("log_offset"),
            num("objects"),
            num("load_ms"),
            num("apply_ms")
        );
    }
    if let Some(at) = report["truncated_at"].as_u64() {
        out += &format!("truncated: a short last frame at byte {at} (ignored)\n");
    }
    if report["warnings"].as_u64().unwrap_or_default() > 0 {
        out += &format!("objects that did not convert: {}\n", get("warnings"));
    }
    out += &format!(
        "xds digest: {}\n",
        report["xds_digest"].as_str().unwrap_or_default()
    );
    out += &format!(
        "status digest: {}\n",
        report["status_digest"].as_str().unwrap_or_default()
    );
    out
}
