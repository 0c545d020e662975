//! The case files (`cases/<Name>.json`) as typed data, and the one table that says
//! which cases this runner does not drive, and why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

/// Cases left out, with the reason printed on their `SKIP` line.
///
/// Everything else named `HTTPRoute*`, `Gateway*` or of a family Sluice serves (see
/// [`FAMILIES_NOT_SERVED`]) is in scope. The README lists this
/// table verbatim; keep it sorted.
pub const SKIPPED: &[(&str, &str)] = &[
    ("BackendTLSPolicyGRPCRoute", "needs GRPCRoute"),
    (
        "BackendTLSPolicyTLSRouteTerminate",
        "needs TLSRoute (TLS listeners)",
    ),
    (
        "GatewayClassObservedGenerationBump",
        "mutates the GatewayClass mid-test",
    ),
    (
        "GatewayInfrastructure",
        "checks generated Kubernetes resources, not HTTP or status (SKIPPED in INDEX.md)",
    ),
    (
        "GatewayInvalidTLSBackendConfiguration",
        "needs the Gateway's spec.tls.backend client certificate",
    ),
    ("GatewayModifyListeners", "mutates the Gateway mid-test"),
    (
        "GatewayObservedGenerationBump",
        "mutates the Gateway mid-test",
    ),
    (
        "GatewayStaticAddresses",
        "patches spec.addresses mid-test (SKIPPED in INDEX.md)",
    ),
    (
        "GatewayTLSBackendClientCertificate",
        "needs the Gateway's spec.tls.backend client certificate",
    ),
    ("HTTPRouteCORS", "needs CORS"),
    (
        "HTTPRouteObservedGenerationBump",
        "mutates the HTTPRoute mid-test",
    ),
    ("HTTPRouteRetry", "needs retries"),
    ("HTTPRouteRetryConnectionError", "needs retries"),
    ("HTTPRouteRetryWithTimeouts", "needs retries"),
];

/// Case families (the extension set) Sluice does not serve yet, with the reason
/// printed on their `SKIP` lines. The README lists this table too.
pub const FAMILIES_NOT_SERVED: &[(&str, &str)] = &[
    ("GRPCRoute", "needs GRPCRoute"),
    ("ListenerSet", "needs ListenerSet"),
    ("TCPRoute", "needs TCPRoute (TCP listeners)"),
    ("TLSRoute", "needs TLSRoute (TLS passthrough listeners)"),
    ("UDPRoute", "needs UDPRoute (UDP listeners)"),
];

/// Extension-set families the runner drives.
pub const SERVED_FAMILIES: &[&str] = &["BackendTLSPolicy"];

/// Why `case` is not driven, if it is not.
pub fn skip_reason(case: &Case) -> Option<String> {
    if let Some((_, reason)) = SKIPPED.iter().find(|(name, _)| *name == case.name) {
        return Some((*reason).to_string());
    }
    if let Some(reason) = FAMILIES_NOT_SERVED
        .iter()
        .find(|(family, _)| {
            case.family.as_deref() == Some(*family) || case.name.starts_with(family)
        })
        .map(|(_, reason)| reason)
    {
        return Some((*reason).to_string());
    }
    let served_family = SERVED_FAMILIES.contains(&case.family.as_deref().unwrap_or_default());
    if !(case.name.starts_with("HTTPRoute") || case.name.starts_with("Gateway") || served_family) {
        return Some("not an HTTPRoute, Gateway or BackendTLSPolicy case".into());
    }
    if let Some(reason) = &case.skipped_reason {
        return Some(format!("the case data says: {reason}"));
    }
    None
}

/// The helpers a request entry may name, and what the runner does with each: the
/// eventually-consistent round trip is the runner's request check; `http.MakeRequest`
/// only builds a request for a custom flow (see [`CUSTOM_FLOWS`]).
const EVENTUALLY_CONSISTENT: &str = "http.MakeRequestAndExpectEventuallyConsistentResponse";
/// The same round trip over HTTPS (SNI `server_name`, a client certificate when
/// `client_certificate` names one).
const TLS_EVENTUALLY_CONSISTENT: &str = "tls.MakeTLSRequestAndExpectEventuallyConsistentResponse";
/// An HTTPS round trip that must fail (`expect_failure: "tls_request_error"`):
/// upstream's `WaitForConsistentFailureResponse` passes once the round trip
/// errors several times in a row.
const TLS_EVENTUALLY_FAILING: &str =
    "tls.MakeTLSRequestAndExpectEventuallyConsistentFailureResponse";
const MAKE_REQUEST: &str = "http.MakeRequest";
/// Upstream's `MakeRequestAndExpectFailure` (`expect_failure: "non_200"`): any
/// response but a 200, three times in a row; a 200 fails the case at once.
const EXPECT_FAILURE: &str = "http.MakeRequestAndExpectFailure";
/// `expect_failure` of [`EXPECT_FAILURE`].
pub const NON_200: &str = "non_200";
/// `expect_failure` of a round trip that must not complete (TLS handshake or
/// request refused).
pub const TLS_REQUEST_ERROR: &str = "tls_request_error";

/// Cases whose request entries carry `custom_flow: true`, with the flow that
/// implements their test body (anything else with a custom flow fails).
pub const CUSTOM_FLOWS: &[(&str, CustomFlow)] = &[(
    "HTTPRouteRequestHeaderModifierBackendWeights",
    CustomFlow::BackendHeaderNamesPod,
)];

/// A test body the extractor left as code, reimplemented by the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomFlow {
    /// Upstream's httproute-request-header-modifier-backend-weights.go: after the
    /// eventually-consistent request passes, 100 round trips, each with exactly one
    /// echoed `Backend` request header that the answering pod's name starts with.
    BackendHeaderNamesPod,
}

/// What the runner does with request entry `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The eventually-consistent round trip (and any `custom` check due after it).
    RoundTrip,
    /// A request built for the case's custom flow, run after all round trips.
    Custom(CustomFlow),
}

/// How each request entry runs, or why the case cannot run: an unknown helper, a
/// custom flow or `custom` type the runner does not implement, or a weighted check
/// whose sanity request does not exist. Nothing in the case data is ignored.
pub fn plan(case: &Case) -> Result<Vec<Step>, String> {
    check_custom(case)?;
    if case.requests.is_empty() && case.statuses.is_empty() && case.custom.is_none() {
        return Err("nothing to check: no requests, no status checks, no custom check".into());
    }
    let flow = CUSTOM_FLOWS
        .iter()
        .find(|(name, _)| *name == case.name)
        .map(|(_, flow)| *flow);
    let steps = case
        .requests
        .iter()
        .enumerate()
        .map(|(i, rc)| step(rc, flow).map_err(|e| format!("request {i} ({:?}): {e}", rc.name)))
        .collect::<Result<Vec<_>, _>>()?;
    if flow.is_some() && !steps.iter().any(|s| matches!(s, Step::Custom(_))) {
        return Err(
            "the runner has a custom flow for this case but no request entry uses it".into(),
        );
    }
    Ok(steps)
}

/// The case's `custom` part is one the runner implements, and its indices exist.
fn check_custom(case: &Case) -> Result<(), String> {
    let requests = case.requests.len();
    match &case.custom {
        Some(Custom::Unsupported) => {
            Err("its `custom` check has a type this runner does not implement".into())
        }
        Some(Custom::WeightedDistribution(spec)) => {
            let index = spec.sanity_request_index;
            match case.requests.get(index) {
                None => Err(format!(
                    "weighted_distribution.sanity_request_index {index} is out of range \
                     ({requests} requests)"
                )),
                Some(rc) if rc.helper != EVENTUALLY_CONSISTENT || rc.custom_flow => Err(format!(
                    "the weighted check's sanity request {index} is not a round trip"
                )),
                Some(_) => Ok(()),
            }
        }
        Some(Custom::Actions { actions }) => {
            match actions.iter().find(|a| a.before_request >= requests) {
                Some(late) => Err(format!(
                    "an action comes before request {}, but the case has {requests} requests",
                    late.before_request
                )),
                None => Ok(()),
            }
        }
        Some(Custom::Websocket(_)) if case.gateway.is_none() => {
            Err("a WebSocket check needs the case's gateway".into())
        }
        Some(Custom::Sequence { steps }) => match steps
            .iter()
            .position(|s| matches!(s, SequenceStep::Unsupported))
        {
            Some(i) => Err(format!(
                "sequence step {i} has an op this runner does not implement"
            )),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

fn step(rc: &RequestCase, flow: Option<CustomFlow>) -> Result<Step, String> {
    match (rc.helper.as_str(), rc.custom_flow, flow) {
        (EVENTUALLY_CONSISTENT | TLS_EVENTUALLY_CONSISTENT, false, _) => Ok(Step::RoundTrip),
        (TLS_EVENTUALLY_FAILING, false, _)
            if rc.expect_failure.as_deref() == Some(TLS_REQUEST_ERROR) =>
        {
            Ok(Step::RoundTrip)
        }
        (EXPECT_FAILURE, false, _) if rc.expect_failure.as_deref() == Some(NON_200) => {
            Ok(Step::RoundTrip)
        }
        (MAKE_REQUEST, true, Some(flow)) => Ok(Step::Custom(flow)),
        (_, true, None) => {
            Err("custom_flow is set and the runner implements none for this case".into())
        }
        (helper, custom_flow, _) => Err(format!(
            "helper {helper:?} (custom_flow {custom_flow}) is not one the runner implements"
        )),
    }
}

/// Every `cases/*.json` under `dir`, sorted by file name.
pub fn load_all(dir: &Path) -> anyhow::Result<Vec<Case>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("cases"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f)?;
            let value: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", f.display()))?;
            let family = value["family"].as_str();
            let mut case: Case = if family
                .is_some_and(|family| FAMILIES_NOT_SERVED.iter().any(|(f, _)| *f == family))
            {
                // Skipped whole: its request and check shapes (gRPC, TCP, ...) are
                // not read until the runner drives that family.
                Case {
                    family: family.map(str::to_owned),
                    ..Case::empty(value["name"].as_str().unwrap_or_default(), dir)
                }
            } else {
                serde_json::from_value(value).with_context(|| format!("parsing {}", f.display()))?
            };
            case.dir = dir.to_path_buf();
            Ok(case)
        })
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub name: String,
    /// The case set the case came from (its `manifests/` are there).
    #[serde(skip)]
    pub dir: PathBuf,
    /// The route or policy family, in the extension set (`GRPCRoute`, `TLSRoute`, ...).
    #[serde(default)]
    pub family: Option<String>,
    pub manifests: Vec<String>,
    #[serde(default)]
    pub requests: Vec<RequestCase>,
    #[serde(default)]
    pub statuses: Vec<StatusCheck>,
    /// The Gateway the test body talks to (custom checks without request entries).
    pub gateway: Option<GatewayKey>,
    /// What the test body does beyond its request entries.
    pub custom: Option<Custom>,
    /// Set by the extractor when the test body cannot be expressed as data.
    #[serde(default)]
    pub skipped_reason: Option<String>,
}

impl Case {
    /// A case with nothing to apply, request or check.
    pub fn empty(name: &str, dir: &Path) -> Self {
        Case {
            name: name.to_owned(),
            dir: dir.to_path_buf(),
            family: None,
            manifests: vec![],
            requests: vec![],
            statuses: vec![],
            gateway: None,
            custom: None,
            skipped_reason: None,
        }
    }
}

/// A case's `custom` part: the flows the extractor could not turn into request entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Custom {
    /// After request `sanity_request_index` passes, its request is sent `total_requests`
    /// times and the echoed backends must split as `expected_weights` say.
    WeightedDistribution(WeightedDistribution),
    /// After each request entry passes, it is sent many more times (with a fresh request
    /// id) and the share the mirror backend logs must match `mirrored_to[].percent`.
    PercentageMirrorDistribution {},
    /// Object changes made between request entries.
    Actions { actions: Vec<Action> },
    /// A WebSocket exchange through the case's Gateway.
    Websocket(WebSocketCheck),
    /// Object changes and checks run in order after the statuses and requests.
    Sequence { steps: Vec<SequenceStep> },
    #[serde(other)]
    Unsupported,
}

/// One step of a `sequence` (the extension set's README, "`custom` types").
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SequenceStep {
    /// Saves an object's `data[key]` or the value at a dotted `field` as `${save_as}`.
    Read {
        kind: String,
        namespace: String,
        name: String,
        key: Option<String>,
        field: Option<String>,
        save_as: String,
    },
    /// A JSON merge patch (RFC 7386) of one object.
    Patch {
        patch_type: String,
        kind: String,
        namespace: String,
        name: String,
        patch: serde_json::Value,
    },
    /// Polls one status check (once, when it says `immediate`).
    Status { status: Box<StatusCheck> },
    /// Creates an object.
    Create { object: serde_json::Value },
    /// `<dotted field> != ${name}`: the field of the object `${name}` was read from.
    Assert { expect: String },
    #[serde(other)]
    Unsupported,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WeightedDistribution {
    pub sanity_request_index: usize,
    pub expected_weights: BTreeMap<String, f64>,
    pub total_requests: usize,
    pub concurrency: usize,
    pub tolerance: f64,
    pub max_attempts: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Action {
    /// Index of the request entry the action comes before.
    pub before_request: usize,
    /// `"delete"`.
    pub action: String,
    pub kind: String,
    #[serde(default)]
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebSocketCheck {
    /// `ws://<gateway ... addr>/path`; only the path is used.
    pub url: String,
    pub exchange: Vec<WebSocketStep>,
}

/// One message sent and the echo expected back, as text or as hex-encoded bytes.
#[derive(Debug, Clone, Deserialize)]
pub struct WebSocketStep {
    pub send_text: Option<String>,
    pub expect_text: Option<String>,
    pub send_binary_hex: Option<String>,
    pub expect_binary_hex: Option<String>,
}

pub use crate::processes::GatewayKey;

#[derive(Debug, Clone, Deserialize)]
pub struct RequestCase {
    pub name: String,
    /// The upstream helper the entry was extracted from (see [`plan`]).
    pub helper: String,
    /// The entry is part of a test body the extractor could not turn into data.
    #[serde(default)]
    pub custom_flow: bool,
    pub gateway: RequestGateway,
    pub scheme: String,
    /// `null` for the extension set's non-HTTP schemes (gRPC, TCP, TLS, UDP).
    #[serde(deserialize_with = "null_as_default")]
    pub request: Request,
    pub expected_request: Option<ExpectedRequest>,
    #[serde(deserialize_with = "null_as_default")]
    pub response: Response,
    pub redirect: Option<Redirect>,
    #[serde(default)]
    pub backend: String,
    #[serde(default)]
    pub namespace: String,
    pub mirrored_to: Option<Vec<Mirror>>,
    pub request_id_query_param: Option<String>,
    pub backend_set_response_headers: Option<BTreeMap<String, String>>,
    pub expect_failure: Option<String>,
    /// HTTPS: the SNI the client sends.
    #[serde(default)]
    pub server_name: Option<String>,
    /// HTTPS: the generated Secret whose certificate the client presents.
    #[serde(default)]
    pub client_certificate: Option<ClientCertificate>,
}

/// A case's `client_certificate`: the generated Secret whose certificate the client
/// presents.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClientCertificate {
    pub secret: SecretName,
    /// The Secret's data key holding the certificate (`tls.crt`).
    pub part: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SecretName {
    pub namespace: String,
    pub name: String,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Deserialize)]
pub struct RequestGateway {
    pub namespace: String,
    pub name: String,
    pub listener: Option<String>,
    pub port: Option<u16>,
}

impl RequestGateway {
    pub fn key(&self) -> GatewayKey {
        GatewayKey {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Request {
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub protocol: Option<String>,
    /// Never sent: with no `expected_request`, the SNI the backend must have seen
    /// (the Gateway's when it originates TLS).
    #[serde(default)]
    pub sni: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExpectedRequest {
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub method: String,
    pub path: String,
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub absent_headers: Vec<String>,
    /// The SNI the backend must have seen.
    #[serde(default)]
    pub sni: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Response {
    #[serde(default)]
    pub status_codes: Vec<u16>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub absent_headers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub path: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Mirror {
    pub name: String,
    pub namespace: String,
    /// Set for percentage mirrors, which the `percentage_mirror_distribution` check
    /// covers; the per-request log check only looks for the others.
    pub percent: Option<f64>,
}

/// One status expectation; which fields are set depends on `check`.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusCheck {
    pub check: String,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub parent: Option<ParentExpectation>,
    pub conditions: Option<Vec<Condition>>,
    /// `"all"` or a list of listener names.
    pub listeners: Option<serde_json::Value>,
    pub listener_conditions: Option<Vec<Condition>>,
    #[serde(default)]
    pub address_required: bool,
    pub listener_status: Option<Vec<ListenerExpectation>>,
    pub parents: Option<Vec<RouteParentExpectation>>,
    #[serde(default)]
    pub namespace_required: bool,
    /// A policy's ancestor (`BackendTLSPolicyMustHaveCondition`).
    pub ancestor: Option<AncestorExpectation>,
    /// `NamespacesMustBeReady`: the namespaces whose Gateways must be ready.
    pub namespaces: Option<Vec<String>>,
    /// Read once, not polled: it must hold as soon as the checks before it do.
    #[serde(default)]
    pub immediate: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AncestorExpectation {
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ParentExpectation {
    pub name: String,
    pub namespace: String,
    #[serde(rename = "sectionName")]
    pub section_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Condition {
    #[serde(rename = "type", alias = "Type")]
    pub type_: String,
    #[serde(alias = "Status")]
    pub status: String,
    /// `None` or empty: any reason.
    #[serde(alias = "Reason")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListenerExpectation {
    pub name: String,
    pub attached_routes: i64,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub supported_kinds: Vec<KindExpectation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KindExpectation {
    pub group: Option<String>,
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RouteParentExpectation {
    pub parent_ref: ParentRefExpectation,
    pub controller_name: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParentRefExpectation {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub name: String,
    pub namespace: Option<String>,
    pub section_name: Option<String>,
}
