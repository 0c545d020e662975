//! The dataflow: free functions over collections, one per join of the design.
//!
//! ```text
//! objects ─┬─ classes ⋈ gateways ─────────── listeners ─┐
//!          ├─ selectors ⋈ namespace labels ─ matched ───┼─ attach ─┬─ vhosts ─┐
//!          ├─ parentRefs ───────────────────────────────┘          ├─ status  │
//!          ├─ backendRefs ⋈ grants ⋈ services ─ resolved routes ───┘          ├─ outputs
//!          └─ endpoint slices ⋈ service ports ─ endpoints ────────────────────┘
//! ```
//! Every function is incremental: a change flows only through the joins whose keys
//! it touches. No operator groups a whole gateway; the largest group is one
//! virtual host's route entries.

use differential_dataflow::VecCollection;

use crate::attach::{Attachment, attach_routes};
use crate::backends::resolve_routes;
use crate::gateway::{ListenerView, gateway_status, listener_views};
use crate::ir::{
    EndpointsIr, ListenerIr, RouteParentStatus, StatusOutput, VirtualHostIr, XdsOutput,
    cluster_name,
};
use crate::model::{Gateway, Object, ObjectKey};
use crate::select::select_namespaces;

/// A collection at logical times `u64` with integer multiplicities.
pub type Col<'s, D> = VecCollection<'s, u64, D, isize>;

macro_rules! kind {
    ($objects:expr, $variant:ident) => {
        $objects.clone().flat_map(|o| match o {
            Object::$variant(x) => Some(x),
            _ => None,
        })
    };
}

/// The dataflow's two output streams.
pub struct Translation<'s> {
    /// Listeners, virtual hosts, gateway-cluster membership, clusters, endpoints.
    pub xds: Col<'s, XdsOutput>,
    /// Gateway statuses and route parent statuses.
    pub status: Col<'s, StatusOutput>,
}

impl std::fmt::Debug for Translation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translation").finish_non_exhaustive()
    }
}

/// Build the whole translation over the input objects.
pub fn translate<'s>(objects: Col<'s, Object>, controller: String) -> Translation<'s> {
    let classes = kind!(objects, GatewayClass);
    let gateways = kind!(objects, Gateway);
    let routes = kind!(objects, HttpRoute);
    let grants = kind!(objects, ReferenceGrant);
    let services = kind!(objects, Service);
    let slices = kind!(objects, EndpointSlice);
    let namespaces = kind!(objects, Namespace);

    let ours = classes
        .filter(move |c| c.controller_name == controller)
        .map(|c| c.name);
    let gateways = gateways
        .map(|g| (g.class_name.clone(), g))
        .semijoin(ours)
        .map(|(_, g)| g);
    let listeners: Col<'s, (ObjectKey, ListenerView)> = gateways.clone().flat_map(|g| {
        listener_views(&g)
            .into_iter()
            .map(|v| (v.gateway.clone(), v))
    });

    let matched = select_namespaces(listeners.clone(), namespaces);
    let gateway_keys = gateways.clone().map(|g| g.meta.key);
    let resolved = resolve_routes(routes.clone(), grants, services.clone());
    let attached = attach_routes(routes, listeners.clone(), matched, gateway_keys);

    let route_conditions = resolved.clone().map(|(route, r)| (route, r.resolved_refs));
    let route_status = route_status(attached.parents, route_conditions);
    let gateway_status = gateways_status(gateways, attached.counts);

    let serving = attached.serving;
    let listener_hosts = listeners.clone().flat_map(|(gw, v)| {
        v.serves_http
            .then(|| (gw, v.port, v.hostname.unwrap_or_else(|| "*".to_string())))
    });
    let vhosts = virtual_hosts(serving.clone(), resolved.clone(), listener_hosts);
    let (gateway_clusters, clusters) = clusters(serving, resolved);
    let referenced = gateway_clusters.clone().map(|(_, c)| c).distinct();
    let endpoints = endpoints(slices, services, referenced);
    let listeners = listeners
        .filter(|(_, v)| v.serves_http)
        .map(|(gateway, v)| ListenerIr {
            gateway,
            port: v.port,
        })
        .distinct();

    let xds = listeners
        .map(XdsOutput::Listener)
        .concat(vhosts.map(XdsOutput::VirtualHost))
        .concat(
            gateway_clusters
                .map(|(gateway, cluster)| XdsOutput::GatewayCluster { gateway, cluster }),
        )
        .concat(clusters.map(XdsOutput::Cluster))
        .concat(endpoints.map(XdsOutput::Endpoints));
    let status = gateway_status
        .map(StatusOutput::Gateway)
        .concat(route_status.map(StatusOutput::Route));
    Translation { xds, status }
}

/// Virtual hosts: attached route entries grouped by (gateway, port, hostname) and
/// ordered by precedence (reduce hands values sorted, and the precedence key leads).
/// Every serving listener's own hostname gets a virtual host, even without routes,
/// so Envoy never hands its requests to a less specific listener's routes.
fn virtual_hosts<'s>(
    serving: Col<'s, (ObjectKey, Attachment)>,
    resolved: Col<'s, (ObjectKey, crate::routes::ResolvedRoute)>,
    listener_hosts: Col<'s, (ObjectKey, u16, String)>,
) -> Col<'s, VirtualHostIr> {
    let resolved = resolved.arrange_by_key_named("resolved routes by route");
    let markers = listener_hosts.distinct().map(|key| (key, None));
    serving
        .join_core(resolved, |_route, a, r| {
            let key = (a.gateway.clone(), a.port, a.hostname.clone());
            r.entries
                .clone()
                .into_iter()
                .map(move |e| (key.clone(), Some(e)))
        })
        .concat(markers)
        .reduce_named(
            "virtual host routes",
            |(gateway, port, hostname), entries, out| {
                let routes = entries
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .filter_map(|(e, _)| e.as_ref().map(|e| e.1.clone()))
                    .collect();
                out.push((
                    VirtualHostIr {
                        gateway: gateway.clone(),
                        port: *port,
                        hostname: hostname.clone(),
                        routes,
                    },
                    1,
                ));
            },
        )
        .map(|(_, vh)| vh)
}

/// Clusters each gateway needs, and the clusters themselves.
fn clusters<'s>(
    serving: Col<'s, (ObjectKey, Attachment)>,
    resolved: Col<'s, (ObjectKey, crate::routes::ResolvedRoute)>,
) -> (Col<'s, (ObjectKey, String)>, Col<'s, crate::ir::ClusterIr>) {
    let route_gateways = serving.map(|(route, a)| (route, a.gateway)).distinct();
    let route_clusters =
        resolved.flat_map(|(route, r)| r.clusters.into_iter().map(move |c| (route.clone(), c)));
    let used = route_gateways
        .join(route_clusters)
        .map(|(_, (gw, c))| (gw, c))
        .distinct();
    let gateway_clusters = used.clone().map(|(gw, c)| (gw, c.name)).distinct();
    let clusters = used.map(|(_, c)| c).distinct();
    (gateway_clusters, clusters)
}

/// Ready endpoints of each referenced cluster: slices (by their service-name label)
/// ⋈ service ports, on (namespace, service, port name).
fn endpoints<'s>(
    slices: Col<'s, crate::model::EndpointSlice>,
    services: Col<'s, crate::model::Service>,
    referenced: Col<'s, String>,
) -> Col<'s, EndpointsIr> {
    let slice_ports = slices.flat_map(|s| {
        let mut out = vec![];
        if let Some(svc) = &s.service_name {
            for p in &s.ports {
                for a in &s.addresses {
                    let key = (s.key.namespace.clone(), svc.clone(), p.name.clone());
                    out.push((key, (a.clone(), p.port)));
                }
            }
        }
        out
    });
    let service_ports = services.flat_map(|s| {
        let key = s.key.clone();
        s.ports
            .into_iter()
            .map(move |p| ((key.namespace.clone(), key.name.clone(), p.name), p.port))
    });
    slice_ports
        .join(service_ports)
        .map(|((ns, svc, _), ((addr, port), svc_port))| {
            (
                cluster_name(&ObjectKey::new(ns, svc), svc_port),
                (addr, port),
            )
        })
        .semijoin(referenced)
        .distinct()
        .reduce_named("cluster endpoints", |cluster, eps, out| {
            let endpoints = eps
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(e, _)| (*e).clone())
                .collect();
            out.push((
                EndpointsIr {
                    cluster: cluster.clone(),
                    endpoints,
                },
                1,
            ));
        })
        .map(|(_, e)| e)
}

/// Route parent statuses: the attachment verdict per parentRef plus the route's
/// `ResolvedRefs` condition.
fn route_status<'s>(
    parents: Col<'s, (ObjectKey, RouteParentStatus)>,
    conditions: Col<'s, (ObjectKey, crate::ir::Condition)>,
) -> Col<'s, RouteParentStatus> {
    parents.join(conditions).map(|(_, (mut status, resolved))| {
        status.conditions.push(resolved);
        status.conditions.sort();
        status
    })
}

/// Gateway status: the gateway object with the attached-route count per listener.
fn gateways_status<'s>(
    gateways: Col<'s, Gateway>,
    counts: Col<'s, ((ObjectKey, String), isize)>,
) -> Col<'s, crate::ir::GatewayStatus> {
    #[derive(
        Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
    )]
    enum Fact {
        Count(String, u32),
        Object(Box<Gateway>),
    }
    let objects = gateways.map(|g| (g.meta.key.clone(), Fact::Object(Box::new(g))));
    let counts = counts
        .map(|((gw, listener), n)| (gw, Fact::Count(listener, u32::try_from(n).unwrap_or(0))));
    objects
        .concat(counts)
        .reduce_named("gateway status", |_gw, facts, out| {
            let mut attached = vec![];
            let mut object = None;
            for (fact, n) in facts {
                if *n <= 0 {
                    continue;
                }
                match fact {
                    Fact::Count(l, c) => attached.push((l.clone(), *c)),
                    Fact::Object(g) => object = Some(g),
                }
            }
            if let Some(g) = object {
                out.push((gateway_status(g, &attached), 1));
            }
        })
        .map(|(_, s)| s)
}
