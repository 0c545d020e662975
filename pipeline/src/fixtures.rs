//! Builders for records, for tests and generators: `gateway("ns", "gw").listener(..)`,
//! `route("ns", "r").parent("gw").rule(..)`. They fill what the API server defaults.

use crate::model::*;

pub const CLASS: &str = "sluice";

pub fn class() -> Object {
    Object::GatewayClass(GatewayClass {
        name: CLASS.into(),
        controller_name: crate::DEFAULT_CONTROLLER.into(),
        generation: 1,
    })
}

pub fn meta(ns: &str, name: &str) -> Meta {
    Meta {
        key: ObjectKey::new(ns, name),
        generation: 1,
        creation: String::new(),
        problem: None,
    }
}

pub fn namespace(name: &str, labels: &[(&str, &str)]) -> Object {
    let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Object::Namespace(Namespace::new(name, labels))
}

pub fn http_listener(name: &str, port: u16) -> Listener {
    Listener {
        name: name.into(),
        port,
        protocol: Protocol::Http,
        hostname: None,
        allowed_namespaces: FromNamespaces::Same,
        allowed_kinds: vec![],
        tls: None,
        problem: None,
    }
}

/// An HTTPS listener terminating TLS with the Secrets `certs` (`name` or
/// `namespace/name`).
pub fn https_listener(name: &str, port: u16, hostname: Option<&str>, certs: &[&str]) -> Listener {
    let certificate_refs = certs
        .iter()
        .map(|c| {
            let (namespace, name) = match c.split_once('/') {
                Some((ns, n)) => (Some(ns.to_owned()), n.to_owned()),
                None => (None, (*c).to_owned()),
            };
            SecretRef {
                group: String::new(),
                kind: kinds::SECRET.into(),
                namespace,
                name,
            }
        })
        .collect();
    Listener {
        protocol: Protocol::Https,
        hostname: hostname.map(Into::into),
        tls: Some(ListenerTls {
            mode_terminate: true,
            certificate_refs,
        }),
        ..http_listener(name, port)
    }
}

/// A `kubernetes.io/tls` Secret as a source hands it over (`problem`: the check
/// failed).
pub fn tls_secret(ns: &str, name: &str, cert: &str, problem: Option<&str>) -> Object {
    Object::Secret(Secret {
        key: ObjectKey::new(ns, name),
        cert_chain: cert.into(),
        private_key: format!("key of {cert}"),
        problem: problem.map(Into::into),
    })
}

/// A grant in `ns` letting Gateways of `from_ns` use Secret `to_name` (any: `None`).
pub fn secret_grant(ns: &str, name: &str, from_ns: &str, to_name: Option<&str>) -> Object {
    Object::ReferenceGrant(ReferenceGrant {
        key: ObjectKey::new(ns, name),
        from: vec![GrantFrom {
            group: GATEWAY_GROUP.into(),
            kind: kinds::GATEWAY.into(),
            namespace: from_ns.into(),
        }],
        to: vec![GrantTo {
            group: String::new(),
            kind: kinds::SECRET.into(),
            name: to_name.map(Into::into),
        }],
    })
}

/// A grant in `ns` letting Gateways of `from_ns` use ConfigMap `to_name` (any:
/// `None`).
pub fn config_map_grant(ns: &str, name: &str, from_ns: &str, to_name: Option<&str>) -> Object {
    let Object::ReferenceGrant(mut grant) = secret_grant(ns, name, from_ns, to_name) else {
        unreachable!("secret_grant builds a ReferenceGrant")
    };
    grant.to[0].kind = kinds::CONFIG_MAP.into();
    Object::ReferenceGrant(grant)
}

/// A ConfigMap holding CA bundle `pem` as a source hands it over (`problem`: the
/// check failed, and no bundle is kept).
pub fn ca_config_map(ns: &str, name: &str, pem: &str, problem: Option<&str>) -> Object {
    Object::ConfigMap(ConfigMap {
        key: ObjectKey::new(ns, name),
        ca_bundle: if problem.is_some() {
            String::new()
        } else {
            pem.into()
        },
        problem: problem.map(Into::into),
    })
}

/// Client validation against the ConfigMaps `cas` (`namespace/name` or a name in
/// the Gateway's namespace), for `port` (`None`: the default).
pub fn frontend_validation(
    port: Option<u16>,
    cas: &[&str],
    insecure_fallback: bool,
) -> FrontendValidation {
    FrontendValidation {
        port,
        client: ClientValidation {
            ca_refs: (cas.iter())
                .map(|c| {
                    let (namespace, name) = match c.split_once('/') {
                        Some((ns, name)) => (Some(ns.to_owned()), name),
                        None => (None, *c),
                    };
                    SecretRef {
                        group: String::new(),
                        kind: kinds::CONFIG_MAP.into(),
                        namespace,
                        name: name.into(),
                    }
                })
                .collect(),
            insecure_fallback,
        },
    }
}

pub fn gateway(ns: &str, name: &str, listeners: Vec<Listener>) -> Gateway {
    Gateway {
        meta: meta(ns, name),
        class_name: CLASS.into(),
        listeners,
        parameters_ref: None,
        addresses: vec![],
        frontend_validation: vec![],
    }
}

pub fn service(ns: &str, name: &str, ports: &[u16]) -> Object {
    Object::Service(Service {
        key: ObjectKey::new(ns, name),
        ports: ports
            .iter()
            .map(|p| ServicePort {
                name: format!("p{p}"),
                port: *p,
                app_protocol: None,
            })
            .collect(),
    })
}

/// A slice for `service`'s port `port` (named as [`service`] names it), targeting
/// `target` on each address.
pub fn slice(
    ns: &str,
    name: &str,
    service: &str,
    port: u16,
    target: u16,
    addrs: &[&str],
) -> Object {
    let mut addresses: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    addresses.sort();
    Object::EndpointSlice(EndpointSlice {
        key: ObjectKey::new(ns, name),
        service_name: Some(service.into()),
        ports: vec![EndpointPort {
            name: format!("p{port}"),
            port: target,
        }],
        addresses,
    })
}

pub fn parent(gateway: &str) -> ParentRef {
    ParentRef {
        group: GATEWAY_GROUP.into(),
        kind: kinds::GATEWAY.into(),
        namespace: None,
        name: gateway.into(),
        section_name: None,
        port: None,
    }
}

pub fn backend(name: &str, port: u16) -> BackendRef {
    BackendRef {
        group: String::new(),
        kind: kinds::SERVICE.into(),
        namespace: None,
        name: name.into(),
        port: Some(port),
        weight: 1,
        filters: vec![],
    }
}

pub fn prefix_rule(prefix: &str, backends: Vec<BackendRef>) -> Rule {
    Rule {
        matches: vec![RouteMatch {
            path: PathMatch::Prefix(prefix.into()),
            ..Default::default()
        }],
        backends,
        ..Default::default()
    }
}

pub fn route(
    ns: &str,
    name: &str,
    parents: Vec<ParentRef>,
    hostnames: &[&str],
    rules: Vec<Rule>,
) -> HttpRoute {
    HttpRoute {
        meta: meta(ns, name),
        parent_refs: parents,
        hostnames: hostnames.iter().map(|h| h.to_string()).collect(),
        rules,
    }
}

pub fn grant(ns: &str, name: &str, from_ns: &str, to_name: Option<&str>) -> Object {
    Object::ReferenceGrant(ReferenceGrant {
        key: ObjectKey::new(ns, name),
        from: vec![GrantFrom {
            group: GATEWAY_GROUP.into(),
            kind: kinds::HTTP_ROUTE.into(),
            namespace: from_ns.into(),
        }],
        to: vec![GrantTo {
            group: String::new(),
            kind: kinds::SERVICE.into(),
            name: to_name.map(Into::into),
        }],
    })
}

/// The smallest complete world: our class, Gateway `infra/gw` with an HTTP listener
/// on port 80, Service `infra/web` (port 8080) whose slice `web-1` has two ready
/// endpoints on port 3000 (listed unsorted), and HTTPRoute `infra/r` sending `/` to
/// it.
pub fn basic() -> Vec<Object> {
    vec![
        class(),
        Object::Gateway(gateway("infra", "gw", vec![http_listener("http", 80)])),
        service("infra", "web", &[8080]),
        slice(
            "infra",
            "web-1",
            "web",
            8080,
            3000,
            &["10.0.0.2", "10.0.0.1"],
        ),
        Object::HttpRoute(route(
            "infra",
            "r",
            vec![parent("gw")],
            &[],
            vec![prefix_rule("/", vec![backend("web", 8080)])],
        )),
    ]
}

/// A BackendTLSPolicy in `ns` targeting Service `service` (port name `section`,
/// or the whole Service), trusting the ConfigMaps `cas` (none: the system store),
/// with SNI `hostname`; created at `creation` (RFC 3339, or empty).
pub fn backend_tls_policy(
    ns: &str,
    name: &str,
    (service, section): (&str, Option<&str>),
    cas: &[&str],
    hostname: &str,
    creation: &str,
) -> Object {
    Object::BackendTlsPolicy(BackendTlsPolicy {
        meta: Meta {
            creation: creation.into(),
            ..meta(ns, name)
        },
        targets: vec![PolicyTarget {
            group: String::new(),
            kind: kinds::SERVICE.into(),
            name: service.into(),
            section: section.map(Into::into),
        }],
        ca_refs: (cas.iter())
            .map(|c| LocalRef {
                group: String::new(),
                kind: kinds::CONFIG_MAP.into(),
                name: (*c).into(),
            })
            .collect(),
        well_known: cas
            .is_empty()
            .then(|| crate::spec::backend_tls::SYSTEM.into()),
        hostname: hostname.into(),
        subject_alt_names: vec![],
    })
}
