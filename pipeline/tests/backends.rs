//! Backend resolution against hand-written expectations: each `ResolvedRefs` reason
//! as the Gateway API names them (`ResolvedRefs`, `BackendNotFound`,
//! `RefNotPermitted`, `InvalidKind`), ReferenceGrants (namespace, kind and name
//! scoped, added and removed), the 500 share of an invalid backend, clusters per
//! gateway and their endpoints. Expectations come from the HTTPRoute `backendRefs`
//! and ReferenceGrant docs in the CRDs.

mod support;

use sluice_pipeline::fixtures::*;
use sluice_pipeline::ir::{Action, WeightedBackend};
use sluice_pipeline::model::*;
use support::{Run, expect};

const ACCEPTED: (bool, &str) = (true, "Accepted");
const GW: (&str, &str) = ("apps", "gw");

fn base() -> Vec<Object> {
    let mut l = http_listener("http", 80);
    l.allowed_namespaces = FromNamespaces::All;
    vec![
        class(),
        namespace("apps", &[]),
        namespace("other", &[]),
        Object::Gateway(gateway("apps", "gw", vec![l])),
        service("apps", "web", &[8080]),
        slice("apps", "web-1", "web", 8080, 3000, &["10.0.0.1"]),
        service("other", "db", &[5432, 5433]),
        service("other", "cache", &[6379]),
    ]
}

fn with_route(backends: Vec<BackendRef>) -> Vec<Object> {
    let mut objs = base();
    let r = route(
        "apps",
        "r",
        vec![parent("gw")],
        &[],
        vec![prefix_rule("/", backends)],
    );
    objs.push(Object::HttpRoute(r));
    objs
}

fn in_ns(ns: &str, mut b: BackendRef) -> BackendRef {
    b.namespace = Some(ns.into());
    b
}

fn forward(backends: &[(Option<&str>, u32)]) -> Action {
    Action::Forward {
        backends: backends
            .iter()
            .map(|(c, w)| WeightedBackend {
                cluster: c.map(Into::into),
                weight: *w,
                filters: vec![],
            })
            .collect(),
        rewrite: None,
    }
}

#[test]
fn same_namespace_service_resolves() {
    let run = Run::new(with_route(vec![backend("web", 8080)]));
    assert_eq!(
        run.route_conds("apps", "r", 0),
        expect(ACCEPTED, (true, "ResolvedRefs"))
    );
    assert_eq!(
        run.first_action(GW, 80, "*"),
        forward(&[(Some("apps/web:8080"), 1)])
    );
    let (clusters, members) = run.clusters();
    assert_eq!(clusters, ["apps/web:8080"]);
    assert_eq!(
        members,
        [("apps/gw".to_string(), "apps/web:8080".to_string())]
    );
    let eps = run.endpoints("apps/web:8080").expect("endpoints");
    assert_eq!(eps, [("10.0.0.1".to_string(), 3000)]);
}

#[test]
fn missing_service_or_port_is_backend_not_found() {
    for b in [backend("nope", 8080), backend("web", 9999)] {
        let run = Run::new(with_route(vec![b.clone()]));
        let c = expect(ACCEPTED, (false, "BackendNotFound"));
        assert_eq!(run.route_conds("apps", "r", 0), c, "{b:?}");
        assert_eq!(run.first_action(GW, 80, "*"), Action::Direct(500), "{b:?}");
        assert_eq!(run.clusters(), (vec![], vec![]), "{b:?}");
    }
}

#[test]
fn unknown_kind_is_invalid_kind() {
    let mut b = backend("web", 8080);
    b.kind = "Pod".into();
    let mut core_group_wrong = backend("web", 8080);
    core_group_wrong.group = "example.com".into();
    for b in [b, core_group_wrong] {
        let run = Run::new(with_route(vec![b.clone()]));
        let c = expect(ACCEPTED, (false, "InvalidKind"));
        assert_eq!(run.route_conds("apps", "r", 0), c, "{b:?}");
        assert_eq!(run.first_action(GW, 80, "*"), Action::Direct(500));
    }
}

#[test]
fn cross_namespace_needs_a_grant() {
    let run = Run::new(with_route(vec![in_ns("other", backend("db", 5432))]));
    let refused = expect(ACCEPTED, (false, "RefNotPermitted"));
    assert_eq!(run.route_conds("apps", "r", 0), refused);
    assert_eq!(run.first_action(GW, 80, "*"), Action::Direct(500));
}

/// A grant lives in the target namespace, names the source namespace, and may name
/// the one Service it allows.
#[test]
fn grants_scope_by_namespace_and_name() {
    let resolved = expect(ACCEPTED, (true, "ResolvedRefs"));
    let refused = expect(ACCEPTED, (false, "RefNotPermitted"));
    let cases = [
        (grant("other", "g", "apps", None), &resolved),
        (grant("other", "g", "apps", Some("db")), &resolved),
        (grant("other", "g", "apps", Some("cache")), &refused),
        (grant("other", "g", "elsewhere", None), &refused),
        (grant("apps", "g", "apps", None), &refused),
    ];
    for (g, expected) in cases {
        let mut objs = with_route(vec![in_ns("other", backend("db", 5432))]);
        objs.push(g.clone());
        let run = Run::new(objs);
        assert_eq!(run.route_conds("apps", "r", 0), *expected, "{g:?}");
    }
}

#[test]
fn grant_for_another_kind_does_not_allow_services() {
    let mut g = grant("other", "g", "apps", None);
    if let Object::ReferenceGrant(rg) = &mut g {
        rg.to[0].kind = "Secret".into();
    }
    let mut objs = with_route(vec![in_ns("other", backend("db", 5432))]);
    objs.push(g);
    let run = Run::new(objs);
    let refused = expect(ACCEPTED, (false, "RefNotPermitted"));
    assert_eq!(run.route_conds("apps", "r", 0), refused);
}

/// Adding the grant resolves the reference (cluster appears), deleting it refuses
/// it again (cluster goes).
#[test]
fn grant_added_and_removed() {
    let mut run = Run::new(with_route(vec![in_ns("other", backend("db", 5433))]));
    assert_eq!(run.clusters(), (vec![], vec![]));
    let g = grant("other", "g", "apps", Some("db"));
    run.apply(vec![Change::Apply(g.clone())]);
    assert_eq!(
        run.first_action(GW, 80, "*"),
        forward(&[(Some("other/db:5433"), 1)])
    );
    assert_eq!(run.clusters().0, ["other/db:5433"]);
    // No slice for other/db: the cluster has no endpoints record.
    assert_eq!(run.endpoints("other/db:5433"), None);
    run.apply(vec![Change::Delete(g.id())]);
    let refused = expect(ACCEPTED, (false, "RefNotPermitted"));
    assert_eq!(run.route_conds("apps", "r", 0), refused);
    assert_eq!(run.clusters(), (vec![], vec![]));
}

/// An invalid backend keeps its weight, so its share of requests gets a 500.
#[test]
fn invalid_backend_keeps_its_share() {
    let mut valid = backend("web", 8080);
    valid.weight = 3;
    let invalid = backend("nope", 8080);
    let run = Run::new(with_route(vec![valid, invalid]));
    let c = expect(ACCEPTED, (false, "BackendNotFound"));
    assert_eq!(run.route_conds("apps", "r", 0), c);
    let expected = forward(&[(Some("apps/web:8080"), 3), (None, 1)]);
    assert_eq!(run.first_action(GW, 80, "*"), expected);
}

/// A Service that appears later resolves the waiting reference; endpoints follow
/// the slice of the Service's port name.
#[test]
fn service_created_later() {
    let mut run = Run::new(with_route(vec![backend("late", 80)]));
    let c = expect(ACCEPTED, (false, "BackendNotFound"));
    assert_eq!(run.route_conds("apps", "r", 0), c);
    run.apply(vec![
        Change::Apply(service("apps", "late", &[80, 81])),
        Change::Apply(slice(
            "apps",
            "late-a",
            "late",
            80,
            8000,
            &["10.0.0.9", "10.0.0.8"],
        )),
        Change::Apply(slice("apps", "late-b", "late", 81, 8100, &["10.0.0.7"])),
    ]);
    let ok = expect(ACCEPTED, (true, "ResolvedRefs"));
    assert_eq!(run.route_conds("apps", "r", 0), ok);
    let eps = run.endpoints("apps/late:80").expect("endpoints");
    let expected = [
        ("10.0.0.8".to_string(), 8000),
        ("10.0.0.9".to_string(), 8000),
    ];
    assert_eq!(eps, expected);
}
