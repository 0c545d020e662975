//! From one YAML document to a record, or to the warning that says why not.

use gateway_api::{
    backendtlspolicies::BackendTlsPolicy, gatewayclasses::GatewayClass, gateways::Gateway,
    httproutes::HttpRoute, referencegrants::ReferenceGrant,
};
use k8s_openapi::api::{
    core::v1::{ConfigMap, Namespace, Secret, Service},
    discovery::v1::EndpointSlice,
};
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;
use sluice_pipeline::model::{Kind, Object, ObjectId, ObjectKey};

use super::{Parsed, RawObject, Warning, unknown_filters};
use crate::convert::{ToModel, meta::DEFAULT_NAMESPACE};

/// Where a document starts, for warnings.
#[derive(Clone, Copy, Debug)]
pub(super) struct At<'a> {
    pub origin: &'a str,
    pub line: usize,
}

impl At<'_> {
    fn warning(&self, message: String) -> Warning {
        Warning {
            origin: self.origin.to_owned(),
            line: self.line,
            message,
            failed: None,
        }
    }
}

/// BackendTLSPolicy is read at v1 only.
const V1: &str = "gateway.networking.k8s.io/v1";

const GATEWAY_VERSIONS: [&str; 2] = [
    "gateway.networking.k8s.io/v1",
    "gateway.networking.k8s.io/v1beta1",
];

/// The records of one document: none (empty), one, or a `List`'s items.
pub(super) fn document(at: &At<'_>, value: Value) -> Parsed {
    let mut parsed = Parsed::default();
    if value.is_null() {
        return parsed;
    }
    let api_version = text(&value, "apiVersion");
    let kind = text(&value, "kind");
    if api_version == "v1" && kind == "List" {
        let items = value
            .get("items")
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default();
        for item in items {
            parsed.extend(document(at, item));
        }
        return parsed;
    }
    match object(&value, api_version, kind) {
        Some(Ok(object)) => parsed.objects.push(object),
        Some(Err(error)) => {
            let mut warning = at.warning(format!("skipped {}: {error}", describe(&value)));
            warning.failed = identity(&value, kind);
            parsed.warnings.push(warning);
        }
        None => {
            let message = format!(
                "skipped {}: apiVersion {api_version:?} kind {kind:?} is not read by Sluice",
                describe(&value)
            );
            parsed.warnings.push(at.warning(message));
        }
    }
    parsed
}

/// The object of one document as written (a `List`'s items each), into `out`.
pub(super) fn raw(
    at: &At<'_>,
    value: Value,
    out: &mut Vec<RawObject>,
    warnings: &mut Vec<Warning>,
) {
    if value.is_null() {
        return;
    }
    let (api_version, kind) = (text(&value, "apiVersion"), text(&value, "kind"));
    if api_version == "v1" && kind == "List" {
        let items = value.get("items").and_then(Value::as_sequence);
        for item in items.cloned().unwrap_or_default() {
            raw(at, item, out, warnings);
        }
        return;
    }
    let metadata = value.get("metadata");
    let field = |name: &str| metadata.and_then(|m| m.get(name)).and_then(Value::as_str);
    let namespace = match field("namespace") {
        _ if is_cluster_scoped(kind) => "",
        Some(namespace) => namespace,
        None => DEFAULT_NAMESPACE,
    };
    let (Some(name), false) = (field("name"), kind.is_empty()) else {
        let why = format!("skipped {}: no kind or no metadata.name", describe(&value));
        warnings.push(at.warning(why));
        return;
    };
    match serde_json::to_vec(&value) {
        Ok(json) => out.push(RawObject {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            json,
        }),
        Err(e) => warnings.push(at.warning(format!("skipped {}: {e}", describe(&value)))),
    }
}

/// The record of a document of a known kind; `None` for any other kind.
fn object(value: &Value, api_version: &str, kind: &str) -> Option<Result<Object, String>> {
    let gateway = GATEWAY_VERSIONS.contains(&api_version);
    // Sluice reads no status: one written by another controller (or by hand, without
    // a `lastTransitionTime` the typed object requires) must not lose the object.
    let value = || {
        let mut value = value.clone();
        if let Some(map) = value.as_mapping_mut() {
            map.remove("status");
        }
        value
    };
    Some(match (kind, api_version) {
        ("GatewayClass", _) if gateway => convert::<GatewayClass>(value()),
        ("Gateway", _) if gateway => convert::<Gateway>(value()),
        ("HTTPRoute", _) if gateway => http_route(value()),
        ("ReferenceGrant", _) if gateway => convert::<ReferenceGrant>(value()),
        ("BackendTLSPolicy", V1) => convert::<BackendTlsPolicy>(value()),
        ("Service", "v1") => convert::<Service>(value()),
        ("Namespace", "v1") => convert::<Namespace>(value()),
        ("Secret", "v1") => convert::<Secret>(value()),
        ("ConfigMap", "v1") => convert::<ConfigMap>(value()),
        ("EndpointSlice", "discovery.k8s.io/v1") => convert::<EndpointSlice>(value()),
        _ => return None,
    })
}

/// The record of an object of a known kind (`None` for any other kind).
pub(super) fn object_of(value: &Value) -> Option<Result<Object, String>> {
    object(value, text(value, "apiVersion"), text(value, "kind"))
}

/// The record of an object given as JSON text whose apiVersion and kind are known
/// (a log event's), deserialized straight into the typed object: no intermediate
/// tree. `None` when this path cannot decide — a kind Sluice does not read, a
/// document that does not deserialize or convert, an HTTPRoute with a filter type
/// the typed route cannot hold — and [`object_of`] of the parsed document gives
/// the answer and its message. Where both give a record, it is the same record
/// (tested over the conformance manifests and generated clusters).
pub(super) fn object_of_json(api_version: &str, kind: &str, json: &[u8]) -> Option<Object> {
    fn typed<T: DeserializeOwned + ToModel>(json: &[u8]) -> Option<Object> {
        serde_json::from_slice::<T>(json).ok()?.to_object().ok()
    }
    let gateway = GATEWAY_VERSIONS.contains(&api_version);
    match (kind, api_version) {
        ("GatewayClass", _) if gateway => typed::<GatewayClass>(json),
        ("Gateway", _) if gateway => typed::<Gateway>(json),
        ("HTTPRoute", _) if gateway => typed::<HttpRoute>(json),
        ("ReferenceGrant", _) if gateway => typed::<ReferenceGrant>(json),
        ("BackendTLSPolicy", V1) => typed::<BackendTlsPolicy>(json),
        ("Service", "v1") => typed::<Service>(json),
        ("Namespace", "v1") => typed::<Namespace>(json),
        ("Secret", "v1") => typed::<Secret>(json),
        ("ConfigMap", "v1") => typed::<ConfigMap>(json),
        ("EndpointSlice", "discovery.k8s.io/v1") => typed::<EndpointSlice>(json),
        _ => None,
    }
}

/// Deserializes the typed Kubernetes object, then converts it.
fn convert<T: DeserializeOwned + ToModel>(value: Value) -> Result<Object, String> {
    let typed: T = serde_yaml_ng::from_value(value).map_err(|e| e.to_string())?;
    typed.to_object().map_err(|e| e.to_string())
}

/// An HTTPRoute, keeping filter types the typed route cannot hold as unsupported.
fn http_route(mut value: Value) -> Result<Object, String> {
    let stash = unknown_filters::take(&mut value);
    let route: HttpRoute = serde_yaml_ng::from_value(value).map_err(|e| e.to_string())?;
    let mut route = route.to_model().map_err(|e| e.to_string())?;
    unknown_filters::restore(&mut route, stash);
    Ok(Object::HttpRoute(route))
}

/// The identity of a document of a kind Sluice reads, from its metadata.
fn identity(value: &Value, kind: &str) -> Option<ObjectId> {
    let kind = crate::kubernetes::model_kind(kind)?;
    let metadata = value.get("metadata")?;
    let name = metadata.get("name")?.as_str()?;
    let key = match metadata.get("namespace").and_then(Value::as_str) {
        _ if is_cluster_scoped_kind(kind) => ObjectKey::cluster(name),
        Some(namespace) => ObjectKey::new(namespace, name),
        None => ObjectKey::new(DEFAULT_NAMESPACE, name),
    };
    Some(ObjectId { kind, key })
}

fn is_cluster_scoped_kind(kind: Kind) -> bool {
    matches!(kind, Kind::GatewayClass | Kind::Namespace)
}

/// `Kind namespace/name` of a document, for warnings.
fn describe(value: &Value) -> String {
    let metadata = value.get("metadata");
    let field = |name: &str| metadata.and_then(|m| m.get(name)).and_then(Value::as_str);
    let kind = match text(value, "kind") {
        "" if field("name").is_none() => return "a document without kind or name".to_owned(),
        "" => "document without kind",
        kind => kind,
    };
    let name = field("name").unwrap_or("<no name>");
    let key = match field("namespace") {
        Some(namespace) => ObjectKey::new(namespace, name),
        None if is_cluster_scoped(kind) => ObjectKey::cluster(name),
        None => ObjectKey::new(DEFAULT_NAMESPACE, name),
    };
    format!("{kind} {key}")
}

fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "GatewayClass"
            | "Namespace"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
    )
}

/// A top-level string field, empty when absent or not a string.
fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value.get(field).and_then(Value::as_str).unwrap_or_default()
}
