//! Sluice's translation pipeline: Gateway API records in, indexed xDS-shaped records
//! out, maintained incrementally by a differential dataflow.
//!
//! ```text
//!  sources ── Change (apply/delete) @ t ──► Pipeline::apply ──► Delta @ t ──► sinks
//!                                          (timely workers)
//! ```
//!
//! This crate knows nothing of Kubernetes client types, gRPC or Envoy protos: sources
//! convert objects into [`model`] records, sinks turn [`ir`] records into xDS. The
//! dataflow itself is in [`dataflow`]; its semantic pieces are plain functions
//! ([`hostname`], [`precedence`], [`gateway`], [`routes`]) so they can be tested
//! alone.

mod attach;
mod backends;
pub mod dataflow;
mod driver;
pub mod fixtures;
pub mod gateway;
pub mod hostname;
pub mod ir;
pub mod model;
pub mod precedence;
pub mod routes;
mod select;

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
