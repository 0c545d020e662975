//! Route attachment (Gateway API v1 `ParentReference`, `AllowedRoutes`,
//! `HTTPRoute.spec.hostnames`): whether one parentRef may attach to one listener,
//! and the route parent's `Accepted` condition.

use serde::{Deserialize, Serialize};

use crate::ir::Condition;
use crate::model::{FromNamespaces, ParentRef};
use crate::spec::conditions::{ConditionType as Type, Reason};
use crate::spec::listener::ListenerView;

/// The verdict of one (parentRef, listener) pair; the best verdict over a parentRef's
/// listeners decides its `Accepted` condition (smaller is better).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Verdict {
    Attached,
    NoMatchingListenerHostname,
    NotAllowedByListeners,
}

impl Verdict {
    /// The verdict of a candidate listener: `allowed` by its namespace policy, with
    /// the effective hostnames of the route on it.
    pub fn of(allowed: bool, hostnames: &[String]) -> Self {
        if !allowed {
            Verdict::NotAllowedByListeners
        } else if hostnames.is_empty() {
            Verdict::NoMatchingListenerHostname
        } else {
            Verdict::Attached
        }
    }
}

/// How a listener's namespace policy (`allowedRoutes.namespaces`) applies to a
/// route's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowance {
    Yes,
    No,
    /// Decided by the listener's label selector.
    Selector,
}

/// Whether `parent` selects `listener` (by `sectionName` and `port`).
pub fn selects(parent: &ParentRef, listener: &ListenerView) -> bool {
    parent
        .section_name
        .as_ref()
        .is_none_or(|s| *s == listener.name)
        && parent.port.is_none_or(|p| p == listener.port)
}

/// The listener's namespace policy for a route in `route_namespace`.
pub fn allowance(listener: &ListenerView, route_namespace: &str) -> Allowance {
    if !listener.accepts_http_routes {
        return Allowance::No;
    }
    match &listener.allowed_namespaces {
        FromNamespaces::All => Allowance::Yes,
        FromNamespaces::Same if route_namespace == listener.gateway.namespace => Allowance::Yes,
        FromNamespaces::Same => Allowance::No,
        FromNamespaces::Selector(_) => Allowance::Selector,
    }
}

/// The route parent's `Accepted` condition from its best verdict; `None`: no
/// listener matched the parentRef's `sectionName` or `port`.
pub fn accepted(best: Option<Verdict>) -> Condition {
    match best {
        Some(Verdict::Attached) => {
            Condition::new(Type::Accepted, true, Reason::Accepted, "Route is accepted")
        }
        Some(Verdict::NoMatchingListenerHostname) => Condition::new(
            Type::Accepted,
            false,
            Reason::NoMatchingListenerHostname,
            "No listener hostname intersects the route's hostnames",
        ),
        Some(Verdict::NotAllowedByListeners) => Condition::new(
            Type::Accepted,
            false,
            Reason::NotAllowedByListeners,
            "No listener allows this route",
        ),
        None => Condition::new(
            Type::Accepted,
            false,
            Reason::NoMatchingParent,
            "No listener matches the parentRef's sectionName or port",
        ),
    }
}
