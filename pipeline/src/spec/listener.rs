//! Listener validity (Gateway API v1 `Gateway.spec.listeners` and
//! `ListenerStatus.conditions`): pure functions of one Gateway object.
//!
//! An unsupported protocol is not `Accepted` (`UnsupportedProtocol`); listeners
//! sharing a port with another protocol (`ProtocolConflict`), or with the same
//! protocol and hostname (`HostnameConflict`), are `Conflicted` and, all of them
//! ("ALL indistinct Listeners must not be accepted", `GatewaySpec.listeners`), not
//! `Accepted` and not `Programmed`, with the conflict as the reason (as the upstream
//! conformance suite expects of conflicted listeners). Only valid listeners of a
//! supported protocol take part in conflicts: an unsupported TCP or UDP listener,
//! or an invalid one (a hostname the spec forbids, a malformed `allowedRoutes`
//! selector, an HTTPS listener without `tls` in `Terminate` mode:
//! `Accepted=False` / `UnsupportedValue`), is not accepted on its own and
//! leaves its siblings alone; route kinds other than
//! `HTTPRoute` are `InvalidRouteKinds` (`ResolvedRefs=False`).
//!
//! HTTPS listeners terminate TLS at Envoy with the certificates of their
//! `tls.certificateRefs`. Whether those resolve depends on other objects (Secrets,
//! ReferenceGrants): the dataflow resolves them (`dataflow::certificates`) and
//! [`CertificateVerdict::apply`] folds the outcome into the listener's
//! `ResolvedRefs` and `Programmed` conditions. Routes attach to an HTTPS listener
//! whatever its certificates (the spec counts them in `attachedRoutes`); it is
//! programmed only with at least one valid certificate.
//!
//! An HTTPS listener may also validate client certificates (`spec.tls.frontend`:
//! the `perPort` setting for its port, else the `default`). Its
//! `caCertificateRefs` resolve the same way (ConfigMaps with `ca.crt`); a failing
//! one makes `ResolvedRefs=False` (`InvalidCACertificateRef`,
//! `InvalidCACertificateKind`, `RefNotPermitted`), and when none resolves the
//! listener is `Accepted=False` / `NoValidCACertificate` and serves nothing: it
//! never falls back to accepting clients it was told to verify.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ir::Condition;
use crate::model::{
    ClientValidation, FromNamespaces, Gateway, GroupKind, Listener, ObjectKey, Protocol, SecretRef,
};
use crate::spec::conditions::{ConditionType as Type, Reason};
use crate::spec::hostname;

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
    /// The listener is translated into an Envoy listener (HTTP, or HTTPS
    /// terminated at Envoy; valid and accepted). An HTTPS listener also needs a
    /// valid certificate ([`CertificateVerdict`]) to be programmed.
    pub serves_http: bool,
    /// `tls.certificateRefs` of an HTTPS listener (empty for HTTP).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_refs: Vec<SecretRef>,
    /// Client certificate validation of an HTTPS listener (`spec.tls.frontend`:
    /// the setting for its port, else the default; `None` for HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_validation: Option<ClientValidation>,
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
            Some(h) => hostname::intersect(h, hostname).as_deref() == Some(hostname),
        });
        // Covering hostnames are nested, so the longest is the most specific.
        let owner = covering.max_by_key(|h| h.as_ref().map_or(0, |h| h.len() + 1));
        owner.is_some_and(|o| *o == self.hostname)
    }

    /// The listener serves nothing: `Programmed=False` / `Invalid`, saying why.
    fn unprogram(&mut self, why: &str) {
        self.serves_http = false;
        for c in (self.conditions.iter_mut()).filter(|c| c.type_ == Type::Programmed) {
            *c = Condition::new(Type::Programmed, false, Reason::Invalid, why);
        }
    }

    /// Whether the listener is `Accepted` (its protocol is supported).
    pub fn is_accepted(&self) -> bool {
        self.conditions
            .iter()
            .all(|c| c.type_ != Type::Accepted || c.status)
    }
}

/// Supported kinds, and whether some requested kind was invalid.
fn supported_kinds(listener: &Listener) -> (Vec<GroupKind>, bool) {
    let http_like = supported_protocol(listener);
    if !http_like {
        return (vec![], false);
    }
    if listener.allowed_kinds.is_empty() {
        return (vec![GroupKind::http_route()], false);
    }
    let valid: BTreeSet<GroupKind> = listener
        .allowed_kinds
        .iter()
        .filter(|k| k.is_http_route())
        .map(|_| GroupKind::http_route())
        .collect();
    let invalid = valid.len() < listener.allowed_kinds.len();
    (valid.into_iter().collect(), invalid)
}

/// Whether the listener takes part in the distinctness rules: its protocol is one
/// Sluice serves and it is valid as written. An unsupported (TCP, UDP, ...) or
/// invalid listener is not accepted on its own account and never takes a valid
/// sibling on its port down with it ("If an implementation does not support TCP
/// Protocol Listeners, then the previous rule does not apply, and the TCP Listeners
/// SHOULD NOT be accepted", `GatewaySpec.listeners`).
fn distinguishable(l: &Listener) -> bool {
    supported_protocol(l) && invalidity(l).is_none()
}

/// Whether Sluice serves the listener's protocol (HTTP, and HTTPS as far as it goes).
fn supported_protocol(l: &Listener) -> bool {
    matches!(l.protocol, Protocol::Http | Protocol::Https)
}

/// Why the listener is invalid as written: a conversion problem (its
/// `allowedRoutes` selector), a hostname the spec does not allow, or an HTTPS
/// listener without certificates to terminate TLS with.
fn invalidity(l: &Listener) -> Option<String> {
    if let Some(problem) = &l.problem {
        return Some(problem.clone());
    }
    if l.protocol == Protocol::Https {
        match &l.tls {
            None => return Some("tls: required for protocol HTTPS".into()),
            Some(tls) if !tls.mode_terminate => {
                return Some("tls.mode: HTTPS listeners terminate TLS (mode Terminate)".into());
            }
            Some(tls) if tls.certificate_refs.is_empty() => {
                return Some(
                    "tls.certificateRefs: at least one is required in mode Terminate".into(),
                );
            }
            Some(_) => {}
        }
    }
    let h = l.hostname.as_deref()?;
    crate::spec::validate::hostname_problem(h).map(|why| format!("hostname: {why}"))
}

fn conflict(gw: &Gateway, l: &Listener) -> Option<Reason> {
    if !distinguishable(l) {
        return None;
    }
    let same_port = gw
        .listeners
        .iter()
        .filter(|o| o.port == l.port && o.name != l.name && distinguishable(o));
    let mut reason = None;
    for other in same_port {
        if other.protocol != l.protocol {
            return Some(Reason::ProtocolConflict);
        }
        if other.hostname == l.hostname {
            reason = Some(Reason::HostnameConflict);
        }
    }
    reason
}

/// Views of every listener of a Gateway (one of ours), in spec order. `max_port`:
/// the highest listener port the proxies can bind (65535 less the port offset); a
/// listener past it is not accepted (`PortUnavailable`) and serves nothing, and its
/// siblings are unaffected.
pub fn listener_views(gw: &Gateway, max_port: u16) -> Vec<ListenerView> {
    let mut views: Vec<ListenerView> = (gw.listeners.iter())
        .map(|l| listener_view(gw, l, max_port))
        .collect();
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
    if gw.parameters_ref.is_some() || crate::spec::gateway::unsupported_address(gw).is_some() {
        // The Gateway itself is not accepted: none of its listeners takes routes.
        for v in &mut views {
            v.accepts_http_routes = false;
            v.unprogram("The Gateway is not accepted");
        }
    }
    views
}

fn listener_view(gw: &Gateway, l: &Listener, max_port: u16) -> ListenerView {
    let (kinds, invalid_kinds) = supported_kinds(l);
    let supported_protocol = supported_protocol(l);
    let conflicted = conflict(gw, l);
    let bindable = l.port <= max_port;
    let invalid = invalidity(l);
    let ok = supported_protocol && conflicted.is_none() && bindable && invalid.is_none();
    let serves_http = ok && !kinds.is_empty();
    let mut conditions = vec![
        accepted(
            l,
            supported_protocol,
            conflicted,
            max_port,
            invalid.as_deref(),
        ),
        conflicted_condition(conflicted),
        resolved_refs(invalid_kinds),
        programmed(serves_http, conflicted),
    ];
    conditions.sort();
    ListenerView {
        gateway: gw.meta.key.clone(),
        name: l.name.clone(),
        port: l.port,
        hostname: l.hostname.clone(),
        allowed_namespaces: l.allowed_namespaces.clone(),
        accepts_http_routes: ok && !kinds.is_empty(),
        serves_http,
        certificate_refs: match (&l.protocol, &l.tls) {
            (Protocol::Https, Some(tls)) => tls.certificate_refs.clone(),
            _ => vec![],
        },
        client_validation: match l.protocol {
            Protocol::Https => client_validation(gw, l.port),
            _ => None,
        },
        supported_kinds: kinds,
        conditions,
        port_hostnames: vec![],
    }
}

/// The client validation that applies on `port`: its `perPort` setting, else the
/// default; none without CA references (a `perPort` entry without validation
/// turns the default off on its port).
fn client_validation(gw: &Gateway, port: u16) -> Option<ClientValidation> {
    let settings = &gw.frontend_validation;
    (settings.iter().find(|s| s.port == Some(port)))
        .or_else(|| settings.iter().find(|s| s.port.is_none()))
        .map(|s| s.client.clone())
        .filter(|c| !c.ca_refs.is_empty())
}

fn accepted(
    l: &Listener,
    supported_protocol: bool,
    conflict: Option<Reason>,
    max_port: u16,
    invalid: Option<&str>,
) -> Condition {
    if let Some(why) = invalid {
        let msg = format!("Listener is invalid: {why}");
        Condition::new(Type::Accepted, false, Reason::UnsupportedValue, msg)
    } else if l.port > max_port {
        let offset = u16::MAX - max_port;
        let msg = format!(
            "port {} plus the controller's port offset {offset} is past 65535: the proxy cannot bind it",
            l.port
        );
        Condition::new(Type::Accepted, false, Reason::PortUnavailable, msg)
    } else if !supported_protocol {
        let msg = format!("protocol {} is not supported", l.protocol);
        Condition::new(Type::Accepted, false, Reason::UnsupportedProtocol, msg)
    } else if let Some(reason) = conflict {
        let msg = "Listener conflicts with another listener on its port: not accepted";
        Condition::new(Type::Accepted, false, reason, msg)
    } else {
        Condition::new(
            Type::Accepted,
            true,
            Reason::Accepted,
            "Listener is accepted",
        )
    }
}

fn conflicted_condition(conflict: Option<Reason>) -> Condition {
    match conflict {
        Some(reason) => Condition::new(
            Type::Conflicted,
            true,
            reason,
            "Listener conflicts with another listener on its port",
        ),
        None => Condition::new(Type::Conflicted, false, Reason::NoConflicts, "No conflicts"),
    }
}

fn resolved_refs(invalid_kinds: bool) -> Condition {
    if invalid_kinds {
        Condition::new(
            Type::ResolvedRefs,
            false,
            Reason::InvalidRouteKinds,
            "Only HTTPRoute is supported",
        )
    } else {
        Condition::new(
            Type::ResolvedRefs,
            true,
            Reason::ResolvedRefs,
            "All references resolved",
        )
    }
}

fn programmed(serves_http: bool, conflict: Option<Reason>) -> Condition {
    if let Some(reason) = conflict {
        let msg = "Listener conflicts with another listener on its port: not programmed";
        Condition::new(Type::Programmed, false, reason, msg)
    } else if serves_http {
        Condition::new(
            Type::Programmed,
            true,
            Reason::Programmed,
            "Listener is programmed",
        )
    } else {
        Condition::new(
            Type::Programmed,
            false,
            Reason::Invalid,
            "Listener is not programmed",
        )
    }
}

/// The outcome of an HTTPS listener's `tls.certificateRefs` and client validation
/// `caCertificateRefs` (`dataflow::certificates`): the Secrets and CA ConfigMaps
/// Envoy may use, by name, and why the first reference that failed did.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CertificateVerdict {
    /// Names (`namespace/name`) of the valid Secrets, in reference order.
    pub secrets: Vec<String>,
    /// The first failing reference (certificates before CA certificates):
    /// `InvalidCertificateRef`, `InvalidCACertificateRef`,
    /// `InvalidCACertificateKind` or `RefNotPermitted`, with a message naming every
    /// failing reference.
    pub problem: Option<(Reason, String)>,
    /// With client validation: names (`namespace/name`) of the valid CA
    /// ConfigMaps, in reference order (empty: none valid). `None`: no validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<Vec<String>>,
}

impl CertificateVerdict {
    /// Whether the listener can be served: it has a valid certificate and, when it
    /// validates clients, a valid CA certificate.
    pub fn serves(&self) -> bool {
        !self.secrets.is_empty() && !self.client_ca.as_ref().is_some_and(Vec::is_empty)
    }

    /// Folds the verdict into an HTTPS listener's view: `ResolvedRefs=False` with
    /// the first failing reference's reason, and, without any valid certificate,
    /// `Programmed=False` / `Invalid` (it serves nothing). `None`: a serving HTTPS
    /// listener whose references have not resolved to anything yet.
    pub fn apply(verdict: Option<&CertificateVerdict>, view: &mut ListenerView) {
        if view.certificate_refs.is_empty() || !view.serves_http {
            return;
        }
        let fallback = CertificateVerdict {
            secrets: vec![],
            problem: Some((
                Reason::InvalidCertificateRef,
                "No certificate reference resolved".into(),
            )),
            client_ca: view.client_validation.as_ref().map(|_| vec![]),
        };
        let verdict = verdict.unwrap_or(&fallback);
        let already_false = |t: Type, conditions: &[Condition]| {
            conditions.iter().any(|c| c.type_ == t && !c.status)
        };
        if let Some((reason, message)) = &verdict.problem
            && !already_false(Type::ResolvedRefs, &view.conditions)
        {
            for c in view
                .conditions
                .iter_mut()
                .filter(|c| c.type_ == Type::ResolvedRefs)
            {
                *c = Condition::new(Type::ResolvedRefs, false, *reason, message.clone());
            }
        }
        if verdict.client_ca.as_ref().is_some_and(Vec::is_empty) {
            let msg =
                "No caCertificateRefs of the client certificate validation resolved: not accepted";
            for c in (view.conditions.iter_mut()).filter(|c| c.type_ == Type::Accepted && c.status)
            {
                *c = Condition::new(Type::Accepted, false, Reason::NoValidCACertificate, msg);
            }
            view.unprogram("Listener has no valid CA certificate: not programmed");
        } else if verdict.secrets.is_empty() {
            view.unprogram("Listener has no valid certificate: not programmed");
        }
        view.conditions.sort();
    }
}

#[cfg(test)]
mod tests {
    //! Listener validity against `GatewaySpec.listeners` ("Distinct Listeners",
    //! "Handling indistinct Listeners") and the `Hostname` type: an unsupported or
    //! invalid listener is not accepted, and no valid sibling is harmed by it.
    use super::*;
    use crate::fixtures::{gateway, http_listener};
    use crate::model::FrontendValidation;

    fn condition(v: &ListenerView, t: Type) -> &Condition {
        v.conditions
            .iter()
            .find(|c| c.type_ == t)
            .expect("condition")
    }

    fn view<'a>(views: &'a [ListenerView], name: &str) -> &'a ListenerView {
        views.iter().find(|v| v.name == name).expect("listener")
    }

    fn https_listener(name: &str, port: u16) -> Listener {
        Listener {
            tls: Some(crate::model::ListenerTls {
                mode_terminate: true,
                certificate_refs: vec![SecretRef {
                    group: String::new(),
                    kind: "Secret".into(),
                    namespace: None,
                    name: "cert".into(),
                }],
            }),
            ..with(name, port, Protocol::Https)
        }
    }

    #[test]
    fn an_https_listener_needs_tls_in_terminate_mode_with_certificates() {
        let mut passthrough = https_listener("passthrough", 443);
        if let Some(tls) = &mut passthrough.tls {
            tls.mode_terminate = false;
        }
        let mut empty = https_listener("empty", 443);
        if let Some(tls) = &mut empty.tls {
            tls.certificate_refs.clear();
        }
        let gw = gateway(
            "ns",
            "gw",
            vec![
                with("none", 443, Protocol::Https),
                passthrough,
                empty,
                https_listener("good", 8443),
            ],
        );
        let views = listener_views(&gw, u16::MAX);
        for (name, says) in [
            ("none", "tls: required"),
            ("passthrough", "mode Terminate"),
            ("empty", "at least one"),
        ] {
            let v = view(&views, name);
            let accepted = condition(v, Type::Accepted);
            assert!(!accepted.status && !v.serves_http, "{name}");
            assert_eq!(accepted.reason, Reason::UnsupportedValue, "{name}");
            assert!(
                accepted.message.contains(says),
                "{name}: {}",
                accepted.message
            );
        }
        let good = view(&views, "good");
        assert!(good.serves_http && good.accepts_http_routes);
        assert_eq!(good.certificate_refs.len(), 1);
    }

    #[test]
    fn a_certificate_verdict_sets_resolved_refs_and_programmed() {
        let gw = gateway("ns", "gw", vec![https_listener("https", 443)]);
        let fresh = || listener_views(&gw, u16::MAX).remove(0);
        // Some certificate valid, another not: served, but ResolvedRefs=False.
        let mut v = fresh();
        let partly = CertificateVerdict {
            secrets: vec!["ns/cert".into()],
            problem: Some((Reason::RefNotPermitted, "certificateRefs[1] ...".into())),
            ..Default::default()
        };
        CertificateVerdict::apply(Some(&partly), &mut v);
        assert!(v.serves_http);
        assert_eq!(
            condition(&v, Type::ResolvedRefs).reason,
            Reason::RefNotPermitted
        );
        assert!(!condition(&v, Type::ResolvedRefs).status);
        assert!(condition(&v, Type::Programmed).status);
        // None valid (or none resolved yet): not programmed.
        for verdict in [
            None,
            Some(CertificateVerdict {
                secrets: vec![],
                problem: Some((Reason::InvalidCertificateRef, "not found".into())),
                ..Default::default()
            }),
        ] {
            let mut v = fresh();
            CertificateVerdict::apply(verdict.as_ref(), &mut v);
            assert!(!v.serves_http);
            let resolved = condition(&v, Type::ResolvedRefs);
            assert_eq!(
                (resolved.status, resolved.reason),
                (false, Reason::InvalidCertificateRef)
            );
            let programmed = condition(&v, Type::Programmed);
            assert_eq!(
                (programmed.status, programmed.reason),
                (false, Reason::Invalid)
            );
        }
        // All valid: everything true.
        let mut v = fresh();
        let all = CertificateVerdict {
            secrets: vec!["ns/cert".into()],
            problem: None,
            ..Default::default()
        };
        CertificateVerdict::apply(Some(&all), &mut v);
        assert!(v.serves_http && condition(&v, Type::ResolvedRefs).status);
    }

    fn validation(port: Option<u16>, ca: &str, insecure_fallback: bool) -> FrontendValidation {
        FrontendValidation {
            port,
            client: ClientValidation {
                ca_refs: vec![SecretRef {
                    group: String::new(),
                    kind: "ConfigMap".into(),
                    namespace: None,
                    name: ca.into(),
                }],
                insecure_fallback,
            },
        }
    }

    /// `GatewayTLSConfig.frontend`: a `perPort` setting overrides the default for
    /// the HTTPS listeners on its port only; HTTP listeners validate nothing.
    #[test]
    fn client_validation_is_the_ports_setting_else_the_default_and_https_only() {
        let mut gw = gateway(
            "ns",
            "gw",
            vec![
                https_listener("a", 443),
                https_listener("b", 8443),
                http_listener("plain", 8443),
                http_listener("http", 80),
                https_listener("off", 9443),
            ],
        );
        gw.listeners[1].hostname = Some("b.example".into());
        let mut off = validation(Some(9443), "unused", false);
        off.client.ca_refs.clear();
        gw.frontend_validation = vec![
            validation(None, "default-ca", false),
            validation(Some(8443), "port-ca", true),
            validation(Some(80), "http-ca", false),
            off,
        ];
        let views = listener_views(&gw, u16::MAX);
        let ca = |i: usize| {
            (views[i].client_validation.as_ref())
                .map(|c| (c.ca_refs[0].name.as_str(), c.insecure_fallback))
        };
        assert_eq!(ca(0), Some(("default-ca", false)));
        assert_eq!(ca(1), Some(("port-ca", true)));
        assert_eq!(ca(2), None);
        assert_eq!(ca(3), None);
        // A perPort entry without validation turns the default off on its port.
        assert_eq!(ca(4), None);
    }

    /// "If ALL CACertificateRefs are invalid, the implementation MUST also ensure
    /// the `Accepted` condition on the listener is set to `status: False`, with the
    /// Reason `NoValidCACertificate`" (`FrontendTLSValidation.caCertificateRefs`);
    /// one valid CA of two leaves it accepted and served, `ResolvedRefs=False`.
    #[test]
    fn no_valid_ca_certificate_means_not_accepted_and_not_programmed() {
        let mut gw = gateway("ns", "gw", vec![https_listener("https", 443)]);
        gw.frontend_validation = vec![validation(None, "ca", false)];
        let fresh = || listener_views(&gw, u16::MAX).remove(0);
        let none_valid = CertificateVerdict {
            secrets: vec!["ns/cert".into()],
            problem: Some((
                Reason::InvalidCACertificateRef,
                "ConfigMap not found".into(),
            )),
            client_ca: Some(vec![]),
        };
        for verdict in [Some(&none_valid), None] {
            let mut v = fresh();
            CertificateVerdict::apply(verdict, &mut v);
            assert!(!v.serves_http);
            let accepted = condition(&v, Type::Accepted);
            assert_eq!(
                (accepted.status, accepted.reason),
                (false, Reason::NoValidCACertificate)
            );
            assert!(!condition(&v, Type::Programmed).status);
            assert!(!condition(&v, Type::ResolvedRefs).status);
        }
        let mut v = fresh();
        let one_valid = CertificateVerdict {
            client_ca: Some(vec!["ns/ca".into()]),
            ..none_valid
        };
        CertificateVerdict::apply(Some(&one_valid), &mut v);
        assert!(v.serves_http && condition(&v, Type::Accepted).status);
        let resolved = condition(&v, Type::ResolvedRefs);
        assert_eq!(
            (resolved.status, resolved.reason),
            (false, Reason::InvalidCACertificateRef)
        );
    }

    fn with(name: &str, port: u16, protocol: Protocol) -> Listener {
        Listener {
            protocol,
            ..http_listener(name, port)
        }
    }

    #[test]
    fn an_unsupported_tcp_or_udp_listener_leaves_the_http_listener_on_its_port_alone() {
        let gw = gateway(
            "ns",
            "gw",
            vec![
                http_listener("http", 80),
                with("tcp", 80, Protocol::Tcp),
                with("udp", 80, Protocol::Udp),
            ],
        );
        let views = listener_views(&gw, u16::MAX);
        let http = view(&views, "http");
        assert!(http.serves_http && http.accepts_http_routes, "{http:#?}");
        assert!(!condition(http, Type::Conflicted).status);
        for name in ["tcp", "udp"] {
            let v = view(&views, name);
            let accepted = condition(v, Type::Accepted);
            assert!(!accepted.status);
            assert_eq!(accepted.reason, Reason::UnsupportedProtocol, "{name}");
            assert!(!condition(v, Type::Conflicted).status, "{name}");
        }
    }

    #[test]
    fn http_and_https_on_one_port_still_conflict() {
        let gw = gateway(
            "ns",
            "gw",
            vec![http_listener("a", 80), https_listener("b", 80)],
        );
        for v in listener_views(&gw, u16::MAX) {
            assert_eq!(
                condition(&v, Type::Accepted).reason,
                Reason::ProtocolConflict
            );
        }
    }

    #[test]
    fn an_invalid_hostname_or_selector_marks_only_its_listener() {
        let bad_host = |name: &str, host: &str| Listener {
            hostname: Some(host.to_owned()),
            ..http_listener(name, 80)
        };
        let bad_selector = Listener {
            problem: Some(
                "allowedRoutes.namespaces.selector: required when from is Selector".into(),
            ),
            ..http_listener("selector", 80)
        };
        let gw = gateway(
            "ns",
            "gw",
            vec![
                http_listener("good", 80),
                bad_host("punct", "bad_host!"),
                bad_host("ip", "1.2.3.4"),
                // Same hostname (none) and port as `good`: it would conflict were it valid.
                bad_selector,
            ],
        );
        let views = listener_views(&gw, u16::MAX);
        let good = view(&views, "good");
        assert!(good.serves_http && good.accepts_http_routes, "{good:#?}");
        assert!(!condition(good, Type::Conflicted).status);
        assert_eq!(
            good.port_hostnames,
            vec![None],
            "only the valid listener serves"
        );
        for (name, says) in [
            ("punct", "bad_host!"),
            ("ip", "IP address"),
            ("selector", "required when from is Selector"),
        ] {
            let v = view(&views, name);
            assert!(!v.serves_http && !v.accepts_http_routes, "{name}");
            let accepted = condition(v, Type::Accepted);
            assert!(!accepted.status, "{name}");
            assert_eq!(accepted.reason, Reason::UnsupportedValue, "{name}");
            assert!(
                accepted.message.contains(says),
                "{name}: {}",
                accepted.message
            );
            let programmed = condition(v, Type::Programmed);
            assert!(!programmed.status);
            assert_eq!(programmed.reason, Reason::Invalid);
        }
    }
}
