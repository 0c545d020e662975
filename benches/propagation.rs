//! Route propagation through a real Envoy: the time from a manifest change (one new
//! HTTPRoute file) to Envoy serving the new route, with 100 and 1,000 routes already
//! in place. A benchmark, not a test: it prints the median and p99 and writes
//! `target/propagation.json`.
//!
//! `cargo bench --bench propagation` (set `SLUICE_PROPAGATION_SAMPLES`, default 50).
//! It reuses the conformance runner's process helpers (Envoy from PyPI in
//! `target/envoy-venv`, the ADS bootstrap). Only loopback addresses are used.

#[path = "../tests/conformance/cases.rs"]
#[allow(dead_code)]
mod cases;
#[path = "../tests/conformance/processes.rs"]
#[allow(dead_code)]
mod processes;

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
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: bench}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  - matches: [{{path: {{type: PathPrefix, value: {prefix}}}}}]\n\
         \x20   backendRefs: [{{name: backend, port: 80}}]\n---\n"
    )
}

fn write_cluster(dir: &Path, routes: usize, backend_port: u16) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let base = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: sluice}}\n\
         spec: {{controllerName: sluice.dev/gateway-controller}}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {{name: bench}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: bench}}\n\
         spec: {{gatewayClassName: sluice, listeners: [{{name: http, port: {GATEWAY_PORT}, protocol: HTTP}}]}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: backend, namespace: bench}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: backend-1, namespace: bench, labels: {{kubernetes.io/service-name: backend}}}}\n\
         addressType: IPv4\nports: [{{name: http, port: {backend_port}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n"
    );
    std::fs::write(dir.join("base.yaml"), base)?;
    let existing: String = (0..routes)
        .map(|i| route(&format!("r{i}"), &format!("/r{i}")))
        .collect();
    std::fs::write(dir.join("routes.yaml"), existing)?;
    Ok(())
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
    samples_ms: Vec<f64>,
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
    if !wait_for(Duration::from_secs(30), || status(port, "/r0") == Some(200)) {
        bail!(
            "Envoy never served the initial routes (see {})",
            dir.display()
        );
    }
    let mut samples_ms = Vec::with_capacity(samples);
    for k in 0..samples {
        let path = format!("/new{k}");
        let file = manifests.join(format!("new-{k}.yaml"));
        let started = Instant::now();
        std::fs::write(&file, route(&format!("new{k}"), &path))?;
        if !wait_for(Duration::from_secs(10), || status(port, &path) == Some(200)) {
            bail!("route {path} never reached Envoy");
        }
        samples_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Run { routes, samples_ms })
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
        "{:>8} {:>8} {:>10} {:>10} {:>10}",
        "routes", "samples", "median_ms", "p99_ms", "max_ms"
    );
    for routes in [100, 1000] {
        let mut run = measure(routes, samples, &envoy)?;
        run.samples_ms.sort_by(f64::total_cmp);
        let (median, p99) = (
            percentile(&run.samples_ms, 0.5),
            percentile(&run.samples_ms, 0.99),
        );
        let max = run.samples_ms.last().copied().unwrap_or_default();
        println!(
            "{:>8} {:>8} {:>10.1} {:>10.1} {:>10.1}",
            run.routes,
            run.samples_ms.len(),
            median,
            p99,
            max
        );
        report.push(
            serde_json::json!({"routes": run.routes, "samples": run.samples_ms.len(),
            "median_ms": median, "p99_ms": p99, "max_ms": max}),
        );
    }
    let out = workspace().join("target/propagation.json");
    std::fs::write(&out, serde_json::to_vec_pretty(&report)?)?;
    println!("wrote {}", out.display());
    Ok(())
}
