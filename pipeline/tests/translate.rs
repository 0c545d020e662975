//! Dataflow behaviour tests: feed objects, step the pipeline, and check the whole
//! output state against what the Gateway API spec requires.

use std::collections::BTreeMap;

use sluice_pipeline::fixtures::*;
use sluice_pipeline::ir::{Action, Keyed, StatusKey, StatusOutput, XdsKey, XdsOutput};
use sluice_pipeline::model::*;
use sluice_pipeline::{Pipeline, PipelineConfig};

/// The xDS and status records after one time of changes, by key.
type State = (
    BTreeMap<XdsKey, XdsOutput>,
    BTreeMap<StatusKey, StatusOutput>,
);

fn state_after(changes: Vec<Change>) -> State {
    let mut p = Pipeline::new(PipelineConfig::default()).expect("pipeline");
    let delta = p.apply(changes).expect("apply");
    (by_key(delta.xds), by_key(delta.status))
}

fn by_key<T: Keyed>(updates: Vec<(T, isize)>) -> BTreeMap<T::Key, T> {
    updates
        .into_iter()
        .filter(|(_, d)| *d > 0)
        .map(|(o, _)| (o.key(), o))
        .collect()
}

fn apply(objs: Vec<Object>) -> Vec<Change> {
    objs.into_iter().map(Change::Apply).collect()
}

#[test]
fn simple_route_translates_to_listener_vhost_cluster_endpoints() {
    let (out, status) = state_after(apply(basic()));
    let gw = ObjectKey::new("infra", "gw");
    assert!(out.contains_key(&XdsKey::Listener(gw.clone(), 80)));
    let Some(XdsOutput::VirtualHost(vh)) =
        out.get(&XdsKey::VirtualHost(gw.clone(), 80, "*".into()))
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
    assert!(out.contains_key(&XdsKey::GatewayCluster(gw.clone(), "infra/web:8080".into())));
    let Some(XdsOutput::Endpoints(eps)) = out.get(&XdsKey::Endpoints("infra/web:8080".into()))
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
    let Some(StatusOutput::Gateway(st)) = status.get(&StatusKey::Gateway(gw)) else {
        panic!("no status")
    };
    assert_eq!(st.listeners[0].attached_routes, 1);
    let Some(StatusOutput::Route(rs)) =
        status.get(&StatusKey::Route(ObjectKey::new("infra", "r"), 0))
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

/// The keys whose records changed, per stream.
fn keys_changed(p: &mut Pipeline, change: Change) -> (Vec<XdsKey>, Vec<StatusKey>) {
    let delta = p.apply([change]).expect("apply");
    (keys_of(&delta.xds), keys_of(&delta.status))
}

fn keys_of<T: Keyed>(updates: &[(T, isize)]) -> Vec<T::Key> {
    let mut keys: Vec<T::Key> = updates.iter().map(|(o, _)| o.key()).collect();
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
    let endpoints = XdsKey::Endpoints("infra/web:8080".into());
    assert_eq!(changed, (vec![endpoints], vec![]));
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
    let vhost = XdsKey::VirtualHost(gw, 80, "*".into());
    assert_eq!(changed, (vec![vhost], vec![]));
}
