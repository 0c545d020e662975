//! A manifest directory as a stream of changes: each scan compares the files with
//! the previous scan and turns what was added, changed or removed into watch-style
//! changes (apply / delete) for the objects the files hold.
//!
//! # Contract
//! - A scan's changes belong together (one logical time for the pipeline).
//! - A file that stops parsing keeps its last good objects (the error is reported
//!   with file and line); nothing is deleted because of a typo.
//! - An object defined in two files: the file read last (sorted order) wins; when it
//!   disappears from one file and another still holds it, it is re-applied from there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::SystemTime;

use sluice_eventlog::{Event, Op};
use sluice_pipeline::model::{Change, Object, ObjectId, ObjectKey};

use crate::manifest::{collect_files, parse_manifests, raw_objects};
use crate::{Error, Warning};

#[derive(Debug, Default)]
struct FileState {
    stamp: Option<(SystemTime, u64)>,
    /// Hash of the text last parsed.
    content: u64,
    objects: BTreeMap<ObjectId, Object>,
    /// When recording: each object's log event (an apply of its JSON as written).
    raw: BTreeMap<ObjectId, Event>,
}

/// The result of one scan.
#[derive(Debug, Default)]
pub struct Scan {
    pub changes: Vec<Change>,
    pub warnings: Vec<Warning>,
    /// Files that could not be read or parsed (their previous objects are kept).
    pub errors: Vec<Error>,
    /// When recording ([`DirectorySource::record`]): the changes as log events (time
    /// 0, for the recorder to set). The first scan's are a full resync.
    pub log: Vec<Event>,
}

/// Manifest files under some roots, and the objects they held at the last scan.
#[derive(Debug)]
pub struct DirectorySource {
    roots: Vec<PathBuf>,
    files: BTreeMap<PathBuf, FileState>,
    record: bool,
    scanned: bool,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// File times are coarse (a kernel tick): a file modified within the last second may
/// change again without its stamp changing, so only older stamps are trusted.
fn settled((modified, _): (SystemTime, u64)) -> bool {
    modified.elapsed().is_ok_and(|age| age.as_secs() >= 1)
}

/// An apply of each object document of `text` (already parsed without error), by
/// identity; documents of kinds Sluice does not read are left out.
fn raw_by_id(text: &str, path: &Path) -> BTreeMap<ObjectId, Event> {
    let Ok((objects, _)) = raw_objects(text, &path.display().to_string()) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for raw in objects {
        let Some(kind) = crate::kubernetes::model_kind(&raw.kind) else {
            continue;
        };
        let key = match raw.namespace.as_str() {
            "" => ObjectKey::cluster(raw.name.clone()),
            ns => ObjectKey::new(ns, raw.name.clone()),
        };
        let event = Event {
            time: 0,
            wall_micros: 0,
            op: Op::Apply,
            api_version: raw.api_version,
            kind: raw.kind,
            namespace: raw.namespace,
            name: raw.name,
            object: raw.json,
        };
        out.insert(ObjectId { kind, key }, event);
    }
    out
}

fn hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

impl DirectorySource {
    pub fn new(roots: Vec<PathBuf>) -> Self {
        Self {
            roots,
            files: BTreeMap::new(),
            record: false,
            scanned: false,
        }
    }

    /// Also give each scan's changes as log events ([`Scan::log`]), from the objects'
    /// JSON as written. Call before the first scan.
    pub fn record(&mut self) {
        self.record = true;
    }

    /// Compare the files with the last scan.
    pub fn scan(&mut self) -> Scan {
        let mut scan = Scan::default();
        let mut present = Vec::new();
        for root in &self.roots {
            if let Err(e) = collect_files(root, &mut present) {
                scan.errors.push(e);
            }
        }
        let mut touched: BTreeMap<ObjectId, ()> = BTreeMap::new();
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(state) = self.files.remove(&path) {
                touched.extend(state.objects.into_keys().map(|id| (id, ())));
            }
        }
        for path in present {
            let now = stamp(&path);
            let state = self.files.entry(path.clone()).or_default();
            if state.stamp == now && now.is_some_and(settled) {
                continue;
            }
            match std::fs::read_to_string(&path) {
                Err(source) => scan.errors.push(Error::Io {
                    path: path.clone(),
                    source,
                }),
                Ok(text) if state.stamp.is_some() && hash(&text) == state.content => {
                    state.stamp = now
                }
                Ok(text) => match parse_manifests(&text, &path.display().to_string()) {
                    Err(e) => scan.errors.push(e),
                    Ok(parsed) => {
                        state.stamp = now;
                        state.content = hash(&text);
                        scan.warnings.extend(parsed.warnings);
                        if self.record {
                            state.raw = raw_by_id(&text, &path);
                        }
                        let new: BTreeMap<ObjectId, Object> =
                            parsed.objects.into_iter().map(|o| (o.id(), o)).collect();
                        let old = std::mem::replace(&mut state.objects, new);
                        touched.extend(old.into_keys().map(|id| (id, ())));
                        touched.extend(state.objects.keys().map(|id| (id.clone(), ())));
                    }
                },
            }
        }
        scan.changes = touched.into_keys().map(|id| self.resolve(id)).collect();
        if self.record {
            scan.log = self.log(&scan.changes);
        }
        self.scanned = true;
        scan
    }

    /// The current definition of an object: the last file (sorted) that holds it.
    fn resolve(&self, id: ObjectId) -> Change {
        match self.files.values().rev().find_map(|f| f.objects.get(&id)) {
            Some(obj) => Change::Apply(obj.clone()),
            None => Change::Delete(id),
        }
    }

    /// `changes` as log events: an apply carries the JSON of the file that defines
    /// the object. The first scan's events are a full resync (a replay deletes what
    /// an earlier run appending to the same log had and this one has not).
    fn log(&self, changes: &[Change]) -> Vec<Event> {
        let mut events = Vec::with_capacity(changes.len());
        for change in changes {
            let event = match change {
                Change::Apply(o) => {
                    let id = o.id();
                    match self.files.values().rev().find_map(|f| f.raw.get(&id)) {
                        Some(e) => e.clone(),
                        None => {
                            tracing::error!(
                                "{:?} {}: no JSON to record; not recorded",
                                id.kind,
                                id.key
                            );
                            continue;
                        }
                    }
                }
                Change::Delete(id) => crate::log::delete(id),
            };
            events.push(event);
        }
        if !self.scanned {
            let mut full = crate::log::full_resync(Op::ResyncBegin);
            full.append(&mut events);
            full.extend(crate::log::full_resync(Op::ResyncEnd));
            return full;
        }
        events
    }

    /// Wake-ups on file-system events under the roots (the caller then scans). The
    /// returned watcher must be kept alive.
    pub fn notifications(
        &self,
    ) -> notify::Result<(notify::RecommendedWatcher, mpsc::Receiver<()>)> {
        use notify::Watcher;
        let (tx, rx) = mpsc::channel();
        let mut watcher =
            notify::recommended_watcher(move |_event: notify::Result<notify::Event>| {
                let _ = tx.send(());
            })?;
        for root in &self.roots {
            watcher.watch(root, notify::RecursiveMode::Recursive)?;
        }
        Ok((watcher, rx))
    }
}

#[cfg(test)]
mod tests {
    //! Checks that file additions, edits, removals and parse errors become the right
    //! apply / delete changes, and that a broken file loses nothing.
    use super::*;

    const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: ns}\nspec: {ports: [{port: 80}]}\n";
    const SVC2: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: ns}\nspec: {ports: [{port: 81}]}\n";

    fn kinds(scan: &Scan) -> Vec<&'static str> {
        scan.changes
            .iter()
            .map(|c| {
                if matches!(c, Change::Apply(_)) {
                    "apply"
                } else {
                    "delete"
                }
            })
            .collect()
    }

    #[test]
    fn add_change_break_and_remove() {
        let dir = std::env::temp_dir().join(format!("sluice-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let file = dir.join("svc.yaml");
        std::fs::write(&file, SVC).expect("write");
        let mut src = DirectorySource::new(vec![dir.clone()]);
        assert_eq!(kinds(&src.scan()), vec!["apply"]);
        assert!(
            src.scan().changes.is_empty(),
            "an unchanged file yields nothing"
        );

        std::fs::write(&file, SVC2).expect("write");
        let s = src.scan();
        assert_eq!(kinds(&s), vec!["apply"]);

        std::fs::write(&file, "kind: [unclosed\n").expect("write");
        let s = src.scan();
        assert!(s.changes.is_empty(), "a broken file keeps its objects");
        assert_eq!(s.errors.len(), 1);
        assert!(
            s.errors[0].to_string().contains("svc.yaml:"),
            "{}",
            s.errors[0]
        );

        std::fs::remove_file(&file).expect("rm");
        assert_eq!(kinds(&src.scan()), vec!["delete"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
