//! Helpers the end-to-end tests share: running the `sluice` binary, scratch
//! directories, waiting, a real backend and plain HTTP requests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

#[path = "../conformance/processes.rs"]
pub mod processes;

pub fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("SLUICE_LOG", "warn")
        .output()
        .expect("run sluice")
}

pub fn ok(args: &[&str]) -> String {
    let out = sluice(args);
    assert!(
        out.status.success(),
        "sluice {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A backend started with `sluice demo-backends NAME=127.0.0.1:0`, and its port.
pub fn demo_backend(name: &str, log: &Path) -> (processes::ChildGuard, u16) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.args(["demo-backends", "--backend", &format!("{name}=127.0.0.1:0")]);
    let guard = processes::ChildGuard::spawn("demo-backends", command, log).expect("start");
    let mut port = None;
    wait_for("the backend's address", || {
        port = read(log)
            .lines()
            .find_map(|l| l.split_once(" listening on "))
            .and_then(|(_, addr)| addr.parse::<std::net::SocketAddr>().ok())
            .map(|a| a.port());
        port.is_some()
    });
    (guard, port.unwrap_or_default())
}

/// `GET path` with `Host: host` on 127.0.0.1:`port`: the whole response, or the error.
pub fn get(port: u16, host: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return "connection refused".into();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    let mut text = String::new();
    match stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.read_to_string(&mut text))
    {
        Ok(_) => text,
        Err(e) => e.to_string(),
    }
}

/// An Envoy counter from its admin `/stats` (0 when absent).
pub fn envoy_stat(admin: std::net::SocketAddr, name: &str) -> u64 {
    let text = get(admin.port(), "admin", &format!("/stats?filter=^{name}$"));
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A GatewayClass, Gateway `gw` (HTTP on port 80) in `namespace`, Service `echo` with
/// one endpoint at 127.0.0.1:`port`, and HTTPRoute `route` for `host` to it.
pub fn echo_app(namespace: &str, route: &str, host: &str, port: u16) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: sluice}}
spec: {{controllerName: sluice.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {namespace}}}
spec:
  gatewayClassName: sluice
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: {namespace}}}
spec: {{ports: [{{port: 80, targetPort: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: echo-1, namespace: {namespace}, labels: {{kubernetes.io/service-name: echo}}}}
addressType: IPv4
endpoints: [{{addresses: [127.0.0.1]}}]
ports: [{{port: {port}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {route}, namespace: {namespace}}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [{host}]
  rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]
"
    )
}
