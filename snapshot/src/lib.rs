//! Snapshots: everything Sluice serves at one logical time (per Gateway and resource
//! type, name → version and encoded bytes), the status as JSON, the source objects it
//! was translated from, and where in the event log that time ends, as one rkyv
//! archive.
//!
//! A snapshot lets a restarted controller serve proxies at once, before its sources
//! have caught up (`sluice serve --snapshot-dir`): loading maps the file and checks it,
//! it does not parse, and the xDS server serves the resources' bytes straight out of
//! the map (a response's `Any.value` copy is the only copy).
//!
//! # File format (version 1)
//! ```text
//! header  = magic "SLUICESN" · version u32 · crc32 u32 (of the archive) · length u64 (of the archive)
//!           · 8 zero bytes                                      (32 bytes, little-endian)
//! archive = rkyv 0.8 archive of `Snapshot`                      (length bytes, 16-aligned
//!                                                                in the file)
//! ```
//! The file is exactly header + archive. The checksum covers every byte of the archive,
//! and [`rkyv::access`] validates its structure, so a corrupt, truncated or foreign
//! file is an [`Error`] naming what is wrong; it never reaches a proxy.
//!
//! # Writing
//! [`dir::SnapshotDir::write`] writes a hidden temporary file, fsyncs it, renames it
//! to `snapshot-<20-digit sequence>-t<time>.sluice`, fsyncs the directory, and deletes
//! all but the newest `keep`. [`dir::SnapshotDir::newest`] loads the newest file that checks
//! out, reporting each one skipped.

pub mod dir;
mod file;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use bytes::Bytes;
use rkyv::rancor;
use sluice_pipeline::model::ObjectKey;
use sluice_sinks::state::{GatewayResources, Resource, ResourceMap, ResourceType};

/// Resource types of snapshots written before Secrets (Cluster, Endpoint,
/// Listener, Route).
const LEGACY_TYPES: usize = 4;

pub use file::{HEADER_LEN, MAGIC, VERSION};

/// What a snapshot holds (the archived root).
#[derive(Debug, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Snapshot {
    /// The controller's logical time the state reflects.
    pub time: u64,
    /// When the snapshot was taken: µs since the Unix epoch.
    pub wall_micros: u64,
    /// With `--record`: the byte offset of the event log just past the last event
    /// applied (the log position this state reflects).
    pub log_offset: Option<u64>,
    pub gateways: Vec<GatewayData>,
    /// The status document (as `--status-file` writes it).
    pub status_json: String,
    /// The source state the xDS and status were translated from: JSON, a list of
    /// streams with their objects (`sluice_sources::log::StreamState`); empty when not
    /// taken. With `log_offset`, what a replay continues from.
    pub sources_json: String,
}

/// One Gateway's resources.
#[derive(Debug, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct GatewayData {
    pub namespace: String,
    pub name: String,
    /// The logical time of the gateway's last change.
    pub time: u64,
    /// Indexed by [`ResourceType::index`]: always 4 entries, each sorted by name.
    pub by_type: Vec<Vec<ResourceData>>,
    pub api_listeners: Vec<ResourceData>,
}

#[derive(Debug, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct ResourceData {
    pub name: String,
    pub version: String,
    pub body: Vec<u8>,
}

/// Why a snapshot cannot be written or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a Sluice snapshot (wrong magic)")]
    Foreign { path: String },
    #[error(
        "{path}: snapshot format version {version} is not supported (this build reads {VERSION})"
    )]
    Version { path: String, version: u32 },
    #[error("{path}: {what}")]
    Damaged { path: String, what: String },
    #[error("encoding the snapshot: {0}")]
    Encode(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Snapshot {
    /// Takes the state of every gateway (resources are copied into the archive once;
    /// this runs off the translation thread's hot path).
    pub fn capture<'a>(
        time: u64,
        log_offset: Option<u64>,
        gateways: impl IntoIterator<Item = (&'a ObjectKey, &'a GatewayResources)>,
        status_json: String,
    ) -> Self {
        let wall_micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let list = |map: &ResourceMap| -> Vec<ResourceData> {
            map.iter()
                .map(|(name, r)| ResourceData {
                    name: name.clone(),
                    version: r.version.clone(),
                    body: r.body.to_vec(),
                })
                .collect()
        };
        let mut gateways: Vec<GatewayData> = gateways
            .into_iter()
            .map(|(key, res)| GatewayData {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                time: res.time,
                by_type: res.by_type.iter().map(list).collect(),
                api_listeners: list(&res.api_listeners),
            })
            .collect();
        gateways.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Snapshot {
            time,
            wall_micros,
            log_offset,
            gateways,
            status_json,
            sources_json: String::new(),
        }
    }

    /// The archive (without the file header).
    pub fn to_archive(&self) -> Result<rkyv::util::AlignedVec> {
        rkyv::to_bytes::<rancor::Error>(self).map_err(|e| Error::Encode(e.to_string()))
    }
}

/// A snapshot file mapped into memory and checked. Resources built from it
/// ([`Loaded::gateways`]) share the map: their bytes are slices of it.
#[derive(Debug)]
pub struct Loaded {
    path: String,
    /// The whole file; the archive starts at [`HEADER_LEN`].
    bytes: Bytes,
}

impl Loaded {
    /// Maps and checks a snapshot file.
    pub fn open(path: &std::path::Path) -> Result<Self> {
        let bytes = file::map_checked(path)?;
        Ok(Loaded {
            path: path.display().to_string(),
            bytes,
        })
    }

    /// Checks an in-memory file image (header and archive), as [`Loaded::open`] does.
    pub fn from_bytes(name: &str, bytes: Bytes) -> Result<Self> {
        file::check(name, &bytes)?;
        Ok(Loaded {
            path: name.to_string(),
            bytes,
        })
    }

    /// Checks a copy of a file image (for bytes that are not 16-aligned).
    pub fn from_copy(name: &str, bytes: &[u8]) -> Result<Self> {
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        Self::from_bytes(name, Bytes::from_owner(aligned))
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The file's size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The archived root (checked when loaded).
    pub fn archived(&self) -> &ArchivedSnapshot {
        file::access(&self.bytes[HEADER_LEN..])
    }

    pub fn time(&self) -> u64 {
        self.archived().time.to_native()
    }

    /// Every gateway's resources, ready to publish. Bodies are slices of the map (no
    /// copy); names and versions are copied (they key the maps).
    pub fn gateways(&self) -> Result<Vec<(ObjectKey, Arc<GatewayResources>)>> {
        let root = self.archived();
        let base = self.bytes.as_ptr() as usize;
        let damaged = |what: String| Error::Damaged {
            path: self.path.clone(),
            what,
        };
        let map = |list: &rkyv::vec::ArchivedVec<ArchivedResourceData>| -> ResourceMap {
            list.iter()
                .map(|r| {
                    let body = r.body.as_slice();
                    let start = body.as_ptr() as usize - base;
                    let resource = Resource {
                        name: r.name.to_string(),
                        version: r.version.to_string(),
                        body: self.bytes.slice(start..start + body.len()),
                    };
                    (resource.name.clone(), Arc::new(resource))
                })
                .collect()
        };
        let mut out = Vec::with_capacity(root.gateways.len());
        for g in root.gateways.iter() {
            let key = ObjectKey::new(g.namespace.as_str(), g.name.as_str());
            // Snapshots written before Secrets were served have the four other types
            // (the first four indexes); a newer one has them all.
            if !(LEGACY_TYPES..=ResourceType::ALL.len()).contains(&g.by_type.len()) {
                return Err(damaged(format!(
                    "gateway {key} has {} resource types, not {LEGACY_TYPES} to {}",
                    g.by_type.len(),
                    ResourceType::ALL.len()
                )));
            }
            let mut res = GatewayResources {
                time: g.time.to_native(),
                ..GatewayResources::default()
            };
            for (slot, list) in res.by_type.iter_mut().zip(g.by_type.iter()) {
                *slot = map(list);
            }
            res.api_listeners = map(&g.api_listeners);
            out.push((key, Arc::new(res)));
        }
        Ok(out)
    }

    /// The status document the snapshot holds.
    pub fn status_json(&self) -> &str {
        self.archived().status_json.as_str()
    }

    pub fn log_offset(&self) -> Option<u64> {
        self.archived().log_offset.as_ref().map(|o| o.to_native())
    }

    /// The source state (empty when the snapshot has none).
    pub fn sources_json(&self) -> &str {
        self.archived().sources_json.as_str()
    }
}
