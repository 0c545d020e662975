//! Snapshots and warm start end to end, with a real Envoy and a real backend:
//! - `sluice serve --snapshot-dir` is killed (SIGKILL) and restarted while a client
//!   sends requests through Envoy without pause: not one fails; the restarted
//!   controller serves the snapshot at once, then its live state, and Envoy follows
//!   it (a route added after the restart is served). Envoy modifies no listener or
//!   cluster across the restarts: the controller sent only what differed.
//! - A damaged newest snapshot is reported and skipped; the one before it is used.
//! - Random corruptions of a real snapshot file never load wrong and never crash
//!   the loader.
//! - A cold start (no snapshot) is timed against the warm one (printed).

#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{demo_backend, envoy_stat, get, processes, read, s, scratch, wait_for};

fn manifests(port: u16) -> String {
    common::echo_app("snap", "a", "a.example", port)
}

const ROUTE_B: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b, namespace: snap}
spec:
  parentRefs: [{name: gw}]
  hostnames: [b.example]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
";

/// One `sluice serve` of the test.
struct Serve<'a> {
    dir: &'a Path,
    conf: PathBuf,
    snaps: PathBuf,
    xds: u16,
    offset: u16,
}

impl Serve<'_> {
    fn start(&self, label: &str) -> (processes::ChildGuard, PathBuf) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command.args(["serve", "--from", s(&self.conf)]);
        command.args(["--xds", &format!("127.0.0.1:{}", self.xds)]);
        command.args(["--listen-address", "127.0.0.1"]);
        command.args(["--port-offset", &self.offset.to_string()]);
        command.args([
            "--snapshot-dir",
            s(&self.snaps),
            "--snapshot-every-secs",
            "1",
        ]);
        command.env("SLUICE_LOG", "info");
        let log = self.dir.join(format!("serve-{label}.log"));
        let guard = processes::ChildGuard::spawn("sluice serve", command, &log).expect("start");
        (guard, log)
    }

    /// Snapshot files, oldest first.
    fn snapshots(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.snaps)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "sluice"));
        files.sort();
        files
    }
}

/// Milliseconds from start to ADS served, from the `serving ADS` line.
fn since_start_ms(log: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains("serving ADS"))?;
    let (_, rest) = line.split_once("since_start_ms=")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The logical times of the snapshots a `serve` log says it wrote.
fn written_times(log: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("snapshot written"))
        .filter_map(|l| {
            l.split_once(" time=")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// Requests through Envoy without pause, counting failures, until stopped.
struct Client {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Client {
    fn start(port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (st, se, fa) = (stop.clone(), sent.clone(), failures.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let answer = get(port, "a.example", "/steady");
                se.fetch_add(1, Ordering::Relaxed);
                if !(answer.starts_with("HTTP/1.1 200") && answer.contains("answered GET /steady"))
                {
                    let first = answer.lines().next().unwrap_or_default().to_string();
                    if let Ok(mut f) = fa.lock() {
                        f.push(first);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Client {
            stop,
            sent,
            failures,
            thread: Some(thread),
        }
    }

    /// Stops; (requests sent, failures).
    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let failures = self.failures.lock().map(|f| f.clone()).unwrap_or_default();
        (self.sent.load(Ordering::Relaxed), failures)
    }
}

#[test]
fn a_killed_controller_restarts_warm_and_no_request_through_envoy_fails() {
    let dir = scratch("snapshot-warm");
    let envoy = processes::envoy_binary(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("envoy");
    let (_backend, port) = demo_backend("echo-snap", &dir.join("backend.log"));
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).expect("conf");
    std::fs::write(conf.join("app.yaml"), manifests(port)).expect("write");
    let serve = Serve {
        dir: &dir,
        conf: conf.clone(),
        snaps: dir.join("snapshots"),
        xds: processes::free_port().expect("port"),
        offset: processes::free_port().expect("port") - 80,
    };
    let listen = 80 + serve.offset;

    // 1. A cold start (there is no snapshot yet); Envoy follows it.
    let (sluice, log1) = serve.start("1");
    wait_for("a cold start", || read(&log1).contains("cold start"));
    let gateway = processes::GatewayKey {
        namespace: "snap".into(),
        name: "gw".into(),
    };
    let bootstrap = processes::bootstrap(&gateway, "snap", serve.xds, processes::Ads::Delta);
    let envoy = processes::start_envoy(&envoy, &dir, "gw", &bootstrap).expect("envoy");
    wait_for("Envoy to route a.example", || {
        get(listen, "a.example", "/").starts_with("HTTP/1.1 200")
    });
    wait_for("a periodic snapshot", || !serve.snapshots().is_empty());
    let cold_ms = since_start_ms(&log1);
    let modified = |admin| {
        (
            envoy_stat(admin, "listener_manager.listener_modified"),
            envoy_stat(admin, "listener_manager.listener_create_success"),
            envoy_stat(admin, "cluster_manager.cluster_modified"),
        )
    };
    let before = modified(envoy.admin);

    // 2. SIGKILL, restart warm, with requests going through Envoy all along.
    let client = Client::start(listen);
    std::thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    drop(sluice);
    std::thread::sleep(Duration::from_millis(300));
    let (sluice, log2) = serve.start("2");
    wait_for("the warm start", || {
        read(&log2).contains("warm start: serving")
    });
    wait_for("the live state", || {
        read(&log2).contains("the live state replaces the snapshot")
    });
    let warm_ms = since_start_ms(&log2);
    let down = killed.elapsed();
    // The restarted controller is in charge: a route added now reaches Envoy.
    std::fs::write(conf.join("b.yaml"), ROUTE_B).expect("write");
    wait_for("Envoy to route b.example", || {
        get(listen, "b.example", "/").starts_with("HTTP/1.1 200")
    });
    let after_warm = modified(envoy.admin);

    // 3. The newest snapshot is damaged: reported, skipped, the one before is used.
    wait_for("a snapshot with route b", || {
        written_times(&log2).iter().any(|t| *t > 0)
    });
    drop(sluice);
    let files = serve.snapshots();
    let newest = files.last().expect("a snapshot").clone();
    let mut bytes = std::fs::read(&newest).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&newest, &bytes).expect("write");
    let (sluice, log3) = serve.start("3");
    wait_for("the damaged snapshot skipped", || {
        read(&log3).contains("skipping snapshot")
    });
    assert!(read(&log3).contains("checksum mismatch"), "{}", read(&log3));
    wait_for("the live state", || {
        read(&log3).contains("the live state replaces the snapshot")
    });
    wait_for("Envoy to route b.example", || {
        get(listen, "b.example", "/").starts_with("HTTP/1.1 200")
    });

    let (sent, failures) = client.finish();
    assert!(sent > 100, "only {sent} requests were sent");
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    // Across the first restart (same files) Envoy changed no listener or cluster:
    // the restarted controller sent nothing that differed.
    assert_eq!(
        before, after_warm,
        "(modified, created listeners, modified clusters)"
    );

    // 4. A cold start, for comparison: no snapshot at all.
    drop(sluice);
    let _ = std::fs::remove_dir_all(dir.join("snapshots"));
    let (_sluice, log4) = serve.start("4");
    wait_for("a cold start", || read(&log4).contains("cold start"));
    wait_for("ADS", || since_start_ms(&log4).is_some());
    println!(
        "start to ADS served: first cold {cold_ms:?} ms, warm {warm_ms:?} ms, cold again {:?} ms; \
         controller down {down:?} with {sent} requests, none failed",
        since_start_ms(&log4)
    );
}

/// Random corruptions of a real snapshot (written by `serve`): each either fails to
/// load with an error, or is byte-for-byte the snapshot (the corruption was undone).
#[test]
fn random_corruptions_of_a_real_snapshot_never_load_wrong_or_crash() {
    let dir = scratch("snapshot-fuzz");
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).expect("conf");
    std::fs::write(conf.join("app.yaml"), manifests(8080)).expect("write");
    std::fs::write(conf.join("b.yaml"), ROUTE_B).expect("write");
    let serve = Serve {
        dir: &dir,
        conf,
        snaps: dir.join("snapshots"),
        xds: processes::free_port().expect("port"),
        offset: 10_000,
    };
    let (sluice, log) = serve.start("fuzz");
    wait_for("a snapshot", || !serve.snapshots().is_empty());
    drop(sluice);
    let path = serve.snapshots().pop().expect("a snapshot");
    let good = std::fs::read(&path).expect("read");
    let original = sluice_snapshot::Loaded::from_copy("good", &good).expect("loads");
    let want = original.gateways().expect("gateways");
    assert!(
        want.iter().any(|(_, g)| !g.is_empty()),
        "the snapshot holds the gateway: {}",
        read(&log)
    );

    let mut rng = 0x5eed_u64;
    let mut refused = 0;
    for round in 0..2000 {
        let mut bytes = good.clone();
        let r = next(&mut rng);
        let at = (next(&mut rng) as usize) % bytes.len();
        match r % 5 {
            0 => bytes[at] ^= 1 << (r % 8),
            1 => bytes.truncate(at),
            2 => bytes.extend((0..1 + at % 64).map(|i| i as u8)),
            3 => bytes[at..(at + 64).min(good.len())].fill(0),
            _ => {
                // Header fields one at a time: magic, version, checksum, length.
                let field = [0usize, 8, 12, 16][(r as usize / 5) % 4];
                bytes[field] = bytes[field].wrapping_add(1);
            }
        }
        match sluice_snapshot::Loaded::from_copy("corrupt", &bytes) {
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().is_empty());
            }
            Ok(l) => {
                assert_eq!(bytes, good, "round {round}: a changed file loaded");
                assert_eq!(l.gateways().expect("gateways"), want);
            }
        }
    }
    assert!(
        refused > 1900,
        "only {refused} of 2000 corruptions were refused"
    );
}

/// splitmix64.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
