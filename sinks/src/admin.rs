//! The admin HTTP port: health, readiness, Prometheus metrics and a config dump.
//!
//! | path | answers |
//! |---|---|
//! | `/healthz` | 200 while the process serves |
//! | `/readyz` | 200 once every watcher listed and the first logical time is published, else 503 |
//! | `/metrics` | Prometheus text format (`prometheus-client`) |
//! | `/debug/xds?gateway=NS/NAME` | the Gateway's xDS resources as JSON, as `sluice translate` prints them |
//!
//! Bind it to loopback unless the network in front of it is trusted: the config dump
//! shows every route and backend.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::registry::Registry;
use serde_json::json;
use sluice_pipeline::model::ObjectKey;
use tokio::net::TcpListener;

use crate::state::XdsHub;

/// What the admin port reads.
#[derive(Debug)]
pub struct Admin {
    pub registry: Registry,
    /// Set once the first complete logical time is published.
    pub ready: Arc<AtomicBool>,
    pub hub: Arc<XdsHub>,
}

impl Admin {
    /// Serves on `listener` until the task is dropped.
    pub async fn serve(self, listener: TcpListener) {
        let admin = Arc::new(self);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let admin = admin.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.answer(&req)) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    fn answer(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        match req.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/readyz" if self.ready.load(Ordering::Acquire) => {
                text(StatusCode::OK, "ready\n".into())
            }
            "/readyz" => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the first complete configuration is not published yet\n".into(),
            ),
            "/metrics" => {
                let mut out = String::new();
                match prometheus_client::encoding::text::encode(&mut out, &self.registry) {
                    Ok(()) => text(StatusCode::OK, out),
                    Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
                }
            }
            "/debug/xds" => self.xds(req.uri().query().unwrap_or_default()),
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: /healthz, /readyz, /metrics, /debug/xds?gateway=NS/NAME\n".into(),
            ),
        }
    }

    fn xds(&self, query: &str) -> Response<Full<Bytes>> {
        let gateway = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("gateway="))
            .and_then(|g| {
                g.replace("%2F", "/")
                    .replace("%2f", "/")
                    .split_once('/')
                    .map(|(ns, n)| ObjectKey::new(ns, n))
            });
        let Some(gateway) = gateway else {
            return text(
                StatusCode::BAD_REQUEST,
                "expected ?gateway=NAMESPACE/NAME\n".into(),
            );
        };
        let Some(resources) = self.hub.current(&gateway) else {
            return text(
                StatusCode::NOT_FOUND,
                format!("no xDS published for Gateway {gateway}\n"),
            );
        };
        match crate::json::resources_json(&resources) {
            Ok(xds) => {
                let doc = json!({"namespace": gateway.namespace, "name": gateway.name, "xds": xds});
                let body = serde_json::to_string_pretty(&doc).unwrap_or_default();
                let mut response = text(StatusCode::OK, body + "\n");
                response.headers_mut().insert(
                    "content-type",
                    hyper::header::HeaderValue::from_static("application/json"),
                );
                response
            }
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// Binds the admin port (an error names the address).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("binding the admin port {addr}: {e}")))
}
