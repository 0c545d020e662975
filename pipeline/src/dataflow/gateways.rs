//! Listener admission: our GatewayClasses ⋈ Gateways, and each admitted Gateway's
//! listeners (what the other stages need of them, from [`crate::spec::listener`]).

use crate::model::{Gateway, GatewayClass, ObjectKey};
use crate::spec::listener::{ListenerView, listener_views};

use super::col::{ByKey, Col, Scope, semijoin_named};

/// Our Gateways and their listeners.
pub struct Admitted<'s> {
    pub gateways: Col<'s, Gateway>,
    /// gateway → one of its listeners.
    pub listeners: Col<'s, (ObjectKey, ListenerView)>,
    /// The same, arranged by gateway.
    pub listeners_arranged: ByKey<'s, ObjectKey, ListenerView>,
}

impl<'r> Admitted<'r> {
    /// The same collections, out of a region into `outer`.
    pub fn leave_region<'o>(self, outer: Scope<'o>) -> Admitted<'o> {
        Admitted {
            gateways: self.gateways.leave_region(outer),
            listeners: self.listeners.leave_region(outer),
            listeners_arranged: self.listeners_arranged.leave_region(outer),
        }
    }
}

/// The Gateways whose class names `controller`, and their listeners (`max_port`: the
/// highest port a proxy can bind, [`listener_views`]).
pub fn admit<'s>(
    classes: Col<'s, GatewayClass>,
    gateways: Col<'s, Gateway>,
    controller: String,
    max_port: u16,
) -> Admitted<'s> {
    let ours = classes
        .filter(move |c| c.controller_name == controller)
        .map(|c| c.name);
    let gateways = gateways.map(|g| (g.class_name.clone(), g));
    let gateways = semijoin_named("gateways of our classes", gateways, ours).map(|(_, g)| g);
    let listeners: Col<'s, (ObjectKey, ListenerView)> = gateways.clone().flat_map(move |g| {
        listener_views(&g, max_port)
            .into_iter()
            .map(|v| (v.gateway.clone(), v))
    });
    let listeners_arranged = listeners
        .clone()
        .arrange_by_key_named("listeners by gateway");
    Admitted {
        gateways,
        listeners,
        listeners_arranged,
    }
}
