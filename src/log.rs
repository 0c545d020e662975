//! `sluice log`: tools for event logs (the format is `sluice_eventlog`'s).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use sluice_eventlog::{Error, Event, Summary};

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Print an event log's counts by kind and operation, its logical-time range and
    /// size, and whether it ends in a short (crash-cut) frame. Damage elsewhere is an
    /// error naming its byte offset (exit code 2).
    Inspect(InspectArgs),
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
    }
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
