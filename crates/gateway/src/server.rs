//! One HTTP server loop shared by both listeners: bounded connections,
//! header-read timeout, graceful shutdown with a bounded drain, and
//! `Connection: close` on an HTTP/1 answer given before the request body
//! was read to its end (hyper then closes the connection; clients must know
//! not to send their next request on it).

use bytes::Bytes;
use http::{HeaderValue, header};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Pause after a failed accept (typically EMFILE) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// Interval (and timeout) of HTTP/2 keep-alive pings.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);
/// Concurrent streams per HTTP/2 connection.
const H2_MAX_STREAMS: u32 = 256;
/// What an HTTP/2 client with prior knowledge sends first; until a
/// connection's first bytes differ from it, or hold all of it, hyper-util
/// cannot tell the protocol and waits without a timeout.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How often the protocol check looks again while a client has sent only
/// part of the HTTP/2 preface (real clients send it whole).
const PREFACE_RECHECK: Duration = Duration::from_millis(10);

/// Bounds on one listener.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Open connections at once; further clients wait in the accept backlog.
    pub max_connections: usize,
    /// Time a client has to send a complete request head.
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body once its head has arrived.
    pub body_read_timeout: Duration,
    /// How long shutdown waits for in-flight requests before closing them.
    pub shutdown_grace: Duration,
    /// Largest request head (request line and headers) read; a larger one
    /// is refused with 431 (HTTP/1.1) or a reset stream (HTTP/2).
    pub max_header_bytes: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
        }
    }
}

/// Something that answers requests; every error is already a response.
pub trait Handler: Send + Sync + 'static {
    type Body: hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;

    fn handle(
        self: Arc<Self>,
        request: hyper::Request<RequestBody>,
        local: SocketAddr,
    ) -> impl Future<Output = hyper::Response<Self::Body>> + Send;
}

/// A request body as handlers get it: hyper's, noting when it has been read
/// to its end, so the server knows whether an answer came before it.
pub struct RequestBody {
    inner: Incoming,
    ended: Arc<AtomicBool>,
}

impl hyper::body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            _ => false,
        };
        if ended {
            this.ended.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Answers `request` with `handler`. An HTTP/1 answer given before the
/// request's body was read to its end (a refusal before the upload, an
/// error) says `Connection: close`: hyper will not reuse a connection with
/// an unread body on it, and a client that is not told would send its next
/// request into a closing connection.
async fn answer<H: Handler>(
    handler: Arc<H>,
    request: hyper::Request<Incoming>,
    local: SocketAddr,
) -> hyper::Response<H::Body> {
    let http1 = request.version() < http::Version::HTTP_2;
    let ended = Arc::new(AtomicBool::new(request.body().is_end_stream()));
    let request = request.map(|inner| RequestBody {
        inner,
        ended: ended.clone(),
    });
    let mut response = handler.handle(request, local).await;
    if http1 && !ended.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// How a server loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Every connection finished within the grace period.
    Complete,
    /// The grace period ran out with connections still open; they were closed.
    TimedOut,
}

/// Serves `listener` until `shutdown` resolves, then stops accepting and lets
/// open connections finish for up to `limits.shutdown_grace`.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> Drain {
    serve_with(listener, None, handler, limits, shutdown).await
}

/// A listener served beside the public one (the S3 and SQS endpoints),
/// over plain HTTP or TLS, and stopped with it.
pub struct Endpoint {
    serve: Box<dyn FnOnce(ServerLimits, StopSignal) -> BoxedDrain + Send>,
}

type StopSignal = Pin<Box<dyn Future<Output = ()> + Send>>;
type BoxedDrain = Pin<Box<dyn Future<Output = Drain> + Send>>;

impl Endpoint {
    /// `handler` answering on `listener`, over TLS when `tls` is given.
    pub fn new<H: Handler>(
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        handler: Arc<H>,
    ) -> Self {
        Endpoint {
            serve: Box::new(move |limits, stop| {
                Box::pin(serve_with(listener, tls, handler, limits, stop))
            }),
        }
    }

    pub(crate) fn run(self, limits: ServerLimits, stop: StopSignal) -> BoxedDrain {
        (self.serve)(limits, stop)
    }
}

/// [`serve`], over TLS when `tls` is given: the handshake must finish
/// within the header-read timeout, as a plain request head must.
async fn serve_with<H: Handler>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: Arc<H>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> Drain {
    let local = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes);
    // h2c connections have no header timeout: pings find dead peers, and the
    // stream cap bounds what one connection can ask for at once.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(H2_KEEP_ALIVE))
        .keep_alive_timeout(H2_KEEP_ALIVE)
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(limits.max_header_bytes as u32);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => permit.expect("semaphore is never closed"),
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // A response whose head and body leave in separate
                    // writes (a streamed object, whose first bytes come
                    // after the head is flushed) would otherwise hold its
                    // body back until the client acknowledged the head:
                    // 40 ms of Linux's delayed ACK on every such response.
                    let _ = stream.set_nodelay(true);
                    stream
                }
                Err(e) => {
                    tracing::warn!(%local, "failed to accept a connection: {e}");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(answer(handler, request, local).await) }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let first_byte_timeout = limits.header_read_timeout;
        let max_header_bytes = limits.max_header_bytes;
        let tls = tls.clone();
        tokio::spawn(async move {
            if let Some(tls) = tls {
                let stream =
                    match tokio::time::timeout(first_byte_timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!("TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => return,
                    };
                // HTTP/1.1 only (the only protocol the endpoints' ALPN
                // offers), so the header-read timeout runs from the first
                // moment: a client silent after its handshake is closed.
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(first_byte_timeout)
                    .max_buf_size(max_header_bytes)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = watcher.watch(connection).await {
                    tracing::debug!("connection ended with an error: {e}");
                }
                drop(permit);
                return;
            }
            // Protocol detection has no timeout of its own: a client must
            // send enough to tell HTTP/1 from HTTP/2 within the header
            // timeout (from then on hyper's timeouts apply) or lose its slot.
            match tokio::time::timeout(first_byte_timeout, protocol_known(&stream)).await {
                Ok(true) => {}
                _ => return,
            }
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!("connection ended with an error: {e}");
            }
            drop(permit);
        });
    }

    // Closing the listener makes new connections fail fast instead of
    // queueing behind a server that is going away.
    drop(listener);
    tracing::info!(%local, "stopped accepting connections");
    tokio::select! {
        () = graceful.shutdown() => Drain::Complete,
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(%local, "shutdown grace period elapsed; closing the remaining connections");
            Drain::TimedOut
        }
    }
}

/// Waits until the connection's first bytes tell its protocol: they differ
/// from the HTTP/2 preface (HTTP/1), or hold all of it. `false` if the
/// client closed or failed first.
async fn protocol_known(stream: &tokio::net::TcpStream) -> bool {
    let mut probe = [0u8; H2_PREFACE.len()];
    loop {
        match stream.peek(&mut probe).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if n == H2_PREFACE.len() || probe[..n] != H2_PREFACE[..n] => return true,
            // A strict prefix of the preface: peeking again at once would
            // find the same bytes, so look again shortly.
            Ok(_) => tokio::time::sleep(PREFACE_RECHECK).await,
        }
    }
}
