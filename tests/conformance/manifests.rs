//! The manifest directory handed to `sluice serve --from`: the base manifests and the
//! case's own, placeholders substituted, plus what a cluster would have added on its
//! own (the GatewayClass, `kubernetes.io/metadata.name` namespace labels, and
//! EndpointSlices pointing at the in-process echo backends).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::cases::{Case, GatewayKey};

pub const GATEWAY_CLASS: &str = "sluice";
pub const CONTROLLER_NAME: &str = "sluice.dev/gateway-controller";

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
    let mut files = vec!["base/manifests.yaml".to_string()];
    files.extend(case.manifests.iter().cloned());
    let mut docs = Vec::new();
    for file in files {
        let path = cases_dir.join("manifests").join(&file);
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
    add_cluster_defaults(&mut docs);
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

/// EndpointSlices for every selected Service, pointing at its echo server, and the
/// case's own endpoint-less IPv4 slices filled in as the upstream test does at run time.
///
/// `ports` maps (namespace, deployment) to the echo server's port.
pub fn endpoint_slices(docs: &mut [Value], ports: &BTreeMap<(String, String), u16>) -> Vec<Value> {
    let backends = service_backends(docs);
    let mut out = Vec::new();
    for svc in docs.iter().filter(|d| kind(d) == "Service") {
        let namespace = str_at(svc, "/metadata/namespace").to_string();
        let name = str_at(svc, "/metadata/name").to_string();
        let Some(backend) = backends.get(&(namespace.clone(), name.clone())) else {
            continue;
        };
        let Some(&port) = ports.get(&(backend.namespace.clone(), backend.name.clone())) else {
            continue;
        };
        let slice_ports: Vec<Value> = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|p| p["protocol"].as_str().unwrap_or("TCP") == "TCP")
            .map(|p| {
                let mut sp = json!({"name": str_at(p, "/name"), "port": port, "protocol": "TCP"});
                if let Some(app) = p.get("appProtocol") {
                    sp["appProtocol"] = app.clone();
                }
                sp
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
    let manual = (
        MANUAL_SLICE_BACKEND.0.to_string(),
        MANUAL_SLICE_BACKEND.1.to_string(),
    );
    if let Some(&port) = ports.get(&manual) {
        fill_manual_slices(docs, port);
    }
    out
}

fn fill_manual_slices(docs: &mut [Value], port: u16) {
    for slice in docs.iter_mut().filter(|d| kind(d) == "EndpointSlice") {
        let empty = slice
            .get("endpoints")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if !empty || str_at(slice, "/addressType") != "IPv4" {
            continue;
        }
        slice["endpoints"] = json!([{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}]);
        if let Some(slice_ports) = slice.get_mut("ports").and_then(Value::as_array_mut) {
            for p in slice_ports {
                p["port"] = json!(port);
            }
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
