//! The xDS state the server serves: per gateway and resource type, name →
//! (version, encoded bytes). Resources are immutable and shared (`Arc`): a resource
//! is encoded once per change and the same bytes go to every proxy.
//!
//! # Contract
//! The translator publishes a gateway's [`GatewayResources`] only for complete
//! logical times of the pipeline. Every publication is a whole, consistent set: each
//! route's clusters are in it. The ADS server decides the delivery order (clusters
//! and endpoints first, removals last) from two consecutive sets.
//!
//! # Two kinds of Listener
//! `by_type[Listener]` holds the socket listeners Envoy binds (one per Gateway
//! port). [`GatewayResources::api_listeners`] holds the API listeners gRPC's own
//! xDS clients resolve (`xds:///HOSTNAME` asks for Listener `HOSTNAME`). Envoy
//! rejects API listeners, so they are kept apart: a wildcard LDS subscription gets
//! socket listeners only, and an API listener goes only to a client that names it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prost::bytes::Bytes;
use sluice_pipeline::model::ObjectKey;
use tokio::sync::watch;

/// The five resource types Sluice serves. [`ResourceType::index`] is a stable
/// position (snapshots store types by it; `Secret`, added last, is 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Cluster,
    Endpoint,
    Listener,
    Route,
    /// SDS: the certificates and keys HTTPS listeners present.
    Secret,
}

/// How many resource types there are.
pub const TYPES: usize = 5;

impl ResourceType {
    /// Every type, by index.
    pub const ALL: [ResourceType; TYPES] = [
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Listener,
        ResourceType::Route,
        ResourceType::Secret,
    ];

    pub fn type_url(self) -> &'static str {
        match self {
            ResourceType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            ResourceType::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            ResourceType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            ResourceType::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            ResourceType::Secret => {
                "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
            }
        }
    }

    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// LDS and CDS are wildcard subscriptions; RDS, EDS and SDS are by name.
    pub fn is_wildcard(self) -> bool {
        matches!(self, ResourceType::Cluster | ResourceType::Listener)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One encoded resource.
#[derive(Debug, PartialEq, Eq)]
pub struct Resource {
    pub name: String,
    /// Hash of `body`: stable across restarts and replays.
    pub version: String,
    /// The encoded message (not wrapped in `Any`).
    pub body: Bytes,
}

impl Resource {
    pub fn new(name: String, body: Bytes) -> Self {
        let version = content_version(&body);
        Self {
            name,
            version,
            body,
        }
    }
}

/// A stable 64-bit FNV-1a hash of the bytes, in hex.
pub fn content_version(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Name → resource, as a persistent map: a snapshot (`clone`) is O(1) and shares
/// structure with the translator's working copy, so publishing a gateway's state
/// after a change costs O(log n), not O(n).
pub type ResourceMap = imbl::OrdMap<String, Arc<Resource>>;

/// Everything one gateway's proxies see at one logical time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewayResources {
    /// The pipeline time this set reflects.
    pub time: u64,
    /// Indexed by [`ResourceType::index`].
    pub by_type: [ResourceMap; TYPES],
    /// API listeners by hostname, served only to LDS requests that name them.
    pub api_listeners: ResourceMap,
}

impl GatewayResources {
    pub fn get(&self, ty: ResourceType) -> &ResourceMap {
        &self.by_type[ty.index()]
    }

    /// Whether the set has no resource at all.
    pub fn is_empty(&self) -> bool {
        self.by_type.iter().all(|m| m.is_empty()) && self.api_listeners.is_empty()
    }
}

/// A resource version proxies rejected (NACKed), with the proxy's error message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub ty: ResourceType,
    pub name: String,
    pub version: String,
    pub message: String,
}

/// Every gateway's current rejections, for status and metrics.
pub type Verdicts = Arc<BTreeMap<ObjectKey, Vec<Rejection>>>;

/// One gateway in the hub.
#[derive(Debug)]
struct Entry {
    /// What the translator published last.
    raw: Arc<GatewayResources>,
    /// What streams serve: `raw` with every rejected resource version replaced by the
    /// last version a proxy accepted (or left out when none did).
    vetted: watch::Sender<Arc<GatewayResources>>,
    /// The last version of each resource a proxy ACKed, by type (indexed by
    /// [`ResourceType::index`], so an ACK looks names up without building keys).
    good: [BTreeMap<String, Arc<Resource>>; TYPES],
    /// Rejected versions that are still the published ones.
    rejected: BTreeMap<(ResourceType, String), Rejection>,
}

impl Entry {
    fn new(raw: Arc<GatewayResources>) -> Self {
        Self {
            vetted: watch::channel(raw.clone()).0,
            raw,
            good: Default::default(),
            rejected: BTreeMap::new(),
        }
    }

    /// `raw` with its rejected versions replaced by accepted ones.
    fn vet(&self) -> Arc<GatewayResources> {
        if self.rejected.is_empty() {
            return self.raw.clone();
        }
        let mut vetted = (*self.raw).clone();
        for ((ty, name), rejection) in &self.rejected {
            let map = &mut vetted.by_type[ty.index()];
            if map.get(name).is_none_or(|r| r.version != rejection.version) {
                continue;
            }
            match self.good[ty.index()].get(name) {
                Some(good) => map.insert(name.clone(), good.clone()),
                None => map.remove(name),
            };
        }
        Arc::new(vetted)
    }

    /// Forgets rejections of versions no longer published; whether any was.
    fn prune(&mut self) -> bool {
        let before = self.rejected.len();
        let raw = &self.raw;
        self.rejected.retain(|(ty, name), r| {
            raw.get(*ty)
                .get(name)
                .is_some_and(|current| current.version == r.version)
        });
        before != self.rejected.len()
    }

    fn send(&self) {
        self.vetted.send_replace(self.vet());
    }
}

/// Where published gateway states meet the streams that serve them. A stream for a
/// gateway that does not exist (yet) waits on an empty set.
///
/// # NACK safety
/// Streams report what proxies accept ([`XdsHub::accepted`]) and reject
/// ([`XdsHub::rejected`]). A rejected version is never served again, to any proxy:
/// streams get the last version some proxy accepted instead (so a proxy that
/// connects or restarts later gets the last good configuration, not the poisoned
/// one), and everything else keeps flowing. A rejection lasts until the translator
/// publishes another version of that resource. [`XdsHub::verdicts`] follows the
/// current rejections (the status writers report them).
#[derive(Debug)]
pub struct XdsHub {
    gateways: Mutex<BTreeMap<ObjectKey, Entry>>,
    verdicts: watch::Sender<Verdicts>,
}

impl Default for XdsHub {
    fn default() -> Self {
        Self {
            gateways: Mutex::default(),
            verdicts: watch::channel(Verdicts::default()).0,
        }
    }
}

impl XdsHub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ObjectKey, Entry>> {
        self.gateways.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publish a gateway's new state; streams wake and send what changed.
    pub fn publish(&self, gateway: &ObjectKey, state: Arc<GatewayResources>) {
        let mut map = self.lock();
        match map.get_mut(gateway) {
            Some(entry) => {
                entry.raw = state;
                let pruned = entry.prune();
                entry.send();
                if pruned {
                    self.update_verdicts(&map);
                }
            }
            None => {
                map.insert(gateway.clone(), Entry::new(state));
            }
        }
    }

    /// Follow a gateway's state as streams serve it, from its current value.
    pub fn subscribe(&self, gateway: &ObjectKey) -> watch::Receiver<Arc<GatewayResources>> {
        let mut map = self.lock();
        map.entry(gateway.clone())
            .or_insert_with(|| Entry::new(Arc::new(GatewayResources::default())))
            .vetted
            .subscribe()
    }

    /// Every gateway's served state that has a resource, by key.
    pub fn all(&self) -> Vec<(ObjectKey, Arc<GatewayResources>)> {
        let map = self.lock();
        map.iter()
            .map(|(k, e)| (k.clone(), e.vetted.borrow().clone()))
            .filter(|(_, g)| !g.is_empty())
            .collect()
    }

    /// The state of a gateway as streams serve it, if any was published.
    pub fn current(&self, gateway: &ObjectKey) -> Option<Arc<GatewayResources>> {
        let map = self.lock();
        map.get(gateway).map(|e| e.vetted.borrow().clone())
    }

    /// A proxy of `gateway` accepted these resources of type `ty`.
    pub fn accepted(&self, gateway: &ObjectKey, ty: ResourceType, resources: &[Arc<Resource>]) {
        if resources.is_empty() {
            return;
        }
        let mut map = self.lock();
        let Some(entry) = map.get_mut(gateway) else {
            return;
        };
        let good = &mut entry.good[ty.index()];
        for r in resources {
            match good.get_mut(r.name.as_str()) {
                Some(g) if Arc::ptr_eq(g, r) || g.version == r.version => {}
                Some(g) => *g = r.clone(),
                None => {
                    good.insert(r.name.clone(), r.clone());
                }
            }
        }
        // Resources the translator no longer publishes leave `good` once it has
        // grown to twice what is published: memory stays proportional to the
        // configuration under churn, at amortised O(1) per accepted resource.
        let published = entry.raw.get(ty);
        if good.len() > 2 * published.len() + 64 {
            good.retain(|name, _| published.contains_key(name));
        }
    }

    /// A proxy of `gateway` rejected these resources of type `ty` with `message`.
    /// Versions some proxy accepted before, or no longer published, are not marked.
    pub fn rejected(
        &self,
        gateway: &ObjectKey,
        ty: ResourceType,
        resources: &[Arc<Resource>],
        message: &str,
    ) {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(gateway) else {
            return;
        };
        let mut changed = false;
        for r in resources {
            let key = (ty, r.name.clone());
            let accepted = (entry.good[ty.index()].get(r.name.as_str()))
                .is_some_and(|g| g.version == r.version);
            let published =
                (entry.raw.get(ty).get(&r.name)).is_some_and(|c| c.version == r.version);
            if accepted || !published || entry.rejected.contains_key(&key) {
                continue;
            }
            tracing::warn!(
                gateway = %gateway,
                type_url = ty.type_url(),
                name = %r.name,
                version = %r.version,
                "proxies will not be sent this rejected version again; they get the last \
                 accepted one until it changes",
            );
            entry.rejected.insert(
                key,
                Rejection {
                    ty,
                    name: r.name.clone(),
                    version: r.version.clone(),
                    message: message.to_owned(),
                },
            );
            changed = true;
        }
        if changed {
            entry.send();
            self.update_verdicts(&map);
        }
    }

    /// Follow every gateway's current rejections.
    pub fn verdicts(&self) -> watch::Receiver<Verdicts> {
        self.verdicts.subscribe()
    }

    fn update_verdicts(&self, map: &BTreeMap<ObjectKey, Entry>) {
        let verdicts: BTreeMap<ObjectKey, Vec<Rejection>> = map
            .iter()
            .filter(|(_, e)| !e.rejected.is_empty())
            .map(|(k, e)| (k.clone(), e.rejected.values().cloned().collect()))
            .collect();
        self.verdicts.send_replace(Arc::new(verdicts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(time: u64, clusters: &[(&str, &str)]) -> Arc<GatewayResources> {
        let mut s = GatewayResources {
            time,
            ..Default::default()
        };
        for (name, body) in clusters {
            let r = Resource::new((*name).to_owned(), Bytes::from(body.to_string()));
            s.by_type[ResourceType::Cluster.index()].insert((*name).to_owned(), Arc::new(r));
        }
        Arc::new(s)
    }

    fn served(hub: &XdsHub, gw: &ObjectKey) -> Vec<(String, String)> {
        let current = hub.current(gw).expect("published");
        (current.get(ResourceType::Cluster).iter())
            .map(|(n, r)| (n.clone(), String::from_utf8_lossy(&r.body).into_owned()))
            .collect()
    }

    fn cluster(hub: &XdsHub, gw: &ObjectKey, name: &str) -> Arc<Resource> {
        let current = hub.current(gw).expect("published");
        current
            .get(ResourceType::Cluster)
            .get(name)
            .expect(name)
            .clone()
    }

    #[test]
    fn a_rejected_version_is_replaced_by_the_accepted_one_until_the_next() {
        let hub = XdsHub::new();
        let gw = ObjectKey::new("ns", "gw");
        hub.publish(&gw, state(1, &[("a", "a1"), ("b", "b1")]));
        let (a1, b1) = (cluster(&hub, &gw, "a"), cluster(&hub, &gw, "b"));
        hub.accepted(&gw, ResourceType::Cluster, &[a1, b1]);
        hub.publish(&gw, state(2, &[("a", "a2"), ("b", "b2"), ("c", "c2")]));
        let (a2, c2) = (cluster(&hub, &gw, "a"), cluster(&hub, &gw, "c"));
        let verdicts = hub.verdicts();
        hub.rejected(&gw, ResourceType::Cluster, &[a2, c2], "bad");
        // a goes back to a1, c (never accepted) is left out, b2 flows.
        let want = [("a", "a1"), ("b", "b2")].map(|(n, b)| (n.to_owned(), b.to_owned()));
        assert_eq!(served(&hub, &gw), want);
        let v = verdicts.borrow().clone();
        assert_eq!(v.get(&gw).map(Vec::len), Some(2));
        // The same content republished stays held back; a new version is tried.
        hub.publish(&gw, state(3, &[("a", "a2"), ("b", "b2"), ("c", "c2")]));
        assert_eq!(served(&hub, &gw), want);
        hub.publish(&gw, state(4, &[("a", "a3"), ("b", "b2")]));
        let want = [("a", "a3"), ("b", "b2")].map(|(n, b)| (n.to_owned(), b.to_owned()));
        assert_eq!(served(&hub, &gw), want);
        assert!(
            hub.verdicts().borrow().is_empty(),
            "no rejection is current"
        );
    }

    #[test]
    fn accepted_versions_of_removed_resources_are_forgotten() {
        let hub = XdsHub::new();
        let gw = ObjectKey::new("ns", "gw");
        for i in 0..1000 {
            let name = format!("c{i}");
            hub.publish(&gw, state(i, &[(name.as_str(), "x")]));
            let r = cluster(&hub, &gw, &name);
            hub.accepted(&gw, ResourceType::Cluster, &[r]);
        }
        let map = hub.lock();
        let good = map
            .get(&gw)
            .map_or(0, |e| e.good[ResourceType::Cluster.index()].len());
        assert!(
            good <= 2 + 64,
            "{good} accepted versions kept for 1 published"
        );
    }
}
