//! A manifest directory as a stream of changes: each scan compares the files with
//! the previous scan and turns what was added, changed or removed into watch-style
//! changes (apply / delete) for the objects the files hold.
//!
//! # Contract
//! - A scan's changes belong together (one logical time for the pipeline).
//! - A file that stops parsing keeps its last good objects (the error is reported
//!   with file and line); nothing is deleted because of a typo.
//! - A document that is well-formed but does not convert (a listener with `port: 0`)
//!   keeps its object's last good version, with a warning naming file and line.
//! - An object defined in two files: the file read last (sorted order) wins, with a
//!   warning naming both; when it disappears from one file and another still holds
//!   it, it is re-applied from there.
//! - A listing that fails (an unreadable directory, no file descriptors left, the
//!   root deleted) is an error and changes nothing under it: files are gone only
//!   when a listing that worked no longer has them. When a root comes back, the scan
//!   says so ([`Scan::rewatch`]).
//! - Only regular files are read: FIFOs, devices and sockets are skipped with a
//!   warning (reading them would block or never end), and so are symlink loops.
//! - After the first scan, a file modified less than [`QUIET`] ago is left for a
//!   later scan ([`Scan::retry_in`]) until it has been quiet that long, for at most
//!   [`BOUND`]: a file written in parts is applied whole. Writing elsewhere and
//!   renaming into place is still the way to make a change atomic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use sluice_eventlog::{Event, Op};
use sluice_pipeline::model::{Change, Object, ObjectId, ObjectKey};

use crate::manifest::{Listing, parse_manifests, raw_objects};
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
    /// A root that could not be listed is back: the caller re-establishes its
    /// file-system watch ([`DirectorySource::notifications`]).
    pub rewatch: bool,
    /// Files still being written were left for later: scan again after this long.
    pub retry_in: Option<Duration>,
}

/// A file is read once it has not changed for this long...
pub const QUIET: Duration = Duration::from_millis(100);
/// ...or once it has been changing for this long.
pub const BOUND: Duration = Duration::from_secs(2);

/// Manifest files under some roots, and the objects they held at the last scan.
#[derive(Debug)]
pub struct DirectorySource {
    roots: Vec<PathBuf>,
    files: BTreeMap<PathBuf, FileState>,
    record: bool,
    scanned: bool,
    /// Roots that could not be listed at the last scan.
    missing: BTreeSet<PathBuf>,
    /// Files seen changing and not read yet, since when.
    unsettled: BTreeMap<PathBuf, Instant>,
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

/// An object defined twice: in `path` twice, or in `path` and `other` (the
/// definition in `path`, the last in sorted order, is the one used).
fn duplicate(path: &Path, id: &ObjectId, other: Option<&PathBuf>) -> Warning {
    let message = match other {
        None => format!(
            "{:?} {} is defined more than once in this file; the last definition is used",
            id.kind, id.key
        ),
        Some(other) => format!(
            "{:?} {} is also defined in {}; the definition here (the last file in sorted order) is used",
            id.kind,
            id.key,
            other.display()
        ),
    };
    Warning {
        origin: path.display().to_string(),
        line: 0,
        message,
        failed: None,
    }
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
            missing: BTreeSet::new(),
            unsettled: BTreeMap::new(),
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
        let mut listing = Listing::default();
        for root in &self.roots {
            let before = listing.failed.len();
            listing.walk(root);
            let listed = !listing.failed[before..].iter().any(|(p, _)| p == root);
            if listed && self.missing.remove(root) {
                // The root is back (deleted and recreated): watch it anew.
                scan.rewatch = true;
            } else if !listed {
                self.missing.insert(root.clone());
            }
        }
        scan.warnings.append(&mut listing.skipped);
        let present: BTreeSet<PathBuf> = listing.files.iter().cloned().collect();
        let mut touched: BTreeMap<ObjectId, ()> = BTreeMap::new();
        // A file is gone only when the directory that held it was listed: a listing
        // that failed (permissions, no file descriptors, the root deleted) says
        // nothing about what is under it, so its files keep their objects.
        let unknown = |p: &Path| listing.failed.iter().any(|(dir, _)| p.starts_with(dir));
        let gone: Vec<PathBuf> = (self.files.keys())
            .filter(|p| !present.contains(*p) && !unknown(p))
            .cloned()
            .collect();
        for (dir, source) in listing.failed {
            let kept = (self.files.keys()).filter(|p| p.starts_with(&dir)).count();
            let why = format!("{source}; the objects of the {kept} files read under it are kept");
            let source = std::io::Error::new(source.kind(), why);
            scan.errors.push(Error::Io { path: dir, source });
        }
        for path in gone {
            self.unsettled.remove(&path);
            if let Some(state) = self.files.remove(&path) {
                touched.extend(state.objects.into_keys().map(|id| (id, ())));
            }
        }
        for path in listing.files {
            let now = stamp(&path);
            let state = self.files.entry(path.clone()).or_default();
            if state.stamp == now && now.is_some_and(settled) {
                continue;
            }
            if state.stamp != now && self.scanned {
                // Written within the last moments: wait until the writer is done (no
                // change for QUIET), up to BOUND, so a file written in parts is not
                // applied half-written.
                let age = now.map(|(modified, _)| modified.elapsed().unwrap_or_default());
                if let Some(age) = age.filter(|age| *age < QUIET) {
                    let since = *self
                        .unsettled
                        .entry(path.clone())
                        .or_insert_with(Instant::now);
                    if since.elapsed() < BOUND {
                        let wait = QUIET - age;
                        scan.retry_in = Some(scan.retry_in.map_or(wait, |w| w.min(wait)));
                        continue;
                    }
                }
            }
            self.unsettled.remove(&path);
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
                        if self.record {
                            state.raw = raw_by_id(&text, &path);
                        }
                        let mut new: BTreeMap<ObjectId, Object> = BTreeMap::new();
                        for object in parsed.objects {
                            let id = object.id();
                            if new.insert(id.clone(), object).is_some() {
                                scan.warnings.push(duplicate(&path, &id, None));
                            }
                        }
                        for mut warning in parsed.warnings {
                            // Well-formed but not convertible: the last good version
                            // stays (a typo must not delete the object).
                            let kept = (warning.failed.as_ref())
                                .filter(|id| !new.contains_key(*id))
                                .and_then(|id| Some((id.clone(), state.objects.get(id)?.clone())));
                            if let Some((id, object)) = kept {
                                // The problem goes into the object's status.
                                let problem = warning.to_string();
                                let object = object.with_problem(&problem, None).unwrap_or(object);
                                warning.message.push_str("; its last good version is kept");
                                new.insert(id, object);
                            }
                            scan.warnings.push(warning);
                        }
                        // Only what this file changed: an object left as it was (or
                        // kept at its last good version) is no change.
                        let old = std::mem::replace(&mut state.objects, new);
                        for (id, object) in &old {
                            if state.objects.get(id) != Some(object) {
                                touched.insert(id.clone(), ());
                            }
                        }
                        for id in state.objects.keys().filter(|id| !old.contains_key(*id)) {
                            touched.insert(id.clone(), ());
                        }
                    }
                },
            }
        }
        for id in touched.keys() {
            let holders: Vec<&PathBuf> = (self.files.iter())
                .filter(|(_, f)| f.objects.contains_key(id))
                .map(|(p, _)| p)
                .collect();
            if let [.., other, winner] = holders[..] {
                scan.warnings.push(duplicate(winner, id, Some(other)));
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

    /// Past the quiet time: the next scan reads what was written.
    fn settle() {
        std::thread::sleep(QUIET + Duration::from_millis(30));
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sluice-watch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmp dir");
        dir
    }

    fn messages(scan: &Scan) -> String {
        let w = scan.warnings.iter().map(ToString::to_string);
        let e = scan.errors.iter().map(ToString::to_string);
        w.chain(e).collect::<Vec<_>>().join("\n")
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
        settle();
        let s = src.scan();
        assert_eq!(kinds(&s), vec!["apply"]);

        std::fs::write(&file, "kind: [unclosed\n").expect("write");
        settle();
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

    /// Issue 8 (2): a well-formed document that does not convert (port 0) keeps the
    /// object's last good version, with a warning naming file, line and object.
    #[test]
    fn a_typo_keeps_the_last_good_version() {
        let dir = temp_dir("typo");
        let file = dir.join("svc.yaml");
        std::fs::write(&file, SVC).expect("write");
        let mut src = DirectorySource::new(vec![dir.clone()]);
        assert_eq!(kinds(&src.scan()), vec!["apply"]);
        std::fs::write(&file, SVC.replace("port: 80", "port: 0")).expect("write");
        settle();
        let s = src.scan();
        assert!(s.changes.is_empty(), "nothing is deleted: {:?}", s.changes);
        let said = messages(&s);
        assert!(
            said.contains("svc.yaml:1: skipped Service ns/a")
                && said.contains("its last good version is kept"),
            "{said}"
        );
        // Still kept when the file changes again with the typo in place.
        std::fs::write(
            &file,
            format!(
                "{}---\n{}",
                SVC.replace("port: 80", "port: 0"),
                SVC.replace("name: a", "name: b")
            ),
        )
        .expect("write");
        settle();
        let s = src.scan();
        assert_eq!(kinds(&s), vec!["apply"], "only b is new: {:?}", s.changes);
        std::fs::write(&file, SVC2).expect("write");
        settle();
        let s = src.scan();
        assert_eq!(kinds(&s), vec!["apply", "delete"], "a fixed, b removed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Issue 8 (2): a Gateway's kept version carries the problem (file, line, why)
    /// into its status; fixing the file clears it.
    #[test]
    fn a_kept_gateway_carries_its_problem() {
        let gw = |port: u16| {
            format!(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
                 metadata: {{name: gw, namespace: ns}}\n\
                 spec: {{gatewayClassName: c, listeners: [{{name: http, port: {port}, protocol: HTTP}}]}}\n"
            )
        };
        let dir = temp_dir("gateway-typo");
        let file = dir.join("gw.yaml");
        std::fs::write(&file, gw(80)).expect("write");
        let mut src = DirectorySource::new(vec![dir.clone()]);
        assert_eq!(kinds(&src.scan()), vec!["apply"]);
        std::fs::write(&file, gw(0)).expect("write");
        settle();
        let s = src.scan();
        let [Change::Apply(Object::Gateway(kept))] = &s.changes[..] else {
            panic!("{:?}", s.changes)
        };
        assert_eq!(kept.listeners[0].port, 80, "the last good version");
        let problem = kept.meta.problem.clone().unwrap_or_default();
        assert!(
            problem.contains("gw.yaml:1") && problem.contains("port"),
            "{problem}"
        );
        std::fs::write(&file, gw(81)).expect("write");
        settle();
        let s = src.scan();
        let [Change::Apply(Object::Gateway(fixed))] = &s.changes[..] else {
            panic!("{:?}", s.changes)
        };
        assert_eq!(
            (fixed.listeners[0].port, fixed.meta.problem.as_ref()),
            (81, None)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Issue 8 (3): a root that cannot be listed (deleted) keeps every object; when it
    /// is back, the scan asks for a new watch and nothing changes that did not.
    #[test]
    fn a_failed_listing_deletes_nothing() {
        let dir = temp_dir("gone");
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        std::fs::write(dir.join("sub/a.yaml"), SVC).expect("write");
        std::fs::write(dir.join("z.yaml"), SVC.replace("name: a", "name: z")).expect("write");
        let mut src = DirectorySource::new(vec![dir.clone()]);
        assert_eq!(kinds(&src.scan()), vec!["apply", "apply"]);
        let moved = dir.with_extension("moved");
        let _ = std::fs::remove_dir_all(&moved);
        std::fs::rename(&dir, &moved).expect("move the root away");
        let s = src.scan();
        assert!(
            s.changes.is_empty(),
            "a missing root deletes nothing: {:?}",
            s.changes
        );
        assert!(!s.rewatch);
        assert!(
            messages(&s).contains("the objects of the 2 files read under it are kept"),
            "{}",
            messages(&s)
        );
        std::fs::rename(&moved, &dir).expect("move the root back");
        let s = src.scan();
        assert!(s.rewatch, "the root is back: watch it again");
        assert!(s.changes.is_empty(), "{:?}", s.changes);
        assert!(s.errors.is_empty(), "{}", messages(&s));
        // Once back, a file removed is gone as before.
        std::fs::remove_file(dir.join("sub/a.yaml")).expect("rm");
        assert_eq!(kinds(&src.scan()), vec!["delete"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Issue 8 (4): a FIFO, a link to a device, a link to itself and a link back up
    /// the tree are skipped with a warning each; the scan returns and reads the rest.
    #[test]
    fn special_files_and_loops_are_skipped() {
        let dir = temp_dir("special");
        std::fs::write(dir.join("svc.yaml"), SVC).expect("write");
        let made = std::process::Command::new("mkfifo")
            .arg(dir.join("fifo.yaml"))
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero.yaml")).expect("symlink");
        std::os::unix::fs::symlink(dir.join("self.yaml"), dir.join("self.yaml")).expect("symlink");
        std::os::unix::fs::symlink(&dir, dir.join("up")).expect("symlink");
        let mut src = DirectorySource::new(vec![dir.clone()]);
        let s = src.scan();
        assert_eq!(kinds(&s), vec!["apply"], "{}", messages(&s));
        let said = messages(&s);
        for name in [
            "fifo.yaml: skipped: not a regular file",
            "zero.yaml: skipped: not a regular file",
            "self.yaml: skipped: a symbolic link loop",
            "up: skipped: a directory already read",
        ] {
            assert!(said.contains(name), "{name}: {said}");
        }
        assert!(s.errors.is_empty(), "{said}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Issue 8 (6): a file being written in parts is read once it is quiet, whole.
    #[test]
    fn a_file_written_in_parts_is_read_whole() {
        let dir = temp_dir("parts");
        std::fs::write(dir.join("a.yaml"), SVC).expect("write");
        let mut src = DirectorySource::new(vec![dir.clone()]);
        assert_eq!(kinds(&src.scan()), vec!["apply"]);
        // Rewrite a.yaml with a second Service, in parts, scanning between parts.
        use std::io::Write as _;
        let text = format!("{SVC2}---\n{}", SVC.replace("name: a", "name: b"));
        let mut file = std::fs::File::create(dir.join("a.yaml")).expect("create");
        for part in text.as_bytes().chunks(16) {
            file.write_all(part).expect("write");
            file.flush().expect("flush");
            let s = src.scan();
            assert!(s.changes.is_empty(), "half a file applied: {:?}", s.changes);
            assert!(s.retry_in.is_some_and(|r| r <= QUIET));
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(file);
        settle();
        let s = src.scan();
        assert_eq!(
            kinds(&s),
            vec!["apply", "apply"],
            "a changed and b added, at once"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A file that never stops changing is read after BOUND all the same.
    #[test]
    fn a_file_that_keeps_changing_is_read_after_the_bound() {
        let dir = temp_dir("busy");
        let mut src = DirectorySource::new(vec![dir.clone()]);
        assert!(src.scan().changes.is_empty());
        let started = Instant::now();
        let applied = loop {
            std::fs::write(dir.join("a.yaml"), SVC).expect("write");
            let s = src.scan();
            if !s.changes.is_empty() {
                break started.elapsed();
            }
            assert!(started.elapsed() < BOUND * 2, "never read");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(applied >= BOUND, "read after {applied:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An object in two files: a warning names both, the later file wins.
    #[test]
    fn duplicates_are_a_warning_naming_both_files() {
        let dir = temp_dir("dup");
        std::fs::write(dir.join("a.yaml"), SVC).expect("write");
        std::fs::write(dir.join("b.yaml"), SVC2).expect("write");
        let mut src = DirectorySource::new(vec![dir.clone()]);
        let s = src.scan();
        let Some(Change::Apply(Object::Service(svc))) = s.changes.first() else {
            panic!("{:?}", s.changes)
        };
        assert_eq!(svc.ports[0].port, 81, "b.yaml, the later file, wins");
        let said = messages(&s);
        assert!(
            said.contains("b.yaml: Service ns/a is also defined in") && said.contains("a.yaml"),
            "{said}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
