//! Sends a case's requests through Envoy and compares what comes back, as upstream's
//! `CompareRoundTrip` (conformance/utils/http/http.go) does: HTTP/1.1 or prior-knowledge
//! h2c, the Host header set by hand, redirects never followed, and each request
//! retried until it passes several times in a row.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Empty};
use hyper::HeaderMap;
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpStream;

use crate::cases::{ExpectedRequest, NON_200, RequestCase, TLS_REQUEST_ERROR};
use crate::echo::EchoServer;

const CONSECUTIVE_SUCCESSES: usize = 3;
const REQUEST_DEADLINE: Duration = Duration::from_secs(15);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const MIRROR_DEADLINE: Duration = Duration::from_secs(5);

/// Where a request goes: the real socket, and the address the client believes it
/// talks to (the Gateway's address and the listener's spec port).
#[derive(Debug, Clone)]
pub struct Target {
    pub socket: SocketAddr,
    pub spec_port: u16,
}

impl Target {
    /// Go's `CalculateHost`: the default port is left out of the URL host.
    pub fn url_host(&self, scheme: &str) -> String {
        let ip = self.socket.ip();
        match (scheme, self.spec_port) {
            ("http", 80) | ("https", 443) => ip.to_string(),
            _ => format!("{ip}:{}", self.spec_port),
        }
    }
}

/// A response as the checks see it.
#[derive(Debug)]
pub struct Captured {
    pub status: u16,
    pub headers: HeaderMap,
    /// The echo JSON, if the reply was `application/json`.
    pub echo: Value,
}

/// One attempt's request line, headers and protocol.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub headers: Vec<(String, String)>,
    pub h2c: bool,
    /// HTTPS (the generated certificates are the trust anchors).
    pub tls: Option<TlsClient>,
}

/// The client side of an HTTPS request.
#[derive(Debug)]
pub struct TlsClient {
    /// The SNI to send.
    pub sni: String,
    /// Ask for HTTP/2 by ALPN.
    pub h2: bool,
    /// The generated Secret whose certificate and key the client presents.
    pub identity: Option<crate::cases::ClientCertificate>,
}

pub async fn send(socket: SocketAddr, out: &Outgoing<'_>) -> anyhow::Result<Captured> {
    let (status, headers, body) = round_trip(socket, out).await?;
    let json = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes() == b"application/json");
    let echo = if json {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    Ok(Captured {
        status,
        headers,
        echo,
    })
}

/// The response body as text, whatever the status (for Envoy's admin interface).
pub async fn send_raw(socket: SocketAddr, out: &Outgoing<'_>) -> anyhow::Result<String> {
    let (_, _, body) = round_trip(socket, out).await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

async fn round_trip(
    socket: SocketAddr,
    out: &Outgoing<'_>,
) -> anyhow::Result<(u16, HeaderMap, Bytes)> {
    tokio::time::timeout(ATTEMPT_TIMEOUT, round_trip_inner(socket, out))
        .await
        .map_err(|_| anyhow::anyhow!("no response within {ATTEMPT_TIMEOUT:?}"))?
}

async fn round_trip_inner(
    socket: SocketAddr,
    out: &Outgoing<'_>,
) -> anyhow::Result<(u16, HeaderMap, Bytes)> {
    let tcp = TcpStream::connect(socket).await?;
    if let Some(tls) = &out.tls {
        let material = crate::tls::material().map_err(anyhow::Error::msg)?;
        let config = material.client(tls.h2, tls.identity.as_ref())?;
        let name = rustls_pki_types::ServerName::try_from(tls.sni.clone())?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| anyhow::anyhow!("TLS handshake (SNI {}): {e}", tls.sni))?;
        return exchange(TokioIo::new(stream), out, tls.h2).await;
    }
    exchange(TokioIo::new(tcp), out, out.h2c).await
}

/// One request and its response over `io`, HTTP/1.1 or HTTP/2.
async fn exchange<IO>(
    io: TokioIo<IO>,
    out: &Outgoing<'_>,
    h2: bool,
) -> anyhow::Result<(u16, HeaderMap, Bytes)>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let scheme = if out.tls.is_some() { "https" } else { "http" };
    let mut builder = hyper::Request::builder().method(out.method);
    builder = if h2 {
        builder.uri(format!("{scheme}://{}{}", out.host, out.path))
    } else {
        builder.uri(out.path).header("host", out.host)
    };
    for (name, value) in &out.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request = builder.body(Empty::<Bytes>::new())?;
    let response = if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        sender.send_request(request).await?
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        sender.send_request(request).await?
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, headers, body))
}

/// 64 random bits (std's randomly keyed hasher over the clock; not for cryptography).
pub fn random_u64() -> u64 {
    use std::hash::BuildHasher as _;
    std::collections::hash_map::RandomState::new().hash_one(Instant::now())
}

/// A fresh random UUID (v4 layout).
pub fn uuid() -> String {
    let (a, b) = (random_u64(), random_u64());
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

pub fn with_query(path: &str, key: &str, value: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{key}={value}")
}

/// Looks up an echo server by (namespace, Deployment or Service name).
pub type BackendLookup<'a> = dyn Fn(&str, &str) -> Option<&'a EchoServer> + 'a;

/// Drives one request entry until it passes `CONSECUTIVE_SUCCESSES` times in a row.
pub async fn run(
    rc: &RequestCase,
    target: &Target,
    backends: &BackendLookup<'_>,
) -> Result<(), String> {
    let scheme_ok = rc.scheme == "http" || rc.scheme == "https";
    let must_fail = rc.expect_failure.as_deref() == Some(TLS_REQUEST_ERROR);
    let expectation_ok = match rc.expect_failure.as_deref() {
        None | Some(NON_200) => true,
        Some(TLS_REQUEST_ERROR) => rc.scheme == "https",
        Some(_) => false,
    };
    if !scheme_ok || !expectation_ok {
        return Err(format!(
            "request {:?}: unsupported scheme or expectation",
            rc.name
        ));
    }
    if must_fail {
        return run_failing(rc, target).await;
    }
    let non_200 = rc.expect_failure.as_deref() == Some(NON_200);
    let start = Instant::now();
    let mut streak = 0;
    let mut last_error = String::from("no attempt made");
    while start.elapsed() < REQUEST_DEADLINE {
        match attempt(rc, target, &[]).await {
            Ok(Sent { path, .. }) => {
                streak += 1;
                if streak >= CONSECUTIVE_SUCCESSES {
                    return check_mirrors(rc, &path, backends)
                        .await
                        .map_err(|e| format!("request {:?}: {e}", rc.name));
                }
            }
            // Upstream's MakeRequestAndExpectFailure stops at the first 200.
            Err(Failure::Mismatch(e)) if non_200 && e == GOT_200 => {
                return Err(format!(
                    "request {:?}: expected it to fail, it got a 200",
                    rc.name
                ));
            }
            Err(e) => {
                streak = 0;
                last_error = e.to_string();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Err(format!("request {:?}: {last_error}", rc.name))
}

/// Upstream's `WaitForConsistentFailureResponse`: passes once the round trip fails
/// (handshake refused, connection reset, no response) `CONSECUTIVE_SUCCESSES` times
/// in a row; any response, whatever its status, breaks the streak.
async fn run_failing(rc: &RequestCase, target: &Target) -> Result<(), String> {
    let start = Instant::now();
    let mut streak = 0;
    let mut last = String::from("no attempt made");
    while start.elapsed() < REQUEST_DEADLINE {
        match attempt(rc, target, &[]).await {
            Err(Failure::RoundTrip(_)) => {
                streak += 1;
                if streak >= CONSECUTIVE_SUCCESSES {
                    return Ok(());
                }
            }
            Ok(Sent { response, .. }) => {
                streak = 0;
                last = format!("the request succeeded with status {}", response.status);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(Failure::Mismatch(e)) => {
                streak = 0;
                last = format!("the request got a response ({e})");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Err(format!(
        "request {:?}: expected the TLS request to fail; {last}",
        rc.name
    ))
}

/// Why one attempt failed: the round trip itself (worth retrying in a statistical
/// check), or the comparison of what came back (never retried there).
#[derive(Debug)]
pub enum Failure {
    /// No response: connection refused or reset, or no answer within the timeout.
    RoundTrip(String),
    /// A response that does not match the expectation.
    Mismatch(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::RoundTrip(e) => write!(f, "round trip failed: {e}"),
            Failure::Mismatch(e) => f.write_str(e),
        }
    }
}

/// [`attempt`], repeated only while the round trip itself fails (until
/// `REQUEST_DEADLINE`); a response that fails its comparison is an error at once.
/// Also returns how many round trips were sent.
pub async fn attempt_until_connected(
    rc: &RequestCase,
    target: &Target,
    extra: &[(String, String)],
) -> Result<(Sent, usize), String> {
    let start = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt(rc, target, extra).await {
            Ok(sent) => return Ok((sent, tries)),
            Err(Failure::RoundTrip(_)) if start.elapsed() < REQUEST_DEADLINE => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(format!("request {:?} (try {tries}): {e}", rc.name)),
        }
    }
}

/// A request that passed its comparison.
#[derive(Debug)]
pub struct Sent {
    /// The path sent, request id and `{{uuid}}` filled in.
    pub path: String,
    pub response: Captured,
}

/// One round trip and its comparison, with `extra` request headers.
pub async fn attempt(
    rc: &RequestCase,
    target: &Target,
    extra: &[(String, String)],
) -> Result<Sent, Failure> {
    let request_id = rc
        .request_id_query_param
        .as_ref()
        .map(|k| (k.clone(), uuid()));
    let fresh = uuid();
    let mut path = rc.request.path.replace("{{uuid}}", &fresh);
    if let Some((k, v)) = &request_id {
        path = with_query(&path, k, v);
    }
    let url_host = target.url_host(&rc.scheme);
    let host = if rc.request.host.is_empty() {
        url_host.as_str()
    } else {
        rc.request.host.as_str()
    };
    let set_header: Vec<String> = rc
        .backend_set_response_headers
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect();
    let mut headers: Vec<(String, String)> = rc.request.headers.clone().into_iter().collect();
    headers.push(("X-Echo-Set-Header".into(), set_header.join(",")));
    headers.extend(extra.iter().cloned());
    let method = if rc.request.method.is_empty() {
        "GET"
    } else {
        rc.request.method.as_str()
    };
    let out = Outgoing {
        method,
        host,
        path: &path,
        headers,
        h2c: rc.request.protocol.as_deref() == Some("H2C_PRIOR_KNOWLEDGE"),
        tls: (rc.scheme == "https").then(|| TlsClient {
            sni: rc.server_name.clone().unwrap_or_else(|| host.to_owned()),
            h2: rc.request.protocol.as_deref() == Some("H2"),
            identity: rc.client_certificate.clone(),
        }),
    };
    let captured = send(target.socket, &out)
        .await
        .map_err(|e| Failure::RoundTrip(format!("{e:#}")))?;
    let expected_path = {
        let base = rc
            .expected_request
            .as_ref()
            .map_or(rc.request.path.as_str(), |e| e.path.as_str());
        let base = base.replace("{{uuid}}", &fresh);
        match &request_id {
            Some((k, v)) => with_query(&base, k, v),
            None => base,
        }
    };
    compare(rc, &captured, &expected_path).map_err(Failure::Mismatch)?;
    Ok(Sent {
        path,
        response: captured,
    })
}

/// The mismatch of a 200 where `non_200` was expected.
const GOT_200: &str = "expected any status but 200, got 200";

fn compare(rc: &RequestCase, got: &Captured, expected_path: &str) -> Result<(), String> {
    if rc.expect_failure.as_deref() == Some(NON_200) {
        return match got.status {
            200 => Err(GOT_200.into()),
            408 | 504 => Err(format!("a timeout ({}) is a failed attempt", got.status)),
            _ => Ok(()),
        };
    }
    let codes: &[u16] = if rc.response.status_codes.is_empty() {
        &[200]
    } else {
        &rc.response.status_codes
    };
    let timeout = |c: u16| c == 408 || c == 504;
    if timeout(got.status) && codes.iter().any(|&c| timeout(c)) {
        return Ok(());
    }
    if !codes.contains(&got.status) {
        return Err(format!(
            "expected status one of {codes:?}, got {} (echo: {})",
            got.status, got.echo
        ));
    }
    match got.status {
        200 | 204 => compare_echo(rc, got, expected_path),
        300..=399 => compare_redirect(rc, got),
        _ => Ok(()),
    }
}

fn echo_str<'a>(echo: &'a Value, key: &str) -> &'a str {
    echo[key].as_str().unwrap_or_default()
}

fn compare_echo(rc: &RequestCase, got: &Captured, expected_path: &str) -> Result<(), String> {
    let fallback = ExpectedRequest {
        host: rc.request.host.clone(),
        method: rc.request.method.clone(),
        path: rc.request.path.clone(),
        headers: (!rc.request.headers.is_empty()).then(|| rc.request.headers.clone()),
        absent_headers: Vec::new(),
        sni: rc.request.sni.clone(),
    };
    let expected = rc.expected_request.as_ref().unwrap_or(&fallback);
    let echo = &got.echo;
    let method = if expected.method.is_empty() {
        "GET"
    } else {
        expected.method.as_str()
    };
    if !expected.host.is_empty() && expected.host != echo_str(echo, "host") {
        return Err(format!(
            "expected host {:?}, got {:?}",
            expected.host,
            echo_str(echo, "host")
        ));
    }
    if expected_path != echo_str(echo, "path") {
        return Err(format!(
            "expected path {expected_path:?}, got {:?}",
            echo_str(echo, "path")
        ));
    }
    if method != echo_str(echo, "method") {
        return Err(format!(
            "expected method {method}, got {:?}",
            echo_str(echo, "method")
        ));
    }
    if rc.namespace != echo_str(echo, "namespace") {
        return Err(format!(
            "expected namespace {:?}, got {:?}",
            rc.namespace,
            echo_str(echo, "namespace")
        ));
    }
    let echoed = echoed_headers(echo);
    for (name, value) in expected.headers.iter().flatten() {
        match echoed.get(&name.to_ascii_lowercase()) {
            None => {
                return Err(format!(
                    "expected request header {name}: {value}, absent in {echoed:?}"
                ));
            }
            Some(actual) if actual != value => {
                return Err(format!(
                    "expected request header {name}: {value:?}, got {actual:?}"
                ));
            }
            Some(_) => {}
        }
    }
    for (name, value) in &rc.response.headers {
        let actual: Vec<&str> = got
            .headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if actual.is_empty() {
            return Err(format!("expected response header {name}: {value}, absent"));
        }
        if actual.join(",") != *value {
            return Err(format!(
                "expected response header {name}: {value:?}, got {:?}",
                actual.join(",")
            ));
        }
    }
    if let Some(name) = rc
        .response
        .absent_headers
        .iter()
        .find(|n| got.headers.contains_key(n.as_str()))
    {
        return Err(format!("response header {name} should be absent"));
    }
    if let Some(name) = expected
        .absent_headers
        .iter()
        .find(|n| echoed.contains_key(&n.to_ascii_lowercase()))
    {
        return Err(format!(
            "request header {name} should be absent, got {:?}",
            echoed[&name.to_ascii_lowercase()]
        ));
    }
    let pod = echo_str(echo, "pod");
    if !pod.starts_with(&rc.backend) {
        return Err(format!("expected pod of {}, got {pod:?}", rc.backend));
    }
    // The SNI the Gateway sent when it originated TLS to the backend (echo-basic's
    // `tls.serverName`; no `tls` at all when the backend was reached in cleartext).
    if let Some(sni) = &expected.sni {
        let seen = echo.pointer("/tls/serverName").and_then(Value::as_str);
        if seen != Some(sni.as_str()) {
            return Err(format!(
                "expected the backend to see SNI {sni:?}, it saw {seen:?} (echo: {echo})"
            ));
        }
    }
    Ok(())
}

/// Echoed request headers: lower-cased name → values joined with ",".
fn echoed_headers(echo: &Value) -> BTreeMap<String, String> {
    echo["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let values: Vec<&str> = v
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            (k.to_ascii_lowercase(), values.join(","))
        })
        .collect()
}

/// A `Location` split like Go's `url.URL`: (scheme, hostname, port, path).
fn split_location(location: &str) -> (String, String, String, String) {
    let (scheme, rest) = location.split_once("://").unwrap_or(("", location));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h, p),
        _ => (authority, ""),
    };
    let path = tail.split(['?', '#']).next().unwrap_or_default();
    (
        scheme.to_string(),
        host.to_string(),
        port.to_string(),
        path.to_string(),
    )
}

fn default_port(scheme: &str) -> &'static str {
    if scheme == "https" { "443" } else { "80" }
}

fn compare_redirect(rc: &RequestCase, got: &Captured) -> Result<(), String> {
    let Some(expected) = &rc.redirect else {
        return Ok(());
    };
    let location = got
        .headers
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default();
    let (scheme, host, port, path) = split_location(location);
    let want_scheme = expected.scheme.clone().unwrap_or_else(|| rc.scheme.clone());
    let want_host = expected.host.clone().unwrap_or_else(|| host.clone());
    // The case data's rule: no expected port means the scheme's default ("" or
    // 80 for http, "" or 443 for https), whatever port the request went to.
    let want_port = expected.port.clone().unwrap_or_default();
    let want_path = expected.path.clone().unwrap_or_else(|| {
        rc.request
            .path
            .split('?')
            .next()
            .unwrap_or_default()
            .to_string()
    });
    let norm = |port: &str, scheme: &str| {
        if port.is_empty() {
            default_port(scheme).to_string()
        } else {
            port.to_string()
        }
    };
    let mismatch = |what: &str, want: &str, got: &str| {
        Err(format!(
            "redirect {what}: expected {want:?}, got {got:?} (Location: {location:?})"
        ))
    };
    if want_host != host {
        return mismatch("host", &want_host, &host);
    }
    if norm(&want_port, &want_scheme) != norm(&port, &scheme) {
        return mismatch("port", &want_port, &port);
    }
    if want_scheme != scheme {
        return mismatch("scheme", &want_scheme, &scheme);
    }
    if want_path != path {
        return mismatch("path", &want_path, &path);
    }
    Ok(())
}

async fn check_mirrors(
    rc: &RequestCase,
    path: &str,
    backends: &BackendLookup<'_>,
) -> Result<(), String> {
    let needle = format!("Echoing back request made to {path} to client");
    let exact = rc
        .mirrored_to
        .iter()
        .flatten()
        .filter(|m| m.percent.is_none());
    for mirror in exact {
        let server = backends(&mirror.namespace, &mirror.name)
            .ok_or_else(|| format!("no echo backend {}/{}", mirror.namespace, mirror.name))?;
        let start = Instant::now();
        loop {
            if server.log().iter().any(|l| l.starts_with(&needle)) {
                break;
            }
            if start.elapsed() > MIRROR_DEADLINE {
                return Err(format!(
                    "{}/{} never logged {needle:?}",
                    mirror.namespace, mirror.name
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
