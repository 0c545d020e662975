//! Backend references (Gateway API v1 `HTTPBackendRef`) and ReferenceGrants
//! (v1beta1 `ReferenceGrant`): which references may resolve, and to what.
//!
//! A reference resolves to a cluster (Service, port) or fails with the spec's reason:
//! `InvalidKind` (not a core Service), `RefNotPermitted` (another namespace without a
//! ReferenceGrant that allows it), `BackendNotFound` (no such Service or port).

use crate::ir::{ClusterIr, ClusterKey};
use crate::model::{GrantFrom, GrantTo, ReferenceGrant, Service};
use crate::spec::routes::{Resolution, Unresolved};

/// `((target namespace, source namespace), allowed Service name or any)` for every
/// entry of a grant that lets HTTPRoutes reference Services.
pub fn grant_entries(g: ReferenceGrant) -> Vec<((String, String), Option<String>)> {
    entries(&g, GrantFrom::is_http_route, GrantTo::is_service)
}

/// The `(from, to)` pairs of `g` that `from` and `to` admit, keyed as
/// [`grant_entries`] says.
fn entries(
    g: &ReferenceGrant,
    from: impl Fn(&GrantFrom) -> bool,
    to: impl Fn(&GrantTo) -> bool,
) -> Vec<((String, String), Option<String>)> {
    let mut out = vec![];
    for f in g.from.iter().filter(|f| from(f)) {
        for t in g.to.iter().filter(|t| to(t)) {
            out.push((
                (g.key.namespace.clone(), f.namespace.clone()),
                t.name.clone(),
            ));
        }
    }
    out
}

/// `((target namespace, source namespace), allowed Secret name or any)` for every
/// entry of a grant that lets Gateways reference Secrets (listener certificates).
pub fn secret_grant_entries(g: ReferenceGrant) -> Vec<((String, String), Option<String>)> {
    entries(&g, GrantFrom::is_gateway, GrantTo::is_secret)
}

/// The grants letting Gateways use ConfigMaps (CA bundles), keyed like
/// [`secret_grant_entries`].
pub fn config_map_grant_entries(g: ReferenceGrant) -> Vec<((String, String), Option<String>)> {
    entries(&g, GrantFrom::is_gateway, GrantTo::is_config_map)
}

/// A reference to `port` of the Service `svc` (which exists and may be referenced).
pub fn resolve_port(port: Option<u16>, svc: &Service) -> Resolution {
    let port = port.ok_or(Unresolved::BackendNotFound)?;
    let p = svc
        .ports
        .iter()
        .find(|p| p.port == port)
        .ok_or(Unresolved::BackendNotFound)?;
    Ok(ClusterIr::new(
        ClusterKey::new(svc.key.clone(), port),
        p.app_protocol.clone(),
    ))
}
