//! Oracle test: seeded random sequences of object changes (creates, updates and
//! deletes in random order, including references to objects that do not exist yet)
//! applied incrementally must give, at every step, exactly the outputs of a fresh
//! dataflow fed the current objects. This is what makes incremental translation safe.

use std::collections::BTreeMap;

use sluice_pipeline::fixtures::*;
use sluice_pipeline::ir::{Keyed, StatusOutput, XdsOutput};
use sluice_pipeline::model::*;
use sluice_pipeline::{DEFAULT_CONTROLLER, Pipeline, PipelineConfig, evaluate};

/// SplitMix64: small, seeded, good enough to pick test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const NAMESPACES: [&str; 3] = ["a", "b", "c"];
const HOSTS: [&str; 4] = [
    "foo.example.com",
    "*.example.com",
    "bar.net",
    "x.foo.example.com",
];

fn random_selector(rng: &mut Rng) -> FromNamespaces {
    let req = |key: &str, op, values: &[&str]| Requirement {
        key: key.into(),
        op,
        values: values.iter().map(|v| v.to_string()).collect(),
    };
    let options = [
        vec![req("env", SelectorOp::In, &["prod"])],
        vec![
            req("team", SelectorOp::Exists, &[]),
            req("env", SelectorOp::NotIn, &["dev"]),
        ],
        vec![],
        vec![req("team", SelectorOp::DoesNotExist, &[])],
        vec![
            req("env", SelectorOp::In, &["prod", "dev"]),
            req("team", SelectorOp::In, &["x"]),
        ],
    ];
    FromNamespaces::Selector(LabelSelector {
        requirements: rng.pick(&options).clone(),
    })
}

fn random_listener(rng: &mut Rng, name: &str) -> Listener {
    let mut l = http_listener(name, *rng.pick(&[80, 8080]));
    l.hostname = rng.chance(50).then(|| rng.pick(&HOSTS).to_string());
    l.allowed_namespaces = match rng.below(3) {
        0 => FromNamespaces::Same,
        1 => FromNamespaces::All,
        _ => random_selector(rng),
    };
    if rng.chance(10) {
        l.protocol = Protocol::Tcp;
    }
    if rng.chance(10) {
        l.allowed_kinds = vec![GroupKind {
            group: GATEWAY_GROUP.into(),
            kind: "TLSRoute".into(),
        }];
    }
    l
}

fn random_gateway(rng: &mut Rng, name: &str) -> Object {
    let listeners = (0..1 + rng.below(2))
        .map(|i| random_listener(rng, &format!("l{i}")))
        .collect();
    let mut g = gateway("a", name, listeners);
    if rng.chance(15) {
        g.class_name = "someone-else".into();
    }
    Object::Gateway(g)
}

fn random_backend(rng: &mut Rng) -> BackendRef {
    let mut b = backend(
        rng.clone_pick(&["s1", "s2", "missing"]),
        *rng.pick(&[80, 8080]),
    );
    if rng.chance(30) {
        b.namespace = Some(rng.pick(&NAMESPACES).to_string());
    }
    if rng.chance(10) {
        b.kind = "Unknown".into();
    }
    b.weight = rng.below(3) as u32;
    b
}

fn random_match(rng: &mut Rng) -> RouteMatch {
    let path = match rng.below(3) {
        0 => PathMatch::Exact(rng.pick(&["/", "/a", "/a/b"]).to_string()),
        1 => PathMatch::Prefix(rng.pick(&["/", "/a", "/a/b"]).to_string()),
        _ => PathMatch::Regex("/r.*".into()),
    };
    let mut m = RouteMatch {
        path,
        ..Default::default()
    };
    if rng.chance(30) {
        m.method = Some("GET".into());
    }
    if rng.chance(30) {
        m.headers.push(ValueMatch {
            name: "h".into(),
            value: "v".into(),
            regex: false,
        });
    }
    m
}

fn random_filters(rng: &mut Rng) -> Vec<Filter> {
    match rng.below(8) {
        0 => vec![Filter::Mirror(Mirror {
            backend: random_backend(rng),
            fraction: None,
        })],
        1 => vec![Filter::Unsupported("ExtensionRef".into())],
        2 => vec![Filter::RequestHeaders(HeaderModifier {
            set: vec![("x".into(), "1".into())],
            ..Default::default()
        })],
        _ => vec![],
    }
}

fn random_route(rng: &mut Rng, ns: &str, name: &str) -> Object {
    let parents = (0..1 + rng.below(2))
        .map(|_| {
            let mut p = parent(rng.clone_pick(&["gw1", "gw2", "nope"]));
            p.namespace = Some("a".into());
            if rng.chance(20) {
                p.section_name = Some(rng.pick(&["l0", "l1"]).to_string());
            }
            if rng.chance(15) {
                p.port = Some(*rng.pick(&[80, 8080]));
            }
            p
        })
        .collect();
    let hostnames: Vec<&str> = HOSTS.iter().copied().filter(|_| rng.chance(25)).collect();
    let rules = (0..1 + rng.below(2))
        .map(|_| Rule {
            matches: (0..1 + rng.below(2)).map(|_| random_match(rng)).collect(),
            filters: random_filters(rng),
            backends: (0..rng.below(3)).map(|_| random_backend(rng)).collect(),
            ..Default::default()
        })
        .collect();
    let mut r = route(ns, name, parents, &hostnames, rules);
    r.meta.creation = rng
        .pick(&["", "2024-01-01T00:00:00Z", "2023-01-01T00:00:00Z"])
        .to_string();
    Object::HttpRoute(r)
}

fn random_namespace(rng: &mut Rng, name: &str) -> Object {
    let mut labels = vec![];
    if rng.chance(60) {
        labels.push(("env", *rng.pick(&["prod", "dev"])));
    }
    if rng.chance(50) {
        labels.push(("team", "x"));
    }
    namespace(name, &labels)
}

/// One random change to the small universe of object identities.
fn random_change(rng: &mut Rng) -> Change {
    let ns = rng.pick(&NAMESPACES).to_string();
    let obj = match rng.below(9) {
        0 => {
            if rng.chance(80) {
                class()
            } else {
                Object::GatewayClass(GatewayClass {
                    name: CLASS.into(),
                    controller_name: "other".into(),
                    generation: 2,
                })
            }
        }
        1 => {
            let name = rng.clone_pick(&["gw1", "gw2"]);
            random_gateway(rng, name)
        }
        2 | 3 => {
            let name = rng.clone_pick(&["r1", "r2", "r3"]);
            random_route(rng, &ns, name)
        }
        4 => service(
            &ns,
            rng.clone_pick(&["s1", "s2"]),
            if rng.chance(50) { &[80] } else { &[80, 8080] },
        ),
        5 => {
            let port = *rng.pick(&[80, 8080]);
            let choices: [&[&str]; 3] = [&["10.0.0.1"], &["10.0.0.1", "10.0.0.2"], &[]];
            let addrs = *rng.pick(&choices);
            slice(
                &ns,
                rng.clone_pick(&["e1", "e2"]),
                rng.clone_pick(&["s1", "s2"]),
                port,
                9000,
                addrs,
            )
        }
        6 => grant(
            "b",
            rng.clone_pick(&["g1", "g2"]),
            rng.clone_pick(&["a", "c"]),
            if rng.chance(50) { Some("s1") } else { None },
        ),
        _ => random_namespace(rng, &ns),
    };
    if rng.chance(25) {
        Change::Delete(obj.id())
    } else {
        Change::Apply(obj)
    }
}

trait ClonePick {
    fn clone_pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str;
}
impl ClonePick for Rng {
    fn clone_pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// The current records of one output stream, maintained from its deltas.
struct State<T>(BTreeMap<T, isize>);

impl<T: Keyed + Ord + std::fmt::Debug> State<T> {
    fn apply(&mut self, updates: Vec<(T, isize)>) {
        for (out, diff) in updates {
            *self.0.entry(out).or_default() += diff;
        }
        self.0.retain(|_, d| *d != 0);
    }

    /// The records, after checking each is present once and no two share a key.
    fn records(&self, at: &str) -> Vec<T> {
        assert!(
            self.0.values().all(|d| *d == 1),
            "{at}: multiplicities {:?}",
            self.0
        );
        let records: Vec<T> = self.0.keys().cloned().collect();
        let mut keys: Vec<_> = records.iter().map(Keyed::key).collect();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "{at}: two outputs share a key");
        records
    }
}

fn check_sequence(seed: u64, steps: usize, workers: usize) {
    let mut rng = Rng(seed);
    let config = PipelineConfig {
        workers,
        ..Default::default()
    };
    let mut pipeline = Pipeline::new(config).expect("pipeline");
    let mut xds = State::<XdsOutput>(BTreeMap::new());
    let mut status = State::<StatusOutput>(BTreeMap::new());
    for step in 0..steps {
        let batch: Vec<Change> = (0..1 + rng.below(3))
            .map(|_| random_change(&mut rng))
            .collect();
        let delta = pipeline.apply(batch.clone()).expect("apply");
        xds.apply(delta.xds);
        status.apply(delta.status);
        let at = format!("seed {seed} step {step}");
        let fresh = evaluate(pipeline.objects().cloned(), DEFAULT_CONTROLLER);
        assert_eq!(
            xds.records(&at),
            fresh.xds,
            "{at}: incremental xDS != fresh after {batch:?}"
        );
        assert_eq!(
            status.records(&at),
            fresh.status,
            "{at}: incremental status != fresh after {batch:?}"
        );
    }
}

#[test]
fn incremental_equals_fresh_single_worker() {
    for seed in 0..1000 {
        check_sequence(seed, 12, 1);
    }
}

#[test]
fn incremental_equals_fresh_two_workers() {
    for seed in 1000..1100 {
        check_sequence(seed, 12, 2);
    }
}
