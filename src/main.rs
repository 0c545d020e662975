//! `sluice`: a Kubernetes Gateway API controller for Envoy.
//!
//! This binary only parses arguments and wires the crates together:
//! sources (manifests) → pipeline (differential dataflow) → sinks (xDS, status).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// The allocator: the pipeline, the sources and the log reader allocate and free many
/// small records; glibc's malloc took ~45% of a batched replay's time (see README,
/// "Event log and replay").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod demo;
mod log;
mod replay;
mod serve;
mod snapshots;
mod translate;

#[derive(Debug, Parser)]
#[command(name = "sluice", version, about = "Gateway API → Envoy, incrementally")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (tracing-subscriber syntax), e.g. `info` or `sluice=debug`.
    #[arg(long, env = "SLUICE_LOG", default_value = "info", global = true)]
    log: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Translate manifests once and print each Gateway's xDS resources and the status
    /// of every Gateway and HTTPRoute.
    Translate(TranslateArgs),
    /// Translate a manifest directory, keep watching it, and serve xDS (ADS) to Envoy.
    Serve(ServeArgs),
    /// Generate a synthetic cluster, load and churn it, and report per-change latency,
    /// xDS volume and memory (or write it as manifests, or plot reports).
    Scale(sluice_scale::ScaleArgs),
    /// Start the HTTP backends `examples/basic` routes to (echo-v1 on 127.0.0.1:9001,
    /// echo-v2 on 127.0.0.1:9002); each answers every request with its name.
    DemoBackends(demo::DemoArgs),
    /// Event logs (`sluice log inspect FILE`).
    #[command(subcommand)]
    Log(log::LogCommand),
    /// Feed an event log through the runtime and report events/s, latency per logical
    /// time, peak memory and digests of the final xDS and status.
    Replay(replay::ReplayArgs),
}

/// Settings shared by every command that runs the pipeline.
#[derive(Debug, clap::Args)]
struct PipelineArgs {
    /// Timely worker threads.
    #[arg(long, env = "SLUICE_WORKERS", default_value_t = 1)]
    workers: usize,
    /// The GatewayClass `controllerName` Sluice answers for.
    #[arg(long, env = "SLUICE_CONTROLLER_NAME", default_value = sluice_pipeline::DEFAULT_CONTROLLER)]
    controller_name: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Debug, clap::Args)]
struct TranslateArgs {
    /// Manifest files or directories (multi-document YAML).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "yaml")]
    output: Format,
    #[command(flatten)]
    pipeline: PipelineArgs,
}

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["from", "kube"]))]
struct ServeArgs {
    /// Manifest files or directories to translate and watch.
    #[arg(long, env = "SLUICE_FROM")]
    from: Vec<PathBuf>,
    /// Watch a Kubernetes API server instead of files, and write status back to it.
    #[command(flatten)]
    kube: serve::KubeArgs,
    /// Address of the xDS (ADS) gRPC server.
    #[arg(long, default_value = "127.0.0.1:18000", env = "SLUICE_XDS")]
    xds: std::net::SocketAddr,
    /// Connections the xDS port holds at once; more are closed at once, with a log
    /// line. Default: the open-file limit (`ulimit -n`) less 256.
    #[arg(long, value_name = "N")]
    xds_max_connections: Option<usize>,
    /// Close an xDS connection that sends nothing for this long (a client that never
    /// speaks, or stopped answering keepalive pings, sent every third of it).
    #[arg(long, value_name = "SECS", default_value_t = 90)]
    xds_idle_timeout_secs: u64,
    /// Serve xDS over TLS with this certificate chain (PEM); with `--xds-tls-key`.
    #[arg(long, value_name = "FILE", requires = "xds_tls_key")]
    xds_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `--xds-tls-cert`.
    #[arg(long, value_name = "FILE", requires = "xds_tls_cert")]
    xds_tls_key: Option<PathBuf>,
    /// Require proxies to present a client certificate signed by this CA (PEM). A
    /// proxy may then serve only the Gateways its certificate names (a URI SAN
    /// `spiffe://DOMAIN/ns/NAMESPACE/gateway/NAME`, or CN `NAMESPACE/NAME`), and is
    /// sent their Secrets (HTTPS certificates and keys).
    #[arg(long, value_name = "FILE", requires = "xds_tls_cert")]
    xds_client_ca: Option<PathBuf>,
    /// Send Secrets (private keys of HTTPS listeners) to proxies that did not
    /// authenticate. Only for local development with xDS on loopback: anyone who can
    /// reach the xDS port could fetch any Gateway's keys.
    #[arg(long, conflicts_with = "xds_client_ca")]
    insecure_serve_secrets: bool,
    /// Address Envoy listeners bind unless their Gateway has its own.
    #[arg(long, default_value = "0.0.0.0")]
    listen_address: String,
    /// `NAMESPACE/NAME=IP`: the address one Gateway's listeners bind (repeatable).
    #[arg(long = "gateway-address", value_parser = serve::parse_gateway_address)]
    gateway_addresses: Vec<(sluice_pipeline::model::ObjectKey, String)>,
    /// Added to every listener port for the port Envoy binds (e.g. to run unprivileged).
    #[arg(long, default_value_t = 0)]
    port_offset: u16,
    /// Rewrite this file (atomically) with every Gateway's and HTTPRoute's status after
    /// each complete update.
    #[arg(long, conflicts_with = "kube")]
    status_file: Option<PathBuf>,
    /// Serve /healthz, /readyz, /metrics and /debug/xds?gateway=NS/NAME on this
    /// address (e.g. 127.0.0.1:18001; the dump shows every route: keep it private).
    #[arg(long, env = "SLUICE_ADMIN")]
    admin: Option<std::net::SocketAddr>,
    /// Append every event the source sees to this event log, with the logical times
    /// it is given (`sluice replay FILE` feeds it back).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Write snapshots of the served state here (periodically and on shutdown), and
    /// start from the newest one: proxies are served at once, before the sources have
    /// caught up.
    #[arg(long, value_name = "DIR", env = "SLUICE_SNAPSHOT_DIR")]
    snapshot_dir: Option<PathBuf>,
    /// Seconds between snapshots (one is written only when the state changed).
    #[arg(long, default_value_t = 30, requires = "snapshot_dir")]
    snapshot_every_secs: u64,
    /// How many snapshots to keep.
    #[arg(long, default_value_t = 3, requires = "snapshot_dir")]
    snapshot_keep: usize,
    #[command(flatten)]
    pipeline: PipelineArgs,
}

fn main() -> ExitCode {
    let Cli { command, log } = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(log))
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or a collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match command {
        Command::Translate(args) => translate::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Scale(args) => sluice_scale::run(args),
        Command::DemoBackends(args) => demo::run(args),
        Command::Log(command) => log::run(command),
        Command::Replay(args) => replay::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

impl PipelineArgs {
    fn config(&self) -> sluice_pipeline::PipelineConfig {
        let PipelineArgs {
            workers,
            controller_name,
        } = self;
        sluice_pipeline::PipelineConfig {
            workers: *workers,
            controller_name: controller_name.clone(),
            // Set from the encoder's settings by the controller.
            ..Default::default()
        }
    }
}
