//! The Kubernetes source: kube-rs watchers over the kinds Sluice translates, turned
//! into batches of pipeline changes (one batch, one logical time).
//!
//! ```text
//!  API server ─list+watch─► one task per stream ─StreamEvent─► channel ─► KubeSource::next_batch
//!  (kind × namespace)        (kube watcher,            (unbounded)        (Watched: relists, net
//!                             backoff on errors)                           changes, bounded delay)
//! ```
//!
//! # Contract
//! - Objects go through the same conversion as manifest files
//!   ([`crate::object_from_json`]); only the model record is kept (managedFields,
//!   annotations and every field the pipeline does not read are dropped on arrival).
//! - The first batch is returned only once every stream has listed: it is the
//!   complete initial state, so a proxy's first configuration is complete.
//! - Later batches gather the events of a burst: until none arrived for 2 ms, and
//!   at most a bounded delay after the first (never one logical time per event
//!   under a burst, never more than the bound of added latency).
//! - A kind the API server does not serve (a CRD not installed) is reported once and
//!   skipped; the other kinds work. It is looked for again every few seconds and
//!   watched (listed, then followed) once its CRD is installed, without a restart.
//!   A discovery that fails for another reason (an unreachable server) is retried,
//!   and the source is not ready meanwhile: it never serves an empty state because
//!   the server could not be reached.
//! - A dropped watch, a 410 Gone or an API server restart is retried with backoff and
//!   relisted; the relist deletes what vanished meanwhile and changes nothing else.

mod state;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use kube::api::{Api, DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde_json::Value;
use sluice_eventlog::Op;
use sluice_pipeline::model::Change;
use tokio::sync::mpsc;

pub(crate) use state::model_kind;
pub use state::{StreamEvent, Watched};

/// A kind the source watches: `(group, version, kind, namespaced)`.
pub type WatchedKind = (&'static str, &'static str, &'static str, bool);

/// A burst has ended when no event arrived for this long.
const QUIET: Duration = Duration::from_millis(2);

/// How often a kind that is not served (its CRD not installed) is looked for again.
const REDISCOVER: Duration = Duration::from_secs(5);

/// Every kind the pipeline translates, at the version Sluice reads. Secrets are
/// watched with the field selector [`SECRET_SELECTOR`]: only the type a listener
/// certificate can have is ever held, never the cluster's other Secrets. Of a
/// ConfigMap only its CA bundle (`ca.crt`) is held.
pub const KINDS: [WatchedKind; 10] = [
    ("gateway.networking.k8s.io", "v1", "GatewayClass", false),
    ("gateway.networking.k8s.io", "v1", "Gateway", true),
    ("gateway.networking.k8s.io", "v1", "HTTPRoute", true),
    ("gateway.networking.k8s.io", "v1", "ReferenceGrant", true),
    ("", "v1", "Service", true),
    ("discovery.k8s.io", "v1", "EndpointSlice", true),
    ("", "v1", "Namespace", false),
    ("", "v1", "Secret", true),
    ("", "v1", "ConfigMap", true),
    ("gateway.networking.k8s.io", "v1", "BackendTLSPolicy", true),
];

/// The field selector of the Secret watch: `kubernetes.io/tls` Secrets only.
pub const SECRET_SELECTOR: &str = "type=kubernetes.io/tls";

/// A client from a kubeconfig file, or (without one) from the environment: the
/// in-cluster service account in a pod, else `$KUBECONFIG` or `~/.kube/config`.
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, String> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| format!("no Kubernetes configuration found: {e}"))?,
    };
    kube::Client::try_from(config).map_err(|e| format!("building the Kubernetes client: {e}"))
}

/// Labels of the watch event counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// Counters an operator reads (the admin port's metrics).
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Watch events received, per kind.
    pub events: Family<KindLabel, Counter>,
    /// Watch errors after which a stream backed off and resumed or relisted.
    pub restarts: Counter,
}

impl SourceStats {
    /// Adds the source's metrics to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "watch_events",
            "Kubernetes watch events received, per kind",
            self.events.clone(),
        );
        registry.register(
            "watch_restarts",
            "Watch errors after which a watcher backed off and resumed or relisted",
            self.restarts.clone(),
        );
    }
}

/// One logical time's worth of watch events.
#[derive(Debug, Default)]
pub struct Batch {
    pub changes: Vec<Change>,
    /// Watch events it gathers.
    pub events: usize,
    /// Objects that did not convert (each names the object and why).
    pub warnings: Vec<String>,
    /// When recording ([`KubeSource::record`]): every watch event as a log event (time
    /// 0, for the recorder to set); a (re)list is bracketed by resync markers whose
    /// namespace or name is the stream's scope.
    pub log: Vec<sluice_eventlog::Event>,
}

/// Watchers over the translated kinds, read as batches of changes.
#[derive(Debug)]
pub struct KubeSource {
    events: mpsc::UnboundedReceiver<(usize, StreamEvent)>,
    watched: Watched,
    initial_sent: bool,
    stats: Arc<SourceStats>,
    /// Each stream's apiVersion, kind and scope, for its resync markers.
    streams: Vec<(String, &'static str, Scope)>,
    record: bool,
}

impl KubeSource {
    /// Starts one watcher per kind (per namespace in `namespaces` for namespaced kinds;
    /// cluster-wide when it is empty) on the current tokio runtime.
    pub async fn start(client: kube::Client, namespaces: &[String]) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(SourceStats::default());
        let mut scoped = Vec::new();
        for (group, version, kind, namespaced) in KINDS {
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let scopes = scopes(namespaced, kind, namespaces);
            let first = scoped.len();
            scoped.extend((scopes.iter().cloned()).map(|scope| (gvk.api_version(), kind, scope)));
            let streams = (first..).zip(scopes).collect();
            let (client, tx, stats) = (client.clone(), tx.clone(), stats.clone());
            tokio::spawn(discover_and_watch(client, gvk, streams, tx, stats));
        }
        Self {
            events: rx,
            watched: Watched::new(scoped.len()),
            initial_sent: false,
            stats,
            streams: scoped,
            record: false,
        }
    }

    /// Also give every watch event as a log event ([`Batch::log`]).
    pub fn record(&mut self) {
        self.record = true;
    }

    /// Feeds one event to the watch state (and, when recording, to the batch's log).
    fn feed(&mut self, stream: usize, event: StreamEvent, batch: &mut Batch) {
        batch.events += 1;
        if self.record {
            let marker = |op| {
                let (api_version, kind, scope) = self.streams.get(stream)?;
                let (ns, name) = match scope {
                    Scope::All => ("", ""),
                    Scope::Namespace(ns) => (ns.as_str(), ""),
                    Scope::Named(name) => ("", name.as_str()),
                };
                Some(crate::log::resync(op, api_version, kind, ns, name))
            };
            let logged = match &event {
                StreamEvent::ListBegin => marker(Op::ResyncBegin),
                StreamEvent::ListEnd => marker(Op::ResyncEnd),
                StreamEvent::Listed(v) | StreamEvent::Applied(v) => crate::log::apply(v),
                StreamEvent::Deleted(v) => crate::log::apply(v).map(|mut e| {
                    e.op = Op::Delete;
                    e
                }),
                StreamEvent::Skipped => None,
            };
            batch.log.extend(logged);
        }
        self.watched.on(stream, event);
    }

    pub fn stats(&self) -> Arc<SourceStats> {
        self.stats.clone()
    }

    /// The next batch: blocks (call it from a thread that is not a tokio worker) until
    /// there is one. The first is returned once every stream has listed; later ones
    /// gather events until none came for 2 ms, at most `max_delay` after their first. `None` once every
    /// watcher stopped.
    pub fn next_batch(&mut self, max_delay: Duration) -> Option<Batch> {
        let mut batch = Batch::default();
        loop {
            let (stream, event) = self.events.blocking_recv()?;
            self.feed(stream, event, &mut batch);
            if self.watched.ready() {
                break;
            }
        }
        if self.initial_sent {
            // The rest of the burst joins this time: events keep coming until the
            // stream is quiet for `QUIET`, or `max_delay` has passed since the first.
            let deadline = Instant::now() + max_delay;
            let mut quiet_since = Instant::now();
            while Instant::now() < deadline && quiet_since.elapsed() < QUIET {
                match self.events.try_recv() {
                    Ok((stream, event)) => {
                        self.feed(stream, event, &mut batch);
                        quiet_since = Instant::now();
                    }
                    Err(mpsc::error::TryRecvError::Empty) => {
                        std::thread::sleep(Duration::from_micros(500))
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            }
        }
        self.initial_sent = true;
        batch.changes = self.watched.take();
        batch.warnings = self.watched.take_warnings();
        Some(batch)
    }

    /// Objects currently held.
    pub fn objects(&self) -> usize {
        self.watched.len()
    }
}

/// The namespaces a stream of `kind` covers: `None` for cluster-wide.
fn scopes(namespaced: bool, kind: &str, namespaces: &[String]) -> Vec<Scope> {
    match (namespaced, kind, namespaces.is_empty()) {
        (_, _, true) => vec![Scope::All],
        (true, _, false) => namespaces.iter().cloned().map(Scope::Namespace).collect(),
        // Only the watched namespaces' own Namespace objects (their labels select routes).
        (false, "Namespace", false) => namespaces.iter().cloned().map(Scope::Named).collect(),
        (false, _, false) => vec![Scope::All],
    }
}

#[derive(Clone, Debug)]
enum Scope {
    All,
    Namespace(String),
    /// A cluster-scoped object by name.
    Named(String),
}

/// What discovery says about a kind.
enum Discovered {
    Served(ApiResource),
    /// The API server answered that it does not serve the kind (no CRD).
    Missing(String),
    /// Discovery failed (the server is unreachable or answered an error): try again.
    Failed(String),
}

async fn discover(client: &kube::Client, gvk: &GroupVersionKind) -> Discovered {
    match kube::discovery::pinned_kind(client, gvk).await {
        Ok((resource, _)) => Discovered::Served(resource),
        Err(kube::Error::Discovery(e)) => Discovered::Missing(e.to_string()),
        Err(kube::Error::Api(status)) if status.is_not_found() => {
            Discovered::Missing(status.to_string())
        }
        Err(e) => Discovered::Failed(e.to_string()),
    }
}

/// Finds the kind, then starts one watcher per stream. A kind that is not served is
/// reported once and its streams are skipped (they do not hold up readiness); it is
/// looked for again every [`REDISCOVER`], and watched once its CRD is installed. A
/// discovery that fails (an unreachable server) is retried and skips nothing: the
/// streams are not ready until the kind is found or known to be missing.
async fn discover_and_watch(
    client: kube::Client,
    gvk: GroupVersionKind,
    streams: Vec<(usize, Scope)>,
    tx: mpsc::UnboundedSender<(usize, StreamEvent)>,
    stats: Arc<SourceStats>,
) {
    let mut skipped = false;
    let mut backoff = Duration::from_millis(200);
    let resource = loop {
        match discover(&client, &gvk).await {
            Discovered::Served(resource) => break resource,
            Discovered::Missing(e) => {
                if !skipped {
                    tracing::warn!(
                        "{} ({}) is not served by the API server (is its CRD installed?), so \
                         it is not watched until it is: {e}",
                        gvk.kind,
                        gvk.api_version()
                    );
                    for (stream, _) in &streams {
                        if tx.send((*stream, StreamEvent::Skipped)).is_err() {
                            return;
                        }
                    }
                    skipped = true;
                }
                tokio::time::sleep(REDISCOVER).await;
            }
            Discovered::Failed(e) => {
                stats.restarts.inc();
                tracing::warn!(kind = %gvk.kind, ?backoff, "discovery failed, retrying: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
        if tx.is_closed() {
            return;
        }
    };
    if skipped {
        tracing::info!(
            "{} ({}) is now served: watching it",
            gvk.kind,
            gvk.api_version()
        );
    }
    for (stream, scope) in streams {
        let (client, tx, stats) = (client.clone(), tx.clone(), stats.clone());
        tokio::spawn(watch(client, resource.clone(), scope, stream, tx, stats));
    }
}

/// One stream's watcher, forwarding its events until the receiver is gone.
async fn watch(
    client: kube::Client,
    resource: ApiResource,
    scope: Scope,
    stream: usize,
    tx: mpsc::UnboundedSender<(usize, StreamEvent)>,
    stats: Arc<SourceStats>,
) {
    let base = if resource.kind == "Secret" {
        watcher::Config::default().fields(SECRET_SELECTOR)
    } else {
        watcher::Config::default()
    };
    let (api, config): (Api<DynamicObject>, _) = match &scope {
        Scope::All => (Api::all_with(client, &resource), base),
        Scope::Namespace(ns) => (Api::namespaced_with(client, ns, &resource), base),
        Scope::Named(name) => (
            Api::all_with(client, &resource),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        ),
    };
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let json = |object: DynamicObject| with_type(object, &resource);
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(Event::Init) => StreamEvent::ListBegin,
            Ok(Event::InitApply(o)) => StreamEvent::Listed(json(o)),
            Ok(Event::InitDone) => StreamEvent::ListEnd,
            Ok(Event::Apply(o)) => StreamEvent::Applied(json(o)),
            Ok(Event::Delete(o)) => StreamEvent::Deleted(json(o)),
            Err(e) => {
                stats.restarts.inc();
                tracing::warn!(kind = %resource.kind, ?scope, "watch failed, retrying: {e}");
                continue;
            }
        };
        let kind = KindLabel {
            kind: resource.kind.clone(),
        };
        stats.events.get_or_create(&kind).inc();
        if tx.send((stream, event)).is_err() {
            return;
        }
    }
}

/// The object as JSON with its apiVersion and kind (list items come without them).
fn with_type(object: DynamicObject, resource: &ApiResource) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), resource.api_version.clone().into());
        map.insert("kind".into(), resource.kind.clone().into());
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
    }
    value
}
