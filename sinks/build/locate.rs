//! Finds the `proto/` directory that envoy-types ships, without asking cargo to
//! resolve the workspace (`cargo metadata` resolves dev-dependencies too, and fails
//! offline on a machine whose cargo cache never downloaded them).
//!
//! Order: `$SLUICE_ENVOY_PROTO_DIR` if set; else the exact version locked in the
//! workspace's `Cargo.lock`, unpacked by cargo under
//! `$CARGO_HOME/registry/src/<index>/envoy-types-<version>/proto` (cargo unpacks every
//! package it builds there before any build script runs). Used by `build.rs` and by
//! `tests/build_locate.rs`; every input is a parameter so tests need no environment.

use std::path::{Path, PathBuf};

/// Environment variable naming the `proto/` directory explicitly (vendored sources,
/// an unusual cargo layout).
pub const OVERRIDE_ENV: &str = "SLUICE_ENVOY_PROTO_DIR";

/// The package whose protos are compiled.
pub const PACKAGE: &str = "envoy-types";

/// A file under every valid `proto/` directory: the root the descriptor set needs.
const MARKER: &str = "data-plane-api/envoy";

/// Where to look, gathered from the environment by `build.rs`.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The value of [`OVERRIDE_ENV`], if set.
    pub override_dir: Option<PathBuf>,
    /// The directory of the package being built (`CARGO_MANIFEST_DIR`).
    pub manifest_dir: PathBuf,
    /// Cargo's home (`$CARGO_HOME`, else `$HOME/.cargo`), if known.
    pub cargo_home: Option<PathBuf>,
}

/// `$CARGO_HOME`, else `$HOME/.cargo` (cargo's own default).
pub fn cargo_home(cargo_home: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    cargo_home
        .filter(|p| !p.as_os_str().is_empty())
        .or_else(|| home.map(|h| h.join(".cargo")))
}

/// The nearest `Cargo.lock` in `dir` or one of its ancestors (the workspace root's).
pub fn find_lockfile(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join("Cargo.lock"))
        .find(|p| p.is_file())
}

/// The versions of `package` in a `Cargo.lock` (its `[[package]]` tables).
pub fn locked_versions(lock: &str, package: &str) -> Vec<String> {
    let mut versions = Vec::new();
    let mut name: Option<&str> = None;
    for line in lock.lines().map(str::trim) {
        if line == "[[package]]" {
            name = None;
        } else if let Some(value) = string_value(line, "name") {
            name = Some(value);
        } else if let Some(value) = string_value(line, "version")
            && name == Some(package)
        {
            versions.push(value.to_owned());
        }
    }
    versions
}

/// `value` from a line `key = "value"`.
fn string_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(key)?.trim_start().strip_prefix('=')?;
    rest.trim().strip_prefix('"')?.strip_suffix('"')
}

/// The envoy-types `proto/` directory, or an error that says what was searched and
/// how to fix it. Returns the directory and the files the answer depends on (for
/// `cargo:rerun-if-changed`).
pub fn proto_dir(inputs: &Inputs) -> Result<(PathBuf, Vec<PathBuf>), String> {
    if let Some(dir) = &inputs.override_dir {
        return check_override(dir).map(|d| (d, Vec::new()));
    }
    let lockfile = find_lockfile(&inputs.manifest_dir).ok_or_else(|| {
        format!(
            "no Cargo.lock in {} or its parents, so the locked {PACKAGE} version is \
             unknown; run `cargo generate-lockfile`, or {}",
            inputs.manifest_dir.display(),
            override_hint("")
        )
    })?;
    let text = std::fs::read_to_string(&lockfile)
        .map_err(|e| format!("reading {}: {e}", lockfile.display()))?;
    let version = match locked_versions(&text, PACKAGE).as_slice() {
        [one] => one.clone(),
        [] => return Err(format!("{} has no {PACKAGE} package", lockfile.display())),
        many => {
            return Err(format!(
                "{} locks several {PACKAGE} versions ({}); {}",
                lockfile.display(),
                many.join(", "),
                override_hint("")
            ));
        }
    };
    let dir = registry_dir(inputs.cargo_home.as_deref(), &version)?;
    Ok((dir, vec![lockfile]))
}

fn check_override(dir: &Path) -> Result<PathBuf, String> {
    if dir.join(MARKER).is_dir() {
        Ok(dir.to_path_buf())
    } else {
        Err(format!(
            "{OVERRIDE_ENV}={} has no {MARKER}/: it must name the proto/ directory of \
             an {PACKAGE} source tree",
            dir.display()
        ))
    }
}

/// `<cargo_home>/registry/src/<any index>/envoy-types-<version>/proto`.
fn registry_dir(cargo_home: Option<&Path>, version: &str) -> Result<PathBuf, String> {
    let package_dir = format!("{PACKAGE}-{version}");
    let Some(cargo_home) = cargo_home else {
        return Err(format!(
            "neither CARGO_HOME nor HOME is set, so cargo's registry cannot be searched \
             for {package_dir}; {}",
            override_hint(version)
        ));
    };
    let src = cargo_home.join("registry/src");
    let mut searched = Vec::new();
    let mut indexes: Vec<PathBuf> = std::fs::read_dir(&src)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    indexes.sort();
    for index in indexes {
        let candidate = index.join(&package_dir).join("proto");
        if candidate.join(MARKER).is_dir() {
            return Ok(candidate);
        }
        searched.push(candidate);
    }
    if searched.is_empty() {
        searched.push(src.join("*").join(&package_dir).join("proto"));
    }
    let searched: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "the .proto files of {package_dir} (locked in Cargo.lock) were not found; \
         searched: {}. Fix: run `cargo fetch` so cargo unpacks {package_dir} into its \
         registry, or {}",
        searched.join(", "),
        override_hint(version)
    ))
}

fn override_hint(version: &str) -> String {
    let which = if version.is_empty() {
        PACKAGE.to_owned()
    } else {
        format!("{PACKAGE} {version}")
    };
    format!(
        "set {OVERRIDE_ENV} to the proto/ directory of an {which} source tree \
         (e.g. from `cargo vendor`)"
    )
}
