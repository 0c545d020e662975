//! The xDS port defends itself.
//!
//! - A connection that sends nothing for [`Limits::idle`] is closed: a client that
//!   connects and never speaks (no HTTP/2 preface), or one that stopped answering.
//!   A live proxy is never idle that long: the server's HTTP/2 keepalive pings (every
//!   30 s) are answered by every HTTP/2 client, so keep `idle` above that interval.
//! - At most [`Limits::max_connections`] connections are open at once. Past it, a
//!   new connection is accepted and closed at once, with a log line (at most one per
//!   10 s, with the count refused), so the process keeps file descriptors for
//!   everything else it does (reading manifests, the API server, snapshots).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Limits on the xDS port's connections.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub idle: Duration,
}

impl Default for Limits {
    /// `idle` 90 s (three keepalive intervals); connections up to the open-file
    /// limit less 256 descriptors kept for the rest of the process (at least 16, at
    /// most 65,536).
    fn default() -> Self {
        let files = open_file_limit().unwrap_or(1024);
        Self {
            max_connections: files.saturating_sub(256).clamp(16, 65_536) as usize,
            idle: Duration::from_secs(90),
        }
    }
}

/// The soft limit on open files (`RLIMIT_NOFILE`), from `/proc/self/limits`.
pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    // "unlimited" has no number: no limit of ours either.
    Some(soft.parse().unwrap_or(u64::MAX))
}

/// The accepted connections of `listener`, within `limits`.
pub fn incoming(
    listener: TcpListener,
    limits: Limits,
) -> impl Stream<Item = io::Result<Guarded>> + Send + 'static {
    let open = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let last_log = Arc::new(Mutex::new(None::<std::time::Instant>));
    futures::stream::unfold(listener, move |listener| {
        let (open, refused, last_log) = (open.clone(), refused.clone(), last_log.clone());
        async move {
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    // Out of descriptors, or the peer gave up: the listener lives on;
                    // back off a little so an exhausted process does not spin.
                    Err(e) => {
                        tracing::warn!("xDS port: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if open.load(Ordering::Acquire) >= limits.max_connections {
                    drop(stream);
                    let n = refused.fetch_add(1, Ordering::Relaxed) + 1;
                    let mut last = last_log.lock().unwrap_or_else(|e| e.into_inner());
                    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        *last = Some(std::time::Instant::now());
                        refused.store(0, Ordering::Relaxed);
                        tracing::warn!(
                            limit = limits.max_connections,
                            refused = n,
                            "xDS port: connection limit reached; new connections are closed \
                             at once (raise --xds-max-connections or the open-file limit)"
                        );
                    }
                    continue;
                }
                let _ = stream.set_nodelay(true);
                open.fetch_add(1, Ordering::AcqRel);
                let guarded = Guarded {
                    inner: stream,
                    open: Some(open.clone()),
                    idle: limits.idle,
                    deadline: Box::pin(tokio::time::sleep(limits.idle)),
                };
                return Some((Ok(guarded), listener));
            }
        }
    })
}

/// An accepted connection: counted while open, closed when it has sent nothing for
/// the idle time.
#[derive(Debug)]
pub struct Guarded {
    inner: TcpStream,
    open: Option<Arc<AtomicUsize>>,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Connected for Guarded {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + self.idle;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                ready!(self.deadline.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "xDS connection idle: nothing received",
                )))
            }
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
