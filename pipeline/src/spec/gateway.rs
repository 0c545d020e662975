//! Gateway status (Gateway API v1 `GatewayStatus`): the Gateway's `Accepted` and
//! `Programmed` conditions and its listeners' statuses, from the Gateway object and
//! the attached-route count of each listener.

use crate::ir::{Condition, GatewayStatus, ListenerStatus};
use crate::model::Gateway;
use crate::spec::conditions::{ConditionType as Type, Reason};
use crate::spec::listener::{ListenerView, listener_views};

/// The Gateway's status, given the number of routes attached to each listener
/// (by listener name; a listener not listed has none).
/// `max_port` as for [`listener_views`].
pub fn gateway_status(gw: &Gateway, attached: &[&(String, u32)], max_port: u16) -> GatewayStatus {
    let views = listener_views(gw, max_port);
    let conditions = vec![accepted(gw, &views), programmed(&views)];
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
        conditions,
        listeners,
    }
}

/// `Accepted`: false for an unsupported `parametersRef`; `ListenersNotValid` when
/// some listener (true) or every listener (false) is invalid.
fn accepted(gw: &Gateway, views: &[ListenerView]) -> Condition {
    let valid = views.iter().filter(|v| v.is_accepted()).count();
    let all_valid = views.iter().all(|v| v.serves_http);
    if let Some(p) = &gw.parameters_ref {
        Condition::new(
            Type::Accepted,
            false,
            Reason::InvalidParameters,
            format!("parametersRef {p} is not a supported kind"),
        )
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
