//! A second, independent xDS client: gRPC's own xDS resolver (Python `grpcio`, channel
//! target `xds:///echo.example.com`) must accept what `sluice serve` sends for a
//! simple route, with no NACK, and reach a real gRPC server through it. gRPC asks
//! for the Listener by name (an API listener), then follows RDS → CDS → EDS by name,
//! and validates each resource by its own rules (gRFC A27), not Envoy's: this checks
//! Sluice against those rules end to end.
//!
//! Needs `python3` with `venv`; installs `grpcio` from PyPI into
//! `<workspace>/target/grpc-venv` once (under a file lock). Everything listens on
//! loopback, and every wait is bounded.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The hostname of the route, and so the gRPC target's authority.
const HOSTNAME: &str = "echo.example.com";
/// How long the client keeps retrying its call.
const CALL_DEADLINE: Duration = Duration::from_secs(20);
/// `grpcio` release checked to work here (see FACTS.md).
const GRPCIO: &str = "grpcio==1.85.0";
/// What the ADS server logs when a client rejects a response.
const NACK_LOG: &str = "rejected configuration (NACK)";
/// What the ADS server logs when a stream ends, cleanly or not (the latter at debug
/// level): it has then handled every request of the stream, NACKs included.
const STREAM_END_LOGS: [&str; 2] = ["proxy disconnected", "ADS stream ends with an error"];
/// `SLUICE_LOG` for the server: info, and debug for the ADS stream's end.
const SLUICE_LOG: &str = "info,sluice_sinks::ads=debug";

/// A child process, killed and reaped on drop (also on panic).
struct Killed {
    name: &'static str,
    child: Child,
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's Python with `grpcio` installed: created once, under a lock, and
/// marked ready only after the install succeeded.
fn grpc_python() -> PathBuf {
    let venv = workspace().join("target/grpc-venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".sluice-ready");
    if ready.exists() {
        return python;
    }
    std::fs::create_dir_all(workspace().join("target")).expect("create target/");
    let lock = File::create(workspace().join("target/grpc-venv.lock")).expect("create lock file");
    lock.lock().expect("lock grpc-venv");
    if !ready.exists() {
        run_setup(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run_setup(Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            GRPCIO,
        ]));
        run_setup(Command::new(&python).args(["-c", "import grpc"]));
        std::fs::write(&ready, GRPCIO).expect("mark grpc-venv ready");
    }
    lock.unlock().expect("unlock grpc-venv");
    python
}

fn run_setup(command: &mut Command) {
    let output = command.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!("cannot run {command:?}: {e} (is python3 with venv installed?)")
    });
    assert!(
        output.status.success(),
        "setting up the gRPC venv failed: {command:?} exited with {}. This test installs {GRPCIO} \
         from PyPI; without network access it cannot run.\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The manifests: our GatewayClass, Gateway `default/grpc` (HTTP, port 80), an
/// HTTPRoute for `HOSTNAME` sending `/` to Service `echo` port 50051, whose one
/// endpoint is the gRPC server on `127.0.0.1:backend_port`.
fn manifests(backend_port: u16) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: sluice}}
spec: {{controllerName: sluice.dev/gateway-controller}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: default}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: grpc, namespace: default}}
spec:
  gatewayClassName: sluice
  listeners:
  - {{name: http, port: 80, protocol: HTTP}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: default}}
spec: {{ports: [{{name: grpc, port: 50051, appProtocol: kubernetes.io/h2c}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: echo-1, namespace: default, labels: {{kubernetes.io/service-name: echo}}}}
addressType: IPv4
ports: [{{name: grpc, port: {backend_port}, appProtocol: kubernetes.io/h2c}}]
endpoints: [{{addresses: [127.0.0.1]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: echo, namespace: default}}
spec:
  parentRefs: [{{name: grpc}}]
  hostnames: [{HOSTNAME}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /}}}}]
    backendRefs: [{{name: echo, port: 50051}}]
"#
    )
}

/// gRPC's bootstrap: Sluice's ADS server, and a node naming Gateway `default/grpc`.
fn bootstrap(xds_port: u16) -> serde_json::Value {
    serde_json::json!({
        "xds_servers": [{
            "server_uri": format!("127.0.0.1:{xds_port}"),
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"],
        }],
        "node": {
            "id": "grpc-xds-test",
            "cluster": "default/grpc",
            "metadata": {"sluice.dev/gateway": "default/grpc"},
        },
    })
}

/// The Python side: a gRPC server, then (on `GO`) a client through `xds:///`.
struct Echo {
    process: Killed,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
}

impl Echo {
    fn start(python: &Path, dir: &Path, bootstrap: &Path) -> Echo {
        let log = dir.join("grpc-client.log");
        let mut command = Command::new(python);
        command
            .arg(workspace().join("tests/grpc_xds/echo.py"))
            .arg(HOSTNAME)
            .arg(CALL_DEADLINE.as_secs().to_string())
            .env("GRPC_XDS_BOOTSTRAP", bootstrap)
            // Shown on failure: what gRPC's xDS client received and why it balked.
            .env("GRPC_TRACE", "xds_client,xds_resolver")
            .env("GRPC_VERBOSITY", "INFO")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("create client log"));
        // Loopback only: no proxy may sit between the client and Sluice or the server.
        for var in [
            "http_proxy",
            "https_proxy",
            "grpc_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
        ] {
            command.env_remove(var);
        }
        let mut child = command.spawn().expect("start echo.py");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Echo {
            process: Killed {
                name: "echo.py",
                child,
            },
            stdin,
            lines,
            log,
        }
    }

    /// The next line of the script's stdout within `wait`.
    fn line(&self, wait: Duration) -> String {
        self.lines.recv_timeout(wait).unwrap_or_else(|e| {
            panic!(
                "no line from echo.py within {wait:?} ({e});\nits log:\n{}",
                tail(&self.log)
            )
        })
    }
}

fn start_sluice(manifests: &Path, xds_port: u16, log: &Path) -> Killed {
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--from"])
        .arg(manifests)
        .args(["--xds", &format!("127.0.0.1:{xds_port}")])
        .args(["--listen-address", "127.0.0.1"])
        .env("SLUICE_LOG", SLUICE_LOG)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log).expect("create sluice log"))
        .spawn()
        .expect("start sluice serve");
    Killed {
        name: "sluice",
        child,
    }
}

/// Polls until `addr` accepts a connection; panics after `wait` or if `process` exits.
fn wait_for_port(addr: SocketAddr, wait: Duration, process: &mut Killed, log: &Path) {
    let start = Instant::now();
    while start.elapsed() < wait {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            panic!(
                "{} exited ({status}) before listening on {addr}:\n{}",
                process.name,
                tail(log)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{} did not listen on {addr} within {wait:?}:\n{}",
        process.name,
        tail(log)
    );
}

/// The last lines of a log, for failure messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Starts echo.py (a gRPC backend and the xDS client) and `sluice serve` on
/// manifests pointing at the backend; returns both once sluice listens.
fn start_backend_and_sluice(dir: &Path) -> (Echo, Killed, PathBuf) {
    let python = grpc_python();
    let manifest_dir = dir.join("manifests");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(&manifest_dir).expect("create the manifest dir");
    let xds_port = free_port();
    let bootstrap_file = dir.join("bootstrap.json");
    std::fs::write(&bootstrap_file, bootstrap(xds_port).to_string()).expect("write bootstrap");

    // The backend first: the EndpointSlice names its port.
    let echo = Echo::start(&python, dir, &bootstrap_file);
    let first = echo.line(Duration::from_secs(30));
    let backend_port: u16 = first
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("expected `PORT <n>` from echo.py, got {first:?}"));
    std::fs::write(manifest_dir.join("grpc.yaml"), manifests(backend_port))
        .expect("write manifests");

    let sluice_log = dir.join("sluice.log");
    let mut sluice = start_sluice(&manifest_dir, xds_port, &sluice_log);
    let xds: SocketAddr = ([127, 0, 0, 1], xds_port).into();
    wait_for_port(xds, Duration::from_secs(30), &mut sluice, &sluice_log);
    (echo, sluice, sluice_log)
}

/// The sluice log once it records the end of the client's ADS stream (polled until
/// `wait`): from then on, every NACK the client sent is in it.
fn log_after_stream_end(log: &Path, wait: Duration) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if STREAM_END_LOGS.iter().any(|end| text.contains(end)) {
            return text;
        }
        assert!(
            start.elapsed() < wait,
            "sluice never logged the end of the client's ADS stream within {wait:?}:\n{}",
            tail(log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn grpc_xds_client_accepts_sluice_resources_and_reaches_the_backend() {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("grpc_xds-{}", std::process::id()));
    let (mut echo, sluice, sluice_log) = start_backend_and_sluice(&dir);
    writeln!(echo.stdin, "GO").expect("tell echo.py to call");
    echo.stdin.flush().expect("flush echo.py stdin");
    let result = echo.line(CALL_DEADLINE + Duration::from_secs(15));
    // The client exits after its call, which ends its ADS stream.
    wait_or_kill(&mut echo.process.child, Duration::from_secs(10));
    let sluice_text = log_after_stream_end(&sluice_log, Duration::from_secs(10));
    drop(sluice);

    assert_eq!(
        result,
        "OK pong:hello",
        "the gRPC call through xds:///{HOSTNAME} failed.\n--- sluice:\n{}\n--- gRPC client:\n{}",
        tail(&sluice_log),
        tail(&echo.log),
    );
    assert!(
        sluice_text.contains("proxy connected"),
        "the gRPC client never opened an ADS stream:\n{sluice_text}"
    );
    let nacks: Vec<&str> = sluice_text
        .lines()
        .filter(|l| l.contains(NACK_LOG))
        .collect();
    assert!(
        nacks.is_empty(),
        "gRPC rejected resources:\n{}",
        nacks.join("\n")
    );
    // Kept on failure, for its logs.
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits up to `wait` for `child` to exit on its own, then kills it.
fn wait_or_kill(child: &mut Child, wait: Duration) {
    let start = Instant::now();
    while start.elapsed() < wait {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
