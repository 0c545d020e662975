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
    assert!(rs.conditions.iter().all(|c| c.status), "{rs:?}");
}
