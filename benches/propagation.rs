//! Route propagation through a real Envoy: the time from a manifest change (one new
//! HTTPRoute file) to Envoy serving the new route, with 100 and 1,000 routes already
//! in place. A benchmark, not a test: it prints the median and p99 and writes
//! `target/propagation.json`.
//!
//! `cargo bench --bench propagation` (set `SLUICE_PROPAGATION_SAMPLES`, default 50).
//! It reuses the conformance runner's process helpers (Envoy from PyPI in
//! `target/envoy-venv`, the ADS bootstrap). Only loopback addresses are used.
//!
//! `cargo bench --bench propagation -- --kube` measures controller mode instead: the
//! routes are applied to the real API server of the controller tests
//! (`../shared/kube-test-server`), each sample is a `kubectl apply` of one new
//! HTTPRoute, and it also reports how long a restarted controller takes to be ready
//! (every watch listed, the first complete configuration published).

#[path = "../tests/conformance/cases.rs"]
#[allow(dead_code)]
mod cases;
#[path = "../tests/conformance/processes.rs"]
#[allow(dead_code)]
mod processes;
#[path = "../tests/kube/server.rs"]
#[allow(dead_code)]
mod server;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cases::GatewayKey;

const GATEWAY_PORT: u16 = 80;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A backend that answers every request with 200, on its own thread.
fn start_backend() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    Ok(port)
}

fn answer(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let _ =
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
}

/// The status code of `GET path` through Envoy, or None if the request failed.
fn status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: bench.example.com\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn route(name: &str, prefix: &str) -> String {
    route_in("bench", name, prefix)
}

fn route_in(ns: &str, name: &str, prefix: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {ns}}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  - matches: [{{path: {{type: PathPrefix, value: {prefix}}}}}]\n\
         \x20   backendRefs: [{{name: backend, port: 80}}]\n---\n"
    )
}

fn write_cluster(dir: &Path, routes: usize, backend_port: u16) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("base.yaml"), base("bench", backend_port))?;
    let existing: String = (0..routes)
        .map(|i| route(&format!("r{i}"), &format!("/r{i}")))
        .collect();
    std::fs::write(dir.join("routes.yaml"), existing)?;
    Ok(())
}

fn base(ns: &str, backend_port: u16) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: sluice}}\n\
         spec: {{controllerName: sluice.dev/gateway-controller}}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: {ns}}}\n\
         spec: {{gatewayClassName: sluice, listeners: [{{name: http, port: {GATEWAY_PORT}, protocol: HTTP}}]}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: backend, namespace: {ns}}}\n\
         spec: {{ports: [{{name: http, port: 80, protocol: TCP}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: backend-1, namespace: {ns}, labels: {{kubernetes.io/service-name: backend}}}}\n\
         addressType: IPv4\nports: [{{name: http, port: {backend_port}, protocol: TCP}}]\n\
         endpoints: [{{addresses: [127.0.0.1]}}]\n"
    )
}

fn wait_for(deadline: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

struct Run {
    routes: usize,
    /// From the start of the change to Envoy answering 200.
    samples_ms: Vec<f64>,
    /// From the change handed over (file written, `kubectl apply` returned) to 200.
    after_ms: Vec<f64>,
}

/// Waits for Envoy to serve the initial routes on `port`, then takes `samples`:
/// `change(k, path)` adds route `k` on `path`; each sample ends when Envoy answers 200.
fn sample(
    routes: usize,
    samples: usize,
    port: u16,
    dir: &Path,
    mut change: impl FnMut(usize, &str) -> anyhow::Result<()>,
) -> anyhow::Result<Run> {
    if !wait_for(Duration::from_secs(60), || status(port, "/r0") == Some(200)) {
        bail!(
            "Envoy never served the initial routes (see {})",
            dir.display()
        );
    }
    let mut run = Run {
        routes,
        samples_ms: vec![],
        after_ms: vec![],
    };
    for k in 0..samples {
        let path = format!("/new{k}");
        let started = Instant::now();
        change(k, &path)?;
        let handed = Instant::now();
        if !wait_for(Duration::from_secs(10), || status(port, &path) == Some(200)) {
            bail!("route {path} never reached Envoy");
        }
        run.samples_ms.push(started.elapsed().as_secs_f64() * 1e3);
        run.after_ms.push(handed.elapsed().as_secs_f64() * 1e3);
    }
    Ok(run)
}

fn measure(routes: usize, samples: usize, envoy_bin: &Path) -> anyhow::Result<Run> {
    let dir = workspace().join(format!("target/propagation/{routes}"));
    let manifests = dir.join("manifests");
    let backend = start_backend()?;
    write_cluster(&manifests, routes, backend)?;
    let xds_port = processes::free_port()?;
    let offset = processes::free_port()?
        .saturating_sub(GATEWAY_PORT)
        .max(20000);
    let key = GatewayKey {
        namespace: "bench".into(),
        name: "gw".into(),
    };
    let status_file = dir.join("status.json");
    let log = dir.join("sluice.log");
    let addresses = [(key.clone(), Ipv4Addr::LOCALHOST)];
    let config = processes::SluiceConfig {
        manifests: &manifests,
        xds_port,
        port_offset: offset,
        addresses: &addresses,
        status_file: &status_file,
        log: &log,
        kube: None,
    };
    let mut sluice = processes::start_sluice(&config)?;
    let xds = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, xds_port));
    processes::wait_for_port(xds, Duration::from_secs(60), &mut sluice)?;
    let _envoy = processes::start_envoy(
        envoy_bin,
        &dir,
        "gw",
        &processes::bootstrap(&key, "bench", xds_port, processes::Ads::Sotw),
    )?;
    let port = GATEWAY_PORT + offset;
    sample(routes, samples, port, &dir, |k, path| {
        let file = manifests.join(format!("new-{k}.yaml"));
        Ok(std::fs::write(&file, route(&format!("new{k}"), path))?)
    })
}

/// Controller mode: the cluster on the API server, one `kubectl apply` per sample.
/// Returns the samples and the restarted controller's time to ready.
fn measure_kube(routes: usize, samples: usize, envoy_bin: &Path) -> anyhow::Result<(Run, f64)> {
    let dir = workspace().join(format!("target/propagation/kube-{routes}"));
    std::fs::create_dir_all(&dir)?;
    let server = server::Server::ensure(&workspace())?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let ns = format!("bench-{routes}-{stamp}");
    let backend = start_backend()?;
    server.apply(&base(&ns, backend))?;
    let existing: String = (0..routes)
        .map(|i| route_in(&ns, &format!("r{i}"), &format!("/r{i}")))
        .collect();
    server.apply(&existing)?;
    let (xds_port, admin_port) = (processes::free_port()?, processes::free_port()?);
    let offset = processes::free_port()?
        .saturating_sub(GATEWAY_PORT)
        .max(20000);
    let start_sluice = |label: &str| -> anyhow::Result<processes::ChildGuard> {
        let binary =
            std::env::var_os("SLUICE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_sluice").into());
        let mut command = std::process::Command::new(binary);
        command
            .args([
                "serve",
                "--kube",
                "--namespace",
                &ns,
                "--listen-address",
                "127.0.0.1",
            ])
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .args(["--xds", &format!("127.0.0.1:{xds_port}")])
            .args(["--admin", &format!("127.0.0.1:{admin_port}")])
            .args([
                "--port-offset",
                &offset.to_string(),
                "--lease-namespace",
                &ns,
            ]);
        processes::ChildGuard::spawn("sluice", command, &dir.join(format!("sluice-{label}.log")))
    };
    let mut sluice = start_sluice("first")?;
    let xds = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, xds_port));
    processes::wait_for_port(xds, Duration::from_secs(120), &mut sluice)?;
    let key = GatewayKey {
        namespace: ns.clone(),
        name: "gw".into(),
    };
    let bootstrap = processes::bootstrap(&key, "bench", xds_port, processes::Ads::Delta);
    let _envoy = processes::start_envoy(envoy_bin, &dir, "gw", &bootstrap)?;
    let port = GATEWAY_PORT + offset;
    let run = sample(routes, samples, port, &dir, |k, path| {
        server.apply(&route_in(&ns, &format!("new{k}"), path))
    })?;
    drop(sluice);
    let started = Instant::now();
    let _restarted = start_sluice("restarted")?;
    let ready = wait_for(Duration::from_secs(120), || {
        status(admin_port, "/readyz") == Some(200)
    });
    anyhow::ensure!(ready, "the restarted controller never became ready");
    let restart_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok((run, restart_ms))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and must
    // not start Envoy.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let samples: usize = std::env::var("SLUICE_PROPAGATION_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let envoy = processes::envoy_binary(&workspace()).context("installing Envoy")?;
    let mut report = vec![];
    println!(
        "{:>8} {:>8} {:>10} {:>10} {:>10} {:>16} {:>13}",
        "routes", "samples", "median_ms", "p99_ms", "max_ms", "after_median_ms", "after_p99_ms"
    );
    let kube = std::env::args().any(|a| a == "--kube");
    for routes in [100, 1000] {
        let (mut run, restart_ms) = if kube {
            let (run, restart) = measure_kube(routes, samples, &envoy)?;
            (run, Some(restart))
        } else {
            (measure(routes, samples, &envoy)?, None)
        };
        run.samples_ms.sort_by(f64::total_cmp);
        run.after_ms.sort_by(f64::total_cmp);
        let (median, p99) = (
            percentile(&run.samples_ms, 0.5),
            percentile(&run.samples_ms, 0.99),
        );
        let (after_median, after_p99) = (
            percentile(&run.after_ms, 0.5),
            percentile(&run.after_ms, 0.99),
        );
        let max = run.samples_ms.last().copied().unwrap_or_default();
        println!(
            "{:>8} {:>8} {median:>10.1} {p99:>10.1} {max:>10.1} {after_median:>16.1} {after_p99:>13.1}",
            run.routes,
            run.samples_ms.len(),
        );
        if let Some(ms) = restart_ms {
            println!("{:>8} restarted controller ready in {ms:.0} ms", run.routes);
        }
        report.push(serde_json::json!({
            "routes": run.routes, "samples": run.samples_ms.len(), "median_ms": median,
            "p99_ms": p99, "max_ms": max, "after_handover_median_ms": after_median,
            "after_handover_p99_ms": after_p99, "restart_ready_ms": restart_ms,
        }));
    }
    let name = if kube {
        "propagation-kube.json"
    } else {
        "propagation.json"
    };
    let out = workspace().join("target").join(name);
    std::fs::write(&out, serde_json::to_vec_pretty(&report)?)?;
    println!("wrote {}", out.display());
    Ok(())
}
