//! The order in which one update reaches a proxy, and what changed per type.
//!
//! Envoy warms a cluster before it uses it, and a route may only name clusters the
//! proxy already has. So every update goes out as up to eight messages, in
//! [`WARMING_ORDER`]: new or changed clusters, then endpoints, then secrets (the
//! certificates of HTTPS listeners), then listeners, then routes, and only then the
//! removal of clusters, their endpoints and secrets.

use std::collections::BTreeMap;
use std::sync::Arc;

use imbl::ordmap::DiffItem;

use crate::state::{GatewayResources, Resource, ResourceMap, ResourceType};

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
pub const WARMING_ORDER: [Phase; 8] = [
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
        ty: ResourceType::Secret,
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
    Phase {
        ty: ResourceType::Secret,
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

    /// [`Diff::new`] for a proxy whose `held` resources were brought up to `base`
    /// (the offered set at its last sync, `held` limited to what `sub` wants):
    /// only the names that differ between `base` and `current` are looked at, and
    /// the maps' shared structure is skipped, so the work is O(changes), not
    /// O(resources).
    pub fn since<H: Held>(
        sub: &Subscription,
        base: &ResourceMap,
        current: &ResourceMap,
        held: &BTreeMap<String, H>,
    ) -> Self {
        let mut diff = Self::default();
        for item in base.diff(current) {
            match item {
                DiffItem::Add(name, r) | DiffItem::Update { new: (name, r), .. } => {
                    if sub.wants(name) && !held.get(name).is_some_and(|h| h.is(r)) {
                        diff.upserts.push((name.clone(), r.clone()));
                    }
                }
                DiffItem::Remove(name, _) => {
                    if held.contains_key(name) {
                        diff.removals.push(name.clone());
                    }
                }
            }
        }
        diff
    }

    /// What a stream sends of type `ty` to bring a proxy that holds `held` (limited
    /// to what `sub` wants) up to `state`: [`Diff::since`] the offered set it last
    /// synced to (`base`), or [`Diff::new`] when there is none (after a subscription
    /// change). `base` becomes the offered set of `state`.
    pub fn sync<H: Held>(
        ty: ResourceType,
        sub: &Subscription,
        base: &mut Option<ResourceMap>,
        state: &GatewayResources,
        held: &BTreeMap<String, H>,
    ) -> Self {
        let offered = sub.offered(ty, state);
        let diff = match base.as_ref() {
            Some(base) => Diff::since(sub, base, &offered, held),
            None => Diff::new(sub, &offered, held),
        };
        *base = Some(offered.into_owned());
        diff
    }

    /// Takes out the parts `phase` sends (each part is sent in one phase only).
    pub fn take(&mut self, phase: Phase) -> Self {
        Self {
            upserts: if phase.upserts {
                std::mem::take(&mut self.upserts)
            } else {
                Vec::new()
            },
            removals: if phase.removals {
                std::mem::take(&mut self.removals)
            } else {
                Vec::new()
            },
        }
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
        assert_eq!(upserts, [Cluster, Endpoint, Secret, Listener, Route]);
        let last_three: Vec<_> = WARMING_ORDER[5..]
            .iter()
            .map(|p| (p.ty, p.upserts))
            .collect();
        assert_eq!(
            last_three,
            [(Cluster, false), (Endpoint, false), (Secret, false)]
        );
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

    /// `since` gives what `new` gives for a proxy that was synced to `base`, for
    /// wildcard and named subscriptions, additions, changes and removals.
    #[test]
    fn since_a_synced_base_equals_the_full_diff() {
        let res = |name: &str, body: &str| {
            let r = Resource::new(name.into(), body.to_owned().into_bytes().into());
            (name.to_string(), Arc::new(r))
        };
        let base: ResourceMap = (0..200).map(|i| res(&format!("r{i:03}"), "v1")).collect();
        let mut current = base.clone();
        current.insert(res("r005", "v2").0, res("r005", "v2").1);
        current.insert(res("r150", "v2").0, res("r150", "v2").1);
        current.remove("r010");
        current.remove("r151");
        current.insert(res("new", "v1").0, res("new", "v1").1);
        let subs = [
            Subscription {
                wildcard: true,
                ..Subscription::default()
            },
            Subscription {
                wildcard: false,
                names: ["r005", "r010", "r020", "new"].map(String::from).into(),
            },
        ];
        for sub in subs {
            // Held: what a sync to `base` leaves.
            let held: BTreeMap<String, Arc<Resource>> = sub
                .select(&base)
                .map(|(n, r)| (n.clone(), r.clone()))
                .collect();
            let full = Diff::new(&sub, &current, &held);
            let fast = Diff::since(&sub, &base, &current, &held);
            let names = |d: &Diff| {
                let up: Vec<String> = d.upserts.iter().map(|(n, _)| n.clone()).collect();
                (up, d.removals.clone())
            };
            assert_eq!(names(&fast), names(&full), "{sub:?}");
            assert!(!fast.is_empty());
        }
    }
}
