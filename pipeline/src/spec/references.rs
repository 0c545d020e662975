//! Backend references (Gateway API v1 `HTTPBackendRef`) and ReferenceGrants
//! (v1beta1 `ReferenceGrant`): which references may resolve, and to what.
//!
//! A reference resolves to a cluster (Service, port) or fails with the spec's reason:
//! `InvalidKind` (not a core Service), `RefNotPermitted` (another namespace without a
//! ReferenceGrant that allows it), `BackendNotFound` (no such Service or port).

use crate::ir::{ClusterIr, ClusterKey};
use crate::model::{ReferenceGrant, Service};
use crate::spec::routes::{Resolution, Unresolved};

/// `((target namespace, source namespace), allowed Service name or any)` for every
/// entry of a grant that lets HTTPRoutes reference Services.
pub fn grant_entries(g: ReferenceGrant) -> Vec<((String, String), Option<String>)> {
    let mut out = vec![];
    for f in g.from.iter().filter(|f| f.is_http_route()) {
        for t in g.to.iter().filter(|t| t.is_service()) {
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
    let mut out = vec![];
    for f in g.from.iter().filter(|f| f.is_gateway()) {
        for t in g.to.iter().filter(|t| t.is_secret()) {
            out.push((
                (g.key.namespace.clone(), f.namespace.clone()),
                t.name.clone(),
            ));
        }
    }
    out
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
