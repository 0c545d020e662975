//! Conversion at the source boundary: typed Kubernetes objects (`gateway-api`,
//! `k8s-openapi`) into [`sluice_pipeline::model`] records.
//!
//! Each conversion keeps only the fields the model has and fills in the defaults
//! the API server applies from the CRD schema (match `PathPrefix /`, backend kind
//! `Service`, weight 1, redirect 302, ...), so the pipeline never has to know
//! whether a field was written or defaulted. A value the schema would reject (a
//! port out of range, a malformed duration) is a [`ConvertError`] naming the field.

mod backend_tls_policy;
mod config_map;
mod duration;
mod endpoint_slice;
mod filter;
mod gateway;
mod gateway_class;
mod httproute;
pub(crate) mod meta;
mod namespace;
mod reference_grant;
mod secret;
mod selector;
mod service;

#[cfg(test)]
mod tests;

use sluice_pipeline::model::Object;

pub use config_map::{CA_BUNDLE_KEY, ca_bundle_problem};
pub use duration::parse_duration_ms;
pub use endpoint_slice::SERVICE_NAME_LABEL;
pub use secret::{TLS_SECRET_TYPE, certificate_problem};

/// The items in order, without those whose name (`name_of`) an earlier item already
/// has (compared ignoring ASCII case when `ignore_case`): the Gateway API's rule for
/// repeated header and query param names ("Subsequent entries with an equivalent
/// name MUST be ignored").
pub(crate) fn first_per_name<T>(
    items: impl IntoIterator<Item = T>,
    name_of: impl Fn(&T) -> &String,
    ignore_case: bool,
) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|item| {
            let name = name_of(item);
            seen.insert(if ignore_case {
                name.to_ascii_lowercase()
            } else {
                name.clone()
            })
        })
        .collect()
}

/// A field of an object that the conversion cannot represent: which field, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConvertError {
    /// Path of the field, e.g. `spec.listeners[1].port`.
    pub field: String,
    pub reason: String,
}

impl ConvertError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Prefixes the field path with the path of the enclosing value.
    pub fn within(mut self, prefix: impl std::fmt::Display) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_string()
        } else if self.field.starts_with('[') {
            format!("{prefix}{}", self.field)
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

pub type Result<T, E = ConvertError> = std::result::Result<T, E>;

/// A Kubernetes object that converts into a pipeline record.
///
/// (A trait of this crate rather than `TryFrom`: both the Kubernetes types and the
/// model live in other crates, so the orphan rule forbids `TryFrom` here.)
///
/// # Contract
///
/// The conversion is a pure function of the object: defaults the API server
/// applies are filled in, lists without meaningful order are sorted, and a value
/// the CRD schema would reject is a [`ConvertError`] naming its field.
pub trait ToModel {
    type Model;

    /// The model record.
    fn to_model(&self) -> Result<Self::Model>;

    /// The model record, wrapped as a pipeline [`Object`].
    fn to_object(&self) -> Result<Object>;
}

/// A port number (1-65535) from the i32 the Kubernetes types use.
pub(crate) fn port(field: &str, value: i32) -> Result<u16> {
    match u16::try_from(value) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(ConvertError::new(
            field,
            format!("{value} is not a port number (1-65535)"),
        )),
    }
}

/// An optional port number.
pub(crate) fn opt_port(field: &str, value: Option<i32>) -> Result<Option<u16>> {
    value.map(|v| port(field, v)).transpose()
}

/// Converts each element of a list, naming the failing element by its index.
pub(crate) fn each<T, U>(
    field: &str,
    items: Option<&[T]>,
    f: impl Fn(&T) -> Result<U>,
) -> Result<Vec<U>> {
    items
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, item)| f(item).map_err(|e| e.within(format!("{field}[{i}]"))))
        .collect()
}
