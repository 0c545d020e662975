//! Sluice's translation pipeline: Gateway API records in, indexed xDS-shaped records
//! out, maintained incrementally by a differential dataflow.
//!
//! ```text
//!  sources ── Change (apply/delete) @ t ──► Pipeline::apply ──► Delta @ t ─┬─ xds ────► translator
//!                                          (timely workers)                └─ status ─► status board
//! ```
//!
//! This crate knows nothing of Kubernetes client types, gRPC or Envoy protos: sources
//! convert objects into [`model`] records, sinks turn [`ir`] records into xDS and
//! status. The layout, so each concept has one place:
//! - [`model`]: the input records; [`ir`]: the output records (two streams, xDS and
//!   status) and [`ir::Delta`], their net change at one logical time;
//! - [`spec`]: the Gateway API's rules as pure functions, with spec references
//!   (listener validity, hostnames, attachment, references, route rules, precedence,
//!   conditions);
//! - [`dataflow`]: the composition of the stages, one file per stage (gateways,
//!   select, attach, backends, vhosts, endpoints, status);
//! - `driver`: the timely workers that run the dataflow one logical time at a time
//!   ([`Pipeline`]), and [`evaluate`], the from-scratch reference;
//! - `fixtures` (feature `test-support`): record builders for tests.

pub mod dataflow;
mod driver;
#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
pub mod ir;
pub mod model;
pub mod spec;

pub use driver::{DEFAULT_CONTROLLER, Pipeline, PipelineConfig, evaluate};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not start timely workers: {0}")]
    Timely(String),
    #[error("a dataflow worker stopped")]
    WorkerGone,
    #[error("dataflow worker failed: {0}")]
    Worker(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
