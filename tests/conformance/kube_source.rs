//! The conformance cases through the Kubernetes source: a case's objects are applied to
//! the real API server of the controller tests (`../shared/kube-test-server`), `sluice
//! serve --kube` watches them, and status is read back from the API server instead of
//! the status file. Namespaces cannot be deleted on that server (no controller-manager),
//! so they are applied and kept; every other object of a case is deleted before the
//! next case starts.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::kube_server::Server;
use crate::manifests::{kind, str_at};

/// The objects file of the case applied last, deleted before the next one.
static APPLIED: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Whether a document goes to the API server: the kinds Sluice watches.
fn watched(doc: &Value) -> bool {
    let api = str_at(doc, "/apiVersion");
    api.starts_with("gateway.networking.k8s.io/")
        || (api == "v1" && matches!(kind(doc), "Service" | "Secret" | "ConfigMap"))
        || api == "discovery.k8s.io/v1"
}

fn yaml(docs: &[&Value]) -> Result<String, String> {
    let mut text = String::new();
    for doc in docs {
        let mut doc = (*doc).clone();
        if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("generation"); // the server's to set
        }
        text.push_str("---\n");
        text.push_str(&serde_yaml_ng::to_string(&doc).map_err(|e| e.to_string())?);
    }
    Ok(text)
}

/// Deletes the previous case's objects, then applies this case's (namespaces first).
/// Returns the namespaces, for `--namespace`.
pub fn apply_case(server: &Server, dir: &Path, docs: &[Value]) -> Result<Vec<String>, String> {
    delete_previous(server)?;
    let dir = dir.join("kube");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let namespaces: Vec<&Value> = docs.iter().filter(|d| kind(d) == "Namespace").collect();
    let objects: Vec<&Value> = docs.iter().filter(|d| watched(d)).collect();
    let (ns_file, objects_file) = (dir.join("namespaces.yaml"), dir.join("objects.yaml"));
    for (file, docs) in [(&ns_file, &namespaces), (&objects_file, &objects)] {
        std::fs::write(file, yaml(docs)?).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    *APPLIED.lock().unwrap_or_else(|e| e.into_inner()) = Some(objects_file.clone());
    for file in [&ns_file, &objects_file] {
        let path = file.to_str().ok_or("a non-UTF-8 path")?;
        // Client-side apply: server-side apply of a Service port without `protocol`
        // fails on this API server (1.20's listType=map key bug).
        server
            .kubectl(&["apply", "-f", path], None)
            .map_err(|e| format!("applying the case to the API server: {e:#}"))?;
    }
    Ok(namespaces
        .iter()
        .map(|n| str_at(n, "/metadata/name").to_string())
        .collect())
}

/// Deletes the objects of the case applied last (nothing when there is none).
pub fn delete_previous(server: &Server) -> Result<(), String> {
    let previous = APPLIED.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(file) = previous {
        let path = file.to_str().ok_or("a non-UTF-8 path")?;
        server
            .kubectl(
                &["delete", "--ignore-not-found", "--wait=false", "-f", path],
                None,
            )
            .map_err(|e| format!("deleting the previous case's objects: {e:#}"))?;
    }
    Ok(())
}

/// The case's objects applied again after a sequence step changed them (client-side
/// apply: only what changed is patched; new objects are created).
pub fn reapply(server: &Server, dir: &Path, docs: &[Value]) -> Result<(), String> {
    let file = dir.join("kube/objects.yaml");
    let objects: Vec<&Value> = docs.iter().filter(|d| watched(d)).collect();
    std::fs::write(&file, yaml(&objects)?).map_err(|e| format!("{}: {e}", file.display()))?;
    let path = file.to_str().ok_or("a non-UTF-8 path")?;
    server
        .kubectl(&["apply", "-f", path], None)
        .map(drop)
        .map_err(|e| format!("applying the changed objects: {e:#}"))
}

/// One object as the API server has it.
pub fn get(server: &Server, kind: &str, namespace: &str, name: &str) -> Result<Value, String> {
    let text = server
        .kubectl(
            &["get", &resource(kind), name, "-n", namespace, "-o", "json"],
            None,
        )
        .map_err(|e| format!("reading {kind} {namespace}/{name}: {e:#}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{kind} {namespace}/{name}: {e}"))
}

/// kubectl's name for the resource of `kind`.
fn resource(kind: &str) -> String {
    match kind {
        "Service" | "ConfigMap" | "Secret" | "Namespace" => kind.to_lowercase(),
        _ => format!("{}.gateway.networking.k8s.io", kind.to_lowercase()),
    }
}

/// A case's `delete` action, on the API server.
pub fn delete(server: &Server, kind: &str, namespace: &str, name: &str) -> Result<(), String> {
    let what = resource(kind);
    server
        .kubectl(
            &["delete", &what, name, "-n", namespace, "--wait=false"],
            None,
        )
        .map(drop)
        .map_err(|e| format!("deleting {kind} {namespace}/{name}: {e:#}"))
}

/// Every Gateway's, HTTPRoute's and BackendTLSPolicy's status as the API server has
/// it, in the status file's shape (`gateways[]`, `httproutes[]`, `backendtlspolicies[]`
/// with `namespace`, `name`, `status`).
pub fn status_document(server: &Server) -> Result<Value, String> {
    let text = server
        .kubectl(
            &[
                "get",
                "gateways.gateway.networking.k8s.io,httproutes.gateway.networking.k8s.io,\
                 backendtlspolicies.gateway.networking.k8s.io",
                "--all-namespaces",
                "-o",
                "json",
            ],
            None,
        )
        .map_err(|e| format!("{e:#}"))?;
    let list: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let (mut gateways, mut routes, mut policies) = (vec![], vec![], vec![]);
    for item in list["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let entry = json!({
            "namespace": item["metadata"]["namespace"],
            "name": item["metadata"]["name"],
            "generation": item["metadata"]["generation"],
            "status": item["status"],
        });
        match kind(item) {
            "Gateway" => gateways.push(entry),
            "HTTPRoute" => routes.push(entry),
            "BackendTLSPolicy" => policies.push(entry),
            _ => {}
        }
    }
    Ok(json!({"gateways": gateways, "httproutes": routes, "backendtlspolicies": policies}))
}

/// `metadata.generation` on the API server of the object a status check names.
pub fn generation_in(doc: &Value, c: &crate::cases::StatusCheck) -> Option<i64> {
    let list = match c.kind.as_deref() {
        Some("Gateway") => &doc["gateways"],
        Some("HTTPRoute") => &doc["httproutes"],
        Some("BackendTLSPolicy") => &doc["backendtlspolicies"],
        _ => return None,
    };
    list.as_array()?.iter().find(|e| {
        e["namespace"].as_str() == c.namespace.as_deref() && e["name"].as_str() == c.name.as_deref()
    })?["generation"]
        .as_i64()
}
