//! One Envoy Listener per Gateway port, with an HttpConnectionManager whose routes
//! come over RDS (through ADS) under the listener's own name; and, for gRPC's own
//! xDS clients, one API listener per exact hostname (see [`api_listener`]).
//!
//! An HTTPS port terminates TLS: the TLS inspector reads the client's SNI, and each
//! HTTPS listener of the port is one filter chain matching its hostname
//! (`server_names`; the listener without hostname matches any SNI, and a client that
//! sends none), presenting its certificates fetched over SDS (through ADS) by
//! Secret name, with ALPN `h2` and `http/1.1`. A certificate change is a new Secret
//! resource only: the Listener names it and does not change.

use envoy_types::pb::envoy::config::core::v3::{
    Address, SocketAddress, address, socket_address::PortSpecifier,
};
use envoy_types::pb::envoy::config::core::v3::{TransportSocket, transport_socket};
use envoy_types::pb::envoy::config::listener::v3::{
    ApiListener, Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter,
    listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    certificate_validation_context::TrustChainVerification,
    common_tls_context::{CombinedCertificateValidationContext, ValidationContextType},
};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;
use sluice_pipeline::ir::{ListenerIr, TlsChain};

use super::{EncodeConfig, ads_config_source};

pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";
pub const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";
pub const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";

/// The Listener for `ir`: binds `address_for(gateway):port+port_offset`.
pub fn listener(config: &EncodeConfig, ir: &ListenerIr) -> Listener {
    let name = ir.name();
    let hcm = harden(http_connection_manager(&name));
    let hcm_filter = Filter {
        name: HCM_FILTER.to_owned(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
    };
    let (filter_chains, listener_filters) = if ir.tls.is_empty() {
        let chain = FilterChain {
            filters: vec![hcm_filter],
            ..Default::default()
        };
        (vec![chain], vec![])
    } else {
        let chains = (ir.tls.iter())
            .map(|chain| {
                let route_name = chain_route_name(&name, chain.hostname.as_deref());
                let hcm = harden(http_connection_manager(&route_name));
                let hcm = Filter {
                    name: HCM_FILTER.to_owned(),
                    config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
                };
                tls_chain(&name, chain, hcm)
            })
            .collect();
        let inspector = ListenerFilter {
            name: TLS_INSPECTOR.to_owned(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
                TlsInspector::default(),
            ))),
            ..Default::default()
        };
        (chains, vec![inspector])
    };
    let socket = SocketAddress {
        address: config.address_for(&ir.gateway).to_owned(),
        port_specifier: Some(PortSpecifier::PortValue(config.bind_port(ir.port))),
        ..Default::default()
    };
    Listener {
        name,
        address: Some(Address {
            address: Some(address::Address::SocketAddress(socket)),
        }),
        filter_chains,
        listener_filters,
        ..Default::default()
    }
}

/// The RouteConfiguration of one HTTPS listener's filter chain on Envoy listener
/// `listener`: `LISTENER/HOSTNAME` (`*` for the listener without hostname). It has
/// the port's virtual hosts this listener owns, and answers 421 for the hosts of
/// the port's other listeners.
pub fn chain_route_name(listener: &str, hostname: Option<&str>) -> String {
    format!("{listener}/{}", hostname.unwrap_or("*"))
}

/// The filter chain of one HTTPS listener: its SNI, its certificates over SDS,
/// and, when it validates clients, its CA bundle over SDS: a client certificate is
/// required and must chain to it (`AllowValidOnly`), or is optional and an
/// untrusted one accepted (`AllowInsecureFallback`, Envoy's `ACCEPT_UNTRUSTED`
/// merged over the bundle).
fn tls_chain(listener: &str, chain: &TlsChain, hcm: Filter) -> FilterChain {
    let sds = |name: &str| SdsSecretConfig {
        name: name.to_owned(),
        sds_config: Some(ads_config_source()),
    };
    let (validation, require_client_certificate) = match &chain.client_validation {
        None => (None, None),
        Some(v) if v.insecure_fallback => {
            let lenient = CertificateValidationContext {
                trust_chain_verification: TrustChainVerification::AcceptUntrusted as i32,
                ..Default::default()
            };
            let combined = CombinedCertificateValidationContext {
                default_validation_context: Some(lenient),
                validation_context_sds_secret_config: Some(sds(&v.ca)),
                ..Default::default()
            };
            let combined = ValidationContextType::CombinedValidationContext(combined);
            (Some(combined), Some(BoolValue { value: false }))
        }
        Some(v) => (
            Some(ValidationContextType::ValidationContextSdsSecretConfig(
                sds(&v.ca),
            )),
            Some(BoolValue { value: true }),
        ),
    };
    let context = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: (chain.secrets.iter()).map(|n| sds(n)).collect(),
            alpn_protocols: vec!["h2".to_owned(), "http/1.1".to_owned()],
            validation_context_type: validation,
            ..Default::default()
        }),
        require_client_certificate,
        ..Default::default()
    };
    FilterChain {
        name: chain_route_name(listener, chain.hostname.as_deref()),
        filter_chain_match: chain.hostname.as_ref().map(|h| FilterChainMatch {
            server_names: vec![h.clone()],
            ..Default::default()
        }),
        filters: vec![hcm],
        transport_socket: Some(TransportSocket {
            name: TLS_TRANSPORT_SOCKET.to_owned(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(context))),
        }),
        ..Default::default()
    }
}

/// The Listener a gRPC client resolving `xds:///HOSTNAME` asks for by name: an API
/// listener (no address, no filter chains) whose HttpConnectionManager reads
/// RouteConfiguration `route_config_name` over ADS, with the router as its last
/// (only) HTTP filter, as gRFC A27 and A39 require. Envoy rejects API listeners over
/// LDS: the ADS server sends them only to clients that name them.
pub fn api_listener(hostname: &str, route_config_name: &str) -> Listener {
    Listener {
        name: hostname.to_owned(),
        api_listener: Some(ApiListener {
            api_listener: Some(pack_any(http_connection_manager(route_config_name))),
        }),
        ..Default::default()
    }
}

/// Path handling as Envoy's edge-proxy hardening guide recommends, so a route's
/// path match sees the path a backend will act on: dot segments resolved
/// (`/echo/../private` is `/private`, RFC 3986 section 6), repeated slashes merged,
/// and a path with escaped slashes (`%2F`, `%5C`) redirected to its unescaped form.
/// Proxies only: gRPC's own xDS clients (API listeners) do not take these fields.
fn harden(mut hcm: HttpConnectionManager) -> HttpConnectionManager {
    use http_connection_manager::PathWithEscapedSlashesAction;
    hcm.normalize_path = Some(BoolValue { value: true });
    hcm.merge_slashes = true;
    hcm.path_with_escaped_slashes_action = PathWithEscapedSlashesAction::UnescapeAndRedirect as i32;
    hcm
}

/// HTTP connection manager reading RouteConfiguration `route_config_name` over ADS.
pub fn http_connection_manager(route_config_name: &str) -> HttpConnectionManager {
    use http_connection_manager::{RouteSpecifier, UpgradeConfig};
    let router = HttpFilter {
        name: ROUTER_FILTER.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            Router::default(),
        ))),
        ..Default::default()
    };
    HttpConnectionManager {
        // Stat names use `.` as separator; keep the `/` of the name out of them.
        stat_prefix: route_config_name.replace('/', "_"),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: route_config_name.to_owned(),
        })),
        http_filters: vec![router],
        // Gateway API hostname matching ignores the port of the Host header.
        upgrade_configs: vec![UpgradeConfig {
            upgrade_type: "websocket".to_owned(),
            ..Default::default()
        }],
        ..Default::default()
    }
}
