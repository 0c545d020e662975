//! Output records: the pipeline's internal, indexed form of what a gateway serves.
//!
//! These are not xDS: the sink crate turns them into Envoy resources. They are ours
//! to change (no user ever writes them). Every record has a key ([`Output::key`]);
//! a [`Delta`] lists, for one logical time, the records that were added and removed,
//! so a sink can derive per-key added / changed / removed.

use serde::{Deserialize, Serialize};

use crate::model::{
    Filter, GroupKind, HeaderModifier, ObjectKey, ParentRef, Redirect, RouteMatch, Timeouts,
    UrlRewrite,
};

/// One Envoy listener: all the Gateway's HTTP listeners that share a port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ListenerIr {
    pub gateway: ObjectKey,
    pub port: u16,
}

impl ListenerIr {
    /// Name of the Envoy listener and of its RouteConfiguration.
    pub fn name(&self) -> String {
        listener_name(&self.gateway, self.port)
    }
}

pub fn listener_name(gateway: &ObjectKey, port: u16) -> String {
    format!("{}/{}/{}", gateway.namespace, gateway.name, port)
}

/// One virtual host of a listener's route table: every rule of every route attached
/// to `(gateway, port)` whose effective hostnames include `hostname`, in the spec's
/// precedence order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VirtualHostIr {
    pub gateway: ObjectKey,
    pub port: u16,
    /// A hostname, `*.suffix`, or `*`.
    pub hostname: String,
    pub routes: Vec<RouteIr>,
}

/// One route entry: a single match of a single rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RouteIr {
    /// `namespace/name/rule/match`, unique in the virtual host.
    pub name: String,
    pub matcher: RouteMatch,
    pub action: Action,
    pub request_headers: HeaderModifier,
    pub response_headers: HeaderModifier,
    pub mirrors: Vec<MirrorIr>,
    pub timeouts: Timeouts,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Forward to weighted backends. A backend with `cluster: None` is invalid
    /// (missing, forbidden, unknown kind): its share of requests gets HTTP 500.
    Forward {
        backends: Vec<WeightedBackend>,
        rewrite: Option<UrlRewrite>,
    },
    Redirect(Redirect),
    /// Answer directly with this status (e.g. 500 for a rule with no valid backend).
    Direct(u16),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WeightedBackend {
    pub cluster: Option<String>,
    pub weight: u32,
    /// Backend-level filters (header modifiers).
    pub filters: Vec<Filter>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MirrorIr {
    /// `None`: the mirror backend is invalid and nothing is mirrored.
    pub cluster: Option<String>,
    pub fraction: Option<(u32, u32)>,
}

/// A backend cluster: one port of one Service, discovered through EDS.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClusterIr {
    pub name: String,
    pub service: ObjectKey,
    pub port: u16,
    /// The Service port's `appProtocol` (`kubernetes.io/h2c` selects HTTP/2).
    pub app_protocol: Option<String>,
}

pub fn cluster_name(service: &ObjectKey, port: u16) -> String {
    format!("{}/{}:{}", service.namespace, service.name, port)
}

/// Ready endpoints of a cluster, sorted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EndpointsIr {
    pub cluster: String,
    pub endpoints: Vec<(String, u16)>,
}

/// A status condition, as the Gateway API spec names them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Condition {
    pub type_: String,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Condition {
    pub fn new(type_: &str, status: bool, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GatewayStatus {
    pub gateway: ObjectKey,
    pub generation: i64,
    pub conditions: Vec<Condition>,
    pub listeners: Vec<ListenerStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ListenerStatus {
    pub name: String,
    pub attached_routes: u32,
    pub supported_kinds: Vec<GroupKind>,
    pub conditions: Vec<Condition>,
}

/// The status of one route for one of its parentRefs (only parents that are
/// Gateways of our class).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RouteParentStatus {
    pub route: ObjectKey,
    pub generation: i64,
    /// Index of the parentRef in the route's spec.
    pub index: usize,
    pub parent: ParentRef,
    pub conditions: Vec<Condition>,
}

/// Every record the pipeline outputs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Output {
    Listener(ListenerIr),
    VirtualHost(VirtualHostIr),
    /// The gateway's proxies need this cluster (and its endpoints).
    GatewayCluster {
        gateway: ObjectKey,
        cluster: String,
    },
    Cluster(ClusterIr),
    Endpoints(EndpointsIr),
    GatewayStatus(GatewayStatus),
    RouteStatus(RouteParentStatus),
}

/// The identity of an output record: at most one record per key at any time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OutputKey {
    Listener(ObjectKey, u16),
    VirtualHost(ObjectKey, u16, String),
    GatewayCluster(ObjectKey, String),
    Cluster(String),
    Endpoints(String),
    GatewayStatus(ObjectKey),
    RouteStatus(ObjectKey, usize),
}

impl Output {
    pub fn key(&self) -> OutputKey {
        match self {
            Output::Listener(l) => OutputKey::Listener(l.gateway.clone(), l.port),
            Output::VirtualHost(v) => {
                OutputKey::VirtualHost(v.gateway.clone(), v.port, v.hostname.clone())
            }
            Output::GatewayCluster { gateway, cluster } => {
                OutputKey::GatewayCluster(gateway.clone(), cluster.clone())
            }
            Output::Cluster(c) => OutputKey::Cluster(c.name.clone()),
            Output::Endpoints(e) => OutputKey::Endpoints(e.cluster.clone()),
            Output::GatewayStatus(s) => OutputKey::GatewayStatus(s.gateway.clone()),
            Output::RouteStatus(s) => OutputKey::RouteStatus(s.route.clone(), s.index),
        }
    }
}

/// The net change of the outputs at one logical time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pub time: u64,
    /// Consolidated: each record once, with a non-zero count (+1 added, -1 removed).
    pub updates: Vec<(Output, isize)>,
}

/// What happened to one output key at one time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyedChange {
    Added(Box<Output>),
    Changed { old: Box<Output>, new: Box<Output> },
    Removed(Box<Output>),
}

impl Delta {
    /// Per-key view of the delta, ordered by key.
    pub fn keyed(&self) -> Vec<(OutputKey, KeyedChange)> {
        let mut by_key: std::collections::BTreeMap<OutputKey, (Option<Output>, Option<Output>)> =
            Default::default();
        for (out, diff) in &self.updates {
            let slot = by_key.entry(out.key()).or_default();
            if *diff > 0 {
                slot.1 = Some(out.clone());
            } else {
                slot.0 = Some(out.clone());
            }
        }
        by_key
            .into_iter()
            .filter_map(|(k, pair)| {
                let change = match pair {
                    (None, Some(new)) => KeyedChange::Added(Box::new(new)),
                    (Some(old), Some(new)) => KeyedChange::Changed {
                        old: Box::new(old),
                        new: Box::new(new),
                    },
                    (Some(old), None) => KeyedChange::Removed(Box::new(old)),
                    (None, None) => return None,
                };
                Some((k, change))
            })
            .collect()
    }
}
