//! `--proxies N`: an in-process ADS server and N Delta-ADS clients playing Envoy,
//! to measure how long a change takes to reach every proxy of the gateways it
//! touches, and what a connected proxy costs in memory.
//!
//! ```text
//!  harness ──publish(gateway, state@time)──▶ XdsHub ──▶ AdsServer (127.0.0.1:0)
//!     ▲                                                   │ Delta-ADS, one TCP
//!     └──── std mpsc: (proxy, system_version_info, arrival Instant) ◀── N clients
//! ```
//!
//! Each client names its gateway in node metadata `sluice.dev/gateway` (gateways
//! are dealt round-robin), subscribes with the wildcard `*` to all four types, and
//! ACKs every response. The server puts the pipeline time of the state it sends in
//! `system_version_info`, so a client's report says which publication reached it;
//! the harness keeps, per proxy, the newest time seen and when it arrived.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use sluice_pipeline::model::ObjectKey;
use sluice_sinks::ads::{AdsServer, GATEWAY_METADATA_KEY};
use sluice_sinks::state::{GatewayResources, ResourceType, XdsHub};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

/// Largest response a client accepts: a large gateway's whole CDS or EDS.
const MAX_MESSAGE: usize = 256 * 1024 * 1024;
/// Clients connecting at once (the listener's backlog is finite).
const CONNECTING: usize = 64;
/// Tokio threads for the server and the clients (the dataflow has its own).
const THREADS: usize = 2;

/// What a client tells the harness about one response.
#[derive(Debug)]
enum Report {
    Received {
        proxy: usize,
        time: u64,
        at: Instant,
    },
    Failed {
        proxy: usize,
        error: String,
    },
}

/// Per proxy: the newest pipeline time it has received, and when it first did.
#[derive(Clone, Copy, Debug)]
struct Seen {
    time: Option<u64>,
    at: Instant,
    /// The stream ended: no longer waited for.
    failed: bool,
}

/// The outcome of waiting for one publication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Every proxy of the affected gateways had it after this long.
    All(Duration),
    /// Some proxy did not have it in time.
    TimedOut,
    /// No proxy serves an affected gateway.
    NoProxies,
}

/// The server, the clients and what they reported.
#[derive(Debug)]
pub struct Fleet {
    runtime: tokio::runtime::Runtime,
    hub: Arc<XdsHub>,
    _shutdown: oneshot::Sender<()>,
    /// The gateway each proxy serves, by proxy index.
    assigned: Vec<ObjectKey>,
    seen: Vec<Seen>,
    reports: mpsc::Receiver<Report>,
    failed: usize,
}

impl Fleet {
    /// Starts the server and `n` clients dealt round-robin over `gateways`.
    pub fn start(n: usize, gateways: &[ObjectKey]) -> anyhow::Result<Self> {
        anyhow::ensure!(!gateways.is_empty(), "--proxies needs at least one gateway");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(THREADS)
            .thread_name("scale-proxies")
            .enable_all()
            .build()
            .context("starting the proxies' runtime")?;
        let hub = XdsHub::new();
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .context("binding the ADS server on loopback")?;
        let addr = listener.local_addr()?;
        let (shutdown, stop) = oneshot::channel::<()>();
        let server = AdsServer::new(hub.clone()).serve_on(listener, async {
            let _ = stop.await;
        });
        runtime.spawn(async move {
            if let Err(e) = server.await {
                tracing::warn!("ADS server: {e}");
            }
        });
        let assigned: Vec<ObjectKey> = (0..n)
            .map(|i| gateways[i % gateways.len()].clone())
            .collect();
        let (tx, reports) = mpsc::channel();
        let connecting = Arc::new(Semaphore::new(CONNECTING));
        for (proxy, gateway) in assigned.iter().enumerate() {
            let (tx, connecting) = (tx.clone(), connecting.clone());
            let gateway = format!("{}/{}", gateway.namespace, gateway.name);
            runtime.spawn(async move {
                if let Err(e) = run_proxy(proxy, addr, gateway, &tx, &connecting).await {
                    let _ = tx.send(Report::Failed {
                        proxy,
                        error: format!("{e:#}"),
                    });
                }
            });
        }
        let now = Instant::now();
        Ok(Self {
            runtime,
            hub,
            _shutdown: shutdown,
            seen: vec![
                Seen {
                    time: None,
                    at: now,
                    failed: false,
                };
                n
            ],
            assigned,
            reports,
            failed: 0,
        })
    }

    pub fn publish(&self, gateway: &ObjectKey, state: Arc<GatewayResources>) {
        self.hub.publish(gateway, state);
    }

    /// Waits until every proxy of each `(gateway, time)` has received that time (or
    /// a newer one), at most `limit`; measured from `since`, the publication.
    pub fn wait(
        &mut self,
        targets: &[(ObjectKey, u64)],
        since: Instant,
        limit: Duration,
    ) -> Delivery {
        let watched: Vec<(usize, u64)> = self
            .assigned
            .iter()
            .enumerate()
            .filter_map(|(i, g)| {
                targets
                    .iter()
                    .find(|(t, _)| t == g)
                    .map(|(_, time)| (i, *time))
            })
            .collect();
        if watched.is_empty() {
            return Delivery::NoProxies;
        }
        let deadline = since + limit;
        loop {
            let live = || watched.iter().filter(|&&(i, _)| !self.seen[i].failed);
            if live().any(|&(i, t)| self.seen[i].time.is_none_or(|s| s < t)) {
                // Someone is behind: wait for the next report below.
            } else if let Some(last) = live().map(|&(i, _)| self.seen[i].at).max() {
                return Delivery::All(last.saturating_duration_since(since));
            } else {
                return Delivery::NoProxies;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.reports.recv_timeout(left) {
                Ok(report) => self.absorb(report),
                Err(_) => return Delivery::TimedOut,
            }
        }
    }

    fn absorb(&mut self, report: Report) {
        match report {
            Report::Received { proxy, time, at } => {
                let seen = &mut self.seen[proxy];
                if seen.time.is_none_or(|s| s < time) {
                    seen.time = Some(time);
                    seen.at = at;
                }
            }
            Report::Failed { proxy, error } => {
                self.seen[proxy].failed = true;
                self.failed += 1;
                if self.failed == 1 {
                    tracing::warn!("proxy-{proxy}: {error}");
                }
            }
        }
    }

    /// Proxies whose stream failed so far.
    pub fn failed(&self) -> usize {
        self.failed
    }

    /// Stops the server and drops the clients' tasks.
    pub fn stop(self) {
        let Fleet {
            runtime, _shutdown, ..
        } = self;
        drop(_shutdown);
        runtime.shutdown_timeout(Duration::from_secs(2));
    }
}

/// One proxy: connect, subscribe to everything, report and ACK every response.
async fn run_proxy(
    proxy: usize,
    addr: SocketAddr,
    gateway: String,
    reports: &mpsc::Sender<Report>,
    connecting: &Semaphore,
) -> anyhow::Result<()> {
    let permit = connecting.acquire().await?;
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .context("connecting")?;
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    for (k, ty) in ResourceType::ALL.into_iter().enumerate() {
        let request = DeltaDiscoveryRequest {
            node: (k == 0).then(|| node(proxy, &gateway)),
            type_url: ty.type_url().to_owned(),
            resource_names_subscribe: vec!["*".to_owned()],
            ..DeltaDiscoveryRequest::default()
        };
        tx.send(request).await?;
    }
    let mut responses = client
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .context("opening the Delta-ADS stream")?
        .into_inner();
    drop(permit);
    while let Some(response) = responses.message().await? {
        let at = Instant::now();
        let time = response.system_version_info.parse().unwrap_or(0);
        // The harness may be gone at the end of the run; nothing to do then.
        let _ = reports.send(Report::Received { proxy, time, at });
        let ack = DeltaDiscoveryRequest {
            type_url: response.type_url,
            response_nonce: response.nonce,
            ..DeltaDiscoveryRequest::default()
        };
        tx.send(ack).await?;
    }
    anyhow::bail!("the server ended the stream")
}

fn node(proxy: usize, gateway: &str) -> Node {
    let value = Value {
        kind: Some(Kind::StringValue(gateway.to_owned())),
    };
    Node {
        id: format!("proxy-{proxy}"),
        metadata: Some(Struct {
            fields: [(GATEWAY_METADATA_KEY.to_owned(), value)].into(),
        }),
        ..Node::default()
    }
}
