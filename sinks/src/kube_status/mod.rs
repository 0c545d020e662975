//! Status write-back to the API server: every Gateway's, route's and
//! BackendTLSPolicy's status from the status board, written to the status subresource with server-side apply under our
//! field manager, only when it differs from what the server has.
//!
//! ```text
//!  runtime ─ StatusBoard (O(1) snapshot) ─► watch channel ─► writer task ─ GET, merge, apply ─► API server
//!                                           (keeps only the newest)   ▲
//!                                                   leader? ──────────┘ (Lease elector)
//! ```
//!
//! # Contract
//! - Coalesced: the task reads only the newest board and passes at most once per
//!   `min_interval`, so a route that flaps ten times in a second is written once or
//!   twice. Translation and xDS never wait for it.
//! - Only the leader writes. On becoming leader the task compares every object of the
//!   board with the server and writes what differs, removes our entries from routes
//!   that no longer attach to a Gateway of ours, and our status from Gateways that are
//!   no longer ours (found by our field manager owning their conditions or listeners).
//! - `observedGeneration` is the generation the status was computed from;
//!   `lastTransitionTime` changes only when a condition's status changes.
//! - A route's `status.parents` and a policy's `status.ancestors` entries of other
//!   controllers are never removed or rewritten (the lists are atomic in the CRDs: we
//!   read it, keep theirs, replace ours, and apply with the read resourceVersion as a
//!   precondition).
//! - A failed write is logged, counted, and retried with its own backoff (200 ms
//!   doubling to 10 s); an object the server keeps rejecting never holds up the
//!   others.

pub mod merge;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use sluice_pipeline::model::ObjectKey;
use tokio::sync::watch;

use crate::encode::EncodeConfig;
use crate::state::Verdicts;
use crate::status::{
    StatusBoard, gateway_status_json, policy_status_json, route_rejection, route_status_json,
    with_rejections,
};

/// The longest time between two passes while nothing changes (GatewayClasses are
/// found by listing them on each pass).
const RESYNC: Duration = Duration::from_secs(10);

/// The backoff of an object whose write failed: doubled per failure, within these.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Routes per page when a new leader lists them.
const LIST_PAGE: u32 = 500;

/// Status writes a pass keeps in flight (each is a GET and an apply).
const WRITES_IN_FLIGHT: usize = 16;

/// The field manager our status writes are made under.
pub const FIELD_MANAGER: &str = "sluice";

/// How the writer runs.
#[derive(Clone, Debug)]
pub struct StatusWriterConfig {
    /// The `controllerName` of our route parent entries.
    pub controller: String,
    /// Gives each Gateway's `status.addresses`.
    pub encode: EncodeConfig,
    /// The shortest time between two passes.
    pub min_interval: Duration,
    /// The namespaces watched (empty: all); a new leader looks for stale entries of
    /// ours only there.
    pub namespaces: Vec<String>,
}

/// Counters an operator reads (the admin port's metrics).
#[derive(Debug, Default)]
pub struct WriterStats {
    pub writes: Counter,
    pub failures: Counter,
}

impl WriterStats {
    /// Adds the status writer's metrics to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "status_writes",
            "Status subresource writes accepted by the API server",
            self.writes.clone(),
        );
        registry.register(
            "status_write_failures",
            "Status reads or writes that failed (each is retried)",
            self.failures.clone(),
        );
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    /// A GatewayClass of ours (cluster-scoped: the key has no namespace).
    GatewayClass(ObjectKey),
    Gateway(ObjectKey),
    Route(ObjectKey),
    /// A BackendTLSPolicy: its list of our ancestor entries.
    Policy(ObjectKey),
}

/// What one pass wants on the server: per object, its desired status fragment
/// (a Gateway's status; a route's list of our parent entries).
fn desired(
    board: &StatusBoard,
    verdicts: &Verdicts,
    config: &StatusWriterConfig,
) -> BTreeMap<Target, Value> {
    let mut out = BTreeMap::new();
    for g in board.gateways() {
        let addresses = vec![config.encode.address_for(&g.gateway).to_string()];
        let mut status = gateway_status_json(g, &addresses);
        if let Some(rejections) = verdicts.get(&g.gateway) {
            status = with_rejections(status, g, rejections);
        }
        out.insert(Target::Gateway(g.gateway.clone()), status);
    }
    for (route, parents) in board.routes() {
        let mut status = route_status_json(&parents, &config.controller);
        for (i, parent) in parents.iter().enumerate() {
            if let Some(c) = route_rejection(parent, board, verdicts)
                && let Some(conditions) = status["parents"][i]["conditions"].as_array_mut()
            {
                conditions.push(c);
            }
        }
        out.insert(Target::Route(route.clone()), status["parents"].clone());
    }
    for p in board.policies() {
        let status = policy_status_json(p, &config.controller);
        out.insert(
            Target::Policy(p.policy.clone()),
            status["ancestors"].clone(),
        );
    }
    out
}

/// The writer: owns the client and what it last wrote.
struct Writer {
    classes: ApiResource,
    gateways: ApiResource,
    routes: ApiResource,
    policies: ApiResource,
    client: kube::Client,
    config: StatusWriterConfig,
    stats: Arc<WriterStats>,
    /// Objects whose last write failed: their backoff and when they are due again.
    retry: BTreeMap<Target, (Duration, tokio::time::Instant)>,
    /// A digest of what the server held after our last successful write or check,
    /// per object (a digest, not the JSON: this map has an entry per route).
    written: BTreeMap<Target, u64>,
}

/// Starts the writer task on the current tokio runtime. It writes while `leader` is
/// true, from the newest board in `board` with what proxies rejected (`verdicts`),
/// until `board`'s sender is dropped.
pub fn spawn(
    client: kube::Client,
    config: StatusWriterConfig,
    board: watch::Receiver<StatusBoard>,
    leader: watch::Receiver<bool>,
    verdicts: watch::Receiver<Verdicts>,
) -> Arc<WriterStats> {
    let stats = Arc::new(WriterStats::default());
    let gvk = |kind: &str| GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind);
    let writer = Writer {
        classes: ApiResource::from_gvk_with_plural(&gvk("GatewayClass"), "gatewayclasses"),
        gateways: ApiResource::from_gvk_with_plural(&gvk("Gateway"), "gateways"),
        routes: ApiResource::from_gvk_with_plural(&gvk("HTTPRoute"), "httproutes"),
        policies: ApiResource::from_gvk_with_plural(&gvk("BackendTLSPolicy"), "backendtlspolicies"),
        client,
        config,
        stats: stats.clone(),
        written: BTreeMap::new(),
        retry: BTreeMap::new(),
    };
    tokio::spawn(writer.run(board, leader, verdicts));
    stats
}

impl Writer {
    async fn run(
        mut self,
        mut board: watch::Receiver<StatusBoard>,
        mut leader: watch::Receiver<bool>,
        mut verdicts: watch::Receiver<Verdicts>,
    ) {
        let mut sweep = true;
        loop {
            if !*leader.borrow_and_update() {
                // A follower forgets what it wrote: the leader may change things meanwhile.
                self.written.clear();
                self.retry.clear();
                sweep = true;
                if leader.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let snapshot = board.borrow_and_update().clone();
            let rejections = verdicts.borrow_and_update().clone();
            (self.pass(&snapshot, &rejections, std::mem::take(&mut sweep))).await;
            tokio::time::sleep(self.config.min_interval).await;
            // A failed object is retried when its own backoff is due; the others are
            // not held up by it. GatewayClasses are not on the board: a pass every
            // `RESYNC` finds new ones.
            let next = self.retry.values().map(|(_, due)| *due).min();
            let wake = next.unwrap_or_else(|| tokio::time::Instant::now() + RESYNC);
            tokio::select! {
                changed = board.changed() => if changed.is_err() { return },
                _ = leader.changed() => {}
                Ok(()) = verdicts.changed() => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Writes what differs (skipping failed objects whose backoff is not due yet).
    async fn pass(&mut self, board: &StatusBoard, verdicts: &Verdicts, sweep: bool) {
        let mut want = desired(board, verdicts, &self.config);
        // Objects we wrote to that left the board: routes lose our entries, and a
        // Gateway that is no longer ours (its class changed, or the class's
        // controller) loses the status we wrote; a deleted one is skipped.
        for target in self.written.keys() {
            let cleared = match target {
                Target::Route(_) | Target::Policy(_) => json!([]),
                Target::Gateway(_) => cleared_gateway(),
                Target::GatewayClass(_) => continue,
            };
            want.entry(target.clone()).or_insert(cleared);
        }
        match self.our_classes().await {
            Ok(classes) => want.extend(classes),
            Err(e) => {
                tracing::warn!("listing GatewayClasses: {e}");
                self.stats.failures.inc();
            }
        }
        if sweep {
            match self.our_routes().await {
                Ok(routes) => {
                    for key in routes {
                        want.entry(Target::Route(key)).or_insert_with(|| json!([]));
                    }
                }
                Err(e) => {
                    tracing::warn!("listing HTTPRoutes for stale status entries: {e}");
                    self.stats.failures.inc();
                }
            }
            match self.our_policies().await {
                Ok(policies) => {
                    for key in policies {
                        want.entry(Target::Policy(key)).or_insert_with(|| json!([]));
                    }
                }
                Err(e) => {
                    tracing::warn!("listing BackendTLSPolicies for stale status entries: {e}");
                    self.stats.failures.inc();
                }
            }
            // A Gateway that stopped being ours while no replica led keeps the
            // status we wrote unless the new leader looks for it.
            match self.our_gateways().await {
                Ok(gateways) => {
                    for key in gateways {
                        want.entry(Target::Gateway(key))
                            .or_insert_with(cleared_gateway);
                    }
                }
                Err(e) => {
                    tracing::warn!("listing Gateways for stale status of ours: {e}");
                    self.stats.failures.inc();
                }
            }
        }
        let now = tokio::time::Instant::now();
        let todo: Vec<(Target, Value)> = want
            .into_iter()
            .filter(|(target, value)| self.written.get(target) != Some(&digest(value)))
            .filter(|(target, _)| self.retry.get(target).is_none_or(|(_, due)| *due <= now))
            .collect();
        let this = &*self;
        let results: Vec<_> = futures::stream::iter(todo)
            .map(|(target, value)| async move {
                let result = this.write(&target, &value).await;
                (target, value, result)
            })
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect()
            .await;
        for (target, value, result) in results {
            if result.is_ok() {
                self.retry.remove(&target);
            }
            match result {
                Ok(true) if value == json!([]) || value == cleared_gateway() => {
                    self.written.remove(&target);
                }
                Ok(true) => {
                    self.written.insert(target, digest(&value));
                }
                Ok(false) => {
                    self.written.remove(&target);
                }
                Err(e) => {
                    self.stats.failures.inc();
                    let last = self.retry.get(&target).map_or(Duration::ZERO, |(d, _)| *d);
                    let backoff = (last * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                    tracing::warn!(?target, ?backoff, "writing status: {e}");
                    self.retry.insert(target, (backoff, now + backoff));
                }
            }
        }
    }

    /// The `Accepted` status of every GatewayClass with our `controllerName`.
    async fn our_classes(&self) -> kube::Result<Vec<(Target, Value)>> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &self.classes);
        let list = api.list(&ListParams::default()).await?;
        let controller = self.config.controller.as_str();
        Ok(list
            .items
            .iter()
            .filter(|c| {
                c.data
                    .pointer("/spec/controllerName")
                    .and_then(Value::as_str)
                    == Some(controller)
            })
            .filter_map(|c| {
                let name = c.metadata.name.clone()?;
                let generation = c.metadata.generation.unwrap_or(0);
                let status = json!({"conditions": [{
                    "type": "Accepted",
                    "status": "True",
                    "reason": "Accepted",
                    "message": format!("Handled by {controller}"),
                    "observedGeneration": generation,
                }]});
                Some((Target::GatewayClass(ObjectKey::cluster(name)), status))
            })
            .collect())
    }

    /// Routes on the server (in the watched namespaces) that carry a parent entry of ours.
    async fn our_routes(&self) -> kube::Result<Vec<ObjectKey>> {
        let controller = self.config.controller.as_str();
        self.list_watched(&self.routes, |r| {
            entries(&r.data, "parents")
                .iter()
                .any(|p| p["controllerName"] == controller)
        })
        .await
    }

    /// BackendTLSPolicies on the server (in the watched namespaces) that carry an
    /// ancestor entry of ours.
    async fn our_policies(&self) -> kube::Result<Vec<ObjectKey>> {
        let controller = self.config.controller.as_str();
        self.list_watched(&self.policies, |p| {
            entries(&p.data, "ancestors")
                .iter()
                .any(|a| a["controllerName"] == controller)
        })
        .await
    }

    /// Gateways on the server (in the watched namespaces) with conditions or listeners
    /// that our field manager owns in their status.
    async fn our_gateways(&self) -> kube::Result<Vec<ObjectKey>> {
        self.list_watched(&self.gateways, |g| {
            (g.metadata.managed_fields.iter().flatten()).any(|entry| {
                entry.manager.as_deref() == Some(FIELD_MANAGER)
                    && entry.subresource.as_deref() == Some("status")
                    && entry
                        .fields_v1
                        .as_ref()
                        .is_some_and(|f| owns_items(&f.0, &["f:conditions", "f:listeners"]))
            })
        })
        .await
    }

    /// The keys of the objects of `resource` in the watched namespaces for which
    /// `keep` holds, listed in pages (a cluster's routes at once would be one huge
    /// response).
    async fn list_watched(
        &self,
        resource: &ApiResource,
        keep: impl Fn(&DynamicObject) -> bool,
    ) -> kube::Result<Vec<ObjectKey>> {
        let apis: Vec<Api<DynamicObject>> = if self.config.namespaces.is_empty() {
            vec![Api::all_with(self.client.clone(), resource)]
        } else {
            self.config
                .namespaces
                .iter()
                .map(|ns| Api::namespaced_with(self.client.clone(), ns, resource))
                .collect()
        };
        let key = |o: &DynamicObject| {
            let key = ObjectKey::new(
                o.metadata.namespace.as_deref()?,
                o.metadata.name.as_deref()?,
            );
            keep(o).then_some(key)
        };
        let mut keys = Vec::new();
        for api in apis {
            let mut params = ListParams::default().limit(LIST_PAGE);
            loop {
                let page = api.list(&params).await?;
                keys.extend(page.items.iter().filter_map(key));
                match page.metadata.continue_ {
                    Some(token) if !token.is_empty() => {
                        params = ListParams::default()
                            .limit(LIST_PAGE)
                            .continue_token(&token);
                    }
                    _ => break,
                }
            }
        }
        Ok(keys)
    }

    /// Brings one object's status to `value`; `Ok(false)` when the object is gone.
    async fn write(&self, target: &Target, value: &Value) -> kube::Result<bool> {
        let (resource, key) = match target {
            Target::GatewayClass(k) => (&self.classes, k),
            Target::Gateway(k) => (&self.gateways, k),
            Target::Route(k) => (&self.routes, k),
            Target::Policy(k) => (&self.policies, k),
        };
        let api: Api<DynamicObject> = match target {
            Target::GatewayClass(_) => Api::all_with(self.client.clone(), resource),
            _ => Api::namespaced_with(self.client.clone(), &key.namespace, resource),
        };
        let Some(current) = api.get_opt(&key.name).await? else {
            return Ok(false);
        };
        let now = now();
        let empty = json!({});
        let status = current.data.get("status").unwrap_or(&empty);
        let new_status = match target {
            Target::GatewayClass(_) => {
                let old = status.get("conditions");
                let conditions = merge::with_transition_times(&value["conditions"], old, &now);
                if Some(&conditions) == old {
                    return Ok(true);
                }
                json!({ "conditions": conditions })
            }
            Target::Gateway(_) => {
                let new = merge::gateway_status(value, status, &now);
                if merge::gateway_up_to_date(&new, status) {
                    return Ok(true);
                }
                new
            }
            Target::Route(_) | Target::Policy(_) => {
                let (list, reference) = match target {
                    Target::Policy(_) => ("ancestors", "ancestorRef"),
                    _ => ("parents", "parentRef"),
                };
                let desired = value.as_array().map(Vec::as_slice).unwrap_or_default();
                let current_entries = entries(&current.data, list);
                let controller = &self.config.controller;
                match merge::controller_entries(
                    desired,
                    &current_entries,
                    controller,
                    reference,
                    &now,
                ) {
                    None => return Ok(true),
                    Some(entries) => {
                        Value::Object([(list.to_string(), json!(entries))].into_iter().collect())
                    }
                }
            }
        };
        let patch = json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {
                "name": key.name,
                "namespace": key.namespace,
                "resourceVersion": current.metadata.resource_version,
            },
            "status": new_status,
        });
        let mut patch = patch;
        if key.namespace.is_empty()
            && let Some(meta) = patch["metadata"].as_object_mut()
        {
            meta.remove("namespace"); // cluster-scoped
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch_status(&key.name, &params, &Patch::Apply(&patch))
            .await?;
        self.stats.writes.inc();
        Ok(true)
    }
}

/// The status a Gateway that is no longer ours gets from us: nothing. Applied with
/// our field manager, the empty lists give up every condition, listener and address
/// we owned; what another controller wrote stays.
fn cleared_gateway() -> Value {
    json!({"addresses": [], "conditions": [], "listeners": []})
}

/// Whether a managedFields `fieldsV1` tree owns an item of one of the `lists` under
/// `f:status` (a `k:`-keyed entry: a condition by type, a listener by name).
fn owns_items(fields: &Value, lists: &[&str]) -> bool {
    lists.iter().any(|list| {
        fields
            .get("f:status")
            .and_then(|s| s.get(*list))
            .and_then(Value::as_object)
            .is_some_and(|items| items.keys().any(|k| k.starts_with("k:")))
    })
}

/// A digest of a desired status fragment.
fn digest(value: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.to_string().hash(&mut h);
    h.finish()
}

/// An object's `status.<list>` (a route's `parents`, a policy's `ancestors`; empty
/// when it has none).
fn entries(data: &Value, list: &str) -> Vec<Value> {
    (data.get("status").and_then(|s| s.get(list)))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The current time as a Kubernetes `metav1.Time` (RFC 3339, whole seconds).
fn now() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_status_items_are_keyed_entries() {
        // As the API server records a status apply that set one condition and one listener.
        let wrote = json!({"f:status": {
            "f:addresses": {},
            "f:conditions": {"k:{\"type\":\"Accepted\"}": {".": {}, "f:status": {}}},
            "f:listeners": {},
        }});
        assert!(owns_items(&wrote, &["f:conditions", "f:listeners"]));
        let listeners = json!({"f:status": {"f:listeners": {"k:{\"name\":\"http\"}": {}}}});
        assert!(owns_items(&listeners, &["f:conditions", "f:listeners"]));
        // After we cleared it: empty lists own nothing.
        let cleared =
            json!({"f:status": {"f:addresses": {}, "f:conditions": {}, "f:listeners": {}}});
        assert!(!owns_items(&cleared, &["f:conditions", "f:listeners"]));
        // Spec fields are not status.
        let spec = json!({"f:spec": {"f:listeners": {"k:{\"name\":\"http\"}": {}}}});
        assert!(!owns_items(&spec, &["f:conditions", "f:listeners"]));
    }
}
