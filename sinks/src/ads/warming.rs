//! The order in which one update reaches a proxy, and what changed per type.
//!
//! Envoy warms a cluster before it uses it, and a route may only name clusters the
//! proxy already has. So every update goes out as up to six messages, in
//! [`WARMING_ORDER`]: new or changed clusters, then endpoints, then listeners, then
//! routes, and only then the removal of clusters and their endpoints.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::state::{Resource, ResourceMap, ResourceType};

use super::subscription::Subscription;

/// One message of an update: a type, and whether it carries that type's new or
/// changed resources, its removals, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phase {
    pub ty: ResourceType,
    pub upserts: bool,
    pub removals: bool,
}

/// Every type has exactly one phase with `upserts` and one with `removals`.
pub const WARMING_ORDER: [Phase; 6] = [
    Phase {
        ty: ResourceType::Cluster,
        upserts: true,
        removals: false,
    },
    Phase {
        ty: ResourceType::Endpoint,
        upserts: true,
        removals: false,
    },
    Phase {
        ty: ResourceType::Listener,
        upserts: true,
        removals: true,
    },
    Phase {
        ty: ResourceType::Route,
        upserts: true,
        removals: true,
    },
    Phase {
        ty: ResourceType::Cluster,
        upserts: false,
        removals: true,
    },
    Phase {
        ty: ResourceType::Endpoint,
        upserts: false,
        removals: true,
    },
];

/// What a proxy holds of one resource: the resource itself (state of the world)
/// or only its version (incremental, where a reconnecting proxy tells versions).
pub(crate) trait Held {
    fn is(&self, resource: &Arc<Resource>) -> bool;
}

impl Held for Arc<Resource> {
    fn is(&self, resource: &Arc<Resource>) -> bool {
        Arc::ptr_eq(self, resource) || self.version == resource.version
    }
}

impl Held for String {
    fn is(&self, resource: &Arc<Resource>) -> bool {
        *self == resource.version
    }
}

/// One type's difference between what the proxy holds and what it wants now.
#[derive(Debug, Default)]
pub(crate) struct Diff {
    /// Wanted resources the proxy lacks or holds in another version, by name.
    pub upserts: Vec<(String, Arc<Resource>)>,
    /// Held names that no longer exist.
    pub removals: Vec<String>,
}

impl Diff {
    /// `held` must already be limited to names `sub` wants.
    pub fn new<H: Held>(
        sub: &Subscription,
        current: &ResourceMap,
        held: &BTreeMap<String, H>,
    ) -> Self {
        let upserts = sub
            .select(current)
            .filter(|(name, r)| !held.get(*name).is_some_and(|h| h.is(r)))
            .map(|(name, r)| (name.clone(), r.clone()))
            .collect();
        let removals = held
            .keys()
            .filter(|n| !current.contains_key(*n))
            .cloned()
            .collect();
        Self { upserts, removals }
    }

    /// Keeps only the parts `phase` sends.
    pub fn for_phase(mut self, phase: Phase) -> Self {
        if !phase.upserts {
            self.upserts.clear();
        }
        if !phase.removals {
            self.removals.clear();
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removals.is_empty()
    }
}

#[cfg(test)]
mod tests {
    //! The warming order is the one Envoy needs (clusters → endpoints → listeners →
    //! routes → removals), and a diff names exactly the changed resources.
    use super::*;
    use crate::state::ResourceType::*;

    #[test]
    fn each_type_upserts_once_and_removes_once_clusters_first_removals_last() {
        for ty in ResourceType::ALL {
            assert_eq!(
                WARMING_ORDER
                    .iter()
                    .filter(|p| p.ty == ty && p.upserts)
                    .count(),
                1
            );
            assert_eq!(
                WARMING_ORDER
                    .iter()
                    .filter(|p| p.ty == ty && p.removals)
                    .count(),
                1
            );
        }
        let upserts: Vec<_> = WARMING_ORDER
            .iter()
            .filter(|p| p.upserts)
            .map(|p| p.ty)
            .collect();
        assert_eq!(upserts, [Cluster, Endpoint, Listener, Route]);
        let last_two: Vec<_> = WARMING_ORDER[4..]
            .iter()
            .map(|p| (p.ty, p.upserts))
            .collect();
        assert_eq!(last_two, [(Cluster, false), (Endpoint, false)]);
    }

    #[test]
    fn diff_names_changed_new_and_removed() {
        let res = |name: &str, body: &'static [u8]| {
            (
                name.to_string(),
                Arc::new(Resource::new(name.into(), body.into())),
            )
        };
        let current: ResourceMap = [res("a", b"1"), res("b", b"2"), res("c", b"3")]
            .into_iter()
            .collect();
        let held: BTreeMap<_, _> = [res("a", b"1"), res("b", b"old"), res("gone", b"x")].into();
        let sub = Subscription {
            wildcard: true,
            ..Subscription::default()
        };
        let d = Diff::new(&sub, &current, &held);
        let up: Vec<_> = d.upserts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(up, ["b", "c"]);
        assert_eq!(d.removals, ["gone"]);
    }
}
