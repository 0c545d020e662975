//! Sinks for Sluice: pipeline output encoded as Envoy xDS resources, printed as
//! proto3 JSON, and served over ADS.
//!
//! ```text
//! pipeline Delta ──▶ translator::Translator ──▶ GatewayResources (per gateway)
//!                      │  encode::{listener, route, cluster}      │
//!                      │  (cached bytes, shared Arc<Resource>)    ├──▶ XdsHub ──▶ ADS
//!                      ▼                                          └──▶ json (printing)
//! ```

pub mod admin;
pub mod ads;
pub mod encode;
pub mod error;
pub mod json;
pub mod kube_status;
pub mod lease;
pub mod state;
pub mod status;
pub mod status_file;
pub mod translator;

pub use error::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;
