//! The dataflow: the composition of the stages, one file each, as free functions
//! over collections.
//!
//! ```text
//! objects ─┬─ classes ⋈ gateways ─────────── listeners ─┐                 (gateways)
//!          ├─ selectors ⋈ namespace labels ─ matched ───┼─ attach ─┬─ vhosts ─┐ (select, attach, vhosts)
//!          ├─ parentRefs ───────────────────────────────┘          ├─ status  │ (status)
//!          ├─ backendRefs ⋈ grants ⋈ services ─ resolved routes ───┘          ├─ xds
//!          └─ endpoint slices ⋈ services ─ endpoints ─────────────────────────┘ (backends, endpoints)
//! ```
//! Every function is incremental: a change flows only through the joins whose keys
//! it touches. No operator groups a whole gateway; the largest group is one
//! virtual host's route entries. Collections that several stages join against are
//! arranged once, here, and passed in (`*_arranged`).

mod attach;
mod backends;
mod certificates;
mod col;
mod endpoints;
mod gateways;
mod left_join;
mod policies;
mod select;
mod status;
mod vhosts;

pub use col::Col;

pub use certificates::secret_name;

use crate::ir::{
    BackendTlsIr, ClientValidationIr, ClusterIr, ClusterKey, ListenerIr, StatusOutput, TlsChain,
    XdsOutput, ca_bundle_name,
};
use crate::model::{EndpointSlice, Object, ObjectKey, Service};
use crate::spec::listener::{CertificateVerdict, ListenerView};
use crate::spec::routes::ResolvedRoute;

use col::{ByKey, distinct_named, join_named};
use left_join::left_join_named;

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

macro_rules! kind {
    ($objects:expr, $variant:ident) => {
        $objects.clone().flat_map(|o| match o {
            Object::$variant(x) => Some(x),
            _ => None,
        })
    };
}

/// Build the whole translation over the input objects. Each stage runs in a region
/// named after it, so timely's logs and profiles group its operators.
/// `max_port`: the highest Gateway listener port the proxies can bind; `bind`:
/// the addresses they bind (for Gateway `spec.addresses` status).
pub fn translate<'s>(
    objects: Col<'s, Object>,
    controller: String,
    max_port: u16,
    bind: crate::spec::gateway::BindAddresses,
) -> Translation<'s> {
    let outer = objects.scope();
    let routes = kind!(objects, HttpRoute);
    let services_arranged: ByKey<'s, (String, String), Service> = kind!(objects, Service)
        .map(|s| ((s.key.namespace.clone(), s.key.name.clone()), s))
        .arrange_by_key_named("services by name");
    let admitted = outer.region_named("gateways", |r| {
        let classes = kind!(objects, GatewayClass).enter_region(r);
        gateways::admit(
            classes,
            kind!(objects, Gateway).enter_region(r),
            controller,
            max_port,
        )
        .leave_region(outer)
    });
    let listeners = admitted.listeners;
    let certs = outer.region_named("certificates", |r| {
        let grants = kind!(objects, ReferenceGrant).enter_region(r);
        let secrets = kind!(objects, Secret).enter_region(r);
        let config_maps = kind!(objects, ConfigMap).enter_region(r);
        let listeners = listeners.clone().enter_region(r);
        let c = certificates::certificates(listeners, grants, secrets, config_maps);
        (
            c.verdicts.leave_region(outer),
            c.secrets.leave_region(outer),
        )
    });
    let (verdicts, secrets) = certs;
    let matched = outer.region_named("select", |r| {
        let namespaces = kind!(objects, Namespace).enter_region(r);
        select::select_namespaces(listeners.clone().enter_region(r), namespaces).leave_region(outer)
    });
    let resolved = outer.region_named("backends", |r| {
        let (routes, services) = (routes.clone().enter_region(r), services_arranged.clone());
        let grants = kind!(objects, ReferenceGrant).enter_region(r);
        backends::resolve_routes(routes, grants, services.enter_region(r)).leave_region(outer)
    });
    let attached = outer.region_named("attach", |r| {
        let gateway_keys = admitted
            .gateways
            .clone()
            .map(|g| g.meta.key)
            .enter_region(r);
        let listeners = admitted.listeners_arranged.enter_region(r);
        let (routes, matched) = (routes.enter_region(r), matched.enter_region(r));
        attach::attach_routes(routes, listeners, matched, gateway_keys).leave_region(outer)
    });
    let policies = outer.region_named("policies", |r| {
        let p = policies::policies(
            kind!(objects, BackendTlsPolicy).enter_region(r),
            kind!(objects, ConfigMap).enter_region(r),
            services_arranged.clone().enter_region(r),
            attached.serving.clone().enter_region(r),
            resolved.clone().enter_region(r),
        );
        (
            p.cluster_tls.leave_region(outer),
            p.status.leave_region(outer),
        )
    });
    let (cluster_tls, policy_status) = policies;
    let status = outer.region_named("status", |r| {
        let conditions = resolved
            .clone()
            .map(|(route, rr)| (route, (rr.resolved_refs, rr.validity)));
        let gateways = status::gateways_status(
            admitted.gateways.enter_region(r),
            attached.counts.enter_region(r),
            verdicts.clone().enter_region(r),
            max_port,
            bind,
        );
        let routes =
            status::route_status(attached.parents.enter_region(r), conditions.enter_region(r));
        let routes = routes.map(StatusOutput::Route).leave_region(outer);
        gateways
            .map(StatusOutput::Gateway)
            .leave_region(outer)
            .concat(routes)
            .concat(policy_status.map(StatusOutput::BackendTlsPolicy))
    });
    let xds = outer.region_named("xds", |r| {
        let (serving, resolved) = (attached.serving.enter_region(r), resolved.enter_region(r));
        let listeners = listeners.enter_region(r);
        let slices = kind!(objects, EndpointSlice).enter_region(r);
        let tls = (verdicts.enter_region(r), secrets.enter_region(r));
        xds(
            listeners,
            tls,
            (serving, resolved),
            cluster_tls.enter_region(r),
            slices,
            services_arranged.enter_region(r),
        )
        .leave_region(outer)
    });
    Translation { xds, status }
}

/// The xDS stream: listeners, virtual hosts, gateway-cluster membership, clusters
/// and their endpoints.
#[allow(clippy::type_complexity)]
fn xds<'s>(
    listeners: Col<'s, (ObjectKey, ListenerView)>,
    (verdicts, secrets): (
        Col<'s, ((ObjectKey, String), CertificateVerdict)>,
        Col<'s, (ObjectKey, crate::ir::SecretIr)>,
    ),
    (serving, resolved): (
        Col<'s, (ObjectKey, attach::Attachment)>,
        Col<'s, (ObjectKey, ResolvedRoute)>,
    ),
    cluster_tls: Col<'s, (ClusterKey, BackendTlsIr)>,
    slices: Col<'s, EndpointSlice>,
    services_arranged: ByKey<'s, (String, String), Service>,
) -> Col<'s, XdsOutput> {
    let listener_hosts = listeners.clone().flat_map(|(gw, v)| {
        v.serves_http
            .then(|| (gw, v.port, v.hostname.unwrap_or_else(|| "*".to_string())))
    });
    let vhosts = vhosts::virtual_hosts(serving.clone(), resolved.clone(), listener_hosts);
    let (gateway_clusters, clusters) = endpoints::clusters(serving, resolved);
    // Each cluster with the TLS settings of the policy that applies to its port.
    let clusters = left_join_named(
        "clusters with backend tls",
        clusters.map(|c| (ClusterKey::new(c.service.clone(), c.port), c)),
        cluster_tls,
        |_, c, tls| {
            Some(ClusterIr {
                tls: tls.first().map(|t| (*t).clone()),
                ..c.clone()
            })
        },
    )
    .map(|(_, c)| c);
    let referenced = distinct_named(
        "referenced clusters",
        gateway_clusters.clone().map(|(_, c)| c),
    );
    let endpoints = endpoints::endpoints(slices, services_arranged, referenced);
    envoy_listeners(listeners, verdicts)
        .map(XdsOutput::Listener)
        .concat(vhosts.map(XdsOutput::VirtualHost))
        .concat(
            gateway_clusters
                .map(|(gateway, cluster)| XdsOutput::GatewayCluster { gateway, cluster }),
        )
        .concat(clusters.map(XdsOutput::Cluster))
        .concat(endpoints.map(XdsOutput::Endpoints))
        .concat(secrets.map(|(gateway, secret)| XdsOutput::Secret { gateway, secret }))
}

/// One Envoy listener per (gateway, port) of the serving listeners: plain HTTP
/// ports as they are; an HTTPS port with a TLS chain per listener that has a valid
/// certificate (a port none of whose listeners has one is not served). The group of
/// the reduce is one port's HTTPS listeners.
fn envoy_listeners<'s>(
    listeners: Col<'s, (ObjectKey, ListenerView)>,
    verdicts: Col<'s, ((ObjectKey, String), CertificateVerdict)>,
) -> Col<'s, ListenerIr> {
    let serving = listeners.filter(|(_, v)| v.serves_http);
    let http = serving
        .clone()
        .filter(|(_, v)| v.certificate_refs.is_empty())
        .map(|(gateway, v)| ListenerIr {
            gateway,
            port: v.port,
            tls: vec![],
        });
    let https = serving
        .filter(|(_, v)| !v.certificate_refs.is_empty())
        .map(|(gw, v)| {
            let insecure = v.client_validation.map(|c| c.insecure_fallback);
            ((gw, v.name), (v.port, v.hostname, insecure))
        });
    // A chain needs a valid certificate, and, when it validates clients, a valid
    // CA bundle (without one the listener is not accepted: never served open).
    let chains = join_named("tls chains", https, verdicts).flat_map(
        |((gw, _), ((port, hostname, insecure), verdict))| {
            if !verdict.serves() {
                return None;
            }
            let client_validation = match (insecure, &verdict.client_ca) {
                (Some(insecure_fallback), Some(cas)) => Some(ClientValidationIr {
                    ca: ca_bundle_name(cas),
                    insecure_fallback,
                }),
                _ => None,
            };
            Some({
                let chain = TlsChain {
                    hostname,
                    secrets: verdict.secrets,
                    client_validation,
                };
                ((gw, port), chain)
            })
        },
    );
    let https = chains.reduce_named("tls listener", |(gw, port), chains, out| {
        let tls: Vec<TlsChain> = chains
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(c, _)| (*c).clone())
            .collect();
        out.push((
            ListenerIr {
                gateway: gw.clone(),
                port: *port,
                tls,
            },
            1,
        ));
    });
    distinct_named("listeners", http).concat(https.map(|(_, l)| l))
}
