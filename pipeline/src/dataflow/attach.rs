//! Route attachment: parentRefs ⋈ listeners (on the Gateway), filtered by section
//! name and port, listener kinds, namespace allowance (`Same`, `All`, or a selector
//! match from [`super::select`]) and hostname intersection
//! ([`crate::spec::attachment`]).
//!
//! Outputs: the attachments (route → gateway, port, effective hostname) of listeners
//! that serve HTTP, the attached-route count per listener, and the `Accepted`
//! condition of each route parent with the spec's reasons.

use serde::{Deserialize, Serialize};

use crate::ir::RouteParentStatus;
use crate::model::{HttpRoute, ObjectKey, ParentRef};
use crate::spec::attachment::{self, Allowance, Verdict};
use crate::spec::hostname;
use crate::spec::listener::ListenerView;

use super::col::{ByKey, Col, Scope, antijoin_named, count_named, distinct_named, semijoin_named};
use super::left_join::left_join_named;
use super::select::SelectorId;

/// A route attached to a serving listener, for one effective hostname.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Attachment {
    pub gateway: ObjectKey,
    pub port: u16,
    pub hostname: String,
}

/// One parentRef of a route that names a Gateway.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct RefRecord {
    route: ObjectKey,
    generation: i64,
    index: usize,
    parent: ParentRef,
    hostnames: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Candidate {
    route: ObjectKey,
    index: usize,
    listener: String,
    gateway: ObjectKey,
    port: u16,
    serves_http: bool,
    /// Effective hostnames; empty when they do not intersect.
    hostnames: Vec<String>,
    /// The effective hostnames whose requests this listener owns (listener isolation).
    owned: Vec<String>,
}

pub struct Attached<'s> {
    /// route → attachment, for listeners that serve HTTP.
    pub serving: Col<'s, (ObjectKey, Attachment)>,
    /// (gateway, listener) → number of attached routes.
    pub counts: Col<'s, ((ObjectKey, String), isize)>,
    /// route → its status for one parentRef (without `ResolvedRefs`).
    pub parents: Col<'s, (ObjectKey, RouteParentStatus)>,
}

fn parent_refs(route: HttpRoute) -> Vec<(ObjectKey, RefRecord)> {
    let ns = route.meta.key.namespace.clone();
    route
        .parent_refs
        .iter()
        .enumerate()
        .filter(|(_, p)| p.is_gateway())
        .map(|(index, p)| {
            let gw = ObjectKey::new(
                p.namespace.clone().unwrap_or_else(|| ns.clone()),
                p.name.clone(),
            );
            let rec = RefRecord {
                route: route.meta.key.clone(),
                generation: route.meta.generation,
                index,
                parent: p.clone(),
                hostnames: route.hostnames.clone(),
            };
            (gw, rec)
        })
        .collect()
}

/// The candidate a parentRef makes of a listener it selects, with the listener's
/// namespace policy for the route.
fn candidate(r: &RefRecord, l: &ListenerView) -> Option<(Allowance, Candidate)> {
    if !attachment::selects(&r.parent, l) {
        return None;
    }
    let hostnames = hostname::effective(l.hostname.as_deref(), &r.hostnames);
    let owned = hostnames.iter().filter(|h| l.owns(h)).cloned().collect();
    let cand = Candidate {
        route: r.route.clone(),
        index: r.index,
        listener: l.name.clone(),
        gateway: l.gateway.clone(),
        port: l.port,
        serves_http: l.serves_http,
        hostnames,
        owned,
    };
    Some((attachment::allowance(l, &r.route.namespace), cand))
}

impl<'r> Attached<'r> {
    /// The same collections, out of a region into `outer`.
    pub fn leave_region<'o>(self, outer: Scope<'o>) -> Attached<'o> {
        Attached {
            serving: self.serving.leave_region(outer),
            counts: self.counts.leave_region(outer),
            parents: self.parents.leave_region(outer),
        }
    }
}

/// Attach routes to listeners.
pub fn attach_routes<'s>(
    routes: Col<'s, HttpRoute>,
    listeners_arranged: ByKey<'s, ObjectKey, ListenerView>,
    matched: Col<'s, (SelectorId, String)>,
    gateways: Col<'s, ObjectKey>,
) -> Attached<'s> {
    let refs = routes.flat_map(parent_refs);
    let verdicts = verdicts(refs.clone(), listeners_arranged, matched);
    let attached = verdicts
        .clone()
        .flat_map(|(c, v)| (v == Verdict::Attached).then_some(c));
    let serving = serving(attached.clone());
    let counts = count_listeners(attached.map(|c| ((c.gateway, c.listener), c.route)));
    let ours = semijoin_named("parentRefs of our gateways", refs, gateways);
    let parents = parent_status(ours, verdicts);
    Attached {
        serving,
        counts,
        parents,
    }
}

/// Every (parentRef, listener) candidate with its verdict; selector policies are
/// decided by the selected namespaces.
fn verdicts<'s>(
    refs: Col<'s, (ObjectKey, RefRecord)>,
    listeners_arranged: ByKey<'s, ObjectKey, ListenerView>,
    matched: Col<'s, (SelectorId, String)>,
) -> Col<'s, (Candidate, Verdict)> {
    let pairs = refs
        .arrange_by_key_named("parentRefs by gateway")
        .join_core(listeners_arranged, |_, r, l| {
            candidate(r, l).map(|(a, c)| match a {
                Allowance::Yes => (None, (c, true)),
                Allowance::No => (None, (c, false)),
                Allowance::Selector => {
                    let sel = (l.gateway.clone(), l.name.clone());
                    (Some((sel, r.route.namespace.clone())), (c, false))
                }
            })
        });
    let direct = pairs
        .clone()
        .flat_map(|(sel, c)| sel.is_none().then_some(c));
    let by_selector = pairs.flat_map(|(sel, (c, _))| sel.map(|s| (s, c)));
    let selected = semijoin_named("selected candidates", by_selector.clone(), matched.clone())
        .map(|(_, c)| (c, true));
    let refused =
        antijoin_named("refused candidates", by_selector, matched).map(|(_, c)| (c, false));
    direct.concat(selected).concat(refused).map(|(c, allowed)| {
        let v = Verdict::of(allowed, &c.hostnames);
        (c, v)
    })
}

/// route → attachment, per owned hostname of a listener that serves HTTP.
fn serving<'s>(attached: Col<'s, Candidate>) -> Col<'s, (ObjectKey, Attachment)> {
    let serving = attached.filter(|c| c.serves_http).flat_map(|c| {
        let (route, gateway, port) = (c.route, c.gateway, c.port);
        c.owned.into_iter().map(move |hostname| {
            let a = Attachment {
                gateway: gateway.clone(),
                port,
                hostname,
            };
            (route.clone(), a)
        })
    });
    distinct_named("serving attachments", serving)
}

/// Reduce the verdicts of each parentRef (of a Gateway of ours) to its `Accepted`
/// condition; a parentRef with no candidate listener is `NoMatchingParent`.
fn parent_status<'s>(
    refs: Col<'s, (ObjectKey, RefRecord)>,
    verdicts: Col<'s, (Candidate, Verdict)>,
) -> Col<'s, (ObjectKey, RouteParentStatus)> {
    let refs = refs.map(|(_, r)| ((r.route.clone(), r.index), r));
    let verdicts = verdicts.map(|(c, v)| ((c.route, c.index), v));
    left_join_named(
        "route parent accepted",
        refs,
        verdicts,
        |_, rec, verdicts| {
            let best = verdicts.iter().map(|v| **v).min();
            let status = RouteParentStatus {
                route: rec.route.clone(),
                generation: rec.generation,
                index: rec.index,
                parent: rec.parent.clone(),
                conditions: vec![attachment::accepted(best)],
            };
            Some((rec.route.clone(), status))
        },
    )
    .map(|(_, pair)| pair)
}

/// Routes attached to each listener (a route attached through two parentRefs counts
/// once).
fn count_listeners<'s>(
    attached: Col<'s, ((ObjectKey, String), ObjectKey)>,
) -> Col<'s, ((ObjectKey, String), isize)> {
    let distinct = distinct_named("attached routes", attached);
    count_named(
        "attached routes per listener",
        distinct.map(|(listener, _route)| listener),
    )
}
