//! The synthetic cluster: namespaces, gateways, routes, services and their endpoint
//! slices, built from a [`Shape`] and a seed.
//!
//! Layout (deterministic names, so churn and reports can refer to them):
//! - `gateways` namespace holds every Gateway `gw-G`; listener `lJ` of gateway `G`
//!   listens on port 80 for `*.lJ.gwG.example.com`, and admits routes from all
//!   namespaces or only from namespaces labelled `sluice.dev/exposed=true` with
//!   `env` in `prod`/`staging`;
//! - route namespaces `ns-NNNN` carry those labels (a few are not exposed, or are
//!   `env=dev`), their own services `svc-N` with one endpoint slice each, and a
//!   ReferenceGrant admitting routes from the next namespace;
//! - route `route-N` sits in a namespace in contiguous blocks, attaches to one
//!   listener by `sectionName`, uses hostnames from that listener's pool, and sends
//!   to 1–3 services of its own namespace (some of the previous one's, across the
//!   grant).

use sluice_pipeline::model::*;

use super::Shape;
use super::records;
use super::rng::Rng;

pub const GATEWAY_NAMESPACE: &str = "gateways";
pub const EXPOSED_LABEL: &str = "sluice.dev/exposed";
pub const ENV_LABEL: &str = "env";
pub const TEAM_LABEL: &str = "team";
pub const SERVICE_PORT: u16 = 80;
pub const TARGET_PORT: u16 = 8080;

pub fn namespace_name(index: usize) -> String {
    format!("ns-{index:04}")
}

pub fn gateway_name(index: usize) -> String {
    format!("gw-{index}")
}

pub fn service_name(index: usize) -> String {
    format!("svc-{index}")
}

pub fn slice_name(service: &str) -> String {
    format!("{service}-slice")
}

/// The listener hostname routes under listener `listener` of gateway `gateway` use.
pub fn listener_hostname(gateway: usize, listener: usize) -> String {
    format!("*.l{listener}.gw{gateway}.example.com")
}

/// An IPv4 address from a counter: `10.0.0.0/8` for the cluster's endpoints.
pub fn address(base: u32, n: u64) -> String {
    let ip = base.wrapping_add(n as u32);
    format!(
        "{}.{}.{}.{}",
        ip >> 24,
        (ip >> 16) & 0xff,
        (ip >> 8) & 0xff,
        ip & 0xff
    )
}

pub const CLUSTER_ADDRESSES: u32 = 10 << 24;

/// The selector of listeners that admit only exposed namespaces.
pub fn exposed_selector() -> FromNamespaces {
    FromNamespaces::Selector(LabelSelector {
        requirements: vec![
            Requirement {
                key: ENV_LABEL.into(),
                op: SelectorOp::In,
                values: vec!["prod".into(), "staging".into()],
            },
            Requirement {
                key: EXPOSED_LABEL.into(),
                op: SelectorOp::In,
                values: vec!["true".into()],
            },
        ],
    })
}

/// Services of namespace `ns`: a contiguous block of the global service indexes.
pub fn services_of(shape: &Shape, ns: usize) -> std::ops::Range<usize> {
    let n = shape.namespaces.max(1);
    (ns * shape.services / n)..((ns + 1) * shape.services / n)
}

/// The namespace a route index lives in.
pub fn namespace_of_route(shape: &Shape, route: usize) -> usize {
    route * shape.namespaces.max(1) / shape.routes.max(1)
}

/// Every object of the cluster, in a stable order.
pub fn generate(shape: &Shape, seed: u64) -> Vec<Object> {
    let mut rng = Rng::new(seed);
    let mut objects = vec![records::class()];
    objects.extend(namespaces(shape, &mut rng.fork(1)));
    objects.extend(gateways(shape, &mut rng.fork(2)));
    objects.extend(services(shape, &mut rng.fork(3)));
    objects.extend(grants(shape));
    let mut routes_rng = rng.fork(4);
    for i in 0..shape.routes {
        let ns = namespace_of_route(shape, i);
        let route = route(shape, &mut routes_rng, ns, &format!("route-{i}"));
        objects.push(Object::HttpRoute(route));
    }
    objects
}

fn namespaces(shape: &Shape, rng: &mut Rng) -> Vec<Object> {
    let mut out = vec![records::namespace(GATEWAY_NAMESPACE, &[("role", "infra")])];
    for i in 0..shape.namespaces {
        let exposed = if rng.percent(95) { "true" } else { "false" };
        let env = match rng.below(10) {
            0 => "dev",
            1..=3 => "staging",
            _ => "prod",
        };
        let team = format!("team-{}", i % 8);
        let labels = [
            (EXPOSED_LABEL, exposed),
            (ENV_LABEL, env),
            (TEAM_LABEL, &team),
        ];
        out.push(records::namespace(&namespace_name(i), &labels));
    }
    out
}

fn gateways(shape: &Shape, rng: &mut Rng) -> Vec<Object> {
    (0..shape.gateways)
        .map(|g| {
            let listeners = (0..shape.listeners_per_gateway)
                .map(|j| {
                    let allowed = if rng.percent(shape.selector_percent) {
                        exposed_selector()
                    } else {
                        FromNamespaces::All
                    };
                    records::listener(format!("l{j}"), listener_hostname(g, j), allowed)
                })
                .collect();
            records::gateway(&gateway_name(g), listeners)
        })
        .collect()
}

fn services(shape: &Shape, rng: &mut Rng) -> Vec<Object> {
    let mut out = Vec::with_capacity(shape.services * 2);
    let mut next_address = 0u64;
    for ns in 0..shape.namespaces {
        let namespace = namespace_name(ns);
        for s in services_of(shape, ns) {
            let name = service_name(s);
            out.push(records::service(&namespace, &name));
            // Most services have the shape's endpoint count; a few are scaled down.
            let count = if rng.percent(90) {
                shape.endpoints_per_service
            } else {
                rng.between(1, shape.endpoints_per_service.max(1))
            };
            let addrs: Vec<String> = (0..count)
                .map(|k| address(CLUSTER_ADDRESSES, next_address + k as u64))
                .collect();
            next_address += count as u64;
            out.push(records::slice(&namespace, &slice_name(&name), &name, addrs));
        }
    }
    out
}

/// Namespace `k` lets routes of namespace `k + 1` use its Services.
fn grants(shape: &Shape) -> Vec<Object> {
    if shape.namespaces < 2 {
        return vec![];
    }
    (0..shape.namespaces)
        .map(|k| {
            let from = namespace_name((k + 1) % shape.namespaces);
            records::grant(&namespace_name(k), &format!("from-{from}"), &from)
        })
        .collect()
}

/// One route in namespace `ns`; also used by churn for new and updated routes.
pub fn route(shape: &Shape, rng: &mut Rng, ns: usize, name: &str) -> HttpRoute {
    let g = rng.below(shape.gateways.max(1));
    let j = rng.below(shape.listeners_per_gateway.max(1));
    let parent = records::parent(gateway_name(g), format!("l{j}"));
    let pool = shape.hostnames_per_listener.max(1);
    let mut hosts = vec![format!("h{}.l{j}.gw{g}.example.com", rng.below(pool))];
    if rng.percent(20) {
        hosts.push(format!("h{}.l{j}.gw{g}.example.com", rng.below(pool)));
    }
    hosts.sort();
    hosts.dedup();
    let rules = (0..rng.between(1, shape.max_rules.max(1)))
        .map(|r| rule(shape, rng, ns, &format!("/{name}/{r}")))
        .collect();
    records::route(&namespace_name(ns), name, parent, hosts, rules)
}

fn rule(shape: &Shape, rng: &mut Rng, ns: usize, prefix: &str) -> Rule {
    let matches: Vec<RouteMatch> = (0..rng.between(1, shape.max_matches.max(1)))
        .map(|m| route_match(rng, &format!("{prefix}/{m}")))
        .collect();
    let backends = (0..rng.between(1, shape.max_backends.max(1)))
        .map(|_| backend(shape, rng, ns))
        .collect();
    let mut filters = vec![];
    if rng.percent(shape.filter_percent) {
        filters.push(filter(rng, prefix));
    }
    valid_rewrites(&matches, &mut filters, prefix);
    Rule {
        matches,
        filters,
        backends,
        ..Default::default()
    }
}

fn route_match(rng: &mut Rng, path: &str) -> RouteMatch {
    let mut m = RouteMatch {
        path: if rng.percent(20) {
            PathMatch::Exact(path.into())
        } else {
            PathMatch::Prefix(path.into())
        },
        ..Default::default()
    };
    if rng.percent(20) {
        m.headers.push(ValueMatch {
            name: "x-version".into(),
            value: format!("v{}", rng.below(3)),
            regex: false,
        });
    }
    if rng.percent(10) {
        m.method = Some("GET".into());
    }
    m
}

fn filter(rng: &mut Rng, prefix: &str) -> Filter {
    match rng.below(3) {
        0 => Filter::RequestHeaders(HeaderModifier {
            set: vec![("x-route".into(), prefix.into())],
            ..Default::default()
        }),
        1 => Filter::ResponseHeaders(HeaderModifier {
            add: vec![("x-served-by".into(), "sluice".into())],
            ..Default::default()
        }),
        _ => Filter::UrlRewrite(UrlRewrite {
            hostname: None,
            path: Some(PathModifier::ReplacePrefixMatch("/".into())),
        }),
    }
}

/// The CRD admits `ReplacePrefixMatch` only in a rule with exactly one match, a
/// `PathPrefix` one (a CEL rule): in any other rule the rewrite replaces the full path
/// instead. (No random draw, so the clusters generated otherwise stay the same.)
fn valid_rewrites(matches: &[RouteMatch], filters: &mut [Filter], prefix: &str) {
    let one_prefix = matches!(matches, [m] if matches!(m.path, PathMatch::Prefix(_)));
    for f in filters.iter_mut() {
        if let Filter::UrlRewrite(UrlRewrite { path: Some(p), .. }) = f
            && matches!(p, PathModifier::ReplacePrefixMatch(_))
            && !one_prefix
        {
            *p = PathModifier::ReplaceFullPath(prefix.into());
        }
    }
}

/// A backend in the route's namespace, or (by the shape's percentage) in the
/// previous namespace, which grants access to it.
fn backend(shape: &Shape, rng: &mut Rng, ns: usize) -> BackendRef {
    let cross = shape.namespaces > 1 && rng.percent(shape.cross_namespace_percent);
    let target = if cross {
        (ns + shape.namespaces - 1) % shape.namespaces
    } else {
        ns
    };
    let services = services_of(shape, target);
    let s = services.start + rng.below(services.len());
    let namespace = cross.then(|| namespace_name(target));
    records::backend(service_name(s), namespace, rng.between(1, 100) as u32)
}
