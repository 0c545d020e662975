//! Event sourcing end to end, with the oracles the spec of the run gives:
//! - `sluice serve --record` on a manifest directory that changes (a route added, a
//!   Service deleted), then `sluice replay` of the log: the final state is
//!   byte-identical to `sluice translate` of the directory's final files.
//! - `sluice scale --record` (initial load, churn cycle, batched endpoint churn,
//!   teardown): churn ends where it started, so replaying up to the time before the
//!   teardown must give exactly `sluice translate` of the generated manifests; the
//!   replay is the same with 1 or 2 workers and run twice (digests and dump bytes).
//! - A damaged log replays up to the damage and exits 2 naming the byte offset; a
//!   crash-cut last frame is reported and ignored.
//! - `sluice replay --xds` serves the replayed state to a real Envoy, which routes a
//!   request to a real backend by it; `--speed` paces by the recorded wall clock.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{demo_backend, get, ok, processes, read, s, scratch, sluice, wait_for};
use serde_json::Value;

/// `sluice replay LOG --dump DUMP --report REPORT` plus `extra`; the report.
fn replay(log: &Path, dump: &Path, extra: &[&str]) -> Value {
    let report = dump.with_extension("report.json");
    let mut args = vec!["replay", s(log), "--dump", s(dump), "--report", s(&report)];
    args.extend_from_slice(extra);
    let out = ok(&args);
    assert!(out.contains("xds digest: "), "{out}");
    serde_json::from_str(&read(&report)).expect("report JSON")
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Replaces `path` atomically (written in `scratch`, then renamed), so that a watching
/// `serve` never reads it half-written (which it would apply: issue 8).
fn put(scratch: &Path, path: &Path, text: &str) {
    let tmp = scratch.join("put.tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// The snapshot `serve --snapshot-dir DIR` wrote of logical time `time`.
fn snapshot_at(dir: &Path, time: u64) -> Option<std::path::PathBuf> {
    let suffix = format!("-t{time}.sluice");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.to_str()
                .is_some_and(|n| n.ends_with(&suffix) && !n.contains("/."))
        })
}

/// The last logical time in `log` with at least one event, read as `serve` writes it.
fn last_time(log: &Path) -> Option<u64> {
    let reader = sluice_eventlog::Reader::open(log).ok()?;
    reader.filter_map(Result::ok).map(|e| e.time).max()
}

const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: extra, namespace: demo}
spec:
  parentRefs: [{name: web}]
  hostnames: [extra.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /extra}}]
    backendRefs: [{name: echo-v1, port: 80}]
";

#[test]
fn replaying_what_serve_recorded_gives_what_translate_gives() {
    let dir = scratch("replay-serve");
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).expect("dir");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/basic/app.yaml");
    let app = read(&example);
    std::fs::write(manifests.join("app.yaml"), &app).expect("write");
    let log = dir.join("events.log");
    let snaps = dir.join("snapshots");
    let xds = format!("127.0.0.1:{}", free_port());
    let mut serve = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "serve",
            "--from",
            s(&manifests),
            "--xds",
            &xds,
            "--record",
            s(&log),
            "--snapshot-dir",
            s(&snaps),
            "--snapshot-every-secs",
            "1",
            "--snapshot-keep",
            "100",
        ])
        .env("SLUICE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start serve");
    wait_for("the initial state in the log", || {
        last_time(&log) == Some(0)
    });
    wait_for("a snapshot at time 0", || snapshot_at(&snaps, 0).is_some());
    // Time 1: a route is added. Time 2: the Service echo-v2 goes (its routes' backends
    // stop resolving).
    put(&dir, &manifests.join("extra.yaml"), ROUTE);
    wait_for("the route in the log", || last_time(&log) == Some(1));
    wait_for("a snapshot at time 1", || snapshot_at(&snaps, 1).is_some());
    let without_v2: String = app
        .split("\n---")
        .filter(|doc| !(doc.contains("kind: Service") && doc.contains("name: echo-v2")))
        .collect::<Vec<_>>()
        .join("\n---");
    assert_ne!(
        without_v2, app,
        "examples/basic/app.yaml has a Service echo-v2"
    );
    put(&dir, &manifests.join("app.yaml"), &without_v2);
    wait_for("the deletion in the log", || last_time(&log) == Some(2));
    let _ = serve.kill();
    let _ = serve.wait();

    let inspect = ok(&["log", "inspect", s(&log)]);
    assert!(inspect.contains("logical times: 0..=2\n"), "{inspect}");
    assert!(
        snapshot_at(&snaps, 2).is_none(),
        "killed before a snapshot of time 2"
    );
    assert!(inspect.contains("Service delete: 1\n"), "{inspect}");
    assert!(inspect.contains("HTTPRoute resync-begin: 1\n"), "{inspect}");

    let dump = dir.join("replayed.json");
    let report = replay(&log, &dump, &[]);
    assert_eq!(report["logical_times"], 3, "{report}");
    let translated = ok(&["translate", s(&manifests), "--output", "json"]);
    assert!(
        translated.contains("extra.example.com"),
        "the route is translated"
    );
    assert_eq!(
        read(&dump),
        translated,
        "replayed state = translated final files"
    );

    // Each snapshot `serve` wrote, plus the log after it, replays to the same state.
    for time in [0, 1] {
        let snapshot = snapshot_at(&snaps, time).expect("snapshot");
        let resumed = dir.join(format!("from-{time}.json"));
        let r = replay(&log, &resumed, &["--from-snapshot", s(&snapshot)]);
        assert_eq!(r["from_snapshot"]["time"], time, "{r}");
        assert_eq!(
            r["logical_times"],
            2 - time,
            "times after the snapshot's: {r}"
        );
        assert_eq!(
            read(&resumed),
            read(&dump),
            "from the snapshot at time {time}"
        );
    }

    // Replaying up to time 1 gives the state with echo-v2 still there.
    std::fs::write(manifests.join("app.yaml"), &app).expect("write");
    let at_1 = dir.join("at-1.json");
    let report = replay(&log, &at_1, &["--until", "1"]);
    assert_eq!(report["last_time"], 1, "{report}");
    assert_eq!(
        read(&at_1),
        ok(&["translate", s(&manifests), "--output", "json"])
    );
}

#[test]
fn a_scale_run_replays_to_its_generated_state_with_any_worker_count() {
    let dir = scratch("replay-scale");
    let log = dir.join("scale.log");
    let scale = [
        "scale",
        "--preset",
        "small",
        "--routes",
        "300",
        "--services",
        "300",
        "--changes",
        "5",
        "--batch",
        "200",
        "--batch-rounds",
        "2",
    ];
    let mut args = scale.to_vec();
    args.extend(["--record", s(&log)]);
    ok(&args);
    let manifests = dir.join("manifests");
    let mut args = scale.to_vec();
    args.extend(["--write-manifests", s(&manifests)]);
    ok(&args);

    let inspect = ok(&["log", "inspect", s(&log)]);
    let times = inspect
        .lines()
        .find_map(|l| l.strip_prefix("logical times: 0..="))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no time range in {inspect}"));
    assert!(
        times > 20,
        "a load, single changes, batches and a teardown: {inspect}"
    );
    let before_teardown = (times - 1).to_string();

    let one = dir.join("one.json");
    let r1 = replay(&log, &one, &["--until", &before_teardown]);
    let translated = ok(&["translate", s(&manifests), "--output", "json"]);
    assert!(
        read(&one) == translated,
        "the state before the teardown is the generated one (churn undoes itself)"
    );
    let two = dir.join("two.json");
    let r2 = replay(&log, &two, &["--until", &before_teardown, "--workers", "2"]);
    let again = dir.join("again.json");
    let r3 = replay(&log, &again, &["--until", &before_teardown]);
    for r in [&r2, &r3] {
        assert_eq!(r["xds_digest"], r1["xds_digest"]);
        assert_eq!(r["status_digest"], r1["status_digest"]);
        assert_eq!(r["events"], r1["events"]);
    }
    assert_eq!(read(&two), read(&one));
    assert_eq!(read(&again), read(&one));
    // Batched: 7 times per step, the same final state.
    let batched = dir.join("batched.json");
    let rb = replay(
        &log,
        &batched,
        &["--until", &before_teardown, "--batch", "7"],
    );
    assert_eq!(rb["xds_digest"], r1["xds_digest"]);
    assert_eq!(rb["status_digest"], r1["status_digest"]);
    assert_eq!(rb["logical_times"], r1["logical_times"]);
    assert_eq!(rb["events"], r1["events"]);
    assert_eq!(read(&batched), read(&one));
    let steps = |r: &Value| r["steps"].as_u64().unwrap_or_default();
    let n = r1["logical_times"].as_u64().unwrap_or_default();
    assert!(n > 7, "{r1}");
    assert_eq!(steps(&r1), n, "one step per logical time: {r1}");
    assert_eq!(steps(&rb), n.div_ceil(7), "{rb}");
    assert!(r1["gateways"].as_u64().unwrap_or_default() > 0, "{r1}");

    // The whole log ends torn down: nothing served.
    let all = replay(&log, &dir.join("all.json"), &[]);
    assert_eq!(all["gateways"], 0, "{all}");
    assert_ne!(all["xds_digest"], r1["xds_digest"]);

    // A snapshot at time T (in the churn), plus the log after T, gives what the full
    // replay gives: up to the teardown, and to the end.
    let t = (times / 2).to_string();
    let snapshot = dir.join("mid.sluice");
    let mid = replay(
        &log,
        &dir.join("mid.json"),
        &["--until", &t, "--snapshot-out", s(&snapshot)],
    );
    let resumed = dir.join("resumed.json");
    let r = replay(
        &log,
        &resumed,
        &["--from-snapshot", s(&snapshot), "--until", &before_teardown],
    );
    assert_eq!(r["xds_digest"], r1["xds_digest"], "{r}");
    assert_eq!(r["status_digest"], r1["status_digest"], "{r}");
    assert_eq!(read(&resumed), read(&one));
    let after = |r: &Value| r["events"].as_u64().unwrap_or_default();
    assert_eq!(after(&mid) + after(&r), after(&r1), "{mid} {r}");
    assert!(after(&mid) > 0 && after(&r) > 0, "{mid} {r}");
    let to_end = replay(
        &log,
        &dir.join("resumed-all.json"),
        &["--from-snapshot", s(&snapshot), "--workers", "2"],
    );
    assert_eq!(to_end["xds_digest"], all["xds_digest"]);
    assert_eq!(to_end["status_digest"], all["status_digest"]);

    // A log that ends before the snapshot's position is refused (exit 2).
    let other = dir.join("other.log");
    std::fs::write(&other, &std::fs::read(&log).expect("log")[..1000]).expect("write");
    let out = common::sluice(&["replay", s(&other), "--from-snapshot", s(&snapshot)]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn a_damaged_log_replays_up_to_the_damage_and_names_its_offset() {
    let dir = scratch("replay-damaged");
    let log = dir.join("basic.log");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/basic");
    ok(&["log", "from-manifests", s(&example), "--out", s(&log)]);
    let bytes = std::fs::read(&log).expect("read");
    let dump = dir.join("whole.json");
    let whole = replay(&log, &dump, &[]);
    assert_eq!(whole["events"], 8, "{whole}");
    assert_eq!(
        read(&dump),
        ok(&["translate", s(&example), "--output", "json"])
    );

    // A crash-cut last frame: reported, ignored, the rest replayed.
    std::fs::write(&log, &bytes[..bytes.len() - 5]).expect("cut");
    let cut = replay(&log, &dir.join("cut.json"), &[]);
    assert_eq!(cut["events"], 7, "{cut}");
    assert!(cut["truncated_at"].as_u64().is_some(), "{cut}");

    // A flipped byte in the second frame: exit 2, naming the frame's offset.
    let first_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let second = 12 + 8 + first_len;
    let mut flipped = bytes.clone();
    flipped[second + 20] ^= 0x40;
    std::fs::write(&log, &flipped).expect("flip");
    let out = sluice(&["replay", s(&log)]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("byte {second}: checksum")), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("events: 1\n"),
        "the frame before the damage was replayed: {out:?}"
    );
}

#[test]
fn a_replay_serves_its_state_to_a_real_envoy() {
    let dir = scratch("replay-envoy");
    let envoy = processes::envoy_binary(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("envoy");
    let (_backend, port) = demo_backend("echo-replayed", &dir.join("backend.log"));
    let offset = processes::free_port().expect("port") - 80;
    let manifests = common::echo_app("replay", "app", "replayed.example", port);
    std::fs::write(dir.join("app.yaml"), manifests).expect("write");
    let log = dir.join("app.log");
    ok(&[
        "log",
        "from-manifests",
        s(&dir.join("app.yaml")),
        "--out",
        s(&log),
    ]);

    let xds = processes::free_port().expect("port");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.args(["replay", s(&log), "--xds", &format!("127.0.0.1:{xds}")]);
    command.args([
        "--listen-address",
        "127.0.0.1",
        "--port-offset",
        &offset.to_string(),
    ]);
    let mut replay =
        processes::ChildGuard::spawn("sluice replay", command, &dir.join("replay.log"))
            .expect("start replay");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], xds));
    processes::wait_for_port(addr, Duration::from_secs(30), &mut replay).expect("ADS");
    let gateway = processes::GatewayKey {
        namespace: "replay".into(),
        name: "gw".into(),
    };
    let bootstrap = processes::bootstrap(&gateway, "replay", xds, processes::Ads::Delta);
    let _envoy = processes::start_envoy(&envoy, &dir, "gw", &bootstrap).expect("envoy");
    let mut last = String::new();
    wait_for("Envoy to route by the replayed state", || {
        last = get(80 + offset, "replayed.example", "/replayed");
        last.starts_with("HTTP/1.1 200") && last.contains("echo-replayed answered GET /replayed")
    });
    assert!(get(80 + offset, "other.example", "/replayed").starts_with("HTTP/1.1 404"));
}

#[test]
fn speed_paces_by_the_recorded_wall_clock() {
    let dir = scratch("replay-speed");
    let log = dir.join("paced.log");
    let mut writer = sluice_eventlog::Writer::append(&log).expect("log");
    for (time, wall_ms) in [(0u64, 1_000u64), (1, 1_400), (2, 1_800)] {
        writer
            .write(&sluice_eventlog::Event {
                time,
                wall_micros: wall_ms * 1_000,
                op: sluice_eventlog::Op::Apply,
                api_version: "v1".into(),
                kind: "Namespace".into(),
                namespace: String::new(),
                name: format!("ns-{time}"),
                object: format!(
                    r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"ns-{time}"}}}}"#
                )
                .into_bytes(),
            })
            .expect("write");
    }
    drop(writer);
    // 800 ms recorded: at least 800 ms at speed 1, at least 200 ms at speed 4 (upper
    // bounds would measure the machine, not the pacing).
    for (speed, at_least) in [("1", 800.0), ("4", 200.0)] {
        let report = replay(
            &log,
            &dir.join(format!("speed-{speed}.json")),
            &["--speed", speed],
        );
        let wall = report["wall_ms"].as_f64().unwrap_or_default();
        assert!(wall >= at_least, "--speed {speed}: {wall} ms");
        assert_eq!(report["objects"], 3, "{report}");
    }
}
