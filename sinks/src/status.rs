//! Status output: the pipeline's status records rendered in the Gateway API's own
//! status shape (`status.conditions`, `status.listeners`, `status.parents`), kept
//! current from deltas, for printing and for the status file.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sluice_pipeline::ir::{
    Condition, GatewayStatus, KeyedChange, PolicyStatus, Reason, RouteParentStatus, StatusOutput,
    keyed,
};
use sluice_pipeline::model::{GATEWAY_GROUP, ObjectKey, ParentRef};

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

/// The condition type a route parent entry gets while proxies reject the route table
/// of a port it attaches to. Implementation-specific (domain-prefixed), as the
/// Gateway API asks of conditions it does not define: routes have no `Programmed`.
pub const ROUTE_PROGRAMMED: &str = "sluice.dev/Programmed";

/// The Gateway ports whose Listener or RouteConfiguration proxies rejected (both are
/// named `namespace/name/PORT`).
fn rejected_ports(rejections: &[Rejection]) -> BTreeSet<u16> {
    (rejections.iter())
        .filter(|r| matches!(r.ty, ResourceType::Listener | ResourceType::Route))
        .filter_map(|r| r.name.rsplit('/').next()?.parse().ok())
        .collect()
}

/// What proxies rejected, as a condition message.
fn rejection_message(rejections: &[Rejection]) -> String {
    let mut message = String::from(
        "proxies rejected part of this configuration and serve its last accepted version:",
    );
    for r in rejections {
        let kind = match r.ty {
            ResourceType::Cluster => "Cluster",
            ResourceType::Endpoint => "ClusterLoadAssignment",
            ResourceType::Listener => "Listener",
            ResourceType::Route => "RouteConfiguration",
            ResourceType::Secret => "Secret",
        };
        let error: String = r.message.chars().take(MAX_REJECTION_MESSAGE).collect();
        message.push_str(&format!(" {kind} {}: {};", r.name, error.trim()));
    }
    message
}

/// Sets every `Programmed` condition of `conditions` (a JSON list) to `False` /
/// `Invalid` with `message`.
fn not_programmed(conditions: &mut Value, message: &str) {
    for c in (conditions.as_array_mut().into_iter().flatten()).filter(|c| c["type"] == "Programmed")
    {
        c["status"] = json!("False");
        c["reason"] = json!(Reason::Invalid.as_str());
        c["message"] = json!(message);
    }
}

/// A Gateway's `status` JSON (of `gateway`) with what its proxies rejected:
/// `Programmed` turns `False` with reason `Invalid` and a message naming each
/// rejected resource and Envoy's error, on the Gateway and on each listener of a
/// rejected port. Proxies keep serving the last accepted version meanwhile.
pub fn with_rejections(
    mut status: Value,
    gateway: &GatewayStatus,
    rejections: &[Rejection],
) -> Value {
    if rejections.is_empty() {
        return status;
    }
    let message = rejection_message(rejections);
    not_programmed(&mut status["conditions"], &message);
    let ports = rejected_ports(rejections);
    for l in status["listeners"].as_array_mut().into_iter().flatten() {
        let port = (gateway.listeners.iter())
            .find(|s| l["name"] == s.name.as_str())
            .map(|s| s.port);
        if port.is_some_and(|p| ports.contains(&p)) {
            not_programmed(&mut l["conditions"], &message);
        }
    }
    status
}

/// The condition a route's parent entry gets while proxies reject the route table of
/// a port where it attaches to that parent ([`ROUTE_PROGRAMMED`] `False` / `Invalid`).
pub fn route_rejection(
    parent: &RouteParentStatus,
    board: &StatusBoard,
    verdicts: &Verdicts,
) -> Option<Value> {
    let p = &parent.parent;
    let namespace = p.namespace.as_deref().unwrap_or(&parent.route.namespace);
    let key = ObjectKey::new(namespace, &p.name);
    let rejections = verdicts.get(&key)?;
    let ports = rejected_ports(rejections);
    let gateway = board.gateway(&key)?;
    let affected = (gateway.listeners.iter())
        .filter(|l| p.section_name.as_ref().is_none_or(|s| *s == l.name))
        .filter(|l| p.port.is_none_or(|port| port == l.port))
        .any(|l| ports.contains(&l.port));
    affected.then(|| {
        json!({
            "type": ROUTE_PROGRAMMED,
            "status": "False",
            "reason": Reason::Invalid.as_str(),
            "message": rejection_message(rejections),
            "observedGeneration": parent.generation,
        })
    })
}

/// The status file's document (see [`StatusBoard::to_json`] of `board`) with every
/// Gateway's and route's rejections ([`with_rejections`], [`route_rejection`]).
pub fn document_with_rejections(mut doc: Value, board: &StatusBoard, verdicts: &Verdicts) -> Value {
    if verdicts.is_empty() {
        return doc;
    }
    let key = |v: &Value| {
        Some(ObjectKey::new(
            v["namespace"].as_str()?,
            v["name"].as_str()?,
        ))
    };
    for g in doc["gateways"].as_array_mut().into_iter().flatten() {
        let Some(k) = key(g) else { continue };
        if let (Some(rejections), Some(gateway)) = (verdicts.get(&k), board.gateway(&k)) {
            g["status"] = with_rejections(g["status"].take(), gateway, rejections);
        }
    }
    let routes = board.routes();
    for r in doc["httproutes"].as_array_mut().into_iter().flatten() {
        let Some(parents) = key(r).and_then(|k| routes.get(&k)) else {
            continue;
        };
        for (i, parent) in parents.iter().enumerate() {
            if let Some(c) = route_rejection(parent, board, verdicts)
                && let Some(conditions) = r["status"]["parents"][i]["conditions"].as_array_mut()
            {
                conditions.push(c);
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

/// A BackendTLSPolicy's `status`: one `PolicyAncestorStatus` per Gateway, each
/// with the policy's conditions.
pub fn policy_status_json(p: &PolicyStatus, controller: &str) -> Value {
    let ancestors: Vec<Value> = (p.ancestors.iter())
        .map(|gw| {
            json!({
                "ancestorRef": {
                    "group": GATEWAY_GROUP,
                    "kind": "Gateway",
                    "namespace": gw.namespace,
                    "name": gw.name,
                },
                "controllerName": controller,
                "conditions": p.conditions.iter().map(|c| condition(c, p.generation)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "ancestors": ancestors })
}

/// The current status of every Gateway, HTTPRoute and BackendTLSPolicy, maintained
/// from deltas.
/// The maps are persistent: a snapshot (`clone`) is O(1), so the runtime can hand
/// the whole board to a writer thread after every logical time.
#[derive(Clone, Debug, Default)]
pub struct StatusBoard {
    gateways: imbl::OrdMap<ObjectKey, GatewayStatus>,
    routes: imbl::OrdMap<(ObjectKey, usize), RouteParentStatus>,
    policies: imbl::OrdMap<ObjectKey, PolicyStatus>,
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
            StatusOutput::BackendTlsPolicy(s) => {
                self.policies.insert(s.policy.clone(), s);
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
            StatusOutput::BackendTlsPolicy(s) => {
                self.policies.remove(&s.policy);
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

    /// BackendTLSPolicies with a status (those some Gateway's routes use).
    pub fn policies(&self) -> impl Iterator<Item = &PolicyStatus> {
        self.policies.values()
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
        let policies: Vec<Value> = (self.policies.values())
            .map(|p| {
                json!({
                    "namespace": p.policy.namespace,
                    "name": p.policy.name,
                    "status": policy_status_json(p, controller),
                })
            })
            .collect();
        json!({
            "time": self.time,
            "gateways": gateways,
            "httproutes": routes,
            "backendtlspolicies": policies,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_pipeline::ir::{ConditionType, ListenerStatus};

    use super::*;

    fn programmed<'a>(conditions: &'a Value, ty: &str) -> (&'a str, &'a str, &'a str) {
        let c = (conditions.as_array().into_iter().flatten())
            .find(|c| c["type"] == ty)
            .expect("the condition");
        let text = |f: &str| c[f].as_str().unwrap_or_default();
        (text("status"), text("reason"), text("message"))
    }

    /// Gateway `ns/gw` with listeners `a` (port 80) and `b` (port 81), and route
    /// `ns/r` attached to it once per given section (`None`: the whole Gateway).
    fn board(sections: &[Option<&str>]) -> StatusBoard {
        let ok = |t| Condition::new(t, true, Reason::Programmed, "ok");
        let listener = |name: &str, port| ListenerStatus {
            name: name.into(),
            port,
            attached_routes: 1,
            supported_kinds: vec![],
            conditions: vec![ok(ConditionType::Programmed)],
        };
        let gateway = GatewayStatus {
            gateway: ObjectKey::new("ns", "gw"),
            generation: 1,
            conditions: vec![ok(ConditionType::Accepted), ok(ConditionType::Programmed)],
            listeners: vec![listener("a", 80), listener("b", 81)],
        };
        let mut updates = vec![(StatusOutput::Gateway(gateway), 1)];
        for (index, section) in sections.iter().enumerate() {
            let parent = ParentRef {
                group: "gateway.networking.k8s.io".into(),
                kind: "Gateway".into(),
                namespace: None,
                name: "gw".into(),
                section_name: section.map(str::to_owned),
                port: None,
            };
            let route = RouteParentStatus {
                route: ObjectKey::new("ns", "r"),
                generation: 3,
                index,
                parent,
                conditions: vec![ok(ConditionType::Accepted)],
            };
            updates.push((StatusOutput::Route(route), 1));
        }
        let mut board = StatusBoard::default();
        board.apply(1, &updates);
        board
    }

    fn verdicts(rejections: Vec<Rejection>) -> Verdicts {
        Arc::new(
            [(ObjectKey::new("ns", "gw"), rejections)]
                .into_iter()
                .collect(),
        )
    }

    fn rejection(ty: ResourceType, name: &str, message: &str) -> Rejection {
        Rejection {
            ty,
            name: name.into(),
            version: "1".into(),
            message: message.into(),
        }
    }

    #[test]
    fn a_rejected_route_table_marks_the_gateway_its_port_and_the_routes_there() {
        let board = board(&[Some("a"), Some("b"), None]);
        let doc = board.to_json("c", &|_| vec![]);
        assert_eq!(
            document_with_rejections(doc.clone(), &board, &Verdicts::default()),
            doc
        );
        let long = "x".repeat(10 * MAX_REJECTION_MESSAGE);
        let v = verdicts(vec![rejection(ResourceType::Route, "ns/gw/80", &long)]);
        let out = document_with_rejections(doc, &board, &v);
        let gw = &out["gateways"][0]["status"];
        let (s, reason, message) = programmed(&gw["conditions"], "Programmed");
        assert_eq!((s, reason), ("False", "Invalid"));
        assert!(
            message.contains("RouteConfiguration ns/gw/80: xxx"),
            "{message}"
        );
        assert!(message.len() < 2 * MAX_REJECTION_MESSAGE, "cut to a bound");
        // The Gateway is still accepted: its proxies refused a part of it.
        assert_eq!(programmed(&gw["conditions"], "Accepted").0, "True");
        // Listener a (port 80) is not programmed; b (81) is.
        assert_eq!(
            programmed(&gw["listeners"][0]["conditions"], "Programmed").0,
            "False"
        );
        assert_eq!(
            programmed(&gw["listeners"][1]["conditions"], "Programmed").0,
            "True"
        );
        // The route's entries for section a and for the whole Gateway get the
        // condition; the one for section b does not.
        let parents = &out["httproutes"][0]["status"]["parents"];
        let marked = |i: usize| {
            (parents[i]["conditions"].as_array().into_iter().flatten())
                .any(|c| c["type"] == ROUTE_PROGRAMMED && c["status"] == "False")
        };
        assert_eq!((marked(0), marked(1), marked(2)), (true, false, true));
        assert_eq!(
            (parents[0]["conditions"].as_array().into_iter().flatten())
                .find(|c| c["type"] == ROUTE_PROGRAMMED)
                .map(|c| c["observedGeneration"].clone()),
            Some(json!(3))
        );
    }

    #[test]
    fn a_rejected_cluster_marks_the_gateway_only() {
        let board = board(&[None]);
        let v = verdicts(vec![rejection(ResourceType::Cluster, "ns/svc:80", "bad")]);
        let out = document_with_rejections(board.to_json("c", &|_| vec![]), &board, &v);
        let gw = &out["gateways"][0]["status"];
        let (s, _, message) = programmed(&gw["conditions"], "Programmed");
        assert_eq!(s, "False");
        assert!(message.contains("Cluster ns/svc:80: bad"), "{message}");
        assert_eq!(
            programmed(&gw["listeners"][0]["conditions"], "Programmed").0,
            "True"
        );
        let parent = &out["httproutes"][0]["status"]["parents"][0];
        assert!(
            !(parent["conditions"].as_array().into_iter().flatten())
                .any(|c| c["type"] == ROUTE_PROGRAMMED)
        );
    }
}
