//! Backend resolution: backendRefs (and mirror refs) ⋈ ReferenceGrants (only when
//! cross-namespace) ⋈ Services, then per route, the route translated with its
//! resolved references ([`crate::spec::references`], [`crate::spec::routes`]).
//! A failed reference only turns its own share of traffic into HTTP 500.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{BackendRef, Filter, HttpRoute, ObjectKey, ReferenceGrant, Service};
use crate::spec::references::{grant_entries, resolve_port};
use crate::spec::routes::{Resolution, ResolvedRoute, Slot, Unresolved, resolve_route};

use super::col::{ByKey, Col, antijoin_named, distinct_named, join_named};
use super::left_join::left_join_named;

/// One backend reference of one route.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Use {
    route: ObjectKey,
    slot: Slot,
    namespace: String,
    name: String,
    port: Option<u16>,
    valid_kind: bool,
}

fn use_of(route: &HttpRoute, slot: Slot, b: &BackendRef) -> Use {
    Use {
        route: route.meta.key.clone(),
        slot,
        namespace: b
            .namespace
            .clone()
            .unwrap_or_else(|| route.meta.key.namespace.clone()),
        name: b.name.clone(),
        port: b.port,
        valid_kind: b.is_service(),
    }
}

fn uses(route: HttpRoute) -> Vec<Use> {
    let mut out = vec![];
    for (ri, rule) in route.rules.iter().enumerate() {
        for (index, b) in rule.backends.iter().enumerate() {
            out.push(use_of(&route, Slot::Backend { rule: ri, index }, b));
        }
        for (index, f) in rule.filters.iter().enumerate() {
            if let Filter::Mirror(m) = f {
                out.push(use_of(&route, Slot::Mirror { rule: ri, index }, &m.backend));
            }
        }
    }
    out
}

/// Resolve every reference of every route. `services_arranged`: Services by
/// (namespace, name).
fn resolutions<'s>(
    routes: Col<'s, HttpRoute>,
    grants: Col<'s, ReferenceGrant>,
    services_arranged: ByKey<'s, (String, String), Service>,
) -> Col<'s, (Use, Resolution)> {
    let uses = routes.flat_map(uses);
    let invalid_kind = uses
        .clone()
        .filter(|u| !u.valid_kind)
        .map(|u| (u, Err(Unresolved::InvalidKind)));
    let valid = uses.filter(|u| u.valid_kind);
    let same = valid.clone().filter(|u| u.namespace == u.route.namespace);
    let cross = valid
        .filter(|u| u.namespace != u.route.namespace)
        .map(|u| ((u.namespace.clone(), u.route.namespace.clone()), u));
    let granted = join_named("grants", cross.clone(), grants.flat_map(grant_entries))
        .flat_map(|(_, (u, name))| (name.is_none() || name.as_ref() == Some(&u.name)).then_some(u));
    let granted = distinct_named("granted references", granted);
    let refused = antijoin_named(
        "refused references",
        cross.map(|(_, u)| (u, ())),
        granted.clone(),
    )
    .map(|(u, ())| (u, Err(Unresolved::RefNotPermitted)));
    let permitted = same
        .concat(granted)
        .map(|u| ((u.namespace.clone(), u.name.clone()), u));
    let found = permitted
        .clone()
        .arrange_by_key_named("permitted references by service")
        .join_core(services_arranged, |_, u, s| {
            Some((u.clone(), resolve_port(u.port, s)))
        });
    // Every Service key is held once, so what was not found is missing.
    let missing = permitted
        .map(|(_, u)| u)
        .concat(found.clone().map(|(u, _)| u).negate())
        .map(|u| (u, Err(Unresolved::BackendNotFound)));
    invalid_kind.concat(refused).concat(found).concat(missing)
}

/// route → the route translated with resolved backends (every route, also those
/// without references).
pub fn resolve_routes<'s>(
    routes: Col<'s, HttpRoute>,
    grants: Col<'s, ReferenceGrant>,
    services_arranged: ByKey<'s, (String, String), Service>,
) -> Col<'s, (ObjectKey, ResolvedRoute)> {
    let resolved = resolutions(routes.clone(), grants, services_arranged)
        .map(|(u, r)| (u.route.clone(), (u.slot, r)));
    let routes = routes.map(|r| (r.meta.key.clone(), r));
    left_join_named("resolve route", routes, resolved, |_, route, resolved| {
        let map: BTreeMap<Slot, Resolution> = resolved.iter().map(|r| (*r).clone()).collect();
        Some(resolve_route(route, &map))
    })
}
