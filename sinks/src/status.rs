//! Status output: the pipeline's status records rendered in the Gateway API's own
//! status shape (`status.conditions`, `status.listeners`, `status.parents`), kept
//! current from deltas, for printing and for the status file.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sluice_pipeline::ir::{
    Condition, GatewayStatus, KeyedChange, Reason, RouteParentStatus, StatusOutput, keyed,
};
use sluice_pipeline::model::{ObjectKey, ParentRef};

use crate::state::{Rejection, ResourceType, Verdicts};

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

/// The longest rejection message written into a condition (Envoy's messages can be
/// long; the CRDs allow 32768 bytes for the whole message).
const MAX_REJECTION_MESSAGE: usize = 2048;

/// A Gateway's `status` JSON with what its proxies rejected: `Programmed` turns
/// `False` with reason `Invalid` and a message naming each rejected resource and
/// Envoy's error. Proxies keep serving the last accepted version meanwhile.
pub fn with_rejections(mut status: Value, rejections: &[Rejection]) -> Value {
    if rejections.is_empty() {
        return status;
    }
    let mut message = String::from(
        "proxies rejected part of this Gateway's configuration and serve its last accepted version:",
    );
    for r in rejections {
        let kind = match r.ty {
            ResourceType::Cluster => "Cluster",
            ResourceType::Endpoint => "ClusterLoadAssignment",
            ResourceType::Listener => "Listener",
            ResourceType::Route => "RouteConfiguration",
        };
        let error: String = r.message.chars().take(MAX_REJECTION_MESSAGE).collect();
        message.push_str(&format!(" {kind} {}: {};", r.name, error.trim()));
    }
    if let Some(conditions) = status["conditions"].as_array_mut() {
        for c in conditions.iter_mut().filter(|c| c["type"] == "Programmed") {
            c["status"] = json!("False");
            c["reason"] = json!(Reason::Invalid.as_str());
            c["message"] = json!(message);
        }
    }
    status
}

/// The status file's document (see [`StatusBoard::to_json`]) with every Gateway's
/// rejections ([`with_rejections`]).
pub fn document_with_rejections(mut doc: Value, verdicts: &Verdicts) -> Value {
    if verdicts.is_empty() {
        return doc;
    }
    if let Some(gateways) = doc["gateways"].as_array_mut() {
        for g in gateways {
            let (Some(ns), Some(name)) = (g["namespace"].as_str(), g["name"].as_str()) else {
                continue;
            };
            if let Some(rejections) = verdicts.get(&ObjectKey::new(ns, name)) {
                g["status"] = with_rejections(g["status"].take(), rejections);
            }
        }
    }
    doc
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn programmed(status: &Value) -> (String, String, String) {
        let c = (status["conditions"].as_array().into_iter().flatten())
            .find(|c| c["type"] == "Programmed")
            .expect("Programmed");
        let text = |f: &str| c[f].as_str().unwrap_or_default().to_owned();
        (text("status"), text("reason"), text("message"))
    }

    #[test]
    fn rejections_make_the_gateway_not_programmed_with_envoys_message() {
        let status = json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok"},
            {"type": "Programmed", "status": "True", "reason": "Programmed", "message": "ok"},
        ]});
        assert_eq!(with_rejections(status.clone(), &[]), status);
        let rejection = Rejection {
            ty: ResourceType::Route,
            name: "ns/gw/80".into(),
            version: "1".into(),
            message: "x".repeat(10 * MAX_REJECTION_MESSAGE),
        };
        let out = with_rejections(status, &[rejection]);
        let (s, reason, message) = programmed(&out);
        assert_eq!((s.as_str(), reason.as_str()), ("False", "Invalid"));
        assert!(
            message.contains("RouteConfiguration ns/gw/80: xxx"),
            "{message}"
        );
        assert!(message.len() < 2 * MAX_REJECTION_MESSAGE, "cut to a bound");
        // Accepted is untouched: the Gateway is valid, its proxies refused a part.
        assert_eq!(out["conditions"][0]["status"], "True");
    }

    #[test]
    fn the_status_document_gets_each_gateways_rejections() {
        let doc = json!({"gateways": [
            {"namespace": "a", "name": "gw", "status": {"conditions": [
                {"type": "Programmed", "status": "True", "reason": "Programmed", "message": ""}]}},
            {"namespace": "b", "name": "gw", "status": {"conditions": [
                {"type": "Programmed", "status": "True", "reason": "Programmed", "message": ""}]}},
        ]});
        let rejection = Rejection {
            ty: ResourceType::Listener,
            name: "b/gw/80".into(),
            version: "1".into(),
            message: "cannot bind".into(),
        };
        let verdicts: Verdicts = Arc::new(
            [(ObjectKey::new("b", "gw"), vec![rejection])]
                .into_iter()
                .collect(),
        );
        let out = document_with_rejections(doc, &verdicts);
        assert_eq!(programmed(&out["gateways"][0]["status"]).0, "True");
        let (s, _, message) = programmed(&out["gateways"][1]["status"]);
        assert_eq!(s, "False");
        assert!(
            message.contains("Listener b/gw/80: cannot bind"),
            "{message}"
        );
    }
}
