//! Object metadata: identity, generation and creation time.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sluice_pipeline::model::{Meta, ObjectKey};

use super::{ConvertError, Result};

/// The namespace a namespaced object without `metadata.namespace` lands in.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The object's name; a name is required (`generateName` is not resolved here).
pub(crate) fn name(meta: &ObjectMeta) -> Result<String> {
    match meta.name.as_deref() {
        Some(n) if !n.is_empty() => Ok(n.to_owned()),
        _ => Err(ConvertError::new("metadata.name", "missing")),
    }
}

/// Namespace and name of a namespaced object.
pub(crate) fn namespaced_key(meta: &ObjectMeta) -> Result<ObjectKey> {
    let namespace = meta.namespace.as_deref().filter(|n| !n.is_empty());
    Ok(ObjectKey::new(
        namespace.unwrap_or(DEFAULT_NAMESPACE),
        name(meta)?,
    ))
}

/// `metadata.generation`, 1 when absent (as for an object not yet stored).
pub(crate) fn generation(meta: &ObjectMeta) -> i64 {
    meta.generation.unwrap_or(1)
}

/// `metadata.creationTimestamp` as RFC 3339 text, empty when absent.
pub(crate) fn creation(meta: &ObjectMeta) -> String {
    meta.creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default()
}

/// The model's metadata of a namespaced object.
pub(crate) fn namespaced_meta(meta: &ObjectMeta) -> Result<Meta> {
    Ok(Meta {
        key: namespaced_key(meta)?,
        generation: generation(meta),
        creation: creation(meta),
        problem: None,
    })
}
