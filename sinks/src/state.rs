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

/// The four resource types Sluice serves, in warming order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Cluster,
    Endpoint,
    Listener,
    Route,
}

impl ResourceType {
    pub const ALL: [ResourceType; 4] = [
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Listener,
        ResourceType::Route,
    ];

    pub fn type_url(self) -> &'static str {
        match self {
            ResourceType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            ResourceType::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            ResourceType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            ResourceType::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        }
    }

    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// LDS and CDS are wildcard subscriptions; RDS and EDS are by name.
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
    pub by_type: [ResourceMap; 4],
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

/// Where published gateway states meet the streams that serve them. A stream for a
/// gateway that does not exist (yet) waits on an empty set.
#[derive(Debug, Default)]
pub struct XdsHub {
    gateways: Mutex<BTreeMap<ObjectKey, watch::Sender<Arc<GatewayResources>>>>,
}

impl XdsHub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Publish a gateway's new state; streams wake and send what changed.
    pub fn publish(&self, gateway: &ObjectKey, state: Arc<GatewayResources>) {
        let mut map = self.gateways.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(gateway) {
            Some(tx) => {
                tx.send_replace(state);
            }
            None => {
                let (tx, _rx) = watch::channel(state);
                map.insert(gateway.clone(), tx);
            }
        }
    }

    /// Follow a gateway's state, from its current value.
    pub fn subscribe(&self, gateway: &ObjectKey) -> watch::Receiver<Arc<GatewayResources>> {
        let mut map = self.gateways.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(gateway.clone())
            .or_insert_with(|| watch::channel(Arc::new(GatewayResources::default())).0)
            .subscribe()
    }

    /// Every gateway's current state that has a resource, by key.
    pub fn all(&self) -> Vec<(ObjectKey, Arc<GatewayResources>)> {
        let map = self.gateways.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|(k, tx)| (k.clone(), tx.borrow().clone()))
            .filter(|(_, g)| !g.is_empty())
            .collect()
    }

    /// The current state of a gateway, if any was published.
    pub fn current(&self, gateway: &ObjectKey) -> Option<Arc<GatewayResources>> {
        let map = self.gateways.lock().unwrap_or_else(|e| e.into_inner());
        map.get(gateway).map(|tx| tx.borrow().clone())
    }
}
