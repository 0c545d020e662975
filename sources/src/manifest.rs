//! Kubernetes YAML manifests: multi-document files and directories of them.
//!
//! ```text
//!  file text ─split─▶ documents (with start lines) ─YAML─▶ Value ─dispatch─▶ Object
//!                                        │                              │
//!                                  syntax error: Error          anything else: Warning
//! ```
//!
//! A YAML syntax error stops the file (the rest of the stream cannot be trusted)
//! and is an [`Error::Yaml`] with its line and column. A well-formed document that
//! cannot become a record — an unknown kind, a field of the wrong type, a value the
//! CRD schema forbids — is skipped with one [`Warning`], and every other document
//! still loads.

mod dispatch;
mod split;
mod unknown_filters;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use sluice_pipeline::model::{Object, ObjectId};

use crate::{Error, Result};

/// What a manifest source read: the records, and the documents it skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub objects: Vec<Object>,
    pub warnings: Vec<Warning>,
}

impl Parsed {
    fn extend(&mut self, other: Parsed) {
        self.objects.extend(other.objects);
        self.warnings.extend(other.warnings);
    }
}

/// A document that was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Warning {
    /// The file (or other origin) the document came from.
    pub origin: String,
    /// 1-based line where the document starts.
    pub line: usize,
    pub message: String,
    /// The object the document defines, when it is of a kind Sluice reads but did
    /// not convert: a watching source keeps its last good version.
    pub failed: Option<ObjectId>,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.origin, self.message),
            line => write!(f, "{}:{line}: {}", self.origin, self.message),
        }
    }
}

/// Parses a multi-document YAML stream; `origin` names it in warnings and errors.
pub fn parse_manifests(text: &str, origin: &str) -> Result<Parsed> {
    let mut parsed = Parsed::default();
    each_document(text, origin, |at, value| {
        parsed.extend(dispatch::document(at, value))
    })?;
    Ok(parsed)
}

/// The record of one object given as JSON (a watch event's object): `None` for a kind
/// Sluice does not read, else the record or why it cannot be one. The same
/// conversion as a manifest document's.
pub fn object_from_json(value: &serde_json::Value) -> Option<std::result::Result<Object, String>> {
    let value = match serde_yaml_ng::to_value(value) {
        Ok(value) => value,
        Err(e) => return Some(Err(e.to_string())),
    };
    dispatch::object_of(&value)
}

/// [`object_from_json`] of JSON text whose apiVersion and kind are already known (a
/// log event's): one pass from the text to the record. `None` when the fast path
/// cannot decide; [`object_from_json`] of the parsed text then gives the answer (a
/// record, an error with its message, or a kind Sluice does not read).
pub fn object_from_json_text(api_version: &str, kind: &str, json: &[u8]) -> Option<Object> {
    dispatch::object_of_json(api_version, kind, json)
}

/// One object document as written (a `List`'s items each), for the event log: its
/// identity (the namespace defaulted as the API server would) and its JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawObject {
    pub api_version: String,
    pub kind: String,
    /// Empty for cluster-scoped kinds.
    pub namespace: String,
    pub name: String,
    pub json: Vec<u8>,
}

/// The object documents of a multi-document YAML stream as written, of every kind
/// (a reader later skips the kinds it does not read); documents without a kind or
/// a name are skipped with a warning. Syntax errors are errors, as for
/// [`parse_manifests`].
pub fn raw_objects(text: &str, origin: &str) -> Result<(Vec<RawObject>, Vec<Warning>)> {
    let (mut objects, mut warnings) = (vec![], vec![]);
    each_document(text, origin, |at, value| {
        dispatch::raw(at, value, &mut objects, &mut warnings)
    })?;
    Ok((objects, warnings))
}

/// [`raw_objects`] of files and directories, in [`load_paths`] order.
pub fn load_raw(paths: &[PathBuf]) -> Result<(Vec<RawObject>, Vec<Warning>)> {
    let (mut objects, mut warnings) = (vec![], vec![]);
    let mut files = Vec::new();
    for path in paths {
        collect_files(path, &mut files, &mut warnings)?;
    }
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| io(&file, source))?;
        let (o, w) = raw_objects(&text, &file.display().to_string())?;
        objects.extend(o);
        warnings.extend(w);
    }
    Ok((objects, warnings))
}

/// Calls `f` with every YAML document of `text` and where it starts.
fn each_document(
    text: &str,
    origin: &str,
    mut f: impl FnMut(&dispatch::At<'_>, serde_yaml_ng::Value),
) -> Result<()> {
    for document in split::documents(text) {
        let stream = serde_yaml_ng::Deserializer::from_str(document.text);
        for deserializer in stream {
            let value = serde_yaml_ng::Value::deserialize(deserializer)
                .map_err(|e| yaml_error(origin, document.first_line, &e))?;
            let at = dispatch::At {
                origin,
                line: document.start_line,
            };
            f(&at, value);
        }
    }
    Ok(())
}

/// A syntax error, located in the whole file rather than in its document.
fn yaml_error(origin: &str, first_line: usize, error: &serde_yaml_ng::Error) -> Error {
    let (line, column) = match error.location() {
        Some(l) => (first_line + l.line() - 1, l.column()),
        None => (first_line, 0),
    };
    let message = relocate(&error.to_string(), first_line - 1);
    // The location already leads the message; drop its repetition.
    let message = message.replacen(&format!(" at line {line} column {column}"), "", 1);
    Error::Yaml {
        origin: origin.to_owned(),
        line,
        column,
        message,
    }
}

/// Shifts every `line N` in a parser message by `offset` lines.
fn relocate(message: &str, offset: usize) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find("line ") {
        let (before, after) = rest.split_at(i + "line ".len());
        out.push_str(before);
        let digits = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        match after[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// Reads files and directories (recursively: regular files ending `.yaml` or
/// `.yml`), in the order given and each directory in sorted order. Entries that are
/// not regular files (FIFOs, devices, sockets) and directories already walked
/// (symlink loops) are skipped with a warning; a path given by name is read as given.
pub fn load_paths(paths: &[PathBuf]) -> Result<Parsed> {
    let mut parsed = Parsed::default();
    let mut files = Vec::new();
    for path in paths {
        collect_files(path, &mut files, &mut parsed.warnings)?;
    }
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| io(&file, source))?;
        parsed.extend(parse_manifests(&text, &file.display().to_string())?);
    }
    Ok(parsed)
}

/// The manifest files under `path` (itself, when it is not a directory); the first
/// directory that cannot be listed is an error.
pub(crate) fn collect_files(
    path: &Path,
    files: &mut Vec<PathBuf>,
    warnings: &mut Vec<Warning>,
) -> Result<()> {
    let mut listing = Listing::default();
    listing.walk(path);
    files.append(&mut listing.files);
    warnings.append(&mut listing.skipped);
    match listing.failed.into_iter().next() {
        Some((path, source)) => Err(io(&path, source)),
        None => Ok(()),
    }
}

/// What walking some paths found. A walk never stops at a failure: a directory that
/// cannot be listed is recorded with why, and a watching source keeps what it had
/// under it (nothing there is known to be gone).
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Manifest files, in walk order.
    pub files: Vec<PathBuf>,
    /// Paths that could not be listed or examined.
    pub failed: Vec<(PathBuf, std::io::Error)>,
    /// Entries left out: not regular files, symlink loops, dangling links.
    pub skipped: Vec<Warning>,
    /// Directories walked, by device and inode: a directory reached twice (a symlink
    /// loop, or two links to one directory) is walked once.
    seen: std::collections::HashSet<(u64, u64)>,
}

impl Listing {
    /// Walks `path`: a path that is not a directory is taken as given.
    pub fn walk(&mut self, path: &Path) {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => self.directory(path, &m),
            Ok(_) => self.files.push(path.to_owned()),
            Err(e) => self.failed.push((path.to_owned(), e)),
        }
    }

    fn directory(&mut self, path: &Path, metadata: &std::fs::Metadata) {
        use std::os::unix::fs::MetadataExt as _;
        if !self.seen.insert((metadata.dev(), metadata.ino())) {
            self.skip(path, "a directory already read (a symlink loop?)");
            return;
        }
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) => return self.failed.push((path.to_owned(), e)),
        };
        let mut paths = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => paths.push(entry.path()),
                Err(e) => return self.failed.push((path.to_owned(), e)),
            }
        }
        paths.sort();
        for entry in paths {
            let metadata = match std::fs::metadata(&entry) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // A link to nothing (or an entry gone since the listing).
                    if is_manifest(&entry) && entry.symlink_metadata().is_ok() {
                        self.skip(&entry, "a symbolic link to nothing");
                    }
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(40) => {
                    // ELOOP: a link that resolves to itself.
                    self.skip(&entry, "a symbolic link loop");
                    continue;
                }
                Err(e) => {
                    self.failed.push((entry, e));
                    continue;
                }
            };
            if metadata.is_dir() {
                self.directory(&entry, &metadata);
            } else if !is_manifest(&entry) {
            } else if metadata.is_file() {
                self.files.push(entry);
            } else {
                self.skip(&entry, "not a regular file (a FIFO, socket or device)");
            }
        }
    }

    fn skip(&mut self, path: &Path, why: &str) {
        self.skipped.push(Warning {
            origin: path.display().to_string(),
            line: 0,
            message: format!("skipped: {why}"),
            failed: None,
        });
    }
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_owned(),
        source,
    }
}
