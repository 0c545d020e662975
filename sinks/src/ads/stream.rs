//! One ADS stream: read the node, follow the gateway's state in the hub, and let a
//! protocol state machine ([`super::sotw`] or [`super::delta`]) turn requests and
//! publications into responses.
//!
//! The state machines do no I/O; this driver owns the only await points. Responses
//! go to tonic through a bounded channel, so a slow proxy holds at most
//! [`RESPONSE_BUFFER`] responses plus one update's worth; while its driver waits,
//! the hub's `watch` keeps only the latest state and intermediate ones are skipped.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use envoy_types::pb::envoy::config::core::v3::Node;
use sluice_pipeline::model::ObjectKey;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use tracing::{debug, info, warn};

use crate::state::{GatewayResources, ResourceType, XdsHub};

use super::node::gateway_of;
use super::verdict::{Inflight, culprits};
use super::{AdsStats, SecretPolicy};

/// Responses buffered per stream between the state machine and tonic.
pub const RESPONSE_BUFFER: usize = 8;

/// What a state machine knows about its stream.
#[derive(Debug)]
pub struct StreamCtx {
    pub gateway: ObjectKey,
    pub node: String,
    pub stats: Arc<AdsStats>,
    /// Where verdicts go.
    pub hub: Arc<XdsHub>,
}

impl StreamCtx {
    /// A nonce unique among all responses of this server.
    pub fn nonce(&self) -> String {
        self.stats.count(&self.gateway, "push");
        self.stats
            .responses
            .fetch_add(1, Ordering::Relaxed)
            .to_string()
    }

    /// The requested type; `None` (logged) for a type Sluice does not serve, an
    /// error for a request without one.
    pub fn type_of(&self, type_url: &str) -> Result<Option<ResourceType>, Status> {
        if type_url.is_empty() {
            return Err(Status::invalid_argument(
                "discovery request has no type_url",
            ));
        }
        let ty = ResourceType::from_type_url(type_url);
        if ty.is_none() {
            warn!(gateway = %self.gateway, node = %self.node, type_url, "ignoring request for a type Sluice does not serve");
        }
        Ok(ty)
    }

    /// Logs and counts a proxy's rejection of the response `nonce`.
    pub fn nack(
        &self,
        ty: ResourceType,
        nonce: &str,
        detail: &envoy_types::pb::google::rpc::Status,
    ) {
        self.stats.nacks.fetch_add(1, Ordering::Relaxed);
        self.stats.count(&self.gateway, "nack");
        warn!(
            gateway = %self.gateway,
            node = %self.node,
            type_url = ty.type_url(),
            nonce,
            code = detail.code,
            error = %detail.message,
            "proxy rejected configuration (NACK); it keeps its last accepted version",
        );
    }

    /// Reports the proxy's verdict on response `nonce` (`detail`: a NACK) to the hub,
    /// with the resources it covers.
    pub fn verdict(
        &self,
        ty: ResourceType,
        inflight: &mut Inflight,
        nonce: &str,
        detail: Option<&envoy_types::pb::google::rpc::Status>,
    ) {
        let Some(covered) = inflight.answered(nonce) else {
            return;
        };
        match detail {
            None => self.hub.accepted(&self.gateway, ty, &covered),
            Some(d) => {
                let culprits = culprits(covered, &d.message);
                self.hub.rejected(&self.gateway, ty, &culprits, &d.message);
            }
        }
    }

    /// Counts a proxy's acceptance of a response.
    pub fn ack(&self) {
        self.stats.count(&self.gateway, "ack");
    }

    /// Whether a request answering `nonce` refers to an older response than
    /// `latest`, the last one sent for its type. A nonce for a type this stream has
    /// not answered yet (a proxy coming from another server) is not stale.
    pub fn is_stale(&self, ty: ResourceType, nonce: &str, latest: Option<&str>) -> bool {
        let stale = !nonce.is_empty() && latest.is_some_and(|l| l != nonce);
        if stale {
            debug!(gateway = %self.gateway, node = %self.node, type_url = ty.type_url(), nonce, "stale nonce");
        }
        stale
    }
}

/// A protocol variant as a state machine over requests and publications.
pub trait Protocol: Sized + Send + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;
    const NAME: &'static str;

    fn node(request: &Self::Request) -> Option<&Node>;
    fn new(ctx: StreamCtx, current: Arc<GatewayResources>) -> Self;
    fn on_request(&mut self, request: Self::Request) -> Result<Vec<Self::Response>, Status>;
    fn on_publish(&mut self, state: Arc<GatewayResources>) -> Vec<Self::Response>;
}

/// What a stream's proxy may be sent, decided when it connects.
#[derive(Debug, Clone)]
pub struct Access {
    policy: SecretPolicy,
    /// The Gateways the proxy's client certificate names (`Authenticated` only).
    identities: Vec<ObjectKey>,
}

impl Access {
    pub fn of<T>(policy: SecretPolicy, request: &tonic::Request<T>) -> Self {
        let identities = match policy {
            SecretPolicy::Authenticated => peer_gateways(request),
            _ => vec![],
        };
        Self { policy, identities }
    }

    /// Whether the proxy may serve `gateway` at all: with client authentication,
    /// only the Gateways its certificate names.
    fn admits(&self, gateway: &ObjectKey) -> bool {
        self.policy != SecretPolicy::Authenticated || self.identities.contains(gateway)
    }

    fn secrets(&self) -> bool {
        self.policy != SecretPolicy::Never
    }
}

fn peer_gateways<T>(request: &tonic::Request<T>) -> Vec<ObjectKey> {
    let certs = request.peer_certs();
    let leaf = certs.as_ref().and_then(|c| c.first());
    leaf.map(|c| super::identity::gateways_of(c.as_ref()))
        .unwrap_or_default()
}

/// `state` without its Secrets, for a proxy that may not have them.
fn without_secrets(state: Arc<GatewayResources>) -> Arc<GatewayResources> {
    if state.get(ResourceType::Secret).is_empty() {
        return state;
    }
    let mut state = (*state).clone();
    state.by_type[ResourceType::Secret.index()] = Default::default();
    Arc::new(state)
}

/// Starts serving one stream; the returned stream is tonic's response body.
pub fn spawn<P: Protocol>(
    hub: Arc<XdsHub>,
    stats: Arc<AdsStats>,
    access: Access,
    requests: Streaming<P::Request>,
) -> ReceiverStream<Result<P::Response, Status>> {
    let (tx, rx) = mpsc::channel(RESPONSE_BUFFER);
    tokio::spawn(async move {
        stats.stream_opened(true);
        if let Err(status) = run::<P>(hub, &stats, access, requests, &tx).await {
            debug!(protocol = P::NAME, %status, "ADS stream ends with an error");
            let _ = tx.send(Err(status)).await;
        }
        stats.stream_opened(false);
    });
    ReceiverStream::new(rx)
}

type Tx<R> = mpsc::Sender<Result<R, Status>>;

async fn run<P: Protocol>(
    hub: Arc<XdsHub>,
    stats: &Arc<AdsStats>,
    access: Access,
    mut requests: Streaming<P::Request>,
    tx: &Tx<P::Response>,
) -> Result<(), Status> {
    let Some(first) = requests.message().await? else {
        return Ok(());
    };
    let node = P::node(&first).map(|n| n.id.clone()).unwrap_or_default();
    let gateway = gateway_of(P::node(&first))?;
    if !access.admits(&gateway) {
        warn!(protocol = P::NAME, %gateway, node, identities = ?access.identities, "refusing a proxy whose client certificate does not name the Gateway it asks for");
        return Err(Status::permission_denied(format!(
            "the client certificate does not name Gateway {gateway}"
        )));
    }
    info!(protocol = P::NAME, %gateway, node, "proxy connected");
    let vet = |state: Arc<GatewayResources>| {
        if access.secrets() {
            state
        } else {
            if !state.get(ResourceType::Secret).is_empty() {
                debug!(%gateway, node, "not serving Secrets to an unauthenticated proxy");
            }
            without_secrets(state)
        }
    };
    let mut states = hub.subscribe(&gateway);
    let current = vet(states.borrow_and_update().clone());
    let ctx = StreamCtx {
        gateway: gateway.clone(),
        node: node.clone(),
        stats: stats.clone(),
        hub,
    };
    let mut machine = P::new(ctx, current);
    let mut out = machine.on_request(first)?;
    loop {
        for response in out.drain(..) {
            if tx.send(Ok(response)).await.is_err() {
                return Ok(());
            }
        }
        tokio::select! {
            request = requests.message() => match request? {
                Some(request) => out = machine.on_request(request)?,
                None => break,
            },
            changed = states.changed() => {
                if changed.is_err() {
                    break;
                }
                let state = vet(states.borrow_and_update().clone());
                out = machine.on_publish(state);
            }
            () = tx.closed() => break,
        }
    }
    info!(protocol = P::NAME, %gateway, node, "proxy disconnected");
    Ok(())
}
