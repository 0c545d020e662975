//! The ADS server end to end over loopback gRPC: tonic clients play Envoy against
//! a real tonic server, for both protocol variants. Checks what a proxy receives
//! (wildcard and by-name subscriptions, only-what-changed updates, removals,
//! reconnects), ACK/NACK and nonce handling, the warming order of one update, the
//! isolation of gateways, and that bad clients get gRPC errors. API listeners (for
//! gRPC's own xDS clients) go only to LDS requests that name them, never to a
//! wildcard (Envoy rejects them).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;
use sluice_pipeline::model::ObjectKey;
use sluice_sinks::ads::{AdsServer, AdsStats, GATEWAY_METADATA_KEY};
use sluice_sinks::state::{GatewayResources, Resource, ResourceType, XdsHub};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use ResourceType::{Cluster, Endpoint, Listener, Route};

const WAIT: Duration = Duration::from_secs(5);

// ---- server ---------------------------------------------------------------------

struct Harness {
    hub: Arc<XdsHub>,
    stats: Arc<AdsStats>,
    addr: SocketAddr,
    _shutdown: oneshot::Sender<()>,
}

async fn start() -> Harness {
    let hub = XdsHub::new();
    let server = AdsServer::new(hub.clone());
    let stats = server.stats();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(server.serve_on(listener, async {
        let _ = rx.await;
    }));
    Harness {
        hub,
        stats,
        addr,
        _shutdown: tx,
    }
}

async fn client(addr: SocketAddr) -> AggregatedDiscoveryServiceClient<Channel> {
    AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect")
}

// ---- resources ------------------------------------------------------------------

fn key(gateway: &str) -> ObjectKey {
    let (ns, name) = gateway.split_once('/').expect("namespace/name");
    ObjectKey::new(ns, name)
}

/// A gateway state from `(type, name, body)`.
fn state(time: u64, resources: &[(ResourceType, &str, &str)]) -> Arc<GatewayResources> {
    let mut s = GatewayResources {
        time,
        ..GatewayResources::default()
    };
    for (ty, name, body) in resources {
        let r = Resource::new(name.to_string(), body.as_bytes().to_vec().into());
        s.by_type[ty.index()].insert(name.to_string(), Arc::new(r));
    }
    Arc::new(s)
}

/// Cluster `c` with its endpoints (`e` + the cluster's number), listener `l` with
/// body `listener`, and route `r` with body `route`.
fn warming_state(time: u64, c: &str, listener: &str, route: &str) -> Arc<GatewayResources> {
    let endpoints = c.replace('c', "e");
    state(
        time,
        &[
            (Cluster, c, c),
            (Endpoint, c, &endpoints),
            (Listener, "l", listener),
            (Route, "r", route),
        ],
    )
}

/// Cluster `c1`, listener `l1` and route `r1` with the given bodies.
fn one_of_each(time: u64, listener: &str, route: &str) -> Arc<GatewayResources> {
    state(
        time,
        &[
            (Cluster, "c1", "c1"),
            (Listener, "l1", listener),
            (Route, "r1", route),
        ],
    )
}

/// `state(..)` plus API listeners `(name, body)`.
fn state_with_api(
    time: u64,
    resources: &[(ResourceType, &str, &str)],
    api_listeners: &[(&str, &str)],
) -> Arc<GatewayResources> {
    let mut s = Arc::unwrap_or_clone(state(time, resources));
    for (name, body) in api_listeners {
        let r = Resource::new(name.to_string(), body.as_bytes().to_vec().into());
        s.api_listeners.insert(name.to_string(), Arc::new(r));
    }
    Arc::new(s)
}

fn node_by_metadata(gateway: &str) -> Node {
    let value = Value {
        kind: Some(Kind::StringValue(gateway.into())),
    };
    let metadata = Struct {
        fields: [(GATEWAY_METADATA_KEY.to_string(), value)].into(),
    };
    Node {
        id: format!("envoy-{gateway}"),
        metadata: Some(metadata),
        ..Node::default()
    }
}

fn node_by_cluster(gateway: &str) -> Node {
    Node {
        id: format!("envoy-{gateway}"),
        cluster: gateway.into(),
        ..Node::default()
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Polls `holds` until it is true; panics after `WAIT` (no fixed quiet window: on a
/// loaded machine the server may take a while, and a fast one passes at once).
async fn eventually(what: &str, holds: impl Fn() -> bool) {
    let start = Instant::now();
    while !holds() {
        assert!(start.elapsed() < WAIT, "not within {WAIT:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---- state-of-the-world proxy ---------------------------------------------------

struct SotwProxy {
    node: Option<Node>,
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
}

impl SotwProxy {
    async fn connect(addr: SocketAddr, node: Option<Node>) -> Self {
        let (tx, rx) = mpsc::channel(16);
        let rx = client(addr)
            .await
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .expect("open stream")
            .into_inner();
        Self { node, tx, rx }
    }

    async fn send(
        &self,
        ty: ResourceType,
        resource_names: &[&str],
        ack: Option<&DiscoveryResponse>,
    ) {
        let request = DiscoveryRequest {
            node: self.node.clone(),
            type_url: ty.type_url().into(),
            resource_names: names(resource_names),
            version_info: ack.map(|r| r.version_info.clone()).unwrap_or_default(),
            response_nonce: ack.map(|r| r.nonce.clone()).unwrap_or_default(),
            ..DiscoveryRequest::default()
        };
        self.tx.send(request).await.expect("request stream open");
    }

    async fn nack(&self, rejected: &DiscoveryResponse, last_good_version: &str) {
        let request = DiscoveryRequest {
            node: self.node.clone(),
            type_url: rejected.type_url.clone(),
            version_info: last_good_version.into(),
            response_nonce: rejected.nonce.clone(),
            error_detail: Some(rpc::Status {
                code: 3,
                message: "bad cluster c1".into(),
                details: vec![],
            }),
            ..DiscoveryRequest::default()
        };
        self.tx.send(request).await.expect("request stream open");
    }

    /// Subscribes to each type in turn, receives its response and ACKs it; returns
    /// the responses.
    async fn subscribe_each(&mut self, subs: &[(ResourceType, &[&str])]) -> Vec<DiscoveryResponse> {
        let mut got = vec![];
        for (ty, names) in subs {
            self.send(*ty, names, None).await;
            let r = self.recv().await;
            self.send(*ty, names, Some(&r)).await;
            got.push(r);
        }
        got
    }

    async fn recv(&mut self) -> DiscoveryResponse {
        timeout(WAIT, self.rx.message())
            .await
            .expect("a response in time")
            .expect("no stream error")
            .expect("stream open")
    }

    async fn recv_err(&mut self) -> tonic::Status {
        match timeout(WAIT, self.rx.message())
            .await
            .expect("an answer in time")
        {
            Err(status) => status,
            Ok(other) => panic!("expected an error, got {other:?}"),
        }
    }

    /// The next response, which must be `want`: after a step where nothing may
    /// arrive, a publish whose response must come next proves nothing did.
    async fn expect(&mut self, want: (ResourceType, Vec<String>)) -> DiscoveryResponse {
        let r = self.recv().await;
        assert_eq!(sotw_summary(&r), want, "the next response");
        r
    }
}

/// `(type, names)` of a SotW response, names decoded from the test bodies.
fn sotw_summary(r: &DiscoveryResponse) -> (ResourceType, Vec<String>) {
    let ty = ResourceType::from_type_url(&r.type_url).expect("known type");
    let bodies = r
        .resources
        .iter()
        .map(|any| {
            assert_eq!(any.type_url, r.type_url);
            String::from_utf8(any.value.clone()).expect("utf8 body")
        })
        .collect();
    (ty, bodies)
}

// ---- incremental proxy ----------------------------------------------------------

struct DeltaProxy {
    node: Node,
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    rx: Streaming<DeltaDiscoveryResponse>,
}

impl DeltaProxy {
    async fn connect(addr: SocketAddr, node: Node) -> Self {
        let (tx, rx) = mpsc::channel(16);
        let rx = client(addr)
            .await
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await
            .expect("open stream")
            .into_inner();
        Self { node, tx, rx }
    }

    async fn send(&self, request: DeltaDiscoveryRequest) {
        let request = DeltaDiscoveryRequest {
            node: Some(self.node.clone()),
            ..request
        };
        self.tx.send(request).await.expect("request stream open");
    }

    async fn subscribe(&self, ty: ResourceType, subscribe: &[&str]) {
        self.send(DeltaDiscoveryRequest {
            type_url: ty.type_url().into(),
            resource_names_subscribe: names(subscribe),
            ..DeltaDiscoveryRequest::default()
        })
        .await;
    }

    /// Subscribes to each type in turn, receives its response and ACKs it.
    async fn subscribe_each(&mut self, subs: &[(ResourceType, &[&str])]) {
        for (ty, names) in subs {
            self.subscribe(*ty, names).await;
            let r = self.recv().await;
            self.ack(&r).await;
        }
    }

    async fn ack(&self, r: &DeltaDiscoveryResponse) {
        self.send(DeltaDiscoveryRequest {
            type_url: r.type_url.clone(),
            response_nonce: r.nonce.clone(),
            ..DeltaDiscoveryRequest::default()
        })
        .await;
    }

    async fn recv(&mut self) -> DeltaDiscoveryResponse {
        timeout(WAIT, self.rx.message())
            .await
            .expect("a response in time")
            .expect("no stream error")
            .expect("stream open")
    }

    /// The next response, which must be `want` (see [`SotwProxy::expect`]).
    async fn expect(
        &mut self,
        want: (ResourceType, Vec<String>, Vec<String>),
    ) -> DeltaDiscoveryResponse {
        let r = self.recv().await;
        assert_eq!(delta_summary(&r), want, "the next response");
        r
    }
}

/// `(type, upserted names, removed names)` of a delta response.
fn delta_summary(r: &DeltaDiscoveryResponse) -> (ResourceType, Vec<String>, Vec<String>) {
    let ty = ResourceType::from_type_url(&r.type_url).expect("known type");
    let upserts = r.resources.iter().map(|res| res.name.clone()).collect();
    (ty, upserts, r.removed_resources.clone())
}

/// The bodies of a delta response's resources.
fn delta_bodies(r: &DeltaDiscoveryResponse) -> Vec<String> {
    (r.resources.iter())
        .filter_map(|res| res.resource.as_ref())
        .map(|any| String::from_utf8(any.value.clone()).expect("utf8 body"))
        .collect()
}

// ---- state of the world ---------------------------------------------------------

#[tokio::test]
async fn sotw_wildcard_cds_and_lds_get_the_whole_set() {
    let h = start().await;
    h.hub.publish(
        &key("ns/gw"),
        state(
            1,
            &[
                (Cluster, "c1", "c1"),
                (Cluster, "c2", "c2"),
                (Listener, "l1", "l1"),
            ],
        ),
    );
    let mut p = SotwProxy::connect(h.addr, Some(node_by_metadata("ns/gw"))).await;
    p.send(Cluster, &[], None).await;
    let cds = p.recv().await;
    assert_eq!(sotw_summary(&cds), (Cluster, names(&["c1", "c2"])));
    assert!(!cds.version_info.is_empty() && !cds.nonce.is_empty());
    p.send(Listener, &[], None).await;
    let lds = p.recv().await;
    assert_eq!(sotw_summary(&lds), (Listener, names(&["l1"])));
    assert_ne!(cds.nonce, lds.nonce);

    // A gateway with nothing published still answers wildcard requests.
    let mut empty = SotwProxy::connect(h.addr, Some(node_by_cluster("ns/none"))).await;
    empty.send(Cluster, &[], None).await;
    assert_eq!(sotw_summary(&empty.recv().await), (Cluster, vec![]));
}

#[tokio::test]
async fn sotw_rds_and_eds_send_the_requested_names_that_exist() {
    let h = start().await;
    let s = state(
        1,
        &[
            (Route, "r1", "r1"),
            (Route, "r2", "r2"),
            (Endpoint, "e1", "e1"),
            (Endpoint, "e2", "e2"),
        ],
    );
    h.hub.publish(&key("ns/gw"), s);
    let mut p = SotwProxy::connect(h.addr, Some(node_by_metadata("ns/gw"))).await;
    p.send(Route, &["r1"], None).await;
    assert_eq!(sotw_summary(&p.recv().await), (Route, names(&["r1"])));
    p.send(Endpoint, &["e2", "missing"], None).await;
    let eds = p.recv().await;
    assert_eq!(sotw_summary(&eds), (Endpoint, names(&["e2"])));

    // Asking for one more name sends only that one; the missing one arrives when
    // it is published.
    p.send(Endpoint, &["e1", "e2", "missing"], Some(&eds)).await;
    let eds = p.recv().await;
    assert_eq!(sotw_summary(&eds), (Endpoint, names(&["e1"])));
    p.send(Endpoint, &["e1", "e2", "missing"], Some(&eds)).await;
    // Nothing is sent for the ACK: the next response is the one for `missing`.
    let s = state(
        2,
        &[
            (Route, "r1", "r1"),
            (Endpoint, "e1", "e1"),
            (Endpoint, "e2", "e2"),
            (Endpoint, "missing", "m"),
        ],
    );
    h.hub.publish(&key("ns/gw"), s);
    let eds = p.expect((Endpoint, names(&["m"]))).await;
    p.send(Endpoint, &["e1", "e2", "missing"], Some(&eds)).await;
    // Nothing else follows: the next response is the next change.
    let s = state(
        3,
        &[
            (Route, "r1", "r1"),
            (Endpoint, "e1", "e1 v2"),
            (Endpoint, "e2", "e2"),
            (Endpoint, "missing", "m"),
        ],
    );
    h.hub.publish(&key("ns/gw"), s);
    p.expect((Endpoint, names(&["e1 v2"]))).await;
}

#[tokio::test]
async fn sotw_update_after_ack_sends_only_the_changed_type() {
    let h = start().await;
    let gw = key("ns/gw");
    h.hub.publish(&gw, one_of_each(1, "l1 v1", "r1"));
    let mut p = SotwProxy::connect(h.addr, Some(node_by_metadata("ns/gw"))).await;
    let got = p
        .subscribe_each(&[(Cluster, &[]), (Listener, &[]), (Route, &["r1"])])
        .await;
    let lds = &got[1];

    // Same content in a new publication: nothing is sent (the next response is the
    // listener change below).
    h.hub.publish(&gw, one_of_each(2, "l1 v1", "r1"));

    // Only the listener changes: one LDS response, with a new version.
    h.hub.publish(&gw, one_of_each(3, "l1 v2", "r1"));
    let lds2 = p.recv().await;
    assert_eq!(sotw_summary(&lds2), (Listener, names(&["l1 v2"])));
    assert_ne!(lds2.version_info, lds.version_info);
    p.send(Listener, &[], Some(&lds2)).await;
    // Nothing else follows: the next response is the next change.
    h.hub.publish(&gw, one_of_each(4, "l1 v2", "r1 v2"));
    p.expect((Route, names(&["r1 v2"]))).await;
}

fn nack_state(time: u64, cluster_body: &str) -> Arc<GatewayResources> {
    state(
        time,
        &[
            (Cluster, "c1", cluster_body),
            (Route, "r1", "r1"),
            (Route, "r2", "r2"),
        ],
    )
}

#[tokio::test]
async fn sotw_nack_is_counted_and_the_last_accepted_version_served() {
    let h = start().await;
    let gw = key("ns/gw");
    h.hub.publish(&gw, nack_state(1, "c1"));
    let mut p = SotwProxy::connect(h.addr, Some(node_by_metadata("ns/gw"))).await;
    p.send(Cluster, &[], None).await;
    let cds = p.expect((Cluster, names(&["c1"]))).await;
    p.send(Cluster, &[], Some(&cds)).await;

    // A new version the proxy rejects: counted, and the stream goes back to the
    // version the proxy accepted.
    h.hub.publish(&gw, nack_state(2, "c1 bad"));
    let bad = p.expect((Cluster, names(&["c1 bad"]))).await;
    p.nack(&bad, &cds.version_info).await;
    eventually("the NACK is counted", || h.stats.nacks() == 1).await;
    let back = p.expect((Cluster, names(&["c1"]))).await;
    p.send(Cluster, &[], Some(&back)).await;

    // A proxy that connects now gets the accepted version, never the rejected one.
    let mut q = SotwProxy::connect(h.addr, Some(node_by_metadata("ns/gw"))).await;
    q.send(Cluster, &[], None).await;
    let first = q.expect((Cluster, names(&["c1"]))).await;
    q.send(Cluster, &[], Some(&first)).await;

    // The rejected content republished is sent to no one; the next version is.
    h.hub.publish(&gw, nack_state(3, "c1 bad"));
    h.hub.publish(&gw, nack_state(4, "c1 fixed"));
    p.expect((Cluster, names(&["c1 fixed"]))).await;
    q.expect((Cluster, names(&["c1 fixed"]))).await;
    assert_eq!(h.stats.nacks(), 1);
}

#[tokio::test]
async fn sotw_a_rejected_new_resource_is_left_out() {
    let h = start().await;
    let gw = key("ns/gw");
    h.hub.publish(&gw, state(1, &[(Cluster, "c1", "c1")]));
    let mut p = SotwProxy::connect(h.addr, Some(node_by_metadata("ns/gw"))).await;
    p.send(Cluster, &[], None).await;
    let cds = p.expect((Cluster, names(&["c1"]))).await;
    p.send(Cluster, &[], Some(&cds)).await;
    // c2 is new and rejected (Envoy's message names it): no proxy gets it; c1 stays.
    h.hub.publish(
        &gw,
        state(2, &[(Cluster, "c1", "c1"), (Cluster, "c2", "c2")]),
    );
    let both = p.expect((Cluster, names(&["c1", "c2"]))).await;
    let request = DiscoveryRequest {
        node: Some(node_by_metadata("ns/gw")),
        type_url: both.type_url.clone(),
        version_info: cds.version_info.clone(),
        response_nonce: both.nonce.clone(),
        error_detail: Some(rpc::Status {
            code: 3,
            message: "Error adding/updating cluster(s) c2: bad".into(),
            details: vec![],
        }),
        ..DiscoveryRequest::default()
    };
    p.tx.send(request).await.expect("request stream open");
    p.expect((Cluster, names(&["c1"]))).await;
    let mut q = SotwProxy::connect(h.addr, Some(node_by_metadata("ns/gw"))).await;
    q.send(Cluster, &[], None).await;
    q.expect((Cluster, names(&["c1"]))).await;
}

#[tokio::test]
async fn sotw_stale_nonces_are_ignored() {
    let h = start().await;
    let gw = key("ns/gw");
    h.hub.publish(&gw, nack_state(1, "c1"));
    let mut p = SotwProxy::connect(h.addr, Some(node_by_metadata("ns/gw"))).await;
    p.send(Cluster, &[], None).await;
    let cds = p.recv().await;
    p.send(Cluster, &[], Some(&cds)).await;
    p.send(Route, &["r1"], None).await;
    let rds = p.recv().await;
    p.send(Route, &["r1"], Some(&rds)).await;

    // A request answering an older nonce is ignored, even with new names, and a
    // NACK for a stale nonce is not counted.
    let stale = DiscoveryResponse {
        nonce: "not-the-latest".into(),
        ..rds.clone()
    };
    p.send(Route, &["r1", "r2"], Some(&stale)).await;
    let stale_cds = DiscoveryResponse {
        nonce: "not-the-latest".into(),
        ..cds.clone()
    };
    p.nack(&stale_cds, "").await;
    // A barrier on the same stream: the server handles a stream's requests in order,
    // so when the answer to this LDS request arrives, both were handled, and had
    // the stale request been served, its RDS response would have come first.
    p.send(Listener, &[], None).await;
    p.expect((Listener, vec![])).await;
    assert_eq!(h.stats.nacks(), 0);
}

#[tokio::test]
async fn sotw_reconnect_with_current_version_gets_nothing_new() {
    let h = start().await;
    h.hub
        .publish(&key("ns/gw"), state(1, &[(Cluster, "c1", "c1")]));
    let mut p = SotwProxy::connect(h.addr, Some(node_by_metadata("ns/gw"))).await;
    p.send(Cluster, &[], None).await;
    let cds = p.recv().await;
    drop(p);
    let mut again = SotwProxy::connect(h.addr, Some(node_by_metadata("ns/gw"))).await;
    let reconnect = DiscoveryResponse {
        nonce: String::new(),
        ..cds
    };
    again.send(Cluster, &[], Some(&reconnect)).await;
    // Nothing is resent: the next response is the next change.
    h.hub
        .publish(&key("ns/gw"), state(2, &[(Cluster, "c1", "c1 v2")]));
    again.expect((Cluster, names(&["c1 v2"]))).await;
}

/// On one update that adds a cluster, points a route at it and removes the old
/// cluster: the new cluster set (old one still in it) first, then the route, and
/// only then the set without the old cluster.
#[tokio::test]
async fn sotw_update_goes_out_in_warming_order() {
    let h = start().await;
    let gw = key("ns/gw");
    h.hub.publish(&gw, warming_state(1, "c1", "l", "r->c1"));
    let mut p = SotwProxy::connect(h.addr, Some(node_by_metadata("ns/gw"))).await;
    p.subscribe_each(&[
        (Cluster, &[]),
        (Endpoint, &["c1", "c2"]),
        (Listener, &[]),
        (Route, &["r"]),
    ])
    .await;

    h.hub.publish(&gw, warming_state(2, "c2", "l", "r->c2"));
    // The four responses come next, in this order (nothing before them).
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(p.recv().await);
    }
    let summaries: Vec<_> = got.iter().map(sotw_summary).collect();
    assert_eq!(
        summaries,
        [
            (Cluster, names(&["c1", "c2"])),
            (Endpoint, names(&["e2"])),
            (Route, names(&["r->c2"])),
            (Cluster, names(&["c2"])),
        ]
    );
    let acks = [
        (Cluster, vec![]),
        (Endpoint, vec!["c1", "c2"]),
        (Route, vec!["r"]),
        (Cluster, vec![]),
    ];
    for ((ty, names), r) in acks.iter().zip(&got) {
        p.send(*ty, names, Some(r)).await;
    }
    // Nothing else follows: the next response is the next change.
    h.hub.publish(&gw, warming_state(3, "c2", "l v2", "r->c2"));
    p.expect((Listener, names(&["l v2"]))).await;
}

#[tokio::test]
async fn sotw_named_lds_gets_the_api_listener_and_wildcard_lds_never_does() {
    let h = start().await;
    let gw = key("ns/gw");
    let resources = [(Listener, "ns/gw/80", "socket 80")];
    h.hub.publish(
        &gw,
        state_with_api(1, &resources, &[("echo.example.com", "api echo")]),
    );

    // Envoy: a wildcard gets the socket listener only.
    let mut envoy = SotwProxy::connect(h.addr, Some(node_by_metadata("ns/gw"))).await;
    envoy.send(Listener, &[], None).await;
    let lds = envoy.recv().await;
    assert_eq!(sotw_summary(&lds), (Listener, names(&["socket 80"])));
    envoy.send(Listener, &[], Some(&lds)).await;

    // gRPC: the hostname by name gets the API listener only.
    let mut grpc = SotwProxy::connect(h.addr, Some(node_by_cluster("ns/gw"))).await;
    grpc.send(Listener, &["echo.example.com"], None).await;
    let lds = grpc.recv().await;
    assert_eq!(sotw_summary(&lds), (Listener, names(&["api echo"])));
    grpc.send(Listener, &["echo.example.com"], Some(&lds)).await;

    // A new API listener reaches no one who did not name it; a change to the named
    // one reaches its client only; its removal is an LDS set without it.
    h.hub.publish(
        &gw,
        state_with_api(
            2,
            &resources,
            &[
                ("echo.example.com", "api echo v2"),
                ("new.example.com", "api new"),
            ],
        ),
    );
    let lds = grpc.recv().await;
    assert_eq!(sotw_summary(&lds), (Listener, names(&["api echo v2"])));
    grpc.send(Listener, &["echo.example.com"], Some(&lds)).await;
    h.hub.publish(&gw, state_with_api(3, &resources, &[]));
    assert_eq!(sotw_summary(&grpc.recv().await), (Listener, vec![]));

    // Envoy heard of none of it: its next response is the socket listener's change.
    let changed = [(Listener, "ns/gw/80", "socket 80 v2")];
    h.hub.publish(&gw, state_with_api(4, &changed, &[]));
    envoy.expect((Listener, names(&["socket 80 v2"]))).await;
}

// ---- incremental ----------------------------------------------------------------

#[tokio::test]
async fn delta_sends_changes_and_removals() {
    let h = start().await;
    let gw = key("ns/gw");
    h.hub.publish(
        &gw,
        state(
            1,
            &[
                (Cluster, "c1", "c1"),
                (Cluster, "c2", "c2"),
                (Listener, "l1", "l1"),
            ],
        ),
    );
    let mut p = DeltaProxy::connect(h.addr, node_by_metadata("ns/gw")).await;
    p.subscribe(Cluster, &[]).await;
    let cds = p.expect((Cluster, names(&["c1", "c2"]), vec![])).await;
    p.ack(&cds).await;
    p.subscribe(Listener, &["*"]).await;
    let lds = p.expect((Listener, names(&["l1"]), vec![])).await;
    p.ack(&lds).await;

    // c2 changes, c3 is new, l1 goes away: only those are sent, and they are the
    // next responses (nothing came for the ACKs).
    h.hub.publish(
        &gw,
        state(
            2,
            &[
                (Cluster, "c1", "c1"),
                (Cluster, "c2", "c2 v2"),
                (Cluster, "c3", "c3"),
            ],
        ),
    );
    p.expect((Cluster, names(&["c2", "c3"]), vec![])).await;
    p.expect((Listener, vec![], names(&["l1"]))).await;

    // c1 is deleted: it shows in removed_resources, as the next response.
    h.hub.publish(
        &gw,
        state(3, &[(Cluster, "c2", "c2 v2"), (Cluster, "c3", "c3")]),
    );
    p.expect((Cluster, vec![], names(&["c1"]))).await;
}

#[tokio::test]
async fn delta_reconnect_honours_initial_versions() {
    let h = start().await;
    let gw = key("ns/gw");
    h.hub.publish(
        &gw,
        state(1, &[(Cluster, "c1", "c1"), (Cluster, "c2", "c2")]),
    );
    let mut p = DeltaProxy::connect(h.addr, node_by_metadata("ns/gw")).await;
    p.subscribe(Cluster, &[]).await;
    let cds = p.expect((Cluster, names(&["c1", "c2"]), vec![])).await;
    let versions: HashMap<String, String> = cds
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    drop(p);
    h.hub.publish(
        &gw,
        state(2, &[(Cluster, "c2", "c2"), (Cluster, "c3", "c3")]),
    );

    // Reconnect knowing c2 (current), c3 (an old version) and c1 (gone).
    let mut again = DeltaProxy::connect(h.addr, node_by_metadata("ns/gw")).await;
    let initial = HashMap::from([
        ("c1".to_string(), versions["c1"].clone()),
        ("c2".to_string(), versions["c2"].clone()),
        ("c3".to_string(), "stale".to_string()),
    ]);
    again
        .send(DeltaDiscoveryRequest {
            type_url: Cluster.type_url().into(),
            initial_resource_versions: initial,
            ..DeltaDiscoveryRequest::default()
        })
        .await;
    again.expect((Cluster, names(&["c3"]), vec![])).await;
    again.expect((Cluster, vec![], names(&["c1"]))).await;
    // Nothing else (c2 is current): the next response is the next change.
    h.hub.publish(
        &gw,
        state(3, &[(Cluster, "c2", "c2"), (Cluster, "c3", "c3 v2")]),
    );
    again.expect((Cluster, names(&["c3"]), vec![])).await;
}

#[tokio::test]
async fn delta_by_name_subscribe_unsubscribe_and_missing_names() {
    let h = start().await;
    let gw = key("ns/gw");
    h.hub
        .publish(&gw, state(1, &[(Route, "r1", "r1"), (Route, "r2", "r2")]));
    let mut p = DeltaProxy::connect(h.addr, node_by_cluster("ns/gw")).await;
    p.subscribe(Route, &["r1", "nope"]).await;
    let rds = p.recv().await;
    assert_eq!(
        delta_summary(&rds),
        (Route, names(&["r1"]), names(&["nope"]))
    );
    p.ack(&rds).await;
    p.send(DeltaDiscoveryRequest {
        type_url: Route.type_url().into(),
        resource_names_subscribe: names(&["r2"]),
        resource_names_unsubscribe: names(&["r1"]),
        ..DeltaDiscoveryRequest::default()
    })
    .await;
    let rds = p.recv().await;
    assert_eq!(delta_summary(&rds), (Route, names(&["r2"]), vec![]));
    p.ack(&rds).await;
    // r1 is no longer wanted: its change is not sent; the next response is r2's.
    h.hub.publish(
        &gw,
        state(2, &[(Route, "r1", "r1 v2"), (Route, "r2", "r2")]),
    );
    h.hub.publish(
        &gw,
        state(3, &[(Route, "r1", "r1 v2"), (Route, "r2", "r2 v2")]),
    );
    p.expect((Route, names(&["r2"]), vec![])).await;
}

#[tokio::test]
async fn delta_nack_is_counted_and_the_last_accepted_version_served() {
    let h = start().await;
    let gw = key("ns/gw");
    h.hub.publish(&gw, state(1, &[(Cluster, "c1", "c1")]));
    let mut p = DeltaProxy::connect(h.addr, node_by_metadata("ns/gw")).await;
    p.subscribe(Cluster, &[]).await;
    let cds = p.expect((Cluster, names(&["c1"]), vec![])).await;
    p.ack(&cds).await;
    h.hub.publish(&gw, state(2, &[(Cluster, "c1", "c1 bad")]));
    let bad = p.expect((Cluster, names(&["c1"]), vec![])).await;
    assert_eq!(delta_bodies(&bad), ["c1 bad"]);
    p.send(DeltaDiscoveryRequest {
        type_url: bad.type_url.clone(),
        response_nonce: bad.nonce.clone(),
        error_detail: Some(rpc::Status {
            code: 3,
            message: "bad cluster c1".into(),
            details: vec![],
        }),
        ..DeltaDiscoveryRequest::default()
    })
    .await;
    eventually("the NACK is counted", || h.stats.nacks() == 1).await;
    // Back to the accepted version, for this proxy and for one connecting now.
    let back = p.expect((Cluster, names(&["c1"]), vec![])).await;
    assert_eq!(delta_bodies(&back), ["c1"]);
    p.ack(&back).await;
    let mut q = DeltaProxy::connect(h.addr, node_by_metadata("ns/gw")).await;
    q.subscribe(Cluster, &[]).await;
    let first = q.expect((Cluster, names(&["c1"]), vec![])).await;
    assert_eq!(delta_bodies(&first), ["c1"]);
    q.ack(&first).await;
    // The rejected content republished is not resent: the next response is c2's.
    h.hub.publish(&gw, state(3, &[(Cluster, "c1", "c1 bad")]));
    h.hub.publish(
        &gw,
        state(4, &[(Cluster, "c1", "c1 bad"), (Cluster, "c2", "c2")]),
    );
    p.expect((Cluster, names(&["c2"]), vec![])).await;
    q.expect((Cluster, names(&["c2"]), vec![])).await;
    assert_eq!(h.stats.nacks(), 1);
}

#[tokio::test]
async fn delta_update_goes_out_in_warming_order() {
    let h = start().await;
    let gw = key("ns/gw");
    h.hub.publish(
        &gw,
        state(
            1,
            &[
                (Cluster, "c1", "c1"),
                (Endpoint, "c1", "e1"),
                (Route, "r", "r->c1"),
            ],
        ),
    );
    let mut p = DeltaProxy::connect(h.addr, node_by_metadata("ns/gw")).await;
    p.subscribe_each(&[(Cluster, &[]), (Endpoint, &["c1", "c2"]), (Route, &["r"])])
        .await;
    h.hub.publish(
        &gw,
        state(
            2,
            &[
                (Cluster, "c2", "c2"),
                (Endpoint, "c2", "e2"),
                (Route, "r", "r->c2"),
            ],
        ),
    );
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(delta_summary(&p.recv().await));
    }
    assert_eq!(
        got,
        [
            (Cluster, names(&["c2"]), vec![]),
            (Endpoint, names(&["c2"]), vec![]),
            (Route, names(&["r"]), vec![]),
            (Cluster, vec![], names(&["c1"])),
            (Endpoint, vec![], names(&["c1"])),
        ]
    );
    // Nothing else follows: the next response is the next change.
    h.hub.publish(
        &gw,
        state(
            3,
            &[
                (Cluster, "c2", "c2"),
                (Endpoint, "c2", "e2"),
                (Route, "r", "r->c2 v2"),
            ],
        ),
    );
    p.expect((Route, names(&["r"]), vec![])).await;
}

#[tokio::test]
async fn delta_named_lds_gets_the_api_listener_and_wildcard_lds_never_does() {
    let h = start().await;
    let gw = key("ns/gw");
    let resources = [(Listener, "ns/gw/80", "socket 80")];
    h.hub.publish(
        &gw,
        state_with_api(1, &resources, &[("echo.example.com", "api echo")]),
    );

    let mut envoy = DeltaProxy::connect(h.addr, node_by_metadata("ns/gw")).await;
    envoy.subscribe(Listener, &[]).await;
    let lds = envoy.recv().await;
    assert_eq!(
        delta_summary(&lds),
        (Listener, names(&["ns/gw/80"]), vec![])
    );
    envoy.ack(&lds).await;

    let mut named = DeltaProxy::connect(h.addr, node_by_metadata("ns/gw")).await;
    named
        .subscribe(Listener, &["echo.example.com", "ns/gw/80", "nope"])
        .await;
    let lds = named.recv().await;
    assert_eq!(
        delta_summary(&lds),
        (
            Listener,
            names(&["echo.example.com", "ns/gw/80"]),
            names(&["nope"])
        )
    );
    named.ack(&lds).await;

    // The API listener goes away: only the client that named it hears of it. The
    // wildcard proxy's next response is the socket listener's change.
    h.hub.publish(&gw, state_with_api(2, &resources, &[]));
    assert_eq!(
        delta_summary(&named.recv().await),
        (Listener, vec![], names(&["echo.example.com"]))
    );
    let changed = [(Listener, "ns/gw/80", "socket 80 v2")];
    h.hub.publish(&gw, state_with_api(3, &changed, &[]));
    envoy.expect((Listener, names(&["ns/gw/80"]), vec![])).await;
}

/// A wildcard proxy reconnecting with an API listener among its versions is told it
/// is gone rather than kept on it.
#[tokio::test]
async fn delta_wildcard_reconnect_is_told_an_api_listener_is_gone() {
    let h = start().await;
    let gw = key("ns/gw");
    let resources = [(Listener, "ns/gw/80", "socket 80")];
    h.hub.publish(
        &gw,
        state_with_api(3, &resources, &[("echo.example.com", "api echo")]),
    );
    let mut again = DeltaProxy::connect(h.addr, node_by_metadata("ns/gw")).await;
    again
        .send(DeltaDiscoveryRequest {
            type_url: Listener.type_url().into(),
            initial_resource_versions: HashMap::from([(
                "echo.example.com".to_string(),
                "old".to_string(),
            )]),
            ..DeltaDiscoveryRequest::default()
        })
        .await;
    assert_eq!(
        delta_summary(&again.recv().await),
        (Listener, names(&["ns/gw/80"]), names(&["echo.example.com"]))
    );
}

// ---- many gateways, bad clients -------------------------------------------------

#[tokio::test]
async fn proxies_of_different_gateways_see_only_their_own() {
    let h = start().await;
    h.hub
        .publish(&key("a/gw"), state(1, &[(Cluster, "ca", "ca")]));
    h.hub
        .publish(&key("b/gw"), state(1, &[(Cluster, "cb", "cb")]));
    let mut a = SotwProxy::connect(h.addr, Some(node_by_metadata("a/gw"))).await;
    let mut b = DeltaProxy::connect(h.addr, node_by_cluster("b/gw")).await;
    a.send(Cluster, &[], None).await;
    b.subscribe(Cluster, &[]).await;
    let cds_a = a.recv().await;
    assert_eq!(sotw_summary(&cds_a), (Cluster, names(&["ca"])));
    let cds_b = b.recv().await;
    assert_eq!(delta_summary(&cds_b), (Cluster, names(&["cb"]), vec![]));
    a.send(Cluster, &[], Some(&cds_a)).await;
    b.ack(&cds_b).await;

    h.hub
        .publish(&key("a/gw"), state(2, &[(Cluster, "ca", "ca v2")]));
    assert_eq!(sotw_summary(&a.recv().await), (Cluster, names(&["ca v2"])));
    // b heard nothing of a's change: its next response is its own change.
    h.hub
        .publish(&key("b/gw"), state(2, &[(Cluster, "cb", "cb v2")]));
    b.expect((Cluster, names(&["cb"]), vec![])).await;
}

#[tokio::test]
async fn unusable_node_is_invalid_argument() {
    let h = start().await;
    let mut p = SotwProxy::connect(h.addr, None).await;
    p.send(Cluster, &[], None).await;
    let status = p.recv_err().await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("no node"), "{}", status.message());

    let mut p = SotwProxy::connect(h.addr, Some(node_by_cluster("not-a-gateway"))).await;
    p.send(Cluster, &[], None).await;
    let status = p.recv_err().await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains(GATEWAY_METADATA_KEY),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn garbage_requests_are_ignored_or_rejected_without_harm() {
    let h = start().await;
    h.hub
        .publish(&key("ns/gw"), state(1, &[(Cluster, "c1", "c1")]));
    let mut p = SotwProxy::connect(h.addr, Some(node_by_metadata("ns/gw"))).await;
    let unknown = DiscoveryRequest {
        node: p.node.clone(),
        type_url: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret".into(),
        resource_names: names(&["x"]),
        response_nonce: "garbage".into(),
        ..DiscoveryRequest::default()
    };
    p.tx.send(unknown).await.expect("send");
    // Ignored: the next response answers the CDS request that follows.
    p.send(Cluster, &[], None).await;
    p.expect((Cluster, names(&["c1"]))).await;
    p.tx.send(DiscoveryRequest {
        node: p.node.clone(),
        ..DiscoveryRequest::default()
    })
    .await
    .expect("send");
    assert_eq!(p.recv_err().await.code(), Code::InvalidArgument);

    // The server still serves others.
    let mut q = SotwProxy::connect(h.addr, Some(node_by_metadata("ns/gw"))).await;
    q.send(Cluster, &[], None).await;
    assert_eq!(sotw_summary(&q.recv().await), (Cluster, names(&["c1"])));
}
