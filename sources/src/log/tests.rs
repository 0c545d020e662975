//! Replaying log events gives the changes a watch would: applies, deletes, relists
//! scoped to their stream, last good versions; a log file reads back time by time.

use serde_json::{Value, json};
use sluice_eventlog::{Event, Op};
use sluice_pipeline::model::{Change, Kind, Object, ObjectId, ObjectKey};

use super::*;
use crate::manifest::object_from_json;

fn service(ns: &str, name: &str, port: u16) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": [{"port": port, "protocol": "TCP"}]},
    })
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn applied(value: &Value) -> Event {
    apply(value).expect("the object has a kind and a name")
}

fn svc_id(ns: &str, name: &str) -> ObjectId {
    ObjectId {
        kind: Kind::Service,
        key: ObjectKey::new(ns, name),
    }
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

fn feed(r: &mut LogReplay, events: &[Event]) -> Vec<String> {
    for e in events {
        r.feed(e);
    }
    ops(&r.take())
}

fn relist(kind: &str, ns: &str, name: &str, objects: &[Value]) -> Vec<Event> {
    let mut events = vec![resync(Op::ResyncBegin, "v1", kind, ns, name)];
    events.extend(objects.iter().map(applied));
    events.push(resync(Op::ResyncEnd, "v1", kind, ns, name));
    events
}

#[test]
fn applies_and_deletes_become_changes_net_per_object() {
    let mut r = LogReplay::default();
    let events = [
        applied(&service("a", "x", 80)),
        applied(&service("a", "y", 80)),
        applied(&service("a", "y", 81)),
    ];
    assert_eq!(feed(&mut r, &events), ["apply a/x", "apply a/y"]);
    assert_eq!(
        feed(&mut r, &[applied(&service("a", "x", 80))]),
        Vec::<String>::new(),
        "re-applying an unchanged object is no change"
    );
    let gone = [delete(&svc_id("a", "x")), delete(&svc_id("a", "nothing"))];
    assert_eq!(feed(&mut r, &gone), ["delete a/x"]);
    assert_eq!(r.objects(), 1);
}

#[test]
fn a_resync_deletes_only_what_vanished_from_its_own_scope() {
    let mut r = LogReplay::default();
    let mut first = relist(
        "Service",
        "a",
        "",
        &[service("a", "x", 80), service("a", "y", 80)],
    );
    first.extend(relist("Service", "b", "", &[service("b", "z", 80)]));
    assert_eq!(
        feed(&mut r, &first),
        ["apply a/x", "apply a/y", "apply b/z"]
    );
    // Namespace a relists without y and with x changed; b's objects are out of scope.
    let again = relist("Service", "a", "", &[service("a", "x", 81)]);
    assert_eq!(feed(&mut r, &again), ["apply a/x", "delete a/y"]);
    // A watch event between relists goes to its namespace's stream: the next relist
    // of b deletes it when it is not listed.
    assert_eq!(
        feed(&mut r, &[applied(&service("b", "w", 80))]),
        ["apply b/w"]
    );
    let b = relist("Service", "b", "", &[service("b", "z", 80)]);
    assert_eq!(feed(&mut r, &b), ["delete b/w"]);
}

#[test]
fn a_cluster_wide_resync_covers_every_namespace() {
    let mut r = LogReplay::default();
    let events = [
        applied(&service("a", "x", 80)),
        applied(&service("b", "y", 80)),
    ];
    feed(&mut r, &events);
    let again = relist("Service", "", "", &[service("b", "y", 80)]);
    assert_eq!(feed(&mut r, &again), ["delete a/x"]);
}

#[test]
fn a_resync_of_one_named_object_leaves_the_others() {
    let mut r = LogReplay::default();
    let mut first = relist("Namespace", "", "a", &[namespace("a")]);
    first.extend(relist("Namespace", "", "b", &[namespace("b")]));
    assert_eq!(feed(&mut r, &first), ["apply a", "apply b"]);
    assert_eq!(
        feed(&mut r, &relist("Namespace", "", "a", &[])),
        ["delete a"]
    );
    assert_eq!(r.objects(), 1);
}

#[test]
fn an_object_that_stops_converting_keeps_its_last_good_version() {
    let mut r = LogReplay::default();
    feed(&mut r, &[applied(&service("a", "x", 80))]);
    let mut bad = service("a", "x", 80);
    bad["spec"]["ports"] = json!("not a list");
    let mut unreadable = applied(&service("a", "x", 80));
    unreadable.object = b"{not json".to_vec();
    assert!(feed(&mut r, &[applied(&bad), unreadable]).is_empty());
    let warnings = r.take_warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.iter().all(|w| w.contains("a/x")), "{warnings:?}");
    assert!(warnings[1].contains("not JSON"), "{warnings:?}");
    // A relist that lists it unconvertible (or unreadable) keeps it too.
    assert!(feed(&mut r, &relist("Service", "", "", &[bad])).is_empty());
    let mut relisted = relist("Service", "", "", &[]);
    let mut unreadable = applied(&service("a", "x", 80));
    unreadable.object = b"\xff".to_vec();
    relisted.insert(1, unreadable);
    assert!(feed(&mut r, &relisted).is_empty());
    assert_eq!(r.objects(), 1);
}

#[test]
fn a_log_reads_back_one_time_at_a_time_and_appending_continues_its_times() {
    let dir = std::env::temp_dir().join(format!("sluice-log-source-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("events.log");
    {
        let mut rec = Recorder::open(&path).expect("new log");
        let first = [service("a", "x", 80), service("a", "y", 80)];
        rec.write(0, first.iter().map(applied).collect())
            .expect("write");
        rec.write(1, vec![delete(&svc_id("a", "x"))])
            .expect("write");
        rec.sync().expect("sync");
    }
    {
        // A new run: its runtime starts at time 0 again, its log times at 2; its
        // first state comes as a full resync, which deletes y (gone meanwhile).
        let mut rec = Recorder::open(&path).expect("existing log");
        let mut events = full_resync(Op::ResyncBegin);
        events.push(applied(&service("a", "z", 80)));
        events.extend(full_resync(Op::ResyncEnd));
        rec.write(0, events).expect("write");
    }
    let mut source = LogSource::open(&path).expect("open");
    let mut times = Vec::new();
    while let Some(t) = source.next_time().expect("undamaged") {
        times.push((t.time, t.events, ops(&t.changes)));
    }
    assert_eq!(
        times,
        [
            (0, 2, vec!["apply a/x".to_owned(), "apply a/y".to_owned()]),
            (1, 1, vec!["delete a/x".to_owned()]),
            // A begin and an end marker per watched kind, and the apply.
            (
                2,
                2 * crate::kubernetes::KINDS.len() as u64 + 1,
                vec!["delete a/y".to_owned(), "apply a/z".to_owned()]
            ),
        ]
    );
    assert_eq!(source.truncated_at(), None);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Splits `events` at every cut point: the state after the first part, restored (as
/// a snapshot would carry it, through JSON), then fed the rest, gives the same
/// changes and the same final state as feeding them all.
#[test]
fn a_restored_state_continues_as_the_original_would_at_any_cut() {
    let mut events = vec![applied(&namespace("a"))];
    events.extend(relist("Service", "a", "", &[service("a", "x", 80)]));
    events.push(applied(&service("b", "y", 80)));
    // A relist of namespace a that a cut can fall inside.
    events.push(resync(Op::ResyncBegin, "v1", "Service", "a", ""));
    events.push(applied(&service("a", "z", 81)));
    events.push(resync(Op::ResyncEnd, "v1", "Service", "a", ""));
    let mut bad = service("b", "y", 82);
    bad["metadata"]["labels"] = json!("not a map");
    events.push(applied(&bad));
    events.push(delete(&svc_id("b", "y")));
    events.push(applied(&service("b", "w", 83)));

    let ids = |r: &LogReplay| -> Vec<String> {
        let mut v: Vec<String> = (r.state().iter())
            .flat_map(|s| s.objects.iter().map(|o| o.id()))
            .filter(|id| id.kind == Kind::Service)
            .map(|id| id.key.to_string())
            .collect();
        v.sort();
        v
    };
    let mut whole = LogReplay::default();
    let mut all_changes = Vec::new();
    for e in &events {
        whole.feed(e);
        all_changes.push(ops(&whole.take()));
    }
    assert_eq!(ids(&whole), ["a/z", "b/w"], "x vanished from a's relist");

    for cut in 0..=events.len() {
        let mut first = LogReplay::default();
        for e in &events[..cut] {
            first.feed(e);
        }
        let _ = first.take();
        let json = serde_json::to_string(&first.state()).expect("JSON");
        let state: Vec<StreamState> = serde_json::from_str(&json).expect("reads back");
        assert_eq!(state, first.state());
        let mut restored = LogReplay::restore(state);
        let initial = restored.take();
        assert_eq!(
            initial.len(),
            first.objects(),
            "cut {cut}: every object applied"
        );
        for (i, e) in events.iter().enumerate().skip(cut) {
            restored.feed(e);
            assert_eq!(
                ops(&restored.take()),
                all_changes[i],
                "cut {cut}, event {i}"
            );
        }
        assert_eq!(ids(&restored), ids(&whole), "cut {cut}");
    }
}

/// Every kind the generator makes takes the log's fast path (JSON text straight into
/// the typed object), to the same record as the general path and as the generator's.
#[test]
fn generated_objects_take_the_fast_path_to_the_same_record() {
    use crate::generate::{Preset, generate, to_yaml};
    let objects = generate(&Preset::Small.shape(), 1);
    assert!(objects.len() > 100);
    for object in &objects {
        let value = to_yaml(object);
        let json = serde_json::to_vec(&value).expect("serializes");
        let text = |field: &str| value[field].as_str().unwrap_or_default().to_owned();
        let fast = object_from_json_text(&text("apiVersion"), &text("kind"), &json);
        let Some(fast) = fast else {
            panic!(
                "{:?} {} not on the fast path",
                object.id().kind,
                object.id().key
            )
        };
        assert_eq!(&fast, object);
        assert_eq!(object_from_json(&value), Some(Ok(fast)));
    }
}

/// Applies wait and only the newest version of an object is converted; where the
/// newest does not convert, the versions go through in order, so the batch ends as
/// feeding them one by one would: on the last good version.
#[test]
fn a_batch_converts_the_newest_version_or_falls_back_in_order() {
    let port_of = |changes: &[Change]| match changes {
        [Change::Apply(Object::Service(s))] => s.ports[0].port,
        other => panic!("{other:?}"),
    };
    let mut bad = service("a", "x", 80);
    bad["spec"]["ports"] = json!("not a list");
    let (v1, v2, v3) = (
        service("a", "x", 81),
        service("a", "x", 82),
        service("a", "x", 83),
    );

    // Newest good: it is the change, and nothing failed.
    let mut r = LogReplay::default();
    for v in [&v1, &bad, &v2, &v3] {
        r.feed(&applied(v));
    }
    assert_eq!(port_of(&r.take()), 83);
    assert!(
        r.take_warnings().is_empty(),
        "superseded versions are not converted"
    );

    // Newest bad: the last good one before it, as one by one.
    let mut batched = LogReplay::default();
    let mut single = LogReplay::default();
    let mut last = vec![];
    for v in [&v1, &v2, &bad] {
        batched.feed(&applied(v));
        single.feed(&applied(v));
        let taken = single.take();
        if !taken.is_empty() {
            last = taken;
        }
    }
    assert_eq!(port_of(&batched.take()), 82);
    assert_eq!(port_of(&last), 82);
    assert_eq!(batched.take_warnings().len(), 1);
    assert_eq!(single.take_warnings().len(), 1);

    // A delete after waiting applies comes after them.
    let mut r = LogReplay::default();
    r.feed(&applied(&v1));
    r.feed(&delete(&svc_id("a", "x")));
    assert_eq!(ops(&r.take()), ["delete a/x"], "applied, then deleted");
}
