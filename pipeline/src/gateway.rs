//! Listener admission and Gateway status: pure functions of one Gateway object (plus
//! the attached-route counts the dataflow maintains per listener).
//!
//! What a listener can do follows the spec's listener conditions: an unsupported
//! protocol is not `Accepted`; listeners sharing a port with another protocol, or with
//! the same protocol and hostname, are `Conflicted`; route kinds other than
//! `HTTPRoute` are `InvalidRouteKinds` (`ResolvedRefs=False`). HTTPS is accepted and
//! routes attach to it, but TLS termination is not implemented yet, so an HTTPS
//! listener reports `ResolvedRefs=False` / `Programmed=False` and serves nothing.

use serde::{Deserialize, Serialize};

use crate::ir::{Condition, GatewayStatus, ListenerStatus};
use crate::model::{
    FromNamespaces, GATEWAY_GROUP, Gateway, GroupKind, Listener, ObjectKey, Protocol,
};

/// What the dataflow needs to know about one listener of one of our Gateways.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ListenerView {
    pub gateway: ObjectKey,
    pub name: String,
    pub port: u16,
    pub hostname: Option<String>,
    pub allowed_namespaces: FromNamespaces,
    /// HTTPRoutes may attach (the listener is accepted and lists the kind).
    pub accepts_http_routes: bool,
    /// The listener is translated into an Envoy listener (plain HTTP, valid).
    pub serves_http: bool,
    pub supported_kinds: Vec<GroupKind>,
    /// Conditions other than those that depend on attached routes.
    pub conditions: Vec<Condition>,
    /// Hostnames of every serving listener on this port (`None`: any), for listener
    /// isolation: a request belongs to the most specific listener that matches it.
    pub port_hostnames: Vec<Option<String>>,
}

impl ListenerView {
    /// Whether requests for `hostname` (an effective hostname of a route attached
    /// here) belong to this listener, and not to a more specific one on its port.
    pub fn owns(&self, hostname: &str) -> bool {
        let covering = self.port_hostnames.iter().filter(|h| match h {
            None => true,
            Some(h) => crate::hostname::intersect(h, hostname).as_deref() == Some(hostname),
        });
        // Covering hostnames are nested, so the longest is the most specific.
        let owner = covering.max_by_key(|h| h.as_ref().map_or(0, |h| h.len() + 1));
        owner.is_some_and(|o| *o == self.hostname)
    }
}

fn http_route_kind() -> GroupKind {
    GroupKind {
        group: GATEWAY_GROUP.into(),
        kind: "HTTPRoute".into(),
    }
}

/// Supported kinds, and whether some requested kind was invalid.
fn supported_kinds(listener: &Listener) -> (Vec<GroupKind>, bool) {
    let http_like = matches!(listener.protocol, Protocol::Http | Protocol::Https);
    if !http_like {
        return (vec![], false);
    }
    if listener.allowed_kinds.is_empty() {
        return (vec![http_route_kind()], false);
    }
    let valid: Vec<GroupKind> = listener
        .allowed_kinds
        .iter()
        .filter(|k| k.kind == "HTTPRoute" && (k.group.is_empty() || k.group == GATEWAY_GROUP))
        .map(|_| http_route_kind())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let invalid = valid.len() < listener.allowed_kinds.len();
    (valid, invalid)
}

fn conflict(gw: &Gateway, l: &Listener) -> Option<&'static str> {
    let same_port = gw
        .listeners
        .iter()
        .filter(|o| o.port == l.port && o.name != l.name);
    let mut reason = None;
    for other in same_port {
        if other.protocol != l.protocol {
            return Some("ProtocolConflict");
        }
        if other.hostname == l.hostname {
            reason = Some("HostnameConflict");
        }
    }
    reason
}

/// Views of every listener of a Gateway (one of ours), in spec order.
pub fn listener_views(gw: &Gateway) -> Vec<ListenerView> {
    let mut views: Vec<ListenerView> = gw.listeners.iter().map(|l| listener_view(gw, l)).collect();
    let serving: Vec<(u16, Option<String>)> = views
        .iter()
        .filter(|v| v.serves_http)
        .map(|v| (v.port, v.hostname.clone()))
        .collect();
    for v in &mut views {
        v.port_hostnames = serving
            .iter()
            .filter(|(p, _)| *p == v.port)
            .map(|(_, h)| h.clone())
            .collect();
    }
    if gw.parameters_ref.is_some() {
        // The Gateway itself is not accepted: none of its listeners takes routes.
        for v in &mut views {
            v.accepts_http_routes = false;
            v.serves_http = false;
            for c in v.conditions.iter_mut().filter(|c| c.type_ == "Programmed") {
                *c = Condition::new(
                    "Programmed",
                    false,
                    "Invalid",
                    "The Gateway is not accepted",
                );
            }
        }
    }
    views
}

fn listener_view(gw: &Gateway, l: &Listener) -> ListenerView {
    let (kinds, invalid_kinds) = supported_kinds(l);
    let supported_protocol = matches!(l.protocol, Protocol::Http | Protocol::Https);
    let conflicted = conflict(gw, l);
    let mut conditions = vec![];
    if supported_protocol {
        conditions.push(Condition::new(
            "Accepted",
            true,
            "Accepted",
            "Listener is accepted",
        ));
    } else {
        let msg = format!("protocol {:?} is not supported", l.protocol);
        conditions.push(Condition::new(
            "Accepted",
            false,
            "UnsupportedProtocol",
            msg,
        ));
    }
    match conflicted {
        Some(reason) => conditions.push(Condition::new(
            "Conflicted",
            true,
            reason,
            "Listener conflicts with another listener on its port",
        )),
        None => conditions.push(Condition::new(
            "Conflicted",
            false,
            "NoConflicts",
            "No conflicts",
        )),
    }
    let tls_pending = l.protocol == Protocol::Https;
    if invalid_kinds {
        conditions.push(Condition::new(
            "ResolvedRefs",
            false,
            "InvalidRouteKinds",
            "Only HTTPRoute is supported",
        ));
    } else if tls_pending {
        conditions.push(Condition::new(
            "ResolvedRefs",
            false,
            "InvalidCertificateRef",
            "TLS certificates are not supported yet",
        ));
    } else {
        conditions.push(Condition::new(
            "ResolvedRefs",
            true,
            "ResolvedRefs",
            "All references resolved",
        ));
    }
    let ok = supported_protocol && conflicted.is_none();
    let serves_http = ok && l.protocol == Protocol::Http && !kinds.is_empty();
    if serves_http {
        conditions.push(Condition::new(
            "Programmed",
            true,
            "Programmed",
            "Listener is programmed",
        ));
    } else {
        conditions.push(Condition::new(
            "Programmed",
            false,
            "Invalid",
            "Listener is not programmed",
        ));
    }
    conditions.sort();
    ListenerView {
        gateway: gw.meta.key.clone(),
        name: l.name.clone(),
        port: l.port,
        hostname: l.hostname.clone(),
        allowed_namespaces: l.allowed_namespaces.clone(),
        accepts_http_routes: ok && !kinds.is_empty(),
        serves_http,
        supported_kinds: kinds,
        conditions,
        port_hostnames: vec![],
    }
}

/// The Gateway's status, given the number of routes attached to each listener.
pub fn gateway_status(gw: &Gateway, attached: &[(String, u32)]) -> GatewayStatus {
    let views = listener_views(gw);
    let valid = views
        .iter()
        .filter(|v| {
            v.conditions
                .iter()
                .all(|c| c.type_ != "Accepted" || c.status)
        })
        .count();
    let all_valid = views.iter().all(|v| v.serves_http);
    let accepted = if let Some(p) = &gw.parameters_ref {
        Condition::new(
            "Accepted",
            false,
            "InvalidParameters",
            format!("parametersRef {p} is not a supported kind"),
        )
    } else if views.is_empty() || all_valid {
        Condition::new("Accepted", true, "Accepted", "Gateway is accepted")
    } else if valid > 0 {
        Condition::new(
            "Accepted",
            true,
            "ListenersNotValid",
            "Some listeners are not valid",
        )
    } else {
        Condition::new(
            "Accepted",
            false,
            "ListenersNotValid",
            "No listener is valid",
        )
    };
    let programmed = if views.iter().any(|v| v.serves_http) {
        Condition::new("Programmed", true, "Programmed", "Gateway is programmed")
    } else {
        Condition::new("Programmed", false, "Invalid", "No listener is programmed")
    };
    let listeners = views
        .into_iter()
        .map(|v| {
            let attached_routes = attached
                .iter()
                .find(|(n, _)| *n == v.name)
                .map_or(0, |(_, c)| *c);
            ListenerStatus {
                name: v.name,
                attached_routes,
                supported_kinds: v.supported_kinds,
                conditions: v.conditions,
            }
        })
        .collect();
    GatewayStatus {
        gateway: gw.meta.key.clone(),
        generation: gw.meta.generation,
        conditions: vec![accepted, programmed],
        listeners,
    }
}
