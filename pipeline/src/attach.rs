//! Route attachment: parentRefs ⋈ listeners (on the Gateway), filtered by section
//! name and port, listener kinds, namespace allowance (`Same`, `All`, or a selector
//! match from [`crate::select`]) and hostname intersection.
//!
//! Outputs: the attachments (route → gateway, port, effective hostname) of listeners
//! that serve HTTP, the attached-route count per listener, and the `Accepted`
//! condition of each route parent with the spec's reasons.

use serde::{Deserialize, Serialize};

use differential_dataflow::operators::count::CountTotal;

use crate::dataflow::Col;
use crate::gateway::ListenerView;
use crate::hostname;
use crate::ir::{Condition, RouteParentStatus};
use crate::model::{FromNamespaces, GATEWAY_GROUP, HttpRoute, ObjectKey, ParentRef};
use crate::select::SelectorId;

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

/// The verdict of one (parentRef, listener) pair; the best verdict over a parentRef's
/// listeners decides its `Accepted` condition (smaller is better).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Verdict {
    Attached,
    NoMatchingListenerHostname,
    NotAllowedByListeners,
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
        .filter(|(_, p)| p.group == GATEWAY_GROUP && p.kind == "Gateway")
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

/// How the listener's namespace policy applies to the route's namespace.
enum Allowance {
    Yes,
    No,
    Selector(SelectorId),
}

fn candidate(r: &RefRecord, l: &ListenerView) -> Option<(Allowance, Candidate)> {
    if r.parent.section_name.as_ref().is_some_and(|s| *s != l.name)
        || r.parent.port.is_some_and(|p| p != l.port)
    {
        return None;
    }
    let allowance = if !l.accepts_http_routes {
        Allowance::No
    } else {
        match &l.allowed_namespaces {
            FromNamespaces::All => Allowance::Yes,
            FromNamespaces::Same if r.route.namespace == l.gateway.namespace => Allowance::Yes,
            FromNamespaces::Same => Allowance::No,
            FromNamespaces::Selector(_) => Allowance::Selector((l.gateway.clone(), l.name.clone())),
        }
    };
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
    Some((allowance, cand))
}

fn verdict(c: &Candidate, allowed: bool) -> Verdict {
    if !allowed {
        Verdict::NotAllowedByListeners
    } else if c.hostnames.is_empty() {
        Verdict::NoMatchingListenerHostname
    } else {
        Verdict::Attached
    }
}

/// Attach routes to listeners.
pub fn attach_routes<'s>(
    routes: Col<'s, HttpRoute>,
    listeners: Col<'s, (ObjectKey, ListenerView)>,
    matched: Col<'s, (SelectorId, String)>,
    gateways: Col<'s, ObjectKey>,
) -> Attached<'s> {
    let refs = routes.flat_map(parent_refs);
    let listeners = listeners.arrange_by_key_named("listeners by gateway");
    let pairs = refs.clone().join_core(listeners, |_, r, l| {
        candidate(r, l).map(|(a, c)| match a {
            Allowance::Yes => (None, (c, true)),
            Allowance::No => (None, (c, false)),
            Allowance::Selector(sel) => (Some((sel, r.route.namespace.clone())), (c, false)),
        })
    });
    let direct = pairs
        .clone()
        .flat_map(|(sel, c)| sel.is_none().then_some(c));
    let by_selector = pairs.flat_map(|(sel, (c, _))| sel.map(|s| (s, c)));
    let selected = by_selector
        .clone()
        .semijoin(matched.clone())
        .map(|(_, c)| (c, true));
    let refused = by_selector.antijoin(matched).map(|(_, c)| (c, false));
    let verdicts = direct.concat(selected).concat(refused).map(|(c, allowed)| {
        let v = verdict(&c, allowed);
        (c, v)
    });

    let attached = verdicts
        .clone()
        .flat_map(|(c, v)| (v == Verdict::Attached).then_some(c));
    let serving = attached
        .clone()
        .filter(|c| c.serves_http)
        .flat_map(|c| {
            let (route, gateway, port) = (c.route, c.gateway, c.port);
            c.owned.into_iter().map(move |hostname| {
                (
                    route.clone(),
                    Attachment {
                        gateway: gateway.clone(),
                        port,
                        hostname,
                    },
                )
            })
        })
        .distinct();
    let counts = count_listeners(attached.map(|c| ((c.gateway, c.listener), c.route)));
    let parents = parent_status(refs.semijoin(gateways), verdicts);
    Attached {
        serving,
        counts,
        parents,
    }
}

/// Reduce the verdicts of each parentRef (of a Gateway of ours) to its `Accepted`
/// condition; a parentRef with no candidate listener is `NoMatchingParent`.
fn parent_status<'s>(
    refs: Col<'s, (ObjectKey, RefRecord)>,
    verdicts: Col<'s, (Candidate, Verdict)>,
) -> Col<'s, (ObjectKey, RouteParentStatus)> {
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    enum Fact {
        Verdict(Verdict),
        Ref(Box<RefRecord>),
    }
    let refs = refs.map(|(_, r)| ((r.route.clone(), r.index), Fact::Ref(Box::new(r))));
    let verdicts = verdicts.map(|(c, v)| ((c.route, c.index), Fact::Verdict(v)));
    refs.concat(verdicts)
        .reduce_named("route parent accepted", |_, facts, out| {
            let live = facts.iter().filter(|(_, n)| *n > 0).map(|(f, _)| *f);
            let mut rec = None;
            let mut best = None;
            for f in live {
                match f {
                    Fact::Ref(r) => rec = Some(r),
                    Fact::Verdict(v) => best = Some(best.map_or(v, |b: &Verdict| b.min(v))),
                }
            }
            let Some(rec) = rec else { return };
            let accepted = match best {
                Some(Verdict::Attached) => {
                    Condition::new("Accepted", true, "Accepted", "Route is accepted")
                }
                Some(Verdict::NoMatchingListenerHostname) => Condition::new(
                    "Accepted",
                    false,
                    "NoMatchingListenerHostname",
                    "No listener hostname intersects the route's hostnames",
                ),
                Some(Verdict::NotAllowedByListeners) => Condition::new(
                    "Accepted",
                    false,
                    "NotAllowedByListeners",
                    "No listener allows this route",
                ),
                None => Condition::new(
                    "Accepted",
                    false,
                    "NoMatchingParent",
                    "No listener matches the parentRef's sectionName or port",
                ),
            };
            let status = RouteParentStatus {
                route: rec.route.clone(),
                generation: rec.generation,
                index: rec.index,
                parent: rec.parent.clone(),
                conditions: vec![accepted],
            };
            out.push(((rec.route.clone(), status), 1));
        })
        .map(|(_, pair)| pair)
}

/// Routes attached to each listener (a route attached through two parentRefs counts
/// once).
fn count_listeners<'s>(
    attached: Col<'s, ((ObjectKey, String), ObjectKey)>,
) -> Col<'s, ((ObjectKey, String), isize)> {
    attached
        .distinct()
        .map(|(listener, _route)| listener)
        .count_total()
}
