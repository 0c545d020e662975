//! Backend resolution: backendRefs (and mirror refs) ⋈ ReferenceGrants (only when
//! cross-namespace) ⋈ Services, then per route, the resolved route entries.
//!
//! A reference resolves to a cluster (Service, port) or fails with the spec's
//! reason: `InvalidKind` (not a core Service), `RefNotPermitted` (another namespace
//! without a ReferenceGrant that allows it), `BackendNotFound` (no such Service or
//! port). A failed reference only turns its own share of traffic into HTTP 500.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dataflow::Col;
use crate::ir::{ClusterIr, cluster_name};
use crate::model::{
    BackendRef, Filter, GATEWAY_GROUP, HttpRoute, ObjectKey, ReferenceGrant, Service,
};
use crate::routes::{Resolution, ResolvedRoute, Slot, Unresolved, resolve_route};

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
        valid_kind: b.group.is_empty() && b.kind == "Service",
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

/// `((target namespace, source namespace), allowed Service name or any)` for every
/// grant entry that lets HTTPRoutes reference Services.
fn grant_entries(g: ReferenceGrant) -> Vec<((String, String), Option<String>)> {
    let mut out = vec![];
    for f in g
        .from
        .iter()
        .filter(|f| f.group == GATEWAY_GROUP && f.kind == "HTTPRoute")
    {
        for t in
            g.to.iter()
                .filter(|t| t.group.is_empty() && t.kind == "Service")
        {
            out.push((
                (g.key.namespace.clone(), f.namespace.clone()),
                t.name.clone(),
            ));
        }
    }
    out
}

fn resolve_port(u: &Use, svc: &Service) -> Resolution {
    let port = u.port.ok_or(Unresolved::BackendNotFound)?;
    let p = svc
        .ports
        .iter()
        .find(|p| p.port == port)
        .ok_or(Unresolved::BackendNotFound)?;
    Ok(ClusterIr {
        name: cluster_name(&svc.key, port),
        service: svc.key.clone(),
        port,
        app_protocol: p.app_protocol.clone(),
    })
}

/// Resolve every reference of every route.
fn resolutions<'s>(
    routes: Col<'s, HttpRoute>,
    grants: Col<'s, ReferenceGrant>,
    services: Col<'s, Service>,
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
    let granted = cross
        .clone()
        .join(grants.flat_map(grant_entries))
        .flat_map(|(_, (u, name))| (name.is_none() || name.as_ref() == Some(&u.name)).then_some(u))
        .distinct();
    let refused = cross
        .map(|(_, u)| (u, ()))
        .antijoin(granted.clone())
        .map(|(u, ())| (u, Err(Unresolved::RefNotPermitted)));
    let permitted = same
        .concat(granted)
        .map(|u| ((u.namespace.clone(), u.name.clone()), u));
    let services = services.map(|s| ((s.key.namespace.clone(), s.key.name.clone()), s));
    let found = permitted.clone().join(services.clone()).map(|(_, (u, s))| {
        let r = resolve_port(&u, &s);
        (u, r)
    });
    let missing = permitted
        .antijoin(services.map(|(k, _)| k).distinct())
        .map(|(_, u)| (u, Err(Unresolved::BackendNotFound)));
    invalid_kind.concat(refused).concat(found).concat(missing)
}

/// route → the route translated with resolved backends (every route, also those
/// without references).
pub fn resolve_routes<'s>(
    routes: Col<'s, HttpRoute>,
    grants: Col<'s, ReferenceGrant>,
    services: Col<'s, Service>,
) -> Col<'s, (ObjectKey, ResolvedRoute)> {
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    enum Fact {
        Resolved(Slot, Resolution),
        Route(Box<HttpRoute>),
    }
    let resolved = resolutions(routes.clone(), grants, services)
        .map(|(u, r)| (u.route.clone(), Fact::Resolved(u.slot, r)));
    routes
        .map(|r| (r.meta.key.clone(), Fact::Route(Box::new(r))))
        .concat(resolved)
        .reduce_named("resolve route", |_, facts, out| {
            let mut route = None;
            let mut map = BTreeMap::new();
            for (f, n) in facts {
                if *n <= 0 {
                    continue;
                }
                match f {
                    Fact::Route(r) => route = Some(r),
                    Fact::Resolved(slot, r) => {
                        map.insert(*slot, r.clone());
                    }
                }
            }
            if let Some(r) = route {
                out.push((resolve_route(r, &map), 1));
            }
        })
}
