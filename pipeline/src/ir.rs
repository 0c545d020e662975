//! Output records: the pipeline's internal, indexed form of what a gateway serves.
//!
//! These are not xDS: the sink crate turns them into Envoy resources. They are ours
//! to change (no user ever writes them). They leave the dataflow as two streams:
//! [`XdsOutput`] records for the translator and [`StatusOutput`] records for the
//! status board. Every record has a key ([`Keyed::key`]); a [`Delta`] lists, for one
//! logical time and per stream, the records that were added and removed, so a sink
//! can derive per-key added / changed / removed ([`keyed`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{
    Filter, GroupKind, HeaderModifier, ObjectKey, ParentRef, Redirect, RouteMatch, Timeouts,
    UrlRewrite,
};

/// One Envoy listener: all the Gateway's HTTP (or all its HTTPS) listeners that
/// share a port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ListenerIr {
    pub gateway: ObjectKey,
    pub port: u16,
    /// Empty: plain HTTP. Otherwise one TLS filter chain per HTTPS listener of the
    /// port that has a valid certificate, sorted by hostname (`None`, the listener
    /// without hostname, first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<TlsChain>,
}

/// The TLS termination of one HTTPS listener: the SNI it answers (its hostname;
/// `None`: any) and the Secrets (by name, served over SDS) it presents.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TlsChain {
    pub hostname: Option<String>,
    pub secrets: Vec<String>,
    /// Client certificates are validated (`spec.tls.frontend`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_validation: Option<ClientValidationIr>,
}

/// Client certificate validation of one TLS chain: the CA bundle (an SDS
/// `Secret` of its own, [`ca_bundle_name`]) and whether a client without a valid
/// certificate is still let in (`AllowInsecureFallback`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientValidationIr {
    pub ca: String,
    pub insecure_fallback: bool,
}

/// The SDS name of the CA bundle made of these ConfigMaps (`namespace/name`, in
/// reference order): `configmap:` and the names joined by `,` (no Kubernetes name
/// holds `:` or `,`, so it never collides with a Secret's `namespace/name`).
pub fn ca_bundle_name(config_maps: &[String]) -> String {
    format!("configmap:{}", config_maps.join(","))
}

/// Appends one ConfigMap's `ca.crt` to a CA bundle on lines of its own: a member
/// without a final newline would otherwise run into the next `-----BEGIN` line.
pub fn push_bundle_member(bundle: &mut String, pem: &str) {
    bundle.push_str(pem);
    if !bundle.ends_with('\n') {
        bundle.push('\n');
    }
}

/// Something Envoy fetches over SDS: a listener certificate and its private key
/// (named `namespace/name` after the Kubernetes Secret), or a CA bundle that
/// client certificates must chain to (named by [`ca_bundle_name`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SecretIr {
    pub name: String,
    pub material: SecretMaterial,
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SecretMaterial {
    Certificate {
        /// PEM, leaf first.
        cert_chain: String,
        /// PEM.
        private_key: String,
    },
    /// PEM CA certificates, concatenated in reference order.
    TrustedCa(String),
}

impl SecretIr {
    /// A listener certificate.
    pub fn certificate(name: String, cert_chain: String, private_key: String) -> Self {
        SecretIr {
            name,
            material: SecretMaterial::Certificate {
                cert_chain,
                private_key,
            },
        }
    }

    /// The certificate chain of a listener certificate.
    pub fn cert_chain(&self) -> Option<&str> {
        match &self.material {
            SecretMaterial::Certificate { cert_chain, .. } => Some(cert_chain),
            SecretMaterial::TrustedCa(_) => None,
        }
    }
}

impl std::fmt::Debug for SecretMaterial {
    /// Never prints the key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretMaterial::Certificate { cert_chain, .. } => f
                .debug_struct("Certificate")
                .field("cert_chain_bytes", &cert_chain.len())
                .finish_non_exhaustive(),
            SecretMaterial::TrustedCa(ca) => f
                .debug_struct("TrustedCa")
                .field("bytes", &ca.len())
                .finish(),
        }
    }
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

/// A backend of a [`Action::Forward`]: never of weight 0 (the pipeline's weight
/// rule in `spec::routes` drops those, and forwards only when one is valid).
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

/// The identity of a backend cluster: one port of one Service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClusterKey {
    pub service: ObjectKey,
    pub port: u16,
}

impl ClusterKey {
    pub fn new(service: ObjectKey, port: u16) -> Self {
        Self { service, port }
    }

    /// The Envoy cluster's name (also its EDS service name): `namespace/name:port`.
    pub fn name(&self) -> String {
        format!(
            "{}/{}:{}",
            self.service.namespace, self.service.name, self.port
        )
    }
}

/// A backend cluster: one port of one Service, discovered through EDS.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClusterIr {
    /// [`ClusterKey::name`] of (`service`, `port`).
    pub name: String,
    pub service: ObjectKey,
    pub port: u16,
    /// The Service port's `appProtocol` (`kubernetes.io/h2c` selects HTTP/2).
    pub app_protocol: Option<String>,
    /// TLS to the backend, from the BackendTLSPolicy that applies to this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<BackendTlsIr>,
}

impl ClusterIr {
    pub fn new(key: ClusterKey, app_protocol: Option<String>) -> Self {
        Self {
            name: key.name(),
            service: key.service,
            port: key.port,
            app_protocol,
            tls: None,
        }
    }
}

/// How the proxies originate TLS to a backend (one BackendTLSPolicy's validation).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BackendTlsIr {
    /// The policy this comes from.
    pub policy: ObjectKey,
    /// The SNI; also the name the certificate must match when
    /// `subject_alt_names` is empty.
    pub hostname: String,
    pub trust: BackendTrust,
    /// At least one must match a SAN of the backend's certificate.
    pub subject_alt_names: Vec<crate::model::SubjectAltName>,
}

/// What the backend's certificate must chain to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BackendTrust {
    /// The PEM bundle of the policy's valid CA ConfigMaps, in reference order.
    CaBundle(String),
    /// The proxy's system trust store (`wellKnownCACertificates: System`).
    System,
    /// No usable CA: connections to the backend must fail (the spec asks for a 5xx).
    Refused,
}

/// Ready endpoints of a cluster, sorted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EndpointsIr {
    pub cluster: String,
    pub endpoints: Vec<(String, u16)>,
}

pub use crate::spec::conditions::{ConditionType, Reason};

/// A status condition, as the Gateway API spec names them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Condition {
    pub type_: ConditionType,
    pub status: bool,
    pub reason: Reason,
    pub message: String,
}

impl Condition {
    pub fn new(
        type_: ConditionType,
        status: bool,
        reason: Reason,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
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
    /// The listener's port (not part of the Gateway API's listener status: the sinks
    /// use it to tell which listeners a proxy's rejection of a port is about).
    #[serde(default)]
    pub port: u16,
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

/// A BackendTLSPolicy's status: its conditions for each Gateway (ancestor) whose
/// routes use a Service it targets, at most 16, sorted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PolicyStatus {
    pub policy: ObjectKey,
    pub generation: i64,
    pub ancestors: Vec<ObjectKey>,
    pub conditions: Vec<Condition>,
}

/// An xDS-shaped record: what the translator turns into Envoy resources.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum XdsOutput {
    Listener(ListenerIr),
    VirtualHost(VirtualHostIr),
    /// The gateway's proxies need this cluster (and its endpoints).
    GatewayCluster {
        gateway: ObjectKey,
        cluster: String,
    },
    Cluster(ClusterIr),
    Endpoints(EndpointsIr),
    /// A certificate the gateway's HTTPS listeners present (SDS).
    Secret {
        gateway: ObjectKey,
        secret: SecretIr,
    },
}

/// The identity of an xDS record: at most one record per key at any time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum XdsKey {
    Listener(ObjectKey, u16),
    VirtualHost(ObjectKey, u16, String),
    GatewayCluster(ObjectKey, String),
    Cluster(String),
    Endpoints(String),
    Secret(ObjectKey, String),
}

/// A status record: what the status board renders as Gateway API `status`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StatusOutput {
    Gateway(GatewayStatus),
    /// One route's status for one of its parentRefs.
    Route(RouteParentStatus),
    BackendTlsPolicy(PolicyStatus),
}

/// The identity of a status record: a Gateway, or a route's parentRef by index.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StatusKey {
    Gateway(ObjectKey),
    Route(ObjectKey, usize),
    BackendTlsPolicy(ObjectKey),
}

/// An output record with an identity: at most one record per key at any time.
pub trait Keyed: Clone {
    type Key: Ord + Clone + std::fmt::Debug;
    fn key(&self) -> Self::Key;
}

impl Keyed for XdsOutput {
    type Key = XdsKey;
    fn key(&self) -> XdsKey {
        match self {
            XdsOutput::Listener(l) => XdsKey::Listener(l.gateway.clone(), l.port),
            XdsOutput::VirtualHost(v) => {
                XdsKey::VirtualHost(v.gateway.clone(), v.port, v.hostname.clone())
            }
            XdsOutput::GatewayCluster { gateway, cluster } => {
                XdsKey::GatewayCluster(gateway.clone(), cluster.clone())
            }
            XdsOutput::Cluster(c) => XdsKey::Cluster(c.name.clone()),
            XdsOutput::Endpoints(e) => XdsKey::Endpoints(e.cluster.clone()),
            XdsOutput::Secret { gateway, secret } => {
                XdsKey::Secret(gateway.clone(), secret.name.clone())
            }
        }
    }
}

impl Keyed for StatusOutput {
    type Key = StatusKey;
    fn key(&self) -> StatusKey {
        match self {
            StatusOutput::Gateway(s) => StatusKey::Gateway(s.gateway.clone()),
            StatusOutput::Route(s) => StatusKey::Route(s.route.clone(), s.index),
            StatusOutput::BackendTlsPolicy(s) => StatusKey::BackendTlsPolicy(s.policy.clone()),
        }
    }
}

/// The net change of the outputs at one logical time, as two separate streams: the
/// xDS records (for the translator) and the status records (for the status board).
/// Each is consolidated: every record once, with a non-zero count (+1 added,
/// -1 removed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pub time: u64,
    pub xds: Vec<(XdsOutput, isize)>,
    pub status: Vec<(StatusOutput, isize)>,
}

impl Delta {
    /// Per-key view of the xDS stream, ordered by key.
    pub fn xds_keyed(&self) -> Vec<(XdsKey, KeyedChange<XdsOutput>)> {
        keyed(&self.xds)
    }

    /// Per-key view of the status stream, ordered by key.
    pub fn status_keyed(&self) -> Vec<(StatusKey, KeyedChange<StatusOutput>)> {
        keyed(&self.status)
    }

    /// How many record updates the delta holds, both streams together.
    pub fn len(&self) -> usize {
        self.xds.len() + self.status.len()
    }

    pub fn is_empty(&self) -> bool {
        self.xds.is_empty() && self.status.is_empty()
    }
}

/// Every output of a translation from scratch ([`crate::evaluate`]), each stream
/// sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outputs {
    pub xds: Vec<XdsOutput>,
    pub status: Vec<StatusOutput>,
}

impl Outputs {
    /// The delta that brings an empty state to these outputs.
    pub fn into_delta(self, time: u64) -> Delta {
        Delta {
            time,
            xds: self.xds.into_iter().map(|o| (o, 1)).collect(),
            status: self.status.into_iter().map(|o| (o, 1)).collect(),
        }
    }
}

/// What happened to one output key at one time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyedChange<T> {
    Added(Box<T>),
    Changed { old: Box<T>, new: Box<T> },
    Removed(Box<T>),
}

/// Per-key view of consolidated updates, ordered by key.
pub fn keyed<T: Keyed>(updates: &[(T, isize)]) -> Vec<(T::Key, KeyedChange<T>)> {
    let mut by_key: BTreeMap<T::Key, (Option<T>, Option<T>)> = BTreeMap::new();
    for (out, diff) in updates {
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
