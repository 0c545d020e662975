//! Backend references (Gateway API v1 `HTTPBackendRef`) and ReferenceGrants
//! (v1beta1 `ReferenceGrant`): which references may resolve, and to what.
//!
//! A reference resolves to a cluster (Service, port) or fails with the spec's reason:
//! `InvalidKind` (not a core Service), `RefNotPermitted` (another namespace without a
//! ReferenceGrant that allows it), `BackendNotFound` (no such Service or port).

use crate::ir::{ClusterIr, ClusterKey};
use crate::model::{GATEWAY_GROUP, ReferenceGrant, Service};
use crate::spec::routes::{Resolution, Unresolved};

/// `((target namespace, source namespace), allowed Service name or any)` for every
/// entry of a grant that lets HTTPRoutes reference Services.
pub fn grant_entries(g: ReferenceGrant) -> Vec<((String, String), Option<String>)> {
    let mut out = vec![];
    let from = g
        .from
        .iter()
        .filter(|f| f.group == GATEWAY_GROUP && f.kind == "HTTPRoute");
    for f in from {
        for t in g.to.iter().filter(|t| is_service(&t.group, &t.kind)) {
            out.push((
                (g.key.namespace.clone(), f.namespace.clone()),
                t.name.clone(),
            ));
        }
    }
    out
}

/// Whether a reference's group and kind name a core Service.
pub fn is_service(group: &str, kind: &str) -> bool {
    group.is_empty() && kind == "Service"
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
