//! Helpers for the unit-expectation tests (`select.rs`, `attach.rs`,
//! `backends.rs`): run objects through the public `Pipeline` and read back the
//! records a test asserts on.

#![allow(dead_code)] // each test file uses a different subset

use std::collections::BTreeMap;

use sluice_pipeline::ir::{
    Action, Keyed, RouteParentStatus, StatusKey, StatusOutput, VirtualHostIr, XdsKey, XdsOutput,
};
use sluice_pipeline::model::{Change, Object, ObjectKey};
use sluice_pipeline::{Pipeline, PipelineConfig};

/// A pipeline plus the output state its deltas accumulate to, per stream.
pub struct Run {
    pipeline: Pipeline,
    pub xds: BTreeMap<XdsKey, XdsOutput>,
    pub status: BTreeMap<StatusKey, StatusOutput>,
}

/// Apply consolidated updates to a keyed state; removals first, so a replaced
/// record ends up with its new value.
fn merge<T: Keyed>(state: &mut BTreeMap<T::Key, T>, updates: Vec<(T, isize)>) {
    let (added, removed): (Vec<_>, Vec<_>) = updates.into_iter().partition(|(_, d)| *d > 0);
    for (out, _) in removed {
        state.remove(&out.key());
    }
    for (out, _) in added {
        state.insert(out.key(), out);
    }
}

impl Run {
    pub fn new(objects: Vec<Object>) -> Self {
        let pipeline = Pipeline::new(PipelineConfig::default()).expect("pipeline");
        let mut run = Run {
            pipeline,
            xds: BTreeMap::new(),
            status: BTreeMap::new(),
        };
        run.apply(objects.into_iter().map(Change::Apply).collect());
        run
    }

    /// Apply one logical time's changes.
    pub fn apply(&mut self, changes: Vec<Change>) {
        let delta = self.pipeline.apply(changes).expect("apply");
        merge(&mut self.xds, delta.xds);
        merge(&mut self.status, delta.status);
    }

    /// The status of `route`'s parentRef number `index`, if the pipeline wrote one.
    pub fn route_status(&self, ns: &str, name: &str, index: usize) -> Option<&RouteParentStatus> {
        match self
            .status
            .get(&StatusKey::Route(ObjectKey::new(ns, name), index))
        {
            Some(StatusOutput::Route(s)) => Some(s),
            _ => None,
        }
    }

    /// The route's conditions for parentRef `index`; panics when it has none.
    pub fn route_conds(&self, ns: &str, name: &str, index: usize) -> Conds {
        let s = self
            .route_status(ns, name, index)
            .unwrap_or_else(|| panic!("no status for {ns}/{name} parent {index}"));
        conds(s)
    }

    /// `attachedRoutes` of each listener of the Gateway, by listener name.
    pub fn attached(&self, ns: &str, name: &str) -> Vec<(String, u32)> {
        match self
            .status
            .get(&StatusKey::Gateway(ObjectKey::new(ns, name)))
        {
            Some(StatusOutput::Gateway(s)) => s
                .listeners
                .iter()
                .map(|l| (l.name.clone(), l.attached_routes))
                .collect(),
            other => panic!("no gateway status for {ns}/{name}: {other:?}"),
        }
    }

    pub fn vhost(&self, gw: (&str, &str), port: u16, host: &str) -> Option<&VirtualHostIr> {
        let key = XdsKey::VirtualHost(ObjectKey::new(gw.0, gw.1), port, host.into());
        match self.xds.get(&key) {
            Some(XdsOutput::VirtualHost(v)) => Some(v),
            _ => None,
        }
    }

    /// Names of the route entries of a virtual host, in order; panics without one.
    pub fn vhost_entries(&self, gw: (&str, &str), port: u16, host: &str) -> Vec<String> {
        let v = self
            .vhost(gw, port, host)
            .unwrap_or_else(|| panic!("no virtual host {host} on {gw:?}:{port}"));
        v.routes.iter().map(|r| r.name.clone()).collect()
    }

    /// The action of the first entry of a virtual host.
    pub fn first_action(&self, gw: (&str, &str), port: u16, host: &str) -> Action {
        let v = self.vhost(gw, port, host).expect("virtual host");
        v.routes.first().expect("a route entry").action.clone()
    }

    /// Every virtual host hostname on `(gateway, port)`, sorted.
    pub fn hostnames(&self, gw: (&str, &str), port: u16) -> Vec<String> {
        let gw = ObjectKey::new(gw.0, gw.1);
        self.xds
            .keys()
            .filter_map(|k| match k {
                XdsKey::VirtualHost(g, p, h) if *g == gw && *p == port => Some(h.clone()),
                _ => None,
            })
            .collect()
    }

    /// Names of the clusters, and of the `(gateway, cluster)` memberships.
    pub fn clusters(&self) -> (Vec<String>, Vec<(String, String)>) {
        let mut clusters = vec![];
        let mut members = vec![];
        for k in self.xds.keys() {
            match k {
                XdsKey::Cluster(c) => clusters.push(c.clone()),
                XdsKey::GatewayCluster(g, c) => members.push((g.to_string(), c.clone())),
                _ => {}
            }
        }
        (clusters, members)
    }

    pub fn endpoints(&self, cluster: &str) -> Option<Vec<(String, u16)>> {
        match self.xds.get(&XdsKey::Endpoints(cluster.into())) {
            Some(XdsOutput::Endpoints(e)) => Some(e.endpoints.clone()),
            _ => None,
        }
    }
}

/// `(type, status, reason)` of each condition, sorted.
pub type Conds = Vec<(String, bool, String)>;

pub fn conds(status: &RouteParentStatus) -> Conds {
    let mut v: Conds = status
        .conditions
        .iter()
        .map(|c| (c.type_.to_string(), c.status, c.reason.to_string()))
        .collect();
    v.sort();
    v
}

/// `[("Accepted", accepted, reason), ("ResolvedRefs", resolved, reason)]`.
pub fn expect(accepted: (bool, &str), resolved: (bool, &str)) -> Conds {
    vec![
        ("Accepted".into(), accepted.0, accepted.1.into()),
        ("ResolvedRefs".into(), resolved.0, resolved.1.into()),
    ]
}
