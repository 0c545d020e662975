//! Checks that the translator re-encodes only what a delta changed and
//! publishes only the gateways it affects: an endpoint change costs one encode
//! and replaces one resource, clusters are shared between gateways, a held
//! cluster always has an assignment, route tables equal a from-scratch
//! encoding, and a gateway that loses everything is published empty once.
//! Also that exact hostnames get API listeners for gRPC clients (the lowest
//! port's), and wildcard hostnames none.
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use sluice_pipeline::ir::{
    Action, ClusterIr, EndpointsIr, GatewayStatus, ListenerIr, RouteIr, StatusOutput, VirtualHostIr,
};
use sluice_pipeline::model::{HeaderModifier, PathMatch, RouteMatch, Timeouts};

use prost::Message;

use super::*;
use crate::encode;
use crate::state::{Resource, ResourceType};

fn gw(name: &str) -> ObjectKey {
    ObjectKey::new("infra", name)
}

fn listener(g: &str, port: u16) -> XdsOutput {
    XdsOutput::Listener(ListenerIr {
        gateway: gw(g),
        port,
        tls: vec![],
    })
}

fn vhost(g: &str, hostname: &str, clusters: &[&str]) -> XdsOutput {
    vhost_on(g, 80, hostname, clusters)
}

fn vhost_on(g: &str, port: u16, hostname: &str, clusters: &[&str]) -> XdsOutput {
    let routes = clusters
        .iter()
        .map(|c| RouteIr {
            name: format!("ns/r/{c}"),
            matcher: RouteMatch {
                path: PathMatch::Prefix(format!("/{c}")),
                ..Default::default()
            },
            action: Action::Forward {
                backends: vec![sluice_pipeline::ir::WeightedBackend {
                    cluster: Some((*c).to_owned()),
                    weight: 1,
                    filters: vec![],
                }],
                rewrite: None,
            },
            request_headers: HeaderModifier::default(),
            response_headers: HeaderModifier::default(),
            mirrors: vec![],
            timeouts: Timeouts::default(),
        })
        .collect();
    XdsOutput::VirtualHost(VirtualHostIr {
        gateway: gw(g),
        port,
        hostname: hostname.to_owned(),
        routes,
    })
}

fn member(g: &str, cluster: &str) -> XdsOutput {
    XdsOutput::GatewayCluster {
        gateway: gw(g),
        cluster: cluster.to_owned(),
    }
}

fn cluster(name: &str) -> XdsOutput {
    XdsOutput::Cluster(ClusterIr {
        name: name.to_owned(),
        service: ObjectKey::new("ns", name),
        port: 80,
        app_protocol: None,
        tls: None,
    })
}

fn endpoints(cluster: &str, ips: &[&str]) -> XdsOutput {
    XdsOutput::Endpoints(EndpointsIr {
        cluster: cluster.to_owned(),
        endpoints: ips.iter().map(|ip| ((*ip).to_owned(), 8080)).collect(),
    })
}

fn delta(time: u64, added: Vec<XdsOutput>, removed: Vec<XdsOutput>) -> Delta {
    let updates = added
        .into_iter()
        .map(|o| (o, 1))
        .chain(removed.into_iter().map(|o| (o, -1)))
        .collect();
    Delta {
        time,
        xds: updates,
        status: vec![],
    }
}

/// g1 holds c1 and c2, g2 holds c2; both clusters have endpoints.
fn two_gateways() -> (Translator, BTreeMap<ObjectKey, Arc<GatewayResources>>) {
    let mut t = Translator::new(EncodeConfig::default());
    let initial = delta(
        1,
        vec![
            listener("g1", 80),
            listener("g2", 80),
            vhost("g1", "a.example.com", &["c1", "c2"]),
            vhost("g2", "*", &["c2"]),
            member("g1", "c1"),
            member("g1", "c2"),
            member("g2", "c2"),
            cluster("c1"),
            cluster("c2"),
            endpoints("c1", &["10.0.0.1"]),
            endpoints("c2", &["10.0.0.2"]),
        ],
        vec![],
    );
    let published = t.apply(&initial).expect("applies");
    (t, published)
}

/// Resources of `new` that are not the very same `Arc` as in `old`.
fn replaced(old: &GatewayResources, new: &GatewayResources) -> Vec<(ResourceType, String)> {
    let mut out = vec![];
    for ty in ResourceType::ALL {
        for (name, r) in new.get(ty) {
            if !old.get(ty).get(name).is_some_and(|o| Arc::ptr_eq(o, r)) {
                out.push((ty, name.clone()));
            }
        }
    }
    out
}

#[test]
fn initial_sets_are_complete() {
    let (_, published) = two_gateways();
    let g1 = &published[&gw("g1")];
    assert_eq!(g1.time, 1);
    let names = |ty| g1.get(ty).keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(ResourceType::Listener), ["infra/g1/80"]);
    assert_eq!(names(ResourceType::Route), ["infra/g1/80"]);
    assert_eq!(names(ResourceType::Cluster), ["c1", "c2"]);
    assert_eq!(names(ResourceType::Endpoint), ["c1", "c2"]);
    assert_eq!(published[&gw("g2")].get(ResourceType::Cluster).len(), 1);
}

#[test]
fn endpoint_change_encodes_and_replaces_one_resource() {
    let (mut t, before) = two_gateways();
    let encodes = t.encoded_resources();
    let change = delta(
        2,
        vec![endpoints("c1", &["10.0.0.1", "10.0.0.3"])],
        vec![endpoints("c1", &["10.0.0.1"])],
    );
    let published = t.apply(&change).expect("applies");

    assert_eq!(
        t.encoded_resources() - encodes,
        1,
        "one ClusterLoadAssignment encoded"
    );
    assert_eq!(
        published.keys().collect::<Vec<_>>(),
        [&gw("g1")],
        "only c1's holder"
    );
    let g1 = &published[&gw("g1")];
    assert_eq!(g1.time, 2);
    assert_eq!(
        replaced(&before[&gw("g1")], g1),
        [(ResourceType::Endpoint, "c1".to_owned())]
    );
}

#[test]
fn clusters_and_endpoints_are_shared_between_gateways() {
    let (mut t, published) = two_gateways();
    for ty in [ResourceType::Cluster, ResourceType::Endpoint] {
        let a = &published[&gw("g1")].get(ty)["c2"];
        let b = &published[&gw("g2")].get(ty)["c2"];
        assert!(Arc::ptr_eq(a, b), "{ty:?} c2 is one shared resource");
    }
    // A change to c2 reaches both holders with the same new resource.
    let change = delta(
        2,
        vec![endpoints("c2", &["10.0.0.9"])],
        vec![endpoints("c2", &["10.0.0.2"])],
    );
    let published = t.apply(&change).expect("applies");
    assert_eq!(published.len(), 2);
    let a = &published[&gw("g1")].get(ResourceType::Endpoint)["c2"];
    let b = &published[&gw("g2")].get(ResourceType::Endpoint)["c2"];
    assert!(Arc::ptr_eq(a, b));
}

#[test]
fn held_cluster_without_endpoints_gets_an_empty_assignment() {
    let (mut t, _) = two_gateways();
    let published = t
        .apply(&delta(2, vec![], vec![endpoints("c2", &["10.0.0.2"])]))
        .expect("applies");
    assert_eq!(published.len(), 2);
    let cla = &published[&gw("g2")].get(ResourceType::Endpoint)["c2"];
    let expected = encode::cluster::load_assignment("c2", &[]).encode_to_vec();
    assert_eq!(cla.body.as_ref(), expected.as_slice());
}

#[test]
fn vhost_change_reencodes_one_vhost_and_the_table_matches_a_fresh_encoding() {
    let (mut t, before) = two_gateways();
    let encodes = t.encoded_resources();
    let change = delta(2, vec![vhost("g1", "b.example.com", &["c1"])], vec![]);
    let published = t.apply(&change).expect("applies");
    assert_eq!(
        t.encoded_resources() - encodes,
        2,
        "only the new virtual host and its API listener"
    );
    let g1 = &published[&gw("g1")];
    assert_eq!(
        replaced(&before[&gw("g1")], g1),
        [(ResourceType::Route, "infra/g1/80".to_owned())]
    );

    let fresh = RouteConfiguration {
        name: "infra/g1/80".to_owned(),
        virtual_hosts: ["a.example.com", "b.example.com"]
            .iter()
            .zip([&["c1", "c2"][..], &["c1"][..]])
            .map(|(h, cs)| match vhost("g1", h, cs) {
                XdsOutput::VirtualHost(v) => encode::route::virtual_host(&v),
                _ => unreachable!(),
            })
            .collect(),
        ignore_port_in_host_matching: true,
        ..Default::default()
    };
    let route = &g1.get(ResourceType::Route)["infra/g1/80"];
    assert_eq!(route.body.as_ref(), fresh.encode_to_vec().as_slice());
}

/// The route configuration an API listener's HCM reads over RDS.
fn rds_name_of(api: &Resource) -> String {
    let listener = Listener::decode(api.body.as_ref()).expect("decodes");
    assert_eq!(listener.name, api.name);
    assert!(listener.address.is_none() && listener.filter_chains.is_empty());
    let any = listener
        .api_listener
        .and_then(|a| a.api_listener)
        .expect("an API listener");
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).expect("an HCM");
    match hcm.route_specifier {
        Some(RouteSpecifier::Rds(rds)) => rds.route_config_name,
        other => panic!("expected RDS, got {other:?}"),
    }
}

#[test]
fn exact_hostnames_get_api_listeners_of_their_lowest_port() {
    let mut t = Translator::new(EncodeConfig::default());
    let published = t
        .apply(&delta(
            1,
            vec![
                listener("g", 80),
                listener("g", 8080),
                vhost_on("g", 8080, "a.example.com", &["c1"]),
                vhost_on("g", 8080, "b.example.com", &["c1"]),
                vhost_on("g", 80, "b.example.com", &["c1"]),
                vhost_on("g", 80, "*.example.com", &["c1"]),
                vhost_on("g", 80, "*", &["c1"]),
            ],
            vec![],
        ))
        .expect("applies");
    let g = &published[&gw("g")];
    let apis: Vec<(&str, String)> = g
        .api_listeners
        .iter()
        .map(|(h, r)| (h.as_str(), rds_name_of(r)))
        .collect();
    assert_eq!(
        apis,
        [
            ("a.example.com", "infra/g/8080".to_owned()),
            ("b.example.com", "infra/g/80".to_owned()),
        ]
    );
    // Socket listeners are unchanged: one per port.
    assert_eq!(
        g.get(ResourceType::Listener).keys().collect::<Vec<_>>(),
        ["infra/g/80", "infra/g/8080"]
    );

    // b.example.com leaves port 80: port 8080's API listener takes over.
    let published = t
        .apply(&delta(
            2,
            vec![],
            vec![vhost_on("g", 80, "b.example.com", &["c1"])],
        ))
        .expect("applies");
    let b = &published[&gw("g")].api_listeners["b.example.com"];
    assert_eq!(rds_name_of(b), "infra/g/8080");

    // A port without its listener serves no API listener.
    let published = t
        .apply(&delta(3, vec![], vec![listener("g", 8080)]))
        .expect("applies");
    assert!(published[&gw("g")].api_listeners.is_empty());
}

#[test]
fn listener_without_vhosts_has_an_empty_route_table() {
    let mut t = Translator::new(EncodeConfig::default());
    let published = t
        .apply(&delta(1, vec![listener("g", 8080)], vec![]))
        .expect("applies");
    let route = &published[&gw("g")].get(ResourceType::Route)["infra/g/8080"];
    let decoded = RouteConfiguration::decode(route.body.as_ref()).expect("decodes");
    assert!(decoded.virtual_hosts.is_empty());
}

#[test]
fn gateway_losing_everything_is_published_empty_once() {
    let (mut t, _) = two_gateways();
    let gone = delta(
        2,
        vec![],
        vec![
            listener("g2", 80),
            vhost("g2", "*", &["c2"]),
            member("g2", "c2"),
        ],
    );
    let published = t.apply(&gone).expect("applies");
    assert_eq!(published.keys().collect::<Vec<_>>(), [&gw("g2")]);
    assert!(published[&gw("g2")].by_type.iter().all(|m| m.is_empty()));
    assert_eq!(
        t.gateways().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        [gw("g1")]
    );

    // Later deltas do not mention it again.
    let later = delta(
        3,
        vec![endpoints("c2", &["10.0.0.7"])],
        vec![endpoints("c2", &["10.0.0.2"])],
    );
    let published = t.apply(&later).expect("applies");
    assert_eq!(published.keys().collect::<Vec<_>>(), [&gw("g1")]);
}

#[test]
fn status_and_no_op_deltas_publish_nothing() {
    let (mut t, _) = two_gateways();
    let status = StatusOutput::Gateway(GatewayStatus {
        gateway: gw("g1"),
        generation: 1,
        conditions: vec![],
        listeners: vec![],
    });
    let status_only = Delta {
        status: vec![(status, 1)],
        ..delta(2, vec![], vec![])
    };
    assert!(t.apply(&status_only).expect("applies").is_empty());
    // Re-adding an identical cluster encodes it but changes no gateway's set.
    let same = delta(3, vec![cluster("c1")], vec![]);
    assert!(t.apply(&same).expect("applies").is_empty());
}
