//! The runtime's contract, checked through its public API: each `apply` is one
//! complete logical time whose xDS and status leave as separate streams; a change
//! that touches only status publishes no xDS, an endpoint change publishes only its
//! gateway's ClusterLoadAssignment, and a gateway that goes away is published once
//! with an empty set while its status is retracted.

use sluice_pipeline::fixtures::*;
use sluice_pipeline::ir::StatusOutput;
use sluice_pipeline::model::{Change, Object, ObjectKey};
use sluice_runtime::{Controller, ControllerConfig, Step};
use sluice_sinks::state::{GatewayResources, ResourceType};

fn controller() -> Controller {
    Controller::new(ControllerConfig::default()).expect("controller starts")
}

fn gw() -> ObjectKey {
    ObjectKey::new("infra", "gw")
}

fn names(res: &GatewayResources, ty: ResourceType) -> Vec<String> {
    res.get(ty).keys().cloned().collect()
}

fn status_keys(step: &Step, added: bool) -> Vec<String> {
    let mut keys: Vec<String> = step
        .status
        .iter()
        .filter(|(_, d)| (*d > 0) == added)
        .map(|(s, _)| match s {
            StatusOutput::Gateway(g) => {
                format!("gateway {}/{}", g.gateway.namespace, g.gateway.name)
            }
            StatusOutput::Route(r) => {
                format!("route {}/{}#{}", r.route.namespace, r.route.name, r.index)
            }
            StatusOutput::BackendTlsPolicy(p) => {
                format!("backendtlspolicy {}/{}", p.policy.namespace, p.policy.name)
            }
        })
        .collect();
    keys.sort();
    keys
}

#[test]
fn initial_load_publishes_the_gateway_and_its_status_in_one_time() {
    let mut c = controller();
    let step = c
        .apply(basic().into_iter().map(Change::Apply))
        .expect("applies");
    assert_eq!(step.time, 0);
    assert_eq!(step.changes, 5);
    let res = step.xds.get(&gw()).expect("gateway published");
    assert_eq!(names(res, ResourceType::Listener), ["infra/gw/80"]);
    assert_eq!(names(res, ResourceType::Route), ["infra/gw/80"]);
    assert_eq!(names(res, ResourceType::Cluster), ["infra/web:8080"]);
    assert_eq!(names(res, ResourceType::Endpoint), ["infra/web:8080"]);
    assert_eq!(
        status_keys(&step, true),
        ["gateway infra/gw", "route infra/r#0"]
    );
    assert!(status_keys(&step, false).is_empty());
    assert_eq!(c.status().gateways().count(), 1);
    assert_eq!(c.gateways().count(), 1);
    assert_eq!(c.time(), 1);
}

#[test]
fn a_status_only_change_publishes_no_xds() {
    let mut c = controller();
    c.apply(basic().into_iter().map(Change::Apply))
        .expect("applies");
    // A new generation of the same route: observedGeneration changes, xDS does not.
    let mut r = route(
        "infra",
        "r",
        vec![parent("gw")],
        &[],
        vec![prefix_rule("/", vec![backend("web", 8080)])],
    );
    r.meta.generation = 2;
    let step = c
        .apply([Change::Apply(Object::HttpRoute(r))])
        .expect("applies");
    assert!(
        step.xds.is_empty(),
        "no gateway's xDS changed: {:?}",
        step.xds.keys()
    );
    assert_eq!(status_keys(&step, true), ["route infra/r#0"]);
    assert_eq!(status_keys(&step, false), ["route infra/r#0"]);
}

#[test]
fn an_endpoint_change_republishes_only_the_load_assignment() {
    let mut c = controller();
    let first = c
        .apply(basic().into_iter().map(Change::Apply))
        .expect("applies");
    let before = first.xds.get(&gw()).expect("published").clone();
    let moved = slice("infra", "web-1", "web", 8080, 3000, &["10.0.0.2"]);
    let step = c.apply([Change::Apply(moved)]).expect("applies");
    assert!(step.status.is_empty(), "status did not change");
    let after = step.xds.get(&gw()).expect("gateway republished");
    for ty in [
        ResourceType::Listener,
        ResourceType::Route,
        ResourceType::Cluster,
    ] {
        let same = before.get(ty).iter().zip(after.get(ty).iter());
        assert!(
            same.clone().count() == before.get(ty).len()
                && same
                    .into_iter()
                    .all(|((n1, r1), (n2, r2))| n1 == n2 && r1.version == r2.version),
            "{ty:?} unchanged"
        );
    }
    let cla = |res: &GatewayResources| {
        let cla = res.get(ResourceType::Endpoint).get("infra/web:8080");
        cla.map(|r| r.version.clone())
            .expect("the cluster's load assignment")
    };
    assert_ne!(cla(&before), cla(after), "the load assignment changed");
}

#[test]
fn a_deleted_gateway_is_published_empty_once_and_its_status_retracted() {
    let mut c = controller();
    c.apply(basic().into_iter().map(Change::Apply))
        .expect("applies");
    let gateway = Object::Gateway(gateway("infra", "gw", vec![http_listener("http", 80)]));
    let step = c.apply([Change::Delete(gateway.id())]).expect("applies");
    let res = step.xds.get(&gw()).expect("gateway published once more");
    assert!(res.is_empty(), "with nothing in it");
    assert_eq!(
        status_keys(&step, false),
        ["gateway infra/gw", "route infra/r#0"]
    );
    assert_eq!(c.status().gateways().count(), 0);
    let again = c.apply([]).expect("an empty time");
    assert!(again.xds.is_empty() && again.status.is_empty());
}
