//! HTTPRoute rules (Gateway API v1 `HTTPRoute.spec.rules`), once the route's
//! backend references are resolved: route entries (one per rule match) with their
//! precedence keys, the clusters they use, and the route's `ResolvedRefs` condition.
//!
//! Backends: a rule forwards to its backends in proportion to their weights. A
//! reference that does not resolve keeps its weight, and its share of requests gets
//! HTTP 500; a rule with no backend, no weight, or no valid backend with weight
//! answers every request with 500 ([`forward`]: the one place of that rule).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ir::{Action, ClusterIr, Condition, MirrorIr, RouteIr, WeightedBackend};
use crate::model::{BackendRef, Filter, HeaderModifier, HttpRoute, Redirect, Rule, UrlRewrite};
use crate::spec::conditions::{ConditionType as Type, Reason};
use crate::spec::precedence::Precedence;

/// Where a backend reference sits in a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Slot {
    /// `rules[rule].backendRefs[index]`
    Backend { rule: usize, index: usize },
    /// `rules[rule].filters[index]` (a RequestMirror)
    Mirror { rule: usize, index: usize },
    /// An `ExtensionRef` filter: `rules[rule].filters[index]`, or
    /// `rules[rule].backendRefs[backend].filters[index]`.
    Extension {
        rule: usize,
        backend: Option<usize>,
        index: usize,
    },
}

/// Why a backend reference does not resolve (`RouteConditionReason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Unresolved {
    /// Not a core `Service`.
    InvalidKind,
    /// Another namespace, without a ReferenceGrant that allows it.
    RefNotPermitted,
    /// No such Service, or no such port on it.
    BackendNotFound,
}

impl Unresolved {
    pub fn reason(self) -> Reason {
        match self {
            Unresolved::InvalidKind => Reason::InvalidKind,
            Unresolved::RefNotPermitted => Reason::RefNotPermitted,
            Unresolved::BackendNotFound => Reason::BackendNotFound,
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
    /// Rules left out because Envoy would reject them ([`crate::spec::validate`]):
    /// `PartiallyInvalid` when some rules are left, `Accepted=False` when none is.
    pub validity: Option<Condition>,
    pub generation: i64,
}

/// The conditions of one route parent: its attachment verdict (`Accepted`) and the
/// route's `ResolvedRefs`, with the rules dropped as invalid (`validity`): a route
/// with no valid rule is not accepted (`UnsupportedValue`, unless its attachment
/// already failed), one with some is `PartiallyInvalid`. Sorted.
pub fn parent_conditions(
    accepted: Condition,
    resolved_refs: Condition,
    validity: Option<&Condition>,
) -> Vec<Condition> {
    let mut conditions = vec![accepted, resolved_refs];
    match validity {
        Some(v) if v.type_ == Type::Accepted => {
            for c in conditions.iter_mut().filter(|c| c.type_ == Type::Accepted) {
                if c.status {
                    *c = v.clone();
                }
            }
        }
        Some(v) => conditions.push(v.clone()),
        None => {}
    }
    conditions.sort();
    conditions
}

/// What [`parent_conditions`] takes for the rules dropped (`problems`, with their
/// fields) out of `rules`.
fn validity(rules: usize, problems: &[String]) -> Option<Condition> {
    if problems.is_empty() {
        return None;
    }
    let list = problems.join("; ");
    Some(if problems.len() == rules {
        let msg = format!("No valid rule: {list}");
        Condition::new(Type::Accepted, false, Reason::UnsupportedValue, msg)
    } else {
        let msg = format!("Dropped Rule(s): {list}");
        Condition::new(Type::PartiallyInvalid, true, Reason::UnsupportedValue, msg)
    })
}

/// `ResolvedRefs`: true, or false with the reason of the first reference (in slot
/// order) that does not resolve; the message names every such reference.
///
/// An `ExtensionRef` filter is a reference too: Sluice knows no extension kinds, so
/// it never resolves (`InvalidKind`, "a reference to an unknown or unsupported Group
/// and/or Kind"); requests of its rule get an HTTP error (500), as the spec requires
/// of a filter that cannot be resolved ("the filter MUST NOT be skipped").
fn resolved_refs(route: &HttpRoute, resolutions: &BTreeMap<Slot, Resolution>) -> Condition {
    let mut failed: Vec<(Slot, Unresolved)> = resolutions
        .iter()
        .filter_map(|(slot, r)| r.as_ref().err().map(|e| (*slot, *e)))
        .collect();
    for (rule, r) in route.rules.iter().enumerate() {
        let rule_level = r.filters.iter().enumerate().map(|(i, f)| (None, i, f));
        let backend_level = (r.backends.iter().enumerate()).flat_map(|(b, backend)| {
            backend
                .filters
                .iter()
                .enumerate()
                .map(move |(i, f)| (Some(b), i, f))
        });
        for (backend, index, filter) in rule_level.chain(backend_level) {
            if matches!(filter, Filter::Unsupported(kind) if kind == "ExtensionRef") {
                failed.push((
                    Slot::Extension {
                        rule,
                        backend,
                        index,
                    },
                    Unresolved::InvalidKind,
                ));
            }
        }
    }
    failed.sort();
    let Some((_, first)) = failed.first() else {
        return Condition::new(
            Type::ResolvedRefs,
            true,
            Reason::ResolvedRefs,
            "All references resolved",
        );
    };
    let each: Vec<String> = failed
        .iter()
        .map(|(slot, why)| {
            let (rule, index, what) = match slot {
                Slot::Backend { rule, index } => (rule, index, "backendRefs".to_owned()),
                Slot::Mirror { rule, index } => (rule, index, "filters".to_owned()),
                Slot::Extension {
                    rule,
                    backend: None,
                    index,
                } => (rule, index, "filters".to_owned()),
                Slot::Extension {
                    rule,
                    backend: Some(b),
                    index,
                } => (rule, index, format!("backendRefs[{b}].filters")),
            };
            let why = match slot {
                Slot::Extension { .. } => {
                    "ExtensionRef: no extension filter kinds are supported (InvalidKind)".to_owned()
                }
                _ => format!("{}", why.reason()),
            };
            format!("rules[{rule}].{what}[{index}]: {why}")
        })
        .collect();
    let msg = format!("{}: {}", route.meta.key, each.join("; "));
    Condition::new(Type::ResolvedRefs, false, first.reason(), msg)
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

/// What the rule's filters (and a single backend's hoisted filters) ask for.
#[derive(Default)]
struct Filters {
    redirect: Option<Redirect>,
    rewrite: Option<UrlRewrite>,
    unsupported: bool,
}

impl Filters {
    /// Filters Envoy can only apply per route (redirect, rewrite, or an unsupported
    /// one). With a single backend, its filters act on every request of the rule, so
    /// these are hoisted to the rule; with several backends, per-backend redirects
    /// and path rewrites cannot be expressed in Envoy's weighted clusters: such a
    /// rule is reported and dropped ([`crate::spec::validate::rule_problem`]).
    fn hoisted(rule: &Rule) -> Self {
        let mut filters = Filters::default();
        if let [only] = rule.backends.as_slice() {
            for filter in &only.filters {
                match filter {
                    Filter::Redirect(r) => filters.redirect = Some(r.clone()),
                    Filter::UrlRewrite(r) => filters.rewrite = Some(r.clone()),
                    Filter::Unsupported(_) => filters.unsupported = true,
                    _ => {}
                }
            }
        }
        filters
    }
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
    let mut filters = Filters::hoisted(rule);
    for (index, filter) in rule.filters.iter().enumerate() {
        match filter {
            Filter::RequestHeaders(m) => parts.request_headers = m.clone(),
            Filter::ResponseHeaders(m) => parts.response_headers = m.clone(),
            Filter::Redirect(r) => filters.redirect = Some(r.clone()),
            Filter::UrlRewrite(r) => filters.rewrite = Some(r.clone()),
            Filter::Mirror(m) => {
                let slot = Slot::Mirror {
                    rule: rule_index,
                    index,
                };
                parts.mirrors.push(MirrorIr {
                    cluster: cluster_of(resolutions, slot),
                    fraction: m.fraction,
                });
            }
            Filter::Unsupported(_) => filters.unsupported = true,
        }
    }
    parts.action = if filters.unsupported {
        Action::Direct(500)
    } else if let Some(r) = filters.redirect {
        Action::Redirect(r)
    } else {
        forward(rule_index, &rule.backends, resolutions, filters.rewrite)
    };
    parts
}

/// The weight rule: forward to the backends with a weight, in proportion to it
/// (an unresolved one keeps its share, which gets 500); with no backend, no weight,
/// or no valid backend with weight, every request gets 500 (`HTTPBackendRef`:
/// "If all entries in BackendRefs are invalid, and there are also no filters
/// specified in this route rule, all traffic which matches this rule MUST receive a
/// 500 status code"; a weight of 0 gets no traffic).
fn forward(
    rule: usize,
    backends: &[BackendRef],
    resolutions: &BTreeMap<Slot, Resolution>,
    rewrite: Option<UrlRewrite>,
) -> Action {
    let live: Vec<WeightedBackend> = backends
        .iter()
        .enumerate()
        .filter(|(_, b)| b.weight > 0)
        .map(|(index, b)| WeightedBackend {
            cluster: cluster_of(resolutions, Slot::Backend { rule, index }),
            weight: b.weight,
            filters: b.filters.clone(),
        })
        .collect();
    if !live.iter().any(|b| b.cluster.is_some()) {
        return Action::Direct(500);
    }
    Action::Forward {
        backends: live,
        rewrite,
    }
}

/// Translate a route whose backend references resolved as `resolutions` says.
pub fn resolve_route(route: &HttpRoute, resolutions: &BTreeMap<Slot, Resolution>) -> ResolvedRoute {
    let key = &route.meta.key;
    let mut entries = vec![];
    let mut problems = vec![];
    let bad_hostnames: Vec<String> = (route.hostnames.iter().enumerate())
        .filter_map(|(i, h)| {
            let why = crate::spec::validate::hostname_problem(h)?;
            Some(format!("spec.hostnames[{i}]: {why}"))
        })
        .collect();
    if !bad_hostnames.is_empty() {
        // Hostnames apply to every rule: the route is not accepted, and none of it is
        // served (an invalid domain would make Envoy reject the whole port).
        let msg = format!("Invalid hostname(s): {}", bad_hostnames.join("; "));
        return ResolvedRoute {
            entries,
            clusters: vec![],
            resolved_refs: resolved_refs(route, resolutions),
            validity: Some(Condition::new(
                Type::Accepted,
                false,
                Reason::UnsupportedValue,
                msg,
            )),
            generation: route.meta.generation,
        };
    }
    for (ri, rule) in route.rules.iter().enumerate() {
        if let Some(problem) = crate::spec::validate::rule_problem(ri, rule) {
            problems.push(problem);
            continue;
        }
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
    let validity = match &route.meta.problem {
        // The newest version did not convert: this last good one is served.
        Some(problem) => Some(Condition::new(
            Type::Accepted,
            false,
            Reason::UnsupportedValue,
            crate::spec::gateway::not_converted(problem),
        )),
        None => validity(route.rules.len(), &problems),
    };
    ResolvedRoute {
        entries,
        clusters,
        resolved_refs: resolved_refs(route, resolutions),
        validity,
        generation: route.meta.generation,
    }
}

#[cfg(test)]
mod tests {
    //! The weight rule of `HTTPBackendRef` (the one place it lives): a backend of
    //! weight 0 gets no traffic, an unresolved one keeps its share (500), and a rule
    //! with nothing valid to send to answers 500.
    use super::*;
    use crate::fixtures::{backend, meta};
    use crate::ir::ClusterKey;
    use crate::model::ObjectKey;

    fn rule_with(backends: Vec<BackendRef>) -> HttpRoute {
        HttpRoute {
            meta: meta("ns", "r"),
            parent_refs: vec![],
            hostnames: vec![],
            rules: vec![Rule {
                matches: vec![Default::default()],
                backends,
                ..Default::default()
            }],
        }
    }

    /// Resolves `rules[0].backendRefs[i]` to `ns/<name>:80` where `valid[i]`.
    fn action(backends: Vec<BackendRef>, valid: &[bool]) -> Action {
        let route = rule_with(backends);
        let resolutions: BTreeMap<Slot, Resolution> = route.rules[0]
            .backends
            .iter()
            .zip(valid)
            .enumerate()
            .map(|(index, (b, ok))| {
                let key = ClusterKey::new(ObjectKey::new("ns", b.name.clone()), 80);
                let r = if *ok {
                    Ok(ClusterIr::new(key, None))
                } else {
                    Err(Unresolved::BackendNotFound)
                };
                (Slot::Backend { rule: 0, index }, r)
            })
            .collect();
        let resolved = resolve_route(&route, &resolutions);
        resolved.entries[0].1.action.clone()
    }

    fn weighted(name: &str, weight: u32) -> BackendRef {
        BackendRef {
            weight,
            ..backend(name, 80)
        }
    }

    #[test]
    fn zero_weight_is_dropped_and_invalid_keeps_its_share() {
        let got = action(
            vec![weighted("a", 90), weighted("b", 0), weighted("c", 10)],
            &[true, true, false],
        );
        let Action::Forward { backends, .. } = got else {
            panic!("expected forward, got {got:?}")
        };
        let shares: Vec<(Option<&str>, u32)> = backends
            .iter()
            .map(|b| (b.cluster.as_deref(), b.weight))
            .collect();
        assert_eq!(shares, [(Some("ns/a:80"), 90), (None, 10)]);
    }

    #[test]
    fn nothing_valid_with_weight_answers_500() {
        assert_eq!(action(vec![], &[]), Action::Direct(500));
        assert_eq!(
            action(vec![weighted("a", 0), weighted("b", 0)], &[true, true]),
            Action::Direct(500)
        );
        assert_eq!(
            action(vec![weighted("a", 0), weighted("b", 5)], &[true, false]),
            Action::Direct(500)
        );
    }

    #[test]
    fn an_extension_ref_never_resolves_and_its_rule_answers_500() {
        let mut route = rule_with(vec![backend("a", 80)]);
        route.rules[0].filters = vec![Filter::Unsupported("ExtensionRef".into())];
        let resolutions: BTreeMap<Slot, Resolution> = [(
            Slot::Backend { rule: 0, index: 0 },
            Ok(ClusterIr::new(
                ClusterKey::new(ObjectKey::new("ns", "a"), 80),
                None,
            )),
        )]
        .into();
        let resolved = resolve_route(&route, &resolutions);
        assert_eq!(resolved.entries[0].1.action, Action::Direct(500));
        let refs = &resolved.resolved_refs;
        assert!(!refs.status);
        assert_eq!(refs.reason, Reason::InvalidKind);
        assert!(
            refs.message.contains("rules[0].filters[0]"),
            "{}",
            refs.message
        );
        // Another unsupported filter type is not a reference: refs stay resolved.
        route.rules[0].filters = vec![Filter::Unsupported("CORS".into())];
        assert!(resolve_route(&route, &resolutions).resolved_refs.status);
    }

    /// Issue 8 (2): the newest version did not convert; the source kept the last good
    /// one, marked. It is served, and the status says the newest is not.
    #[test]
    fn a_last_good_version_is_served_and_its_problem_reported() {
        let mut route = rule_with(vec![backend("a", 80)]);
        let served = resolve_route(&route, &BTreeMap::new()).entries;
        route.meta.problem = Some("r.yaml:3: HTTPRoute ns/r: spec.rules: bad".into());
        let resolved = resolve_route(&route, &BTreeMap::new());
        assert_eq!(resolved.entries, served);
        let v = resolved.validity.expect("a verdict");
        assert_eq!(
            (v.type_, v.status, v.reason),
            (Type::Accepted, false, Reason::UnsupportedValue)
        );
        assert!(v.message.contains("r.yaml:3"), "{}", v.message);
    }

    #[test]
    fn an_invalid_route_hostname_makes_the_route_unaccepted_and_serves_none_of_it() {
        let mut route = rule_with(vec![backend("a", 80)]);
        route.hostnames = vec!["good.example".into(), "bad_host!".into()];
        let resolved = resolve_route(&route, &BTreeMap::new());
        assert!(resolved.entries.is_empty());
        let v = resolved.validity.expect("a verdict");
        assert_eq!(
            (v.type_, v.status, v.reason),
            (Type::Accepted, false, Reason::UnsupportedValue)
        );
        assert!(v.message.contains("spec.hostnames[1]"), "{}", v.message);
        // Every hostname invalid never widens to "any host".
        assert!(crate::spec::hostname::effective(None, &["bad_host!".into()]).is_empty());
        assert_eq!(
            crate::spec::hostname::effective(None, &["bad_host!".into(), "a.example".into()]),
            vec!["a.example".to_owned()]
        );
    }
}
