//! EDS clusters (one per Service port) and their ClusterLoadAssignments.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::{
    Cluster,
    cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbPolicy},
};
use envoy_types::pb::envoy::config::core::v3::{
    Address, DataSource, Http2ProtocolOptions, Locality, SocketAddress, TransportSocket, address,
    data_source, socket_address::PortSpecifier, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SubjectAltNameMatcher, UpstreamTlsContext,
    common_tls_context::ValidationContextType, subject_alt_name_matcher::SanType,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions,
    http_protocol_options::{
        ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
    },
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::{Duration, UInt32Value};
use envoy_types::util::pack_any;
use sluice_pipeline::ir::{BackendTlsIr, BackendTrust, ClusterIr};
use sluice_pipeline::model::SubjectAltName;

use super::ads_config_source;
use super::listener::TLS_TRANSPORT_SOCKET;

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
    let eds = Cluster {
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            service_name: ir.name.clone(),
        }),
        ..Default::default()
    };
    let (discovery, transport_socket) = match &ir.tls {
        None => (eds, None),
        Some(tls) => match upstream_tls(tls) {
            Some(context) => (
                eds,
                Some(TransportSocket {
                    name: TLS_TRANSPORT_SOCKET.to_owned(),
                    config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(context))),
                }),
            ),
            // No usable CA: a cluster with no endpoints, so every request to it
            // is answered 503 by Envoy, never sent without the TLS it must have.
            None => (
                Cluster {
                    cluster_discovery_type: Some(ClusterDiscoveryType::Type(
                        DiscoveryType::Static as i32,
                    )),
                    load_assignment: Some(load_assignment(&ir.name, &[])),
                    ..Default::default()
                },
                None,
            ),
        },
    };
    Cluster {
        name: ir.name.clone(),
        transport_socket,
        connect_timeout: Some(Duration {
            seconds: 2,
            nanos: 0,
        }),
        lb_policy: LbPolicy::RoundRobin as i32,
        typed_extension_protocol_options: protocol_options,
        ..discovery
    }
}

/// Where the proxies find the system trust store (`wellKnownCACertificates:
/// System`): the Debian/Ubuntu bundle path, which the Envoy images also use.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The TLS context of a backend a BackendTLSPolicy applies to: its hostname as SNI,
/// the trust from its CAs (inline: a CA bundle is not secret, and a cluster is
/// encoded once for every proxy), and the names the certificate must carry
/// (`subjectAltNames`, else the hostname; Envoy's exact DNS match honours a
/// wildcard in the certificate). `None` when there is no trust to validate with.
fn upstream_tls(tls: &BackendTlsIr) -> Option<UpstreamTlsContext> {
    let trusted_ca = match &tls.trust {
        BackendTrust::CaBundle(pem) => data_source::Specifier::InlineString(pem.clone()),
        BackendTrust::System => data_source::Specifier::Filename(SYSTEM_CA_BUNDLE.to_owned()),
        BackendTrust::Refused => return None,
    };
    let exact = |san_type: SanType, value: &str| SubjectAltNameMatcher {
        san_type: san_type as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(string_matcher::MatchPattern::Exact(value.to_owned())),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sans = if tls.subject_alt_names.is_empty() {
        vec![exact(SanType::Dns, &tls.hostname)]
    } else {
        (tls.subject_alt_names.iter())
            .map(|san| match san {
                SubjectAltName::Hostname(h) => exact(SanType::Dns, h),
                SubjectAltName::Uri(u) => exact(SanType::Uri, u),
            })
            .collect()
    };
    let validation = CertificateValidationContext {
        trusted_ca: Some(DataSource {
            specifier: Some(trusted_ca),
            ..Default::default()
        }),
        match_typed_subject_alt_names: sans,
        ..Default::default()
    };
    Some(UpstreamTlsContext {
        sni: tls.hostname.clone(),
        common_tls_context: Some(CommonTlsContext {
            validation_context_type: Some(ValidationContextType::ValidationContext(validation)),
            ..Default::default()
        }),
        ..Default::default()
    })
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
