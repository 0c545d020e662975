//! An in-process stand-in for upstream's `echo-basic` backend: it answers every request
//! with a JSON description of the request it saw, as the conformance README's echo
//! contract says, and keeps the "Echoing back request made to ..." log in memory so
//! mirror checks can read it. A backend listens once per Service port that selects it
//! (as a pod's distinct target ports would), and counts the requests each listener
//! gets, so a request sent to the wrong Service port shows (see `crate::wrong_ports`).
//! A listener for echo-basic's TLS port serves HTTPS and echoes the handshake.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::websocket;

/// What a backend pod knows about itself.
#[derive(Debug, Clone)]
pub struct Identity {
    pub namespace: String,
    pub pod: String,
}

impl Identity {
    pub fn new(namespace: &str, deployment: &str) -> Self {
        Identity {
            namespace: namespace.to_string(),
            pod: pod_name(deployment),
        }
    }
}

/// `<deployment>-<hash>-<hash>`, stable for a given deployment name.
fn pod_name(deployment: &str) -> String {
    let hash = deployment.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|i| ALPHABET[((hash >> (i * 6)) % ALPHABET.len() as u64) as usize] as char)
        .collect();
    format!("{deployment}-{:010x}-{suffix}", hash >> 24)
}

/// A Service port (namespace, Service name, `spec.ports[].port`) an echo listener
/// stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServicePort {
    pub namespace: String,
    pub service: String,
    pub port: u16,
}

impl std::fmt::Display for ServicePort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Service {}/{} port {}",
            self.namespace, self.service, self.port
        )
    }
}

/// One echo backend (a Deployment's pods) and its listeners, one per Service port.
#[derive(Debug)]
pub struct EchoServer {
    shared: Arc<Shared>,
    listeners: BTreeMap<ServicePort, Listener>,
}

/// A listening socket; aborts its task when dropped.
#[derive(Debug)]
struct Listener {
    port: u16,
    hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoServer {
    pub fn new(identity: Identity) -> Self {
        let shared = Arc::new(Shared {
            identity,
            log: Arc::new(Mutex::new(Vec::new())),
        });
        EchoServer {
            shared,
            listeners: BTreeMap::new(),
        }
    }

    /// The 127.0.0.1 port that stands for `service_port`: bound on first use, serving
    /// HTTP/1.1 and prior-knowledge h2c.
    pub async fn listen(&mut self, service_port: ServicePort) -> anyhow::Result<u16> {
        self.listen_with(service_port, None).await
    }

    /// As [`listen`](Self::listen), serving HTTPS with `identity` (a PEM certificate
    /// chain and key) as echo-basic does on its TLS port when `TLS_SERVER_CERT` and
    /// `TLS_SERVER_PRIVKEY` are set: the echo then says what the handshake was
    /// (`tls.serverName` is the SNI the client sent).
    pub async fn listen_tls(
        &mut self,
        service_port: ServicePort,
        (chain, key): (&[u8], &[u8]),
    ) -> anyhow::Result<u16> {
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(chain).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        self.listen_with(service_port, Some(acceptor)).await
    }

    async fn listen_with(
        &mut self,
        service_port: ServicePort,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> anyhow::Result<u16> {
        if let Some(listener) = self.listeners.get(&service_port) {
            return Ok(listener.port);
        }
        let socket = TcpListener::bind("127.0.0.1:0").await?;
        let port = socket.local_addr()?.port();
        let hits = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(accept_loop(socket, self.shared.clone(), hits.clone(), tls));
        self.listeners
            .insert(service_port, Listener { port, hits, task });
        Ok(port)
    }

    /// The port of the listener for `service_port`, if there is one.
    pub fn port(&self, service_port: &ServicePort) -> Option<u16> {
        self.listeners.get(service_port).map(|l| l.port)
    }

    /// Requests each listener has received so far.
    pub fn hits(&self) -> Vec<(ServicePort, usize)> {
        self.listeners
            .iter()
            .map(|(k, l)| (k.clone(), l.hits.load(Ordering::Relaxed)))
            .collect()
    }

    /// The log lines so far, as upstream's echo server writes them.
    pub fn log(&self) -> Vec<String> {
        self.shared
            .log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }
}

#[derive(Debug)]
struct Shared {
    identity: Identity,
    log: Arc<Mutex<Vec<String>>>,
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    hits: Arc<AtomicUsize>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, remote)) = listener.accept().await else {
            continue;
        };
        let (shared, hits, tls) = (shared.clone(), hits.clone(), tls.clone());
        connections.spawn(async move {
            let Some(acceptor) = tls else {
                serve(TokioIo::new(stream), shared, hits, remote, None).await;
                return;
            };
            // A failed handshake is the client's business (a Gateway that does not
            // trust this certificate aborts it).
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            let (_, session) = stream.get_ref();
            let handshake = json!({
                "version": match session.protocol_version() {
                    Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                    Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                    _ => "",
                },
                "serverName": session.server_name().unwrap_or_default(),
                "negotiatedProtocol": session
                    .alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .unwrap_or_default(),
                "cipherSuite": session
                    .negotiated_cipher_suite()
                    .map(|c| format!("{:?}", c.suite()))
                    .unwrap_or_default(),
            });
            serve(TokioIo::new(stream), shared, hits, remote, Some(handshake)).await;
        });
        while connections.try_join_next().is_some() {}
    }
}

/// Serves one connection (HTTP/1.1 or h2); `handshake` is its TLS, if any.
async fn serve<IO>(
    io: TokioIo<IO>,
    shared: Arc<Shared>,
    hits: Arc<AtomicUsize>,
    remote: SocketAddr,
    handshake: Option<serde_json::Value>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let handshake = Arc::new(handshake);
    let service = hyper::service::service_fn(move |req| {
        hits.fetch_add(1, Ordering::Relaxed);
        let (shared, handshake) = (shared.clone(), handshake.clone());
        async move { Ok::<_, Infallible>(handle(&shared, remote, req, handshake.as_ref()).await) }
    });
    // A connection error is the client's business (Envoy resets idle ones).
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(io, service)
        .await;
}

async fn handle(
    shared: &Shared,
    remote: SocketAddr,
    mut req: Request<Incoming>,
    handshake: &Option<serde_json::Value>,
) -> Response<Full<Bytes>> {
    let uri = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    if let Ok(mut log) = shared.log.lock() {
        log.push(format!(
            "Echoing back request made to {uri} to client ({remote})"
        ));
    }
    if let Some(code) = req.uri().path().strip_prefix("/status/") {
        let status = code.parse().ok().and_then(|c| StatusCode::from_u16(c).ok());
        return plain(status.unwrap_or(StatusCode::BAD_REQUEST), "");
    }
    if req.uri().path() == "/health" {
        return plain(StatusCode::OK, "OK");
    }
    if req.uri().path() == "/ws" {
        return websocket_upgrade(&mut req);
    }
    if let Some(delay) = query_param(req.uri().query(), "delay").and_then(|d| parse_duration(&d)) {
        tokio::time::sleep(delay).await;
    }
    let mut body = echo_body(&shared.identity, &uri, &req);
    if let Some(tls) = handshake {
        body["tls"] = tls.clone();
    }
    let set_headers = set_header_pairs(&req);
    // Drain the request body so h2 streams end cleanly.
    let _ = req.into_body().collect().await;
    let mut response = plain(StatusCode::OK, &body.to_string());
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    for (name, value) in set_headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.append(n, v);
        }
    }
    response
}

/// `/ws`: upgrades to a WebSocket that echoes every message (upstream's echo-basic
/// serves the same on that path).
fn websocket_upgrade(req: &mut Request<Incoming>) -> Response<Full<Bytes>> {
    let wants_websocket = req
        .headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = req
        .headers()
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (true, Some(key)) = (wants_websocket, key) else {
        return plain(StatusCode::BAD_REQUEST, "not a WebSocket handshake");
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            websocket::serve_echo(TokioIo::new(upgraded)).await;
        }
    });
    let mut response = plain(StatusCode::SWITCHING_PROTOCOLS, "");
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::UPGRADE,
        HeaderValue::from_static("websocket"),
    );
    headers.insert(
        hyper::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    if let Ok(accept) = HeaderValue::try_from(websocket::accept_key(&key)) {
        headers.insert("sec-websocket-accept", accept);
    }
    response
}

fn plain(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
}

fn echo_body(id: &Identity, uri: &str, req: &Request<Incoming>) -> serde_json::Value {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers() {
        if name == hyper::header::HOST {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(canonical_header(name.as_str()))
            .or_default()
            .push(value);
    }
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()))
        .unwrap_or_default();
    let proto = match req.version() {
        hyper::Version::HTTP_2 => "HTTP/2.0",
        hyper::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    json!({
        "path": uri,
        "host": host,
        "method": req.method().as_str(),
        "proto": proto,
        "headers": headers,
        "httpPort": "3000",
        "namespace": id.namespace,
        "ingress": "",
        "service": "",
        "pod": id.pod,
    })
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `x-foo-bar` → `X-Foo-Bar`.
pub fn canonical_header(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// `X-Echo-Set-Header: a:b,c:d` → [(a, b), (c, d)].
fn set_header_pairs(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.headers()
        .get_all("x-echo-set-header")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|kv| {
            let (k, v) = kv.trim().split_once(':')?;
            (!k.is_empty()).then(|| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

/// A Go duration such as `1s`, `500ms`, `1.5s`, `2m`.
fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds.min(120.0)))
}
