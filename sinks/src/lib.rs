//! Sinks for Sluice: pipeline output encoded as Envoy xDS resources, printed as
//! proto3 JSON, and served over ADS.

pub mod ads;
pub mod state;
