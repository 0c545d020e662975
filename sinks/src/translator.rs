//! Pipeline deltas → per-gateway xDS resource sets, re-encoding only what changed.
//!
//! ```text
//! Delta ─▶ Listener       ─▶ listeners[(gw, port)]           ─┐ dirty ports, hosts,
//!          VirtualHost    ─▶ tables[(gw, port)].vhosts[host] ─┤ (gateway, cluster)
//!          GatewayCluster ─▶ members[gw], holders[cluster]   ─┤ ─▶ update those entries
//!          Cluster        ─▶ clusters[name]       (shared)   ─┤    of each gateway's set,
//!          Endpoints      ─▶ endpoints[name]      (shared)   ─┘    snapshot (O(1)) if changed
//! ```
//!
//! Virtual hosts are cached as encoded bytes per `(gateway, port, hostname)`; a
//! RouteConfiguration is re-assembled from them (see [`crate::encode::route`]).
//! Each exact hostname (not `*`, not `*.example.com`) of a route table also gets
//! an API listener for gRPC clients ([`encode::listener::api_listener`]), encoded
//! when the hostname appears; a gateway serves, per hostname, the one of its lowest
//! port.
//! Clusters and ClusterLoadAssignments are encoded once per cluster name and the
//! same `Arc<Resource>` goes into every gateway that holds the cluster, so an
//! endpoint change costs one encode and touches only the gateways holding it.
//! Status outputs are not xDS and are ignored here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use prost::Message;
use prost::bytes::Bytes;
use sluice_pipeline::ir::{Delta, KeyedChange, XdsOutput, listener_name};
use sluice_pipeline::model::ObjectKey;

use crate::Result;
use crate::encode::{self, EncodeConfig};
use crate::state::{GatewayResources, Resource, ResourceMap, ResourceType};

type Port = (ObjectKey, u16);

/// One `(gateway, port)`'s route table.
#[derive(Debug, Default)]
struct RouteTable {
    /// Encoded VirtualHost per hostname (sorted: the RouteConfiguration's order).
    vhosts: BTreeMap<String, Bytes>,
    /// The assembled RouteConfiguration.
    encoded: Option<Arc<Resource>>,
    /// An API listener per exact hostname of `vhosts`, pointing at this table.
    api_listeners: BTreeMap<String, Arc<Resource>>,
}

/// Keeps the encoded state of every gateway and turns deltas into new
/// [`GatewayResources`] for the gateways they affect.
#[derive(Debug)]
pub struct Translator {
    config: EncodeConfig,
    listeners: BTreeMap<Port, Arc<Resource>>,
    tables: BTreeMap<Port, RouteTable>,
    /// Gateway → clusters its proxies need, and the reverse.
    members: BTreeMap<ObjectKey, BTreeSet<String>>,
    holders: BTreeMap<String, BTreeSet<ObjectKey>>,
    clusters: BTreeMap<String, Arc<Resource>>,
    endpoints: BTreeMap<String, Arc<Resource>>,
    /// Empty assignments for held clusters with no `Endpoints` output.
    empty_endpoints: BTreeMap<String, Arc<Resource>>,
    /// Each gateway's working set, updated entry by entry; publishing takes an O(1)
    /// snapshot of it (the maps are persistent).
    current: BTreeMap<ObjectKey, GatewayResources>,
    /// The last set published per gateway.
    published: BTreeMap<ObjectKey, Arc<GatewayResources>>,
    /// Resources encoded so far (a counter for tests and metrics).
    encoded: u64,
}

/// What one delta touched, gathered before gateways are rebuilt.
#[derive(Debug, Default)]
struct Dirty {
    tables: BTreeSet<Port>,
    /// Clusters whose Cluster or endpoints changed: their holders are dirty.
    clusters: BTreeSet<String>,
    /// (gateway, cluster) entries to bring up to date.
    members: BTreeSet<(ObjectKey, String)>,
    /// (gateway, hostname) API listeners to bring up to date.
    hosts: BTreeSet<(ObjectKey, String)>,
    /// Gateways whose set really changed (filled by the `sync_*` steps).
    changed: BTreeSet<ObjectKey>,
}

impl Translator {
    pub fn new(config: EncodeConfig) -> Self {
        Self {
            config,
            listeners: BTreeMap::new(),
            tables: BTreeMap::new(),
            members: BTreeMap::new(),
            holders: BTreeMap::new(),
            clusters: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            empty_endpoints: BTreeMap::new(),
            current: BTreeMap::new(),
            published: BTreeMap::new(),
            encoded: 0,
        }
    }

    /// Applies one delta (a complete logical time) and returns the new full
    /// resource set of exactly the gateways whose resources changed. A gateway
    /// whose last resource went away is returned once with an empty set.
    pub fn apply(&mut self, delta: &Delta) -> Result<BTreeMap<ObjectKey, Arc<GatewayResources>>> {
        let mut dirty = Dirty::default();
        for (_, change) in delta.xds_keyed() {
            match change {
                KeyedChange::Added(new) | KeyedChange::Changed { new, .. } => {
                    self.upsert(&new, &mut dirty);
                }
                KeyedChange::Removed(old) => self.remove(&old, &mut dirty),
            }
        }
        for port in std::mem::take(&mut dirty.tables) {
            self.assemble_table(&port);
            if let Some(table) = self.tables.get(&port) {
                let hosts = table
                    .api_listeners
                    .keys()
                    .map(|h| (port.0.clone(), h.clone()));
                dirty.hosts.extend(hosts);
            }
            self.sync_port(&port, &mut dirty);
        }
        for cluster in std::mem::take(&mut dirty.clusters) {
            for gw in self.holders.get(&cluster).into_iter().flatten() {
                dirty.members.insert((gw.clone(), cluster.clone()));
            }
        }
        for (gw, cluster) in std::mem::take(&mut dirty.members) {
            self.sync_member(&gw, &cluster, &mut dirty);
        }
        for (gw, host) in std::mem::take(&mut dirty.hosts) {
            self.sync_host(&gw, &host, &mut dirty);
        }
        let (holders, endpoints) = (&self.holders, &self.endpoints);
        self.empty_endpoints
            .retain(|c, _| holders.contains_key(c) && !endpoints.contains_key(c));

        let mut changed = BTreeMap::new();
        for gateway in dirty.changed {
            if let Some(state) = self.publish(&gateway, delta.time) {
                changed.insert(gateway, state);
            }
        }
        Ok(changed)
    }

    /// The last published set of every gateway that has resources.
    pub fn gateways(&self) -> impl Iterator<Item = (&ObjectKey, &Arc<GatewayResources>)> {
        self.published.iter()
    }

    /// How many resources (virtual hosts included) were encoded so far.
    pub fn encoded_resources(&self) -> u64 {
        self.encoded
    }

    fn upsert(&mut self, output: &XdsOutput, dirty: &mut Dirty) {
        match output {
            XdsOutput::Listener(l) => {
                let resource = self.encode(l.name(), &encode::listener::listener(&self.config, l));
                self.listeners.insert((l.gateway.clone(), l.port), resource);
                // A listener always has its (maybe empty) route configuration.
                self.tables.entry((l.gateway.clone(), l.port)).or_default();
                dirty.tables.insert((l.gateway.clone(), l.port));
            }
            XdsOutput::VirtualHost(v) => {
                self.encoded += 1;
                let bytes = Bytes::from(encode::route::virtual_host(v).encode_to_vec());
                let port = (v.gateway.clone(), v.port);
                self.tables
                    .entry(port.clone())
                    .or_default()
                    .vhosts
                    .insert(v.hostname.clone(), bytes);
                dirty.hosts.insert((v.gateway.clone(), v.hostname.clone()));
                dirty.tables.insert(port);
            }
            XdsOutput::GatewayCluster { gateway, cluster } => {
                self.members
                    .entry(gateway.clone())
                    .or_default()
                    .insert(cluster.clone());
                self.holders
                    .entry(cluster.clone())
                    .or_default()
                    .insert(gateway.clone());
                dirty.members.insert((gateway.clone(), cluster.clone()));
            }
            XdsOutput::Cluster(c) => {
                let resource = self.encode(c.name.clone(), &encode::cluster::cluster(c));
                self.clusters.insert(c.name.clone(), resource);
                dirty.clusters.insert(c.name.clone());
            }
            XdsOutput::Endpoints(e) => {
                let cla = encode::cluster::load_assignment(&e.cluster, &e.endpoints);
                let resource = self.encode(e.cluster.clone(), &cla);
                self.endpoints.insert(e.cluster.clone(), resource);
                dirty.clusters.insert(e.cluster.clone());
            }
        }
    }

    fn remove(&mut self, output: &XdsOutput, dirty: &mut Dirty) {
        match output {
            XdsOutput::Listener(l) => {
                self.listeners.remove(&(l.gateway.clone(), l.port));
                dirty.tables.insert((l.gateway.clone(), l.port));
            }
            XdsOutput::VirtualHost(v) => {
                let port = (v.gateway.clone(), v.port);
                if let Some(table) = self.tables.get_mut(&port) {
                    table.vhosts.remove(&v.hostname);
                }
                dirty.hosts.insert((v.gateway.clone(), v.hostname.clone()));
                dirty.tables.insert(port);
            }
            XdsOutput::GatewayCluster { gateway, cluster } => {
                remove_from(&mut self.members, gateway, cluster);
                remove_from(&mut self.holders, cluster, gateway);
                dirty.members.insert((gateway.clone(), cluster.clone()));
            }
            XdsOutput::Cluster(c) => {
                self.clusters.remove(&c.name);
                dirty.clusters.insert(c.name.clone());
            }
            XdsOutput::Endpoints(e) => {
                self.endpoints.remove(&e.cluster);
                dirty.clusters.insert(e.cluster.clone());
            }
        }
    }

    /// Re-assembles a route table's RouteConfiguration from its cached virtual
    /// hosts; drops the table once it has neither listener nor virtual hosts.
    fn assemble_table(&mut self, port: &Port) {
        let has_listener = self.listeners.contains_key(port);
        let Some(table) = self.tables.get_mut(port) else {
            return;
        };
        if !has_listener && table.vhosts.is_empty() {
            self.tables.remove(port);
            return;
        }
        let name = listener_name(&port.0, port.1);
        let body = encode::route::route_configuration_bytes(
            &name,
            table.vhosts.values().map(|b| b.as_ref()),
        );
        self.encoded += sync_api_listeners(table, &name);
        table.encoded = Some(Arc::new(Resource::new(name, Bytes::from(body))));
    }

    /// Brings a port's Listener and RouteConfiguration entries up to date.
    fn sync_port(&mut self, port: &Port, dirty: &mut Dirty) {
        let name = listener_name(&port.0, port.1);
        let listener = self.listeners.get(port).cloned();
        let route = listener
            .as_ref()
            .and(self.tables.get(port))
            .and_then(|t| t.encoded.clone());
        let state = self.current.entry(port.0.clone()).or_default();
        let changed = set(
            &mut state.by_type[ResourceType::Listener.index()],
            &name,
            listener,
        ) | set(
            &mut state.by_type[ResourceType::Route.index()],
            &name,
            route,
        );
        if changed {
            dirty.changed.insert(port.0.clone());
        }
    }

    /// Brings one API listener of a gateway up to date: a hostname on several
    /// ports gets the lowest (served) port's.
    fn sync_host(&mut self, gateway: &ObjectKey, host: &str, dirty: &mut Dirty) {
        let winner = self
            .listeners
            .range(port_range(gateway))
            .find_map(|(port, _)| self.tables.get(port)?.api_listeners.get(host).cloned());
        let state = self.current.entry(gateway.clone()).or_default();
        if set(&mut state.api_listeners, host, winner) {
            dirty.changed.insert(gateway.clone());
        }
    }

    /// Brings a gateway's Cluster and ClusterLoadAssignment entries for one cluster
    /// up to date. A membership without its Cluster output yet serves nothing.
    fn sync_member(&mut self, gateway: &ObjectKey, cluster: &str, dirty: &mut Dirty) {
        let member = self
            .members
            .get(gateway)
            .is_some_and(|m| m.contains(cluster));
        let resource = if member {
            self.clusters.get(cluster).cloned()
        } else {
            None
        };
        let cla = match (&resource, self.endpoints.get(cluster)) {
            (None, _) => None,
            (Some(_), Some(cla)) => Some(cla.clone()),
            (Some(_), None) => Some(self.empty_load_assignment(cluster)),
        };
        let state = self.current.entry(gateway.clone()).or_default();
        let changed = set(
            &mut state.by_type[ResourceType::Cluster.index()],
            cluster,
            resource,
        ) | set(
            &mut state.by_type[ResourceType::Endpoint.index()],
            cluster,
            cla,
        );
        if changed {
            dirty.changed.insert(gateway.clone());
        }
    }

    /// A snapshot of a gateway whose set changed; an emptied gateway is published
    /// (empty) once and forgotten.
    fn publish(&mut self, gateway: &ObjectKey, time: u64) -> Option<Arc<GatewayResources>> {
        let state = self.current.get_mut(gateway)?;
        state.time = time;
        let empty = state.is_empty();
        if empty {
            self.current.remove(gateway);
            let was_published = self.published.remove(gateway).is_some();
            return was_published.then(|| {
                Arc::new(GatewayResources {
                    time,
                    ..Default::default()
                })
            });
        }
        let snapshot = Arc::new(state.clone());
        self.published.insert(gateway.clone(), snapshot.clone());
        Some(snapshot)
    }

    fn empty_load_assignment(&mut self, cluster: &str) -> Arc<Resource> {
        if let Some(cla) = self.empty_endpoints.get(cluster) {
            return cla.clone();
        }
        let cla = self.encode(
            cluster.to_owned(),
            &encode::cluster::load_assignment(cluster, &[]),
        );
        self.empty_endpoints.insert(cluster.to_owned(), cla.clone());
        cla
    }

    fn encode(&mut self, name: String, message: &impl Message) -> Arc<Resource> {
        self.encoded += 1;
        Arc::new(Resource::new(name, Bytes::from(message.encode_to_vec())))
    }
}

/// Sets or removes `name` in `map`; whether the entry changed. Resources are
/// compared by version (a hash of their bytes), never by re-reading the bytes.
fn set(map: &mut ResourceMap, name: &str, value: Option<Arc<Resource>>) -> bool {
    match (map.get(name), value) {
        (Some(old), Some(new)) if Arc::ptr_eq(old, &new) || old.version == new.version => false,
        (None, None) => false,
        (_, Some(new)) => {
            map.insert(name.to_owned(), new);
            true
        }
        (Some(_), None) => {
            map.remove(name);
            true
        }
    }
}

/// Brings a table's API listeners in line with its exact hostnames: encodes the
/// new ones, drops the gone ones. Returns how many it encoded.
fn sync_api_listeners(table: &mut RouteTable, route_config_name: &str) -> u64 {
    let vhosts = &table.vhosts;
    table
        .api_listeners
        .retain(|hostname, _| vhosts.contains_key(hostname));
    let mut encoded = 0;
    for hostname in vhosts.keys().filter(|h| is_exact_hostname(h)) {
        if table.api_listeners.contains_key(hostname) {
            continue;
        }
        let listener = encode::listener::api_listener(hostname, route_config_name);
        let resource = Resource::new(hostname.clone(), Bytes::from(listener.encode_to_vec()));
        table
            .api_listeners
            .insert(hostname.clone(), Arc::new(resource));
        encoded += 1;
    }
    encoded
}

/// A hostname a gRPC client can name in `xds:///HOSTNAME`: not `*` and not a
/// `*.` wildcard.
fn is_exact_hostname(hostname: &str) -> bool {
    !hostname.is_empty() && !hostname.contains('*')
}

/// All `(gateway, port)` keys of one gateway.
fn port_range(gateway: &ObjectKey) -> std::ops::RangeInclusive<Port> {
    (gateway.clone(), 0)..=(gateway.clone(), u16::MAX)
}

fn remove_from<K: Ord, V: Ord>(map: &mut BTreeMap<K, BTreeSet<V>>, key: &K, value: &V) {
    if let Some(set) = map.get_mut(key) {
        set.remove(value);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
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
        Action, ClusterIr, EndpointsIr, GatewayStatus, ListenerIr, RouteIr, StatusOutput,
        VirtualHostIr,
    };
    use sluice_pipeline::model::{HeaderModifier, PathMatch, RouteMatch, Timeouts};

    use super::*;

    fn gw(name: &str) -> ObjectKey {
        ObjectKey::new("infra", name)
    }

    fn listener(g: &str, port: u16) -> XdsOutput {
        XdsOutput::Listener(ListenerIr {
            gateway: gw(g),
            port,
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
}
