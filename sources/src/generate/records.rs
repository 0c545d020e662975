//! The generated cluster's records, filled in as the API server would store them
//! (defaulted group and kind on references, weight 1, the
//! `kubernetes.io/metadata.name` label on namespaces, generation 1). The generator
//! names everything itself; these only assemble the records.

use sluice_pipeline::model::*;

use super::cluster::{GATEWAY_NAMESPACE, SERVICE_PORT, TARGET_PORT};

/// The GatewayClass every generated Gateway uses.
pub const CLASS: &str = "sluice";

/// Port `SERVICE_PORT`'s name in Services and their slices.
fn port_name() -> String {
    format!("p{SERVICE_PORT}")
}

fn meta(namespace: &str, name: &str) -> Meta {
    Meta {
        key: ObjectKey::new(namespace, name),
        generation: 1,
        creation: String::new(),
        problem: None,
    }
}

pub fn class() -> Object {
    Object::GatewayClass(GatewayClass {
        name: CLASS.into(),
        controller_name: sluice_pipeline::DEFAULT_CONTROLLER.into(),
        generation: 1,
    })
}

pub fn namespace(name: &str, labels: &[(&str, &str)]) -> Object {
    let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Object::Namespace(Namespace::new(name, labels))
}

/// An HTTP listener on port 80 admitting HTTPRoutes from `allowed`.
pub fn listener(name: String, hostname: String, allowed: FromNamespaces) -> Listener {
    Listener {
        name,
        port: 80,
        protocol: Protocol::Http,
        hostname: Some(hostname),
        allowed_namespaces: allowed,
        allowed_kinds: vec![],
        tls: None,
        problem: None,
    }
}

/// A Gateway in the gateways namespace.
pub fn gateway(name: &str, listeners: Vec<Listener>) -> Object {
    Object::Gateway(Gateway {
        meta: meta(GATEWAY_NAMESPACE, name),
        class_name: CLASS.into(),
        listeners,
        parameters_ref: None,
        addresses: vec![],
        frontend_validation: vec![],
    })
}

/// A Service with the one port every generated Service has.
pub fn service(namespace: &str, name: &str) -> Object {
    Object::Service(Service {
        key: ObjectKey::new(namespace, name),
        ports: vec![ServicePort {
            name: port_name(),
            port: SERVICE_PORT,
            app_protocol: None,
        }],
    })
}

/// The endpoint slice `slice` of Service `service`, its addresses serving on
/// `TARGET_PORT`.
pub fn slice(namespace: &str, slice: &str, service: &str, addresses: Vec<String>) -> Object {
    let mut addresses = addresses;
    addresses.sort();
    Object::EndpointSlice(EndpointSlice {
        key: ObjectKey::new(namespace, slice),
        service_name: Some(service.into()),
        ports: vec![EndpointPort {
            name: port_name(),
            port: TARGET_PORT,
        }],
        addresses,
    })
}

/// A ReferenceGrant in `namespace` letting HTTPRoutes of `from` use all its Services.
pub fn grant(namespace: &str, name: &str, from: &str) -> Object {
    Object::ReferenceGrant(ReferenceGrant {
        key: ObjectKey::new(namespace, name),
        from: vec![GrantFrom {
            group: GATEWAY_GROUP.into(),
            kind: kinds::HTTP_ROUTE.into(),
            namespace: from.into(),
        }],
        to: vec![GrantTo {
            group: String::new(),
            kind: kinds::SERVICE.into(),
            name: None,
        }],
    })
}

/// A parentRef to listener `section` of Gateway `gateway` in the gateways namespace.
pub fn parent(gateway: String, section: String) -> ParentRef {
    ParentRef {
        group: GATEWAY_GROUP.into(),
        kind: kinds::GATEWAY.into(),
        namespace: Some(GATEWAY_NAMESPACE.into()),
        name: gateway,
        section_name: Some(section),
        port: None,
    }
}

/// A backendRef to port `SERVICE_PORT` of Service `name` (in `namespace`, when it is
/// not the route's).
pub fn backend(name: String, namespace: Option<String>, weight: u32) -> BackendRef {
    BackendRef {
        group: String::new(),
        kind: kinds::SERVICE.into(),
        namespace,
        name,
        port: Some(SERVICE_PORT),
        weight,
        filters: vec![],
    }
}

pub fn route(
    namespace: &str,
    name: &str,
    parent: ParentRef,
    hostnames: Vec<String>,
    rules: Vec<Rule>,
) -> HttpRoute {
    HttpRoute {
        meta: meta(namespace, name),
        parent_refs: vec![parent],
        hostnames,
        rules,
    }
}
