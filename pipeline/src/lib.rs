//! Sluice's translation pipeline: Gateway API records in, indexed xDS-shaped records
//! out, maintained incrementally by a differential dataflow.
//!
//! ```text
//!  Change (apply/delete) @ t ──► inputs ──► joins (attach, select, resolve) ──► Output @ t
//! ```
//!
//! This crate knows nothing of Kubernetes client types, gRPC or Envoy protos: sources
//! convert objects into [`model`] records, sinks turn [`ir`] records into xDS.

pub mod ir;
pub mod model;
