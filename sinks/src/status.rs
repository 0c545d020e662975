//! Status output: the pipeline's status records rendered in the Gateway API's own
//! status shape (`status.conditions`, `status.listeners`, `status.parents`), kept
//! current from deltas, for printing and for the status file.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sluice_pipeline::ir::{
    Condition, GatewayStatus, KeyedChange, RouteParentStatus, StatusOutput, keyed,
};
use sluice_pipeline::model::{ObjectKey, ParentRef};

fn condition(c: &Condition, generation: i64) -> Value {
    json!({
        "type": c.type_.as_str(),
        "status": if c.status { "True" } else { "False" },
        "reason": c.reason.as_str(),
        "message": c.message,
        "observedGeneration": generation,
    })
}

/// A Gateway's `status`, with the addresses it is reachable at.
pub fn gateway_status_json(s: &GatewayStatus, addresses: &[String]) -> Value {
    let listeners: Vec<Value> = s
        .listeners
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "attachedRoutes": l.attached_routes,
                "supportedKinds": l.supported_kinds.iter().map(|k| json!({"group": k.group, "kind": k.kind})).collect::<Vec<_>>(),
                "conditions": l.conditions.iter().map(|c| condition(c, s.generation)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "addresses": addresses.iter().map(|a| json!({"type": "IPAddress", "value": a})).collect::<Vec<_>>(),
        "conditions": s.conditions.iter().map(|c| condition(c, s.generation)).collect::<Vec<_>>(),
        "listeners": listeners,
    })
}

fn parent_ref_json(p: &ParentRef, route: &ObjectKey) -> Value {
    let mut v = json!({
        "group": p.group,
        "kind": p.kind,
        "namespace": p.namespace.clone().unwrap_or_else(|| route.namespace.clone()),
        "name": p.name,
    });
    if let Some(s) = &p.section_name {
        v["sectionName"] = json!(s);
    }
    if let Some(port) = p.port {
        v["port"] = json!(port);
    }
    v
}

/// An HTTPRoute's `status` from its per-parent records.
pub fn route_status_json(parents: &[&RouteParentStatus], controller: &str) -> Value {
    let parents: Vec<Value> = parents
        .iter()
        .map(|p| {
            json!({
                "parentRef": parent_ref_json(&p.parent, &p.route),
                "controllerName": controller,
                "conditions": p.conditions.iter().map(|c| condition(c, p.generation)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "parents": parents })
}

/// The current status of every Gateway and HTTPRoute, maintained from deltas.
/// The maps are persistent: a snapshot (`clone`) is O(1), so the runtime can hand
/// the whole board to a writer thread after every logical time.
#[derive(Clone, Debug, Default)]
pub struct StatusBoard {
    gateways: imbl::OrdMap<ObjectKey, GatewayStatus>,
    routes: imbl::OrdMap<(ObjectKey, usize), RouteParentStatus>,
    time: u64,
}

impl StatusBoard {
    /// Apply the status stream of one logical time (a [`Delta`]'s `status`);
    /// returns whether any status changed.
    ///
    /// [`Delta`]: sluice_pipeline::ir::Delta
    pub fn apply(&mut self, time: u64, updates: &[(StatusOutput, isize)]) -> bool {
        self.time = time;
        let changes = keyed(updates);
        let changed = !changes.is_empty();
        for (_, change) in changes {
            match change {
                KeyedChange::Added(new) | KeyedChange::Changed { new, .. } => self.insert(*new),
                KeyedChange::Removed(old) => self.remove(&old),
            }
        }
        changed
    }

    fn insert(&mut self, status: StatusOutput) {
        match status {
            StatusOutput::Gateway(s) => {
                self.gateways.insert(s.gateway.clone(), s);
            }
            StatusOutput::Route(s) => {
                self.routes.insert((s.route.clone(), s.index), s);
            }
        }
    }

    fn remove(&mut self, status: &StatusOutput) {
        match status {
            StatusOutput::Gateway(s) => {
                self.gateways.remove(&s.gateway);
            }
            StatusOutput::Route(s) => {
                self.routes.remove(&(s.route.clone(), s.index));
            }
        }
    }

    pub fn gateway(&self, key: &ObjectKey) -> Option<&GatewayStatus> {
        self.gateways.get(key)
    }

    pub fn gateways(&self) -> impl Iterator<Item = &GatewayStatus> {
        self.gateways.values()
    }

    /// Route → its parent statuses, in parentRef order.
    pub fn routes(&self) -> BTreeMap<&ObjectKey, Vec<&RouteParentStatus>> {
        let mut out: BTreeMap<&ObjectKey, Vec<&RouteParentStatus>> = BTreeMap::new();
        for ((route, _), s) in &self.routes {
            out.entry(route).or_default().push(s);
        }
        out
    }

    /// The whole board as the status file's JSON document.
    pub fn to_json(
        &self,
        controller: &str,
        addresses: &dyn Fn(&ObjectKey) -> Vec<String>,
    ) -> Value {
        let gateways: Vec<Value> = self
            .gateways
            .values()
            .map(|s| {
                json!({
                    "namespace": s.gateway.namespace,
                    "name": s.gateway.name,
                    "status": gateway_status_json(s, &addresses(&s.gateway)),
                })
            })
            .collect();
        let routes: Vec<Value> = self
            .routes()
            .into_iter()
            .map(|(route, parents)| {
                json!({
                    "namespace": route.namespace,
                    "name": route.name,
                    "status": route_status_json(&parents, controller),
                })
            })
            .collect();
        json!({ "time": self.time, "gateways": gateways, "httproutes": routes })
    }
}
