//! HTTPRoute filter types outside the typed route's enum (`ExternalAuth` from the
//! experimental channel, or one newer than this build).
//!
//! The generated types cannot deserialize such a filter, which would lose the whole
//! route. Instead the filter is swapped for a placeholder before deserializing and
//! comes back as [`Filter::Unsupported`] with its real type name, so the rule is
//! reported in status like any other unsupported filter. Filters convert one to one
//! and in order, so a filter's position identifies it on both sides.

use serde_yaml_ng::{Mapping, Value};
use sluice_pipeline::model::{Filter, HttpRoute};

/// Filter types the typed HTTPRoute knows.
const KNOWN: [&str; 7] = [
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "RequestRedirect",
    "URLRewrite",
    "ExtensionRef",
    "CORS",
];

/// Where a filter sits: rule index, backend index (`None`: the rule's own
/// filters) and filter index.
type Position = (usize, Option<usize>, usize);

/// The unknown filters taken out of a route, by position, with their type names.
#[derive(Debug, Default)]
pub(super) struct Stash(Vec<(Position, String)>);

/// Replaces every filter of an unknown type with a placeholder.
pub(super) fn take(route: &mut Value) -> Stash {
    let mut stash = Stash::default();
    let rules = route
        .get_mut("spec")
        .and_then(|s| s.get_mut("rules"))
        .and_then(Value::as_sequence_mut);
    for (r, rule) in rules.into_iter().flatten().enumerate() {
        take_filters(rule.get_mut("filters"), (r, None), &mut stash);
        let backends = rule.get_mut("backendRefs").and_then(Value::as_sequence_mut);
        for (b, backend) in backends.into_iter().flatten().enumerate() {
            take_filters(backend.get_mut("filters"), (r, Some(b)), &mut stash);
        }
    }
    stash
}

fn take_filters(
    filters: Option<&mut Value>,
    (rule, backend): (usize, Option<usize>),
    stash: &mut Stash,
) {
    let filters = filters.and_then(Value::as_sequence_mut);
    for (i, filter) in filters.into_iter().flatten().enumerate() {
        let Some(kind) = filter.get("type").and_then(Value::as_str) else {
            continue;
        };
        if !KNOWN.contains(&kind) {
            stash.0.push(((rule, backend, i), kind.to_owned()));
            *filter = placeholder();
        }
    }
}

/// An `ExtensionRef` filter, which converts to `Unsupported` on its own.
fn placeholder() -> Value {
    let mut extension_ref = Mapping::new();
    for field in ["group", "kind", "name"] {
        extension_ref.insert(field.into(), "".into());
    }
    let mut filter = Mapping::new();
    filter.insert("type".into(), "ExtensionRef".into());
    filter.insert("extensionRef".into(), Value::Mapping(extension_ref));
    Value::Mapping(filter)
}

/// Puts the real type names back on the converted route.
pub(super) fn restore(route: &mut HttpRoute, stash: Stash) {
    for ((r, backend, i), kind) in stash.0 {
        let Some(rule) = route.rules.get_mut(r) else {
            continue;
        };
        let filters = match backend {
            None => Some(&mut rule.filters),
            Some(b) => rule.backends.get_mut(b).map(|b| &mut b.filters),
        };
        if let Some(filter) = filters.and_then(|f| f.get_mut(i)) {
            *filter = Filter::Unsupported(kind);
        }
    }
}
