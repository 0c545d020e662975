//! The encode-once cache: every xDS resource the pipeline's outputs call for,
//! encoded once and keyed by the identity of the output it came from.
//!
//! # Contract
//! - Keys are output identities only: `(gateway, port)` for Listeners and route
//!   tables, `(gateway, port, hostname)` for virtual hosts, the cluster name for
//!   Clusters and ClusterLoadAssignments. The cache knows nothing of which gateway
//!   holds which cluster, nor of what was published.
//! - A `put_*` encodes exactly one message (a virtual host is cached as the bytes
//!   of its `VirtualHost`); a `remove_*` encodes nothing. A route table's
//!   RouteConfiguration is rebuilt only by [`EncodeCache::assemble`], which copies
//!   its virtual hosts' cached bytes (see [`crate::encode::route`]) and encodes an
//!   API listener only for an exact hostname that did not have one.
//! - Every resource handed out is an `Arc` that stays the same until its output
//!   changes, so the same bytes go to every gateway that serves them.

use std::collections::BTreeMap;
use std::sync::Arc;

use prost::Message;
use prost::bytes::Bytes;
use sluice_pipeline::ir::{
    ClusterIr, EndpointsIr, ListenerIr, SecretIr, VirtualHostIr, listener_name,
};
use sluice_pipeline::model::ObjectKey;

use crate::encode::{self, EncodeConfig};
use crate::state::Resource;

/// A `(gateway, port)`: the key of a Listener and of its route table.
pub(super) type Port = (ObjectKey, u16);

/// One `(gateway, port)`'s route table.
#[derive(Debug, Default)]
struct RouteTable {
    /// Encoded VirtualHost per hostname (sorted: the RouteConfiguration's order).
    vhosts: BTreeMap<String, Bytes>,
    /// The assembled RouteConfiguration.
    encoded: Option<Arc<Resource>>,
    /// An API listener per exact hostname of `vhosts`, pointing at this table.
    api_listeners: BTreeMap<String, Arc<Resource>>,
    /// HTTPS ports: one RouteConfiguration per TLS filter chain, by name
    /// ([`crate::encode::listener::chain_route_name`]).
    chains: BTreeMap<String, Arc<Resource>>,
}

/// Encoded resources by output identity; see the module docs for the contract.
#[derive(Debug)]
pub(super) struct EncodeCache {
    config: EncodeConfig,
    listeners: BTreeMap<Port, Arc<Resource>>,
    /// The SNI hostnames of an HTTPS port's filter chains (`None`: any).
    chain_hosts: BTreeMap<Port, Vec<Option<String>>>,
    tables: BTreeMap<Port, RouteTable>,
    clusters: BTreeMap<String, Arc<Resource>>,
    endpoints: BTreeMap<String, Arc<Resource>>,
    /// Empty assignments for clusters with no `Endpoints` output, encoded on demand.
    empty_endpoints: BTreeMap<String, Arc<Resource>>,
    /// SDS Secrets by (gateway, name).
    secrets: BTreeMap<(ObjectKey, String), Arc<Resource>>,
    /// Resources encoded so far (virtual hosts included).
    encoded: u64,
}

impl EncodeCache {
    pub(super) fn new(config: EncodeConfig) -> Self {
        Self {
            config,
            listeners: BTreeMap::new(),
            chain_hosts: BTreeMap::new(),
            tables: BTreeMap::new(),
            clusters: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            empty_endpoints: BTreeMap::new(),
            secrets: BTreeMap::new(),
            encoded: 0,
        }
    }

    /// How many resources (virtual hosts included) were encoded so far.
    pub(super) fn encoded(&self) -> u64 {
        self.encoded
    }

    /// Encodes a gateway's Secret.
    pub(super) fn put_secret(&mut self, gateway: &ObjectKey, s: &SecretIr) {
        let resource = self.encode(s.name.clone(), &encode::secret::secret(s));
        self.secrets
            .insert((gateway.clone(), s.name.clone()), resource);
    }

    pub(super) fn remove_secret(&mut self, gateway: &ObjectKey, name: &str) {
        self.secrets.remove(&(gateway.clone(), name.to_owned()));
    }

    /// A gateway's Secret, if it has it.
    pub(super) fn secret(&self, gateway: &ObjectKey, name: &str) -> Option<Arc<Resource>> {
        self.secrets
            .get(&(gateway.clone(), name.to_owned()))
            .cloned()
    }

    /// Encodes a Listener; its port always has a (maybe empty) route table.
    pub(super) fn put_listener(&mut self, l: &ListenerIr) -> Port {
        let port = (l.gateway.clone(), l.port);
        let resource = self.encode(l.name(), &encode::listener::listener(&self.config, l));
        self.listeners.insert(port.clone(), resource);
        if l.tls.is_empty() {
            self.chain_hosts.remove(&port);
        } else {
            let hosts = l.tls.iter().map(|c| c.hostname.clone()).collect();
            self.chain_hosts.insert(port.clone(), hosts);
        }
        self.tables.entry(port.clone()).or_default();
        port
    }

    pub(super) fn remove_listener(&mut self, l: &ListenerIr) -> Port {
        let port = (l.gateway.clone(), l.port);
        self.listeners.remove(&port);
        self.chain_hosts.remove(&port);
        port
    }

    /// Encodes one virtual host into its port's table (not yet assembled).
    pub(super) fn put_virtual_host(&mut self, v: &VirtualHostIr) -> Port {
        self.encoded += 1;
        let bytes = Bytes::from(encode::route::virtual_host(v).encode_to_vec());
        let port = (v.gateway.clone(), v.port);
        let table = self.tables.entry(port.clone()).or_default();
        table.vhosts.insert(v.hostname.clone(), bytes);
        port
    }

    pub(super) fn remove_virtual_host(&mut self, v: &VirtualHostIr) -> Port {
        let port = (v.gateway.clone(), v.port);
        if let Some(table) = self.tables.get_mut(&port) {
            table.vhosts.remove(&v.hostname);
        }
        port
    }

    pub(super) fn put_cluster(&mut self, c: &ClusterIr) {
        let resource = self.encode(c.name.clone(), &encode::cluster::cluster(c));
        self.clusters.insert(c.name.clone(), resource);
    }

    pub(super) fn remove_cluster(&mut self, name: &str) {
        self.clusters.remove(name);
    }

    pub(super) fn put_endpoints(&mut self, e: &EndpointsIr) {
        let cla = encode::cluster::load_assignment(&e.cluster, &e.endpoints);
        let resource = self.encode(e.cluster.clone(), &cla);
        self.endpoints.insert(e.cluster.clone(), resource);
    }

    pub(super) fn remove_endpoints(&mut self, cluster: &str) {
        self.endpoints.remove(cluster);
    }

    /// Re-assembles a port's RouteConfiguration from its cached virtual hosts and
    /// brings its API listeners in line. Drops the table once it has neither
    /// listener nor virtual hosts. Returns the exact hostnames that now have an API
    /// listener on this port (none for a dropped table).
    pub(super) fn assemble(&mut self, port: &Port) -> Vec<String> {
        let has_listener = self.listeners.contains_key(port);
        let Some(table) = self.tables.get_mut(port) else {
            return vec![];
        };
        if !has_listener && table.vhosts.is_empty() {
            self.tables.remove(port);
            return vec![];
        }
        let name = listener_name(&port.0, port.1);
        let body = encode::route::route_configuration_bytes(
            &name,
            table.vhosts.values().map(|b| b.as_ref()),
        );
        self.encoded += sync_api_listeners(table, &name);
        let chains = self
            .chain_hosts
            .get(port)
            .map(Vec::as_slice)
            .unwrap_or_default();
        table.chains = chain_tables(&name, chains, &table.vhosts);
        table.encoded = Some(Arc::new(Resource::new(name, Bytes::from(body))));
        table.api_listeners.keys().cloned().collect()
    }

    /// The RouteConfigurations of an HTTPS port's filter chains (none for HTTP, or
    /// without a Listener), by name.
    pub(super) fn chain_tables(&self, port: &Port) -> Vec<(String, Arc<Resource>)> {
        if !self.listeners.contains_key(port) {
            return vec![];
        }
        (self.tables.get(port).into_iter())
            .flat_map(|t| t.chains.iter().map(|(n, r)| (n.clone(), r.clone())))
            .collect()
    }

    /// A port's Listener and the RouteConfiguration it serves: a route table
    /// without its Listener serves nothing.
    pub(super) fn port(&self, port: &Port) -> (Option<Arc<Resource>>, Option<Arc<Resource>>) {
        let listener = self.listeners.get(port).cloned();
        let route = listener
            .as_ref()
            .and(self.tables.get(port))
            .and_then(|t| t.encoded.clone());
        (listener, route)
    }

    /// The API listener a gateway serves for `host`: that of its lowest port that
    /// has a Listener and the host.
    pub(super) fn api_listener(&self, gateway: &ObjectKey, host: &str) -> Option<Arc<Resource>> {
        self.listeners
            .range(port_range(gateway))
            .find_map(|(port, _)| self.tables.get(port)?.api_listeners.get(host).cloned())
    }

    pub(super) fn cluster(&self, name: &str) -> Option<Arc<Resource>> {
        self.clusters.get(name).cloned()
    }

    /// A cluster's ClusterLoadAssignment: its `Endpoints` output's, else an empty
    /// one (encoded once, kept until [`EncodeCache::prune_empty`] drops it).
    pub(super) fn load_assignment(&mut self, cluster: &str) -> Arc<Resource> {
        if let Some(cla) = self.endpoints.get(cluster) {
            return cla.clone();
        }
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

    /// Forgets the empty assignments of clusters that now have endpoints or that
    /// `keep` no longer wants.
    pub(super) fn prune_empty(&mut self, keep: impl Fn(&str) -> bool) {
        let endpoints = &self.endpoints;
        self.empty_endpoints
            .retain(|c, _| keep(c) && !endpoints.contains_key(c));
    }

    fn encode(&mut self, name: String, message: &impl Message) -> Arc<Resource> {
        self.encoded += 1;
        Arc::new(Resource::new(name, Bytes::from(message.encode_to_vec())))
    }
}

/// One RouteConfiguration per TLS filter chain of a port (`chains`: their SNI
/// hostnames): the port's virtual hosts whose hostname the chain's listener owns
/// (the most specific chain hostname covering it, as listener isolation has it),
/// plus one virtual host answering 421 for the other chains' hostnames (and, for a
/// chain with a hostname, for any other host).
fn chain_tables(
    port_name: &str,
    chains: &[Option<String>],
    vhosts: &BTreeMap<String, Bytes>,
) -> BTreeMap<String, Arc<Resource>> {
    use sluice_pipeline::spec::hostname::intersect;
    let covers = |chain: &Option<String>, host: &str| match chain {
        None => true,
        Some(c) => intersect(c, host).as_deref() == Some(host),
    };
    let owner = |host: &str| {
        (chains.iter())
            .filter(|c| covers(c, host))
            .max_by_key(|c| c.as_ref().map_or(0, |c| c.len() + 1))
    };
    let mut out = BTreeMap::new();
    for chain in chains {
        let own: Vec<(&String, &Bytes)> = (vhosts.iter())
            .filter(|(host, _)| owner(host) == Some(chain))
            .collect();
        let mut misdirected: Vec<String> = (chains.iter())
            .filter(|c| *c != chain)
            .flatten()
            .filter(|h| !vhosts.contains_key(*h) || owner(h) != Some(chain))
            .cloned()
            .collect();
        if chain.is_some() && !own.iter().any(|(h, _)| h.as_str() == "*") {
            misdirected.push("*".to_owned());
        }
        misdirected.sort();
        misdirected.dedup();
        misdirected.retain(|h| !own.iter().any(|(o, _)| *o == h));
        let extra = (!misdirected.is_empty())
            .then(|| encode::route::misdirected_virtual_host(misdirected).encode_to_vec());
        let name = encode::listener::chain_route_name(port_name, chain.as_deref());
        let body = encode::route::route_configuration_bytes(
            &name,
            own.iter().map(|(_, b)| b.as_ref()).chain(extra.as_deref()),
        );
        out.insert(
            name.clone(),
            Arc::new(Resource::new(name, Bytes::from(body))),
        );
    }
    out
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
