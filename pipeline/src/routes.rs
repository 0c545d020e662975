//! Translation of one HTTPRoute, once its backends are resolved, into route entries
//! (one per rule match) with their precedence keys, the clusters they use, and the
//! route's `ResolvedRefs` condition. Pure: the dataflow calls it per route.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ir::{Action, ClusterIr, Condition, MirrorIr, RouteIr, WeightedBackend};
use crate::model::{Filter, HeaderModifier, HttpRoute, ObjectKey};
use crate::precedence::Precedence;

/// Where a backend reference sits in a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Slot {
    /// `rules[rule].backendRefs[index]`
    Backend { rule: usize, index: usize },
    /// `rules[rule].filters[index]` (a RequestMirror)
    Mirror { rule: usize, index: usize },
}

/// Why a backend reference does not resolve, with the spec's reason string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Unresolved {
    InvalidKind,
    RefNotPermitted,
    BackendNotFound,
}

impl Unresolved {
    pub fn reason(self) -> &'static str {
        match self {
            Unresolved::InvalidKind => "InvalidKind",
            Unresolved::RefNotPermitted => "RefNotPermitted",
            Unresolved::BackendNotFound => "BackendNotFound",
        }
    }
}

pub type Resolution = Result<ClusterIr, Unresolved>;

/// A route translated with its backends resolved.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResolvedRoute {
    pub entries: Vec<(Precedence, RouteIr)>,
    /// Clusters the entries use (forwarding and mirroring), sorted, deduplicated.
    pub clusters: Vec<ClusterIr>,
    pub resolved_refs: Condition,
    pub generation: i64,
}

fn resolved_refs(route: &HttpRoute, resolutions: &BTreeMap<Slot, Resolution>) -> Condition {
    let failed = resolutions
        .iter()
        .find_map(|(slot, r)| r.as_ref().err().map(|e| (slot, *e)));
    match failed {
        None => Condition::new(
            "ResolvedRefs",
            true,
            "ResolvedRefs",
            "All references resolved",
        ),
        Some((slot, why)) => {
            let (rule, index, what) = match slot {
                Slot::Backend { rule, index } => (rule, index, "backendRefs"),
                Slot::Mirror { rule, index } => (rule, index, "filters"),
            };
            let msg = format!(
                "{}: rules[{rule}].{what}[{index}]: {}",
                route.meta.key,
                why.reason()
            );
            Condition::new("ResolvedRefs", false, why.reason(), msg)
        }
    }
}

fn cluster_of(resolutions: &BTreeMap<Slot, Resolution>, slot: Slot) -> Option<String> {
    resolutions
        .get(&slot)
        .and_then(|r| r.as_ref().ok())
        .map(|c| c.name.clone())
}

/// The action and rule-level modifiers of one rule.
struct RuleParts {
    action: Action,
    request_headers: HeaderModifier,
    response_headers: HeaderModifier,
    mirrors: Vec<MirrorIr>,
}

fn rule_parts(
    route: &HttpRoute,
    rule_index: usize,
    resolutions: &BTreeMap<Slot, Resolution>,
) -> RuleParts {
    let rule = &route.rules[rule_index];
    let mut parts = RuleParts {
        action: Action::Direct(500),
        request_headers: HeaderModifier::default(),
        response_headers: HeaderModifier::default(),
        mirrors: vec![],
    };
    let mut redirect = None;
    let mut rewrite = None;
    let mut unsupported = false;
    // With a single backend, its filters act on every request of the rule, so the
    // ones Envoy can only apply per route (redirect, rewrite) are hoisted to the
    // rule. With several backends, per-backend redirects and path rewrites cannot
    // be expressed in Envoy's weighted clusters and are not applied.
    let hoisted = match rule.backends.as_slice() {
        [only] => only
            .filters
            .iter()
            .filter(|f| {
                matches!(
                    f,
                    Filter::Redirect(_) | Filter::UrlRewrite(_) | Filter::Unsupported(_)
                )
            })
            .cloned()
            .collect(),
        _ => vec![],
    };
    for filter in &hoisted {
        match filter {
            Filter::Redirect(r) => redirect = Some(r.clone()),
            Filter::UrlRewrite(r) => rewrite = Some(r.clone()),
            _ => unsupported = true,
        }
    }
    for (index, filter) in rule.filters.iter().enumerate() {
        match filter {
            Filter::RequestHeaders(m) => parts.request_headers = m.clone(),
            Filter::ResponseHeaders(m) => parts.response_headers = m.clone(),
            Filter::Redirect(r) => redirect = Some(r.clone()),
            Filter::UrlRewrite(r) => rewrite = Some(r.clone()),
            Filter::Mirror(m) => parts.mirrors.push(MirrorIr {
                cluster: cluster_of(
                    resolutions,
                    Slot::Mirror {
                        rule: rule_index,
                        index,
                    },
                ),
                fraction: m.fraction,
            }),
            Filter::Unsupported(_) => unsupported = true,
        }
    }
    parts.action = if unsupported {
        Action::Direct(500)
    } else if let Some(r) = redirect {
        Action::Redirect(r)
    } else {
        forward(rule_index, &rule.backends, resolutions, rewrite)
    };
    parts
}

fn forward(
    rule: usize,
    backends: &[crate::model::BackendRef],
    resolutions: &BTreeMap<Slot, Resolution>,
    rewrite: Option<crate::model::UrlRewrite>,
) -> Action {
    let weighted: Vec<WeightedBackend> = backends
        .iter()
        .enumerate()
        .map(|(index, b)| WeightedBackend {
            cluster: cluster_of(resolutions, Slot::Backend { rule, index }),
            weight: b.weight,
            filters: b.filters.clone(),
        })
        .collect();
    let total: u64 = weighted.iter().map(|b| u64::from(b.weight)).sum();
    let any_valid = weighted.iter().any(|b| b.cluster.is_some() && b.weight > 0);
    if weighted.is_empty() || total == 0 || !any_valid {
        // The spec: no valid backend (or no weight to spread) answers 500.
        return Action::Direct(500);
    }
    Action::Forward {
        backends: weighted,
        rewrite,
    }
}

/// Translate a route whose backend references resolved as `resolutions` says.
pub fn resolve_route(route: &HttpRoute, resolutions: &BTreeMap<Slot, Resolution>) -> ResolvedRoute {
    let key: &ObjectKey = &route.meta.key;
    let mut entries = vec![];
    for (ri, rule) in route.rules.iter().enumerate() {
        let parts = rule_parts(route, ri, resolutions);
        for (mi, m) in rule.matches.iter().enumerate() {
            let entry = RouteIr {
                name: format!("{}/{}/rule/{ri}/match/{mi}", key.namespace, key.name),
                matcher: m.clone(),
                action: parts.action.clone(),
                request_headers: parts.request_headers.clone(),
                response_headers: parts.response_headers.clone(),
                mirrors: parts.mirrors.clone(),
                timeouts: rule.timeouts.clone(),
            };
            entries.push((Precedence::new(m, &route.meta.creation, key, ri, mi), entry));
        }
    }
    let mut clusters: Vec<ClusterIr> = resolutions
        .values()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    clusters.sort();
    clusters.dedup();
    ResolvedRoute {
        entries,
        clusters,
        resolved_refs: resolved_refs(route, resolutions),
        generation: route.meta.generation,
    }
}
