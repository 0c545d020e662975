//! The xDS port defends itself (issue 8, finding 5): a connection that never speaks
//! is closed after the idle time, a live proxy that is merely quiet is not (it
//! answers the keepalive pings), and connections past the limit are closed at once.
//! Real sockets on loopback against the real tonic server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use sluice_pipeline::model::ObjectKey;
use sluice_sinks::ads::{AdsServer, GATEWAY_METADATA_KEY, Limits};
use sluice_sinks::state::{GatewayResources, Resource, ResourceType, XdsHub};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use tokio_stream::wrappers::ReceiverStream;

async fn start(limits: Limits) -> (Arc<XdsHub>, SocketAddr, oneshot::Sender<()>) {
    let hub = XdsHub::new();
    let server = AdsServer::new(hub.clone()).with_limits(limits);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(server.serve_on(listener, async {
        let _ = rx.await;
    }));
    (hub, addr, tx)
}

/// Reads until the server closes the connection; how long that took (`None`: still
/// open after `within`).
async fn closed_after(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.checked_sub(started.elapsed())?;
        match timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            // The server's own HTTP/2 settings: not a close.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_connection_that_never_speaks_is_closed_after_the_idle_time() {
    let limits = Limits {
        max_connections: 100,
        idle: Duration::from_secs(1),
    };
    let (_hub, addr, _stop) = start(limits).await;
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let closed = closed_after(&mut silent, Duration::from_secs(10)).await;
    let closed = closed.expect("closed within 10 s");
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(5),
        "closed after {closed:?}, the idle time is 1 s"
    );
}

fn node(gateway: &str) -> Node {
    let value = Value {
        kind: Some(Kind::StringValue(gateway.into())),
    };
    Node {
        id: "proxy".into(),
        metadata: Some(Struct {
            fields: [(GATEWAY_METADATA_KEY.to_owned(), value)].into(),
        }),
        ..Node::default()
    }
}

fn cluster_state(time: u64, names: &[&str]) -> Arc<GatewayResources> {
    let mut s = GatewayResources {
        time,
        ..GatewayResources::default()
    };
    for name in names {
        let r = Resource::new(name.to_string(), name.as_bytes().to_vec().into());
        s.by_type[ResourceType::Cluster.index()].insert(name.to_string(), Arc::new(r));
    }
    Arc::new(s)
}

#[tokio::test]
async fn a_quiet_live_proxy_outlives_the_idle_time() {
    let limits = Limits {
        max_connections: 100,
        idle: Duration::from_secs(1),
    };
    let (hub, addr, _stop) = start(limits).await;
    let gateway = ObjectKey::new("ns", "gw");
    hub.publish(&gateway, cluster_state(1, &["c1"]));
    let (tx, rx) = mpsc::channel(4);
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let request = |ack: Option<
        &envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse,
    >| DiscoveryRequest {
        node: Some(node("ns/gw")),
        type_url: ResourceType::Cluster.type_url().into(),
        version_info: ack.map(|r| r.version_info.clone()).unwrap_or_default(),
        response_nonce: ack.map(|r| r.nonce.clone()).unwrap_or_default(),
        ..DiscoveryRequest::default()
    };
    tx.send(request(None)).await.expect("send");
    let first = timeout(Duration::from_secs(5), responses.message())
        .await
        .expect("in time")
        .expect("no error")
        .expect("open");
    assert_eq!(first.resources.len(), 1);
    tx.send(request(Some(&first))).await.expect("ack");
    // Three idle times with nothing to say on the stream.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    hub.publish(&gateway, cluster_state(2, &["c1", "c2"]));
    let second = timeout(Duration::from_secs(5), responses.message())
        .await
        .expect("in time")
        .expect("the stream survived the quiet")
        .expect("open");
    assert_eq!(second.resources.len(), 2);
}

#[tokio::test]
async fn connections_past_the_limit_are_closed_at_once() {
    let limits = Limits {
        max_connections: 2,
        idle: Duration::from_secs(30),
    };
    let (_hub, addr, _stop) = start(limits).await;
    let mut first = TcpStream::connect(addr).await.expect("connect");
    let mut second = TcpStream::connect(addr).await.expect("connect");
    // Both are held: the server sent its settings and nothing closed them.
    for held in [&mut first, &mut second] {
        assert_eq!(closed_after(held, Duration::from_millis(300)).await, None);
    }
    let mut third = TcpStream::connect(addr).await.expect("connect");
    let closed = closed_after(&mut third, Duration::from_secs(5)).await;
    assert!(
        closed.is_some_and(|c| c < Duration::from_secs(1)),
        "the third connection is closed at once: {closed:?}"
    );
    // A slot freed is a slot to use again.
    drop(first);
    let started = Instant::now();
    loop {
        let mut again = TcpStream::connect(addr).await.expect("connect");
        if closed_after(&mut again, Duration::from_millis(300))
            .await
            .is_none()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the slot was never freed"
        );
    }
}
