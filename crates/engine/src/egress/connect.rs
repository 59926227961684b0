//! One outbound HTTP/1.1 exchange over a connection to addresses that were
//! already checked: TCP (no second name lookup), TLS for https, the hyper
//! client handshake, and a response body under a size cap and a
//! between-bytes timeout.

use super::Waits;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use rustls::pki_types::ServerName;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsConnector;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, WasiBody};

/// What wasi-http drives after the response head: the connection's I/O.
pub(crate) type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// TLS with the Mozilla root set (webpki-roots), built once per process:
/// the roots are the same for every function and parsing them is not free.
static TLS: LazyLock<TlsConnector> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    // We speak HTTP/1.1 only; say so rather than have a server pick h2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
});

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Sends `request` to the first of `addrs` that accepts a connection before
/// `connect_deadline`. With `tls`, the certificate must be valid for that name.
pub(super) async fn exchange(
    mut request: Request<WasiBody>,
    addrs: &[SocketAddr],
    tls: Option<ServerName<'static>>,
    connect_deadline: Instant,
    waits: Waits,
    max_response_bytes: u64,
) -> Result<(Response<WasiBody>, IoFuture), Error> {
    let tcp = connect_any(addrs, connect_deadline).await?;
    let stream: Box<dyn Stream> = match tls {
        None => Box::new(tcp),
        Some(name) => {
            match tokio::time::timeout_at(connect_deadline, TLS.connect(name, tcp)).await {
                Err(_elapsed) => return Err(Error::ConnectionTimeout),
                Ok(Err(e)) => return Err(tls_error(e)),
                Ok(Ok(tls)) => Box::new(tls),
            }
        }
    };
    let (mut sender, conn) = tokio::time::timeout_at(
        connect_deadline,
        hyper::client::conn::http1::Builder::new()
            .max_buf_size(crate::limits::MAX_OUTBOUND_READ_BUFFER_BYTES)
            .handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_elapsed| Error::ConnectionTimeout)?
    .map_err(hyper_error)?;

    // The request line carries the path only; the destination was chosen
    // from the URI and the Host header wasi-http set from the same authority.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    *request.uri_mut() = path;

    // The connection must be driven while we wait for the response head.
    let mut conn = Box::pin(conn);
    let mut conn_done = false;
    let send = sender.send_request(request);
    let first_byte = tokio::time::sleep(waits.first_byte);
    tokio::pin!(send, first_byte);
    let response = loop {
        tokio::select! {
            response = &mut send => break response.map_err(hyper_error)?,
            ended = &mut conn, if !conn_done => {
                conn_done = true;
                ended.map_err(hyper_error)?;
            }
            () = &mut first_byte => return Err(Error::ConnectionReadTimeout),
        }
    };
    drop(sender);

    // A body announced as too large is refused before any of it is read.
    if let Some(length) = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && length > max_response_bytes
    {
        return Err(Error::HttpResponseBodySize(Some(length)));
    }
    let response = response.map(|incoming| {
        CappedBody {
            inner: incoming,
            received: 0,
            max_bytes: max_response_bytes,
            between_bytes: waits.between_bytes,
            idle: None,
            failed: false,
        }
        .boxed_unsync()
    });
    let io: IoFuture = Box::new(async move {
        if !conn_done {
            conn.await.map_err(hyper_error)?;
        }
        Ok(())
    });
    Ok((response, io))
}

async fn connect_any(addrs: &[SocketAddr], deadline: Instant) -> Result<TcpStream, Error> {
    let mut last = Error::DestinationNotFound;
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_elapsed) => return Err(Error::ConnectionTimeout),
            Ok(Ok(stream)) => {
                // Small request writes should not wait for Nagle.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = connect_error(e),
        }
    }
    Err(last)
}

fn connect_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
        io::ErrorKind::TimedOut => Error::ConnectionTimeout,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            Error::DestinationUnavailable
        }
        _ => Error::Connect(e),
    }
}

fn tls_error(e: io::Error) -> Error {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(_)) => Error::TlsCertificateError,
        Some(rustls::Error::AlertReceived(alert)) => Error::TlsAlertReceived {
            alert_id: Some(u8::from(*alert)),
            alert_message: Some(format!("{alert:?}")),
        },
        Some(_) => Error::TlsProtocolError,
        None => Error::Tls(e),
    }
}

fn hyper_error(e: hyper::Error) -> Error {
    if e.is_incomplete_message() {
        Error::HttpResponseIncomplete
    } else if e.is_closed() || e.is_canceled() {
        Error::ConnectionTerminated
    } else if e.is_parse_too_large() {
        // A head past the read buffer (`MAX_OUTBOUND_READ_BUFFER_BYTES`).
        Error::HttpResponseHeaderSectionSize(None)
    } else if e.is_parse() || e.is_parse_status() {
        Error::HttpProtocolError
    } else {
        Error::Hyper(e)
    }
}

/// A response body that fails, rather than ends, once more than `max_bytes`
/// arrived or nothing arrived for `between_bytes`: a guest never mistakes a
/// cut-off body for a complete one.
struct CappedBody {
    inner: hyper::body::Incoming,
    received: u64,
    max_bytes: u64,
    between_bytes: Duration,
    /// Armed when a poll finds no data, cleared when data arrives: the
    /// timeout measures the server's silence, not how slowly the guest reads.
    idle: Option<Pin<Box<Sleep>>>,
    failed: bool,
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    if this.received > this.max_bytes {
                        this.failed = true;
                        return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(
                            this.received,
                        )))));
                    }
                }
                this.idle = None;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.failed = true;
                Poll::Ready(Some(Err(hyper_error(e))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let between_bytes = this.between_bytes;
                let idle = this
                    .idle
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(between_bytes)));
                ready!(idle.as_mut().poll(cx));
                this.failed = true;
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
