//! What a proxy asked for, per resource type: the wildcard and/or a set of names,
//! and what of a gateway's state it can get ([`Subscription::offered`]).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use crate::state::{GatewayResources, Resource, ResourceMap, ResourceType};

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

    /// The resources of type `ty` this subscription may get from `state`: all of
    /// the type, and for LDS also the API listeners it names explicitly (gRPC
    /// clients ask for `xds:///HOSTNAME`'s Listener `HOSTNAME`). A socket listener
    /// wins over an API listener of the same name. A wildcard alone never gets an
    /// API listener: Envoy rejects them. Borrowed unless an API listener is named.
    pub fn offered<'a>(
        &self,
        ty: ResourceType,
        state: &'a GatewayResources,
    ) -> Cow<'a, ResourceMap> {
        let all = state.get(ty);
        if ty != ResourceType::Listener {
            return Cow::Borrowed(all);
        }
        let mut named_api = self
            .names
            .iter()
            .filter(|n| !all.contains_key(*n))
            .filter_map(|n| state.api_listeners.get_key_value(n))
            .peekable();
        if named_api.peek().is_none() {
            return Cow::Borrowed(all);
        }
        let mut offered = all.clone();
        offered.extend(named_api.map(|(n, r)| (n.clone(), r.clone())));
        Cow::Owned(offered)
    }

    /// The resources of `all` this subscription wants.
    pub fn select<'a>(
        &'a self,
        all: &'a ResourceMap,
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
    fn api_listeners_are_offered_by_name_only_and_socket_listeners_win() {
        let res = |name: &str, body: &'static [u8]| {
            (
                name.to_string(),
                Arc::new(Resource::new(name.into(), body.into())),
            )
        };
        let mut state = GatewayResources::default();
        state.by_type[ResourceType::Listener.index()] =
            [res("ns/gw/80", b"socket"), res("clash", b"socket")]
                .into_iter()
                .collect();
        state.api_listeners = [res("a.example.com", b"api"), res("clash", b"api")]
            .into_iter()
            .collect();
        let offered_names = |sub: &Subscription| {
            let offered = sub.offered(ResourceType::Listener, &state);
            sub.select(&offered)
                .map(|(n, r)| format!("{n}={}", String::from_utf8_lossy(&r.body)))
                .collect::<Vec<_>>()
        };

        let wildcard = Subscription::from_sotw(ResourceType::Listener, &[], None);
        assert_eq!(
            offered_names(&wildcard),
            ["clash=socket", "ns/gw/80=socket"]
        );
        let named = Subscription::from_sotw(
            ResourceType::Listener,
            &names(&["a.example.com", "clash", "missing"]),
            None,
        );
        assert_eq!(offered_names(&named), ["a.example.com=api", "clash=socket"]);
        let both = Subscription::from_sotw(
            ResourceType::Listener,
            &names(&["*", "a.example.com"]),
            None,
        );
        assert_eq!(
            offered_names(&both),
            ["a.example.com=api", "clash=socket", "ns/gw/80=socket"]
        );
        // Other types never see API listeners.
        let rds = Subscription::from_sotw(ResourceType::Route, &names(&["a.example.com"]), None);
        assert!(rds.offered(ResourceType::Route, &state).is_empty());
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
