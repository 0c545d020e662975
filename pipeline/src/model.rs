//! Input records: the small, owned, ordered form every source converts Kubernetes
//! objects into. They keep only the fields the translation reads, derive `Ord` (the
//! dataflow consolidates on it) and serde (records cross timely workers).
//!
//! Values that the Gateway API CRDs' schema would already reject never get here: the
//! source refuses the object. Values that are well-formed but unsupported or invalid
//! by the spec's rules (an unknown filter, a bad regex, an unsupported protocol) are
//! kept as data, so the pipeline can report them in status.

use serde::{Deserialize, Serialize};

/// Namespace and name of an object. Cluster-scoped objects have an empty namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
    pub fn cluster(name: impl Into<String>) -> Self {
        Self {
            namespace: String::new(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// The kinds of object the pipeline reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    GatewayClass,
    Gateway,
    HttpRoute,
    ReferenceGrant,
    Service,
    EndpointSlice,
    Namespace,
    Secret,
    ConfigMap,
    BackendTlsPolicy,
}

impl Kind {
    /// The Kubernetes `kind` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::GatewayClass => "GatewayClass",
            Kind::Gateway => "Gateway",
            Kind::HttpRoute => "HTTPRoute",
            Kind::ReferenceGrant => "ReferenceGrant",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Namespace => "Namespace",
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
            Kind::BackendTlsPolicy => "BackendTLSPolicy",
        }
    }
}

/// Identity of an object: what a delete names, and what a replace retracts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectId {
    pub kind: Kind,
    pub key: ObjectKey,
}

/// Metadata the translation reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Meta {
    pub key: ObjectKey,
    pub generation: i64,
    /// RFC 3339 creation timestamp as the API server writes it (`...Z`, so it sorts
    /// as text); empty when unknown (e.g. a manifest file).
    pub creation: String,
    /// Set by a source when the object's newest version did not convert: this is the
    /// last good version, kept, and the problem goes into the object's status
    /// (`generation` is then the newest version's, the one the status is about).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// One input object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Object {
    GatewayClass(GatewayClass),
    Gateway(Gateway),
    HttpRoute(HttpRoute),
    ReferenceGrant(ReferenceGrant),
    Service(Service),
    EndpointSlice(EndpointSlice),
    Namespace(Namespace),
    Secret(Secret),
    ConfigMap(ConfigMap),
    BackendTlsPolicy(BackendTlsPolicy),
}

impl Object {
    pub fn id(&self) -> ObjectId {
        let (kind, key) = match self {
            Object::GatewayClass(o) => (Kind::GatewayClass, ObjectKey::cluster(&o.name)),
            Object::Gateway(o) => (Kind::Gateway, o.meta.key.clone()),
            Object::HttpRoute(o) => (Kind::HttpRoute, o.meta.key.clone()),
            Object::ReferenceGrant(o) => (Kind::ReferenceGrant, o.key.clone()),
            Object::Service(o) => (Kind::Service, o.key.clone()),
            Object::EndpointSlice(o) => (Kind::EndpointSlice, o.key.clone()),
            Object::Namespace(o) => (Kind::Namespace, ObjectKey::cluster(&o.name)),
            Object::Secret(o) => (Kind::Secret, o.key.clone()),
            Object::ConfigMap(o) => (Kind::ConfigMap, o.key.clone()),
            Object::BackendTlsPolicy(o) => (Kind::BackendTlsPolicy, o.meta.key.clone()),
        };
        ObjectId { kind, key }
    }

    /// This object (a last good version) marked with the problem of its newest
    /// version, `generation` when known: for the kinds that have a status (Gateway,
    /// HTTPRoute). Other kinds have nowhere to report it: `None`.
    pub fn with_problem(&self, problem: &str, generation: Option<i64>) -> Option<Object> {
        let mut object = self.clone();
        let meta = match &mut object {
            Object::Gateway(g) => &mut g.meta,
            Object::HttpRoute(r) => &mut r.meta,
            Object::BackendTlsPolicy(p) => &mut p.meta,
            _ => return None,
        };
        meta.problem = Some(problem.to_owned());
        if let Some(generation) = generation {
            meta.generation = generation;
        }
        Some(object)
    }
}

/// A change as a source emits it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Change {
    /// Insert, or replace the object with the same identity.
    Apply(Object),
    /// Remove the object; deleting an unknown object is a no-op.
    Delete(ObjectId),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GatewayClass {
    pub name: String,
    pub controller_name: String,
    pub generation: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Gateway {
    pub meta: Meta,
    pub class_name: String,
    pub listeners: Vec<Listener>,
    /// `spec.infrastructure.parametersRef` as `group/kind/name`. Sluice supports no
    /// parameter kinds, so a Gateway with one is not accepted (`InvalidParameters`).
    pub parameters_ref: Option<String>,
    /// `spec.addresses`, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<GatewayAddress>,
    /// `spec.tls.frontend`: client certificate validation for HTTPS listeners, the
    /// default (`port: None`) first, then the per-port overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frontend_validation: Vec<FrontendValidation>,
}

/// One client certificate validation setting of `spec.tls.frontend`: the default
/// (`port: None`) or a `perPort` override, which replaces the default for the HTTPS
/// listeners on its port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FrontendValidation {
    pub port: Option<u16>,
    pub client: ClientValidation,
}

/// `validation`: the CA bundles client certificates must chain to, and whether a
/// connection without a valid certificate is still accepted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientValidation {
    /// `caCertificateRefs` (group, kind, namespace, name), in order.
    pub ca_refs: Vec<SecretRef>,
    /// `mode: AllowInsecureFallback` (the default is `AllowValidOnly`).
    pub insecure_fallback: bool,
}

/// One requested Gateway address (`GatewaySpecAddress`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GatewayAddress {
    /// `IPAddress` (the default), `Hostname`, `NamedAddress` or a domain-prefixed type.
    pub type_: String,
    /// Empty: the implementation assigns one.
    pub value: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Listener {
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
    /// Lower-cased; `*.example.com` for wildcards.
    pub hostname: Option<String>,
    pub allowed_namespaces: FromNamespaces,
    /// Empty: the protocol's default kinds.
    pub allowed_kinds: Vec<GroupKind>,
    /// TLS settings, for HTTPS listeners (terminated at Envoy).
    pub tls: Option<ListenerTls>,
    /// Why the listener is invalid as written (e.g. an `allowedRoutes` selector that
    /// is missing or malformed): it is then not accepted, and only it; the rest of
    /// its Gateway is unaffected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    Http,
    Https,
    Tls,
    Tcp,
    Udp,
    Other(String),
}

impl std::fmt::Display for Protocol {
    /// The protocol as the Gateway API spells it (`HTTP`, `HTTPS`, `TLS`, `TCP`,
    /// `UDP`, or the listener's own string).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Tls => "TLS",
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Other(s) => s,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ListenerTls {
    pub mode_terminate: bool,
    pub certificate_refs: Vec<SecretRef>,
}

/// A typed reference to a namespaced object (`SecretObjectReference`, and the
/// `ObjectReference` of CA certificate refs): group, kind, namespace (`None`: the
/// referrer's), name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SecretRef {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FromNamespaces {
    Same,
    All,
    Selector(LabelSelector),
}

/// A Kubernetes label selector; `match_labels` entries are `In` requirements with one
/// value. An empty selector selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Requirement {
    pub key: String,
    pub op: SelectorOp,
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SelectorOp {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupKind {
    /// Empty for the core group.
    pub group: String,
    pub kind: String,
}

/// The Gateway API's group.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// The kinds Sluice resolves references to, spelled as the API spells them. Group
/// and kind comparisons happen only in the predicates below (`is_gateway`,
/// `is_service`, `is_http_route`), so every crate agrees on them.
pub mod kinds {
    pub const GATEWAY: &str = "Gateway";
    pub const HTTP_ROUTE: &str = "HTTPRoute";
    pub const SERVICE: &str = "Service";
    pub const SECRET: &str = "Secret";
    pub const CONFIG_MAP: &str = "ConfigMap";
    pub const BACKEND_TLS_POLICY: &str = "BackendTLSPolicy";
}

/// `group`/`kind` names the core group's Service (the core group is empty).
fn is_core_service(group: &str, kind: &str) -> bool {
    group.is_empty() && kind == kinds::SERVICE
}

/// `group`/`kind` names the Gateway API's HTTPRoute.
fn is_gateway_http_route(group: &str, kind: &str) -> bool {
    group == GATEWAY_GROUP && kind == kinds::HTTP_ROUTE
}

impl GroupKind {
    /// `gateway.networking.k8s.io/HTTPRoute`.
    pub fn http_route() -> Self {
        Self {
            group: GATEWAY_GROUP.into(),
            kind: kinds::HTTP_ROUTE.into(),
        }
    }

    /// Whether this names HTTPRoute (in `allowedRoutes.kinds`, an empty group counts
    /// as the Gateway API's).
    pub fn is_http_route(&self) -> bool {
        self.kind == kinds::HTTP_ROUTE && (self.group.is_empty() || self.group == GATEWAY_GROUP)
    }
}

impl SecretRef {
    /// Whether this refers to a core Secret (the defaults), the only certificate
    /// kind Sluice resolves.
    pub fn is_secret(&self) -> bool {
        self.group.is_empty() && self.kind == kinds::SECRET
    }

    /// Whether this refers to a core ConfigMap, the only CA certificate kind
    /// Sluice resolves.
    pub fn is_config_map(&self) -> bool {
        self.group.is_empty() && self.kind == kinds::CONFIG_MAP
    }
}

impl GrantFrom {
    /// Whether this admits Gateways (their certificate references).
    pub fn is_gateway(&self) -> bool {
        self.group == GATEWAY_GROUP && self.kind == kinds::GATEWAY
    }
}

impl GrantTo {
    /// Whether this admits references to Secrets.
    pub fn is_secret(&self) -> bool {
        self.group.is_empty() && self.kind == kinds::SECRET
    }

    /// Whether this admits references to ConfigMaps.
    pub fn is_config_map(&self) -> bool {
        self.group.is_empty() && self.kind == kinds::CONFIG_MAP
    }
}

impl ParentRef {
    /// Whether this refers to a Gateway (`gateway.networking.k8s.io/Gateway`, the
    /// defaults), the only parent kind Sluice serves.
    pub fn is_gateway(&self) -> bool {
        self.group == GATEWAY_GROUP && self.kind == kinds::GATEWAY
    }
}

impl BackendRef {
    /// Whether this refers to a core Service (the defaults); anything else is
    /// `InvalidKind`.
    pub fn is_service(&self) -> bool {
        is_core_service(&self.group, &self.kind)
    }
}

impl GrantFrom {
    /// Whether this admits HTTPRoutes.
    pub fn is_http_route(&self) -> bool {
        is_gateway_http_route(&self.group, &self.kind)
    }
}

impl GrantTo {
    /// Whether this admits references to Services.
    pub fn is_service(&self) -> bool {
        is_core_service(&self.group, &self.kind)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HttpRoute {
    pub meta: Meta,
    pub parent_refs: Vec<ParentRef>,
    /// Lower-cased.
    pub hostnames: Vec<String>,
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ParentRef {
    pub group: String,
    pub kind: String,
    /// `None`: the route's namespace.
    pub namespace: Option<String>,
    pub name: String,
    pub section_name: Option<String>,
    pub port: Option<u16>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Rule {
    pub name: Option<String>,
    /// Never empty: the source fills the spec's default (`PathPrefix /`).
    pub matches: Vec<RouteMatch>,
    pub filters: Vec<Filter>,
    pub backends: Vec<BackendRef>,
    pub timeouts: Timeouts,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RouteMatch {
    pub path: PathMatch,
    pub headers: Vec<ValueMatch>,
    pub query: Vec<ValueMatch>,
    /// Upper-case HTTP method.
    pub method: Option<String>,
}

impl Default for RouteMatch {
    fn default() -> Self {
        Self {
            path: PathMatch::Prefix("/".into()),
            headers: vec![],
            query: vec![],
            method: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
}

/// A header or query-parameter match.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ValueMatch {
    pub name: String,
    pub value: String,
    pub regex: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Filter {
    RequestHeaders(HeaderModifier),
    ResponseHeaders(HeaderModifier),
    Redirect(Redirect),
    UrlRewrite(UrlRewrite),
    Mirror(Mirror),
    /// A filter type this implementation does not support (e.g. `ExtensionRef`,
    /// `CORS`): the rule is reported and answers 500.
    Unsupported(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HeaderModifier {
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Redirect {
    /// `http` or `https`.
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
    pub port: Option<u16>,
    /// 301, 302 (default), 303, 307 or 308.
    pub status_code: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PathModifier {
    ReplaceFullPath(String),
    ReplacePrefixMatch(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UrlRewrite {
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Mirror {
    pub backend: BackendRef,
    /// Fraction of requests mirrored, as numerator / denominator; `None`: all.
    pub fraction: Option<(u32, u32)>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BackendRef {
    pub group: String,
    pub kind: String,
    /// `None`: the route's namespace.
    pub namespace: Option<String>,
    pub name: String,
    pub port: Option<u16>,
    pub weight: u32,
    pub filters: Vec<Filter>,
}

/// Durations in milliseconds; `Some(0)` disables the timeout.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timeouts {
    pub request_ms: Option<u64>,
    pub backend_request_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReferenceGrant {
    pub key: ObjectKey,
    pub from: Vec<GrantFrom>,
    pub to: Vec<GrantTo>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GrantFrom {
    pub group: String,
    pub kind: String,
    pub namespace: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GrantTo {
    pub group: String,
    pub kind: String,
    pub name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Service {
    pub key: ObjectKey,
    pub ports: Vec<ServicePort>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServicePort {
    /// Empty for a single unnamed port.
    pub name: String,
    pub port: u16,
    /// `spec.ports[].appProtocol`, e.g. `kubernetes.io/h2c`.
    pub app_protocol: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EndpointSlice {
    pub key: ObjectKey,
    /// The `kubernetes.io/service-name` label.
    pub service_name: Option<String>,
    pub ports: Vec<EndpointPort>,
    /// Addresses of ready endpoints only, sorted.
    pub addresses: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EndpointPort {
    /// Empty for an unnamed port; matches `ServicePort::name`.
    pub name: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Namespace {
    pub name: String,
    /// Sorted by key.
    pub labels: Vec<(String, String)>,
}

/// A `kubernetes.io/tls` Secret that a listener may use: its certificate chain and
/// private key as PEM, checked by the source (that the PEM parses, the certificate
/// is well-formed X.509 and the key belongs to it). A Secret that fails the check
/// is kept as data with its `problem`, so a listener that refers to it is reported
/// (`InvalidCertificateRef`) instead of sending Envoy something it rejects.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Secret {
    pub key: ObjectKey,
    /// `tls.crt`: the certificate chain, PEM, leaf first.
    pub cert_chain: String,
    /// `tls.key`: the private key, PEM.
    pub private_key: String,
    /// Why the Secret cannot serve as a listener certificate (wrong type, missing
    /// keys, malformed PEM or X.509, a key that does not match the certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl std::fmt::Debug for Secret {
    /// Never prints the key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("key", &self.key)
            .field("cert_chain_bytes", &self.cert_chain.len())
            .field("private_key_bytes", &self.private_key.len())
            .field("problem", &self.problem)
            .finish()
    }
}

/// A ConfigMap as a CA certificate bundle (`ca.crt`, PEM), which client certificate
/// validation refers to. The source checks it (the key is there and holds PEM
/// X.509 certificates); one that fails is kept with its `problem`, so the
/// listener that refers to it is reported (`InvalidCACertificateRef`). Nothing
/// else of the ConfigMap is held.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConfigMap {
    pub key: ObjectKey,
    /// `ca.crt`, PEM; empty when the ConfigMap has a problem.
    pub ca_bundle: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A `BackendTLSPolicy` (v1): how the Gateway's proxies originate TLS to the
/// Services it targets.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BackendTlsPolicy {
    pub meta: Meta,
    /// `spec.targetRefs`, in order.
    pub targets: Vec<PolicyTarget>,
    /// `spec.validation.caCertificateRefs` (local: group, kind, name), in order.
    pub ca_refs: Vec<LocalRef>,
    /// `spec.validation.wellKnownCACertificates` (`System`), when set.
    pub well_known: Option<String>,
    /// `spec.validation.hostname`: the SNI, and the name the certificate must match
    /// unless `subject_alt_names` is set.
    pub hostname: String,
    /// `spec.validation.subjectAltNames`, in order.
    pub subject_alt_names: Vec<SubjectAltName>,
}

/// `LocalPolicyTargetReferenceWithSectionName`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PolicyTarget {
    pub group: String,
    pub kind: String,
    pub name: String,
    /// A Service port's name.
    pub section: Option<String>,
}

impl PolicyTarget {
    pub fn is_service(&self) -> bool {
        is_core_service(&self.group, &self.kind)
    }
}

/// A reference to an object in the referrer's namespace (`LocalObjectReference`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LocalRef {
    pub group: String,
    pub kind: String,
    pub name: String,
}

impl LocalRef {
    pub fn is_config_map(&self) -> bool {
        self.group.is_empty() && self.kind == kinds::CONFIG_MAP
    }
}

/// One `subjectAltNames` entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SubjectAltName {
    Hostname(String),
    Uri(String),
}

/// The label the API server sets on every Namespace to its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

impl Namespace {
    /// A Namespace as the API server stores it: `labels`, plus
    /// `kubernetes.io/metadata.name` set to its name unless given, sorted by key.
    pub fn new(
        name: impl Into<String>,
        labels: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let name = name.into();
        let mut labels: std::collections::BTreeMap<String, String> = labels.into_iter().collect();
        labels
            .entry(NAMESPACE_NAME_LABEL.to_owned())
            .or_insert_with(|| name.clone());
        Namespace {
            name,
            labels: labels.into_iter().collect(),
        }
    }
}
