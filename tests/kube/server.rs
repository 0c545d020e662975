//! The real API server the controller tests run against: `../shared/kube-test-server`
//! (kube-apiserver 1.20 + an apiextensions server with the Gateway API CRDs, joined by
//! aggregation), built once and cached under `~/.cache/kube-test-server`, started on
//! loopback (fixed ports 2379, 6443, 6444: one per machine, reused when running).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// Where the scripts, the cache and the CRDs are.
#[derive(Debug)]
pub struct Server {
    scripts: PathBuf,
    root: PathBuf,
    crds: PathBuf,
    pub kubeconfig: PathBuf,
}

/// The tools the scripts call, and where a Debian/Ubuntu machine gets them.
const TOOLS: [(&str, &str); 7] = [
    (
        "kubectl",
        "https://kubernetes.io/docs/tasks/tools/ (a kubectl binary on PATH)",
    ),
    ("curl", "apt install curl"),
    ("openssl", "apt install openssl"),
    ("bc", "apt install bc"),
    ("dpkg-deb", "apt install dpkg"),
    (
        "apt-get",
        "a Debian or Ubuntu machine (the server is built from Debian packages)",
    ),
    ("python3", "apt install python3"),
];

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

impl Server {
    /// Builds the server if it is not cached (about 6 minutes, once), and starts it
    /// unless it is already running.
    pub fn ensure(workspace: &Path) -> anyhow::Result<Self> {
        let shared = workspace.join("../shared");
        let scripts = std::env::var_os("SLUICE_KUBE_TEST_SERVER")
            .map_or_else(|| shared.join("kube-test-server"), PathBuf::from);
        let crds = std::env::var_os("GATEWAY_API_CRDS")
            .map_or_else(|| shared.join("gateway-api/crds/standard"), PathBuf::from);
        for (what, path) in [("scripts", &scripts), ("Gateway API CRDs", &crds)] {
            if !path.is_dir() {
                bail!(
                    "the kube-test-server {what} are not at {} (set SLUICE_KUBE_TEST_SERVER / \
                     GATEWAY_API_CRDS to where they are)",
                    path.display()
                );
            }
        }
        for (tool, how) in TOOLS {
            if !on_path(tool) {
                bail!("the controller tests build a real API server and need `{tool}`: {how}");
            }
        }
        let root = std::env::var_os("KUBE_TEST_SERVER_ROOT").map_or_else(
            || {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                    .join(".cache/kube-test-server")
            },
            PathBuf::from,
        );
        let server = Server {
            kubeconfig: root.join("composite-run/kubeconfig"),
            scripts,
            root,
            crds,
        };
        std::fs::create_dir_all(&server.root)?;
        let lock = File::create(server.root.join("sluice-tests.lock"))?;
        lock.lock()?;
        server.script("build-kube-apiserver.sh", &[])?;
        server.script("build-crdserver.sh", &[])?;
        server.start()?;
        lock.unlock()?;
        Ok(server)
    }

    pub fn start(&self) -> anyhow::Result<()> {
        self.script("start-composite.sh", &["start"])
    }

    /// Stops the server and waits until its ports are free (the script's stop may
    /// return while etcd still holds them, and a quick start then fails).
    pub fn stop(&self) -> anyhow::Result<()> {
        self.script("start-composite.sh", &["stop"])?;
        let start = std::time::Instant::now();
        let free = || {
            [2379, 2380, 6443, 6444]
                .iter()
                .all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        };
        while !free() {
            if start.elapsed() > std::time::Duration::from_secs(30) {
                bail!(
                    "the API server's ports 2379, 2380, 6443, 6444 are still in use 30 s after stop"
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(())
    }

    fn script(&self, name: &str, args: &[&str]) -> anyhow::Result<()> {
        let log = self.root.join(format!("sluice-tests-{name}.log"));
        let out = File::create(&log)?;
        let status = Command::new("bash")
            .arg(self.scripts.join(name))
            .args(args)
            .env("KUBE_TEST_SERVER_ROOT", &self.root)
            .env("GATEWAY_API_CRDS", &self.crds)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .status()
            .with_context(|| format!("running {name}"))?;
        if !status.success() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "{name} {args:?} failed ({status}); log {}:\n{}",
                log.display(),
                tail.join("\n")
            );
        }
        Ok(())
    }

    /// Runs kubectl against the server with `stdin`; its stdout.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        use std::io::Write as _;
        let mut child = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting kubectl")?;
        if let Some(mut pipe) = child.stdin.take() {
            pipe.write_all(stdin.unwrap_or_default().as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl apply --server-side` of a YAML stream.
    pub fn apply(&self, yaml: &str) -> anyhow::Result<()> {
        self.kubectl(
            &[
                "apply",
                "--server-side",
                "--field-manager=e2e",
                "--force-conflicts",
                "-f",
                "-",
            ],
            Some(yaml),
        )
        .map(drop)
    }

    /// Deletes the CustomResourceDefinition `name` (on the aggregated CRD server, where
    /// the CRDs live) and waits until the API server's discovery no longer lists its
    /// resource. [`Server::start`] installs every CRD again.
    pub fn delete_crd(&self, name: &str) -> anyhow::Result<()> {
        let crdserver = self.root.join("composite-run/kubeconfig-crdserver");
        let crdserver = crdserver.to_str().context("kubeconfig path")?;
        let path = format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}");
        self.kubectl(&["--kubeconfig", crdserver, "delete", "--raw", &path], None)?;
        let (plural, group) = name.split_once('.').context("CRD name")?;
        let start = std::time::Instant::now();
        loop {
            let discovery = self.kubectl(&["get", "--raw", &format!("/apis/{group}/v1")], None)?;
            if !discovery.contains(&format!("\"name\":\"{plural}\"")) {
                return Ok(());
            }
            if start.elapsed() > std::time::Duration::from_secs(30) {
                bail!("{plural} is still served 30 s after its CRD was deleted");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// One object as JSON, `None` when it does not exist.
    pub fn get(
        &self,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> anyhow::Result<Option<serde_json::Value>> {
        match self.kubectl(&["get", kind, "-n", ns, name, "-o", "json"], None) {
            Ok(text) => Ok(Some(serde_json::from_str(&text)?)),
            Err(e) if e.to_string().contains("NotFound") => Ok(None),
            Err(e) => Err(e),
        }
    }
}
