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
mod col;
mod endpoints;
mod gateways;
mod left_join;
mod select;
mod status;
mod vhosts;

pub use col::Col;

use crate::ir::{ListenerIr, StatusOutput, XdsOutput};
use crate::model::{Object, ObjectKey, Service};
use crate::spec::listener::ListenerView;

use col::{ByKey, distinct_named};

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

/// Build the whole translation over the input objects.
pub fn translate<'s>(objects: Col<'s, Object>, controller: String) -> Translation<'s> {
    let routes = kind!(objects, HttpRoute);
    let services_arranged: ByKey<'s, (String, String), Service> = kind!(objects, Service)
        .map(|s| ((s.key.namespace.clone(), s.key.name.clone()), s))
        .arrange_by_key_named("services by name");
    let admitted = gateways::admit(
        kind!(objects, GatewayClass),
        kind!(objects, Gateway),
        controller,
    );
    let listeners = admitted.listeners;

    let matched = select::select_namespaces(listeners.clone(), kind!(objects, Namespace));
    let gateway_keys = admitted.gateways.clone().map(|g| g.meta.key);
    let resolved = backends::resolve_routes(
        routes.clone(),
        kind!(objects, ReferenceGrant),
        services_arranged.clone(),
    );
    let attached =
        attach::attach_routes(routes, admitted.listeners_arranged, matched, gateway_keys);

    let route_conditions = resolved.clone().map(|(route, r)| (route, r.resolved_refs));
    let status = status::gateways_status(admitted.gateways, attached.counts)
        .map(StatusOutput::Gateway)
        .concat(status::route_status(attached.parents, route_conditions).map(StatusOutput::Route));

    let listener_hosts = listeners.clone().flat_map(|(gw, v)| {
        v.serves_http
            .then(|| (gw, v.port, v.hostname.unwrap_or_else(|| "*".to_string())))
    });
    let vhosts = vhosts::virtual_hosts(attached.serving.clone(), resolved.clone(), listener_hosts);
    let (gateway_clusters, clusters) = endpoints::clusters(attached.serving, resolved);
    let referenced = distinct_named(
        "referenced clusters",
        gateway_clusters.clone().map(|(_, c)| c),
    );
    let slices = kind!(objects, EndpointSlice);
    let endpoints = endpoints::endpoints(slices, services_arranged, referenced);
    let xds = distinct_named("listeners", envoy_listeners(listeners))
        .map(XdsOutput::Listener)
        .concat(vhosts.map(XdsOutput::VirtualHost))
        .concat(
            gateway_clusters
                .map(|(gateway, cluster)| XdsOutput::GatewayCluster { gateway, cluster }),
        )
        .concat(clusters.map(XdsOutput::Cluster))
        .concat(endpoints.map(XdsOutput::Endpoints));
    Translation { xds, status }
}

/// One Envoy listener per (gateway, port) of the serving listeners (not distinct).
fn envoy_listeners<'s>(listeners: Col<'s, (ObjectKey, ListenerView)>) -> Col<'s, ListenerIr> {
    listeners
        .filter(|(_, v)| v.serves_http)
        .map(|(gateway, v)| ListenerIr {
            gateway,
            port: v.port,
        })
}
