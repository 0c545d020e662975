//! Sources for Sluice: Kubernetes objects turned into pipeline records.
//!
//! ```text
//!  YAML files ──parse──▶ serde_yaml_ng::Value ──typed──▶ gateway-api / k8s-openapi
//!                                                              │ convert (TryFrom)
//!                                                              ▼
//!                                              sluice_pipeline::model::Object
//! ```
//!
//! # Contract
//!
//! - Kubernetes types stop here: everything downstream sees only
//!   [`sluice_pipeline::model`] records, with the defaults the API server would
//!   have applied already filled in (see [`convert`]).
//! - Bad input loses nothing else: a malformed YAML stream is an [`Error`] naming
//!   file, line and column; a well-formed document that is of an unknown kind, or
//!   that fails to deserialize or convert, becomes a [`manifest::Warning`] and the
//!   remaining documents still load.
//! - Output is deterministic: files are read in sorted order, and every list in a
//!   record whose order carries no meaning is sorted.

pub mod convert;
pub mod generate;
pub mod kubernetes;
pub mod log;
pub mod manifest;
pub mod watch;

pub use convert::ConvertError;
pub use manifest::{
    Parsed, RawObject, Warning, load_paths, load_raw, object_from_json, object_from_json_text,
    parse_manifests, raw_objects,
};

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors that stop a source from reading its input at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not YAML. `line` and `column` are 1-based (0 when unknown).
    #[error("{origin}:{line}:{column}: {message}")]
    Yaml {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
