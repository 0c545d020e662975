//! `sluice scale`: generate a cluster, load it, churn it, tear it down, and report
//! how long each change took to become xDS, how much xDS it produced, and how much
//! memory the process used.
//!
//! ```text
//!  generate(shape, seed) ─▶ initial load (one time) ─▶ churn cycles (one change per
//!  time, then undone) ─▶ batched endpoint churn (N per time) ─▶ teardown (one time)
//!                         └──────── Engine: incremental | full ────────┘
//! ```

mod engine;
mod measure;
mod phases;
mod plot;
mod proxies;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use sluice_sources::generate::{self, ChangeType, Mix, Preset, Shape};

use engine::Engine;
pub use measure::{Progress, rss};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Baseline {
    /// Translate the whole current state from scratch for every change.
    Full,
}

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Cluster shape: small, gab, large or xl.
    #[arg(long, default_value = "small")]
    preset: Preset,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    shape: ShapeArgs,
    /// Changes of each type per churn cycle (each is undone later in the cycle).
    #[arg(long, default_value_t = 100)]
    changes: usize,
    /// Override the count of one change type, e.g. `route_add=10` (repeatable).
    #[arg(long = "mix", value_parser = parse_mix)]
    mix: Vec<(ChangeType, usize)>,
    /// Changes per logical time in the batched endpoint churn (0 skips it).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Logical times in the batched endpoint churn (each undone afterwards).
    #[arg(long, default_value_t = 10)]
    batch_rounds: usize,
    /// Churn cycles; each ends where it started, for the memory flatness check.
    #[arg(long, default_value_t = 1)]
    churn_cycles: usize,
    /// Timely worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Connect N in-process Delta-ADS proxies (round-robin over the gateways) and
    /// time each churn change until all proxies of its gateways have it.
    #[arg(long, default_value_t = 0)]
    proxies: usize,
    /// Compare against a baseline instead of running incrementally.
    #[arg(long, value_enum)]
    baseline: Option<Baseline>,
    /// Write the report as JSON.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the generated cluster as YAML manifests into DIR, and exit.
    #[arg(long, value_name = "DIR")]
    write_manifests: Option<PathBuf>,
    /// Draw latency against cluster size from the reports in `--reports`, and exit.
    #[arg(long, value_name = "FILE.svg", requires = "reports")]
    plot: Option<PathBuf>,
    /// Directory of report JSON files for `--plot`.
    #[arg(long, value_name = "DIR")]
    reports: Option<PathBuf>,
    /// Write the run (initial load, churn, teardown) as an event log, one logical
    /// time per change or batch as applied (`sluice replay FILE` feeds it back).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
}

/// Overrides of the preset's shape.
#[derive(Debug, clap::Args)]
struct ShapeArgs {
    #[arg(long)]
    namespaces: Option<usize>,
    #[arg(long)]
    gateways: Option<usize>,
    #[arg(long)]
    listeners: Option<usize>,
    #[arg(long)]
    hostnames: Option<usize>,
    #[arg(long)]
    routes: Option<usize>,
    #[arg(long)]
    services: Option<usize>,
    #[arg(long)]
    endpoints_per_service: Option<usize>,
}

impl ShapeArgs {
    fn apply(self, mut shape: Shape) -> Shape {
        let ShapeArgs {
            namespaces,
            gateways,
            listeners,
            hostnames,
            routes,
            services,
            endpoints_per_service,
        } = self;
        let set = |field: &mut usize, value: Option<usize>| *field = value.unwrap_or(*field);
        set(&mut shape.namespaces, namespaces);
        set(&mut shape.gateways, gateways);
        set(&mut shape.listeners_per_gateway, listeners);
        set(&mut shape.hostnames_per_listener, hostnames);
        set(&mut shape.routes, routes);
        set(&mut shape.services, services);
        set(&mut shape.endpoints_per_service, endpoints_per_service);
        shape
    }
}

fn parse_mix(s: &str) -> Result<(ChangeType, usize), String> {
    let (kind, n) = s.split_once('=').ok_or("expected TYPE=N")?;
    Ok((kind.parse()?, n.parse().map_err(|e| format!("{n:?}: {e}"))?))
}

/// Everything a run needs, fixed before it starts.
#[derive(Debug)]
pub struct Config {
    pub preset: Preset,
    pub seed: u64,
    pub shape: Shape,
    pub mix: Mix,
    pub batch: usize,
    pub batch_rounds: usize,
    pub churn_cycles: usize,
    pub workers: usize,
    pub full: bool,
    /// In-process proxies during the churn cycles (0: none).
    pub proxies: usize,
}

pub fn run(args: ScaleArgs) -> anyhow::Result<ExitCode> {
    let ScaleArgs {
        preset,
        seed,
        shape,
        changes,
        mix,
        batch,
        batch_rounds,
        churn_cycles,
        workers,
        proxies,
        baseline,
        report,
        write_manifests,
        plot,
        reports,
        record,
    } = args;
    if let (Some(svg), Some(dir)) = (plot, reports) {
        return plot::render(&dir, &svg).map(|()| ExitCode::SUCCESS);
    }
    let mut counts: Mix = ChangeType::ALL.into_iter().map(|t| (t, changes)).collect();
    counts.extend(mix);
    let config = Config {
        preset,
        seed,
        shape: shape.apply(preset.shape()),
        mix: counts,
        batch,
        batch_rounds,
        churn_cycles,
        workers,
        full: baseline.is_some(),
        proxies,
    };
    let objects = generate::generate(&config.shape, config.seed);
    if let Some(dir) = write_manifests {
        return write_manifest_dir(&dir, &objects).map(|()| ExitCode::SUCCESS);
    }
    let mut engine = if config.full {
        Engine::full(sluice_pipeline::DEFAULT_CONTROLLER.to_owned())
    } else {
        Engine::incremental(sluice_pipeline::PipelineConfig {
            workers: config.workers,
            controller_name: sluice_pipeline::DEFAULT_CONTROLLER.to_owned(),
            ..Default::default()
        })?
    };
    if let Some(path) = &record {
        if path.exists() {
            anyhow::bail!(
                "{} exists; not appending a generated run to it",
                path.display()
            );
        }
        let recorder = sluice_sources::log::Recorder::open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        engine.record(recorder);
    }
    let result = phases::run(&config, engine, objects)?;
    let json = report::json(&config, &result);
    println!("{}", report::table(&config, &result));
    if let Some(path) = report {
        let text = serde_json::to_string_pretty(&json)?;
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_manifest_dir(
    dir: &std::path::Path,
    objects: &[sluice_pipeline::model::Object],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in generate::manifest_files(objects)? {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!("wrote {} objects to {}", objects.len(), dir.display());
    Ok(())
}
