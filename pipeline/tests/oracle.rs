//! Oracle test: seeded random sequences of object changes (creates, updates and
//! deletes, references mostly to objects that exist and some to objects that do not
//! yet) applied incrementally must give, at every step, exactly (1) what the
//! reference translator (`reference/mod.rs`, plain loops over the objects, rules
//! re-derived from the spec) computes from the current objects, and (2) what a fresh
//! dataflow computes from them. (1) catches semantic bugs that the dataflow has both
//! incrementally and from scratch; (2) catches incremental-only bugs. The run
//! measures its own coverage and fails when the generator stops reaching the
//! interesting states (attached routes, selector flips, grants that matter, backend
//! TLS of each kind of trust, policy conflicts, ...).

mod reference;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

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
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const STEPS: usize = 40;
/// Sequences run with one worker, and with two (where exchanges between workers
/// can reorder updates).
const SEQUENCES: u64 = 160;
const SEQUENCES_TWO_WORKERS: u64 = 20;
/// Namespaces seeded at step 0; `d` is only referenced, and created later at times.
const NAMESPACES: [&str; 3] = ["a", "b", "c"];
const GATEWAYS: [(&str, &str); 2] = [("a", "gw1"), ("b", "gw2")];
const SERVICES: [&str; 2] = ["s1", "s2"];
const ROUTES: [&str; 4] = ["r1", "r2", "r3", "r4"];
const HOSTS: [&str; 4] = [
    "foo.example.com",
    "*.example.com",
    "bar.net",
    "x.foo.example.com",
];

// ---- the generator --------------------------------------------------------------

fn req(key: &str, op: SelectorOp, values: &[&str]) -> Requirement {
    Requirement {
        key: key.into(),
        op,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

fn random_selector(rng: &mut Rng) -> FromNamespaces {
    let options = [
        vec![req("env", SelectorOp::In, &["prod"])],
        vec![req("env", SelectorOp::NotIn, &["dev"])],
        vec![req("team", SelectorOp::Exists, &[])],
        vec![req("team", SelectorOp::DoesNotExist, &[])],
        vec![
            req("team", SelectorOp::Exists, &[]),
            req("env", SelectorOp::NotIn, &["dev"]),
        ],
        vec![
            req("env", SelectorOp::In, &["prod", "dev"]),
            req("team", SelectorOp::In, &["x"]),
        ],
        vec![],
    ];
    FromNamespaces::Selector(LabelSelector {
        requirements: rng.pick(&options),
    })
}

fn random_listener(rng: &mut Rng, name: &str, port: u16) -> Listener {
    let mut l = http_listener(name, port);
    l.hostname = rng.chance(40).then(|| rng.pick(&HOSTS).to_string());
    l.allowed_namespaces = match rng.below(10) {
        0 | 1 => FromNamespaces::Same,
        2 | 3 => FromNamespaces::All,
        _ => random_selector(rng),
    };
    if rng.chance(5) {
        l.protocol = Protocol::Tcp;
    }
    if rng.chance(15) {
        // HTTPS with one or two certificate references (in this namespace, in `b`,
        // of another kind), sometimes without any `tls` (invalid).
        let refs: Vec<&str> = (0..1 + rng.below(2))
            .map(|_| rng.pick(&["cert", "cert2", "b/cert", "c/cert2"]))
            .collect();
        let mut https = https_listener(name, port, None, &refs);
        if let Some(tls) = &mut https.tls
            && rng.chance(10)
        {
            tls.certificate_refs[0].kind = "ConfigMap".into();
        }
        if rng.chance(10) {
            https.tls = None;
        }
        l.protocol = Protocol::Https;
        l.tls = https.tls;
        if rng.chance(80) {
            l.port = 443;
        }
    }
    if rng.chance(5) {
        l.allowed_kinds = vec![GroupKind {
            group: GATEWAY_GROUP.into(),
            kind: "TLSRoute".into(),
        }];
    }
    l
}

fn random_gateway(rng: &mut Rng, ns: &str, name: &str) -> Object {
    let listeners = (0..1 + rng.below(3))
        .map(|i| {
            let port = if rng.chance(70) { 80 } else { 8080 };
            random_listener(rng, &format!("l{i}"), port)
        })
        .collect();
    let mut g = gateway(ns, name, listeners);
    if rng.chance(50) {
        // Client certificate validation: a default and/or a per-port setting, CA
        // refs here, across namespaces, or of another kind.
        let mut cas = || -> Vec<&str> {
            (0..1 + usize::from(rng.chance(30)))
                .map(|_| rng.pick(&["ca", "ca", "ca2", "b/ca", "c/ca2", "kind:ca"]))
                .collect()
        };
        let (default, port) = (cas(), cas());
        if rng.chance(70) {
            g.frontend_validation
                .push(frontend_validation(None, &default, rng.chance(30)));
        }
        if rng.chance(40) {
            let port_number = rng.pick(&[443, 8080]);
            g.frontend_validation.push(frontend_validation(
                Some(port_number),
                &port,
                rng.chance(30),
            ));
        }
        for v in &mut g.frontend_validation {
            for r in &mut v.client.ca_refs {
                if let Some(name) = r.name.strip_prefix("kind:") {
                    r.name = name.into();
                    r.kind = "Secret".into();
                }
            }
        }
    }
    if rng.chance(5) {
        g.class_name = "someone-else".into();
    }
    Object::Gateway(g)
}

fn random_backend(rng: &mut Rng, route_ns: &str) -> BackendRef {
    let name = if rng.chance(90) {
        rng.pick(&SERVICES)
    } else {
        "missing"
    };
    let mut b = backend(name, if rng.chance(80) { 80 } else { 8080 });
    if rng.chance(45) {
        let ns = rng.pick(&["a", "b", "c", "d"]);
        b.namespace = Some(ns.to_string()).filter(|n| n != route_ns);
    }
    if rng.chance(5) {
        b.kind = "Unknown".into();
    }
    b.weight = if rng.chance(90) { 1 } else { 0 };
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
    for _ in 0..rng.below(3) {
        m.headers.push(ValueMatch {
            name: "h".into(),
            value: "v".into(),
            regex: false,
        });
    }
    if rng.chance(20) {
        m.query.push(ValueMatch {
            name: "q".into(),
            value: "1".into(),
            regex: false,
        });
    }
    m
}

fn random_filters(rng: &mut Rng, route_ns: &str) -> Vec<Filter> {
    match rng.below(10) {
        0 => vec![Filter::Mirror(Mirror {
            backend: random_backend(rng, route_ns),
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

fn random_parent(rng: &mut Rng) -> ParentRef {
    let (ns, name) = if rng.chance(90) {
        rng.pick(&GATEWAYS)
    } else {
        ("a", "nope")
    };
    let mut p = parent(name);
    p.namespace = Some(ns.into());
    if rng.chance(20) {
        p.section_name = Some(rng.pick(&["l0", "l1", "l2"]).to_string());
    }
    if rng.chance(10) {
        p.port = Some(rng.pick(&[80, 8080]));
    }
    if rng.chance(3) {
        p.kind = "Service".into();
    }
    p
}

fn random_route(rng: &mut Rng, ns: &str, name: &str) -> Object {
    let parents = (0..1 + rng.below(2)).map(|_| random_parent(rng)).collect();
    let hostnames: Vec<&str> = HOSTS.iter().copied().filter(|_| rng.chance(20)).collect();
    let rules = (0..1 + rng.below(2))
        .map(|_| Rule {
            matches: (0..1 + rng.below(2)).map(|_| random_match(rng)).collect(),
            filters: random_filters(rng, ns),
            backends: (0..rng.below(3)).map(|_| random_backend(rng, ns)).collect(),
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
    if rng.chance(70) {
        labels.push(("env", rng.pick(&["prod", "dev", "qa"])));
    }
    if rng.chance(50) {
        labels.push(("team", rng.pick(&["x", "y"])));
    }
    namespace(name, &labels)
}

fn random_service(rng: &mut Rng, ns: &str, name: &str) -> Object {
    service(ns, name, if rng.chance(50) { &[80] } else { &[80, 8080] })
}

fn random_slice(rng: &mut Rng, ns: &str, svc: &str) -> Object {
    let port = if rng.chance(70) { 80 } else { 8080 };
    let choices: [&[&str]; 3] = [&["10.0.0.1"], &["10.0.0.1", "10.0.0.2"], &[]];
    let addrs = rng.pick(&choices);
    slice(ns, &format!("{svc}-{port}"), svc, port, 9000, addrs)
}

fn random_grant(rng: &mut Rng) -> Object {
    let to_ns = rng.pick(&["a", "b", "c"]);
    let from_ns = rng.pick(&["a", "b", "c", "d"]);
    let to = if rng.chance(50) {
        Some(rng.pick(&SERVICES))
    } else {
        None
    };
    if rng.chance(35) {
        let secret = rng.chance(50).then(|| rng.pick(&["cert", "cert2"]));
        return secret_grant(to_ns, rng.pick(&["g1", "g3"]), from_ns, secret);
    }
    if rng.chance(10) {
        let ca = rng.chance(50).then(|| rng.pick(&["ca", "ca2"]));
        return config_map_grant(to_ns, rng.pick(&["g1", "g4"]), from_ns, ca);
    }
    grant(to_ns, rng.pick(&["g1", "g2"]), from_ns, to)
}

fn random_secret(rng: &mut Rng, ns: &str) -> Object {
    let name = rng.pick(&["cert", "cert2"]);
    let problem = rng
        .chance(15)
        .then_some("tls.key does not belong to the certificate");
    tls_secret(ns, name, rng.pick(&["PEM-1", "PEM-2"]), problem)
}

/// A CA ConfigMap (one bundle without a final newline, as `--from-literal` writes).
fn random_ca(rng: &mut Rng, ns: &str) -> Object {
    let name = rng.pick(&["ca", "ca2"]);
    let problem = rng.chance(10).then_some("ConfigMap has no key ca.crt");
    ca_config_map(ns, name, rng.pick(&["CA-1\n", "CA-2\n", "CA-3"]), problem)
}

fn random_section(rng: &mut Rng) -> Option<&'static str> {
    rng.pick(&[None, None, Some("p80"), Some("p8080")])
}

/// A BackendTLSPolicy on a Service or one of its ports (sometimes two targets),
/// trusting CA ConfigMaps (some missing, some of another kind) or the system bundle.
fn random_policy(rng: &mut Rng, ns: &str) -> Object {
    let name = rng.pick(&["p1", "p2", "p3"]);
    let cas: [&[&str]; 5] = [&["ca"], &["ca2"], &["ca", "ca2"], &["missing"], &[]];
    let target = (rng.pick(&SERVICES), random_section(rng));
    let cas = rng.pick(&cas);
    let created = rng.pick(&["2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", ""]);
    let mut obj = backend_tls_policy(ns, name, target, cas, "abc.example.com", created);
    if let Object::BackendTlsPolicy(p) = &mut obj {
        if rng.chance(30) {
            p.targets.push(PolicyTarget {
                group: String::new(),
                kind: "Service".into(),
                name: rng.pick(&SERVICES).into(),
                section: random_section(rng).map(Into::into),
            });
        }
        if rng.chance(10)
            && let Some(r) = p.ca_refs.first_mut()
        {
            r.kind = "Secret".into();
        }
        if rng.chance(10) && p.ca_refs.is_empty() {
            p.well_known = Some("Other".into());
        }
        if rng.chance(10) {
            p.subject_alt_names = vec![SubjectAltName::Hostname("other.example.com".into())];
        }
    }
    obj
}

/// Step 0: the class, the gateways, the namespaces, services, slices and a route.
fn seed_objects(rng: &mut Rng) -> Vec<Change> {
    let mut objs = vec![class()];
    for (ns, name) in GATEWAYS {
        objs.push(random_gateway(rng, ns, name));
    }
    for ns in NAMESPACES {
        objs.push(random_namespace(rng, ns));
        for svc in SERVICES {
            objs.push(random_service(rng, ns, svc));
            objs.push(slice(
                ns,
                &format!("{svc}-80"),
                svc,
                80,
                9000,
                &["10.0.0.1"],
            ));
        }
    }
    let ns = rng.pick(&NAMESPACES);
    objs.push(random_route(rng, ns, "r1"));
    for ns in NAMESPACES {
        objs.push(random_secret(rng, ns));
        objs.push(ca_config_map(ns, "ca", "CA-1\n", None));
        objs.push(random_ca(rng, ns));
    }
    objs.into_iter().map(Change::Apply).collect()
}

/// A delete: mostly of an object that exists (not the class: its flips are their
/// own kind of change; not a policy: policies have their own stream), sometimes of
/// one that does not.
fn random_delete(rng: &mut Rng, objects: &BTreeMap<ObjectId, Object>) -> Change {
    let ids: Vec<&ObjectId> = objects
        .keys()
        .filter(|id| !matches!(id.kind, Kind::GatewayClass | Kind::BackendTlsPolicy))
        .collect();
    if ids.is_empty() || rng.chance(5) {
        let key = ObjectKey::new("c", "never-created");
        return Change::Delete(ObjectId {
            kind: Kind::HttpRoute,
            key,
        });
    }
    Change::Delete(ids[rng.below(ids.len())].clone())
}

fn random_class(rng: &mut Rng) -> Object {
    let mut c = class();
    if let Object::GatewayClass(c) = &mut c
        && rng.chance(50)
    {
        c.controller_name = "other".into();
    }
    c
}

/// One random change, drawn with the current objects in view.
fn random_change(rng: &mut Rng, objects: &BTreeMap<ObjectId, Object>) -> Change {
    let ns = if rng.chance(95) {
        rng.pick(&NAMESPACES)
    } else {
        "d"
    };
    let obj = match rng.below(100) {
        0..=25 => {
            let name = rng.pick(&ROUTES);
            random_route(rng, ns, name)
        }
        26..=41 => random_namespace(rng, ns),
        42..=57 => random_grant(rng),
        58..=65 => {
            let (gns, name) = rng.pick(&GATEWAYS);
            random_gateway(rng, gns, name)
        }
        66..=70 => {
            let name = rng.pick(&SERVICES);
            random_service(rng, ns, name)
        }
        71..=75 => {
            let name = rng.pick(&SERVICES);
            random_slice(rng, ns, name)
        }
        76..=77 => random_class(rng),
        78..=83 => random_secret(rng, ns),
        84..=86 => random_ca(rng, ns),
        _ => return random_delete(rng, objects),
    };
    Change::Apply(obj)
}

// ---- coverage -------------------------------------------------------------------

/// What the run reached; asserted against minimums at the end.
#[derive(Debug, Default)]
struct Coverage {
    steps: usize,
    steps_attached: usize,
    steps_cluster: usize,
    steps_endpoints: usize,
    /// Steps where some Envoy listener terminates TLS.
    steps_tls: usize,
    /// Steps where some TLS chain validates client certificates.
    steps_client_validation: usize,
    /// Listener `ResolvedRefs` reasons seen, by steps.
    listener_reasons: BTreeMap<String, usize>,
    /// Steps where some cluster has TLS to its backend, by the kind of trust.
    steps_backend_tls: BTreeMap<String, usize>,
    /// BackendTLSPolicy condition reasons seen, by steps.
    policy_reasons: BTreeMap<String, usize>,
    /// Steps whose namespace label changes alone change some attachment.
    selector_flips: usize,
    /// Steps whose ReferenceGrant changes alone change some resolution.
    grant_flips: usize,
    /// Resolved cross-namespace backend references, summed over steps.
    cross_namespace_resolved: usize,
    deletes: usize,
    deletes_effective: usize,
    /// Route parent and ResolvedRefs reasons seen, with how many steps showed each.
    reasons: BTreeMap<String, usize>,
}

/// Apply a change to an object map; whether it created or deleted an object.
fn apply_to(objects: &mut BTreeMap<ObjectId, Object>, change: &Change) -> bool {
    match change {
        Change::Apply(o) => objects.insert(o.id(), o.clone()).is_none(),
        Change::Delete(id) => objects.remove(id).is_some(),
    }
}

fn translate(objects: &BTreeMap<ObjectId, Object>) -> reference::Reference {
    let objs: Vec<Object> = objects.values().cloned().collect();
    reference::translate(&objs, DEFAULT_CONTROLLER)
}

/// The reference's state after applying only the changes of `kind` from `batch`.
fn only(
    before: &BTreeMap<ObjectId, Object>,
    batch: &[Change],
    kind: Kind,
) -> Option<reference::Reference> {
    let mut objects = before.clone();
    let mut any = false;
    for c in batch {
        let k = match c {
            Change::Apply(o) => o.id().kind,
            Change::Delete(id) => id.kind,
        };
        if k == kind {
            any = true;
            apply_to(&mut objects, c);
        }
    }
    any.then(|| translate(&objects))
}

impl Coverage {
    fn record_step(
        &mut self,
        before: (&BTreeMap<ObjectId, Object>, &reference::Reference),
        batch: &[Change],
        after: &reference::Reference,
    ) {
        let (objects, prev) = before;
        self.steps += 1;
        self.steps_attached += usize::from(!after.attachments.is_empty());
        self.steps_cluster += usize::from(!after.clusters.is_empty());
        self.steps_endpoints += usize::from(!after.endpoints.is_empty());
        self.steps_tls += usize::from(after.listeners.iter().any(|l| !l.tls.is_empty()));
        self.steps_client_validation += usize::from(
            (after.listeners.iter())
                .flat_map(|l| l.tls.iter())
                .any(|c| c.client_validation.is_some()),
        );
        let listener_reasons: BTreeSet<&str> = (after.gateway_status.iter())
            .flat_map(|g| g.listeners.iter())
            .flat_map(|l| l.conditions.iter())
            .filter(|c| {
                c.type_ == sluice_pipeline::ir::ConditionType::ResolvedRefs
                    || (c.type_ == sluice_pipeline::ir::ConditionType::Accepted && !c.status)
            })
            .map(|c| c.reason.as_str())
            .collect();
        for r in listener_reasons {
            *self.listener_reasons.entry(r.to_string()).or_default() += 1;
        }
        let trusts: BTreeSet<&str> = (after.clusters.iter())
            .filter_map(|c| c.tls.as_ref())
            .map(|t| match t.trust {
                sluice_pipeline::ir::BackendTrust::CaBundle(_) => "CaBundle",
                sluice_pipeline::ir::BackendTrust::System => "System",
                sluice_pipeline::ir::BackendTrust::Refused => "Refused",
            })
            .collect();
        for t in trusts {
            *self.steps_backend_tls.entry(t.to_string()).or_default() += 1;
        }
        let policy_reasons: BTreeSet<&str> = (after.policy_status.iter())
            .flat_map(|p| p.conditions.iter().map(|c| c.reason.as_str()))
            .collect();
        for r in policy_reasons {
            *self.policy_reasons.entry(r.to_string()).or_default() += 1;
        }
        if only(objects, batch, Kind::Namespace).is_some_and(|r| r.attachments != prev.attachments)
        {
            self.selector_flips += 1;
        }
        if only(objects, batch, Kind::ReferenceGrant)
            .is_some_and(|r| r.resolutions != prev.resolutions)
        {
            self.grant_flips += 1;
        }
        self.cross_namespace_resolved += after
            .resolutions
            .iter()
            .filter(|((route, _), r)| {
                r.as_ref()
                    .is_ok_and(|c| c.service.namespace != route.namespace)
            })
            .count();
        let reasons: BTreeSet<&str> = after
            .route_status
            .iter()
            .flat_map(|s| s.conditions.iter().map(|c| c.reason.as_str()))
            .collect();
        for r in reasons {
            *self.reasons.entry(r.to_string()).or_default() += 1;
        }
    }

    fn check(&self) {
        let pct = |n: usize| n * 100 / self.steps.max(1);
        eprintln!("oracle coverage: {self:#?}");
        let at_least = |what: &str, n: usize, min: usize| {
            assert!(n >= min, "coverage: {what} = {n}, below {min}: {self:#?}");
        };
        at_least(
            "% steps with an attached route",
            pct(self.steps_attached),
            50,
        );
        at_least("% steps with a cluster", pct(self.steps_cluster), 30);
        at_least("% steps with endpoints", pct(self.steps_endpoints), 20);
        at_least("% steps with a TLS listener", pct(self.steps_tls), 10);
        at_least(
            "steps validating client certificates",
            self.steps_client_validation,
            150,
        );
        // Certificate failures are reported before CA ones, so the CA reasons show
        // less often.
        for (reason, min) in [
            ("InvalidCertificateRef", 100),
            ("RefNotPermitted", 100),
            ("NoValidCACertificate", 100),
            ("InvalidCACertificateRef", 30),
            ("InvalidCACertificateKind", 5),
        ] {
            let n = self.listener_reasons.get(reason).copied().unwrap_or(0);
            at_least(&format!("steps showing listener reason {reason}"), n, min);
        }
        for (trust, min) in [("CaBundle", 200), ("System", 150), ("Refused", 200)] {
            let n = self.steps_backend_tls.get(trust).copied().unwrap_or(0);
            at_least(&format!("steps with backend TLS trust {trust}"), n, min);
        }
        for (reason, min) in [
            ("Accepted", 300),
            ("Conflicted", 60),
            ("Invalid", 15),
            ("InvalidKind", 50),
            ("InvalidCACertificateRef", 250),
            ("NoValidCACertificate", 250),
        ] {
            let n = self.policy_reasons.get(reason).copied().unwrap_or(0);
            at_least(&format!("steps showing policy reason {reason}"), n, min);
        }
        at_least(
            "selector flips that change an attachment",
            self.selector_flips,
            200,
        );
        at_least("grants that change a resolution", self.grant_flips, 200);
        at_least(
            "resolved cross-namespace references",
            self.cross_namespace_resolved,
            100,
        );
        at_least("deletes that delete", self.deletes_effective, 1000);
        at_least(
            "% deletes that delete",
            self.deletes_effective * 100 / self.deletes.max(1),
            85,
        );
        for reason in [
            "Accepted",
            "NotAllowedByListeners",
            "NoMatchingListenerHostname",
            "NoMatchingParent",
            "ResolvedRefs",
            "BackendNotFound",
            "RefNotPermitted",
            "InvalidKind",
        ] {
            let n = self.reasons.get(reason).copied().unwrap_or(0);
            at_least(&format!("steps showing reason {reason}"), n, 100);
        }
    }
}

// ---- the check ------------------------------------------------------------------

/// Records in one list and not the other, for a readable failure.
fn difference<T: Ord + Debug>(left: &[T], right: &[T]) -> String {
    let l: BTreeSet<&T> = left.iter().collect();
    let r: BTreeSet<&T> = right.iter().collect();
    let only_l: Vec<_> = l.difference(&r).collect();
    let only_r: Vec<_> = r.difference(&l).collect();
    format!("only in the pipeline: {only_l:#?}\nonly in the other: {only_r:#?}")
}

/// One output stream's accumulated state: the updates of every delta so far.
struct Stream<T>(BTreeMap<T, isize>);

impl<T: Keyed + Ord + Debug> Stream<T> {
    fn add(&mut self, updates: Vec<(T, isize)>) {
        for (out, diff) in updates {
            *self.0.entry(out).or_default() += diff;
        }
        self.0.retain(|_, d| *d != 0);
    }

    /// Every record once, at most one per key, and equal to the reference's and to
    /// a fresh dataflow's.
    fn check(&self, at: &str, reference: &[T], fresh: &[T]) {
        assert!(
            self.0.values().all(|d| *d == 1),
            "{at}: multiplicities {:?}",
            self.0
        );
        let incremental: Vec<T> = self.0.keys().cloned().collect();
        assert!(
            incremental == reference,
            "{at}: pipeline != reference\n{}",
            difference(&incremental, reference)
        );
        assert!(
            incremental == fresh,
            "{at}: incremental != fresh dataflow\n{}",
            difference(&incremental, fresh)
        );
        let mut keys: Vec<_> = incremental.iter().map(Keyed::key).collect();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "{at}: two outputs share a key");
    }
}

fn check_step(
    at: &str,
    (xds, status): (&Stream<XdsOutput>, &Stream<StatusOutput>),
    objects: &BTreeMap<ObjectId, Object>,
    expected: &reference::Reference,
) {
    let reference = expected.outputs();
    let fresh = evaluate(objects.values().cloned(), DEFAULT_CONTROLLER);
    xds.check(&format!("{at} xds"), &reference.xds, &fresh.xds);
    status.check(&format!("{at} status"), &reference.status, &fresh.status);
}

fn check_sequence(seed: u64, workers: usize, coverage: &mut Coverage) {
    let mut rng = Rng(seed);
    let mut policy_rng = Rng(seed ^ 0x00b7_1500);
    let config = PipelineConfig {
        workers,
        ..Default::default()
    };
    let mut pipeline = Pipeline::new(config).expect("pipeline");
    let mut xds = Stream(BTreeMap::new());
    let mut status = Stream(BTreeMap::new());
    let mut objects: BTreeMap<ObjectId, Object> = BTreeMap::new();
    let mut prev = reference::Reference::default();
    for step in 0..STEPS {
        let mut batch: Vec<Change> = if step == 0 {
            seed_objects(&mut rng)
        } else {
            (0..1 + rng.below(3))
                .map(|_| random_change(&mut rng, &objects))
                .collect()
        };
        // BackendTLSPolicies come from their own stream, so the other objects'
        // sequences (and what they cover) stay as they were without policies.
        if policy_rng.chance(if step == 0 { 60 } else { 12 }) {
            let ns = policy_rng.pick(&NAMESPACES);
            batch.push(Change::Apply(random_policy(&mut policy_rng, ns)));
        }
        let policies: Vec<&ObjectId> = (objects.keys())
            .filter(|id| id.kind == Kind::BackendTlsPolicy)
            .collect();
        if !policies.is_empty() && policy_rng.chance(5) {
            let id = policies[policy_rng.below(policies.len())].clone();
            batch.push(Change::Delete(id));
        }
        let before = objects.clone();
        for c in &batch {
            let changed = apply_to(&mut objects, c);
            if let Change::Delete(_) = c {
                coverage.deletes += 1;
                coverage.deletes_effective += usize::from(changed);
            }
        }
        let delta = pipeline.apply(batch.clone()).expect("apply");
        xds.add(delta.xds);
        status.add(delta.status);
        let expected = translate(&objects);
        let at = format!("seed {seed} step {step}");
        check_step(&at, (&xds, &status), &objects, &expected);
        coverage.record_step((&before, &prev), &batch, &expected);
        prev = expected;
    }
}

#[test]
fn incremental_equals_reference_and_fresh() {
    let started = std::time::Instant::now();
    let mut coverage = Coverage::default();
    for seed in 0..SEQUENCES {
        check_sequence(seed, 1, &mut coverage);
    }
    for seed in 1000..1000 + SEQUENCES_TWO_WORKERS {
        check_sequence(seed, 2, &mut coverage);
    }
    eprintln!(
        "oracle: {} steps in {:?}",
        coverage.steps,
        started.elapsed()
    );
    coverage.check();
}
