//! Namespace selection for `allowedRoutes.namespaces.from: Selector`, as indexed joins.
//!
//! Namespace labels are exploded into `(key, value)` and `key` indexes. Each
//! selector's positive requirements (`In`, `Exists`) join those indexes and are
//! counted per (selector, namespace): a namespace is a candidate when every positive
//! requirement matched. Negative requirements (`NotIn`, `DoesNotExist`) join the same
//! indexes to find violations, which are subtracted. The cost is proportional to the
//! matches, never to selectors × namespaces; only a selector with no positive
//! requirement (which selects almost everything) pairs with every namespace, and
//! then its output is that large anyway.

use crate::model::{FromNamespaces, LabelSelector, Namespace, ObjectKey, SelectorOp};
use crate::spec::listener::ListenerView;

use super::col::{ByKey, Col, antijoin_named, count_named, distinct_named};

/// A selector's identity: the listener that owns it.
pub type SelectorId = (ObjectKey, String);

/// The namespace label indexes: by `(key, value)` and by `key`.
struct Labels<'s> {
    by_label: ByKey<'s, (String, String), String>,
    by_key: ByKey<'s, String, String>,
}

fn positives(s: &LabelSelector) -> usize {
    s.requirements
        .iter()
        .filter(|r| matches!(r.op, SelectorOp::In | SelectorOp::Exists))
        .count()
}

fn dedup(values: &[String]) -> Vec<String> {
    let mut v = values.to_vec();
    v.sort();
    v.dedup();
    v
}

/// `(selector, namespace)` for every namespace a listener's selector selects.
pub fn select_namespaces<'s>(
    listeners: Col<'s, (ObjectKey, ListenerView)>,
    namespaces: Col<'s, Namespace>,
) -> Col<'s, (SelectorId, String)> {
    let selectors: Col<'s, (SelectorId, LabelSelector)> =
        listeners.flat_map(|(gw, v)| match v.allowed_namespaces {
            FromNamespaces::Selector(s) if v.accepts_http_routes => Some(((gw, v.name), s)),
            _ => None,
        });
    let labels = label_indexes(namespaces.clone());
    let candidates = positive_matches(selectors.clone(), &labels);
    let open = open_selectors(selectors.clone(), namespaces);
    let violations = violations(selectors, labels);
    let selected = candidates.concat(open).map(|pair| (pair, ()));
    antijoin_named("selected namespaces", selected, violations).map(|(pair, ())| pair)
}

fn label_indexes<'s>(namespaces: Col<'s, Namespace>) -> Labels<'s> {
    let labels = namespaces.flat_map(|n| {
        let name = n.name;
        n.labels
            .into_iter()
            .map(move |(k, v)| ((k, v), name.clone()))
    });
    Labels {
        by_label: labels.clone().arrange_by_key_named("namespaces by label"),
        by_key: labels
            .map(|((k, _), ns)| (k, ns))
            .arrange_by_key_named("namespaces by label key"),
    }
}

/// Namespaces that match every positive requirement of a selector: matches counted
/// per (selector, namespace) against the number of positive requirements.
fn positive_matches<'s>(
    selectors: Col<'s, (SelectorId, LabelSelector)>,
    labels: &Labels<'s>,
) -> Col<'s, (SelectorId, String)> {
    let pos_in = selectors.clone().flat_map(|(sel, s)| {
        let n = positives(&s);
        let mut out = vec![];
        for (i, r) in s.requirements.iter().enumerate() {
            if r.op == SelectorOp::In {
                for v in dedup(&r.values) {
                    out.push(((r.key.clone(), v), (sel.clone(), n, i)));
                }
            }
        }
        out
    });
    let pos_exists = selectors.flat_map(|(sel, s)| {
        let n = positives(&s);
        let reqs: Vec<_> = s
            .requirements
            .iter()
            .enumerate()
            .filter(|(_, r)| r.op == SelectorOp::Exists)
            .map(|(i, r)| (r.key.clone(), (sel.clone(), n, i)))
            .collect();
        reqs
    });
    let hits = pos_in
        .arrange_by_key_named("selector values")
        .join_core(labels.by_label.clone(), |_, (sel, n, _), ns| {
            Some((sel.clone(), *n, ns.clone()))
        })
        .concat(
            pos_exists
                .arrange_by_key_named("selector keys")
                .join_core(labels.by_key.clone(), |_, (sel, n, _), ns| {
                    Some((sel.clone(), *n, ns.clone()))
                }),
        );
    count_named("selector matches", hits)
        .filter(|((_, n, _), count)| usize::try_from(*count).is_ok_and(|c| c == *n))
        .map(|((sel, _, ns), _)| (sel, ns))
}

/// Selectors without positive requirements start from every namespace.
fn open_selectors<'s>(
    selectors: Col<'s, (SelectorId, LabelSelector)>,
    namespaces: Col<'s, Namespace>,
) -> Col<'s, (SelectorId, String)> {
    let all_namespaces = namespaces
        .map(|n| ((), n.name))
        .arrange_by_key_named("all namespaces");
    selectors
        .filter(|(_, s)| positives(s) == 0)
        .map(|(sel, _)| ((), sel))
        .arrange_by_key_named("open selectors")
        .join_core(all_namespaces, |_, sel, ns| Some((sel.clone(), ns.clone())))
}

/// `(selector, namespace)` pairs that a negative requirement rules out.
fn violations<'s>(
    selectors: Col<'s, (SelectorId, LabelSelector)>,
    labels: Labels<'s>,
) -> Col<'s, (SelectorId, String)> {
    let neg_in = selectors.clone().flat_map(|(sel, s)| {
        let mut out = vec![];
        for r in s.requirements.iter().filter(|r| r.op == SelectorOp::NotIn) {
            for v in dedup(&r.values) {
                out.push(((r.key.clone(), v), sel.clone()));
            }
        }
        out
    });
    let neg_exists = selectors.flat_map(|(sel, s)| {
        let keys: Vec<_> = s
            .requirements
            .iter()
            .filter(|r| r.op == SelectorOp::DoesNotExist)
            .map(|r| (r.key.clone(), sel.clone()))
            .collect();
        keys
    });
    let found = neg_in
        .arrange_by_key_named("excluded values")
        .join_core(labels.by_label, |_, sel, ns| {
            Some((sel.clone(), ns.clone()))
        })
        .concat(
            neg_exists
                .arrange_by_key_named("excluded keys")
                .join_core(labels.by_key, |_, sel, ns| Some((sel.clone(), ns.clone()))),
        );
    distinct_named("selector violations", found)
}
