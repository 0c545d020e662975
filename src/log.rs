//! `sluice log`: tools for event logs (the format is `sluice_eventlog`'s).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use sluice_eventlog::{Error, Event, Op, Summary, Writer};

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Print an event log's counts by kind and operation, its logical-time range and
    /// size, and whether it ends in a short (crash-cut) frame. Damage elsewhere is an
    /// error naming its byte offset (exit code 2).
    Inspect(InspectArgs),
    /// Turn manifests (files and directories of multi-document YAML) into a new event
    /// log: every object document becomes an `apply` at logical time 1, in file
    /// order, its JSON as written.
    FromManifests(FromManifestsArgs),
}

#[derive(Debug, clap::Args)]
pub struct FromManifestsArgs {
    /// Manifest files or directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The log to write; it must not exist yet.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The event log.
    file: PathBuf,
    /// Also print every event, one per line, before the summary.
    #[arg(long)]
    events: bool,
}

pub fn run(command: LogCommand) -> anyhow::Result<ExitCode> {
    match command {
        LogCommand::Inspect(args) => inspect(&args),
        LogCommand::FromManifests(args) => from_manifests(&args),
    }
}

fn from_manifests(args: &FromManifestsArgs) -> anyhow::Result<ExitCode> {
    if args.out.exists() {
        anyhow::bail!("{} exists; not overwriting it", args.out.display());
    }
    let (objects, warnings) = match sluice_sources::load_raw(&args.paths) {
        Ok(read) => read,
        Err(e @ sluice_sources::Error::Yaml { .. }) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let mut writer = Writer::append(&args.out)?;
    for o in objects {
        writer.write(&Event {
            time: 1,
            wall_micros: 0,
            op: Op::Apply,
            api_version: o.api_version,
            kind: o.kind,
            namespace: o.namespace,
            name: o.name,
            object: o.json,
        })?;
    }
    writer.sync()?;
    print!("{}", Summary::read(&args.out, |_| {})?);
    Ok(ExitCode::SUCCESS)
}

fn line(e: &Event) -> String {
    format!(
        "t={} {} {} {} {}/{} ({} bytes)",
        e.time,
        e.op.as_str(),
        e.api_version,
        e.kind,
        e.namespace,
        e.name,
        e.object.len()
    )
}

fn inspect(args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let each = |e: &Event| {
        if args.events {
            println!("{}", line(e));
        }
    };
    match Summary::read(&args.file, each) {
        Ok(summary) => {
            print!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ Error::Damaged { .. }) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}
