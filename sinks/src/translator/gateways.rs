//! Per-gateway bookkeeping: which gateway holds which cluster, each gateway's
//! working set of resources, and what was last published.
//!
//! # Contract
//! - A working set holds `Arc`s taken from the [`EncodeCache`]; it never encodes.
//!   A `sync_*` call makes one entry (or one port's pair, or one cluster's pair)
//!   equal to what the cache and the memberships say now, and returns whether the
//!   set changed. Entries are compared by version (a hash of their bytes), so an
//!   output re-encoded to identical bytes changes nothing.
//! - [`Gateways::publish`] snapshots a working set in O(1) (the maps are
//!   persistent); a set that became empty is published empty once, if it had been
//!   published, and then forgotten.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sluice_pipeline::ir::listener_name;
use sluice_pipeline::model::ObjectKey;

use super::cache::{EncodeCache, Port};
use crate::state::{GatewayResources, Resource, ResourceMap, ResourceType};

/// Memberships, working sets and published sets of every gateway.
#[derive(Debug, Default)]
pub(super) struct Gateways {
    /// Gateway → clusters its proxies need, and the reverse.
    members: BTreeMap<ObjectKey, BTreeSet<String>>,
    holders: BTreeMap<String, BTreeSet<ObjectKey>>,
    /// Each gateway's working set, updated entry by entry.
    current: BTreeMap<ObjectKey, GatewayResources>,
    /// The last set published per gateway.
    published: BTreeMap<ObjectKey, Arc<GatewayResources>>,
}

impl Gateways {
    /// Records that `gateway`'s proxies need `cluster`.
    pub(super) fn join(&mut self, gateway: &ObjectKey, cluster: &str) {
        self.members
            .entry(gateway.clone())
            .or_default()
            .insert(cluster.to_owned());
        self.holders
            .entry(cluster.to_owned())
            .or_default()
            .insert(gateway.clone());
    }

    pub(super) fn leave(&mut self, gateway: &ObjectKey, cluster: &str) {
        remove_from(&mut self.members, gateway, cluster);
        remove_from(&mut self.holders, cluster, gateway);
    }

    /// The gateways that hold `cluster`.
    pub(super) fn holders(&self, cluster: &str) -> impl Iterator<Item = &ObjectKey> {
        self.holders.get(cluster).into_iter().flatten()
    }

    /// Whether any gateway holds `cluster`.
    pub(super) fn is_held(&self, cluster: &str) -> bool {
        self.holders.contains_key(cluster)
    }

    /// The last published set of every gateway that has resources.
    pub(super) fn published(&self) -> impl Iterator<Item = (&ObjectKey, &Arc<GatewayResources>)> {
        self.published.iter()
    }

    /// Brings a port's Listener and RouteConfiguration entries up to date.
    pub(super) fn sync_port(&mut self, cache: &EncodeCache, port: &Port) -> bool {
        let name = listener_name(&port.0, port.1);
        let (listener, route) = cache.port(port);
        let chains = cache.chain_tables(port);
        let state = self.current.entry(port.0.clone()).or_default();
        let mut changed = set(entries(state, ResourceType::Listener), &name, listener)
            | set(entries(state, ResourceType::Route), &name, route);
        // The filter chains' tables, `NAME/HOST`: set the current ones, drop the rest.
        let routes = entries(state, ResourceType::Route);
        let prefix = format!("{name}/");
        let stale: Vec<String> = (routes.range(prefix.clone()..))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(&prefix))
            .filter(|k| !chains.iter().any(|(n, _)| n == *k))
            .cloned()
            .collect();
        for k in stale {
            changed |= set(routes, &k, None);
        }
        for (chain, table) in chains {
            changed |= set(routes, &chain, Some(table));
        }
        changed
    }

    /// Brings one API listener of a gateway up to date.
    pub(super) fn sync_host(
        &mut self,
        cache: &EncodeCache,
        gateway: &ObjectKey,
        host: &str,
    ) -> bool {
        let served = cache.api_listener(gateway, host);
        let state = self.current.entry(gateway.clone()).or_default();
        set(&mut state.api_listeners, host, served)
    }

    /// Brings a gateway's Cluster and ClusterLoadAssignment entries for one cluster
    /// up to date. A membership without its Cluster output yet serves nothing; a
    /// served Cluster always has an assignment (maybe empty).
    pub(super) fn sync_member(
        &mut self,
        cache: &mut EncodeCache,
        gateway: &ObjectKey,
        cluster: &str,
    ) -> bool {
        let member = self
            .members
            .get(gateway)
            .is_some_and(|m| m.contains(cluster));
        let resource = if member { cache.cluster(cluster) } else { None };
        let cla = resource.as_ref().map(|_| cache.load_assignment(cluster));
        let state = self.current.entry(gateway.clone()).or_default();
        set(entries(state, ResourceType::Cluster), cluster, resource)
            | set(entries(state, ResourceType::Endpoint), cluster, cla)
    }

    /// Brings one Secret of a gateway up to date.
    pub(super) fn sync_secret(
        &mut self,
        cache: &EncodeCache,
        gateway: &ObjectKey,
        name: &str,
    ) -> bool {
        let served = cache.secret(gateway, name);
        let state = self.current.entry(gateway.clone()).or_default();
        set(entries(state, ResourceType::Secret), name, served)
    }

    /// A snapshot of a gateway whose set changed, stamped `time`; an emptied
    /// gateway is published (empty) once and forgotten.
    pub(super) fn publish(
        &mut self,
        gateway: &ObjectKey,
        time: u64,
    ) -> Option<Arc<GatewayResources>> {
        let state = self.current.get_mut(gateway)?;
        state.time = time;
        if state.is_empty() {
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
}

fn entries(state: &mut GatewayResources, ty: ResourceType) -> &mut ResourceMap {
    &mut state.by_type[ty.index()]
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

fn remove_from<K, V, KQ, VQ>(map: &mut BTreeMap<K, BTreeSet<V>>, key: &KQ, value: &VQ)
where
    K: Ord + std::borrow::Borrow<KQ>,
    V: Ord + std::borrow::Borrow<VQ>,
    KQ: Ord + ?Sized,
    VQ: Ord + ?Sized,
{
    if let Some(set) = map.get_mut(key) {
        set.remove(value);
        if set.is_empty() {
            map.remove(key);
        }
    }
}
