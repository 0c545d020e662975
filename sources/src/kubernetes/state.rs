//! What the watch streams saw, as pipeline changes: the synchronous half of the
//! Kubernetes source (no client, no runtime), so relists and conversion failures are
//! tested without an API server.
//!
//! # Contract
//! - Each stream (one kind, in one namespace or cluster-wide) lists once, then
//!   watches. Objects of a list are buffered until its end; then the stream's
//!   previous objects that the list no longer has are deleted and only new or changed
//!   objects are applied (a relist after a dropped watch or 410 Gone changes nothing
//!   that did not change).
//! - An object that does not convert keeps its last good version (a warning says
//!   which object and why); nothing is deleted because it failed to convert.
//! - Changes are net per object between two [`Watched::take`] calls (last one wins).
//! - [`Watched::ready`]: every stream listed once (or was skipped): the first
//!   [`Watched::take`] after it is the complete initial state.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use sluice_pipeline::model::{Change, Kind, Object, ObjectId, ObjectKey};

use crate::manifest::object_from_json;

/// One event of one stream, with the object as JSON (apiVersion and kind set).
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// A (re)list begins.
    ListBegin,
    /// An object of the list.
    Listed(Value),
    /// The list is complete.
    ListEnd,
    /// An object was added or changed.
    Applied(Value),
    /// An object was deleted.
    Deleted(Value),
    /// The kind is not served (its CRD is not installed); the stream is skipped.
    Skipped,
}

#[derive(Debug, Default)]
struct Stream {
    kind: Option<Kind>,
    known: BTreeMap<ObjectId, Arc<Object>>,
    relist: Option<BTreeMap<ObjectId, Arc<Object>>>,
    listed: bool,
    skipped: bool,
}

/// The objects every stream currently holds, and the changes not yet taken.
#[derive(Debug, Default)]
pub struct Watched {
    streams: Vec<Stream>,
    /// Net per object since the last take (`None`: a delete). Shared with `known`:
    /// an object is copied once per net change, when taken, not once per event.
    pending: BTreeMap<ObjectId, Option<Arc<Object>>>,
    warnings: Vec<String>,
}

/// The model kind of a Kubernetes kind the source watches.
pub(crate) fn model_kind(kind: &str) -> Option<Kind> {
    Some(match kind {
        "GatewayClass" => Kind::GatewayClass,
        "Gateway" => Kind::Gateway,
        "HTTPRoute" => Kind::HttpRoute,
        "ReferenceGrant" => Kind::ReferenceGrant,
        "Service" => Kind::Service,
        "EndpointSlice" => Kind::EndpointSlice,
        "Namespace" => Kind::Namespace,
        "Secret" => Kind::Secret,
        "ConfigMap" => Kind::ConfigMap,
        "BackendTLSPolicy" => Kind::BackendTlsPolicy,
        _ => return None,
    })
}

/// The identity of an object given as JSON, from its kind and metadata.
fn identity(value: &Value) -> Option<ObjectId> {
    let kind = model_kind(value.get("kind")?.as_str()?)?;
    let meta = value.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    let key = match meta.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() => ObjectKey::new(ns, name),
        _ => ObjectKey::cluster(name),
    };
    Some(ObjectId { kind, key })
}

/// `Kind namespace/name` of an object given as JSON, for warnings.
fn describe(value: &Value) -> String {
    match identity(value) {
        Some(id) => format!("{:?} {}", id.kind, id.key),
        None => "an object without kind or name".to_owned(),
    }
}

impl Watched {
    /// `streams` streams, numbered from 0.
    pub fn new(streams: usize) -> Self {
        Self {
            streams: (0..streams).map(|_| Stream::default()).collect(),
            ..Self::default()
        }
    }

    /// Adds a stream; returns its number.
    pub fn add_stream(&mut self) -> usize {
        self.streams.push(Stream::default());
        self.streams.len() - 1
    }

    /// Whether `stream` is between a [`StreamEvent::ListBegin`] and its end.
    pub fn listing(&self, stream: usize) -> bool {
        self.streams.get(stream).is_some_and(|s| s.relist.is_some())
    }

    /// Every stream has listed once or was skipped.
    pub fn ready(&self) -> bool {
        self.streams.iter().all(|s| s.listed || s.skipped)
    }

    /// Objects currently held, over all streams.
    pub fn len(&self) -> usize {
        self.streams.iter().map(|s| s.known.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Feeds one event of stream `stream` (an index below `new`'s count).
    pub fn on(&mut self, stream: usize, event: StreamEvent) {
        let Some(s) = self.streams.get_mut(stream) else {
            return;
        };
        match event {
            StreamEvent::ListBegin => s.relist = Some(BTreeMap::new()),
            StreamEvent::Listed(value) => {
                if let Some((id, object)) = convert(&value, &s.known, &mut self.warnings) {
                    self.listed(stream, id, object);
                }
            }
            StreamEvent::ListEnd => {
                let list = s.relist.take().unwrap_or_default();
                let old = std::mem::replace(&mut s.known, list);
                for id in old.keys().filter(|id| !s.known.contains_key(*id)) {
                    self.pending.insert(id.clone(), None);
                }
                for (id, object) in &s.known {
                    if old.get(id) != Some(object) {
                        self.pending.insert(id.clone(), Some(object.clone()));
                    }
                }
                s.listed = true;
            }
            StreamEvent::Applied(value) => {
                if let Some((id, object)) = convert(&value, &s.known, &mut self.warnings) {
                    self.applied(stream, id, object);
                }
            }
            StreamEvent::Deleted(value) => {
                let Some(id) = identity(&value) else { return };
                if s.known.remove(&id).is_some() {
                    self.pending.insert(id, None);
                }
            }
            StreamEvent::Skipped => s.skipped = true,
        }
    }

    /// [`StreamEvent::Listed`] or [`StreamEvent::Applied`] (by [`Watched::listing`])
    /// of an object the caller already converted (a log event's, on the fast path).
    pub fn on_object(&mut self, stream: usize, object: Object) {
        let id = object.id();
        let object = Arc::new(object);
        if self.listing(stream) {
            self.listed(stream, id, object);
        } else {
            self.applied(stream, id, object);
        }
    }

    fn listed(&mut self, stream: usize, id: ObjectId, object: Arc<Object>) {
        let Some(s) = self.streams.get_mut(stream) else {
            return;
        };
        s.kind = Some(id.kind);
        s.relist
            .get_or_insert_with(BTreeMap::new)
            .insert(id, object);
    }

    fn applied(&mut self, stream: usize, id: ObjectId, object: Arc<Object>) {
        let Some(s) = self.streams.get_mut(stream) else {
            return;
        };
        if s.known.get(&id) != Some(&object) {
            s.known.insert(id.clone(), object.clone());
            self.pending.insert(id, Some(object));
        }
    }

    /// The net changes since the last call.
    pub fn take(&mut self) -> Vec<Change> {
        let pending = std::mem::take(&mut self.pending).into_iter();
        pending
            .map(|(id, object)| match object {
                Some(object) => Change::Apply(Arc::unwrap_or_clone(object)),
                None => Change::Delete(id),
            })
            .collect()
    }

    /// What `stream` holds: its objects, and those of a relist in progress.
    pub fn held(&self, stream: usize) -> (Vec<Object>, Option<Vec<Object>>) {
        let Some(s) = self.streams.get(stream) else {
            return (Vec::new(), None);
        };
        let objects =
            |m: &BTreeMap<ObjectId, Arc<Object>>| m.values().map(|o| (**o).clone()).collect();
        (objects(&s.known), s.relist.as_ref().map(objects))
    }

    /// Sets what `stream` holds, as [`Watched::held`] gave it (a restored source):
    /// the stream counts as listed, and its objects are pending as applies.
    pub fn restore(&mut self, stream: usize, objects: Vec<Object>, relist: Option<Vec<Object>>) {
        let Some(s) = self.streams.get_mut(stream) else {
            return;
        };
        for object in objects {
            let id = object.id();
            s.kind = Some(id.kind);
            let object = Arc::new(object);
            self.pending.insert(id.clone(), Some(object.clone()));
            s.known.insert(id, object);
        }
        s.relist = relist.map(|r| r.into_iter().map(|o| (o.id(), Arc::new(o))).collect());
        s.listed = true;
    }

    /// Warnings since the last call (objects that did not convert).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}

/// The record of `value`; when it does not convert, its last good version from
/// `known` (with a warning), or nothing.
fn convert(
    value: &Value,
    known: &BTreeMap<ObjectId, Arc<Object>>,
    warnings: &mut Vec<String>,
) -> Option<(ObjectId, Arc<Object>)> {
    match object_from_json(value) {
        Some(Ok(object)) => Some((object.id(), Arc::new(object))),
        Some(Err(e)) => {
            let id = identity(value)?;
            let kept = known.get(&id).cloned();
            let what = if kept.is_some() {
                "its last good version is kept"
            } else {
                "it is not translated"
            };
            warnings.push(format!("{}: {e}; {what}", describe(value)));
            // The problem goes into the object's status, for the generation it is in.
            let generation = value
                .pointer("/metadata/generation")
                .and_then(Value::as_i64);
            let kept = kept.map(|o| o.with_problem(&e, generation).map_or(o, Arc::new));
            kept.map(|o| (id, o))
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn service(name: &str, port: u16) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "ns", "managedFields": [{"manager": "kubectl"}]},
            "spec": {"ports": [{"port": port, "protocol": "TCP"}]},
        })
    }

    fn ops(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                Change::Apply(o) => format!("apply {}", o.id().key),
                Change::Delete(id) => format!("delete {}", id.key),
            })
            .collect()
    }

    fn list(w: &mut Watched, stream: usize, objects: &[Value]) {
        w.on(stream, StreamEvent::ListBegin);
        for o in objects {
            w.on(stream, StreamEvent::Listed(o.clone()));
        }
        w.on(stream, StreamEvent::ListEnd);
    }

    #[test]
    fn the_initial_list_is_one_batch_once_every_stream_listed() {
        let mut w = Watched::new(2);
        list(&mut w, 0, &[service("a", 80), service("b", 80)]);
        assert!(!w.ready(), "stream 1 has not listed");
        w.on(1, StreamEvent::Skipped);
        assert!(w.ready());
        assert_eq!(ops(&w.take()), ["apply ns/a", "apply ns/b"]);
        assert!(w.take().is_empty());
    }

    #[test]
    fn a_relist_deletes_what_vanished_and_repeats_nothing_unchanged() {
        let mut w = Watched::new(1);
        list(
            &mut w,
            0,
            &[service("a", 80), service("b", 80), service("c", 80)],
        );
        w.take();
        // The watch was down: b was deleted, c changed, d added meanwhile.
        list(
            &mut w,
            0,
            &[service("a", 80), service("c", 81), service("d", 80)],
        );
        assert_eq!(ops(&w.take()), ["delete ns/b", "apply ns/c", "apply ns/d"]);
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn watch_events_are_net_per_object() {
        let mut w = Watched::new(1);
        list(&mut w, 0, &[service("a", 80)]);
        w.take();
        w.on(0, StreamEvent::Applied(service("a", 80)));
        assert!(w.take().is_empty(), "an unchanged object is no change");
        w.on(0, StreamEvent::Applied(service("b", 80)));
        w.on(0, StreamEvent::Applied(service("b", 81)));
        w.on(0, StreamEvent::Deleted(service("a", 80)));
        w.on(0, StreamEvent::Deleted(service("zz", 80)));
        assert_eq!(ops(&w.take()), ["delete ns/a", "apply ns/b"]);
    }

    #[test]
    fn an_object_that_stops_converting_keeps_its_last_good_version() {
        let mut w = Watched::new(1);
        list(&mut w, 0, &[service("a", 80)]);
        w.take();
        let bad = service("a", 0);
        w.on(0, StreamEvent::Applied(bad.clone()));
        assert!(w.take().is_empty());
        let warnings = w.take_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("ns/a") && warnings[0].contains("last good version"),
            "{warnings:?}"
        );
        // A relist that still holds the bad version does not delete it either.
        list(&mut w, 0, &[bad]);
        assert!(w.take().is_empty());
        assert_eq!(w.len(), 1);
    }

    /// Issue 8 (2): a Gateway's last good version is kept marked with the newest
    /// version's problem and generation (its status reports it); a good version
    /// clears it.
    #[test]
    fn a_kept_version_carries_the_problem_of_the_newest() {
        let gateway = |generation: i64, port: u16| {
            json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": "gw", "namespace": "ns", "generation": generation},
                "spec": {"gatewayClassName": "c", "listeners": [
                    {"name": "http", "port": port, "protocol": "HTTP"}]},
            })
        };
        let mut w = Watched::new(1);
        list(&mut w, 0, &[gateway(1, 80)]);
        w.take();
        w.on(0, StreamEvent::Applied(gateway(2, 0)));
        let changes = w.take();
        let [Change::Apply(Object::Gateway(kept))] = &changes[..] else {
            panic!("{changes:?}")
        };
        assert_eq!(kept.listeners[0].port, 80, "the last good version");
        assert_eq!(kept.meta.generation, 2);
        let problem = kept.meta.problem.clone().unwrap_or_default();
        assert!(problem.contains("port"), "{problem}");
        w.on(0, StreamEvent::Applied(gateway(3, 81)));
        let changes = w.take();
        let [Change::Apply(Object::Gateway(fixed))] = &changes[..] else {
            panic!("{changes:?}")
        };
        assert_eq!(
            (fixed.listeners[0].port, fixed.meta.problem.as_ref()),
            (81, None)
        );
    }

    #[test]
    fn a_relist_of_one_stream_leaves_the_others_alone() {
        let mut w = Watched::new(2);
        list(&mut w, 0, &[service("a", 80)]);
        let mut other = service("b", 80);
        other["metadata"]["namespace"] = json!("other");
        list(&mut w, 1, &[other]);
        w.take();
        list(&mut w, 0, &[]);
        assert_eq!(ops(&w.take()), ["delete ns/a"]);
        assert_eq!(w.len(), 1);
    }
}
