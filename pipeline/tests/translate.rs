//! Dataflow behaviour tests: feed objects, step the pipeline, and check the whole
//! output state against what the Gateway API spec requires.

use std::collections::BTreeMap;

use sluice_pipeline::fixtures::*;
use sluice_pipeline::ir::{Action, Output, OutputKey};
use sluice_pipeline::model::*;
use sluice_pipeline::{Pipeline, PipelineConfig};

fn state_after(changes: Vec<Change>) -> BTreeMap<OutputKey, Output> {
    let mut p = Pipeline::new(PipelineConfig::default()).expect("pipeline");
    let delta = p.apply(changes).expect("apply");
    delta
        .updates
        .into_iter()
        .filter(|(_, d)| *d > 0)
        .map(|(o, _)| (o.key(), o))
        .collect()
}

fn apply(objs: Vec<Object>) -> Vec<Change> {
    objs.into_iter().map(Change::Apply).collect()
}

fn basic() -> Vec<Object> {
    vec![
        class(),
        Object::Gateway(gateway("infra", "gw", vec![http_listener("http", 80)])),
        service("infra", "web", &[8080]),
        slice(
            "infra",
            "web-1",
            "web",
            8080,
            3000,
            &["10.0.0.2", "10.0.0.1"],
        ),
        Object::HttpRoute(route(
            "infra",
            "r",
            vec![parent("gw")],
            &[],
            vec![prefix_rule("/", vec![backend("web", 8080)])],
        )),
    ]
}

#[test]
fn simple_route_translates_to_listener_vhost_cluster_endpoints() {
    let out = state_after(apply(basic()));
    let gw = ObjectKey::new("infra", "gw");
    assert!(out.contains_key(&OutputKey::Listener(gw.clone(), 80)));
    let Some(Output::VirtualHost(vh)) =
        out.get(&OutputKey::VirtualHost(gw.clone(), 80, "*".into()))
    else {
        panic!("no vhost: {out:#?}")
    };
    assert_eq!(vh.routes.len(), 1);
    match &vh.routes[0].action {
        Action::Forward { backends, .. } => {
            assert_eq!(backends[0].cluster.as_deref(), Some("infra/web:8080"))
        }
        other => panic!("unexpected action {other:?}"),
    }
    assert!(out.contains_key(&OutputKey::GatewayCluster(
        gw.clone(),
        "infra/web:8080".into()
    )));
    let Some(Output::Endpoints(eps)) = out.get(&OutputKey::Endpoints("infra/web:8080".into()))
    else {
        panic!("no endpoints")
    };
    assert_eq!(
        eps.endpoints,
        vec![
            ("10.0.0.1".to_string(), 3000),
            ("10.0.0.2".to_string(), 3000)
        ]
    );
    let Some(Output::GatewayStatus(st)) = out.get(&OutputKey::GatewayStatus(gw)) else {
        panic!("no status")
    };
    assert_eq!(st.listeners[0].attached_routes, 1);
    let Some(Output::RouteStatus(rs)) =
        out.get(&OutputKey::RouteStatus(ObjectKey::new("infra", "r"), 0))
    else {
        panic!("no route status")
    };
    // The spec's two route-parent conditions, both True (an empty list would make an
    // `all(..)` over it hold vacuously, so the types are checked as a set).
    let mut types: Vec<(&str, bool, &str)> = rs
        .conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status, c.reason.as_str()))
        .collect();
    types.sort();
    assert_eq!(
        types,
        vec![
            ("Accepted", true, "Accepted"),
            ("ResolvedRefs", true, "ResolvedRefs")
        ],
        "{rs:?}"
    );
}

fn keys_changed(p: &mut Pipeline, change: Change) -> Vec<OutputKey> {
    let delta = p.apply([change]).expect("apply");
    let mut keys: Vec<OutputKey> = delta.updates.iter().map(|(o, _)| o.key()).collect();
    keys.dedup();
    keys
}

/// An endpoint change flows only down the endpoints path: exactly one output (that
/// cluster's endpoints) changes; no listener, virtual host, cluster or status does.
#[test]
fn endpoint_change_touches_only_its_endpoints() {
    let mut p = Pipeline::new(PipelineConfig::default()).expect("pipeline");
    let mut objs = basic();
    objs.push(service("infra", "other", &[9090]));
    objs.push(slice("infra", "other-1", "other", 9090, 9, &["10.0.1.1"]));
    p.apply(apply(objs)).expect("initial");
    let changed = keys_changed(
        &mut p,
        Change::Apply(slice(
            "infra",
            "web-1",
            "web",
            8080,
            3000,
            &["10.0.0.1", "10.0.0.3"],
        )),
    );
    assert_eq!(changed, vec![OutputKey::Endpoints("infra/web:8080".into())]);
}

/// A route change re-sorts only the virtual host it is on; the listener, clusters,
/// endpoints and the gateway's status stay untouched (the route's own status keeps
/// its value, so it does not change either).
#[test]
fn route_change_touches_only_its_virtual_host() {
    let mut p = Pipeline::new(PipelineConfig::default()).expect("pipeline");
    p.apply(apply(basic())).expect("initial");
    let r = route(
        "infra",
        "r",
        vec![parent("gw")],
        &[],
        vec![prefix_rule("/v2", vec![backend("web", 8080)])],
    );
    let changed = keys_changed(&mut p, Change::Apply(Object::HttpRoute(r)));
    let gw = ObjectKey::new("infra", "gw");
    assert_eq!(changed, vec![OutputKey::VirtualHost(gw, 80, "*".into())]);
}
