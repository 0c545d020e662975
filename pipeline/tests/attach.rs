//! Route attachment against hand-written expectations: each `Accepted` reason of a
//! route parent as the Gateway API names them (`Accepted`, `NotAllowedByListeners`,
//! `NoMatchingListenerHostname`, `NoMatchingParent`), which parentRefs get a status
//! at all, `attachedRoutes` per listener, hostname intersection and listener
//! isolation on the virtual hosts. Expectations come from the HTTPRoute
//! `parentRefs` / `hostnames` and Gateway `attachedRoutes` docs in the CRDs.

mod support;

use sluice_pipeline::fixtures::*;
use sluice_pipeline::model::*;
use support::{Run, expect};

const OK: (bool, &str) = (true, "ResolvedRefs");

fn gw(listeners: Vec<Listener>) -> Object {
    Object::Gateway(gateway("infra", "gw", listeners))
}

fn listener(name: &str, port: u16, host: Option<&str>, from: FromNamespaces) -> Listener {
    let mut l = http_listener(name, port);
    l.hostname = host.map(Into::into);
    l.allowed_namespaces = from;
    l
}

fn parent_in(ns: &str, name: &str) -> ParentRef {
    let mut p = parent(name);
    p.namespace = Some(ns.into());
    p
}

fn http_route(ns: &str, name: &str, parents: Vec<ParentRef>, hosts: &[&str]) -> Object {
    Object::HttpRoute(route(
        ns,
        name,
        parents,
        hosts,
        vec![prefix_rule("/", vec![])],
    ))
}

fn base(listeners: Vec<Listener>) -> Vec<Object> {
    vec![
        class(),
        namespace("infra", &[]),
        namespace("apps", &[]),
        gw(listeners),
    ]
}

#[test]
fn accepted_on_the_whole_gateway() {
    let mut objs = base(vec![listener("http", 80, None, FromNamespaces::Same)]);
    objs.push(http_route("infra", "r", vec![parent("gw")], &[]));
    let run = Run::new(objs);
    assert_eq!(
        run.route_conds("infra", "r", 0),
        expect((true, "Accepted"), OK)
    );
    assert_eq!(run.attached("infra", "gw"), [("http".to_string(), 1)]);
    assert_eq!(
        run.vhost_entries(("infra", "gw"), 80, "*"),
        ["infra/r/rule/0/match/0"]
    );
}

#[test]
fn other_namespace_not_allowed_by_same() {
    let mut objs = base(vec![listener("http", 80, None, FromNamespaces::Same)]);
    objs.push(http_route("apps", "r", vec![parent_in("infra", "gw")], &[]));
    let run = Run::new(objs);
    let refused = expect((false, "NotAllowedByListeners"), OK);
    assert_eq!(run.route_conds("apps", "r", 0), refused);
    assert_eq!(run.attached("infra", "gw"), [("http".to_string(), 0)]);
    assert_eq!(
        run.vhost_entries(("infra", "gw"), 80, "*"),
        Vec::<String>::new()
    );
}

#[test]
fn listener_kinds_without_httproute_not_allowed() {
    let mut l = listener("http", 80, None, FromNamespaces::All);
    l.allowed_kinds = vec![GroupKind {
        group: GATEWAY_GROUP.into(),
        kind: "TLSRoute".into(),
    }];
    let mut objs = base(vec![l]);
    objs.push(http_route("infra", "r", vec![parent("gw")], &[]));
    let run = Run::new(objs);
    let refused = expect((false, "NotAllowedByListeners"), OK);
    assert_eq!(run.route_conds("infra", "r", 0), refused);
}

#[test]
fn no_intersecting_hostname() {
    let l = listener("http", 80, Some("foo.example.com"), FromNamespaces::All);
    let mut objs = base(vec![l]);
    objs.push(http_route(
        "apps",
        "r",
        vec![parent_in("infra", "gw")],
        &["bar.net"],
    ));
    let run = Run::new(objs);
    let refused = expect((false, "NoMatchingListenerHostname"), OK);
    assert_eq!(run.route_conds("apps", "r", 0), refused);
    assert_eq!(run.attached("infra", "gw"), [("http".to_string(), 0)]);
}

#[test]
fn section_name_or_port_matching_no_listener() {
    let mut objs = base(vec![listener("http", 80, None, FromNamespaces::All)]);
    let mut by_name = parent("gw");
    by_name.section_name = Some("nope".into());
    let mut by_port = parent("gw");
    by_port.port = Some(8080);
    let mut both = parent("gw");
    both.section_name = Some("http".into());
    both.port = Some(8080);
    objs.push(http_route("infra", "r", vec![by_name, by_port, both], &[]));
    let run = Run::new(objs);
    let none = expect((false, "NoMatchingParent"), OK);
    for index in 0..3 {
        assert_eq!(
            run.route_conds("infra", "r", index),
            none,
            "parentRef {index}"
        );
    }
}

/// "If 1 of 2 Gateway listeners accept attachment from the referencing Route, the
/// Route MUST be considered successfully attached"; each listener counts only the
/// routes it admits.
#[test]
fn one_of_two_listeners_is_enough() {
    let objs_listeners = vec![
        listener("same", 80, Some("a.example.com"), FromNamespaces::Same),
        listener("all", 80, Some("b.example.com"), FromNamespaces::All),
    ];
    let mut objs = base(objs_listeners);
    objs.push(http_route("apps", "r", vec![parent_in("infra", "gw")], &[]));
    let run = Run::new(objs);
    assert_eq!(
        run.route_conds("apps", "r", 0),
        expect((true, "Accepted"), OK)
    );
    let counts = [("same".to_string(), 0), ("all".to_string(), 1)];
    assert_eq!(run.attached("infra", "gw"), counts);
    assert_eq!(
        run.vhost_entries(("infra", "gw"), 80, "a.example.com"),
        Vec::<String>::new()
    );
    assert_eq!(
        run.vhost_entries(("infra", "gw"), 80, "b.example.com"),
        ["apps/r/rule/0/match/0"]
    );
}

/// A sectionName picks one listener: the route is counted and served there only.
#[test]
fn section_name_selects_one_listener() {
    let mut objs = base(vec![
        listener("l80", 80, None, FromNamespaces::Same),
        listener("l8080", 8080, None, FromNamespaces::Same),
    ]);
    let mut p = parent("gw");
    p.section_name = Some("l8080".into());
    objs.push(http_route("infra", "r", vec![p], &[]));
    let run = Run::new(objs);
    assert_eq!(
        run.route_conds("infra", "r", 0),
        expect((true, "Accepted"), OK)
    );
    let counts = [("l80".to_string(), 0), ("l8080".to_string(), 1)];
    assert_eq!(run.attached("infra", "gw"), counts);
    assert_eq!(
        run.vhost_entries(("infra", "gw"), 80, "*"),
        Vec::<String>::new()
    );
    assert_eq!(
        run.vhost_entries(("infra", "gw"), 8080, "*"),
        ["infra/r/rule/0/match/0"]
    );
}

/// Only parentRefs to Gateways of our class get a status from us: another class's
/// Gateway, a Gateway that does not exist, and a non-Gateway parent get none.
#[test]
fn status_only_for_our_gateways() {
    let mut objs = base(vec![listener("http", 80, None, FromNamespaces::All)]);
    let mut theirs = gateway("infra", "theirs", vec![http_listener("http", 80)]);
    theirs.class_name = "someone-else".into();
    objs.push(Object::Gateway(theirs));
    let mut svc = parent("gw");
    svc.kind = "Service".into();
    let parents = vec![parent("theirs"), parent("absent"), svc, parent("gw")];
    objs.push(http_route("infra", "r", parents, &[]));
    let run = Run::new(objs);
    for index in 0..3 {
        assert!(
            run.route_status("infra", "r", index).is_none(),
            "parentRef {index}"
        );
    }
    assert_eq!(
        run.route_conds("infra", "r", 3),
        expect((true, "Accepted"), OK)
    );
}

/// Wildcard listener hostnames match one or more labels, never the bare suffix;
/// the virtual hosts are the intersections.
#[test]
fn wildcard_intersection() {
    let l = listener("http", 80, Some("*.example.com"), FromNamespaces::Same);
    let mut objs = base(vec![l]);
    let hosts = ["a.example.com", "x.y.example.com", "example.com", "bar.net"];
    objs.push(http_route("infra", "r", vec![parent("gw")], &hosts));
    let run = Run::new(objs);
    assert_eq!(
        run.route_conds("infra", "r", 0),
        expect((true, "Accepted"), OK)
    );
    let expected = ["*.example.com", "a.example.com", "x.y.example.com"];
    assert_eq!(run.hostnames(("infra", "gw"), 80), expected);
    assert_eq!(
        run.vhost_entries(("infra", "gw"), 80, "*.example.com"),
        Vec::<String>::new()
    );
}

/// Listener isolation: `foo.example.com` belongs to the listener of that name, so a
/// route attached only to the wildcard listener does not serve it.
#[test]
fn listener_isolation() {
    let mut objs = base(vec![
        listener("wild", 80, Some("*.example.com"), FromNamespaces::Same),
        listener("foo", 80, Some("foo.example.com"), FromNamespaces::Same),
    ]);
    let mut p = parent("gw");
    p.section_name = Some("wild".into());
    let hosts = ["foo.example.com", "bar.example.com"];
    objs.push(http_route("infra", "r", vec![p], &hosts));
    let run = Run::new(objs);
    assert_eq!(
        run.route_conds("infra", "r", 0),
        expect((true, "Accepted"), OK)
    );
    let gw = ("infra", "gw");
    assert_eq!(
        run.vhost_entries(gw, 80, "bar.example.com"),
        ["infra/r/rule/0/match/0"]
    );
    assert_eq!(
        run.vhost_entries(gw, 80, "foo.example.com"),
        Vec::<String>::new()
    );
}

/// Removing the GatewayClass takes the Gateway away from us: no listener, no
/// status; restoring it brings them back.
#[test]
fn class_removal_detaches() {
    let mut objs = base(vec![listener("http", 80, None, FromNamespaces::Same)]);
    objs.push(http_route("infra", "r", vec![parent("gw")], &[]));
    let mut run = Run::new(objs);
    run.apply(vec![Change::Delete(class().id())]);
    assert!(run.xds.is_empty(), "{:#?}", run.xds);
    assert!(run.status.is_empty(), "{:#?}", run.status);
    run.apply(vec![Change::Apply(class())]);
    assert_eq!(
        run.route_conds("infra", "r", 0),
        expect((true, "Accepted"), OK)
    );
}
