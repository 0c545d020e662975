//! Conversion unit tests: the CRD defaults the API server would fill in, label
//! selectors, durations, endpoint readiness and the implicit namespace label —
//! the places where a record could silently differ from what a cluster would hold.

use gateway_api::{gateways::Gateway, httproutes::HttpRoute};
use k8s_openapi::api::{core::v1::Namespace, discovery::v1::EndpointSlice};
use serde::de::DeserializeOwned;
use sluice_pipeline::model::{
    self, Filter, FromNamespaces, Mirror, ParentRef, PathMatch, Protocol, Redirect, Requirement,
    RouteMatch, SelectorOp, ValueMatch,
};

use super::{ConvertError, ToModel, parse_duration_ms};

/// A typed object from YAML text.
fn typed<T: DeserializeOwned>(yaml: &str) -> T {
    serde_yaml_ng::from_str(yaml).expect("test YAML deserializes")
}

/// An HTTPRoute `ns/r` with the given `spec` (YAML, indented by two spaces).
fn mk_route(spec: &str) -> Result<model::HttpRoute, ConvertError> {
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
         metadata: {{namespace: ns, name: r}}\nspec:\n{spec}"
    );
    typed::<HttpRoute>(&yaml).to_model()
}

/// A Gateway `ns/gw` of class `c` with the given listeners (YAML flow list).
fn mk_gateway(listeners: &str) -> Result<model::Gateway, ConvertError> {
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
         metadata: {{namespace: ns, name: gw}}\nspec: {{gatewayClassName: c, listeners: {listeners}}}"
    );
    typed::<Gateway>(&yaml).to_model()
}

use sluice_pipeline::fixtures::backend as service_backend;

#[test]
fn route_defaults() {
    let route = mk_route(
        "  hostnames: [Example.COM]\n  parentRefs: [{name: gw}]\n\
         \x20 rules: [{backendRefs: [{name: svc, port: 80}]}]\n",
    )
    .expect("converts");
    assert_eq!(
        route.meta,
        model::Meta {
            key: model::ObjectKey::new("ns", "r"),
            generation: 1,
            creation: String::new(),
            problem: None,
        }
    );
    assert_eq!(route.hostnames, vec!["example.com"]);
    assert_eq!(
        route.parent_refs,
        vec![ParentRef {
            group: model::GATEWAY_GROUP.into(),
            kind: "Gateway".into(),
            namespace: None,
            name: "gw".into(),
            section_name: None,
            port: None,
        }]
    );
    let rule = &route.rules[0];
    assert_eq!(rule.matches, vec![RouteMatch::default()]);
    assert_eq!(rule.backends, vec![service_backend("svc", 80)]);
    assert_eq!(rule.timeouts, model::Timeouts::default());
}

#[test]
fn match_defaults() {
    let route = mk_route(
        "  rules:\n  - matches:\n    - path: {value: /a}\n    - path: {type: Exact}\n\
         \x20   - headers: [{name: h, value: v}, {name: r, value: 'x.*', type: RegularExpression}]\n\
         \x20     queryParams: [{name: q, value: v}]\n      method: PATCH\n",
    )
    .expect("converts");
    let matches = &route.rules[0].matches;
    assert_eq!(matches[0].path, PathMatch::Prefix("/a".into()));
    assert_eq!(matches[1].path, PathMatch::Exact("/".into()));
    assert_eq!(matches[2].path, PathMatch::Prefix("/".into()));
    assert_eq!(
        matches[2].headers,
        vec![
            ValueMatch {
                name: "h".into(),
                value: "v".into(),
                regex: false
            },
            ValueMatch {
                name: "r".into(),
                value: "x.*".into(),
                regex: true
            },
        ]
    );
    assert_eq!(
        matches[2].query,
        vec![ValueMatch {
            name: "q".into(),
            value: "v".into(),
            regex: false
        }]
    );
    assert_eq!(matches[2].method.as_deref(), Some("PATCH"));
}

#[test]
fn filter_defaults_and_unsupported() {
    let route = mk_route(
        "  rules:\n  - filters:\n    - {type: RequestRedirect, requestRedirect: {scheme: https}}\n\
         \x20   - {type: RequestMirror, requestMirror: {backendRef: {name: m, port: 8080}, percent: 25}}\n\
         \x20   - {type: RequestMirror, requestMirror: {backendRef: {name: m, port: 8080}, fraction: {numerator: 1}}}\n\
         \x20   - {type: CORS, cors: {allowOrigins: ['*']}}\n\
         \x20   backendRefs:\n    - name: svc\n      port: 80\n      weight: 0\n\
         \x20     filters: [{type: ExtensionRef, extensionRef: {group: g, kind: k, name: n}}]\n",
    )
    .expect("converts");
    let rule = &route.rules[0];
    let mirror = |fraction| {
        Filter::Mirror(Mirror {
            backend: service_backend("m", 8080),
            fraction,
        })
    };
    assert_eq!(
        rule.filters,
        vec![
            Filter::Redirect(Redirect {
                scheme: Some("https".into()),
                hostname: None,
                path: None,
                port: None,
                status_code: 302,
            }),
            mirror(Some((25, 100))),
            mirror(Some((1, 100))),
            Filter::Unsupported("CORS".into()),
        ]
    );
    assert_eq!(rule.backends[0].weight, 0);
    assert_eq!(
        rule.backends[0].filters,
        vec![Filter::Unsupported("ExtensionRef".into())]
    );
}

#[test]
fn bad_values_name_their_field() {
    let port = mk_route("  rules: [{backendRefs: [{name: svc, port: 70000}]}]\n");
    assert_eq!(
        port,
        Err(ConvertError::new(
            "spec.rules[0].backendRefs[0].port",
            "70000 is not a port number (1-65535)"
        ))
    );
    let timeout = mk_route("  rules: [{timeouts: {request: 1.5s}}]\n").expect_err("rejects");
    assert_eq!(timeout.field, "spec.rules[0].timeouts.request");
    let code = mk_route(
        "  rules: [{filters: [{type: RequestRedirect, requestRedirect: {statusCode: 200}}]}]\n",
    )
    .expect_err("rejects");
    assert_eq!(
        code.field,
        "spec.rules[0].filters[0].requestRedirect.statusCode"
    );
}

#[test]
fn durations() {
    let ms = |text| parse_duration_ms("t", text);
    assert_eq!(ms("1h2m3s500ms"), Ok(3_723_500));
    assert_eq!(ms("10s"), Ok(10_000));
    assert_eq!(ms("0s"), Ok(0));
    assert!(ms("1.5s").is_err());
    assert!(ms("-1s").is_err());
    assert!(ms("").is_err());
    let route = mk_route("  rules: [{timeouts: {request: 10s, backendRequest: 500ms}}]\n")
        .expect("converts");
    assert_eq!(
        route.rules[0].timeouts,
        model::Timeouts {
            request_ms: Some(10_000),
            backend_request_ms: Some(500)
        }
    );
}

#[test]
fn listener_defaults() {
    let gateway = mk_gateway(
        "[{name: a, port: 80, protocol: HTTP, hostname: '*.Example.com'}, \
         {name: b, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert}]}}, \
         {name: c, port: 9000, protocol: example.com/custom, allowedRoutes: {namespaces: {from: All}, kinds: [{kind: HTTPRoute}]}}]",
    )
    .expect("converts");
    let [a, b, c] = &gateway.listeners[..] else {
        panic!("three listeners")
    };
    assert_eq!(
        (a.protocol.clone(), a.hostname.as_deref()),
        (Protocol::Http, Some("*.example.com"))
    );
    assert_eq!(a.allowed_namespaces, FromNamespaces::Same);
    let tls = b.tls.clone().expect("tls");
    assert!(tls.mode_terminate);
    assert_eq!(
        (
            tls.certificate_refs[0].group.as_str(),
            tls.certificate_refs[0].kind.as_str()
        ),
        ("", "Secret")
    );
    assert_eq!(c.protocol, Protocol::Other("example.com/custom".into()));
    assert_eq!(c.allowed_namespaces, FromNamespaces::All);
    assert_eq!(
        c.allowed_kinds,
        vec![model::GroupKind {
            group: model::GATEWAY_GROUP.into(),
            kind: "HTTPRoute".into()
        }]
    );
    let bad = mk_gateway("[{name: a, port: 0, protocol: HTTP}]").expect_err("rejects");
    assert_eq!(bad.field, "spec.listeners[0].port");
}

#[test]
fn selectors_are_sorted_requirements() {
    let gateway = mk_gateway(
        "[{name: a, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {\
         matchLabels: {z: '1', a: '2'}, matchExpressions: [{key: m, operator: NotIn, values: [y, x]}, \
         {key: e, operator: Exists}]}}}}]",
    )
    .expect("converts");
    let req = |key: &str, op, values: &[&str]| Requirement {
        key: key.into(),
        op,
        values: values.iter().map(|v| v.to_string()).collect(),
    };
    let FromNamespaces::Selector(selector) = &gateway.listeners[0].allowed_namespaces else {
        panic!("a selector")
    };
    assert_eq!(
        selector.requirements,
        vec![
            req("a", SelectorOp::In, &["2"]),
            req("e", SelectorOp::Exists, &[]),
            req("m", SelectorOp::NotIn, &["x", "y"]),
            req("z", SelectorOp::In, &["1"]),
        ]
    );
    // A malformed or missing selector makes only its listener invalid (reported in
    // its status by the pipeline); the Gateway and its other listeners convert.
    let gateway = mk_gateway(
        "[{name: a, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {\
         matchExpressions: [{key: m, operator: Near}]}}}}, \
         {name: b, port: 81, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {\
         matchExpressions: [{key: m, operator: Exists, values: [x]}]}}}}, \
         {name: c, port: 82, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector}}}, \
         {name: d, port: 83, protocol: HTTP}]",
    )
    .expect("a bad selector does not drop the Gateway");
    let problems: Vec<Option<&str>> = (gateway.listeners.iter())
        .map(|l| l.problem.as_deref())
        .collect();
    assert_eq!(
        problems,
        vec![
            Some(
                "allowedRoutes.namespaces.selector.matchExpressions[0].operator: \"Near\" is not one of In, NotIn, Exists, DoesNotExist"
            ),
            Some("allowedRoutes.namespaces.selector.matchExpressions[0].values: must be empty"),
            Some("allowedRoutes.namespaces.selector: required when from is Selector"),
            None,
        ]
    );
}

#[test]
fn repeated_header_and_query_names_count_once_the_first() {
    let route = mk_route(
        "  rules:\n  - matches: [{headers: [{name: X-A, value: '1'}, {name: x-a, value: '2'}, {name: B, value: '3'}], \
         queryParams: [{name: q, value: '1'}, {name: Q, value: '2'}, {name: q, value: '3'}]}]\n\
         \x20   filters: [{type: RequestHeaderModifier, requestHeaderModifier: {\
         set: [{name: S, value: '1'}, {name: s, value: '2'}], add: [{name: A, value: '1'}, {name: a, value: '2'}]}}]\n",
    )
    .expect("converts");
    let m = &route.rules[0].matches[0];
    let names = |v: &[ValueMatch]| -> Vec<(String, String)> {
        v.iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect()
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    // Header names are case-insensitive; query param names match exactly.
    assert_eq!(names(&m.headers), pairs(&[("X-A", "1"), ("B", "3")]));
    assert_eq!(names(&m.query), pairs(&[("q", "1"), ("Q", "2")]));
    let Filter::RequestHeaders(modifier) = &route.rules[0].filters[0] else {
        panic!("a header modifier: {:?}", route.rules[0].filters)
    };
    assert_eq!(modifier.set, pairs(&[("S", "1")]));
    assert_eq!(modifier.add, pairs(&[("A", "1")]));
}

#[test]
fn endpoint_readiness() {
    let slice: EndpointSlice = typed(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\naddressType: IPv4\n\
         metadata: {name: s-1, labels: {kubernetes.io/service-name: s}}\n\
         ports: [{port: 3000}, {name: h2c, port: 3001}, {name: all}]\nendpoints:\n\
         - {addresses: [10.0.0.3, 10.0.0.1], conditions: {ready: true}}\n\
         - {addresses: [10.0.0.2]}\n\
         - {addresses: [10.0.0.9], conditions: {ready: false}}\n\
         - {addresses: [10.0.0.1], conditions: {}}\n",
    );
    let slice = slice.to_model().expect("converts");
    assert_eq!(slice.key, model::ObjectKey::new("default", "s-1"));
    assert_eq!(slice.service_name.as_deref(), Some("s"));
    assert_eq!(slice.addresses, vec!["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    let ports: Vec<_> = slice
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.port))
        .collect();
    assert_eq!(ports, vec![("", 3000), ("h2c", 3001)]);
}

#[test]
fn namespace_gets_its_name_label() {
    let ns: Namespace = typed(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: infra, labels: {z: '1', a: '2'}}\n",
    );
    let ns = ns.to_model().expect("converts");
    let labels: Vec<_> = ns
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        vec![
            ("a", "2"),
            ("kubernetes.io/metadata.name", "infra"),
            ("z", "1")
        ]
    );
    // A label already present (as the API server would have set it) is kept.
    let ns: Namespace = typed(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: x, labels: {kubernetes.io/metadata.name: x}}\n",
    );
    assert_eq!(
        ns.to_model().expect("converts").labels,
        vec![("kubernetes.io/metadata.name".into(), "x".into())]
    );
}

#[test]
fn metadata_generation_and_creation() {
    let gateway: Gateway = typed(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
         metadata: {namespace: ns, name: gw, generation: 4, creationTimestamp: '2024-05-06T07:08:09Z'}\n\
         spec: {gatewayClassName: c, listeners: []}\n",
    );
    let meta = gateway.to_model().expect("converts").meta;
    assert_eq!(
        (meta.generation, meta.creation.as_str()),
        (4, "2024-05-06T07:08:09Z")
    );
}

/// `GatewayTLSConfig.frontend`: `mode` defaults to `AllowValidOnly`; a `perPort`
/// entry overrides the default on its port even without `validation` (that port
/// then validates nothing: kept with no CA refs, not dropped so the default
/// would apply).
#[test]
fn frontend_validation_keeps_the_default_and_every_per_port_override() {
    let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
        metadata: {namespace: ns, name: gw}\n\
        spec:\n  gatewayClassName: c\n  listeners: []\n  tls:\n    frontend:\n      \
        default:\n        validation:\n          caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}]\n      \
        perPort:\n      - port: 8443\n        tls:\n          validation:\n            \
        mode: AllowInsecureFallback\n            \
        caCertificateRefs: [{group: '', kind: ConfigMap, name: port-ca, namespace: other}]\n      \
        - port: 9443\n        tls: {}\n";
    let gw = typed::<Gateway>(yaml).to_model().expect("converts");
    let summary: Vec<(Option<u16>, Vec<String>, bool)> = (gw.frontend_validation.iter())
        .map(|v| {
            let refs = (v.client.ca_refs.iter())
                .map(|r| format!("{:?}/{}/{}", r.namespace, r.kind, r.name))
                .collect();
            (v.port, refs, v.client.insecure_fallback)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (None, vec!["None/ConfigMap/ca".to_owned()], false),
            (
                Some(8443),
                vec!["Some(\"other\")/ConfigMap/port-ca".to_owned()],
                true
            ),
            (Some(9443), vec![], false),
        ]
    );
}
