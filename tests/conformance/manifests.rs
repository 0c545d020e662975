//! The manifest directory handed to `sluice serve --from`: the base manifests and the
//! case's own, placeholders substituted, plus what a cluster would have added on its
//! own (the GatewayClass, `kubernetes.io/metadata.name` namespace labels, and
//! EndpointSlices pointing at the in-process echo backends).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::cases::{Case, GatewayKey};
use crate::echo::ServicePort;

pub const GATEWAY_CLASS: &str = "sluice";
pub const CONTROLLER_NAME: &str = "sluice.dev/gateway-controller";

/// `metadata.generation` of every loaded object (see [`set_generation`]).
pub const GENERATION: i64 = 7;

/// The backend the upstream ServiceTypes test points hand-made EndpointSlices at.
const MANUAL_SLICE_BACKEND: (&str, &str) = ("gateway-conformance-infra", "infra-backend-v1");

/// A Deployment: one echo server stands in for all of its pods.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub namespace: String,
    pub name: String,
    pub pod_labels: BTreeMap<String, String>,
}

/// A Gateway's listeners, in spec order, as (name, port).
#[derive(Debug, Clone)]
pub struct Gateway {
    pub key: GatewayKey,
    pub listeners: Vec<(String, u16)>,
}

/// Reads the base and case manifests into JSON values, one per YAML document.
pub fn load(cases_dir: &Path, case: &Case) -> anyhow::Result<Vec<Value>> {
    // The extension set has no base of its own: it shares the main set's.
    let own_base = cases_dir.join("manifests/base/manifests.yaml");
    let base = if own_base.is_file() {
        own_base
    } else {
        cases_dir.join("../conformance/manifests/base/manifests.yaml")
    };
    let mut files = vec![(base, "base/manifests.yaml".to_string())];
    files.extend((case.manifests.iter()).map(|f| (cases_dir.join("manifests").join(f), f.clone())));
    let mut docs = Vec::new();
    for (path, file) in files {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .replace("{GATEWAY_CLASS_NAME}", GATEWAY_CLASS)
            .replace("{GATEWAY_CONTROLLER_NAME}", CONTROLLER_NAME);
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).with_context(|| format!("parsing {file}"))?;
            if value.is_object() {
                docs.push(value);
            }
        }
    }
    docs.extend(
        crate::tls::material()
            .map_err(anyhow::Error::msg)?
            .docs
            .iter()
            .cloned(),
    );
    add_cluster_defaults(&mut docs);
    set_generation(&mut docs, GENERATION);
    Ok(docs)
}

/// What the API server or the suite would add: the GatewayClass and namespace labels.
fn add_cluster_defaults(docs: &mut Vec<Value>) {
    for doc in docs.iter_mut().filter(|d| kind(d) == "Namespace") {
        let name = str_at(doc, "/metadata/name").to_string();
        if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(labels) = labels.as_object_mut() {
                labels
                    .entry("kubernetes.io/metadata.name")
                    .or_insert(json!(name));
            }
        }
    }
    let has_class = docs
        .iter()
        .any(|d| kind(d) == "GatewayClass" && str_at(d, "/metadata/name") == GATEWAY_CLASS);
    if !has_class {
        docs.push(json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {"controllerName": CONTROLLER_NAME},
        }));
    }
}

pub fn kind(doc: &Value) -> &str {
    str_at(doc, "/kind")
}

pub fn str_at<'a>(doc: &'a Value, pointer: &str) -> &'a str {
    doc.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn labels_at(doc: &Value, pointer: &str) -> BTreeMap<String, String> {
    doc.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

pub fn deployments(docs: &[Value]) -> Vec<Deployment> {
    docs.iter()
        .filter(|d| kind(d) == "Deployment")
        .map(|d| Deployment {
            namespace: str_at(d, "/metadata/namespace").to_string(),
            name: str_at(d, "/metadata/name").to_string(),
            pod_labels: labels_at(d, "/spec/template/metadata/labels"),
        })
        .collect()
}

pub fn gateways(docs: &[Value]) -> Vec<Gateway> {
    let mut out: Vec<Gateway> = docs
        .iter()
        .filter(|d| kind(d) == "Gateway")
        .map(|d| Gateway {
            key: GatewayKey {
                namespace: str_at(d, "/metadata/namespace").to_string(),
                name: str_at(d, "/metadata/name").to_string(),
            },
            listeners: d
                .pointer("/spec/listeners")
                .and_then(Value::as_array)
                .map(|ls| {
                    ls.iter()
                        .map(|l| {
                            let port = l["port"].as_u64().and_then(|p| u16::try_from(p).ok());
                            (str_at(l, "/name").to_string(), port.unwrap_or_default())
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Services with a selector, mapped to the Deployment whose pods they select.
pub fn service_backends(docs: &[Value]) -> BTreeMap<(String, String), Deployment> {
    let deployments = deployments(docs);
    let mut out = BTreeMap::new();
    for svc in docs.iter().filter(|d| kind(d) == "Service") {
        let namespace = str_at(svc, "/metadata/namespace");
        let selector = labels_at(svc, "/spec/selector");
        if selector.is_empty() {
            continue;
        }
        let found = deployments.iter().find(|d| {
            d.namespace == namespace && selector.iter().all(|(k, v)| d.pod_labels.get(k) == Some(v))
        });
        if let Some(d) = found {
            let name = str_at(svc, "/metadata/name").to_string();
            out.insert((namespace.to_string(), name), d.clone());
        }
    }
    out
}

/// Every Service port that needs an echo listener, and the Deployment (namespace,
/// name) whose echo server answers on it: each TCP port of a Service that selects a
/// Deployment's pods, and each port of the case's own endpoint-less IPv4 slices
/// (filled in as the upstream test does at run time, with `MANUAL_SLICE_BACKEND`).
pub fn service_ports(docs: &[Value]) -> Vec<(ServicePort, (String, String))> {
    let mut out = Vec::new();
    for ((namespace, name), backend) in service_backends(docs) {
        let Some(svc) = find(docs, "Service", &namespace, &name) else {
            continue;
        };
        for p in tcp_ports(svc) {
            let Some(port) = port_number(p) else { continue };
            let key = ServicePort {
                namespace: namespace.clone(),
                service: name.clone(),
                port,
            };
            out.push((key, (backend.namespace.clone(), backend.name.clone())));
        }
    }
    let manual = (
        MANUAL_SLICE_BACKEND.0.to_string(),
        MANUAL_SLICE_BACKEND.1.to_string(),
    );
    for slice in docs.iter().filter(|d| is_manual_slice(d)) {
        for p in slice["ports"].as_array().into_iter().flatten() {
            if let Some(key) = manual_slice_port(docs, slice, str_at(p, "/name")) {
                out.push((key, manual.clone()));
            }
        }
    }
    out
}

/// A PEM certificate chain and its private key.
pub type PemIdentity = (Vec<u8>, Vec<u8>);

/// echo-basic's TLS port (the default of its `HTTPS_PORT`).
const ECHO_TLS_PORT: u64 = 8443;

/// The PEM certificate chain and key the echo listener for `service_port` serves
/// HTTPS with, as echo-basic would: the Service port targets echo-basic's TLS port on
/// a Deployment whose container sets `TLS_SERVER_CERT` and `TLS_SERVER_PRIVKEY`, and
/// the files come from the Secret its volume mounts. `None`: a cleartext port.
pub fn tls_identity(
    docs: &[Value],
    service_port: &ServicePort,
) -> Result<Option<PemIdentity>, String> {
    use base64::Engine as _;
    let (namespace, service) = (&service_port.namespace, &service_port.service);
    let targets_tls = find(docs, "Service", namespace, service).is_some_and(|svc| {
        tcp_ports(svc).any(|p| {
            port_number(p) == Some(service_port.port)
                && p["targetPort"].as_u64() == Some(ECHO_TLS_PORT)
        })
    });
    let backends = service_backends(docs);
    let Some(backend) = backends.get(&(namespace.clone(), service.clone())) else {
        return Ok(None);
    };
    let Some(deployment) = find(docs, "Deployment", &backend.namespace, &backend.name) else {
        return Ok(None);
    };
    let spec = &deployment["spec"]["template"]["spec"];
    let env: Vec<&str> = (spec["containers"].as_array().into_iter().flatten())
        .flat_map(|c| c["env"].as_array().into_iter().flatten())
        .map(|e| str_at(e, "/name"))
        .collect();
    if !targets_tls || !env.contains(&"TLS_SERVER_CERT") || !env.contains(&"TLS_SERVER_PRIVKEY") {
        return Ok(None);
    }
    let what = format!("Deployment {}/{}", backend.namespace, backend.name);
    let secret_name = (spec["volumes"].as_array().into_iter().flatten())
        .find_map(|v| v.pointer("/secret/secretName").and_then(Value::as_str))
        .ok_or_else(|| format!("{what} serves TLS but mounts no Secret"))?;
    let secret = find(docs, "Secret", &backend.namespace, secret_name)
        .ok_or_else(|| format!("{what} mounts Secret {secret_name}, which is not generated"))?;
    let data = |key: &str| {
        let b64 = secret["data"][key].as_str().unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("Secret {secret_name} data.{key}: {e}"))
    };
    Ok(Some((data("tls.crt")?, data("tls.key")?)))
}

fn find<'a>(docs: &'a [Value], kind_: &str, namespace: &str, name: &str) -> Option<&'a Value> {
    docs.iter().find(|d| {
        kind(d) == kind_
            && str_at(d, "/metadata/namespace") == namespace
            && str_at(d, "/metadata/name") == name
    })
}

fn tcp_ports(svc: &Value) -> impl Iterator<Item = &Value> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p["protocol"].as_str().unwrap_or("TCP") == "TCP")
}

fn port_number(p: &Value) -> Option<u16> {
    p["port"].as_u64().and_then(|n| u16::try_from(n).ok())
}

fn is_manual_slice(doc: &Value) -> bool {
    kind(doc) == "EndpointSlice"
        && str_at(doc, "/addressType") == "IPv4"
        && doc
            .get("endpoints")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
}

/// The Service port a hand-made slice's port (by name) belongs to.
fn manual_slice_port(docs: &[Value], slice: &Value, port_name: &str) -> Option<ServicePort> {
    let namespace = str_at(slice, "/metadata/namespace");
    let service = str_at(slice, "/metadata/labels/kubernetes.io~1service-name");
    let svc = find(docs, "Service", namespace, service)?;
    let port = tcp_ports(svc)
        .find(|p| str_at(p, "/name") == port_name)
        .and_then(port_number)?;
    Some(ServicePort {
        namespace: namespace.to_string(),
        service: service.to_string(),
        port,
    })
}

/// EndpointSlices for every selected Service, each port pointing at the echo listener
/// for that Service port, and the case's own endpoint-less IPv4 slices filled in.
///
/// `listeners` maps each Service port to its echo listener's port on 127.0.0.1.
pub fn endpoint_slices(docs: &mut [Value], listeners: &BTreeMap<ServicePort, u16>) -> Vec<Value> {
    let backends = service_backends(docs);
    let mut out = Vec::new();
    for (namespace, name) in backends.keys() {
        let Some(svc) = find(docs, "Service", namespace, name) else {
            continue;
        };
        let slice_ports: Vec<Value> = tcp_ports(svc)
            .filter_map(|p| {
                let key = ServicePort {
                    namespace: namespace.clone(),
                    service: name.clone(),
                    port: port_number(p)?,
                };
                let real = listeners.get(&key)?;
                let mut sp = json!({"name": str_at(p, "/name"), "port": real, "protocol": "TCP"});
                if let Some(app) = p.get("appProtocol") {
                    sp["appProtocol"] = app.clone();
                }
                Some(sp)
            })
            .collect();
        out.push(json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": format!("{name}-conformance"),
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
            "ports": slice_ports,
        }));
    }
    fill_manual_slices(docs, listeners);
    out
}

fn fill_manual_slices(docs: &mut [Value], listeners: &BTreeMap<ServicePort, u16>) {
    let manual: Vec<usize> = (0..docs.len())
        .filter(|&i| is_manual_slice(&docs[i]))
        .collect();
    for i in manual {
        let names: Vec<String> = docs[i]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| str_at(p, "/name").to_string())
            .collect();
        let real: Vec<Option<u16>> = names
            .iter()
            .map(|n| manual_slice_port(docs, &docs[i], n).and_then(|k| listeners.get(&k).copied()))
            .collect();
        let slice = &mut docs[i];
        slice["endpoints"] = json!([{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}]);
        if let Some(slice_ports) = slice.get_mut("ports").and_then(Value::as_array_mut) {
            for (p, real) in slice_ports.iter_mut().zip(real) {
                if let Some(real) = real {
                    p["port"] = json!(real);
                }
            }
        }
    }
}

/// Service ports that some HTTPRoute sends traffic to: its rules' `backendRefs` and
/// the `backendRef` of every RequestMirror filter (rule or backendRef level).
pub fn referenced_service_ports(docs: &[Value]) -> BTreeSet<ServicePort> {
    let mut out = BTreeSet::new();
    for route in docs.iter().filter(|d| kind(d) == "HTTPRoute") {
        let namespace = str_at(route, "/metadata/namespace");
        let mut refs: Vec<&Value> = Vec::new();
        for rule in route
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let backends = rule["backendRefs"].as_array().into_iter().flatten();
            refs.extend(backends.clone());
            let filters = rule["filters"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(backends.flat_map(|b| b["filters"].as_array().into_iter().flatten()));
            refs.extend(filters.filter_map(|f| f.pointer("/requestMirror/backendRef")));
        }
        out.extend(refs.into_iter().filter_map(|r| {
            let ref_namespace = r["namespace"].as_str().unwrap_or(namespace);
            Some(ServicePort {
                namespace: ref_namespace.to_string(),
                service: str_at(r, "/name").to_string(),
                port: port_number(r)?,
            })
        }));
    }
    out
}

/// Gives every object without a `metadata.generation` the generation `generation`, as
/// an API server would after some updates: status must carry the object's own
/// generation, and 1 (what a reader may assume when the field is absent) would hide
/// an `observedGeneration` that is not read from the object.
pub fn set_generation(docs: &mut [Value], generation: i64) {
    for doc in docs.iter_mut() {
        if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.entry("generation").or_insert(json!(generation));
        }
    }
}

/// Writes `docs` as one multi-document YAML file, `dir/manifests.yaml`, atomically:
/// the text goes to a file beside `dir` first and is renamed into place, so a
/// watcher never reads half a file (and a rewrite is one change).
pub fn write(dir: &Path, docs: &[Value]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut text = String::new();
    for doc in docs {
        text.push_str("---\n");
        text.push_str(&serde_yaml_ng::to_string(doc)?);
    }
    let tmp = dir.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join("manifests.yaml"))
        .with_context(|| format!("renaming {} into {}", tmp.display(), dir.display()))?;
    Ok(())
}
