//! Gateway API conformance, for real: each upstream case (as data, from
//! `$SLUICE_CONFORMANCE_CASES`) runs against `sluice serve`, one real Envoy per Gateway
//! and in-process echo backends, and prints `PASS`, `FAIL` or `SKIP` per case.
//!
//! ```text
//!  case.json ─▶ manifests + EndpointSlices ─▶ sluice serve ──ADS──▶ envoy (per Gateway)
//!                      ▲                          │ status file          │
//!                echo backends ◀──────────────────┼──────────────────────┘
//!                      └── echoed JSON ──▶ checks ◀┘
//! ```
//!
//! Run with `cargo test --test conformance`. The case data comes from
//! `../shared/gateway-api/conformance` next to the workspace, or
//! `$SLUICE_CONFORMANCE_CASES`; without it the run FAILS, unless
//! `SLUICE_CONFORMANCE_OPTIONAL=1` says that is intended. `SLUICE_CONFORMANCE_FILTER=Redirect`
//! runs the cases whose name contains `Redirect`; a filter matching nothing, or a run
//! in which no case ran, fails. `SLUICE_CONFORMANCE_ADS` picks the ADS protocol of the
//! Envoys: `alternate` (default: state of the world and Delta on alternate cases),
//! `both` (every case on each), `sotw` or `delta`; the summary counts each.
//! `SLUICE_CONFORMANCE_SOURCE` picks what sluice reads: `files` (a manifest directory
//! and a status file), `kube` (the objects applied to the real API server of
//! `tests/kube.rs`, `serve --kube`, status read back from the API server) or `both`
//! (the default: every case through each; the summary counts each).
//! `SLUICE_CONFORMANCE_SELFTEST=1` checks the harness itself (echo backends,
//! EndpointSlices, Envoy, the statistical verdicts) against a static Envoy config,
//! without sluice. `SLUICE_BIN` runs another `sluice` binary (a release build, say).
//! Logs of each case land in `target/conformance/<case>/`.
//!
//! Nothing in a case is ignored (`cases::plan`): an unknown request helper, a custom
//! flow or `custom` type the runner does not implement fails the case. The `custom`
//! checks run: the weighted-backend and percentage-mirror distributions after their
//! sanity requests (one verdict over the aggregate of all rounds), object deletions
//! between requests, a WebSocket echo exchange, the custom flows of `flows.rs`, and
//! the extension set's `sequence` of object changes and status checks
//! (`sequence.rs`). Backends that echo-basic would run with TLS serve HTTPS and echo
//! the SNI they saw.
//! Objects carry `metadata.generation: 7`, which status must echo; every Service port
//! has its own echo listener, and traffic to a port no route references fails.

#[path = "conformance/cases.rs"]
mod cases;
#[path = "conformance/distribution.rs"]
mod distribution;
#[path = "conformance/echo.rs"]
mod echo;
#[path = "conformance/flows.rs"]
mod flows;
#[allow(dead_code)]
#[path = "kube/server.rs"]
mod kube_server;
#[path = "conformance/kube_source.rs"]
mod kube_source;
#[path = "conformance/manifests.rs"]
mod manifests;
#[path = "conformance/processes.rs"]
mod processes;
#[path = "conformance/requests.rs"]
mod requests;
#[path = "conformance/selftest.rs"]
mod selftest;
#[path = "conformance/sequence.rs"]
mod sequence;
#[path = "conformance/status.rs"]
mod status;
#[path = "conformance/tls.rs"]
mod tls;
#[path = "conformance/websocket.rs"]
mod websocket;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cases::{Case, Custom, GatewayKey, StatusCheck, Step};
use crate::echo::{EchoServer, Identity};
use crate::processes::{Ads, ChildGuard, Envoy};

const STATUS_DEADLINE: Duration = Duration::from_secs(30);
const SLUICE_START_DEADLINE: Duration = Duration::from_secs(60);
const ENVOY_LIVE_DEADLINE: Duration = Duration::from_secs(20);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Set to run without the case data: a missing case directory is then a skip, not a
/// failure (for machines that deliberately lack `../shared/gateway-api`).
const OPTIONAL_ENV: &str = "SLUICE_CONFORMANCE_OPTIONAL";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let failed = runtime.block_on(run_all());
    println!("wall time {:.0?}", started.elapsed());
    std::process::exit(if failed { 1 } else { 0 });
}

/// Where the case data comes from (one or more case sets), said in every message
/// about it: `$SLUICE_CONFORMANCE_CASES` (one directory or a colon-separated list),
/// else both of `../shared/gateway-api`'s sets, `conformance` and `conformance-ext`.
fn cases_sources() -> Vec<(PathBuf, String)> {
    match std::env::var_os("SLUICE_CONFORMANCE_CASES") {
        Some(dirs) => std::env::split_paths(&dirs)
            .map(|dir| {
                let said = format!("{} (from $SLUICE_CONFORMANCE_CASES)", dir.display());
                (dir, said)
            })
            .collect(),
        None => ["conformance", "conformance-ext"]
            .into_iter()
            .map(|set| {
                let dir = workspace().join("../shared/gateway-api").join(set);
                let said = format!(
                    "{} (the default, ../shared/gateway-api/{set} next to the workspace; \
                     set $SLUICE_CONFORMANCE_CASES to use other copies)",
                    dir.display()
                );
                (dir, said)
            })
            .collect(),
    }
}

/// Which ADS protocol the Envoys of each case speak: `$SLUICE_CONFORMANCE_ADS` is
/// `alternate` (the default: even cases state of the world, odd cases Delta), `both`
/// (every case twice, once per protocol), `sotw` or `delta`.
fn ads_passes() -> Result<Vec<Option<Ads>>, String> {
    match std::env::var("SLUICE_CONFORMANCE_ADS").as_deref() {
        Err(_) | Ok("alternate") => Ok(vec![None]),
        Ok("both") => Ok(vec![Some(Ads::Sotw), Some(Ads::Delta)]),
        Ok("sotw") => Ok(vec![Some(Ads::Sotw)]),
        Ok("delta") => Ok(vec![Some(Ads::Delta)]),
        Ok(other) => Err(format!(
            "SLUICE_CONFORMANCE_ADS={other:?}: expected alternate, both, sotw or delta"
        )),
    }
}

/// What sluice reads a case from.
#[derive(Debug, Clone)]
enum Source {
    /// A manifest directory; status goes to a status file.
    Files,
    /// The real API server (started once for the pass); status goes back to it.
    Kube(Arc<kube_server::Server>),
}

impl Source {
    fn label(&self) -> &'static str {
        match self {
            Source::Files => "files",
            Source::Kube(_) => "kube",
        }
    }
}

/// `$SLUICE_CONFORMANCE_SOURCE`: `files`, `kube` or `both` (the default).
fn source_passes() -> Result<Vec<&'static str>, String> {
    match std::env::var("SLUICE_CONFORMANCE_SOURCE").as_deref() {
        Err(_) | Ok("both") => Ok(vec!["files", "kube"]),
        Ok("files") => Ok(vec!["files"]),
        Ok("kube") => Ok(vec!["kube"]),
        Ok(other) => Err(format!(
            "SLUICE_CONFORMANCE_SOURCE={other:?}: expected files, kube or both"
        )),
    }
}

/// Cases passed and failed, per source and ADS protocol, and cases skipped.
#[derive(Debug, Default)]
struct Tally {
    passed: BTreeMap<(&'static str, Ads), usize>,
    failed: BTreeMap<(&'static str, Ads), usize>,
    skipped: usize,
    /// A source that could not start at all (no API server): that is a failure.
    broken: Vec<String>,
}

impl Tally {
    fn ran(&self) -> usize {
        self.passed.values().sum::<usize>() + self.failed.values().sum::<usize>()
    }

    fn print(&self) {
        let keys: std::collections::BTreeSet<_> =
            self.passed.keys().chain(self.failed.keys()).collect();
        for key in keys {
            let passed = self.passed.get(key).copied().unwrap_or(0);
            let failed = self.failed.get(key).copied().unwrap_or(0);
            println!(
                "{} source, {} ADS: {passed} passed, {failed} failed",
                key.0, key.1
            );
        }
        for source in ["files", "kube"] {
            let count = |m: &BTreeMap<(&'static str, Ads), usize>| -> usize {
                m.iter()
                    .filter(|(k, _)| k.0 == source)
                    .map(|(_, n)| n)
                    .sum()
            };
            let (passed, failed) = (count(&self.passed), count(&self.failed));
            if passed + failed > 0 {
                println!("{source} source: {passed} passed, {failed} failed");
            }
        }
        for e in &self.broken {
            println!("FAIL conformance: {e}");
        }
        let failed: usize = self.failed.values().sum();
        let passed = self.ran() - failed;
        println!("{passed} passed, {failed} failed, {} skipped", self.skipped);
    }
}

/// Runs every case; `true` if any in-scope case failed, or if nothing ran.
async fn run_all() -> bool {
    let sets = cases_sources();
    let Some((cases_dir, source)) = sets.first().cloned() else {
        println!("FAIL conformance: $SLUICE_CONFORMANCE_CASES names no directory");
        return true;
    };
    if std::env::var_os("SLUICE_CONFORMANCE_SELFTEST").is_some() {
        return selftest::run(&cases_dir).await;
    }
    for (dir, source) in &sets {
        if !dir.join("cases").is_dir() {
            let optional = std::env::var_os(OPTIONAL_ENV).is_some();
            let verdict = if optional { "SKIP" } else { "FAIL" };
            println!("{verdict} conformance: no cases/ directory in {source}");
            if !optional {
                println!("  (set {OPTIONAL_ENV}=1 to accept running without the case data)");
            }
            return !optional;
        }
    }
    let loaded = (sets.iter())
        .map(|(dir, source)| cases::load_all(dir).map_err(|e| format!("{e:#} in {source}")))
        .collect::<Result<Vec<_>, _>>()
        .map(|sets| sets.into_iter().flatten().collect::<Vec<_>>());
    let (cases, passes, sources) = match (loaded, ads_passes(), source_passes()) {
        (Ok(cases), Ok(passes), Ok(sources)) => (cases, passes, sources),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            println!("FAIL conformance: {e}");
            return true;
        }
    };
    let filter = std::env::var("SLUICE_CONFORMANCE_FILTER").unwrap_or_default();
    let selected: Vec<&Case> = cases.iter().filter(|c| c.name.contains(&filter)).collect();
    if selected.is_empty() {
        println!(
            "FAIL conformance: SLUICE_CONFORMANCE_FILTER={filter:?} matches none of the {} cases in {source}",
            cases.len()
        );
        return true;
    }
    let mut tally = Tally::default();
    let mut envoy = None;
    for source in sources {
        let source = match source {
            "kube" => {
                match tokio::task::block_in_place(|| kube_server::Server::ensure(&workspace())) {
                    Ok(server) => Source::Kube(Arc::new(server)),
                    Err(e) => {
                        tally
                            .broken
                            .push(format!("kube source: no API server: {e:#}"));
                        continue;
                    }
                }
            }
            _ => Source::Files,
        };
        for pass in &passes {
            run_pass(&selected, &source, *pass, &mut envoy, &mut tally).await;
        }
        if let Source::Kube(server) = &source
            && let Err(e) = tokio::task::block_in_place(|| kube_source::delete_previous(server))
        {
            tally.broken.push(e);
        }
    }
    tally.print();
    if !tally.broken.is_empty() {
        return true;
    }
    if tally.ran() == 0 {
        println!(
            "FAIL conformance: no case ran (all {} selected were skipped)",
            selected.len()
        );
        return true;
    }
    tally.failed.values().sum::<usize>() > 0
}

/// One pass over the selected cases, with every Envoy on `ads` (`None`: alternating).
async fn run_pass(
    selected: &[&Case],
    source: &Source,
    ads: Option<Ads>,
    envoy: &mut Option<anyhow::Result<PathBuf>>,
    tally: &mut Tally,
) {
    for (index, case) in selected.iter().enumerate() {
        if let Some(reason) = cases::skip_reason(case) {
            if ads != Some(Ads::Delta) && matches!(source, Source::Files) {
                println!("SKIP {}: {reason}", case.name);
                tally.skipped += 1;
            }
            continue;
        }
        let ads = ads.unwrap_or(if index % 2 == 0 {
            Ads::Sotw
        } else {
            Ads::Delta
        });
        if envoy.is_none() {
            *envoy = Some(tokio::task::block_in_place(|| {
                processes::envoy_binary(&workspace())
            }));
        }
        let result = match (cases::plan(case), &*envoy) {
            (Err(e), _) => Err(format!("cannot run this case: {e}")),
            (Ok(steps), Some(Ok(binary))) => {
                run_case(&case.dir, case, &steps, index, binary, (source, ads)).await
            }
            (_, Some(Err(e))) => Err(format!("no Envoy: {e:#}")),
            (_, None) => Err("no Envoy".into()),
        };
        let label = source.label();
        match result {
            Ok(()) => {
                println!("PASS {} ({label} source, {ads} ADS)", case.name);
                *tally.passed.entry((label, ads)).or_default() += 1;
            }
            Err(e) => {
                println!("FAIL {} ({label} source, {ads} ADS): {e}", case.name);
                println!("  logs: {}", case_dir(&case.name).display());
                *tally.failed.entry((label, ads)).or_default() += 1;
            }
        }
    }
}

fn case_dir(name: &str) -> PathBuf {
    workspace().join("target/conformance").join(name)
}

/// Everything a case runs against; dropping it stops every process and backend.
#[derive(Debug, Default)]
struct Running {
    backends: BTreeMap<(String, String), EchoServer>,
    services: BTreeMap<(String, String), (String, String)>,
    sluice: Option<ChildGuard>,
    envoys: BTreeMap<GatewayKey, Envoy>,
}

impl Running {
    /// The echo server behind a Deployment or Service name.
    fn backend(&self, namespace: &str, name: &str) -> Option<&EchoServer> {
        let key = (namespace.to_string(), name.to_string());
        self.backends
            .get(&key)
            .or_else(|| self.services.get(&key).and_then(|d| self.backends.get(d)))
    }
}

/// A started case: its manifests, processes, and where its Gateways listen.
#[derive(Debug)]
struct CaseEnv {
    dir: PathBuf,
    docs: Vec<serde_json::Value>,
    running: Running,
    gateways: Vec<manifests::Gateway>,
    addresses: Vec<(GatewayKey, Ipv4Addr)>,
    offset: u16,
    status_file: PathBuf,
    sluice_log: PathBuf,
    xds_port: u16,
    /// With the kube source: the API server and the case's namespaces.
    kube: Option<(Arc<kube_server::Server>, Vec<String>)>,
    /// Distinguishes this case's Lease from the last one's.
    index: usize,
}

impl CaseEnv {
    fn target(&self, gateway: &cases::RequestGateway) -> Result<requests::Target, String> {
        target_for(gateway, &self.gateways, &self.addresses, self.offset)
    }

    /// Waits until the Envoy of Gateway `key` is LIVE.
    async fn live(&self, key: &GatewayKey) -> Result<(), String> {
        let envoy = self
            .running
            .envoys
            .get(key)
            .ok_or_else(|| format!("Gateway {key} is not in the manifests"))?;
        wait_live(envoy.admin)
            .await
            .map_err(|e| format!("envoy for {key}: {e}"))
    }
}

async fn run_case(
    cases_dir: &Path,
    case: &Case,
    steps: &[Step],
    index: usize,
    envoy: &Path,
    (source, ads): (&Source, Ads),
) -> Result<(), String> {
    let mut env = start_case(cases_dir, case, index, source).await?;
    start_envoys(case, &mut env, envoy, ads)?;
    check_statuses(case, &env).await?;
    let request_gateways: BTreeSet<GatewayKey> =
        case.requests.iter().map(|r| r.gateway.key()).collect();
    for key in &request_gateways {
        env.live(key).await?;
    }
    run_requests(case, steps, &mut env).await?;
    if let Some(Custom::Sequence { steps }) = &case.custom {
        sequence::run(steps, &mut env).await?;
    }
    if let (Some(Custom::Websocket(spec)), Some(gateway)) = (&case.custom, &case.gateway) {
        env.live(gateway).await?;
        let listener = cases::RequestGateway {
            namespace: gateway.namespace.clone(),
            name: gateway.name.clone(),
            listener: None,
            port: None,
        };
        websocket::check(&env.target(&listener)?, spec, &case.name).await?;
    }
    wrong_ports(&env.docs, &env.running)?;
    if let Some(sluice) = env.running.sluice.as_mut()
        && let Some(status) = sluice.exited()
    {
        return Err(format!(
            "sluice exited ({status}) during the case{}",
            last_line(&env.sluice_log)
        ));
    }
    Ok(())
}

/// Backends, manifests and `sluice serve` for one case.
async fn start_case(
    cases_dir: &Path,
    case: &Case,
    index: usize,
    source: &Source,
) -> Result<CaseEnv, String> {
    let dir = case_dir(&case.name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut docs = manifests::load(cases_dir, case).map_err(|e| format!("{e:#}"))?;
    let mut running = Running::default();
    start_backends(&mut running, &mut docs).await?;
    manifests::write(&dir.join("manifests"), &docs)
        .map_err(|e| format!("writing manifests: {e:#}"))?;
    let kube = match source {
        Source::Files => None,
        Source::Kube(server) => {
            let namespaces =
                tokio::task::block_in_place(|| kube_source::apply_case(server, &dir, &docs))?;
            Some((server.clone(), namespaces))
        }
    };
    let gateways = manifests::gateways(&docs);
    let addresses: Vec<(GatewayKey, Ipv4Addr)> = gateways
        .iter()
        .zip(2u8..)
        .map(|(gw, x)| (gw.key.clone(), Ipv4Addr::new(127, 0, 0, x)))
        .collect();
    let used = used_gateways(case);
    let listen: Vec<(Ipv4Addr, u16)> = gateways
        .iter()
        .zip(&addresses)
        .filter(|(gw, _)| used.contains(&gw.key))
        .flat_map(|(gw, (_, ip))| gw.listeners.iter().map(|(_, port)| (*ip, *port)))
        .collect();
    let offset = (0..25u16)
        .map(|k| 20000 + 1000 * ((index as u16 + k) % 25))
        .find(|&offset| processes::all_bindable(&listen, offset))
        .ok_or("no free port offset for the Gateways' listeners")?;
    let mut env = CaseEnv {
        status_file: dir.join("status.json"),
        sluice_log: dir.join("sluice.log"),
        dir,
        docs,
        running,
        gateways,
        addresses,
        offset,
        xds_port: 0,
        kube,
        index,
    };
    start_sluice(&mut env)?;
    Ok(env)
}

/// Starts `sluice serve` on the case's manifests; waits for its xDS port.
fn start_sluice(env: &mut CaseEnv) -> Result<u16, String> {
    let xds_port = processes::free_port().map_err(|e| e.to_string())?;
    let config = processes::SluiceConfig {
        manifests: &env.dir.join("manifests"),
        xds_port,
        port_offset: env.offset,
        addresses: &env.addresses,
        status_file: &env.status_file,
        log: &env.sluice_log,
        kube: env
            .kube
            .as_ref()
            .map(|(server, namespaces)| processes::KubeSluice {
                kubeconfig: &server.kubeconfig,
                namespaces,
                lease: format!("conformance-{}-{}", std::process::id(), env.index),
            }),
    };
    let mut sluice = processes::start_sluice(&config).map_err(|e| format!("{e:#}"))?;
    let xds = SocketAddr::from(([127, 0, 0, 1], xds_port));
    tokio::task::block_in_place(|| {
        processes::wait_for_port(xds, SLUICE_START_DEADLINE, &mut sluice)
    })
    .map_err(|e| format!("{e:#}{}", last_line(&env.sluice_log)))?;
    env.running.sluice = Some(sluice);
    env.xds_port = xds_port;
    Ok(xds_port)
}

/// One Envoy per Gateway the case uses, each on `ads`.
fn start_envoys(case: &Case, env: &mut CaseEnv, envoy: &Path, ads: Ads) -> Result<(), String> {
    let used = used_gateways(case);
    for key in env
        .gateways
        .iter()
        .map(|g| &g.key)
        .filter(|k| used.contains(k))
    {
        let node_id = format!("{key}/{}/{}", case.name, std::process::id());
        // File names have a length limit; Gateway names may be 253 characters long.
        let mut label = format!("{}.{}", key.namespace, key.name);
        label.truncate(100);
        let bootstrap = processes::bootstrap(key, &node_id, env.xds_port, ads);
        let started = tokio::task::block_in_place(|| {
            processes::start_envoy(envoy, &env.dir, &label, &bootstrap)
        })
        .map_err(|e| format!("{e:#}"))?;
        env.running.envoys.insert(key.clone(), started);
    }
    Ok(())
}

/// The request entries in order (with the actions due before each, and the case's
/// statistical check after its round trip), then the custom flows.
async fn run_requests(case: &Case, steps: &[Step], env: &mut CaseEnv) -> Result<(), String> {
    for (i, rc) in case.requests.iter().enumerate() {
        perform_actions(case, i, env)?;
        if steps.get(i) != Some(&Step::RoundTrip) {
            continue;
        }
        let target = env.target(&rc.gateway)?;
        let lookup = |ns: &str, name: &str| env.running.backend(ns, name);
        requests::run(rc, &target, &lookup).await?;
        let custom = match &case.custom {
            Some(Custom::WeightedDistribution(spec)) if spec.sanity_request_index == i => {
                distribution::weighted(rc, &target, spec).await
            }
            Some(Custom::PercentageMirrorDistribution {}) => {
                distribution::percentage_mirror(rc, &target, &lookup).await
            }
            _ => Ok(()),
        };
        custom.map_err(|e| format!("request {:?}: {e}", rc.name))?;
    }
    for (rc, step) in case.requests.iter().zip(steps) {
        if let Step::Custom(flow) = step {
            let target = env.target(&rc.gateway)?;
            flows::run(*flow, rc, &target)
                .await
                .map_err(|e| format!("custom flow of request {:?}: {e}", rc.name))?;
        }
    }
    Ok(())
}

/// Fails if an echo listener got a request for a Service port no HTTPRoute sends
/// traffic to: sluice picked the wrong port of a Service.
fn wrong_ports(docs: &[serde_json::Value], running: &Running) -> Result<(), String> {
    let referenced = manifests::referenced_service_ports(docs);
    let wrong: Vec<String> = running
        .backends
        .values()
        .flat_map(EchoServer::hits)
        .filter(|(port, hits)| *hits > 0 && !referenced.contains(port))
        .map(|(port, hits)| format!("{port} ({hits} requests)"))
        .collect();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "requests reached Service ports that no HTTPRoute references: {}",
            wrong.join(", ")
        ))
    }
}

/// The case's actions due before request `index`: each deletion rewrites the
/// manifest file without the object (atomically, so sluice sees one delete).
fn perform_actions(case: &Case, index: usize, env: &mut CaseEnv) -> Result<(), String> {
    let (docs, dir) = (&mut env.docs, &env.dir);
    let Some(Custom::Actions { actions }) = &case.custom else {
        return Ok(());
    };
    for action in actions.iter().filter(|a| a.before_request == index) {
        let object = format!("{} {}/{}", action.kind, action.namespace, action.name);
        if action.action != "delete" {
            return Err(format!(
                "unsupported action {:?} on {object}",
                action.action
            ));
        }
        let before = docs.len();
        docs.retain(|d| {
            !(manifests::kind(d) == action.kind
                && manifests::str_at(d, "/metadata/namespace") == action.namespace
                && manifests::str_at(d, "/metadata/name") == action.name)
        });
        if docs.len() == before {
            return Err(format!("cannot delete {object}: not in the manifests"));
        }
        manifests::write(&dir.join("manifests"), docs)
            .map_err(|e| format!("rewriting manifests without {object}: {e:#}"))?;
        if let Some((server, _)) = &env.kube {
            let (kind, ns, name) = (&action.kind, &action.namespace, &action.name);
            tokio::task::block_in_place(|| kube_source::delete(server, kind, ns, name))?;
        }
    }
    Ok(())
}

/// One echo server per Deployment, listening once per Service port that selects it,
/// and EndpointSlices pointing at those listeners.
async fn start_backends(
    running: &mut Running,
    docs: &mut Vec<serde_json::Value>,
) -> Result<(), String> {
    for d in manifests::deployments(docs) {
        let server = EchoServer::new(Identity::new(&d.namespace, &d.name));
        running
            .backends
            .insert((d.namespace.clone(), d.name.clone()), server);
    }
    running.services = manifests::service_backends(docs)
        .into_iter()
        .map(|(svc, d)| (svc, (d.namespace, d.name)))
        .collect();
    let mut listeners = BTreeMap::new();
    for (service_port, deployment) in manifests::service_ports(docs) {
        let server = running.backends.get_mut(&deployment).ok_or_else(|| {
            format!(
                "{service_port}: no Deployment {}/{}",
                deployment.0, deployment.1
            )
        })?;
        let listening = match manifests::tls_identity(docs, &service_port)? {
            None => server.listen(service_port.clone()).await,
            Some((chain, key)) => (server.listen_tls(service_port.clone(), (&chain, &key))).await,
        };
        let port = listening.map_err(|e| format!("echo listener for {service_port}: {e:#}"))?;
        listeners.insert(service_port, port);
    }
    let slices = manifests::endpoint_slices(docs, &listeners);
    docs.extend(slices);
    Ok(())
}

/// Gateways that requests go to or that status checks name (or a WebSocket check).
fn used_gateways(case: &Case) -> BTreeSet<GatewayKey> {
    let from_requests = case.requests.iter().map(|r| r.gateway.key());
    let from_custom = match &case.custom {
        Some(Custom::Websocket(_)) => case.gateway.clone(),
        _ => None,
    };
    let from_statuses = case
        .statuses
        .iter()
        .filter_map(|s| match (s.kind.as_deref(), &s.parent) {
            (Some("Gateway"), _) => Some(GatewayKey {
                namespace: s.namespace.clone().unwrap_or_default(),
                name: s.name.clone().unwrap_or_default(),
            }),
            (_, Some(p)) => Some(GatewayKey {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
            }),
            _ => None,
        });
    from_requests
        .chain(from_statuses)
        .chain(from_custom)
        .collect()
}

/// The socket and spec port a request entry addresses.
fn target_for(
    request_gateway: &cases::RequestGateway,
    gateways: &[manifests::Gateway],
    addresses: &[(GatewayKey, Ipv4Addr)],
    offset: u16,
) -> Result<requests::Target, String> {
    let key = request_gateway.key();
    let gateway = gateways
        .iter()
        .find(|g| g.key == key)
        .ok_or_else(|| format!("no Gateway {key}"))?;
    let ip = addresses
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, ip)| *ip)
        .ok_or("no address")?;
    let listener_port = match &request_gateway.listener {
        None => gateway.listeners.first().map(|(_, port)| *port),
        Some(name) => gateway
            .listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, port)| *port),
    };
    let spec_port = request_gateway
        .port
        .or(listener_port)
        .ok_or_else(|| format!("no listener port on {key}"))?;
    let real = spec_port
        .checked_add(offset)
        .ok_or("port + offset overflows")?;
    Ok(requests::Target {
        socket: SocketAddr::from((ip, real)),
        spec_port,
    })
}

/// The case's status checks: see [`wait_statuses`].
async fn check_statuses(case: &Case, env: &CaseEnv) -> Result<(), String> {
    wait_statuses(&status::expand(&case.statuses, &env.docs), env).await
}

/// Polls the status (the status file, or the API server with the kube source) until
/// every check that is not `immediate` holds; then the `immediate` ones must hold at
/// the first read.
async fn wait_statuses(checks: &[StatusCheck], env: &CaseEnv) -> Result<(), String> {
    let (immediate, polled): (Vec<StatusCheck>, Vec<StatusCheck>) =
        checks.iter().cloned().partition(|c| c.immediate);
    poll_statuses(&polled, env, STATUS_DEADLINE).await?;
    poll_statuses(&immediate, env, Duration::ZERO).await
}

/// Reads the status until every check holds or `deadline` passes (at least once).
async fn poll_statuses(
    checks: &[StatusCheck],
    env: &CaseEnv,
    deadline: Duration,
) -> Result<(), String> {
    if checks.is_empty() {
        return Ok(());
    }
    let start = Instant::now();
    let mut last_error = String::from("status file never written");
    loop {
        let json = match &env.kube {
            None => std::fs::read_to_string(&env.status_file)
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok()),
            Some((server, _)) => {
                match tokio::task::block_in_place(|| kube_source::status_document(server)) {
                    Ok(json) => Some(json),
                    Err(e) => {
                        last_error = e;
                        None
                    }
                }
            }
        };
        if let Some(json) = json {
            let failure = checks.iter().find_map(|c| {
                let generation = generation_of(&env.docs, c).and(
                    // The API server numbers generations itself.
                    match &env.kube {
                        None => generation_of(&env.docs, c),
                        Some(_) => kube_source::generation_in(&json, c),
                    },
                );
                status::check(&json, c, generation).err()
            });
            match failure {
                None => return Ok(()),
                Some(e) => last_error = e,
            }
        }
        if start.elapsed() >= deadline {
            return Err(last_error);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `metadata.generation` of the object a check names (`None`: not in the manifests).
fn generation_of(docs: &[serde_json::Value], c: &cases::StatusCheck) -> Option<i64> {
    docs.iter()
        .find(|d| {
            Some(manifests::kind(d)) == c.kind.as_deref()
                && Some(manifests::str_at(d, "/metadata/name")) == c.name.as_deref()
                && Some(manifests::str_at(d, "/metadata/namespace")) == c.namespace.as_deref()
        })
        .and_then(|d| {
            d.pointer("/metadata/generation")
                .and_then(serde_json::Value::as_i64)
        })
}

/// Waits until Envoy's admin `/ready` says LIVE (CDS and LDS arrived).
async fn wait_live(admin: SocketAddr) -> Result<(), String> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < ENVOY_LIVE_DEADLINE {
        let out = requests::Outgoing {
            method: "GET",
            host: "admin",
            path: "/ready",
            headers: vec![],
            h2c: false,
            tls: None,
        };
        match requests::send_raw(admin, &out).await {
            Ok(body) if body.trim() == "LIVE" => return Ok(()),
            Ok(body) => last = body.trim().to_string(),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "admin /ready did not say LIVE within {ENVOY_LIVE_DEADLINE:?} (last: {last})"
    ))
}

/// `": <last non-empty line of log>"`, for failure messages.
fn last_line(log: &Path) -> String {
    std::fs::read_to_string(log)
        .ok()
        .and_then(|text| {
            text.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| format!(": {}", l.trim()))
        })
        .unwrap_or_default()
}
