//! Clusters and endpoints: the cluster keys referenced on each gateway, the
//! clusters themselves, and the ready endpoints of each referenced cluster
//! (endpoint slices, by their `kubernetes.io/service-name` label, ⋈ the Service's
//! ports). An endpoint change flows only down this path.

use crate::ir::{ClusterIr, ClusterKey, EndpointsIr};
use crate::model::{EndpointSlice, ObjectKey, Service};
use crate::spec::routes::ResolvedRoute;

use super::attach::Attachment;
use super::col::{ByKey, Col, distinct_named, join_named, semijoin_named};

/// Clusters each gateway needs (by name), and the clusters themselves.
pub fn clusters<'s>(
    serving: Col<'s, (ObjectKey, Attachment)>,
    resolved: Col<'s, (ObjectKey, ResolvedRoute)>,
) -> (Col<'s, (ObjectKey, String)>, Col<'s, ClusterIr>) {
    let route_gateways = distinct_named(
        "gateways of routes",
        serving.map(|(route, a)| (route, a.gateway)),
    );
    let route_clusters =
        resolved.flat_map(|(route, r)| r.clusters.into_iter().map(move |c| (route.clone(), c)));
    let used = join_named("clusters of routes", route_gateways, route_clusters)
        .map(|(_, (gw, c))| (gw, c));
    let used = distinct_named("clusters of gateways", used);
    let gateway_clusters = distinct_named(
        "cluster names of gateways",
        used.clone().map(|(gw, c)| (gw, c.name)),
    );
    let clusters = distinct_named("clusters", used.map(|(_, c)| c));
    (gateway_clusters, clusters)
}

/// Ready endpoints of each referenced cluster. `services_arranged`: Services by
/// (namespace, name); `referenced`: cluster names, each once.
pub fn endpoints<'s>(
    slices: Col<'s, EndpointSlice>,
    services_arranged: ByKey<'s, (String, String), Service>,
    referenced: Col<'s, String>,
) -> Col<'s, EndpointsIr> {
    let slice_ports = slices.flat_map(|s| {
        let mut out = vec![];
        if let Some(svc) = &s.service_name {
            for p in &s.ports {
                for a in &s.addresses {
                    let key = (s.key.namespace.clone(), svc.clone());
                    out.push((key, (p.name.clone(), a.clone(), p.port)));
                }
            }
        }
        out
    });
    let by_cluster = slice_ports
        .arrange_by_key_named("slice ports by service")
        .join_core(services_arranged, |_, (name, addr, port), svc| {
            let named = svc.ports.iter().filter(|p| p.name == *name);
            named
                .map(|p| {
                    let cluster = ClusterKey::new(svc.key.clone(), p.port).name();
                    (cluster, (addr.clone(), *port))
                })
                .collect::<Vec<_>>()
        });
    let by_cluster = semijoin_named("endpoints of referenced clusters", by_cluster, referenced);
    distinct_named("cluster endpoints (distinct)", by_cluster)
        .reduce_named("cluster endpoints", |cluster, eps, out| {
            let endpoints = eps
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(e, _)| (*e).clone())
                .collect();
            let ir = EndpointsIr {
                cluster: cluster.clone(),
                endpoints,
            };
            out.push((ir, 1));
        })
        .map(|(_, e)| e)
}
