//! Checks the encoders: the RouteConfiguration assembled from cached virtual-host
//! bytes is byte-identical to encoding the whole message, and the Gateway API rules
//! that are easy to get wrong (header, query and method matches, redirect ports,
//! invalid backends, weights, mirrors, timeouts, header modifiers) come out as the
//! Envoy fields that implement them (expected values written from the Gateway API
//! and Envoy `route.v3` docs, not copied from the encoder's output).

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    RedirectAction, Route, RouteAction, RouteConfiguration, VirtualHost, redirect_action,
    route as envoy_route, route_action, route_match::PathSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use prost::Message;
use sluice_pipeline::ir::{
    Action, ClusterIr, ListenerIr, MirrorIr, RouteIr, VirtualHostIr, WeightedBackend,
};
use sluice_pipeline::model::{
    Filter, HeaderModifier, ObjectKey, PathMatch, PathModifier, Redirect, RouteMatch, Timeouts,
    UrlRewrite, ValueMatch,
};

use super::route::INVALID_BACKEND_CLUSTER;
use super::*;

fn gw() -> ObjectKey {
    ObjectKey::new("infra", "gw")
}

fn backend(cluster: &str, weight: u32) -> WeightedBackend {
    WeightedBackend {
        cluster: Some(cluster.to_owned()),
        weight,
        filters: vec![],
    }
}

fn mk_route(name: &str, path: PathMatch, action: Action) -> RouteIr {
    RouteIr {
        name: name.to_owned(),
        matcher: RouteMatch {
            path,
            ..Default::default()
        },
        action,
        request_headers: HeaderModifier::default(),
        response_headers: HeaderModifier::default(),
        mirrors: vec![],
        timeouts: Timeouts::default(),
    }
}

fn forward(backends: Vec<WeightedBackend>) -> Action {
    Action::Forward {
        backends,
        rewrite: None,
    }
}

fn redirect(scheme: Option<&str>, hostname: Option<&str>, port: Option<u16>) -> Action {
    Action::Redirect(Redirect {
        scheme: scheme.map(str::to_owned),
        hostname: hostname.map(str::to_owned),
        path: None,
        port,
        status_code: 302,
    })
}

fn vhost(hostname: &str, routes: Vec<RouteIr>) -> VirtualHostIr {
    VirtualHostIr {
        gateway: gw(),
        port: 80,
        hostname: hostname.to_owned(),
        routes,
    }
}

fn route_action(r: &Route) -> &RouteAction {
    match &r.action {
        Some(envoy_route::Action::Route(a)) => a,
        other => panic!("not a route action: {other:?}"),
    }
}

fn redirect_action(r: &Route) -> &RedirectAction {
    match &r.action {
        Some(envoy_route::Action::Redirect(a)) => a,
        other => panic!("not a redirect: {other:?}"),
    }
}

fn sample_vhosts() -> Vec<VirtualHostIr> {
    let mut with_everything = mk_route(
        "ns/r/0/0",
        PathMatch::Prefix("/api/".into()),
        forward(vec![]),
    );
    with_everything.matcher.headers = vec![ValueMatch {
        name: "x-v".into(),
        value: "1".into(),
        regex: false,
    }];
    with_everything.matcher.query = vec![ValueMatch {
        name: "q".into(),
        value: "a.*".into(),
        regex: true,
    }];
    with_everything.matcher.method = Some("GET".into());
    with_everything.action = Action::Forward {
        backends: vec![backend("ns/a:80", 1), backend("ns/b:80", 3)],
        rewrite: Some(UrlRewrite {
            hostname: Some("h".into()),
            path: Some(PathModifier::ReplacePrefixMatch("/v2".into())),
        }),
    };
    with_everything.request_headers.set = vec![("x-set".into(), "1".into())];
    with_everything.mirrors = vec![MirrorIr {
        cluster: Some("ns/m:80".into()),
        fraction: None,
    }];
    vec![
        vhost(
            "*",
            vec![mk_route(
                "ns/r/1/0",
                PathMatch::Exact("/".into()),
                Action::Direct(500),
            )],
        ),
        vhost("a.example.com", vec![with_everything]),
        vhost(
            "*.example.com",
            vec![mk_route(
                "ns/r/2/0",
                PathMatch::Regex("/x+".into()),
                redirect(Some("https"), None, None),
            )],
        ),
    ]
}

/// Gateway API `HTTPRouteMatch`: a header match is exact and case-sensitive on the
/// value (the name is case-insensitive, as Envoy's header names are); a method match
/// is a match on the `:method` pseudo-header; a RegularExpression query match is a
/// RE2 `safe_regex`. All of a match's conditions are ANDed (Envoy: every entry of
/// `headers` and `query_parameters` must match).
#[test]
fn header_query_and_method_matches_encode_as_envoy_matchers() {
    use envoy_types::pb::envoy::config::route::v3::{
        HeaderMatcher, QueryParameterMatcher, header_matcher::HeaderMatchSpecifier,
        query_parameter_matcher::QueryParameterMatchSpecifier,
    };
    use envoy_types::pb::envoy::r#type::matcher::v3::{
        RegexMatcher, StringMatcher, string_matcher::MatchPattern,
    };
    let vhosts = sample_vhosts();
    let with_everything = vhosts
        .iter()
        .find(|v| v.hostname == "a.example.com")
        .expect("the sample has a.example.com");
    let encoded = route::virtual_host(with_everything);
    let [r] = encoded.routes.as_slice() else {
        panic!("one route, got {:?}", encoded.routes)
    };
    let m = r.r#match.as_ref().expect("a route match");
    let exact = |name: &str, value: &str| HeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
            match_pattern: Some(MatchPattern::Exact(value.into())),
            ignore_case: false,
        })),
        invert_match: false,
        ..Default::default()
    };
    let mut headers = m.headers.clone();
    headers.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(headers, vec![exact(":method", "GET"), exact("x-v", "1")]);
    let regex = StringMatcher {
        match_pattern: Some(MatchPattern::SafeRegex(RegexMatcher {
            regex: "a.*".into(),
            ..Default::default()
        })),
        ignore_case: false,
    };
    assert_eq!(
        m.query_parameters,
        vec![QueryParameterMatcher {
            name: "q".into(),
            query_parameter_match_specifier: Some(QueryParameterMatchSpecifier::StringMatch(regex)),
        }]
    );
    assert_eq!(
        m.path_specifier,
        Some(PathSpecifier::PathSeparatedPrefix("/api".into())),
        "PathPrefix /api/ matches /api and /api/..., segment-wise"
    );
}

#[test]
fn route_configuration_from_cached_vhosts_equals_whole_encoding() {
    let mut vhosts = sample_vhosts();
    vhosts.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    let messages: Vec<VirtualHost> = vhosts.iter().map(route::virtual_host).collect();
    let cached: Vec<Vec<u8>> = messages.iter().map(Message::encode_to_vec).collect();

    let name = "infra/gw/80";
    let assembled = route::route_configuration_bytes(name, cached.iter().map(Vec::as_slice));
    let whole = RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts: messages,
        ignore_port_in_host_matching: true,
        ..Default::default()
    };
    assert_eq!(assembled, whole.encode_to_vec());
    assert_eq!(
        RouteConfiguration::decode(assembled.as_slice()).expect("decodes"),
        whole
    );

    // No virtual hosts, and long ones (multi-byte lengths).
    let empty = RouteConfiguration {
        name: name.to_owned(),
        ignore_port_in_host_matching: true,
        ..Default::default()
    };
    assert_eq!(
        route::route_configuration_bytes(name, []),
        empty.encode_to_vec()
    );
    let many: Vec<RouteIr> = (0..1000)
        .map(|i| {
            mk_route(
                &format!("r{i}"),
                PathMatch::Exact(format!("/{i}")),
                Action::Direct(404),
            )
        })
        .collect();
    let big = route::virtual_host(&vhost("big", many));
    let bytes = big.encode_to_vec();
    assert!(
        bytes.len() > 16_384,
        "a three-byte length varint is exercised"
    );
    let assembled = route::route_configuration_bytes(name, [bytes.as_slice()]);
    let whole = RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts: vec![big],
        ignore_port_in_host_matching: true,
        ..Default::default()
    };
    assert_eq!(assembled, whole.encode_to_vec());
}

#[test]
fn listener_binds_gateway_address_with_offset_and_reads_routes_over_ads() {
    let mut config = EncodeConfig {
        port_offset: 10000,
        ..Default::default()
    };
    config.bind.per_gateway.insert(gw(), "127.0.0.2".into());
    let l: Listener = listener::listener(
        &config,
        &ListenerIr {
            gateway: gw(),
            port: 80,
            tls: vec![],
        },
    );
    assert_eq!(l.name, "infra/gw/80");
    let json = format!("{:?}", l.address);
    assert!(
        json.contains("127.0.0.2") && json.contains("PortValue(10080)"),
        "{json}"
    );

    let Some(filter::ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type
    else {
        panic!("typed_config expected");
    };
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).expect("an HCM");
    let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier else {
        panic!("rds expected")
    };
    assert_eq!(rds.route_config_name, "infra/gw/80");
    assert_eq!(hcm.upgrade_configs[0].upgrade_type, "websocket");
    assert_eq!(hcm.http_filters.len(), 1);
}

#[test]
fn path_matches_are_segment_wise() {
    let r = |p: PathMatch| route::route(&mk_route("r", p, Action::Direct(200)), 80, "*");
    let spec = |r: Route| r.r#match.and_then(|m| m.path_specifier);
    assert_eq!(
        spec(r(PathMatch::Prefix("/".into()))),
        Some(PathSpecifier::Prefix("/".into()))
    );
    assert_eq!(
        spec(r(PathMatch::Prefix("/a/b/".into()))),
        Some(PathSpecifier::PathSeparatedPrefix("/a/b".into()))
    );
    assert_eq!(
        spec(r(PathMatch::Exact("/a/".into()))),
        Some(PathSpecifier::Path("/a/".into()))
    );
}

#[test]
fn redirect_port_follows_the_gateway_api_rules() {
    let port = |action: Action, listener_port: u16| {
        let r = route::route(
            &mk_route("r", PathMatch::Prefix("/".into()), action),
            listener_port,
            "*",
        );
        redirect_action(&r).port_redirect
    };
    // No scheme, no port: the listener's port (Envoy would drop it on a host change).
    assert_eq!(port(redirect(None, Some("example.org"), None), 8080), 8080);
    // A scheme without a port: its well-known port, explicit where the host is not
    // known (a wildcard virtual host)...
    assert_eq!(port(redirect(Some("http"), None, None), 8443), 80);
    // ...and left out of `Location` where it is (Envoy then sets no port): the
    // filter's hostname, or the virtual host's exact hostname.
    assert_eq!(
        port(redirect(Some("https"), Some("example.org"), None), 8080),
        0
    );
    let exact = |action: Action, listener_port: u16| {
        let r = route::route(
            &mk_route("r", PathMatch::Prefix("/".into()), action),
            listener_port,
            "a.example",
        );
        let a = redirect_action(&r);
        (a.host_redirect.clone(), a.port_redirect)
    };
    assert_eq!(
        exact(redirect(None, None, None), 80),
        ("a.example".into(), 0)
    );
    assert_eq!(
        exact(redirect(Some("https"), None, None), 80),
        ("a.example".into(), 0)
    );
    // Not the default port: explicit, and the host is left to the request.
    assert_eq!(
        exact(redirect(None, None, None), 8080),
        (String::new(), 8080)
    );
    assert_eq!(
        exact(redirect(Some("https"), None, Some(8443)), 80),
        (String::new(), 8443)
    );
    // An explicit port wins.
    assert_eq!(port(redirect(Some("https"), None, Some(8443)), 80), 8443);

    let mut r = redirect(Some("https"), Some("example.org"), None);
    if let Action::Redirect(r) = &mut r {
        r.status_code = 301;
        r.path = Some(PathModifier::ReplaceFullPath("/full".into()));
    }
    let route = route::route(&mk_route("r", PathMatch::Prefix("/x".into()), r), 80, "*");
    let a = redirect_action(&route);
    assert_eq!(
        a.response_code,
        redirect_action::RedirectResponseCode::MovedPermanently as i32
    );
    assert_eq!(a.host_redirect, "example.org");
    assert_eq!(
        a.scheme_rewrite_specifier,
        Some(redirect_action::SchemeRewriteSpecifier::SchemeRedirect(
            "https".into()
        ))
    );
    assert_eq!(
        a.path_rewrite_specifier,
        Some(redirect_action::PathRewriteSpecifier::PathRedirect(
            "/full".into()
        ))
    );
}

/// The weight rule itself (weight 0, nothing valid) is the pipeline's
/// (`spec::routes`): encoding sends what the IR lists.
#[test]
fn backends_single_weighted_and_invalid() {
    use route_action::ClusterSpecifier;
    let action = |backends| {
        let r = route::route(
            &mk_route("r", PathMatch::Prefix("/".into()), forward(backends)),
            80,
            "*",
        );
        r.action.expect("an action")
    };
    let Some(envoy_route::Action::Route(a)) = Some(action(vec![backend("ns/a:80", 1)])) else {
        panic!()
    };
    assert_eq!(
        a.cluster_specifier,
        Some(ClusterSpecifier::Cluster("ns/a:80".into()))
    );
    assert_eq!(a.cluster_not_found_response_code, 0);

    let invalid = WeightedBackend {
        cluster: None,
        weight: 1,
        filters: vec![],
    };
    let Some(envoy_route::Action::Route(a)) = Some(action(vec![backend("ns/a:80", 1), invalid]))
    else {
        panic!()
    };
    let Some(ClusterSpecifier::WeightedClusters(w)) = &a.cluster_specifier else {
        panic!()
    };
    let names: Vec<&str> = w.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["ns/a:80", INVALID_BACKEND_CLUSTER]);
    assert_eq!(
        a.cluster_not_found_response_code,
        route_action::ClusterNotFoundResponseCode::InternalServerError as i32
    );
}

#[test]
fn backend_header_filters_go_on_the_weighted_entry() {
    let mut b = backend("ns/a:80", 1);
    b.filters = vec![Filter::RequestHeaders(HeaderModifier {
        set: vec![("x-a".into(), "1".into())],
        add: vec![("x-b".into(), "2".into())],
        remove: vec!["x-c".into()],
    })];
    let r = route::route(
        &mk_route("r", PathMatch::Prefix("/".into()), forward(vec![b])),
        80,
        "*",
    );
    let Some(route_action::ClusterSpecifier::WeightedClusters(w)) =
        &route_action(&r).cluster_specifier
    else {
        panic!("a filtered backend needs a weighted entry");
    };
    let entry = &w.clusters[0];
    let actions: Vec<i32> = entry
        .request_headers_to_add
        .iter()
        .map(|h| h.append_action)
        .collect();
    assert_eq!(
        actions,
        [
            HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
            HeaderAppendAction::AppendIfExistsOrAdd as i32
        ]
    );
    assert_eq!(entry.request_headers_to_remove, ["x-c"]);
}

#[test]
fn mirrors_timeouts_and_rewrites() {
    let mut ir = mk_route(
        "r",
        PathMatch::Prefix("/prefix/one".into()),
        forward(vec![backend("ns/a:80", 1)]),
    );
    ir.mirrors = vec![
        MirrorIr {
            cluster: Some("ns/m:80".into()),
            fraction: Some((1, 3)),
        },
        MirrorIr {
            cluster: None,
            fraction: None,
        },
    ];
    ir.timeouts = Timeouts {
        request_ms: Some(10_500),
        backend_request_ms: Some(2_000),
    };
    if let Action::Forward { rewrite, .. } = &mut ir.action {
        *rewrite = Some(UrlRewrite {
            hostname: None,
            path: Some(PathModifier::ReplacePrefixMatch("/".into())),
        });
    }
    let r = route::route(&ir, 80, "*");
    let a = route_action(&r);
    assert_eq!(
        a.request_mirror_policies.len(),
        1,
        "the invalid mirror is skipped"
    );
    let fraction = a.request_mirror_policies[0]
        .runtime_fraction
        .as_ref()
        .and_then(|f| f.default_value);
    assert_eq!(fraction.map(|f| f.numerator), Some(333_333));
    assert_eq!(a.timeout, Some(duration_ms(10_500)));
    assert_eq!(
        a.timeout.map(|d| (d.seconds, d.nanos)),
        Some((10, 500_000_000))
    );
    let per_try = a.retry_policy.as_ref().and_then(|p| p.per_try_timeout);
    assert_eq!(per_try, Some(duration_ms(2_000)));
    let regex = a
        .regex_rewrite
        .as_ref()
        .expect("'/' replacement needs a regex");
    assert_eq!(regex.substitution, "/");
    assert_eq!(a.prefix_rewrite, "");

    // Only a backend timeout: it is also the route timeout.
    ir.timeouts = Timeouts {
        request_ms: None,
        backend_request_ms: Some(20_000),
    };
    let r = route::route(&ir, 80, "*");
    assert_eq!(route_action(&r).timeout, Some(duration_ms(20_000)));
    assert_eq!(route_action(&r).retry_policy, None);
}

#[test]
fn h2c_cluster_gets_http2_protocol_options() {
    let mut ir = ClusterIr {
        name: "ns/svc:80".into(),
        service: ObjectKey::new("ns", "svc"),
        port: 80,
        app_protocol: Some(cluster::H2C_APP_PROTOCOL.into()),
        tls: None,
    };
    let c: Cluster = cluster::cluster(&ir);
    assert!(
        c.typed_extension_protocol_options
            .contains_key(cluster::HTTP_PROTOCOL_OPTIONS)
    );
    assert_eq!(
        c.eds_cluster_config.map(|e| e.service_name),
        Some("ns/svc:80".into())
    );
    ir.app_protocol = None;
    assert!(
        cluster::cluster(&ir)
            .typed_extension_protocol_options
            .is_empty()
    );

    let cla: ClusterLoadAssignment = cluster::load_assignment("ns/svc:80", &[]);
    assert!(cla.endpoints.is_empty());
    let cla = cluster::load_assignment(
        "ns/svc:80",
        &[("10.0.0.1".into(), 1), ("10.0.0.2".into(), 1)],
    );
    assert_eq!(cla.endpoints.len(), 1);
    assert_eq!(cla.endpoints[0].lb_endpoints.len(), 2);
    // gRPC clients skip a locality without a weight and reject one without a locality.
    assert_eq!(
        cla.endpoints[0]
            .load_balancing_weight
            .as_ref()
            .map(|w| w.value),
        Some(1)
    );
    assert!(cla.endpoints[0].locality.is_some());
}

/// BackendTLSPolicy on a cluster: `hostname` is the SNI; the certificate must
/// chain to the CA bundle (inline) or the system store, and carry a listed SAN,
/// else the hostname; with no usable CA the cluster has no endpoints (503).
#[test]
fn backend_tls_sets_sni_trust_and_san_matchers() {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        ClusterDiscoveryType, DiscoveryType,
    };
    use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        UpstreamTlsContext, common_tls_context::ValidationContextType,
    };
    use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
    use sluice_pipeline::ir::{BackendTlsIr, BackendTrust};
    use sluice_pipeline::model::SubjectAltName;

    let with = |trust: BackendTrust, sans: Vec<SubjectAltName>| {
        cluster::cluster(&ClusterIr {
            name: "ns/svc:443".into(),
            service: ObjectKey::new("ns", "svc"),
            port: 443,
            app_protocol: None,
            tls: Some(BackendTlsIr {
                policy: ObjectKey::new("ns", "p"),
                hostname: "abc.example.com".into(),
                trust,
                subject_alt_names: sans,
            }),
        })
    };
    let context = |c: &Cluster| -> UpstreamTlsContext {
        let socket = c.transport_socket.clone().expect("transport socket");
        assert_eq!(socket.name, "envoy.transport_sockets.tls");
        match socket.config_type {
            Some(
                envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType::TypedConfig(
                    any,
                ),
            ) => UpstreamTlsContext::decode(any.value.as_slice()).expect("decode"),
            other => panic!("{other:?}"),
        }
    };
    let validation = |ctx: &UpstreamTlsContext| match ctx
        .common_tls_context
        .clone()
        .and_then(|c| c.validation_context_type)
    {
        Some(ValidationContextType::ValidationContext(v)) => v,
        other => panic!("{other:?}"),
    };
    let sans = |ctx: &UpstreamTlsContext| -> Vec<(i32, String)> {
        (validation(ctx).match_typed_subject_alt_names.iter())
            .map(|m| {
                let value = match m.matcher.as_ref().and_then(|s| s.match_pattern.clone()) {
                    Some(MatchPattern::Exact(v)) => v,
                    other => panic!("{other:?}"),
                };
                (m.san_type, value)
            })
            .collect()
    };
    let (dns, uri) = (2, 3); // SubjectAltNameMatcher.SanType DNS, URI

    let c = with(BackendTrust::CaBundle("CA-PEM\n".into()), vec![]);
    let ctx = context(&c);
    assert_eq!(ctx.sni, "abc.example.com");
    assert_eq!(
        validation(&ctx).trusted_ca.and_then(|d| d.specifier),
        Some(Specifier::InlineString("CA-PEM\n".into()))
    );
    assert_eq!(sans(&ctx), vec![(dns, "abc.example.com".to_string())]);
    assert_eq!(
        c.eds_cluster_config.map(|e| e.service_name),
        Some("ns/svc:443".into())
    );

    let ctx = context(&with(
        BackendTrust::System,
        vec![
            SubjectAltName::Hostname("other.example.com".into()),
            SubjectAltName::Uri("spiffe://abc.example.com/test-identity".into()),
        ],
    ));
    assert_eq!(
        validation(&ctx).trusted_ca.and_then(|d| d.specifier),
        Some(Specifier::Filename(cluster::SYSTEM_CA_BUNDLE.into()))
    );
    assert_eq!(
        sans(&ctx),
        vec![
            (dns, "other.example.com".to_string()),
            (uri, "spiffe://abc.example.com/test-identity".to_string())
        ],
        "the listed SANs, not the hostname"
    );

    let refused = with(BackendTrust::Refused, vec![]);
    assert!(refused.transport_socket.is_none());
    assert_eq!(
        refused.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32))
    );
    assert!(
        refused
            .load_assignment
            .is_some_and(|l| l.endpoints.is_empty())
    );
}
