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
//! Run with `cargo test --test conformance`; `SLUICE_CONFORMANCE_FILTER=Redirect` runs
//! the cases whose name contains `Redirect`. `SLUICE_CONFORMANCE_SELFTEST=1` checks the
//! harness itself (echo backends, EndpointSlices, Envoy) against a static Envoy config,
//! without sluice. `SLUICE_BIN` runs another `sluice` binary (a release build, say).
//! Logs of each case land in `target/conformance/<case>/`.
//!
//! A case's `custom` flows run too: the weighted-backend and percentage-mirror
//! distributions after their sanity requests, object deletions between requests (the
//! manifest file is rewritten without the object), and a WebSocket echo exchange.

#[path = "conformance/cases.rs"]
mod cases;
#[path = "conformance/distribution.rs"]
mod distribution;
#[path = "conformance/echo.rs"]
mod echo;
#[path = "conformance/manifests.rs"]
mod manifests;
#[path = "conformance/processes.rs"]
mod processes;
#[path = "conformance/requests.rs"]
mod requests;
#[path = "conformance/selftest.rs"]
mod selftest;
#[path = "conformance/status.rs"]
mod status;
#[path = "conformance/websocket.rs"]
mod websocket;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cases::{Case, Custom, GatewayKey};
use crate::echo::{EchoServer, Identity};
use crate::processes::{ChildGuard, Envoy};

const STATUS_DEADLINE: Duration = Duration::from_secs(30);
const SLUICE_START_DEADLINE: Duration = Duration::from_secs(60);
const ENVOY_LIVE_DEADLINE: Duration = Duration::from_secs(20);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let failed = runtime.block_on(run_all());
    std::process::exit(if failed { 1 } else { 0 });
}

/// Runs every case; `true` if any in-scope case failed.
async fn run_all() -> bool {
    let cases_dir = std::env::var_os("SLUICE_CONFORMANCE_CASES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/gateway-api/conformance"));
    if std::env::var_os("SLUICE_CONFORMANCE_SELFTEST").is_some() {
        return selftest::run(&cases_dir).await;
    }
    if !cases_dir.join("cases").is_dir() {
        println!("SKIP conformance: no cases in {}", cases_dir.display());
        println!("0 passed, 0 failed, 0 skipped");
        return false;
    }
    let cases = match cases::load_all(&cases_dir) {
        Ok(cases) => cases,
        Err(e) => {
            println!("FAIL conformance: {e:#}");
            println!("0 passed, 1 failed, 0 skipped");
            return true;
        }
    };
    let filter = std::env::var("SLUICE_CONFORMANCE_FILTER").unwrap_or_default();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut envoy = None;
    for (index, case) in cases
        .iter()
        .filter(|c| c.name.contains(&filter))
        .enumerate()
    {
        if let Some(reason) = cases::skip_reason(case) {
            println!("SKIP {}: {reason}", case.name);
            skipped += 1;
            continue;
        }
        if envoy.is_none() {
            envoy = Some(tokio::task::block_in_place(|| {
                processes::envoy_binary(&workspace())
            }));
        }
        let result = match &envoy {
            Some(Ok(binary)) => run_case(&cases_dir, case, index, binary).await,
            Some(Err(e)) => Err(format!("no Envoy: {e:#}")),
            None => Err("no Envoy".into()),
        };
        match result {
            Ok(()) => {
                println!("PASS {}", case.name);
                passed += 1;
            }
            Err(e) => {
                println!("FAIL {}: {e}", case.name);
                println!("  logs: {}", case_dir(&case.name).display());
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    failed > 0
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

async fn run_case(cases_dir: &Path, case: &Case, index: usize, envoy: &Path) -> Result<(), String> {
    let dir = case_dir(&case.name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut docs = manifests::load(cases_dir, case).map_err(|e| format!("{e:#}"))?;
    let mut running = Running::default();
    start_backends(&mut running, &mut docs).await?;
    manifests::write(&dir.join("manifests"), &docs)
        .map_err(|e| format!("writing manifests: {e:#}"))?;

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
    let xds_port = processes::free_port().map_err(|e| e.to_string())?;
    let status_file = dir.join("status.json");

    let sluice_log = dir.join("sluice.log");
    let config = processes::SluiceConfig {
        manifests: &dir.join("manifests"),
        xds_port,
        port_offset: offset,
        addresses: &addresses,
        status_file: &status_file,
        log: &sluice_log,
    };
    let mut sluice = processes::start_sluice(&config).map_err(|e| format!("{e:#}"))?;
    let xds = SocketAddr::from(([127, 0, 0, 1], xds_port));
    tokio::task::block_in_place(|| {
        processes::wait_for_port(xds, SLUICE_START_DEADLINE, &mut sluice)
    })
    .map_err(|e| format!("{e:#}{}", last_line(&sluice_log)))?;
    running.sluice = Some(sluice);

    for key in gateways.iter().map(|g| &g.key).filter(|k| used.contains(k)) {
        let node_id = format!("{key}/{}/{}", case.name, std::process::id());
        // File names have a length limit; Gateway names may be 253 characters long.
        let mut label = format!("{}.{}", key.namespace, key.name);
        label.truncate(100);
        let started = tokio::task::block_in_place(|| {
            processes::start_envoy(
                envoy,
                &dir,
                &label,
                &processes::bootstrap(key, &node_id, xds_port),
            )
        })
        .map_err(|e| format!("{e:#}"))?;
        running.envoys.insert(key.clone(), started);
    }

    check_statuses(case, &docs, &status_file).await?;
    let request_gateways: BTreeSet<GatewayKey> =
        case.requests.iter().map(|r| r.gateway.key()).collect();
    for key in &request_gateways {
        let envoy = running
            .envoys
            .get(key)
            .ok_or_else(|| format!("Gateway {key} is not in the manifests"))?;
        wait_live(envoy.admin)
            .await
            .map_err(|e| format!("envoy for {key}: {e}"))?;
    }
    if let Some(Custom::Actions { actions }) = &case.custom
        && let Some(late) = actions
            .iter()
            .find(|a| a.before_request >= case.requests.len())
    {
        return Err(format!(
            "action before request {}, but the case has {} requests",
            late.before_request,
            case.requests.len()
        ));
    }
    let lookup = |ns: &str, name: &str| running.backend(ns, name);
    for (i, rc) in case.requests.iter().enumerate() {
        perform_actions(case, i, &mut docs, &dir)?;
        let target = target_for(&rc.gateway, &gateways, &addresses, offset)?;
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
    if let Some(Custom::Websocket(spec)) = &case.custom {
        let gateway = case
            .gateway
            .as_ref()
            .ok_or("a WebSocket check needs the case's gateway")?;
        let envoy = running
            .envoys
            .get(gateway)
            .ok_or_else(|| format!("Gateway {gateway} is not in the manifests"))?;
        wait_live(envoy.admin)
            .await
            .map_err(|e| format!("envoy for {gateway}: {e}"))?;
        let listener = cases::RequestGateway {
            namespace: gateway.namespace.clone(),
            name: gateway.name.clone(),
            listener: None,
            port: None,
        };
        let target = target_for(&listener, &gateways, &addresses, offset)?;
        websocket::check(&target, spec, &case.name).await?;
    }
    if let Some(sluice) = running.sluice.as_mut()
        && let Some(status) = sluice.exited()
    {
        return Err(format!(
            "sluice exited ({status}) during the case{}",
            last_line(&sluice_log)
        ));
    }
    Ok(())
}

/// The case's actions due before request `index`: each deletion rewrites the
/// manifest file without the object (atomically, so sluice sees one delete).
fn perform_actions(
    case: &Case,
    index: usize,
    docs: &mut Vec<serde_json::Value>,
    dir: &Path,
) -> Result<(), String> {
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
    }
    Ok(())
}

/// One echo server per Deployment, and EndpointSlices pointing at them.
async fn start_backends(
    running: &mut Running,
    docs: &mut Vec<serde_json::Value>,
) -> Result<(), String> {
    for d in manifests::deployments(docs) {
        let server = EchoServer::start(Identity::new(&d.namespace, &d.name))
            .await
            .map_err(|e| format!("echo backend {}/{}: {e:#}", d.namespace, d.name))?;
        running
            .backends
            .insert((d.namespace.clone(), d.name.clone()), server);
    }
    running.services = manifests::service_backends(docs)
        .into_iter()
        .map(|(svc, d)| (svc, (d.namespace, d.name)))
        .collect();
    let ports = running
        .backends
        .iter()
        .map(|(k, s)| (k.clone(), s.addr.port()))
        .collect();
    let slices = manifests::endpoint_slices(docs, &ports);
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

/// Polls the status file until every status check of the case holds.
async fn check_statuses(
    case: &Case,
    docs: &[serde_json::Value],
    file: &Path,
) -> Result<(), String> {
    let start = Instant::now();
    let mut last_error = String::from("status file never written");
    while start.elapsed() < STATUS_DEADLINE {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
        {
            let failure = case.statuses.iter().find_map(|c| {
                let generation = generation_of(docs, c);
                status::check(&json, c, generation).err()
            });
            match failure {
                None => return Ok(()),
                Some(e) => last_error = e,
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last_error)
}

/// `metadata.generation` of the object a check names; objects read from files have 1.
fn generation_of(docs: &[serde_json::Value], c: &cases::StatusCheck) -> i64 {
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
        .unwrap_or(1)
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
