//! The ADS server: Envoy's `AggregatedDiscoveryService`, both the state-of-the-world
//! (`StreamAggregatedResources`) and the incremental (`DeltaAggregatedResources`)
//! variants, serving Listener, RouteConfiguration, Cluster and
//! ClusterLoadAssignment from an [`XdsHub`].
//!
//! ```text
//!  translator ──publish──▶ XdsHub (watch per gateway) ──▶ stream task ──bounded──▶ tonic ──▶ Envoy
//!                                                          (sotw | delta
//!                                                           state machine)
//! ```
//!
//! # Which Gateway a proxy serves
//! Read from the node of the stream's first request: the node metadata field
//! `sluice.dev/gateway` (a string, `namespace/name`), or else `node.cluster` of the
//! form `namespace/name`. A first request without a usable node ends the stream
//! with `InvalidArgument` naming what is missing. A bootstrap:
//!
//! ```yaml
//! node:
//!   id: gw-7f9c-abcde            # any unique id, e.g. the pod name
//!   cluster: infra/public        # fallback: namespace/name of the Gateway
//!   metadata:
//!     sluice.dev/gateway: infra/public
//! dynamic_resources:
//!   ads_config:
//!     api_type: GRPC             # or DELTA_GRPC
//!     transport_api_version: V3
//!     grpc_services: [{ envoy_grpc: { cluster_name: sluice } }]
//!   cds_config: { ads: {}, resource_api_version: V3 }
//!   lds_config: { ads: {}, resource_api_version: V3 }
//! static_resources:
//!   clusters:
//!   - name: sluice
//!     type: STRICT_DNS
//!     typed_extension_protocol_options:
//!       envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
//!         "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
//!         explicit_http_config: { http2_protocol_options: {} }
//!     load_assignment:
//!       cluster_name: sluice
//!       endpoints: [{ lb_endpoints: [{ endpoint: { address:
//!         { socket_address: { address: sluice.sluice-system, port_value: 18000 } } } }] }]
//! ```
//!
//! # gRPC clients
//! gRPC's own xDS client (channel target `xds:///HOSTNAME`, `GRPC_XDS_BOOTSTRAP`
//! naming this server and the same node fields) asks for Listener `HOSTNAME` by
//! name, then follows RDS → CDS → EDS by name. It gets the gateway's API listener
//! for that hostname (see [`crate::state`]): an exact hostname of one of the
//! gateway's routes, whose HCM reads the route table of the lowest port that has
//! it. The gRPC bootstrap's `node`:
//!
//! ```json
//! { "id": "client-1", "cluster": "infra/public",
//!   "metadata": { "sluice.dev/gateway": "infra/public" } }
//! ```
//!
//! # Contract
//! - A wildcard LDS subscription (Envoy's) gets the socket listeners only; LDS
//!   names asked for explicitly are looked up among the socket listeners, then the
//!   API listeners.
//! - A stream sees only its gateway's resources, and is pushed to only when the hub
//!   publishes (complete logical times). An unchanged resource is never re-sent.
//! - Every update goes out in warming order ([`warming::WARMING_ORDER`]): new or
//!   changed clusters, endpoints, listeners, routes, then cluster and endpoint
//!   removals. A proxy never gets a route before the clusters it names.
//! - ACK/NACK: a request with `error_detail` for the latest nonce of its type is a
//!   NACK: logged with Envoy's message, counted in [`AdsStats::nacks`], and the
//!   rejected version is not resent. A request with a stale nonce is ignored
//!   (incremental subscription changes excepted: they are applied).
//! - Every ACK and NACK is reported to the hub with the resources it is about
//!   ([`verdict`]): a rejected version is then served to no proxy, which get the
//!   last accepted version instead (see [`XdsHub`]'s NACK safety).
//! - Each resource is encoded once upstream; a response copies its bytes into an
//!   `Any` (envoy-types' `Any::value` is a `Vec<u8>`), it never re-encodes.
//! - A slow proxy holds a bounded buffer and skips intermediate states; requests
//!   for unknown types are logged and ignored; malformed requests end the stream
//!   with a gRPC error.

mod delta;
pub mod guard;
pub mod identity;
pub mod node;
mod sotw;
mod stream;
mod subscription;
mod verdict;
pub mod warming;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sluice_pipeline::model::ObjectKey;
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;
use tonic::{Request, Response, Status, Streaming};

pub use self::guard::Limits;
use crate::state::XdsHub;

pub use node::{GATEWAY_METADATA_KEY, gateway_of};

/// Errors of the ADS server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the first discovery request has no node")]
    MissingNode,
    #[error(
        "node {node:?} names no gateway: no metadata field `sluice.dev/gateway`, and its \
         cluster {cluster:?} is not of the form namespace/name"
    )]
    NoGateway { node: String, cluster: String },
    #[error(
        "node {node:?}: `sluice.dev/gateway` in its {field} is not a string namespace/name: {value}"
    )]
    BadGatewayRef {
        node: String,
        field: &'static str,
        value: String,
    },
    #[error("ADS transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("ADS listener: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::MissingNode | Error::NoGateway { .. } | Error::BadGatewayRef { .. } => {
                Status::invalid_argument(e.to_string())
            }
            Error::Transport(_) | Error::Io(_) => Status::internal(e.to_string()),
        }
    }
}

/// Labels of the per-Gateway xDS counter: the Gateway and `push`, `ack` or `nack`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct XdsLabels {
    pub gateway: String,
    pub event: &'static str,
}

/// Labels of the per-Gateway rejection gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GatewayLabel {
    pub gateway: String,
}

/// Registers `xds_rejected_resources{gateway}` (resource versions proxies rejected
/// that are still the published ones) and keeps it current from `hub`'s verdicts,
/// in a task on the current tokio runtime.
pub fn track_rejections(hub: &XdsHub, registry: &mut Registry) {
    let gauge = Family::<GatewayLabel, Gauge>::default();
    registry.register(
        "xds_rejected_resources",
        "Resource versions proxies rejected (NACK) that are still the published ones; \
         proxies get the last accepted version instead. Per Gateway",
        gauge.clone(),
    );
    let mut verdicts = hub.verdicts();
    tokio::spawn(async move {
        loop {
            let current = verdicts.borrow_and_update().clone();
            gauge.clear();
            for (gateway, rejections) in current.iter() {
                let label = GatewayLabel {
                    gateway: gateway.to_string(),
                };
                let count = i64::try_from(rejections.len()).unwrap_or(i64::MAX);
                gauge.get_or_create(&label).set(count);
            }
            if verdicts.changed().await.is_err() {
                return;
            }
        }
    });
}

/// Counters shared by all streams of one server.
#[derive(Debug, Default)]
pub struct AdsStats {
    nacks: AtomicU64,
    responses: AtomicU64,
    active_streams: AtomicU64,
    by_gateway: Family<XdsLabels, Counter>,
    connected: Gauge,
}

impl AdsStats {
    /// Responses proxies rejected.
    pub fn nacks(&self) -> u64 {
        self.nacks.load(Ordering::Relaxed)
    }

    /// Responses sent (each has its own nonce).
    pub fn responses(&self) -> u64 {
        self.responses.load(Ordering::Relaxed)
    }

    /// Streams open now.
    pub fn active_streams(&self) -> u64 {
        self.active_streams.load(Ordering::Relaxed)
    }

    /// Adds the xDS metrics to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "xds_responses",
            "xDS responses pushed to proxies, and the ACKs and NACKs they answered, per Gateway",
            self.by_gateway.clone(),
        );
        registry.register(
            "xds_connected_proxies",
            "ADS streams open now",
            self.connected.clone(),
        );
    }

    pub(crate) fn count(&self, gateway: &ObjectKey, event: &'static str) {
        let labels = XdsLabels {
            gateway: gateway.to_string(),
            event,
        };
        self.by_gateway.get_or_create(&labels).inc();
    }

    pub(crate) fn stream_opened(&self, open: bool) {
        if open {
            self.active_streams.fetch_add(1, Ordering::Relaxed);
            self.connected.inc();
        } else {
            self.active_streams.fetch_sub(1, Ordering::Relaxed);
            self.connected.dec();
        }
    }
}

/// Who may be sent Secrets (SDS: certificates with their private keys).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SecretPolicy {
    /// No stream gets Secrets (HTTPS listeners then cannot complete a handshake):
    /// the default without client authentication.
    #[default]
    Never,
    /// Every stream gets its Gateway's Secrets (`--insecure-serve-secrets`: local
    /// development on loopback).
    Insecure,
    /// Streams get their Gateway's Secrets when the proxy's client certificate
    /// names that Gateway ([`identity::gateways_of`]); a proxy whose certificate
    /// names other Gateways only is refused.
    Authenticated,
}

/// The ADS gRPC service over one hub.
#[derive(Debug, Clone)]
pub struct AdsServer {
    hub: Arc<XdsHub>,
    stats: Arc<AdsStats>,
    limits: Limits,
    secrets: SecretPolicy,
    tls: Option<tonic::transport::ServerTlsConfig>,
}

impl AdsServer {
    pub fn new(hub: Arc<XdsHub>) -> Self {
        Self {
            hub,
            stats: Arc::default(),
            limits: Limits::default(),
            secrets: SecretPolicy::default(),
            tls: None,
        }
    }

    /// Serves over TLS with `cert` and `key` (PEM); with `client_ca` (PEM), every
    /// proxy must present a certificate it signed.
    pub fn with_tls(mut self, cert: &[u8], key: &[u8], client_ca: Option<&[u8]>) -> Self {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if let Some(ca) = client_ca {
            tls = tls.client_ca_root(Certificate::from_pem(ca));
        }
        self.tls = Some(tls);
        self
    }

    /// Who is sent Secrets (default: nobody).
    pub fn with_secret_policy(mut self, policy: SecretPolicy) -> Self {
        self.secrets = policy;
        self
    }

    /// Connection limits other than [`Limits::default`].
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The counters; keep a handle before [`Self::into_service`].
    pub fn stats(&self) -> Arc<AdsStats> {
        self.stats.clone()
    }

    /// Proxies' rejections so far.
    pub fn nacks(&self) -> u64 {
        self.stats.nacks()
    }

    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<Self> {
        AggregatedDiscoveryServiceServer::new(self)
    }

    /// Serves on an already bound listener (e.g. `127.0.0.1:0`) until `shutdown`.
    pub async fn serve_on(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        // Keepalive pings every third of the idle time: a live proxy answers them,
        // so only a dead or silent connection reaches the idle limit.
        let limits = self.limits;
        let ping = limits.idle / 3;
        let mut builder = Server::builder();
        if let Some(tls) = self.tls.clone() {
            builder = builder.tls_config(tls)?;
        }
        builder
            .http2_keepalive_interval(Some(ping))
            .http2_keepalive_timeout(Some(ping.min(Duration::from_secs(10))))
            .add_service(self.into_service())
            .serve_with_incoming_shutdown(guard::incoming(listener, limits), shutdown)
            .await?;
        Ok(())
    }
}

/// Serves ADS for `hub` on `addr` until `shutdown` completes.
pub async fn serve(
    hub: Arc<XdsHub>,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let listener = TcpListener::bind(addr).await?;
    AdsServer::new(hub).serve_on(listener, shutdown).await
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let access = stream::Access::of(self.secrets, &request);
        let requests = request.into_inner();
        Ok(Response::new(stream::spawn::<sotw::Sotw>(
            self.hub.clone(),
            self.stats.clone(),
            access,
            requests,
        )))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let access = stream::Access::of(self.secrets, &request);
        let requests = request.into_inner();
        Ok(Response::new(stream::spawn::<delta::Delta>(
            self.hub.clone(),
            self.stats.clone(),
            access,
            requests,
        )))
    }
}
