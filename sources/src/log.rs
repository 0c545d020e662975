//! Event logs and the sources: what a source saw, as log events ([`apply`],
//! [`delete`], [`resync`]); a log, read back as pipeline changes one logical time at
//! a time ([`LogSource`]), through the same conversion and the same watch state as
//! the Kubernetes source.
//!
//! # Contract
//! - Replaying a log gives the changes the recording source gave, time for time: an
//!   `apply` converts as a watch event does (an object that does not convert keeps its
//!   last good version), a `delete` removes, and a resync (`resync-begin` … `resync-end`)
//!   is a relist: objects of its kind and scope not re-applied between the markers are
//!   deleted at its end, and only changed objects are applied.
//! - A resync marker's `namespace` and `name` are the scope of the relisted stream:
//!   empty for "all", else the namespace (a per-namespace watch) or the name (a watch
//!   of one cluster-scoped object). An `apply` or `delete` belongs to the most specific
//!   stream of its kind whose scope holds it, else to the kind's cluster-wide stream.
//! - Events of one time are consecutive in a log; a log is read streaming, one time's
//!   events at a time.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_eventlog::{Event, Op, Reader, Writer};
use sluice_pipeline::model::{Change, Kind, Object, ObjectId};

use crate::kubernetes::{StreamEvent, Watched};
use crate::manifest::object_from_json_text;

/// `apiVersion` Sluice reads `kind` at.
pub fn api_version(kind: Kind) -> &'static str {
    match kind {
        Kind::GatewayClass | Kind::Gateway | Kind::HttpRoute | Kind::BackendTlsPolicy => {
            "gateway.networking.k8s.io/v1"
        }
        Kind::ReferenceGrant => "gateway.networking.k8s.io/v1beta1",
        Kind::Service | Kind::Namespace | Kind::Secret | Kind::ConfigMap => "v1",
        Kind::EndpointSlice => "discovery.k8s.io/v1",
    }
}

/// An `apply` of an object given as JSON (time 0: the recorder sets it). `None` when
/// it has no kind or no name.
pub fn apply(value: &Value) -> Option<Event> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let meta = value.get("metadata");
    Some(Event {
        time: 0,
        wall_micros: 0,
        op: Op::Apply,
        api_version: text(value.get("apiVersion")).unwrap_or_default(),
        kind: text(value.get("kind"))?,
        namespace: text(meta.and_then(|m| m.get("namespace"))).unwrap_or_default(),
        name: text(meta.and_then(|m| m.get("name")))?,
        object: serde_json::to_vec(value).ok()?,
    })
}

/// A `delete` of `id`, without the object.
pub fn delete(id: &ObjectId) -> Event {
    Event {
        time: 0,
        wall_micros: 0,
        op: Op::Delete,
        api_version: api_version(id.kind).to_owned(),
        kind: id.kind.as_str().to_owned(),
        namespace: id.key.namespace.clone(),
        name: id.key.name.clone(),
        object: Vec::new(),
    }
}

/// A resync marker (`op` is [`Op::ResyncBegin`] or [`Op::ResyncEnd`]) of the stream of
/// `kind` scoped to `namespace` or `name` (empty: all).
pub fn resync(op: Op, api_version: &str, kind: &str, namespace: &str, name: &str) -> Event {
    Event {
        time: 0,
        wall_micros: 0,
        op,
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        object: Vec::new(),
    }
}

/// Resync markers around a full relist of every kind Sluice reads: a source that
/// starts afresh (a new process appending to an old log) writes them around its
/// first state, so a replay deletes what vanished while nothing was recording.
pub fn full_resync(op: Op) -> Vec<Event> {
    crate::kubernetes::KINDS
        .iter()
        .map(|(group, version, kind, _)| {
            let api_version = match *group {
                "" => (*version).to_owned(),
                group => format!("{group}/{version}"),
            };
            resync(op, &api_version, kind, "", "")
        })
        .collect()
}

/// A stream's scope: kind, namespace, name (empty: any).
type Scope = (String, String, String);

/// Log events in, the changes they make out: the Kubernetes source's watch state
/// ([`Watched`]) with streams made up from the events' scopes.
///
/// Applies are converted lazily: between two [`LogReplay::take`] calls, each object's
/// applies wait (as the log's bytes) until something else happens to its stream
/// or the changes are taken, and then only the newest version is converted (at most 64 MiB of JSON waits) — a
/// version superseded within the same batch never becomes a record. Where the newest
/// does not convert, every waiting version of that object goes through in order, as
/// if fed one by one (its last good version is kept, with a warning per failure).
/// The changes taken are the same either way.
#[derive(Debug, Default)]
pub struct LogReplay {
    watched: Watched,
    streams: Vec<Scope>,
    /// Applies not converted yet, per object (`kind NUL namespace NUL name`): its
    /// stream and versions, oldest first.
    waiting: HashMap<String, (usize, Vec<Event>)>,
    /// The key being looked up (reused: a hit allocates nothing).
    key: String,
    /// The JSON bytes `waiting` holds (bounded: past [`WAITING_BYTES`] they are converted).
    waiting_bytes: usize,
}

/// At most this much log JSON waits to be converted.
const WAITING_BYTES: usize = 64 << 20;

impl LogReplay {
    /// The stream with exactly this scope, made on first use.
    fn stream(&mut self, scope: Scope) -> usize {
        match self.streams.iter().position(|s| *s == scope) {
            Some(i) => i,
            None => {
                self.streams.push(scope);
                self.watched.add_stream()
            }
        }
    }

    /// The stream an object of `event` belongs to.
    fn stream_of(&mut self, event: &Event) -> usize {
        let holds = |(kind, ns, name): &Scope| {
            *kind == event.kind
                && (ns.is_empty() || *ns == event.namespace)
                && (name.is_empty() || *name == event.name)
        };
        let specific =
            |(_, ns, name): &Scope| usize::from(!ns.is_empty()) + usize::from(!name.is_empty());
        let best = (self.streams.iter().enumerate())
            .filter(|(_, s)| holds(s))
            .max_by_key(|(i, s)| (specific(s), std::cmp::Reverse(*i)))
            .map(|(i, _)| i);
        match best {
            Some(i) => i,
            None => self.stream((event.kind.clone(), String::new(), String::new())),
        }
    }

    /// Feeds one event.
    pub fn feed(&mut self, event: &Event) {
        self.feed_owned(event.clone());
    }

    /// Feeds one event it may keep.
    pub fn feed_owned(&mut self, event: Event) {
        if event.op == Op::Apply {
            let s = self.stream_of(&event);
            if !self.watched.listing(s) {
                self.key.clear();
                for part in [&event.kind, "\0", &event.namespace, "\0", &event.name] {
                    self.key.push_str(part);
                }
                self.waiting_bytes += event.object.len();
                match self.waiting.get_mut(self.key.as_str()) {
                    Some((_, versions)) => versions.push(event),
                    None => {
                        self.waiting.insert(self.key.clone(), (s, vec![event]));
                    }
                }
                if self.waiting_bytes > WAITING_BYTES {
                    self.flush();
                }
                return;
            }
        }
        // Anything else comes after the applies before it.
        self.flush();
        self.feed_now(&event);
    }

    /// Converts what waits: each object's newest version, or all of them in order when
    /// the newest does not convert on the fast path.
    fn flush(&mut self) {
        // Objects are independent (changes are net per object): any order will do.
        for (_, (s, mut versions)) in std::mem::take(&mut self.waiting) {
            let Some(newest) = versions.pop() else {
                continue;
            };
            let fast = object_from_json_text(&newest.api_version, &newest.kind, &newest.object);
            match fast {
                Some(object) => self.watched.on_object(s, object),
                None => {
                    versions.push(newest);
                    for event in &versions {
                        self.feed_now(event);
                    }
                }
            }
        }
        self.waiting_bytes = 0;
    }

    /// Feeds one event now.
    fn feed_now(&mut self, event: &Event) {
        let scope = || {
            (
                event.kind.clone(),
                event.namespace.clone(),
                event.name.clone(),
            )
        };
        match event.op {
            Op::ResyncBegin => {
                let s = self.stream(scope());
                self.watched.on(s, StreamEvent::ListBegin);
            }
            Op::ResyncEnd => {
                let s = self.stream(scope());
                self.watched.on(s, StreamEvent::ListEnd);
            }
            Op::Apply => {
                let fast = object_from_json_text(&event.api_version, &event.kind, &event.object);
                if let Some(object) = fast {
                    let s = self.stream_of(event);
                    self.watched.on_object(s, object);
                    return;
                }
                let value = serde_json::from_slice(&event.object).unwrap_or_else(|e| {
                    // Fails conversion (labels must be a map), naming why: its last
                    // good version is kept, also through a relist.
                    json!({
                        "apiVersion": event.api_version, "kind": event.kind,
                        "metadata": {
                            "namespace": event.namespace, "name": event.name,
                            "labels": format!("the logged object is not JSON: {e}"),
                        },
                    })
                });
                let s = self.stream_of(event);
                let e = if self.watched.listing(s) {
                    StreamEvent::Listed(value)
                } else {
                    StreamEvent::Applied(value)
                };
                self.watched.on(s, e);
            }
            Op::Delete => {
                let s = self.stream_of(event);
                let value = json!({
                    "apiVersion": event.api_version, "kind": event.kind,
                    "metadata": {"namespace": event.namespace, "name": event.name},
                });
                self.watched.on(s, StreamEvent::Deleted(value));
            }
        }
    }

    /// The net changes since the last call.
    pub fn take(&mut self) -> Vec<Change> {
        self.flush();
        self.watched.take()
    }

    /// Objects that did not convert since the last call (after [`LogReplay::take`]).
    pub fn take_warnings(&mut self) -> Vec<String> {
        self.flush();
        self.watched.take_warnings()
    }

    /// Objects currently held (as of the last [`LogReplay::take`]).
    pub fn objects(&self) -> usize {
        self.watched.len()
    }

    /// The source state: every stream's scope and objects (and a relist in
    /// progress), as of the last [`LogReplay::take`]. With the log position it was taken at, it is what a replay needs to
    /// continue from there ([`LogReplay::restore`], [`LogSource::resume`]).
    pub fn state(&self) -> Vec<StreamState> {
        (self.streams.iter().enumerate())
            .map(|(i, (kind, namespace, name))| {
                let (objects, relist) = self.watched.held(i);
                StreamState {
                    kind: kind.clone(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                    objects,
                    relist,
                }
            })
            .collect()
    }

    /// A replay state holding `state`; its objects are pending as applies (the first
    /// [`LogReplay::take`] gives them all).
    pub fn restore(state: Vec<StreamState>) -> Self {
        let mut replay = LogReplay::default();
        for s in state {
            let i = replay.stream((s.kind, s.namespace, s.name));
            replay.watched.restore(i, s.objects, s.relist);
        }
        replay
    }
}

/// One stream of a [`LogReplay`]: its scope (see the module docs) and what it holds.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StreamState {
    pub kind: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    pub objects: Vec<Object>,
    /// Objects of a relist that had begun and not ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relist: Option<Vec<Object>>,
}

impl StreamState {
    /// Objects given as one cluster-wide stream per kind (a source that is not a log,
    /// such as `serve`'s, whose streams are not scoped).
    pub fn by_kind<'a>(objects: impl IntoIterator<Item = &'a Object>) -> Vec<StreamState> {
        let mut kinds: std::collections::BTreeMap<&'static str, Vec<Object>> = Default::default();
        for o in objects {
            kinds
                .entry(o.id().kind.as_str())
                .or_default()
                .push(o.clone());
        }
        kinds
            .into_iter()
            .map(|(kind, objects)| StreamState {
                kind: kind.to_owned(),
                namespace: String::new(),
                name: String::new(),
                objects,
                relist: None,
            })
            .collect()
    }
}

/// One logical time of a log.
#[derive(Debug, Default)]
pub struct LogTime {
    /// The time the log gives (of a batch: its last).
    pub time: u64,
    /// Logical times of the log in it (1 unless batched).
    pub times: u64,
    /// When its first event was recorded (µs since the Unix epoch; 0: unknown).
    pub wall_micros: u64,
    pub events: u64,
    pub changes: Vec<Change>,
    /// Objects that did not convert.
    pub warnings: Vec<String>,
}

/// A log, read as pipeline changes one logical time at a time.
#[derive(Debug)]
pub struct LogSource {
    reader: Reader,
    replay: LogReplay,
    /// An event read ahead, with the offset just past it.
    next: Option<(Event, u64)>,
    /// The offset just past the last event fed.
    position: u64,
    /// Damage met while reading a time, returned on the next call.
    damage: Option<sluice_eventlog::Error>,
}

impl LogSource {
    pub fn open(path: &Path) -> sluice_eventlog::Result<Self> {
        let reader = Reader::open(path)?;
        Ok(Self {
            position: reader.offset(),
            reader,
            replay: LogReplay::default(),
            next: None,
            damage: None,
        })
    }

    /// Continues a log from a saved position: `replay` holds the source state as it
    /// was just past `offset` (see [`LogReplay::restore`]). The events read next are
    /// the ones after it.
    pub fn resume(path: &Path, offset: u64, replay: LogReplay) -> sluice_eventlog::Result<Self> {
        let mut reader = Reader::open(path)?;
        reader.seek(offset)?;
        Ok(Self {
            position: offset,
            reader,
            replay,
            next: None,
            damage: None,
        })
    }

    /// Reads the next event, with the offset just past it.
    fn read(&mut self) -> sluice_eventlog::Result<Option<(Event, u64)>> {
        Ok(self.reader.next_event()?.map(|e| (e, self.reader.offset())))
    }

    /// The next time's changes; `None` at the end of the log. Damage is an error
    /// naming its offset, returned after every event before it: the time it cuts
    /// comes first with the events it has.
    pub fn next_time(&mut self) -> sluice_eventlog::Result<Option<LogTime>> {
        self.next_times(1, None)
    }

    /// The next `max` times' changes as one batch (net per object: what applying
    /// them one by one would leave), stopping before a time past `until`; `None` when
    /// there is no such time. Damage as for [`LogSource::next_time`].
    pub fn next_times(
        &mut self,
        max: usize,
        until: Option<u64>,
    ) -> sluice_eventlog::Result<Option<LogTime>> {
        let mut batch: Option<LogTime> = None;
        for _ in 0..max.max(1) {
            let next = match self.peek_time() {
                Ok(next) => next,
                Err(e) if batch.is_some() => {
                    self.damage = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            };
            match (next, until) {
                (None, _) => break,
                (Some(t), Some(until)) if t > until => break,
                _ => {}
            }
            let Some((time, wall_micros, events)) = self.feed_time() else {
                break;
            };
            let b = batch.get_or_insert_with(|| LogTime {
                wall_micros,
                ..LogTime::default()
            });
            b.time = time;
            b.events += events;
            b.times += 1;
        }
        if let Some(b) = &mut batch {
            b.changes = self.replay.take();
            b.warnings = self.replay.take_warnings();
        }
        Ok(batch)
    }

    /// Feeds the events of the time [`LogSource::peek_time`] gave; its time, wall
    /// clock and event count. Damage met on the way is kept for the next call.
    fn feed_time(&mut self) -> Option<(u64, u64, u64)> {
        let (first, end) = self.next.take()?;
        let (time, wall_micros) = (first.time, first.wall_micros);
        let mut events = 1;
        self.replay.feed_owned(first);
        self.position = end;
        loop {
            let (e, end) = match self.read() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) => {
                    self.damage = Some(e);
                    break;
                }
            };
            if e.time != time {
                self.next = Some((e, end));
                break;
            }
            events += 1;
            self.replay.feed_owned(e);
            self.position = end;
        }
        Some((time, wall_micros, events))
    }

    /// The time of the next event, without reading past it.
    pub fn peek_time(&mut self) -> sluice_eventlog::Result<Option<u64>> {
        if let Some(e) = self.damage.take() {
            return Err(e);
        }
        if self.next.is_none() {
            self.next = self.read()?;
        }
        Ok(self.next.as_ref().map(|(e, _)| e.time))
    }

    /// The offset just past the last event of the times returned so far: where a
    /// replay that stopped here continues ([`LogSource::resume`]).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The source state (see [`LogReplay::state`]).
    pub fn replay(&self) -> &LogReplay {
        &self.replay
    }

    /// Bytes read up to the end of the last whole frame.
    pub fn offset(&self) -> u64 {
        self.reader.offset()
    }

    /// Where a short (crash-cut) last frame starts, once reached.
    pub fn truncated_at(&self) -> Option<u64> {
        self.reader.truncated_at()
    }

    /// Objects currently held.
    pub fn objects(&self) -> usize {
        self.replay.objects()
    }
}

/// Appends what a source saw to a log, at the times the runtime gives them. Times
/// continue after the log's last time (a restarted controller appending to its log
/// never goes back in time).
#[derive(Debug)]
pub struct Recorder {
    writer: Writer,
    base: u64,
    synced: Instant,
}

impl Recorder {
    /// Opens `path` for appending (see [`Writer::append`]: a short last frame is cut
    /// off; other damage is an error and nothing is written).
    pub fn open(path: &Path) -> sluice_eventlog::Result<Self> {
        let writer = Writer::append(path)?;
        Ok(Self {
            base: writer.next_time(),
            writer,
            synced: Instant::now(),
        })
    }

    /// Writes `events` at the runtime's logical time `time`; flushes to the disk at
    /// most once a second (and on [`Recorder::sync`]).
    pub fn write(&mut self, time: u64, events: Vec<Event>) -> sluice_eventlog::Result<()> {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        for mut event in events {
            event.time = self.base + time;
            event.wall_micros = wall;
            self.writer.write(&event)?;
        }
        if self.synced.elapsed() >= Duration::from_secs(1) {
            self.sync()?;
        }
        Ok(())
    }

    pub fn sync(&mut self) -> sluice_eventlog::Result<()> {
        self.synced = Instant::now();
        self.writer.sync()
    }

    /// The log's size so far.
    pub fn offset(&self) -> u64 {
        self.writer.offset()
    }

    /// Where the short last frame that opening cut off started, if there was one.
    pub fn recovered_at(&self) -> Option<u64> {
        self.writer.recovered_at()
    }
}

#[cfg(test)]
mod tests;
