//! Status: each route parent's attachment verdict joined with the route's
//! `ResolvedRefs` condition, and each Gateway's status with the attached-route
//! count of its listeners ([`crate::spec::gateway`]).

use crate::ir::{Condition, GatewayStatus, RouteParentStatus};
use crate::model::{Gateway, ObjectKey};
use crate::spec::conditions::ConditionType;
use crate::spec::gateway::{BindAddresses, ListenerFact, gateway_status};
use crate::spec::listener::CertificateVerdict;
use crate::spec::routes::parent_conditions;

use super::col::{Col, join_named};
use super::left_join::left_join_named;

/// Route parent statuses: the attachment verdict per parentRef plus the route's
/// `ResolvedRefs` condition and its dropped rules ([`parent_conditions`]).
pub fn route_status<'s>(
    parents: Col<'s, (ObjectKey, RouteParentStatus)>,
    conditions: Col<'s, (ObjectKey, (Condition, Option<Condition>))>,
) -> Col<'s, RouteParentStatus> {
    join_named("route parent status", parents, conditions).map(
        |(_, (mut status, (resolved, validity)))| {
            let mut own = std::mem::take(&mut status.conditions);
            let accepted = (own.iter().position(|c| c.type_ == ConditionType::Accepted))
                .map(|i| own.remove(i));
            status.conditions = match accepted {
                Some(accepted) => parent_conditions(accepted, resolved, validity.as_ref()),
                None => vec![resolved],
            };
            status.conditions.extend(own);
            status.conditions.sort();
            status
        },
    )
}

/// Gateway status: the gateway object with the attached-route count and the
/// certificate verdict per listener.
pub fn gateways_status<'s>(
    gateways: Col<'s, Gateway>,
    counts: Col<'s, ((ObjectKey, String), isize)>,
    certificates: Col<'s, ((ObjectKey, String), CertificateVerdict)>,
    max_port: u16,
    bind: BindAddresses,
) -> Col<'s, GatewayStatus> {
    let gateways = gateways.map(|g| (g.meta.key.clone(), g));
    let counts = counts.map(|((gw, listener), n)| {
        let n = u32::try_from(n).unwrap_or(0);
        (gw, ListenerFact::Attached(listener, n))
    });
    let certificates = certificates
        .map(|((gw, listener), verdict)| (gw, ListenerFact::Certificates(listener, verdict)));
    let facts = counts.concat(certificates);
    left_join_named("gateway status", gateways, facts, move |_, g, counts| {
        Some(gateway_status(
            g,
            counts,
            max_port,
            bind.for_gateway(&g.meta.key),
        ))
    })
    .map(|(_, s)| s)
}
