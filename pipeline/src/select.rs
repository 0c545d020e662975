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

use differential_dataflow::operators::count::CountTotal;

use crate::dataflow::Col;
use crate::gateway::ListenerView;
use crate::model::{FromNamespaces, LabelSelector, Namespace, ObjectKey, SelectorOp};

/// A selector's identity: the listener that owns it.
pub type SelectorId = (ObjectKey, String);

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
    let labels = namespaces.clone().flat_map(|n| {
        let name = n.name;
        n.labels
            .into_iter()
            .map(move |(k, v)| ((k, v), name.clone()))
    });
    let by_label = labels.clone().arrange_by_key_named("namespaces by label");
    let by_key = labels
        .map(|((k, _), ns)| (k, ns))
        .arrange_by_key_named("namespaces by label key");

    // Positive requirements: count matches per (selector, namespace).
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
    let pos_exists = selectors.clone().flat_map(|(sel, s)| {
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
        .join_core(by_label.clone(), |_, (sel, n, _i), ns| {
            Some((sel.clone(), *n, ns.clone()))
        })
        .concat(pos_exists.join_core(by_key.clone(), |_, (sel, n, _i), ns| {
            Some((sel.clone(), *n, ns.clone()))
        }));
    let candidates = hits
        .count_total()
        .filter(|((_, n, _), count)| usize::try_from(*count).is_ok_and(|c| c == *n))
        .map(|((sel, _, ns), _)| (sel, ns));

    // Selectors without positive requirements start from every namespace.
    let all_namespaces = namespaces
        .map(|n| ((), n.name))
        .arrange_by_key_named("all namespaces");
    let open = selectors
        .clone()
        .filter(|(_, s)| positives(s) == 0)
        .map(|(sel, _)| ((), sel))
        .join_core(all_namespaces, |_, sel, ns| Some((sel.clone(), ns.clone())));

    // Negative requirements: violations.
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
    let violations = neg_in
        .join_core(by_label, |_, sel, ns| Some((sel.clone(), ns.clone())))
        .concat(neg_exists.join_core(by_key, |_, sel, ns| Some((sel.clone(), ns.clone()))))
        .distinct();

    candidates
        .concat(open)
        .map(|pair| (pair, ()))
        .antijoin(violations)
        .map(|(pair, ())| pair)
}
