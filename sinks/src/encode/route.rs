//! Virtual hosts and routes, and the RouteConfiguration assembled from
//! already-encoded virtual hosts.
//!
//! # Assembly from cached bytes
//! Protobuf encodes a repeated message field as one length-delimited entry per
//! element, so a RouteConfiguration `{ name = 1, virtual_hosts = 2 }` is the bytes of
//! field 1 followed by, per virtual host, the key of field 2 (wire type 2), a varint
//! length and that virtual host's own encoding. [`route_configuration_bytes`] builds
//! it that way: a change to one virtual host re-encodes that virtual host only, and
//! the others are copied. The result is byte-identical to encoding the whole message
//! with prost (which writes fields in tag order), as the tests check.

use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, RuntimeFractionalPercent,
    header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction, RetryPolicy, Route,
    RouteAction, VirtualHost, WeightedCluster, header_matcher::HeaderMatchSpecifier,
    query_parameter_matcher::QueryParameterMatchSpecifier, redirect_action, route, route_action,
    route_match::PathSpecifier, weighted_cluster::ClusterWeight,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent::DenominatorType};
use envoy_types::pb::google::protobuf::UInt32Value;
use sluice_pipeline::ir::{Action, MirrorIr, RouteIr, VirtualHostIr, WeightedBackend};
use sluice_pipeline::model::{
    Filter, HeaderModifier, PathMatch, PathModifier, Redirect, RouteMatch, Timeouts, UrlRewrite,
    ValueMatch,
};

use super::duration_ms;
use super::rewrite::{self, PathRewrite};

/// The cluster name a route uses for an invalid backend: it never exists, so
/// Envoy answers that backend's share of requests with
/// `cluster_not_found_response_code` (500).
pub const INVALID_BACKEND_CLUSTER: &str = "sluice-invalid-backend";

/// RouteConfiguration field numbers.
const ROUTE_CONFIGURATION_NAME: u32 = 1;
const ROUTE_CONFIGURATION_VIRTUAL_HOSTS: u32 = 2;

/// The bytes of `RouteConfiguration { name, virtual_hosts, ignore_port_in_host_matching }`, from the virtual
/// hosts' encoded bytes (in the order given). See the module doc.
pub fn route_configuration_bytes<'a>(
    name: &str,
    virtual_hosts: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<u8> {
    let mut buf = Vec::new();
    // proto3 leaves an empty string out.
    if !name.is_empty() {
        put_length_delimited(&mut buf, ROUTE_CONFIGURATION_NAME, name.as_bytes());
    }
    for vhost in virtual_hosts {
        put_length_delimited(&mut buf, ROUTE_CONFIGURATION_VIRTUAL_HOSTS, vhost);
    }
    // `ignore_port_in_host_matching: true` (field 14, varint): a Host of
    // `example.com:8080` picks the `example.com` virtual host, and the header is
    // forwarded unchanged (HTTPRouteHostnameIntersection expects the port upstream).
    // The key is `field << 3 | wire type`, and the varint wire type is 0.
    put_varint(&mut buf, u64::from(ROUTE_CONFIGURATION_IGNORE_PORT) << 3);
    put_varint(&mut buf, 1);
    buf
}

const ROUTE_CONFIGURATION_IGNORE_PORT: u32 = 14;

fn put_length_delimited(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    const WIRE_TYPE_LEN: u64 = 2;
    put_varint(buf, (u64::from(field) << 3) | WIRE_TYPE_LEN);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// Name of the virtual host that answers misdirected requests.
pub const MISDIRECTED_VHOST: &str = "sluice-misdirected";

/// A virtual host answering `421 Misdirected Request` for `domains`: in the route
/// table of one HTTPS listener's filter chain, the hosts that belong to another
/// listener of the port (RFC 9110 §15.5.20; the Gateway API's HTTPS listener
/// isolation: a connection made for one SNI must not reach another listener's
/// routes, as HTTP/2 connection reuse would otherwise allow).
pub fn misdirected_virtual_host(domains: Vec<String>) -> VirtualHost {
    VirtualHost {
        name: MISDIRECTED_VHOST.to_owned(),
        domains,
        routes: vec![Route {
            r#match: Some(envoy_types::pb::envoy::config::route::v3::RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".to_owned())),
                ..Default::default()
            }),
            action: Some(route::Action::DirectResponse(DirectResponseAction {
                status: 421,
                ..Default::default()
            })),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The virtual host for one hostname of a `(gateway, port)`.
pub fn virtual_host(ir: &VirtualHostIr) -> VirtualHost {
    let mut routes: Vec<Route> = (ir.routes.iter())
        .map(|r| route(r, ir.port, &ir.hostname))
        .collect();
    if forced_rejection(&ir.hostname) {
        routes.insert(0, unacceptable_route());
    }
    VirtualHost {
        name: ir.hostname.clone(),
        domains: vec![ir.hostname.clone()],
        routes,
        ..Default::default()
    }
}

/// The environment variable of the test-only NACK hook: a virtual host of this
/// hostname gets a route Envoy rejects (a regex RE2 cannot compile), so the tests
/// can drive an input past the validator to a real Envoy's NACK
/// (`tests/guarantees.rs`). Unset, as it always is outside those tests, nothing
/// changes.
pub const TEST_REJECTED_HOSTNAME: &str = "SLUICE_TEST_REJECTED_HOSTNAME";

fn forced_rejection(hostname: &str) -> bool {
    static NAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let name = NAME.get_or_init(|| std::env::var(TEST_REJECTED_HOSTNAME).ok());
    name.as_deref() == Some(hostname)
}

/// A route whose path regex RE2 rejects (an unclosed group).
fn unacceptable_route() -> Route {
    let matcher = envoy_types::pb::envoy::config::route::v3::RouteMatch {
        path_specifier: Some(PathSpecifier::SafeRegex(regex("/(unclosed"))),
        ..Default::default()
    };
    Route {
        name: "sluice-test-rejected".to_owned(),
        r#match: Some(matcher),
        action: Some(direct(404)),
        ..Default::default()
    }
}

/// One route entry of the virtual host `vhost` (a hostname, `*.suffix` or `*`).
/// `listener_port` is the Gateway's port, the redirect port when a redirect sets
/// neither port nor scheme.
pub fn route(ir: &RouteIr, listener_port: u16, vhost: &str) -> Route {
    let action = match &ir.action {
        Action::Forward { backends, rewrite } => forward(ir, backends, rewrite.as_ref()),
        Action::Redirect(r) => {
            route::Action::Redirect(redirect(r, &ir.matcher.path, listener_port, vhost))
        }
        Action::Direct(status) => direct(*status),
    };
    Route {
        name: ir.name.clone(),
        r#match: Some(route_match(&ir.matcher)),
        request_headers_to_add: headers_to_add(&ir.request_headers),
        request_headers_to_remove: ir.request_headers.remove.clone(),
        response_headers_to_add: headers_to_add(&ir.response_headers),
        response_headers_to_remove: ir.response_headers.remove.clone(),
        action: Some(action),
        ..Default::default()
    }
}

fn route_match(m: &RouteMatch) -> envoy_types::pb::envoy::config::route::v3::RouteMatch {
    let path = match &m.path {
        PathMatch::Exact(p) => PathSpecifier::Path(p.clone()),
        PathMatch::Prefix(p) => match p.trim_end_matches('/') {
            // Segment-wise and ignoring a trailing slash, as the Gateway API asks.
            "" => PathSpecifier::Prefix("/".to_owned()),
            trimmed => PathSpecifier::PathSeparatedPrefix(trimmed.to_owned()),
        },
        PathMatch::Regex(r) => PathSpecifier::SafeRegex(regex(r)),
    };
    let mut headers: Vec<HeaderMatcher> = m.headers.iter().map(header_matcher).collect();
    if let Some(method) = &m.method {
        headers.push(header_matcher(&ValueMatch {
            name: ":method".to_owned(),
            value: method.clone(),
            regex: false,
        }));
    }
    let query_parameters = m
        .query
        .iter()
        .map(|q| QueryParameterMatcher {
            name: q.name.clone(),
            query_parameter_match_specifier: Some(QueryParameterMatchSpecifier::StringMatch(
                string_matcher(q),
            )),
        })
        .collect();
    envoy_types::pb::envoy::config::route::v3::RouteMatch {
        path_specifier: Some(path),
        headers,
        query_parameters,
        ..Default::default()
    }
}

fn header_matcher(v: &ValueMatch) -> HeaderMatcher {
    HeaderMatcher {
        name: v.name.clone(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(string_matcher(v))),
        ..Default::default()
    }
}

fn string_matcher(v: &ValueMatch) -> StringMatcher {
    let pattern = if v.regex {
        MatchPattern::SafeRegex(regex(&v.value))
    } else {
        MatchPattern::Exact(v.value.clone())
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ..Default::default()
    }
}

fn regex(r: &str) -> RegexMatcher {
    RegexMatcher {
        regex: r.to_owned(),
        ..Default::default()
    }
}

fn direct(status: u16) -> route::Action {
    route::Action::DirectResponse(DirectResponseAction {
        status: u32::from(status),
        ..Default::default()
    })
}

fn forward(
    ir: &RouteIr,
    backends: &[WeightedBackend],
    rewrite: Option<&UrlRewrite>,
) -> route::Action {
    use route_action::ClusterSpecifier;
    // The pipeline's weight rule left only backends with a weight, at least one
    // of them valid (else the action is `Direct(500)`).
    let specifier = match backends {
        [only] if only.filters.is_empty() => ClusterSpecifier::Cluster(cluster_or_invalid(only)),
        _ => ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: backends.iter().map(cluster_weight).collect(),
            ..Default::default()
        }),
    };
    let mut action = RouteAction {
        cluster_specifier: Some(specifier),
        ..Default::default()
    };
    if backends.iter().any(|b| b.cluster.is_none()) {
        action.cluster_not_found_response_code =
            route_action::ClusterNotFoundResponseCode::InternalServerError as i32;
    }
    if let Some(rewrite) = rewrite {
        apply_url_rewrite(&mut action, rewrite, &ir.matcher.path);
    }
    action.request_mirror_policies = ir.mirrors.iter().filter_map(mirror_policy).collect();
    apply_timeouts(&mut action, &ir.timeouts);
    route::Action::Route(action)
}

fn cluster_or_invalid(b: &WeightedBackend) -> String {
    b.cluster
        .clone()
        .unwrap_or_else(|| INVALID_BACKEND_CLUSTER.to_owned())
}

fn cluster_weight(b: &WeightedBackend) -> ClusterWeight {
    let mut entry = ClusterWeight {
        name: cluster_or_invalid(b),
        weight: Some(UInt32Value { value: b.weight }),
        ..Default::default()
    };
    for filter in &b.filters {
        match filter {
            Filter::RequestHeaders(h) => {
                entry.request_headers_to_add.extend(headers_to_add(h));
                entry
                    .request_headers_to_remove
                    .extend(h.remove.iter().cloned());
            }
            Filter::ResponseHeaders(h) => {
                entry.response_headers_to_add.extend(headers_to_add(h));
                entry
                    .response_headers_to_remove
                    .extend(h.remove.iter().cloned());
            }
            // The pipeline gives backends header modifiers only.
            _ => {}
        }
    }
    entry
}

fn apply_url_rewrite(action: &mut RouteAction, rewrite: &UrlRewrite, matched: &PathMatch) {
    if let Some(host) = &rewrite.hostname {
        action.host_rewrite_specifier = Some(
            route_action::HostRewriteSpecifier::HostRewriteLiteral(host.clone()),
        );
    }
    let path_rewrite = match &rewrite.path {
        None => None,
        Some(PathModifier::ReplaceFullPath(p)) => Some(rewrite::replace_full_path(p)),
        Some(PathModifier::ReplacePrefixMatch(p)) => rewrite::replace_prefix_match(matched, p),
    };
    match path_rewrite {
        None => {}
        Some(PathRewrite::Prefix(p)) => action.prefix_rewrite = p,
        Some(PathRewrite::Regex {
            pattern,
            substitution,
        }) => {
            action.regex_rewrite =
                Some(rewrite::regex_match_and_substitute(&pattern, &substitution));
        }
    }
}

/// Gateway API `request` is the whole exchange as the client sees it; Envoy's
/// route `timeout` runs from the end of the downstream request to the end of the
/// upstream response, across all tries: the closest match. `backendRequest`
/// bounds one request to a backend: Envoy's `retry_policy.per_try_timeout`, which
/// also covers the first (here the only: no `retry_on`, zero retries) try. With no
/// `request` timeout, the route timeout is `backendRequest` too, so Envoy's 15 s
/// default route timeout does not cut a longer backend timeout short. 0 disables.
fn apply_timeouts(action: &mut RouteAction, t: &Timeouts) {
    match (t.request_ms, t.backend_request_ms) {
        (None, None) => {}
        (None, Some(backend)) => action.timeout = Some(duration_ms(backend)),
        (Some(request), backend) => {
            action.timeout = Some(duration_ms(request));
            if let Some(backend) = backend.filter(|b| *b > 0) {
                action.retry_policy = Some(RetryPolicy {
                    num_retries: Some(UInt32Value { value: 0 }),
                    per_try_timeout: Some(duration_ms(backend)),
                    ..Default::default()
                });
            }
        }
    }
}

fn mirror_policy(m: &MirrorIr) -> Option<route_action::RequestMirrorPolicy> {
    let cluster = m.cluster.clone()?;
    let runtime_fraction = m.fraction.map(|(num, den)| {
        const MILLION: u64 = 1_000_000;
        let numerator = match den {
            0 => 0,
            den => (u64::from(num) * MILLION / u64::from(den)).min(MILLION),
        };
        RuntimeFractionalPercent {
            default_value: Some(FractionalPercent {
                // <= 1e6.
                numerator: u32::try_from(numerator).unwrap_or(1_000_000),
                denominator: DenominatorType::Million as i32,
            }),
            runtime_key: String::new(),
        }
    });
    Some(route_action::RequestMirrorPolicy {
        cluster,
        runtime_fraction,
        ..Default::default()
    })
}

fn redirect(r: &Redirect, matched: &PathMatch, listener_port: u16, vhost: &str) -> RedirectAction {
    use redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier};
    let response_code = match r.status_code {
        301 => RedirectResponseCode::MovedPermanently,
        303 => RedirectResponseCode::SeeOther,
        307 => RedirectResponseCode::TemporaryRedirect,
        308 => RedirectResponseCode::PermanentRedirect,
        _ => RedirectResponseCode::Found,
    };
    let path = match &r.path {
        None => None,
        Some(PathModifier::ReplaceFullPath(p)) => {
            Some(PathRewriteSpecifier::PathRedirect(p.clone()))
        }
        Some(PathModifier::ReplacePrefixMatch(p)) => {
            rewrite::replace_prefix_match(matched, p).map(|rw| match rw {
                PathRewrite::Prefix(p) => PathRewriteSpecifier::PrefixRewrite(p),
                PathRewrite::Regex {
                    pattern,
                    substitution,
                } => PathRewriteSpecifier::RegexRewrite(rewrite::regex_match_and_substitute(
                    &pattern,
                    &substitution,
                )),
            })
        }
    };
    // The spec: no port in `Location` for http on 80 or https on 443. Envoy leaves
    // the port out only when it sets the host itself and `port_redirect` is unset;
    // the host is known when the filter names one or the virtual host is an exact
    // hostname (a request it matched has that host). Under a wildcard the request's
    // host is needed, so the port stays explicit (equivalent, if not as clean).
    // Sluice serves HTTP listeners only: without a scheme the redirect is http.
    let port = redirect_port(r, listener_port);
    let scheme = r.scheme.as_deref().unwrap_or("http");
    let default_port = matches!((scheme, port), ("http", 80) | ("https", 443));
    let known_host = (r.hostname.as_deref()).or((!vhost.contains('*')).then_some(vhost));
    let (host_redirect, port_redirect) = match known_host {
        Some(host) if default_port => (host.to_owned(), 0),
        _ => (r.hostname.clone().unwrap_or_default(), u32::from(port)),
    };
    RedirectAction {
        host_redirect,
        port_redirect,
        response_code: response_code as i32,
        scheme_rewrite_specifier: r.scheme.clone().map(SchemeRewriteSpecifier::SchemeRedirect),
        path_rewrite_specifier: path,
        ..Default::default()
    }
}

/// The Gateway API's redirect port: the filter's port; else the well-known port of
/// the filter's scheme; else the Gateway listener's port. Set explicitly unless it is
/// the scheme's default and the host is known (see [`redirect`]): without
/// `port_redirect` Envoy drops the port when it sets the host (and keeps the
/// request's when it does not).
fn redirect_port(r: &Redirect, listener_port: u16) -> u16 {
    let scheme_port = match r.scheme.as_deref() {
        Some("http") => Some(80),
        Some("https") => Some(443),
        _ => None,
    };
    r.port.or(scheme_port).unwrap_or(listener_port)
}

/// `set` overwrites, `add` appends.
fn headers_to_add(h: &HeaderModifier) -> Vec<HeaderValueOption> {
    let set = h
        .set
        .iter()
        .map(|kv| (kv, HeaderAppendAction::OverwriteIfExistsOrAdd));
    let add = h
        .add
        .iter()
        .map(|kv| (kv, HeaderAppendAction::AppendIfExistsOrAdd));
    set.chain(add)
        .map(|((key, value), action)| HeaderValueOption {
            header: Some(HeaderValue {
                key: key.clone(),
                value: value.clone(),
                ..Default::default()
            }),
            append_action: action as i32,
            ..Default::default()
        })
        .collect()
}
