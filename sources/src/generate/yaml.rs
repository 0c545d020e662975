//! Records back to Kubernetes YAML manifests, so a generated cluster can be fed to
//! `sluice translate` (and, in benchmarks, to the manifest parser). Writing then
//! parsing gives back the same records (the round-trip test checks it).

use serde_json::{Map, Value, json};
use sluice_pipeline::model::*;

const GATEWAY_V1: &str = "gateway.networking.k8s.io/v1";
const GATEWAY_V1BETA1: &str = "gateway.networking.k8s.io/v1beta1";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The manifest files of a cluster: `(file name, multi-document YAML)`, one file
/// per kind, in an order `kubectl apply -f DIR` would accept.
pub fn manifest_files(objects: &[Object]) -> Result<Vec<(String, String)>, serde_yaml_ng::Error> {
    let files = [
        (Kind::GatewayClass, "00-gatewayclasses.yaml"),
        (Kind::Namespace, "01-namespaces.yaml"),
        (Kind::Gateway, "10-gateways.yaml"),
        (Kind::ReferenceGrant, "20-referencegrants.yaml"),
        (Kind::Secret, "25-secrets.yaml"),
        (Kind::ConfigMap, "26-configmaps.yaml"),
        (Kind::Service, "30-services.yaml"),
        (Kind::EndpointSlice, "40-endpointslices.yaml"),
        (Kind::HttpRoute, "50-httproutes.yaml"),
        (Kind::BackendTlsPolicy, "60-backendtlspolicies.yaml"),
    ];
    let mut out = vec![];
    for (kind, file) in files {
        let mut text = String::new();
        for obj in objects.iter().filter(|o| o.id().kind == kind) {
            text.push_str("---\n");
            text.push_str(&serde_yaml_ng::to_string(&to_yaml(obj))?);
        }
        if !text.is_empty() {
            out.push((file.to_owned(), text));
        }
    }
    Ok(out)
}

/// One record as a Kubernetes object.
pub fn to_yaml(obj: &Object) -> Value {
    match obj {
        Object::GatewayClass(c) => json!({
            "apiVersion": GATEWAY_V1, "kind": "GatewayClass",
            "metadata": {"name": c.name, "generation": c.generation},
            "spec": {"controllerName": c.controller_name},
        }),
        Object::Secret(secret) => {
            let data = |s: &str| {
                serde_json::to_value(k8s_openapi::ByteString(s.as_bytes().to_vec()))
                    .unwrap_or(Value::Null)
            };
            json!({"apiVersion": "v1", "kind": "Secret", "type": crate::convert::TLS_SECRET_TYPE,
                   "metadata": {"name": secret.key.name, "namespace": secret.key.namespace},
                   "data": {"tls.crt": data(&secret.cert_chain), "tls.key": data(&secret.private_key)}})
        }
        Object::Namespace(n) => {
            let labels: Map<String, Value> = n
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": n.name, "labels": labels}})
        }
        Object::Gateway(g) => {
            let mut gateway = json!({
                "apiVersion": GATEWAY_V1, "kind": "Gateway",
                "metadata": meta(&g.meta),
                "spec": {
                    "gatewayClassName": g.class_name,
                    "listeners": g.listeners.iter().map(listener).collect::<Vec<_>>(),
                },
            });
            if !g.frontend_validation.is_empty() {
                gateway["spec"]["tls"] = json!({"frontend": frontend(&g.frontend_validation)});
            }
            gateway
        }
        Object::ConfigMap(c) => {
            let mut data = Map::new();
            if c.problem.is_none() {
                data.insert(crate::convert::CA_BUNDLE_KEY.into(), json!(c.ca_bundle));
            }
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": key(&c.key), "data": data})
        }
        Object::BackendTlsPolicy(p) => {
            let mut validation = json!({
                "hostname": p.hostname,
                "caCertificateRefs": (p.ca_refs.iter())
                    .map(|r| json!({"group": r.group, "kind": r.kind, "name": r.name}))
                    .collect::<Vec<_>>(),
                "subjectAltNames": (p.subject_alt_names.iter())
                    .map(|s| match s {
                        SubjectAltName::Hostname(h) => json!({"type": "Hostname", "hostname": h}),
                        SubjectAltName::Uri(u) => json!({"type": "URI", "uri": u}),
                    })
                    .collect::<Vec<_>>(),
            });
            insert_opt(
                &mut validation,
                "wellKnownCACertificates",
                p.well_known.as_ref().map(|w| json!(w)),
            );
            json!({
                "apiVersion": GATEWAY_V1, "kind": "BackendTLSPolicy",
                "metadata": meta(&p.meta),
                "spec": {
                    "targetRefs": (p.targets.iter())
                        .map(|t| {
                            let mut v = json!({"group": t.group, "kind": t.kind, "name": t.name});
                            insert_opt(&mut v, "sectionName", t.section.as_ref().map(|s| json!(s)));
                            v
                        })
                        .collect::<Vec<_>>(),
                    "validation": validation,
                },
            })
        }
        Object::HttpRoute(r) => json!({
            "apiVersion": GATEWAY_V1, "kind": "HTTPRoute",
            "metadata": meta(&r.meta),
            "spec": {
                "parentRefs": r.parent_refs.iter().map(parent_ref).collect::<Vec<_>>(),
                "hostnames": r.hostnames,
                "rules": r.rules.iter().map(rule).collect::<Vec<_>>(),
            },
        }),
        Object::ReferenceGrant(g) => json!({
            "apiVersion": GATEWAY_V1BETA1, "kind": "ReferenceGrant",
            "metadata": key(&g.key),
            "spec": {
                "from": g.from.iter().map(|f| json!({
                    "group": f.group, "kind": f.kind, "namespace": f.namespace,
                })).collect::<Vec<_>>(),
                "to": g.to.iter().map(|t| {
                    let mut v = json!({"group": t.group, "kind": t.kind});
                    insert_opt(&mut v, "name", t.name.as_ref().map(|n| json!(n)));
                    v
                }).collect::<Vec<_>>(),
            },
        }),
        Object::Service(s) => json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": key(&s.key),
            "spec": {"ports": s.ports.iter().map(|p| {
                let mut v = json!({"name": p.name, "port": p.port});
                insert_opt(&mut v, "appProtocol", p.app_protocol.as_ref().map(|a| json!(a)));
                v
            }).collect::<Vec<_>>()},
        }),
        Object::EndpointSlice(s) => endpoint_slice(s),
    }
}

/// `spec.tls.frontend` of a Gateway (a `default` is required by the schema: an
/// empty one when only per-port settings exist).
fn frontend(settings: &[FrontendValidation]) -> Value {
    let validation = |c: &ClientValidation| {
        let refs: Vec<Value> = (c.ca_refs.iter())
            .map(|r| {
                let mut v = json!({"group": r.group, "kind": r.kind, "name": r.name});
                insert_opt(&mut v, "namespace", r.namespace.as_ref().map(|n| json!(n)));
                v
            })
            .collect();
        let mode = if c.insecure_fallback {
            "AllowInsecureFallback"
        } else {
            "AllowValidOnly"
        };
        json!({"caCertificateRefs": refs, "mode": mode})
    };
    let mut default = json!({});
    let mut per_port = vec![];
    for s in settings {
        match s.port {
            None => default = json!({"validation": validation(&s.client)}),
            Some(port) => {
                per_port.push(json!({"port": port, "tls": {"validation": validation(&s.client)}}))
            }
        }
    }
    let mut out = json!({"default": default});
    if !per_port.is_empty() {
        out["perPort"] = json!(per_port);
    }
    out
}

fn key(k: &ObjectKey) -> Value {
    json!({"namespace": k.namespace, "name": k.name})
}

fn meta(m: &Meta) -> Value {
    let mut v = key(&m.key);
    insert_opt(&mut v, "generation", Some(json!(m.generation)));
    if !m.creation.is_empty() {
        insert_opt(&mut v, "creationTimestamp", Some(json!(m.creation)));
    }
    v
}

fn insert_opt(v: &mut Value, field: &str, value: Option<Value>) {
    if let (Some(map), Some(value)) = (v.as_object_mut(), value) {
        map.insert(field.to_owned(), value);
    }
}

fn listener(l: &Listener) -> Value {
    let protocol = match &l.protocol {
        Protocol::Http => "HTTP",
        Protocol::Https => "HTTPS",
        Protocol::Tls => "TLS",
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Other(p) => p,
    };
    let namespaces = match &l.allowed_namespaces {
        FromNamespaces::Same => json!({"from": "Same"}),
        FromNamespaces::All => json!({"from": "All"}),
        FromNamespaces::Selector(s) => json!({"from": "Selector", "selector": selector(s)}),
    };
    let mut allowed = json!({"namespaces": namespaces});
    if !l.allowed_kinds.is_empty() {
        let kinds: Vec<Value> = l
            .allowed_kinds
            .iter()
            .map(|k| json!({"group": k.group, "kind": k.kind}))
            .collect();
        insert_opt(&mut allowed, "kinds", Some(json!(kinds)));
    }
    let mut v = json!({"name": l.name, "port": l.port, "protocol": protocol,
                       "allowedRoutes": allowed});
    insert_opt(&mut v, "hostname", l.hostname.as_ref().map(|h| json!(h)));
    v
}

fn selector(s: &LabelSelector) -> Value {
    let expressions: Vec<Value> = s
        .requirements
        .iter()
        .map(|r| {
            let op = match r.op {
                SelectorOp::In => "In",
                SelectorOp::NotIn => "NotIn",
                SelectorOp::Exists => "Exists",
                SelectorOp::DoesNotExist => "DoesNotExist",
            };
            let mut v = json!({"key": r.key, "operator": op});
            if !r.values.is_empty() {
                insert_opt(&mut v, "values", Some(json!(r.values)));
            }
            v
        })
        .collect();
    json!({"matchExpressions": expressions})
}

fn parent_ref(p: &ParentRef) -> Value {
    let mut v = json!({"group": p.group, "kind": p.kind, "name": p.name});
    insert_opt(&mut v, "namespace", p.namespace.as_ref().map(|n| json!(n)));
    insert_opt(
        &mut v,
        "sectionName",
        p.section_name.as_ref().map(|n| json!(n)),
    );
    insert_opt(&mut v, "port", p.port.map(|n| json!(n)));
    v
}

fn rule(r: &Rule) -> Value {
    let mut v = json!({
        "matches": r.matches.iter().map(route_match).collect::<Vec<_>>(),
        "filters": r.filters.iter().map(filter).collect::<Vec<_>>(),
        "backendRefs": r.backends.iter().map(backend_ref).collect::<Vec<_>>(),
    });
    insert_opt(&mut v, "name", r.name.as_ref().map(|n| json!(n)));
    let mut timeouts = json!({});
    let ms = |t: Option<u64>| t.map(|t| json!(format!("{t}ms")));
    insert_opt(&mut timeouts, "request", ms(r.timeouts.request_ms));
    insert_opt(
        &mut timeouts,
        "backendRequest",
        ms(r.timeouts.backend_request_ms),
    );
    if timeouts.as_object().is_some_and(|m| !m.is_empty()) {
        insert_opt(&mut v, "timeouts", Some(timeouts));
    }
    v
}

fn route_match(m: &RouteMatch) -> Value {
    let (ty, value) = match &m.path {
        PathMatch::Exact(p) => ("Exact", p),
        PathMatch::Prefix(p) => ("PathPrefix", p),
        PathMatch::Regex(p) => ("RegularExpression", p),
    };
    let values = |vs: &[ValueMatch]| -> Vec<Value> {
        vs.iter()
            .map(|h| {
                let ty = if h.regex {
                    "RegularExpression"
                } else {
                    "Exact"
                };
                json!({"type": ty, "name": h.name, "value": h.value})
            })
            .collect()
    };
    let mut v = json!({"path": {"type": ty, "value": value}});
    if !m.headers.is_empty() {
        insert_opt(&mut v, "headers", Some(json!(values(&m.headers))));
    }
    if !m.query.is_empty() {
        insert_opt(&mut v, "queryParams", Some(json!(values(&m.query))));
    }
    insert_opt(&mut v, "method", m.method.as_ref().map(|x| json!(x)));
    v
}

fn header_modifier(h: &HeaderModifier) -> Value {
    let pairs = |ps: &[(String, String)]| -> Vec<Value> {
        ps.iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect()
    };
    let mut v = json!({});
    if !h.set.is_empty() {
        insert_opt(&mut v, "set", Some(json!(pairs(&h.set))));
    }
    if !h.add.is_empty() {
        insert_opt(&mut v, "add", Some(json!(pairs(&h.add))));
    }
    if !h.remove.is_empty() {
        insert_opt(&mut v, "remove", Some(json!(h.remove)));
    }
    v
}

fn path_modifier(p: &PathModifier) -> Value {
    match p {
        PathModifier::ReplaceFullPath(s) => {
            json!({"type": "ReplaceFullPath", "replaceFullPath": s})
        }
        PathModifier::ReplacePrefixMatch(s) => {
            json!({"type": "ReplacePrefixMatch", "replacePrefixMatch": s})
        }
    }
}

fn filter(f: &Filter) -> Value {
    match f {
        Filter::RequestHeaders(h) => json!({"type": "RequestHeaderModifier",
                                            "requestHeaderModifier": header_modifier(h)}),
        Filter::ResponseHeaders(h) => json!({"type": "ResponseHeaderModifier",
                                             "responseHeaderModifier": header_modifier(h)}),
        Filter::UrlRewrite(u) => {
            let mut v = json!({});
            insert_opt(&mut v, "hostname", u.hostname.as_ref().map(|h| json!(h)));
            insert_opt(&mut v, "path", u.path.as_ref().map(path_modifier));
            json!({"type": "URLRewrite", "urlRewrite": v})
        }
        Filter::Redirect(r) => {
            let mut v = json!({"statusCode": r.status_code});
            insert_opt(&mut v, "scheme", r.scheme.as_ref().map(|s| json!(s)));
            insert_opt(&mut v, "hostname", r.hostname.as_ref().map(|s| json!(s)));
            insert_opt(&mut v, "path", r.path.as_ref().map(path_modifier));
            insert_opt(&mut v, "port", r.port.map(|p| json!(p)));
            json!({"type": "RequestRedirect", "requestRedirect": v})
        }
        Filter::Mirror(m) => {
            let mut v = json!({"backendRef": backend_ref(&m.backend)});
            if let Some((numerator, denominator)) = m.fraction {
                let fraction = json!({"numerator": numerator, "denominator": denominator});
                insert_opt(&mut v, "fraction", Some(fraction));
            }
            json!({"type": "RequestMirror", "requestMirror": v})
        }
        Filter::Unsupported(kind) => json!({"type": kind}),
    }
}

fn backend_ref(b: &BackendRef) -> Value {
    let mut v = json!({"group": b.group, "kind": b.kind, "name": b.name, "weight": b.weight});
    insert_opt(&mut v, "namespace", b.namespace.as_ref().map(|n| json!(n)));
    insert_opt(&mut v, "port", b.port.map(|p| json!(p)));
    if !b.filters.is_empty() {
        let filters: Vec<Value> = b.filters.iter().map(filter).collect();
        insert_opt(&mut v, "filters", Some(json!(filters)));
    }
    v
}

fn endpoint_slice(s: &EndpointSlice) -> Value {
    let mut metadata = key(&s.key);
    if let Some(service) = &s.service_name {
        insert_opt(
            &mut metadata,
            "labels",
            Some(json!({ SERVICE_NAME_LABEL: service })),
        );
    }
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": metadata,
        "addressType": "IPv4",
        "ports": s.ports.iter().map(|p| json!({"name": p.name, "port": p.port}))
            .collect::<Vec<_>>(),
        "endpoints": s.addresses.iter()
            .map(|a| json!({"addresses": [a], "conditions": {"ready": true}}))
            .collect::<Vec<_>>(),
    })
}
