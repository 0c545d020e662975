//! Pipeline deltas → per-gateway xDS resource sets, re-encoding only what changed.
//!
//! ```text
//! Delta ─▶ Listener       ─▶ listeners[(gw, port)]           ─┐ dirty ports, hosts,
//!          VirtualHost    ─▶ tables[(gw, port)].vhosts[host] ─┤ (gateway, cluster)
//!          GatewayCluster ─▶ members[gw], holders[cluster]   ─┤ ─▶ update those entries
//!          Cluster        ─▶ clusters[name]       (shared)   ─┤    of each gateway's set,
//!          Endpoints      ─▶ endpoints[name]      (shared)   ─┤    snapshot (O(1)) if changed
//!          Secret         ─▶ secrets[(gw, name)]             ─┘
//! ```
//!
//! Virtual hosts are cached as encoded bytes per `(gateway, port, hostname)`; a
//! RouteConfiguration is re-assembled from them (see [`crate::encode::route`]).
//! Each exact hostname (not `*`, not `*.example.com`) of a route table also gets
//! an API listener for gRPC clients ([`crate::encode::listener::api_listener`]), encoded
//! when the hostname appears; a gateway serves, per hostname, the one of its lowest
//! port.
//! Clusters and ClusterLoadAssignments are encoded once per cluster name and the
//! same `Arc<Resource>` goes into every gateway that holds the cluster, so an
//! endpoint change costs one encode and touches only the gateways holding it.
//! Status outputs are not xDS and are ignored here.
//!
//! Two halves (see each module's contract); in the diagram, `members` and `holders`
//! are the bookkeeping's, the other maps the cache's:
//! - [`cache`]: the encode-once cache, keyed by output identity (encoded
//!   listeners, virtual host bytes, assembled route tables, API listeners,
//!   clusters, endpoints). No gateway bookkeeping.
//! - [`gateways`]: the per-gateway bookkeeping: which gateway holds which cluster,
//!   each gateway's working set, and what was published.
//!
//! # Contract
//! - [`Translator::apply`] takes one complete logical time and returns, for exactly
//!   the gateways whose resources changed (compared by version), their new full
//!   set stamped with that time; a gateway whose last resource went away is
//!   returned once with an empty set, and is then forgotten.
//! - After any sequence of deltas, every gateway's published set is byte-identical
//!   (per type: name → version and body) to what a fresh translator publishes when
//!   fed the whole current output as one delta (`sinks/tests/translator_oracle.rs`
//!   checks this at every step).
//! - Only what a delta touched is re-encoded: one output is one encode, and a route
//!   table is re-assembled from cached virtual host bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sluice_pipeline::ir::{Delta, KeyedChange, XdsOutput};
use sluice_pipeline::model::ObjectKey;

use crate::Result;
use crate::encode::EncodeConfig;
use crate::state::GatewayResources;

mod cache;
mod gateways;
#[cfg(test)]
mod tests;

use cache::{EncodeCache, Port};
use gateways::Gateways;

/// Keeps the encoded state of every gateway and turns deltas into new
/// [`GatewayResources`] for the gateways they affect.
#[derive(Debug)]
pub struct Translator {
    cache: EncodeCache,
    gateways: Gateways,
}

/// What one delta touched, gathered before gateways are brought up to date.
#[derive(Debug, Default)]
struct Dirty {
    tables: BTreeSet<Port>,
    /// Clusters whose Cluster or endpoints changed: their holders are dirty.
    clusters: BTreeSet<String>,
    /// (gateway, cluster) entries to bring up to date.
    members: BTreeSet<(ObjectKey, String)>,
    /// (gateway, hostname) API listeners to bring up to date.
    hosts: BTreeSet<(ObjectKey, String)>,
    /// (gateway, name) Secrets to bring up to date.
    secrets: BTreeSet<(ObjectKey, String)>,
}

impl Translator {
    pub fn new(config: EncodeConfig) -> Self {
        Self {
            cache: EncodeCache::new(config),
            gateways: Gateways::default(),
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
                    self.put(&new, true, &mut dirty);
                }
                KeyedChange::Removed(old) => self.put(&old, false, &mut dirty),
            }
        }
        let changed = self.sync(dirty);
        Ok(changed
            .into_iter()
            .filter_map(|gw| {
                let state = self.gateways.publish(&gw, delta.time)?;
                Some((gw, state))
            })
            .collect())
    }

    /// The last published set of every gateway that has resources.
    pub fn gateways(&self) -> impl Iterator<Item = (&ObjectKey, &Arc<GatewayResources>)> {
        self.gateways.published()
    }

    /// How many resources (virtual hosts included) were encoded so far.
    pub fn encoded_resources(&self) -> u64 {
        self.cache.encoded()
    }

    /// Puts (`present`) or removes one output in the cache and the gateways'
    /// memberships, and marks what it touches for [`Translator::sync`].
    fn put(&mut self, output: &XdsOutput, present: bool, dirty: &mut Dirty) {
        match output {
            XdsOutput::Listener(l) => {
                let port = if present {
                    self.cache.put_listener(l)
                } else {
                    self.cache.remove_listener(l)
                };
                dirty.tables.insert(port);
            }
            XdsOutput::VirtualHost(v) => {
                let port = if present {
                    self.cache.put_virtual_host(v)
                } else {
                    self.cache.remove_virtual_host(v)
                };
                dirty.tables.insert(port);
                dirty.hosts.insert((v.gateway.clone(), v.hostname.clone()));
            }
            XdsOutput::GatewayCluster { gateway, cluster } => {
                if present {
                    self.gateways.join(gateway, cluster);
                } else {
                    self.gateways.leave(gateway, cluster);
                }
                dirty.members.insert((gateway.clone(), cluster.clone()));
            }
            XdsOutput::Cluster(c) => {
                if present {
                    self.cache.put_cluster(c);
                } else {
                    self.cache.remove_cluster(&c.name);
                }
                dirty.clusters.insert(c.name.clone());
            }
            XdsOutput::Endpoints(e) => {
                if present {
                    self.cache.put_endpoints(e);
                } else {
                    self.cache.remove_endpoints(&e.cluster);
                }
                dirty.clusters.insert(e.cluster.clone());
            }
            XdsOutput::Secret { gateway, secret } => {
                if present {
                    self.cache.put_secret(gateway, secret);
                } else {
                    self.cache.remove_secret(gateway, &secret.name);
                }
                dirty.secrets.insert((gateway.clone(), secret.name.clone()));
            }
        }
    }

    /// Re-assembles the touched route tables, then brings every touched entry of
    /// every working set up to date; returns the gateways whose set changed.
    fn sync(&mut self, mut dirty: Dirty) -> BTreeSet<ObjectKey> {
        let mut changed = BTreeSet::new();
        let mut mark = |gateway: &ObjectKey, did_change: bool| {
            if did_change {
                changed.insert(gateway.clone());
            }
        };
        for port in std::mem::take(&mut dirty.tables) {
            let hosts = self.cache.assemble(&port);
            dirty
                .hosts
                .extend(hosts.into_iter().map(|h| (port.0.clone(), h)));
            mark(&port.0, self.gateways.sync_port(&self.cache, &port));
        }
        for cluster in &dirty.clusters {
            for gw in self.gateways.holders(cluster) {
                dirty.members.insert((gw.clone(), cluster.clone()));
            }
        }
        for (gw, cluster) in &dirty.members {
            mark(gw, self.gateways.sync_member(&mut self.cache, gw, cluster));
        }
        for (gw, host) in &dirty.hosts {
            mark(gw, self.gateways.sync_host(&self.cache, gw, host));
        }
        for (gw, name) in &dirty.secrets {
            mark(gw, self.gateways.sync_secret(&self.cache, gw, name));
        }
        let gateways = &self.gateways;
        self.cache.prune_empty(|c| gateways.is_held(c));
        changed
    }
}
