//! `sluice demo-backends`: the HTTP backends `examples/basic` routes to, so the quick
//! start shows which backend answered. Each backend answers every request with `200`,
//! a body line naming itself and the request, and an `x-backend: NAME` header, over
//! HTTP/1.1 with keep-alive (Envoy pools its upstream connections).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The backends of `examples/basic`: its EndpointSlices put `echo-v1` on port 9001
/// and `echo-v2` on port 9002 of 127.0.0.1.
const EXAMPLE_BACKENDS: [&str; 2] = ["echo-v1=127.0.0.1:9001", "echo-v2=127.0.0.1:9002"];

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// `NAME=ADDRESS` of one backend (repeatable); port 0 picks a free port. Default:
    /// the two backends of `examples/basic`.
    #[arg(long = "backend", value_parser = parse_backend, default_values = EXAMPLE_BACKENDS)]
    backends: Vec<(String, SocketAddr)>,
}

/// `NAME=ADDRESS` → (name, address).
fn parse_backend(value: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = value
        .split_once('=')
        .ok_or_else(|| format!("`{value}`: expected NAME=ADDRESS, e.g. echo-v1=127.0.0.1:9001"))?;
    let valid = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if name.is_empty() || !name.chars().all(valid) {
        return Err(format!(
            "`{value}`: the backend name must be letters, digits, `.`, `_` or `-`"
        ));
    }
    let addr = addr
        .parse()
        .map_err(|e| format!("`{value}`: `{addr}` is not an IP:PORT address ({e})"))?;
    Ok((name.to_owned(), addr))
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let DemoArgs { backends } = args;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut listeners = Vec::new();
        for (name, addr) in backends {
            let listener = TcpListener::bind(addr).await.with_context(|| {
                format!("demo backend {name}: cannot listen on {addr} (is it already running?)")
            })?;
            // One stdout line per backend, with the port actually bound: scripts wait
            // for these lines.
            println!("{name} listening on {}", listener.local_addr()?);
            listeners.push((name, listener));
        }
        for (name, listener) in listeners {
            tokio::spawn(accept(name, listener));
        }
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Serves every connection of `listener` as backend `name`, each on its own task.
async fn accept(name: String, listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: say so, keep serving.
                tracing::warn!("demo backend {name}: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let name = name.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(name.clone(), req));
            let served = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!("demo backend connection ended: {e}");
            }
        });
    }
}

/// Reads (and drops) the request body, so the connection can be reused, then answers
/// with the backend's name in the `x-backend` header and in the body.
async fn answer(name: String, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let line = format!("{name} answered {} {}\n", req.method(), req.uri());
    let mut body = req.into_body();
    while let Some(Ok(_)) = body.frame().await {}
    let response = Response::builder()
        .header("x-backend", name.as_str())
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(line)));
    // The header values are a checked name and a constant, so building cannot fail;
    // answer 500 rather than panic if it ever does.
    Ok(response.unwrap_or_else(|_| {
        let mut fallback = Response::new(Full::new(Bytes::from_static(b"bad backend name\n")));
        *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    }))
}
