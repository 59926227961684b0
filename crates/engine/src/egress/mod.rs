//! Outbound HTTP from functions: the wasi-http `send_request` hook. A request
//! is matched against the function's `allowed_outbound_hosts` /
//! `allowed_private_hosts` by the scheme, host and port of its URI (never a
//! header), its host is resolved here, internal addresses are refused unless
//! the host may be private, and the request goes to exactly the addresses
//! that were checked. Denials are guest-visible errors plus an audit line.

mod address;
mod connect;

use connect::IoFuture;
use http_body_util::BodyExt as _;
use nimbus_manifest::{Outbound, Reach};
use rustls::pki_types::ServerName;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Most addresses one name may resolve to that are checked and tried.
const MAX_RESOLVED_ADDRESSES: usize = 32;

/// A function's outbound policy, resolved once when it loads.
#[derive(Debug)]
pub(crate) struct EgressPolicy {
    outbound: Outbound,
    /// Cap on each wait (connect, first byte, between bytes).
    max_wait: Duration,
}

impl EgressPolicy {
    pub fn new(outbound: &Outbound) -> Self {
        EgressPolicy {
            outbound: outbound.clone(),
            max_wait: Duration::from_millis(outbound.timeout_ms),
        }
    }
}

/// How long each phase of one request may wait: the guest's request options,
/// capped by the function's `outbound_timeout_ms`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Waits {
    pub connect: Duration,
    pub first_byte: Duration,
    pub between_bytes: Duration,
}

impl Waits {
    fn new(cap: Duration, options: Option<RequestOptions>) -> Self {
        let options = options.unwrap_or_default();
        let pick = |asked: Option<Duration>| asked.map_or(cap, |d| d.min(cap));
        Waits {
            connect: pick(options.connect_timeout),
            first_byte: pick(options.first_byte_timeout),
            between_bytes: pick(options.between_bytes_timeout),
        }
    }
}

/// The hook one invocation's wasi-http context calls for outgoing requests.
pub(crate) struct EgressHooks {
    policy: Arc<EgressPolicy>,
    function: Arc<str>,
    invocation_id: Arc<str>,
    tracer: nimbus_trace::Tracer,
    /// The invocation's span: each outbound request is a child of it.
    trace: nimbus_trace::TraceContext,
    /// One permit per open outbound connection (see
    /// [`crate::limits::MAX_OUTBOUND_CONNECTIONS`]), held from the request
    /// until the guest drops the response body.
    connections: Arc<tokio::sync::Semaphore>,
    /// Where the bytes of request bodies sent are counted, for usage.
    meter: Arc<crate::output::OutputBudget>,
}

impl EgressHooks {
    pub fn new(
        policy: Arc<EgressPolicy>,
        function: Arc<str>,
        invocation_id: Arc<str>,
        tracer: nimbus_trace::Tracer,
        trace: nimbus_trace::TraceContext,
        meter: Arc<crate::output::OutputBudget>,
    ) -> Self {
        EgressHooks {
            policy,
            function,
            invocation_id,
            tracer,
            trace,
            meter,
            connections: Arc::new(tokio::sync::Semaphore::new(
                crate::limits::MAX_OUTBOUND_CONNECTIONS,
            )),
        }
    }
}

type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let audit = Audit {
            function: self.function.clone(),
            invocation_id: self.invocation_id.clone(),
        };
        let Ok(permit) = self.connections.clone().try_acquire_owned() else {
            audit.deny(
                &request.uri().to_string(),
                format_args!(
                    "the invocation already has {} outbound connections open",
                    crate::limits::MAX_OUTBOUND_CONNECTIONS
                ),
            );
            return Box::new(std::future::ready(Err(Error::ConnectionLimitReached)));
        };
        let policy = self.policy.clone();
        // The request is a client span of the invocation, and carries that
        // span's context on, so the service it calls can continue the trace.
        let mut span = self.tracer.start(
            format!(
                "{} {}",
                request.method(),
                request.uri().host().unwrap_or("")
            ),
            nimbus_trace::SpanKind::Client,
            Some(&self.trace),
        );
        span.set("url.full", redacted_url(request.uri()));
        if let Ok(value) = http::HeaderValue::from_str(&span.context.to_traceparent()) {
            request.headers_mut().insert("traceparent", value);
        }
        // Each body frame is counted as it goes out: what the invocation
        // sent is metered, not what it meant to send.
        let meter = self.meter.clone();
        let request = request.map(|body| {
            body.map_frame(move |frame| {
                if let Some(data) = frame.data_ref() {
                    meter.count_outbound(data.len() as u64);
                }
                frame
            })
            .boxed_unsync()
        });
        Box::new(async move {
            let result = send(&policy, &audit, request, options)
                .await
                .map(|(response, io)| {
                    // The connection counts while the guest holds its
                    // response body: dropping the body (or the response)
                    // frees it at once, in the guest's own call, whereas
                    // the connection's task ends only when the runtime
                    // next gets to it.
                    let response = response.map(|body| {
                        body.map_frame(move |frame| {
                            let _held = &permit;
                            frame
                        })
                        .boxed_unsync()
                    });
                    (response, io)
                });
            match &result {
                Ok((response, _)) => {
                    span.set("http.response.status_code", response.status().as_str());
                }
                Err(e) => span.fail(format!("{e:?}")),
            }
            span.end();
            result
        })
    }

    /// The most one write to an outgoing body may carry. Each body buffers
    /// at most two writes the other side has not taken, so this bounds the
    /// host memory an unread body pins (wasi-http's default, 1 MiB, lets a
    /// guest park 2 MiB in every body it opens).
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        crate::limits::MAX_BODY_CHUNK_BYTES
    }
}

/// Who is asking, for the audit line.
struct Audit {
    function: Arc<str>,
    invocation_id: Arc<str>,
}

impl Audit {
    fn deny(&self, destination: &str, reason: fmt::Arguments<'_>) {
        tracing::warn!(
            target: "nimbus::audit",
            function = %self.function,
            invocation_id = %self.invocation_id,
            destination = %destination,
            "outbound HTTP request denied: {reason}"
        );
    }
}

async fn send(
    policy: &EgressPolicy,
    audit: &Audit,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
    let uri = request.uri();
    let (scheme, default_port) = match uri.scheme_str() {
        Some("http") => ("http", 80),
        Some("https") => ("https", 443),
        _ => return Err(Error::HttpProtocolError),
    };
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    // Credentials in the authority would end up in the Host header and the
    // audit log; they belong in an Authorization header.
    if authority.as_str().contains('@') {
        return Err(Error::HttpRequestUriInvalid);
    }
    let host = authority.host().to_owned();
    let port = authority.port_u16().unwrap_or(default_port);
    let destination = format!("{scheme}://{host}:{port}");

    let Some(reach) = policy.outbound.reach(scheme, &host, port) else {
        audit.deny(
            &destination,
            format_args!("it matches no entry of allowed_outbound_hosts"),
        );
        return Err(Error::HttpRequestDenied);
    };

    let waits = Waits::new(policy.max_wait, options);
    let connect_deadline = Instant::now() + waits.connect;
    let bare_host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(&host);
    let addrs = resolve(bare_host, port, connect_deadline).await?;
    if reach == Reach::Public {
        for addr in &addrs {
            if let Some(range) = address::blocked_range(addr.ip()) {
                audit.deny(
                    &destination,
                    format_args!(
                        "{host} resolves to {ip}, a {range} address; list the host in \
                         allowed_private_hosts to reach it",
                        ip = addr.ip()
                    ),
                );
                return Err(Error::DestinationIpProhibited);
            }
        }
    }

    let tls = if scheme == "https" {
        Some(server_name(bare_host)?)
    } else {
        None
    };
    connect::exchange(
        request,
        &addrs,
        tls,
        connect_deadline,
        waits,
        policy.outbound.max_response_bytes,
    )
    .await
}

/// The addresses of `host`: the literal itself, or every address the name
/// resolves to (all of which are then checked; the connection never looks
/// the name up again).
async fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs = match tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port))).await
    {
        Err(_elapsed) => return Err(Error::DnsTimeout),
        Ok(Err(e)) => {
            return Err(Error::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            });
        }
        Ok(Ok(addrs)) => addrs.take(MAX_RESOLVED_ADDRESSES).collect::<Vec<_>>(),
    };
    if addrs.is_empty() {
        return Err(Error::DestinationNotFound);
    }
    Ok(addrs)
}

fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(ServerName::IpAddress(ip.into())),
        Err(_) => ServerName::try_from(host.to_owned()).map_err(|_| Error::HttpRequestUriInvalid),
    }
}

/// The URL a span records: scheme, host, port and path. The query and any
/// `user:password@` are left out, since a guest may carry a secret there and
/// the span is kept with the invocation's record and shown to operators.
fn redacted_url(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or("");
    match uri.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}{}", uri.path()),
        None => format!("{scheme}://{host}{}", uri.path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_url_keeps_no_query_or_credentials() {
        let uri: http::Uri =
            "https://user:hunter2@api.example.com:8443/v1/charge?api_key=sk_live_1"
                .parse()
                .unwrap();
        assert_eq!(redacted_url(&uri), "https://api.example.com:8443/v1/charge");
        let uri: http::Uri = "http://example.com/?token=abc".parse().unwrap();
        assert_eq!(redacted_url(&uri), "http://example.com/");
    }

    #[test]
    fn guest_request_options_shorten_waits_but_never_lengthen_them() {
        let cap = Duration::from_secs(10);
        let waits = Waits::new(
            cap,
            Some(RequestOptions {
                connect_timeout: Some(Duration::from_secs(60)),
                first_byte_timeout: Some(Duration::from_millis(200)),
                between_bytes_timeout: None,
            }),
        );
        assert_eq!(waits.connect, cap);
        assert_eq!(waits.first_byte, Duration::from_millis(200));
        assert_eq!(waits.between_bytes, cap);
        let waits = Waits::new(cap, None);
        assert_eq!(
            (waits.connect, waits.first_byte, waits.between_bytes),
            (cap, cap, cap)
        );
    }

    #[tokio::test]
    async fn literal_addresses_are_used_as_written_without_a_lookup() {
        let deadline = Instant::now() + Duration::from_secs(1);
        let addrs = resolve("::1", 8080, deadline).await.unwrap();
        assert_eq!(addrs, ["[::1]:8080".parse::<SocketAddr>().unwrap()]);
    }

    #[tokio::test]
    async fn a_name_for_loopback_resolves_to_loopback_only() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let addrs = resolve("localhost", 80, deadline).await.unwrap();
        assert!(!addrs.is_empty());
        assert!(
            addrs
                .iter()
                .all(|a| address::blocked_range(a.ip()).is_some())
        );
    }
}
