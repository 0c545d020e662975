//! Gateway status (Gateway API v1 `GatewayStatus`): the Gateway's `Accepted` and
//! `Programmed` conditions and its listeners' statuses, from the Gateway object and
//! the attached-route count of each listener.
//!
//! `spec.addresses` ("If a value is set in the spec and the requested address is
//! invalid or unavailable, the implementation MUST indicate this"): Sluice does not
//! provision addresses; its proxies bind the address the operator gives each Gateway
//! (`--gateway-address NS/NAME=IP`, else `--listen-address`), see [`BindAddresses`].
//! - An address of a type other than `IPAddress` (`Hostname`, `NamedAddress`, a
//!   domain-prefixed type) cannot be honoured: the Gateway is not accepted
//!   (`Accepted=False` / `UnsupportedAddress`) and none of its listeners is served,
//!   as for any Gateway that is not accepted.
//! - An `IPAddress` without a value is assigned the bound address. One with a value
//!   is usable when it is the address the Gateway's proxies bind; any other (or a
//!   value that is not an IP address) is `Programmed=False` / `AddressNotUsable`,
//!   naming the address the proxies do bind. The listeners stay served there: the
//!   Gateway is accepted, only the address it asked for is not in effect.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ir::{Condition, GatewayStatus, ListenerStatus};
use crate::model::{Gateway, ObjectKey};
use crate::spec::conditions::{ConditionType as Type, Reason};
use crate::spec::listener::{CertificateVerdict, ListenerView, listener_views};

/// What the dataflow knows about one listener besides the Gateway object itself.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ListenerFact {
    /// (listener name, number of routes attached).
    Attached(String, u32),
    /// (listener name, the outcome of its certificate references).
    Certificates(String, CertificateVerdict),
}

/// Where the proxies of each Gateway bind their listeners (the encoder's setting,
/// shared so that status says what is served).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindAddresses {
    /// For Gateways without their own (`0.0.0.0`: every address of the proxy's host).
    pub default: String,
    pub per_gateway: BTreeMap<ObjectKey, String>,
}

impl Default for BindAddresses {
    fn default() -> Self {
        Self {
            default: "0.0.0.0".to_owned(),
            per_gateway: BTreeMap::new(),
        }
    }
}

impl BindAddresses {
    pub fn for_gateway(&self, gateway: &ObjectKey) -> &str {
        self.per_gateway.get(gateway).unwrap_or(&self.default)
    }
}

/// Why the Gateway cannot be accepted for its `spec.addresses`: the first address of
/// a type Sluice cannot honour.
pub fn unsupported_address(gw: &Gateway) -> Option<String> {
    let (i, a) = (gw.addresses.iter().enumerate()).find(|(_, a)| a.type_ != "IPAddress")?;
    Some(format!(
        "spec.addresses[{i}]: address type {:?} is not supported: Sluice's proxies bind IP \
         addresses only (IPAddress)",
        a.type_
    ))
}

/// Why some requested `IPAddress` is not in effect; `None` if each is the bound one
/// (or has no value).
fn unusable_addresses(gw: &Gateway, bound: &str) -> Option<String> {
    let bound_ip = bound.parse::<std::net::IpAddr>().ok();
    let unusable: Vec<String> = (gw.addresses.iter().enumerate())
        .filter_map(|(i, a)| {
            let value = a.value.as_deref()?;
            let usable = value
                .parse::<std::net::IpAddr>()
                .ok()
                .is_some_and(|ip| Some(ip) == bound_ip && !ip.is_unspecified());
            (!usable).then(|| format!("spec.addresses[{i}] {value:?}"))
        })
        .collect();
    (!unusable.is_empty()).then(|| {
        format!(
            "{} not usable: this Gateway's proxies bind {bound} (the operator sets a \
             Gateway's address with --gateway-address NAMESPACE/NAME=IP); its listeners \
             are served there",
            unusable.join(", ")
        )
    })
}

/// The Gateway's status, given the number of routes attached to each listener
/// and the certificates of its HTTPS listeners (by listener name; a listener not
/// listed has no attached route, and no resolved certificate).
/// `max_port` as for [`listener_views`]; `bound`: the address its proxies bind.
pub fn gateway_status(
    gw: &Gateway,
    facts: &[&ListenerFact],
    max_port: u16,
    bound: &str,
) -> GatewayStatus {
    let mut views = listener_views(gw, max_port);
    for v in &mut views {
        let verdict = facts.iter().find_map(|f| match f {
            ListenerFact::Certificates(name, verdict) if *name == v.name => Some(verdict),
            _ => None,
        });
        CertificateVerdict::apply(verdict, v);
    }
    let programmed = match unusable_addresses(gw, bound) {
        Some(msg) if unsupported_address(gw).is_none() => {
            Condition::new(Type::Programmed, false, Reason::AddressNotUsable, msg)
        }
        _ => programmed(&views),
    };
    let mut conditions = vec![accepted(gw, &views), programmed];
    conditions.extend(insecure_frontend_validation(gw));
    let listeners = views
        .into_iter()
        .map(|v| {
            let attached_routes = facts
                .iter()
                .find_map(|f| match f {
                    ListenerFact::Attached(name, n) if *name == v.name => Some(*n),
                    _ => None,
                })
                .unwrap_or(0);
            ListenerStatus {
                name: v.name,
                port: v.port,
                attached_routes,
                supported_kinds: v.supported_kinds,
                conditions: v.conditions,
            }
        })
        .collect();
    GatewayStatus {
        gateway: gw.meta.key.clone(),
        generation: gw.meta.generation,
        conditions,
        listeners,
    }
}

/// `Accepted`: false for an unsupported `parametersRef`; `ListenersNotValid` when
/// some listener (true) or every listener (false) is invalid.
fn accepted(gw: &Gateway, views: &[ListenerView]) -> Condition {
    let valid = views.iter().filter(|v| v.is_accepted()).count();
    let all_valid = views.iter().all(|v| v.serves_http);
    if let Some(problem) = &gw.meta.problem {
        Condition::new(
            Type::Accepted,
            false,
            Reason::Invalid,
            not_converted(problem),
        )
    } else if let Some(p) = &gw.parameters_ref {
        Condition::new(
            Type::Accepted,
            false,
            Reason::InvalidParameters,
            format!("parametersRef {p} is not a supported kind"),
        )
    } else if let Some(msg) = unsupported_address(gw) {
        Condition::new(Type::Accepted, false, Reason::UnsupportedAddress, msg)
    } else if views.is_empty() || all_valid {
        Condition::new(
            Type::Accepted,
            true,
            Reason::Accepted,
            "Gateway is accepted",
        )
    } else if valid > 0 {
        let msg = format!("Some listeners are not valid: {}", not_valid(views));
        Condition::new(Type::Accepted, true, Reason::ListenersNotValid, msg)
    } else {
        let msg = format!("No listener is valid: {}", not_valid(views));
        Condition::new(Type::Accepted, false, Reason::ListenersNotValid, msg)
    }
}

/// `InsecureFrontendValidationMode=True/ConfigurationChanged` while the default or a
/// per-port client certificate validation is `AllowInsecureFallback` (the Go API's
/// `GatewayConditionInsecureFrontendValidationMode`: the reason "MUST be set ... when
/// client change FrontendValidationModeType for a Gateway or per port override to
/// AllowInsecureFallback"); absent otherwise.
fn insecure_frontend_validation(gw: &Gateway) -> Option<Condition> {
    let insecure: Vec<String> = (gw.frontend_validation.iter())
        .filter(|f| f.client.insecure_fallback)
        .map(|f| f.port.map_or("the default".into(), |p| format!("port {p}")))
        .collect();
    (!insecure.is_empty()).then(|| {
        Condition::new(
            Type::InsecureFrontendValidationMode,
            true,
            Reason::ConfigurationChanged,
            format!(
                "Client certificate validation of {} is AllowInsecureFallback: connections \
                 without a valid client certificate are accepted",
                insecure.join(", ")
            ),
        )
    })
}

/// The message of an object whose newest version did not convert (`problem`): its
/// last good version is what is served.
pub fn not_converted(problem: &str) -> String {
    format!("This generation does not convert, so the last valid one is still served: {problem}")
}

/// `name (Reason), ...` of the listeners that serve nothing, each with the first
/// condition that says why (the spec asks the message to name conflicted and
/// unaccepted listeners).
fn not_valid(views: &[ListenerView]) -> String {
    let why = |v: &ListenerView| {
        let bad = |c: &&Condition| (c.type_ == Type::Conflicted) == c.status;
        let order = [
            Type::Accepted,
            Type::Conflicted,
            Type::ResolvedRefs,
            Type::Programmed,
        ];
        order
            .iter()
            .find_map(|t| v.conditions.iter().filter(|c| c.type_ == *t).find(bad))
            .map_or(Reason::Invalid, |c| c.reason)
    };
    let names: Vec<String> = views
        .iter()
        .filter(|v| !v.serves_http)
        .map(|v| format!("{} ({})", v.name, why(v)))
        .collect();
    names.join(", ")
}

fn programmed(views: &[ListenerView]) -> Condition {
    if views.iter().any(|v| v.serves_http) {
        Condition::new(
            Type::Programmed,
            true,
            Reason::Programmed,
            "Gateway is programmed",
        )
    } else {
        Condition::new(
            Type::Programmed,
            false,
            Reason::Invalid,
            "No listener is programmed",
        )
    }
}

#[cfg(test)]
mod tests {
    //! `spec.addresses` against the `GatewaySpec.addresses` docs and the conformance
    //! case `GatewayStaticAddresses` (an unsupported type: `Accepted=False` /
    //! `UnsupportedAddress`; an unusable address: `Programmed=False` /
    //! `AddressNotUsable`).
    use super::*;
    use crate::fixtures::{gateway, http_listener};
    use crate::model::{FrontendValidation, GatewayAddress};

    fn with_addresses(addresses: &[(&str, Option<&str>)]) -> Gateway {
        let mut gw = gateway("ns", "gw", vec![http_listener("http", 80)]);
        gw.addresses = (addresses.iter())
            .map(|(t, v)| GatewayAddress {
                type_: t.to_string(),
                value: v.map(str::to_owned),
            })
            .collect();
        gw
    }

    fn condition(s: &GatewayStatus, t: Type) -> &Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == t)
            .expect("condition")
    }

    /// Issue 8 (2): the newest version did not convert; the last good one (marked by
    /// the source) is served and its status says so.
    #[test]
    fn a_last_good_version_is_served_and_its_problem_reported() {
        let mut gw = gateway("ns", "gw", vec![http_listener("http", 80)]);
        gw.meta.problem = Some("gw.yaml:7: Gateway ns/gw: port 0".into());
        let s = gateway_status(&gw, &[], u16::MAX, "0.0.0.0");
        let accepted = condition(&s, Type::Accepted);
        assert_eq!((accepted.status, accepted.reason), (false, Reason::Invalid));
        assert!(
            accepted.message.contains("gw.yaml:7"),
            "{}",
            accepted.message
        );
        assert!(condition(&s, Type::Programmed).status);
        assert!(listener_views(&gw, u16::MAX).iter().all(|v| v.serves_http));
    }

    #[test]
    fn an_unsupported_address_type_is_not_accepted_and_serves_nothing() {
        let gw = with_addresses(&[
            ("test/fake-invalid-type", Some("fake address teehee!")),
            ("IPAddress", Some("127.0.0.2")),
        ]);
        let s = gateway_status(&gw, &[], u16::MAX, "127.0.0.2");
        let accepted = condition(&s, Type::Accepted);
        assert_eq!(
            (accepted.status, accepted.reason),
            (false, Reason::UnsupportedAddress)
        );
        assert!(
            accepted.message.contains("spec.addresses[0]"),
            "{}",
            accepted.message
        );
        assert!(listener_views(&gw, u16::MAX).iter().all(|v| !v.serves_http));
        for t in ["Hostname", "NamedAddress"] {
            let s = gateway_status(&with_addresses(&[(t, Some("x"))]), &[], u16::MAX, "0.0.0.0");
            assert_eq!(
                condition(&s, Type::Accepted).reason,
                Reason::UnsupportedAddress,
                "{t}"
            );
        }
    }

    #[test]
    fn an_ip_address_is_usable_only_where_the_proxies_bind() {
        // The bound address, or no value (assigned the bound one): programmed.
        for addresses in [
            vec![("IPAddress", Some("127.0.0.2"))],
            vec![("IPAddress", None)],
            vec![],
        ] {
            let gw = with_addresses(&addresses);
            let s = gateway_status(&gw, &[], u16::MAX, "127.0.0.2");
            let programmed = condition(&s, Type::Programmed);
            assert!(programmed.status, "{addresses:?}: {programmed:?}");
            assert!(condition(&s, Type::Accepted).status);
        }
        // Another address, one that is not an IP, or any address while the proxies
        // bind every address of their host (which Sluice cannot vouch for).
        for (value, bound) in [
            ("10.9.9.9", "127.0.0.2"),
            ("not-an-ip", "127.0.0.2"),
            ("127.0.0.2", "0.0.0.0"),
        ] {
            let gw = with_addresses(&[("IPAddress", Some(value))]);
            let s = gateway_status(&gw, &[], u16::MAX, bound);
            let programmed = condition(&s, Type::Programmed);
            assert_eq!(
                (programmed.status, programmed.reason),
                (false, Reason::AddressNotUsable),
                "{value} on {bound}"
            );
            assert!(programmed.message.contains(value) && programmed.message.contains(bound));
            // Accepted, and its listeners stay served on the bound address.
            assert!(condition(&s, Type::Accepted).status);
            assert!(listener_views(&gw, u16::MAX).iter().all(|v| v.serves_http));
        }
    }

    /// The Go API's `GatewayConditionInsecureFrontendValidationMode` and the case
    /// `GatewayFrontendClientCertificateValidationInsecureFallback`: present (True /
    /// ConfigurationChanged) while the default or a perPort validation falls back,
    /// naming which; absent when every validation is `AllowValidOnly`.
    #[test]
    fn insecure_fallback_is_a_gateway_condition_naming_where() {
        use crate::fixtures::frontend_validation;
        let status = |validations: Vec<FrontendValidation>| {
            let mut gw = gateway("ns", "gw", vec![http_listener("http", 80)]);
            gw.frontend_validation = validations;
            let s = gateway_status(&gw, &[], u16::MAX, "0.0.0.0");
            (s.conditions.iter())
                .find(|c| c.type_ == Type::InsecureFrontendValidationMode)
                .map(|c| (c.status, c.reason, c.message.clone()))
        };
        assert_eq!(status(vec![]), None);
        assert_eq!(
            status(vec![
                frontend_validation(None, &["ca"], false),
                frontend_validation(Some(8443), &["ca"], false),
            ]),
            None
        );
        let (on, reason, message) =
            status(vec![frontend_validation(None, &["ca"], true)]).expect("condition");
        assert_eq!((on, reason), (true, Reason::ConfigurationChanged));
        assert!(message.contains("the default"), "{message}");
        let (_, _, message) = status(vec![
            frontend_validation(None, &["ca"], false),
            frontend_validation(Some(8443), &["ca"], true),
        ])
        .expect("condition");
        assert!(
            message.contains("port 8443") && !message.contains("default"),
            "{message}"
        );
    }
}
