//! Controller mode end to end, against a real API server (`../shared/kube-test-server`,
//! built once and cached), a real Envoy and real HTTP backends on loopback: objects are
//! applied with kubectl; Envoy must follow and status must be written back, read back
//! from the API server, and survive leader failover and an API server restart.
//!
//! One scenario, step by step (each step prints one line; the first failure stops it
//! with what was last seen). Logs: `target/kube-e2e/`.

#[allow(dead_code)]
#[path = "conformance/processes.rs"]
mod processes;
#[path = "kube/server.rs"]
mod server;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;

use processes::{Ads, ChildGuard, GatewayKey};
use server::Server;

const CONTROLLER: &str = "sluice.dev/gateway-controller";
const DEADLINE: Duration = Duration::from_secs(30);
/// The status Lease's duration for the test's replicas (failover takes about this long).
const LEASE_SECS: u64 = 3;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() -> ExitCode {
    let started = Instant::now();
    match run() {
        Ok(()) => {
            println!("kube e2e: passed in {:.0?}", started.elapsed());
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("FAIL kube e2e: {e:#}");
            println!("  logs: {}", logs().display());
            ExitCode::FAILURE
        }
    }
}

/// Replica 1's event log.
fn recording() -> PathBuf {
    logs().join("sluice-1.events")
}

fn logs() -> PathBuf {
    workspace().join("target/kube-e2e")
}

/// Polls `check` until it returns `Ok(Some(_))`; on timeout, the last error or value.
fn eventually<T>(
    what: &str,
    check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    eventually_within(what, DEADLINE, Duration::from_millis(50), check)
}

fn eventually_within<T>(
    what: &str,
    deadline: Duration,
    every: Duration,
    mut check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    let mut last = String::from("nothing yet");
    while start.elapsed() < deadline {
        match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => last = "not yet".into(),
            Err(e) => last = format!("{e:#}"),
        }
        std::thread::sleep(every);
    }
    bail!("{what}: not within {deadline:?} (last: {last})")
}

fn step(name: &str, started: Instant) {
    println!("ok   {name} ({:.1?})", started.elapsed());
}

/// An HTTP backend that answers every request with its name.
fn backend(name: &'static str) -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream, name));
        }
    });
    Ok(port)
}

fn answer(mut stream: TcpStream, name: &str) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{name}",
        name.len()
    );
    let _ = stream.write_all(reply.as_bytes());
}

/// `GET path` through Envoy: status code and body.
fn get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: app.example\r\nconnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("not an HTTP response: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// Waits until `GET /` through Envoy answers `want` (a backend name, or "404").
fn routes_to(port: u16, want: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    eventually(&format!("Envoy answering {want}"), || {
        let (code, body) = get(port, "/")?;
        let seen = if code == 200 { body } else { code.to_string() };
        if seen == want {
            Ok(Some(start.elapsed()))
        } else {
            bail!("answered {seen}")
        }
    })
}

/// The `(status, reason)` of condition `type_` in `conditions`.
fn condition(conditions: &Value, type_: &str) -> Option<(String, String)> {
    let c = conditions.as_array()?.iter().find(|c| c["type"] == type_)?;
    Some((
        c["status"].as_str()?.to_owned(),
        c["reason"].as_str()?.to_owned(),
    ))
}

/// Our entry in a route's `status.parents`.
fn our_parent(route: &Value) -> Option<&Value> {
    route["status"]["parents"]
        .as_array()?
        .iter()
        .find(|p| p["controllerName"] == CONTROLLER)
}

struct World {
    server: Server,
    ns: String,
    envoy_port: u16,
    xds: [u16; 3],
    admin: [u16; 3],
    /// Replica 0 is the cluster admin; replica 1 acts as deploy/'s ServiceAccount;
    /// replica 2 (the last step's) is the cluster admin again.
    kubeconfigs: [PathBuf; 3],
    /// The namespaces each replica watches.
    namespaces: [Vec<String>; 3],
    port_offset: u16,
    sluice: Vec<Option<ChildGuard>>,
}

impl World {
    /// Starts replica `i` of sluice (`--kube`, only the test's namespace).
    fn start_sluice(&mut self, i: usize) -> anyhow::Result<()> {
        let binary =
            std::env::var_os("SLUICE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_sluice").into());
        let mut command = Command::new(binary);
        command.args(["serve", "--kube"]);
        for ns in &self.namespaces[i] {
            command.args(["--namespace", ns]);
        }
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfigs[i])
            .args(["--xds", &format!("127.0.0.1:{}", self.xds[i])])
            .args(["--admin", &format!("127.0.0.1:{}", self.admin[i])])
            .args(["--listen-address", "127.0.0.1"])
            .args(["--port-offset", &self.port_offset.to_string()])
            .args(["--identity", &format!("replica-{i}")])
            .args([
                "--lease-namespace",
                "sluice-system",
                "--lease-name",
                &self.ns,
            ])
            .args(["--lease-duration-secs", &LEASE_SECS.to_string()])
            .env("SLUICE_LOG", "info,kube=warn");
        if i == 1 {
            // Replica 1 records; a restart appends to the same log.
            command.arg("--record").arg(recording());
        }
        let log = logs().join(format!("sluice-{i}.log"));
        let mut guard = ChildGuard::spawn(&format!("sluice replica {i}"), command, &log)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.xds[i]));
        processes::wait_for_port(addr, Duration::from_secs(60), &mut guard)?;
        self.sluice[i] = Some(guard);
        Ok(())
    }

    fn route(&self) -> anyhow::Result<Value> {
        self.server
            .get("httproute", &self.ns, "app")?
            .context("HTTPRoute app is gone")
    }

    fn gateway(&self) -> anyhow::Result<Value> {
        self.server
            .get("gateway", &self.ns, "gw")?
            .context("Gateway gw is gone")
    }

    fn moving_status(&self) -> anyhow::Result<Value> {
        let g = self.server.get("gateway", &self.ns, "moving")?;
        Ok(g.context("Gateway moving is gone")?["status"].clone())
    }

    fn moving_accepted_by_us(&self) -> anyhow::Result<()> {
        eventually("our status on Gateway moving", || {
            let status = self.moving_status()?;
            match condition(&status["conditions"], "Accepted") {
                Some((s, r)) if s == "True" && r == "Accepted" => Ok(Some(())),
                other => bail!("Accepted {other:?}"),
            }
        })
    }

    /// Waits until Gateway `moving` has no decided condition and no listener status
    /// (the CRD's defaults are `Unknown`): none of what we wrote.
    fn moving_has_no_status_of_ours(&self) -> anyhow::Result<()> {
        eventually("our status removed from a Gateway no longer ours", || {
            let status = self.moving_status()?;
            let decided = (status["conditions"].as_array().into_iter().flatten())
                .filter(|c| c["status"] != "Unknown")
                .count();
            let listeners = status["listeners"].as_array().map_or(0, Vec::len);
            match (decided, listeners) {
                (0, 0) => Ok(Some(())),
                _ => bail!("still has our status: {status}"),
            }
        })
    }

    /// Waits until our route parent entry has `Accepted` = `want` (status, reason) for
    /// the route's current generation; the route.
    fn route_accepted(&self, want: (&str, &str)) -> anyhow::Result<Value> {
        eventually(&format!("route status Accepted={want:?}"), || {
            let route = self.route()?;
            let Some(parent) = our_parent(&route) else {
                bail!("no parent entry of ours")
            };
            let accepted = condition(&parent["conditions"], "Accepted");
            let generation = route["metadata"]["generation"].clone();
            let observed = parent["conditions"][0]["observedGeneration"].clone();
            match accepted {
                Some((s, r)) if s == want.0 && r == want.1 && observed == generation => {
                    Ok(Some(route))
                }
                other => bail!("Accepted {other:?}, observedGeneration {observed} of {generation}"),
            }
        })
    }
}

fn manifests(ns: &str, class: &str, v1: u16, v2: u16) -> String {
    let service = |name: &str, port: u16| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\n\
             spec: {{ports: [{{name: http, port: 8080, protocol: TCP}}]}}\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: {name}-1, namespace: {ns}, labels: {{kubernetes.io/service-name: {name}}}}}\n\
             addressType: IPv4\nports: [{{name: http, port: {port}, protocol: TCP}}]\n\
             endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]\n---\n"
        )
    };
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{e2e: sluice}}}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: {class}}}\n\
         spec: {{controllerName: {CONTROLLER}}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: {ns}}}\n\
         spec: {{gatewayClassName: {class}, listeners: [{{name: http, port: 80, protocol: HTTP}}]}}\n---\n\
         {}{}",
        service("echo-v1", v1),
        service("echo-v2", v2)
    )
}

/// Gateway `moving` of `class` (the class steps move it between ours and another
/// controller's).
fn moving(ns: &str, class: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: moving, namespace: {ns}}}\n\
         spec: {{gatewayClassName: {class}, listeners: [{{name: http, port: 81, protocol: HTTP}}]}}\n"
    )
}

fn route_yaml(ns: &str, backend: &str, gateway: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: app, namespace: {ns}}}\n\
         spec: {{parentRefs: [{{name: {gateway}}}], rules: [{{backendRefs: [{{name: {backend}, port: 8080}}]}}]}}\n"
    )
}

/// deploy/'s namespace, RBAC and GatewayClass applied for real (replica 1 runs with
/// exactly that RBAC); the Deployment, Service and example through a server-side dry run.
fn deploy_manifests(server: &Server) -> anyhow::Result<()> {
    let deploy = workspace().join("deploy");
    for file in ["00-namespace.yaml", "10-rbac.yaml", "30-gatewayclass.yaml"] {
        let text = std::fs::read_to_string(deploy.join(file))?;
        server
            .apply(&text)
            .with_context(|| format!("deploy/{file}"))?;
    }
    // Least privilege: what the controller does, and nothing it does not.
    let sa = "--as=system:serviceaccount:sluice-system:sluice";
    for (verb, resource, want) in [
        (
            "patch",
            "httproutes.gateway.networking.k8s.io --subresource=status",
            true,
        ),
        ("watch", "endpointslices.discovery.k8s.io", true),
        ("update", "leases.coordination.k8s.io", true),
        ("patch", "httproutes.gateway.networking.k8s.io", false),
        ("delete", "gateways.gateway.networking.k8s.io", false),
        ("watch", "secrets", true),
        ("get", "secrets", false),
        ("update", "services", false),
    ] {
        let ns = "--namespace=sluice-system";
        let mut args = vec!["auth", "can-i", verb, sa, ns];
        args.extend(resource.split(' '));
        // `can-i` answers "no" with exit status 1 and nothing on stderr.
        let answer = server
            .kubectl(&args, None)
            .unwrap_or_else(|e| e.to_string());
        let allowed = answer.trim() == "yes";
        anyhow::ensure!(allowed == want, "can-i {verb} {resource}: {answer}");
    }
    for file in ["20-controller.yaml", "example/gateway.yaml"] {
        let path = deploy.join(file);
        let path = path.to_str().context("path")?;
        server
            .kubectl(
                &["apply", "--server-side", "--dry-run=server", "-f", path],
                None,
            )
            .with_context(|| format!("deploy/{file}"))?;
    }
    Ok(())
}

/// The admin kubeconfig, impersonating deploy/'s ServiceAccount: a replica run with
/// it has exactly the access deploy/10-rbac.yaml grants.
fn service_account_kubeconfig(server: &Server) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(&server.kubeconfig)?;
    let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)?;
    let users = config["users"]
        .as_sequence_mut()
        .context("kubeconfig users")?;
    for user in users {
        let user = &mut user["user"];
        user["as"] = "system:serviceaccount:sluice-system:sluice".into();
        user["as-groups"] = serde_yaml_ng::to_value([
            "system:serviceaccounts",
            "system:serviceaccounts:sluice-system",
            "system:authenticated",
        ])?;
    }
    let path = logs().join("kubeconfig-serviceaccount");
    std::fs::write(&path, serde_yaml_ng::to_string(&config)?)?;
    Ok(path)
}

fn run() -> anyhow::Result<()> {
    std::fs::create_dir_all(logs())?;
    let _ = std::fs::remove_file(recording());
    let t = Instant::now();
    let server = Server::ensure(&workspace())?;
    step("API server built and started", t);
    let envoy = processes::envoy_binary(&workspace())?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    // Fresh names each run: without a controller-manager a namespace never finishes deleting.
    let (ns, class) = (format!("e2e-{stamp}"), format!("sluice-e2e-{stamp}"));
    let (v1, v2) = (backend("echo-v1")?, backend("echo-v2")?);
    let port_offset = processes::free_port()? - 80;
    let kubeconfigs = [
        server.kubeconfig.clone(),
        service_account_kubeconfig(&server)?,
        server.kubeconfig.clone(),
    ];
    let namespaces = [
        vec![ns.clone()],
        vec![ns.clone()],
        vec![ns.clone(), format!("{ns}-other")],
    ];
    let mut world = World {
        server,
        ns: ns.clone(),
        envoy_port: 80 + port_offset,
        xds: [
            processes::free_port()?,
            processes::free_port()?,
            processes::free_port()?,
        ],
        admin: [
            processes::free_port()?,
            processes::free_port()?,
            processes::free_port()?,
        ],
        kubeconfigs,
        namespaces,
        port_offset,
        sluice: vec![None, None, None],
    };
    let t = Instant::now();
    world.server.apply(&manifests(&ns, &class, v1, v2))?;
    deploy_manifests(&world.server)?;
    step(
        "deploy/ applies (RBAC, GatewayClass) and passes a server-side dry run",
        t,
    );
    let t = Instant::now();
    world.start_sluice(0)?;
    world.start_sluice(1)?;
    step("two replicas listed and serve xDS", t);

    let gateway = GatewayKey {
        namespace: ns.clone(),
        name: "gw".into(),
    };
    let bootstrap = processes::bootstrap(&gateway, "e2e", world.xds[1], Ads::Delta);
    let _envoy = processes::start_envoy(&envoy, &logs(), "gw", &bootstrap)?;
    scenario(&mut world)
}

fn scenario(world: &mut World) -> anyhow::Result<()> {
    first_route(world)?;
    admin_port(world)?;
    foreign_entry(world)?;
    gateway_side_flip(world)?;
    fixed_error(world)?;
    detach(world)?;
    many_routes(world)?;
    failover(world)?;
    api_server_restart(world)?;
    deleted_route(world)?;
    replayed(world)?;
    crd_installed_later(world)
}

/// Replica 1's recorded log (both of its runs, an API server restart, a relist)
/// replays to exactly the xDS replica 1 serves now.
fn replayed(world: &World) -> anyhow::Result<()> {
    let t = Instant::now();
    let gateway = format!("{}/gw", world.ns);
    let (code, live) = get(world.admin[1], &format!("/debug/xds?gateway={gateway}"))?;
    anyhow::ensure!(code == 200, "/debug/xds: {code} {live}");
    let live: Value = serde_json::from_str(&live)?;
    let dump = logs().join("replayed.json");
    let binary =
        std::env::var_os("SLUICE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_sluice").into());
    let out = Command::new(binary)
        .arg("replay")
        .arg(recording())
        .arg("--dump")
        .arg(&dump)
        .args(["--listen-address", "127.0.0.1"])
        .args(["--port-offset", &world.port_offset.to_string()])
        .env("SLUICE_LOG", "warn")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "sluice replay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed: Value = serde_json::from_str(&std::fs::read_to_string(&dump)?)?;
    let ours = replayed["gateways"]
        .as_array()
        .and_then(|gws| {
            gws.iter()
                .find(|g| g["namespace"] == world.ns.as_str() && g["name"] == "gw")
        })
        .context("the replayed state has no Gateway gw")?;
    anyhow::ensure!(
        ours["xds"] == live["xds"],
        "replayed xDS differs from what replica 1 serves:\n{}\nvs\n{}",
        ours["xds"],
        live["xds"]
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    let events = summary.lines().next().unwrap_or_default().to_owned();
    step(
        &format!("replica 1's event log replays to the xDS it serves ({events})"),
        t,
    );
    Ok(())
}

/// A new route reaches Envoy; Gateway and route status are written.
fn first_route(world: &World) -> anyhow::Result<()> {
    let t = Instant::now();
    world
        .server
        .apply(&route_yaml(&world.ns, "echo-v1", "gw"))?;
    let took = routes_to(world.envoy_port, "echo-v1")?;
    step(
        &format!(
            "a new HTTPRoute reaches Envoy ({} ms after apply)",
            took.as_millis()
        ),
        t,
    );

    let t = Instant::now();
    let route = world.route_accepted(("True", "Accepted"))?;
    let parent = our_parent(&route).context("our entry")?;
    anyhow::ensure!(
        condition(&parent["conditions"], "ResolvedRefs")
            == Some(("True".into(), "ResolvedRefs".into())),
        "ResolvedRefs: {parent}"
    );
    eventually("Gateway status", || {
        let gw = world.gateway()?;
        let status = &gw["status"];
        let ok = condition(&status["conditions"], "Accepted").is_some_and(|c| c.0 == "True")
            && condition(&status["conditions"], "Programmed").is_some_and(|c| c.0 == "True")
            && status["listeners"][0]["attachedRoutes"] == 1;
        if ok { Ok(Some(())) } else { bail!("{status}") }
    })?;
    eventually("GatewayClass status", || {
        let gw = world.gateway()?;
        let class = gw["spec"]["gatewayClassName"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let class = world
            .server
            .get("gatewayclass", "default", &class)?
            .context("no class")?;
        match condition(&class["status"]["conditions"], "Accepted") {
            Some((s, _)) if s == "True" => Ok(Some(())),
            other => bail!("GatewayClass Accepted {other:?}"),
        }
    })?;
    step(
        "GatewayClass, Gateway and route status written (read back from the API server)",
        t,
    );
    Ok(())
}

/// Another controller's entry on the same route survives our writes.
fn foreign_entry(world: &World) -> anyhow::Result<()> {
    let t = Instant::now();
    let mut foreign = world.route()?;
    let theirs = serde_json::json!({
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": world.ns, "name": "theirs"},
        "controllerName": "example.com/other",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                        "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    });
    foreign["status"]["parents"]
        .as_array_mut()
        .context("parents")?
        .insert(0, theirs.clone());
    world.server.kubectl(
        &["replace", "--subresource=status", "-f", "-"],
        Some(&serde_json::to_string(&foreign)?),
    )?;
    world
        .server
        .apply(&route_yaml(&world.ns, "echo-v2", "gw"))?;
    routes_to(world.envoy_port, "echo-v2")?;
    let route = world.route_accepted(("True", "Accepted"))?;
    let parents = route["status"]["parents"].as_array().context("parents")?;
    anyhow::ensure!(
        parents.contains(&theirs),
        "the other controller's entry was changed: {parents:?}"
    );
    step(
        "a backend change reaches Envoy; another controller's status entry is kept",
        t,
    );
    Ok(())
}

/// A deleted route leaves Envoy and the Gateway's attachedRoutes.
fn deleted_route(world: &World) -> anyhow::Result<()> {
    let t = Instant::now();
    world
        .server
        .kubectl(&["delete", "httproute", "-n", &world.ns, "app"], None)?;
    routes_to(world.envoy_port, "404")?;
    eventually("attachedRoutes 0", || {
        let n = world.gateway()?["status"]["listeners"][0]["attachedRoutes"].clone();
        if n == 0 {
            Ok(Some(()))
        } else {
            bail!("attachedRoutes {n}")
        }
    })?;
    step(
        "a deleted route leaves Envoy and the Gateway's attachedRoutes",
        t,
    );
    Ok(())
}

/// A Gateway-side change that flips the route's acceptance is written to the route,
/// and so is the flip back (with a new transition time).
fn gateway_side_flip(world: &World) -> anyhow::Result<()> {
    let t = Instant::now();
    let ns = &world.ns;
    let before = world.route_accepted(("True", "Accepted"))?;
    let ltt = |r: &Value| our_parent(r).map(|p| p["conditions"].clone());
    let gateway = world.gateway()?;
    let class = gateway["spec"]["gatewayClassName"]
        .as_str()
        .unwrap_or_default();
    let selector = |label: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: {ns}}}\n\
             spec: {{gatewayClassName: {class}, listeners: [{{name: http, port: 80, protocol: HTTP, \
             allowedRoutes: {{namespaces: {{from: Selector, selector: {{matchLabels: {{e2e: {label}}}}}}}}}}}]}}\n"
        )
    };
    world.server.apply(&selector("nobody"))?;
    world.route_accepted(("False", "NotAllowedByListeners"))?;
    routes_to(world.envoy_port, "404")?;
    world.server.apply(&selector("sluice"))?;
    let after = world.route_accepted(("True", "Accepted"))?;
    routes_to(world.envoy_port, "echo-v2")?;
    anyhow::ensure!(
        ltt(&before) != ltt(&after),
        "lastTransitionTime did not change: {:?}",
        ltt(&after)
    );
    step(
        "a Gateway-side change that flips acceptance is written to the route, and back",
        t,
    );
    Ok(())
}

/// The admin port of the replica Envoy follows: ready, metrics, the config dump.
fn admin_port(world: &World) -> anyhow::Result<()> {
    let t = Instant::now();
    let port = world.admin[1];
    let (code, _) = get(port, "/readyz")?;
    anyhow::ensure!(code == 200, "/readyz: {code}");
    let (code, metrics) = get(port, "/metrics")?;
    anyhow::ensure!(code == 200, "/metrics: {code}");
    let gateway = format!("{}/gw", world.ns);
    for want in [
        "sluice_watch_events_total{kind=\"HTTPRoute\"}".to_string(),
        format!("sluice_xds_responses_total{{gateway=\"{gateway}\",event=\"ack\"}}"),
        "sluice_xds_connected_proxies 1".to_string(),
        "sluice_translation_seconds_bucket".to_string(),
        "sluice_logical_times_total".to_string(),
    ] {
        anyhow::ensure!(
            metrics.contains(&want),
            "/metrics has no {want}:\n{metrics}"
        );
    }
    let (code, dump) = get(port, &format!("/debug/xds?gateway={gateway}"))?;
    anyhow::ensure!(code == 200, "/debug/xds: {code} {dump}");
    let dump: Value = serde_json::from_str(&dump)?;
    let clusters = dump["xds"]["clusters"].to_string();
    anyhow::ensure!(
        clusters.contains("echo-v1"),
        "no echo-v1 cluster in the dump: {clusters}"
    );
    let (code, _) = get(port, "/debug/xds?gateway=nowhere/none")?;
    anyhow::ensure!(code == 404, "an unknown Gateway's dump: {code}");
    step(
        "admin port: ready, metrics (events, ACKs, proxies, latency), config dump",
        t,
    );
    Ok(())
}

/// A route's error, fixed, leaves no trace of the error in its status.
fn fixed_error(world: &World) -> anyhow::Result<()> {
    let t = Instant::now();
    let resolved = |want: (&str, &str)| {
        eventually(&format!("ResolvedRefs={want:?}"), || {
            let route = world.route()?;
            let parent = our_parent(&route).context("no entry of ours")?;
            let got = condition(&parent["conditions"], "ResolvedRefs");
            if got == Some((want.0.into(), want.1.into())) {
                Ok(Some(()))
            } else {
                bail!("{got:?}")
            }
        })
    };
    world
        .server
        .apply(&route_yaml(&world.ns, "missing", "gw"))?;
    resolved(("False", "BackendNotFound"))?;
    world.route_accepted(("True", "Accepted"))?;
    world
        .server
        .apply(&route_yaml(&world.ns, "echo-v2", "gw"))?;
    resolved(("True", "ResolvedRefs"))?;
    routes_to(world.envoy_port, "echo-v2")?;
    step(
        "a route's backend error, fixed, leaves ResolvedRefs=True",
        t,
    );
    Ok(())
}

/// A route moved to another controller's Gateway loses our entry (and keeps theirs);
/// we never write an entry for a parent that is not ours.
fn detach(world: &World) -> anyhow::Result<()> {
    let t = Instant::now();
    let ns = &world.ns;
    world.server.apply(&format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: other-{ns}}}\n\
         spec: {{controllerName: example.com/other}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: theirs, namespace: {ns}}}\n\
         spec: {{gatewayClassName: other-{ns}, listeners: [{{name: http, port: 80, protocol: HTTP}}]}}\n"
    ))?;
    world.server.apply(&route_yaml(ns, "echo-v2", "theirs"))?;
    routes_to(world.envoy_port, "404")?;
    eventually("our entry removed", || {
        let route = world.route()?;
        let parents = route["status"]["parents"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let foreign = parents
            .iter()
            .any(|p| p["controllerName"] == "example.com/other");
        match (our_parent(&route), foreign) {
            (None, true) => Ok(Some(())),
            (ours, _) => bail!("ours {ours:?}, the other controller's entry kept: {foreign}"),
        }
    })?;
    world.server.apply(&route_yaml(ns, "echo-v2", "gw"))?;
    world.route_accepted(("True", "Accepted"))?;
    routes_to(world.envoy_port, "echo-v2")?;
    step(
        "a route moved to another controller's Gateway loses our entry, and gets it back",
        t,
    );

    // A Gateway of ours moved to another controller's class loses the status we wrote.
    let t = Instant::now();
    let ours = world.gateway()?["spec"]["gatewayClassName"]
        .as_str()
        .context("Gateway gw has a class")?
        .to_owned();
    world.server.apply(&moving(ns, &ours))?;
    world.moving_accepted_by_us()?;
    world.server.apply(&moving(ns, &format!("other-{ns}")))?;
    world.moving_has_no_status_of_ours()?;
    world.server.apply(&moving(ns, &ours))?;
    world.moving_accepted_by_us()?;
    step(
        "a Gateway moved to another controller's class loses our status, and gets it back",
        t,
    );
    Ok(())
}

/// 300 routes applied at once all get status (the incumbents' churn bug) and attach.
fn many_routes(world: &World) -> anyhow::Result<()> {
    const N: usize = 300;
    let t = Instant::now();
    let ns = &world.ns;
    let yaml: Vec<String> = (0..N)
        .map(|i| {
            format!(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
                 metadata: {{name: bulk-{i}, namespace: {ns}, labels: {{bulk: 'yes'}}}}\n\
                 spec: {{parentRefs: [{{name: gw}}], rules: [{{matches: [{{path: {{type: PathPrefix, value: /bulk-{i}}}}}], \
                 backendRefs: [{{name: echo-v1, port: 8080}}]}}]}}\n"
            )
        })
        .collect();
    world.server.apply(&yaml.join("---\n"))?;
    let applied = t.elapsed();
    // kubectl lists 300 routes per poll: poll seldom, not to steal the server's CPU.
    let (deadline, every) = (Duration::from_secs(180), Duration::from_secs(1));
    eventually_within("every route's status", deadline, every, || {
        let done = accepted_bulk_routes(world)?;
        if done == N {
            Ok(Some(()))
        } else {
            bail!("{done} of {N} routes have our Accepted entry")
        }
    })?;
    let statuses = t.elapsed();
    let (code, body) = get(world.envoy_port, &format!("/bulk-{}", N - 1))?;
    anyhow::ensure!(
        (code, body.as_str()) == (200, "echo-v1"),
        "/bulk-{}: {code} {body}",
        N - 1
    );
    world.server.kubectl(
        &[
            "delete",
            "httproute",
            "-n",
            ns,
            "-l",
            "bulk=yes",
            "--wait=false",
        ],
        None,
    )?;
    eventually("attachedRoutes back to 1", || {
        let n = world.gateway()?["status"]["listeners"][0]["attachedRoutes"].clone();
        if n == 1 {
            Ok(Some(()))
        } else {
            bail!("attachedRoutes {n}")
        }
    })?;
    step(
        &format!(
            "{N} routes applied at once ({applied:.1?}) all get status ({statuses:.1?}) and \
             attach; deleted, they detach"
        ),
        t,
    );
    Ok(())
}

/// How many of the bulk routes carry our entry with `Accepted=True`.
fn accepted_bulk_routes(world: &World) -> anyhow::Result<usize> {
    let args = [
        "get",
        "httproute",
        "-n",
        &world.ns,
        "-l",
        "bulk=yes",
        "-o",
        "json",
    ];
    let list: Value = serde_json::from_str(&world.server.kubectl(&args, None)?)?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let accepted = |r: &&Value| {
        our_parent(r)
            .is_some_and(|p| condition(&p["conditions"], "Accepted").is_some_and(|c| c.0 == "True"))
    };
    Ok(items.iter().filter(accepted).count())
}

/// Killing the status leader: the other replica takes the Lease and writes status.
fn failover(world: &mut World) -> anyhow::Result<()> {
    let t = Instant::now();
    let lease = world
        .server
        .get("lease", "sluice-system", &world.ns)?
        .context("no status Lease")?;
    let holder = lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let leader: usize = match holder.as_str() {
        "replica-0" => 0,
        "replica-1" => 1,
        other => bail!("the Lease is held by {other:?}"),
    };
    world.sluice[leader] = None; // killed
    let ns = world.ns.clone();
    // Changes only the new leader can write: the route's generation bumps, and a
    // Gateway of ours moves to another controller's class while no replica leads (the
    // Lease is not free before it expires): the new leader never wrote that Gateway
    // and it is not on its board, so only its sweep finds our old status there.
    world.server.apply(&moving(&ns, &format!("other-{ns}")))?;
    world.server.apply(&route_yaml(&ns, "echo-v1", "gw"))?;
    if leader == 0 {
        routes_to(world.envoy_port, "echo-v1")?;
    }
    world.route_accepted(("True", "Accepted"))?;
    let lease = world
        .server
        .get("lease", "sluice-system", &ns)?
        .context("no Lease")?;
    let now = lease["spec"]["holderIdentity"].as_str().unwrap_or_default();
    anyhow::ensure!(
        now == format!("replica-{}", 1 - leader),
        "Lease holder {now:?}"
    );
    world.moving_has_no_status_of_ours()?;
    step(
        &format!("status leader {holder} killed: the other replica took over"),
        t,
    );
    if world.sluice[1].is_none() {
        // Envoy follows replica 1; bring it back so the rest of the scenario has xDS.
        world.start_sluice(1)?;
    }
    Ok(())
}

/// A CRD installed after the controller started is watched without a restart: a
/// replica started while ReferenceGrant's CRD is missing reports it, becomes ready and
/// serves the rest; once the CRD is back, a ReferenceGrant opens a cross-namespace
/// backend at that replica (which watches both namespaces).
fn crd_installed_later(world: &mut World) -> anyhow::Result<()> {
    let t = Instant::now();
    let ns = world.ns.clone();
    let other = world.namespaces[2][1].clone();
    world.server.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {other}}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: shared, namespace: {other}}}\n\
         spec: {{ports: [{{name: http, port: 8080, protocol: TCP}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: shared-1, namespace: {other}, labels: {{kubernetes.io/service-name: shared}}}}\n\
         addressType: IPv4\nports: [{{name: http, port: 9, protocol: TCP}}]\n\
         endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: cross, namespace: {ns}}}\n\
         spec: {{parentRefs: [{{name: gw}}], hostnames: [cross.example], \
         rules: [{{backendRefs: [{{name: shared, namespace: {other}, port: 8080}}]}}]}}\n"
    ))?;
    world
        .server
        .delete_crd("referencegrants.gateway.networking.k8s.io")?;
    world.start_sluice(2)?;
    let admin = world.admin[2];
    eventually("replica 2 ready without ReferenceGrants", || {
        Ok((get(admin, "/readyz")?.0 == 200).then_some(()))
    })?;
    let clusters = || -> anyhow::Result<String> {
        let (code, dump) = get(admin, &format!("/debug/xds?gateway={ns}/gw"))?;
        anyhow::ensure!(code == 200, "/debug/xds: {code} {dump}");
        let dump: Value = serde_json::from_str(&dump)?;
        anyhow::ensure!(
            dump["xds"]["listeners"]
                .as_array()
                .is_some_and(|l| !l.is_empty()),
            "replica 2 serves no listener: {dump}"
        );
        Ok(dump["xds"]["clusters"].to_string())
    };
    let before = clusters()?;
    anyhow::ensure!(
        !before.contains(&other),
        "a backend in {other} without a ReferenceGrant: {before}"
    );
    world.server.start()?; // installs every CRD again
    world.server.apply(&format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: ReferenceGrant\nmetadata: {{name: routes-from-{ns}, namespace: {other}}}\n\
         spec: {{from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: {ns}}}], \
         to: [{{group: \"\", kind: Service}}]}}\n"
    ))?;
    eventually(
        "the cross-namespace backend once ReferenceGrants are watched",
        || Ok(clusters()?.contains(&other).then_some(())),
    )?;
    world.sluice[2] = None;
    step(
        "a CRD missing at start is skipped (ready, serving), then watched once installed",
        t,
    );
    Ok(())
}

/// The API server stops and starts mid-test: requests keep succeeding, and the
/// controller relists and follows changes made after the restart.
fn api_server_restart(world: &World) -> anyhow::Result<()> {
    let t = Instant::now();
    let port = world.envoy_port;
    routes_to(port, "echo-v1")?;
    world.server.stop()?;
    for _ in 0..20 {
        let (code, body) = get(port, "/")?;
        anyhow::ensure!(
            code == 200 && body == "echo-v1",
            "while the API server is down: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    world.server.start()?;
    world
        .server
        .apply(&route_yaml(&world.ns, "echo-v2", "gw"))?;
    routes_to(port, "echo-v2")?;
    world.route_accepted(("True", "Accepted"))?;
    step(
        "API server restarted: Envoy kept serving, the controller relisted and follows",
        t,
    );
    Ok(())
}
