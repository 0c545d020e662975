//! Oracle for the incremental translator: seeded random change streams go through
//! an incremental `Pipeline` and one long-lived `Translator`; at every step every
//! gateway's published resources (per type: name → version and body bytes) must
//! be byte-identical to those of a fresh `Translator` fed `evaluate(current
//! objects)` as one delta, and `apply` must return exactly the gateways whose set
//! changed. The translator is a hand-written cache; this is what keeps it honest.
//! Three streams: a small fixture world (few names, many collisions), the
//! generator's cluster under churn, and arbitrary output streams fed straight to
//! the translator (states the pipeline never produces).
//! Each run also counts the interesting states it reached (gateways appearing and
//! disappearing, clusters shared by gateways, endpoints changing, virtual hosts
//! emptied or removed, clusters without endpoints) and asserts it reached them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use prost::Message;
use prost::bytes::Bytes;
use sluice_pipeline::fixtures;
use sluice_pipeline::ir::{
    Action, BackendTlsIr, BackendTrust, ClientValidationIr, ClusterIr, Delta, EndpointsIr, Keyed,
    ListenerIr, RouteIr, TlsChain, VirtualHostIr, WeightedBackend, XdsKey, XdsOutput,
};
use sluice_pipeline::model::{
    BackendRef, Change, FromNamespaces, HeaderModifier, Listener, Object, ObjectKey, ParentRef,
    PathMatch, RouteMatch, Timeouts,
};
use sluice_pipeline::{DEFAULT_CONTROLLER, Pipeline, PipelineConfig, evaluate};
use sluice_sinks::encode::EncodeConfig;
use sluice_sinks::state::{GatewayResources, ResourceType};
use sluice_sinks::translator::Translator;
use sluice_sources::generate::{self, ChangeType, Churn, Mix, Preset, Rng, Shape};

/// (gateway, resource type or "api", name) → (version, body).
type View = BTreeMap<(ObjectKey, &'static str, String), (String, Bytes)>;

/// Every published resource of a translator, flattened.
fn view(translator: &Translator) -> View {
    let mut out = View::new();
    for (gw, set) in translator.gateways() {
        assert!(!set.is_empty(), "{gw} is published with an empty set");
        out.extend(flatten(gw, set));
    }
    out
}

fn flatten(gw: &ObjectKey, set: &GatewayResources) -> View {
    let types = ResourceType::ALL.map(|ty| (type_label(ty), set.get(ty)));
    let maps = types.into_iter().chain([("api", &set.api_listeners)]);
    maps.flat_map(|(label, map)| {
        map.iter().map(move |(name, r)| {
            let value = (r.version.clone(), r.body.clone());
            ((gw.clone(), label, name.clone()), value)
        })
    })
    .collect()
}

fn type_label(ty: ResourceType) -> &'static str {
    match ty {
        ResourceType::Cluster => "cluster",
        ResourceType::Endpoint => "endpoint",
        ResourceType::Listener => "listener",
        ResourceType::Route => "route",
        ResourceType::Secret => "secret",
    }
}

/// The keys on which two views differ (missing on one side, or other bytes).
fn differences(a: &View, b: &View) -> Vec<String> {
    let keys: BTreeSet<_> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|(gw, ty, name)| {
            let side = |v: &View| v.get(&(gw.clone(), *ty, name.clone())).map(|r| r.0.clone());
            format!(
                "{gw} {ty} {name}: incremental {:?}, fresh {:?}",
                side(a),
                side(b)
            )
        })
        .collect()
}

/// The resources of one gateway in a view.
fn gateway_part(view: &View, gw: &ObjectKey) -> View {
    view.iter()
        .filter(|((g, _, _), _)| g == gw)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn gateways_of(view: &View) -> BTreeSet<ObjectKey> {
    view.keys().map(|(gw, _, _)| gw.clone()).collect()
}

/// What a run reached, counted in steps.
#[derive(Debug, Default)]
struct Reached {
    steps: usize,
    published: usize,
    appeared: usize,
    disappeared: usize,
    shared_cluster: usize,
    endpoints_changed: usize,
    /// A virtual host lost its last route (it stays, for its listener's hostname).
    vhost_emptied: usize,
    /// A virtual host left a route table that still has others.
    vhost_removed: usize,
    empty_assignment: usize,
    api_listeners: usize,
}

impl Reached {
    fn record(&mut self, before: &View, after: &View, published: bool) {
        let (old, new) = (gateways_of(before), gateways_of(after));
        self.steps += 1;
        self.published += usize::from(published);
        self.appeared += usize::from(new.difference(&old).next().is_some());
        self.disappeared += usize::from(old.difference(&new).next().is_some());
        self.shared_cluster += usize::from(has_shared_cluster(after));
        let endpoints = changed_entries(before, after, "endpoint").next().is_some();
        self.endpoints_changed += usize::from(endpoints);
        let tables: Vec<_> = changed_entries(before, after, "route")
            .map(|(old, new)| (vhost_routes(old), vhost_routes(new)))
            .collect();
        let emptied = tables.iter().any(|(old, new)| {
            new.iter()
                .any(|(host, n)| *n == 0 && old.get(host).is_some_and(|o| *o > 0))
        });
        self.vhost_emptied += usize::from(emptied);
        let removed = tables
            .iter()
            .any(|(old, new)| !new.is_empty() && old.keys().any(|host| !new.contains_key(host)));
        self.vhost_removed += usize::from(removed);
        let empty_cla = entries(after, "endpoint").any(assignment_is_empty);
        self.empty_assignment += usize::from(empty_cla);
        self.api_listeners += usize::from(entries(after, "api").next().is_some());
    }
}

fn entries<'a>(view: &'a View, label: &'a str) -> impl Iterator<Item = &'a Bytes> {
    view.iter()
        .filter(move |((_, ty, _), _)| *ty == label)
        .map(|(_, (_, body))| body)
}

/// Bodies (before, after) of entries of `label` present on both sides with other bytes.
fn changed_entries<'a>(
    before: &'a View,
    after: &'a View,
    label: &'a str,
) -> impl Iterator<Item = (&'a Bytes, &'a Bytes)> {
    after
        .iter()
        .filter(move |((_, ty, _), _)| *ty == label)
        .filter_map(|(k, (version, body))| {
            let (old_version, old_body) = before.get(k)?;
            (old_version != version).then_some((old_body, body))
        })
}

fn has_shared_cluster(view: &View) -> bool {
    let mut holders: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, ty, name) in view.keys() {
        if *ty == "cluster" {
            *holders.entry(name.as_str()).or_default() += 1;
        }
    }
    holders.values().any(|n| *n > 1)
}

/// Virtual host name → how many routes it has, in a RouteConfiguration.
fn vhost_routes(route: &Bytes) -> BTreeMap<String, usize> {
    let decoded = RouteConfiguration::decode(route.as_ref()).expect("a RouteConfiguration");
    let vhosts = decoded.virtual_hosts.into_iter();
    vhosts.map(|v| (v.name, v.routes.len())).collect()
}

fn assignment_is_empty(cla: &Bytes) -> bool {
    let decoded = ClusterLoadAssignment::decode(cla.as_ref()).expect("a ClusterLoadAssignment");
    decoded.endpoints.iter().all(|l| l.lb_endpoints.is_empty())
}

/// An incremental pipeline and translator, checked against fresh ones at each step.
struct Oracle {
    name: String,
    pipeline: Pipeline,
    translator: Translator,
    /// The pipeline's outputs so far, accumulated from its deltas.
    outputs: BTreeSet<XdsOutput>,
    previous: View,
    reached: Reached,
}

impl Oracle {
    fn new(name: String) -> Self {
        Self {
            name,
            pipeline: Pipeline::new(PipelineConfig::default()).expect("pipeline starts"),
            translator: Translator::new(EncodeConfig::default()),
            outputs: BTreeSet::new(),
            previous: View::new(),
            reached: Reached::default(),
        }
    }

    /// Applies one logical time's changes and checks the translator against a
    /// fresh one fed the from-scratch evaluation.
    fn step(&mut self, changes: Vec<Change>) {
        let delta = self.pipeline.apply(changes).expect("pipeline applies");
        let published = self.translator.apply(&delta).expect("translator applies");
        let at = format!("{} at time {}", self.name, delta.time);
        let fresh = self.fresh_outputs(&delta, &at);
        let now = view(&self.translator);
        let diff = differences(&now, &view(&translate_once(fresh, delta.time)));
        assert!(
            diff.is_empty(),
            "{at}: translator differs from a fresh one:\n{}",
            diff.join("\n")
        );
        check_published(&self.previous, &now, &published, delta.time, &at);
        self.reached
            .record(&self.previous, &now, !published.is_empty());
        self.previous = now;
    }

    /// The from-scratch outputs of the current objects; first checks that the
    /// incremental pipeline agrees, so that a failure here names the pipeline.
    fn fresh_outputs(&mut self, delta: &Delta, at: &str) -> Vec<XdsOutput> {
        for (output, diff) in &delta.xds {
            if *diff > 0 {
                self.outputs.insert(output.clone());
            } else {
                self.outputs.remove(output);
            }
        }
        let objects = self.pipeline.objects().cloned();
        let fresh = evaluate(objects, DEFAULT_CONTROLLER).xds;
        let incremental: Vec<XdsOutput> = self.outputs.iter().cloned().collect();
        assert!(
            incremental == fresh,
            "{at}: the pipeline (not the translator) diverged"
        );
        fresh
    }
}

/// The one place a test builds a `Delta`.
fn delta(time: u64, updates: Vec<(XdsOutput, isize)>) -> Delta {
    Delta {
        time,
        xds: updates,
        status: vec![],
    }
}

/// A fresh translator fed `outputs` as one delta.
fn translate_once(outputs: Vec<XdsOutput>, time: u64) -> Translator {
    let updates = outputs.into_iter().map(|o| (o, 1)).collect();
    let mut translator = Translator::new(EncodeConfig::default());
    translator
        .apply(&delta(time, updates))
        .expect("fresh translator applies");
    translator
}

/// `apply` returned exactly the gateways whose resources changed: their new set
/// (empty for a gateway that lost everything), stamped with the delta's time.
fn check_published(
    before: &View,
    after: &View,
    published: &BTreeMap<ObjectKey, Arc<GatewayResources>>,
    time: u64,
    at: &str,
) {
    let touched: BTreeSet<ObjectKey> = gateways_of(before)
        .union(&gateways_of(after))
        .cloned()
        .collect();
    let changed: BTreeSet<ObjectKey> = touched
        .into_iter()
        .filter(|gw| gateway_part(before, gw) != gateway_part(after, gw))
        .collect();
    let returned: BTreeSet<ObjectKey> = published.keys().cloned().collect();
    assert_eq!(
        returned, changed,
        "{at}: apply returned other gateways than those that changed"
    );
    for (gw, set) in published {
        assert_eq!(set.time, time, "{at}: {gw} published with another time");
        assert_eq!(
            flatten(gw, set),
            gateway_part(after, gw),
            "{at}: {gw} returned set"
        );
    }
}

// ---- A small world built from fixtures: few names, many collisions. ----

const INFRA: &str = "infra";
const APP: &str = "app";
const GATEWAYS: usize = 3;
const ROUTES: usize = 6;
const SERVICES: usize = 4;
const HOSTNAMES: [&str; 4] = [
    "a.example.com",
    "b.example.com",
    "*.example.com",
    "c.other.org",
];
const ADDRESSES: [&str; 3] = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];

fn listener(name: &str, port: u16, hostname: Option<&str>, all: bool) -> Listener {
    let mut l = fixtures::http_listener(name, port);
    l.hostname = hostname.map(str::to_owned);
    l.allowed_namespaces = if all {
        FromNamespaces::All
    } else {
        FromNamespaces::Same
    };
    l
}

/// Gateway `g{i}` in one of a few shapes (ports 80 and 8080, with and without
/// hostnames, one admitting no route), or deleted.
fn gateway_change(rng: &mut Rng, i: usize) -> Change {
    let listeners = match rng.below(6) {
        0 => vec![listener("web", 80, None, true)],
        1 => vec![
            listener("web", 80, None, true),
            listener("alt", 8080, Some("*.example.com"), true),
        ],
        2 => vec![listener("alt", 8080, Some("a.example.com"), true)],
        3 => vec![
            listener("web", 80, Some("b.example.com"), false),
            listener("alt", 8080, None, true),
        ],
        4 => vec![
            listener("web", 80, Some("*.example.com"), true),
            listener("alt", 8080, None, true),
        ],
        _ => vec![],
    };
    let gateway = Object::Gateway(fixtures::gateway(
        INFRA,
        &format!("g{i}"),
        listeners.clone(),
    ));
    if listeners.is_empty() {
        Change::Delete(gateway.id())
    } else {
        Change::Apply(gateway)
    }
}

/// Route `r{i}` attached to one or two gateways (maybe to one listener), with a
/// few hostnames and rules sending to services that may not exist, or deleted.
fn route_change(rng: &mut Rng, i: usize) -> Change {
    let mut gateways: Vec<usize> = (0..rng.between(1, 2))
        .map(|_| rng.below(GATEWAYS))
        .collect();
    gateways.sort_unstable();
    gateways.dedup();
    let parents = gateways.iter().map(|g| parent_ref(rng, *g)).collect();
    let mut hosts: Vec<&str> = (0..rng.below(3))
        .map(|_| HOSTNAMES[rng.below(HOSTNAMES.len())])
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    let rules = (0..rng.between(1, 2))
        .map(|k| fixtures::prefix_rule(&format!("/r{i}/{k}"), backend_refs(rng)))
        .collect();
    let name = format!("r{i}");
    let route = Object::HttpRoute(fixtures::route(APP, &name, parents, &hosts, rules));
    if rng.percent(20) {
        Change::Delete(route.id())
    } else {
        Change::Apply(route)
    }
}

/// A reference to gateway `g{g}`, maybe to one of its listeners.
fn parent_ref(rng: &mut Rng, g: usize) -> ParentRef {
    let mut p = fixtures::parent(&format!("g{g}"));
    p.namespace = Some(INFRA.into());
    p.section_name = [None, None, Some("web"), Some("alt")][rng.below(4)].map(str::to_owned);
    p
}

/// One or two backends, on a port the Service may not have, weights 0 to 2.
fn backend_refs(rng: &mut Rng) -> Vec<BackendRef> {
    (0..rng.between(1, 2))
        .map(|_| {
            let port = if rng.percent(80) { 80 } else { 81 };
            let mut b = fixtures::backend(&format!("s{}", rng.below(SERVICES)), port);
            b.weight = rng.below(3) as u32;
            b
        })
        .collect()
}

/// Service `s{i}` with port 80 or ports 80 and 81, or deleted.
fn service_change(rng: &mut Rng, i: usize) -> Change {
    let ports: &[u16] = if rng.percent(50) { &[80] } else { &[80, 81] };
    let service = fixtures::service(APP, &format!("s{i}"), ports);
    if rng.percent(20) {
        Change::Delete(service.id())
    } else {
        Change::Apply(service)
    }
}

/// The slice of service `s{i}`'s port 80 or 81 with some of three addresses (maybe
/// none), or deleted.
fn slice_change(rng: &mut Rng, i: usize) -> Change {
    let port = if rng.percent(70) { 80 } else { 81 };
    let addrs: Vec<&str> = ADDRESSES
        .iter()
        .copied()
        .filter(|_| rng.percent(50))
        .collect();
    let name = format!("s{i}-p{port}");
    let slice = fixtures::slice(APP, &name, &format!("s{i}"), port, 8080, &addrs);
    if rng.percent(15) {
        Change::Delete(slice.id())
    } else {
        Change::Apply(slice)
    }
}

fn world_change(rng: &mut Rng) -> Change {
    match rng.below(100) {
        // The class goes rarely, and comes back soon: without it nothing is served.
        0..=2 => {
            let class = fixtures::class();
            if rng.percent(25) {
                Change::Delete(class.id())
            } else {
                Change::Apply(class)
            }
        }
        3..=17 => {
            let i = rng.below(GATEWAYS);
            gateway_change(rng, i)
        }
        18..=52 => {
            let i = rng.below(ROUTES);
            route_change(rng, i)
        }
        53..=67 => {
            let i = rng.below(SERVICES);
            service_change(rng, i)
        }
        _ => {
            let i = rng.below(SERVICES);
            slice_change(rng, i)
        }
    }
}

fn run_fixture_world(seed: u64, steps: usize) -> Reached {
    let mut rng = Rng::new(seed);
    let mut oracle = Oracle::new(format!("fixture world, seed {seed}"));
    let namespaces = [
        fixtures::namespace(INFRA, &[]),
        fixtures::namespace(APP, &[]),
    ];
    oracle.step(
        namespaces
            .into_iter()
            .chain([fixtures::class()])
            .map(Change::Apply)
            .collect(),
    );
    for _ in 0..steps {
        let changes = (0..rng.between(2, 4))
            .map(|_| world_change(&mut rng))
            .collect();
        oracle.step(changes);
    }
    oracle.reached
}

#[test]
fn fixture_world_matches_a_fresh_translator_at_every_step() {
    let mut total = Reached::default();
    for seed in 0..4 {
        let r = run_fixture_world(seed, 100);
        eprintln!("seed {seed}: {r:?}");
        add(&mut total, &r);
    }
    let all = [
        "gateway appeared",
        "gateway disappeared",
        "cluster shared by gateways",
        "endpoints changed",
        "virtual host emptied",
        "virtual host removed",
        "cluster without endpoints",
        "API listeners served",
    ];
    assert_reached(&total, 10, &all);
}

// ---- The generator's cluster under churn, plus gateways going and coming. ----

fn small_shape() -> Shape {
    Shape {
        namespaces: 4,
        gateways: 3,
        listeners_per_gateway: 2,
        hostnames_per_listener: 3,
        routes: 40,
        services: 12,
        endpoints_per_service: 3,
        ..Preset::Small.shape()
    }
}

fn churn_mix() -> Mix {
    ChangeType::ALL.into_iter().map(|t| (t, 2)).collect()
}

/// Deletes one generated gateway, or puts one back as it was generated.
fn gateway_event(rng: &mut Rng, gateways: &[Object]) -> Option<Change> {
    let gateway = rng.pick(gateways)?.clone();
    Some(if rng.percent(50) {
        Change::Delete(gateway.id())
    } else {
        Change::Apply(gateway)
    })
}

fn run_generated(seed: u64, cycles: usize) -> Reached {
    let shape = small_shape();
    let objects = generate::generate(&shape, seed);
    let gateways: Vec<Object> = objects
        .iter()
        .filter(|o| matches!(o, Object::Gateway(_)))
        .cloned()
        .collect();
    let mut churn = Churn::new(&shape, &objects, seed);
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut oracle = Oracle::new(format!("generated cluster, seed {seed}"));
    oracle.step(objects.into_iter().map(Change::Apply).collect());
    for _ in 0..cycles {
        let mut changes: Vec<Change> = churn
            .cycle(&churn_mix())
            .into_iter()
            .map(|l| l.change)
            .collect();
        while !changes.is_empty() {
            let n = rng.between(1, 4).min(changes.len());
            let mut batch: Vec<Change> = changes.drain(..n).collect();
            if rng.percent(15) {
                batch.extend(gateway_event(&mut rng, &gateways));
            }
            oracle.step(batch);
        }
    }
    oracle.reached
}

#[test]
fn generated_cluster_under_churn_matches_a_fresh_translator_at_every_step() {
    let mut total = Reached::default();
    for seed in [7, 8] {
        let r = run_generated(seed, 4);
        eprintln!("seed {seed}: {r:?}");
        add(&mut total, &r);
    }
    // No route here sends to a Service without endpoints, and a route's hostnames
    // are its listener's own pool: no held cluster lacks endpoints and no virtual
    // host empties here (the fixture world covers both).
    let required = [
        "gateway appeared",
        "gateway disappeared",
        "cluster shared by gateways",
        "endpoints changed",
        "virtual host removed",
        "API listeners served",
    ];
    assert_reached(&total, 3, &required);
}

fn add(total: &mut Reached, r: &Reached) {
    total.steps += r.steps;
    total.published += r.published;
    total.appeared += r.appeared;
    total.disappeared += r.disappeared;
    total.shared_cluster += r.shared_cluster;
    total.endpoints_changed += r.endpoints_changed;
    total.vhost_emptied += r.vhost_emptied;
    total.vhost_removed += r.vhost_removed;
    total.empty_assignment += r.empty_assignment;
    total.api_listeners += r.api_listeners;
}

/// Every interesting state of `required` was reached in at least `min` steps, and
/// at least 40% of the steps published something.
fn assert_reached(r: &Reached, min: usize, required: &[&str]) {
    eprintln!("total: {r:?}");
    let counts = [
        ("gateway appeared", r.appeared),
        ("gateway disappeared", r.disappeared),
        ("cluster shared by gateways", r.shared_cluster),
        ("endpoints changed", r.endpoints_changed),
        ("virtual host emptied", r.vhost_emptied),
        ("virtual host removed", r.vhost_removed),
        ("cluster without endpoints", r.empty_assignment),
        ("API listeners served", r.api_listeners),
    ];
    for (what, n) in counts
        .into_iter()
        .filter(|(what, _)| required.contains(what))
    {
        assert!(n >= min, "only {n} steps reached: {what} ({r:?})");
    }
    assert!(
        r.published * 5 >= r.steps * 2,
        "too few steps changed anything: {r:?}"
    );
}

// ---- Arbitrary output streams, straight into the translator (no pipeline). ----
// They reach states the pipeline never produces (a virtual host without its
// listener, a membership without its Cluster, a Cluster without endpoints), so the
// translator's bookkeeping is checked beyond the pipeline's invariants.

const CLUSTERS: usize = 4;

fn route_ir(i: usize, clusters: &[usize]) -> RouteIr {
    let backends = clusters.iter().map(|c| WeightedBackend {
        cluster: Some(format!("c{c}")),
        weight: 1,
        filters: vec![],
    });
    RouteIr {
        name: format!("app/r{i}"),
        matcher: RouteMatch {
            path: PathMatch::Prefix(format!("/r{i}")),
            ..Default::default()
        },
        action: Action::Forward {
            backends: backends.collect(),
            rewrite: None,
        },
        request_headers: HeaderModifier::default(),
        response_headers: HeaderModifier::default(),
        mirrors: vec![],
        timeouts: Timeouts::default(),
    }
}

/// One random output of a small universe: few gateways, ports, hostnames and
/// clusters, so that keys collide often.
fn random_output(rng: &mut Rng) -> XdsOutput {
    let gateway = ObjectKey::new(INFRA, format!("g{}", rng.below(2)));
    let port = [80, 8080][rng.below(2)];
    let cluster = format!("c{}", rng.below(CLUSTERS));
    match rng.below(5) {
        0 => {
            // Sometimes HTTPS: TLS chains for some of the hostnames (and any SNI),
            // whose route tables are assembled per chain.
            let mut tls: Vec<TlsChain> = vec![];
            if rng.percent(40) {
                let mut hosts: Vec<Option<String>> = vec![None];
                hosts.extend(HOSTNAMES.iter().map(|h| Some((*h).to_owned())));
                for hostname in hosts {
                    if !rng.percent(50) {
                        continue;
                    }
                    let secrets = vec![format!("{INFRA}/cert")];
                    // Sometimes client validation, strict or lenient.
                    let client_validation = rng.percent(30).then(|| ClientValidationIr {
                        ca: format!("configmap:{INFRA}/ca"),
                        insecure_fallback: rng.percent(50),
                    });
                    tls.push(TlsChain {
                        hostname,
                        secrets,
                        client_validation,
                    });
                }
            }
            XdsOutput::Listener(ListenerIr { gateway, port, tls })
        }
        1 => {
            let routes = (0..rng.below(3))
                .map(|i| route_ir(i, &[rng.below(CLUSTERS)]))
                .collect();
            let hostname = HOSTNAMES[rng.below(HOSTNAMES.len())].to_owned();
            XdsOutput::VirtualHost(VirtualHostIr {
                gateway,
                port,
                hostname,
                routes,
            })
        }
        2 => XdsOutput::GatewayCluster { gateway, cluster },
        3 => XdsOutput::Cluster(ClusterIr {
            name: cluster.clone(),
            service: ObjectKey::new(APP, cluster),
            port: 80,
            app_protocol: rng.percent(30).then(|| "kubernetes.io/h2c".to_owned()),
            // Backend TLS of every kind (a refused one is a cluster without endpoints).
            tls: rng.percent(30).then(|| BackendTlsIr {
                policy: ObjectKey::new(APP, "policy"),
                hostname: "backend.example".into(),
                trust: match rng.below(3) {
                    0 => BackendTrust::CaBundle("CA\n".into()),
                    1 => BackendTrust::System,
                    _ => BackendTrust::Refused,
                },
                subject_alt_names: vec![],
            }),
        }),
        _ => {
            let addrs = ADDRESSES.iter().filter(|_| rng.percent(50));
            let endpoints = addrs.map(|a| ((*a).to_owned(), 8080)).collect();
            XdsOutput::Endpoints(EndpointsIr { cluster, endpoints })
        }
    }
}

/// One logical time: a few keys set to a random output or removed; returns the
/// consolidated updates (a key set to what it held already changes nothing).
fn random_updates(
    rng: &mut Rng,
    state: &mut BTreeMap<XdsKey, XdsOutput>,
) -> Vec<(XdsOutput, isize)> {
    let mut updates = vec![];
    for _ in 0..rng.between(1, 5) {
        let output = random_output(rng);
        let key = output.key();
        let new = (!rng.percent(35)).then_some(output);
        let old = match &new {
            Some(new) => state.insert(key, new.clone()),
            None => state.remove(&key),
        };
        if old == new {
            continue;
        }
        updates.extend(old.map(|o| (o, -1)));
        updates.extend(new.map(|o| (o, 1)));
    }
    consolidate(updates)
}

/// Sums the updates per record and drops those that cancel out.
fn consolidate(updates: Vec<(XdsOutput, isize)>) -> Vec<(XdsOutput, isize)> {
    let mut sums: BTreeMap<XdsOutput, isize> = BTreeMap::new();
    for (output, diff) in updates {
        *sums.entry(output).or_default() += diff;
    }
    sums.into_iter().filter(|(_, d)| *d != 0).collect()
}

fn run_outputs(seed: u64, steps: u64) -> Reached {
    let mut rng = Rng::new(seed);
    let mut state = BTreeMap::new();
    let mut translator = Translator::new(EncodeConfig::default());
    let (mut previous, mut reached) = (View::new(), Reached::default());
    for time in 0..steps {
        let at = format!("output stream, seed {seed} at time {time}");
        let updates = random_updates(&mut rng, &mut state);
        let published = translator.apply(&delta(time, updates)).expect("applies");
        let now = view(&translator);
        let fresh = translate_once(state.values().cloned().collect(), time);
        let diff = differences(&now, &view(&fresh));
        assert!(
            diff.is_empty(),
            "{at}: translator differs from a fresh one:\n{}",
            diff.join("\n")
        );
        check_published(&previous, &now, &published, time, &at);
        reached.record(&previous, &now, !published.is_empty());
        previous = now;
    }
    reached
}

#[test]
fn arbitrary_output_streams_match_a_fresh_translator_at_every_step() {
    let mut total = Reached::default();
    for seed in 0..6 {
        let r = run_outputs(seed, 300);
        eprintln!("seed {seed}: {r:?}");
        add(&mut total, &r);
    }
    let required = [
        "gateway appeared",
        "gateway disappeared",
        "cluster shared by gateways",
        "endpoints changed",
        "virtual host emptied",
        "virtual host removed",
        "cluster without endpoints",
        "API listeners served",
    ];
    assert_reached(&total, 10, &required);
}
