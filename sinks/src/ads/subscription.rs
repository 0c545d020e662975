//! What a proxy asked for, per resource type: the wildcard and/or a set of names.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::state::{Resource, ResourceType};

/// The wildcard name of the xDS protocol.
pub const WILDCARD: &str = "*";

/// One type's subscription on one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    pub wildcard: bool,
    pub names: BTreeSet<String>,
}

impl Subscription {
    /// From a state-of-the-world request's full `resource_names`. An empty list is
    /// the legacy wildcard for LDS and CDS when the type had no subscription yet
    /// or was already a wildcard; for RDS and EDS it means nothing.
    pub fn from_sotw(ty: ResourceType, names: &[String], previous: Option<&Subscription>) -> Self {
        let legacy = ty.is_wildcard()
            && names.is_empty()
            && previous.is_none_or(|p| p.wildcard && p.names.is_empty());
        let wildcard = legacy || names.iter().any(|n| n == WILDCARD);
        let names = names.iter().filter(|n| *n != WILDCARD).cloned().collect();
        Self { wildcard, names }
    }

    /// Applies a delta request's subscribe/unsubscribe lists. `first` is true for
    /// the type's first request on the stream, where an empty subscribe list is the
    /// legacy wildcard for LDS and CDS. Returns the explicitly added names.
    pub fn apply_delta(
        &mut self,
        ty: ResourceType,
        first: bool,
        subscribe: &[String],
        unsubscribe: &[String],
    ) -> BTreeSet<String> {
        if first && ty.is_wildcard() && subscribe.is_empty() {
            self.wildcard = true;
        }
        let mut added = BTreeSet::new();
        for name in subscribe {
            if name == WILDCARD {
                self.wildcard = true;
            } else if self.names.insert(name.clone()) {
                added.insert(name.clone());
            }
        }
        for name in unsubscribe {
            if name == WILDCARD {
                self.wildcard = false;
            } else {
                self.names.remove(name);
                added.remove(name);
            }
        }
        added
    }

    pub fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// The resources of `all` this subscription wants.
    pub fn select<'a>(
        &'a self,
        all: &'a BTreeMap<String, Arc<Resource>>,
    ) -> impl Iterator<Item = (&'a String, &'a Arc<Resource>)> + 'a {
        let by_name: Box<dyn Iterator<Item = _>> = if self.wildcard {
            Box::new(all.iter())
        } else {
            Box::new(self.names.iter().filter_map(|n| all.get_key_value(n)))
        };
        by_name
    }
}

#[cfg(test)]
mod tests {
    //! Wildcard rules of the xDS protocol: legacy (empty list) only for LDS/CDS and
    //! only while the subscription is a pure wildcard; `*` always.
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sotw_wildcard_rules() {
        let cds = Subscription::from_sotw(ResourceType::Cluster, &[], None);
        assert!(cds.wildcard);
        let rds = Subscription::from_sotw(ResourceType::Route, &[], None);
        assert!(!rds.wildcard && rds.names.is_empty());
        let named = Subscription::from_sotw(ResourceType::Listener, &names(&["a"]), None);
        assert!(!named.wildcard && named.wants("a") && !named.wants("b"));
        // After explicit names, an empty list unsubscribes from everything.
        let after = Subscription::from_sotw(ResourceType::Listener, &[], Some(&named));
        assert!(!after.wildcard && after.names.is_empty());
        let star = Subscription::from_sotw(ResourceType::Route, &names(&["*", "a"]), None);
        assert!(star.wildcard && star.names.contains("a"));
    }

    #[test]
    fn delta_subscribe_and_unsubscribe() {
        let mut s = Subscription::default();
        s.apply_delta(ResourceType::Cluster, true, &[], &[]);
        assert!(s.wildcard);
        s.apply_delta(ResourceType::Cluster, false, &[], &names(&["*"]));
        assert!(!s.wildcard);
        let mut r = Subscription::default();
        let added = r.apply_delta(ResourceType::Route, true, &names(&["a", "b"]), &[]);
        assert_eq!(added.len(), 2);
        assert!(!r.wildcard);
        let added = r.apply_delta(
            ResourceType::Route,
            false,
            &names(&["a", "c"]),
            &names(&["b"]),
        );
        assert_eq!(added, ["c".to_string()].into());
        assert_eq!(r.names, ["a".to_string(), "c".to_string()].into());
    }
}
