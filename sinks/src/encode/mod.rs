//! Pipeline IR → Envoy xDS messages.
//!
//! Pure functions, one file per resource kind: [`listener`] (Listener with an
//! HttpConnectionManager that fetches its routes over ADS), [`route`] (virtual
//! hosts and routes, and the RouteConfiguration assembled from already-encoded
//! virtual hosts), [`rewrite`] (Gateway API path modifiers as Envoy rewrites) and
//! [`cluster`] (EDS clusters and their ClusterLoadAssignments). Nothing here
//! caches: the [`crate::translator`] decides what to re-encode.
//!
//! Every output is deterministic: the same IR gives the same bytes.

use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, config_source::ConfigSourceSpecifier,
};
use envoy_types::pb::google::protobuf::Duration;
use sluice_pipeline::model::ObjectKey;
use sluice_pipeline::spec::gateway::BindAddresses;

pub mod cluster;
pub mod listener;
pub mod rewrite;
pub mod route;
pub mod secret;

/// How IR becomes Envoy configuration: the parts that depend on where Envoy runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncodeConfig {
    /// Where each gateway's listeners bind (`0.0.0.0` unless set). The pipeline gets
    /// the same value, so Gateway `spec.addresses` status says what is bound.
    pub bind: BindAddresses,
    /// Added to every Gateway listener port to get the port Envoy binds (e.g. to
    /// run unprivileged). Only the bind port moves: redirects and everything else
    /// the client sees use the Gateway's own port numbers.
    pub port_offset: u16,
}

impl EncodeConfig {
    /// The address a gateway's listeners bind.
    pub fn address_for(&self, gateway: &ObjectKey) -> &str {
        self.bind.for_gateway(gateway)
    }

    /// The port Envoy binds for a Gateway listener port. A sum beyond 65535 is
    /// passed through: Envoy rejects (NACKs) the listener, which is visible, rather
    /// than this silently binding a wrapped port.
    pub fn bind_port(&self, port: u16) -> u32 {
        u32::from(port) + u32::from(self.port_offset)
    }
}

/// `{ ads: {}, resource_api_version: V3 }`: fetch the resource over the ADS stream.
pub(crate) fn ads_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

pub(crate) fn duration_ms(ms: u64) -> Duration {
    let seconds = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    // < 1e9, fits in i32.
    let nanos = i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0);
    Duration { seconds, nanos }
}

#[cfg(test)]
mod tests;
