//! EDS clusters (one per Service port) and their ClusterLoadAssignments.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::{
    Cluster,
    cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbPolicy},
};
use envoy_types::pb::envoy::config::core::v3::{
    Address, Http2ProtocolOptions, Locality, SocketAddress, address, socket_address::PortSpecifier,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions,
    http_protocol_options::{
        ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
    },
};
use envoy_types::pb::google::protobuf::{Duration, UInt32Value};
use envoy_types::util::pack_any;
use sluice_pipeline::ir::ClusterIr;

use super::ads_config_source;

/// The `appProtocol` that selects cleartext HTTP/2 to the backend.
pub const H2C_APP_PROTOCOL: &str = "kubernetes.io/h2c";
pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// An EDS cluster whose endpoints come over ADS under the cluster's own name.
pub fn cluster(ir: &ClusterIr) -> Cluster {
    // At most one entry: the map (a HashMap in envoy-types) encodes deterministically.
    let mut protocol_options = HashMap::new();
    if ir.app_protocol.as_deref() == Some(H2C_APP_PROTOCOL) {
        let options = HttpProtocolOptions {
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                        Http2ProtocolOptions::default(),
                    )),
                },
            )),
            ..Default::default()
        };
        protocol_options.insert(HTTP_PROTOCOL_OPTIONS.to_owned(), pack_any(options));
    }
    Cluster {
        name: ir.name.clone(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            service_name: ir.name.clone(),
        }),
        connect_timeout: Some(Duration {
            seconds: 2,
            nanos: 0,
        }),
        lb_policy: LbPolicy::RoundRobin as i32,
        typed_extension_protocol_options: protocol_options,
        ..Default::default()
    }
}

/// The endpoints of `cluster`, in one locality; an empty slice gives an empty
/// assignment (so Envoy finishes warming the cluster instead of waiting).
///
/// The locality is explicit (empty) and weighted 1: gRPC's xDS clients skip a
/// locality without `load_balancing_weight` and reject one without `locality`
/// (gRFC A27). Envoy ignores locality weights unless locality-weighted load
/// balancing is configured, so for it nothing changes.
pub fn load_assignment(cluster: &str, endpoints: &[(String, u16)]) -> ClusterLoadAssignment {
    let lb_endpoints: Vec<LbEndpoint> = endpoints
        .iter()
        .map(|(ip, port)| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(socket_address(ip, *port)),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    let groups = if lb_endpoints.is_empty() {
        vec![]
    } else {
        vec![LocalityLbEndpoints {
            locality: Some(Locality::default()),
            lb_endpoints,
            load_balancing_weight: Some(UInt32Value { value: 1 }),
            ..Default::default()
        }]
    };
    ClusterLoadAssignment {
        cluster_name: cluster.to_owned(),
        endpoints: groups,
        ..Default::default()
    }
}

fn socket_address(ip: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_owned(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}
