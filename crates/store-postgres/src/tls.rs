//! TLS to PostgreSQL through rustls (ring), with libpq's `sslmode` and
//! `sslrootcert`. tokio-postgres parses only `disable`, `prefer` and
//! `require` and verifies nothing itself, so both parameters are taken out
//! of the connection string here, the rest goes to tokio-postgres, and its
//! `SslMode` is set from ours:
//!
//! | `sslmode` | TLS | the server's certificate |
//! | --- | --- | --- |
//! | `disable` | never | - |
//! | `prefer` | if the server offers it | not checked, or the chain if `sslrootcert` is given |
//! | `require` | always | not checked, or the chain if `sslrootcert` is given (as libpq) |
//! | `verify-ca` | always | the chain, up to a root |
//! | `verify-full` | always | the chain, and that it names the host |
//!
//! The roots are the PEM file `sslrootcert` names, else the public
//! certificate authorities compiled in from webpki-roots (what
//! `sslrootcert=system` also means). With no `sslmode` the connection stays
//! plain, as before TLS existed here, unless `sslrootcert` is given, which
//! asks for `verify-full`: naming a CA and then not using it would be a
//! surprise. (libpq's default is `prefer`, which can silently fall back to
//! plain text and checks nothing; here encryption is asked for by name.)
//! TLS is never tried on a unix socket, as in libpq: PostgreSQL refuses it
//! there. One difference from libpq remains: with `prefer`, a server that
//! offers TLS but fails the handshake is an error, not a retry in plain text
//! (tokio-postgres decides that, not this module).
//!
//! The connection string may hold a password, so no error here quotes it.

use nimbus_store::{StoreError, StoreResult};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::Host;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// The `sslmode` values libpq documents (`allow` aside: it tries plain
/// first, which a store holding secrets should not ask for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> StoreResult<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(invalid(
                    "sslmode must be one of disable, prefer, require, verify-ca, verify-full",
                ));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    /// The public certificate authorities (webpki-roots).
    Public,
    /// A PEM file of one or more certificates.
    File(PathBuf),
}

/// The TLS parameters of a connection string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TlsParams {
    mode: Option<SslMode>,
    /// `sslrootcert`: `system` is `Roots::Public`.
    root_cert: Option<Roots>,
}

/// Parses a connection string (URL or key=value form), taking `sslmode`
/// and `sslrootcert` out, and returns tokio-postgres's configuration with
/// its TLS mode set, and the connector every connection of the store uses.
pub(crate) fn config(url: &str) -> StoreResult<(tokio_postgres::Config, MakeRustlsConnect)> {
    let (rest, params) = take_params(url)?;
    let mut config: tokio_postgres::Config = rest
        .parse()
        // tokio-postgres's causes can quote pieces of the string (a
        // misquoted password), so only its summary is shown.
        .map_err(|e: tokio_postgres::Error| invalid(&e.to_string()))?;
    let connector = params.apply(&mut config)?;
    Ok((config, connector))
}

fn invalid(why: &str) -> StoreError {
    StoreError::Backend(format!("the PostgreSQL URL is not valid: {why}"))
}

/// Splits `sslmode` and `sslrootcert` off a connection string, returning
/// the rest as it was written.
fn take_params(url: &str) -> StoreResult<(String, TlsParams)> {
    let mut params = TlsParams::default();
    let mut take = |key: &str, value: &str| -> StoreResult<bool> {
        match key {
            "sslmode" => params.mode = Some(SslMode::parse(value)?),
            "sslrootcert" if value.is_empty() => {
                return Err(invalid("sslrootcert is empty"));
            }
            "sslrootcert" if value == "system" => params.root_cert = Some(Roots::Public),
            "sslrootcert" => params.root_cert = Some(Roots::File(PathBuf::from(value))),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(invalid(&format!(
                    "{key} is not supported (client certificates and revocation lists are not)"
                )));
            }
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = match url_query(url) {
        Some((head, query)) => {
            let mut kept = Vec::new();
            for pair in query.split('&') {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let key = percent_decode(key)?;
                if !take(&key, &percent_decode(value)?)? {
                    kept.push(pair);
                }
            }
            if kept.is_empty() {
                head.to_owned()
            } else {
                format!("{head}?{}", kept.join("&"))
            }
        }
        None if is_url(url) => url.to_owned(),
        None => {
            let mut kept = Vec::new();
            for (key, value, raw) in key_values(url)? {
                if !take(key, &value)? {
                    kept.push(raw);
                }
            }
            kept.join(" ")
        }
    };
    Ok((rest, params))
}

fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A URL's part before its query and the query, found as tokio-postgres
/// finds them: the credentials end at the first `@`, the query starts at
/// the first `?` after them.
fn url_query(url: &str) -> Option<(&str, &str)> {
    if !is_url(url) {
        return None;
    }
    let after_credentials = url.find('@').map_or(0, |at| at + 1);
    let mark = after_credentials + url[after_credentials..].find('?')?;
    Some((&url[..mark], &url[mark + 1..]))
}

fn percent_decode(text: &str) -> StoreResult<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| {
            bytes
                .get(at)
                .and_then(|&b| char::from(b).to_digit(16))
                .map(|d| d as u8)
        };
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push(high << 4 | low);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| invalid("a query parameter is not UTF-8"))
}

/// The `key = value` pairs of libpq's key=value form, as tokio-postgres
/// reads them: each key, its unescaped value, and the pair as written.
fn key_values(text: &str) -> StoreResult<Vec<(&str, String, &str)>> {
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let start = rest;
        let key_end = rest
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        rest = rest[key_end..].trim_start();
        rest = rest
            .strip_prefix('=')
            .ok_or_else(|| invalid("expected `=` after a key"))?
            .trim_start();
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let quoted = rest.starts_with('\'');
        if quoted {
            chars.next();
        }
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '\'' if quoted => {
                    end = Some(i + 1);
                    break;
                }
                c if !quoted && c.is_whitespace() => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = match end {
            Some(end) => end,
            None if quoted => return Err(invalid("a quoted value is not terminated")),
            None => rest.len(),
        };
        rest = &rest[end..];
        pairs.push((key, value, &start[..start.len() - rest.len()]));
        rest = rest.trim_start();
    }
    Ok(pairs)
}

impl TlsParams {
    /// The mode the parameters ask for, defaults and libpq's rule for
    /// `sslrootcert=system` applied.
    fn mode(&self) -> StoreResult<SslMode> {
        match (self.mode, &self.root_cert) {
            (None, None) => Ok(SslMode::Disable),
            (None, Some(_)) => Ok(SslMode::VerifyFull),
            (Some(mode), Some(Roots::Public)) if mode != SslMode::VerifyFull => {
                Err(invalid(&format!(
                    "sslmode={} may not be used with sslrootcert=system (use verify-full)",
                    mode.name()
                )))
            }
            (Some(mode), _) => Ok(mode),
        }
    }

    /// Sets `config`'s TLS mode and builds the connector.
    fn apply(&self, config: &mut tokio_postgres::Config) -> StoreResult<MakeRustlsConnect> {
        let mode = self.mode()?;
        let unix_only = config.get_hostaddrs().is_empty()
            && !config.get_hosts().is_empty()
            && config
                .get_hosts()
                .iter()
                .all(|host| !matches!(host, Host::Tcp(_)));
        config.ssl_mode(match mode {
            _ if unix_only => tokio_postgres::config::SslMode::Disable,
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        if mode == SslMode::Disable || unix_only {
            return Ok(MakeRustlsConnect {
                config: None,
                roots: Arc::from(""),
            });
        }
        // prefer and require check the chain only when given a root file.
        let roots = match (mode, &self.root_cert) {
            (SslMode::Prefer | SslMode::Require, None) => None,
            (_, None | Some(Roots::Public)) => Some(Roots::Public),
            (_, Some(file)) => Some(file.clone()),
        };
        let described = match &roots {
            None => String::new(),
            Some(Roots::Public) => "the public certificate authorities".to_owned(),
            Some(Roots::File(_)) => "the certificates in sslrootcert".to_owned(),
        };
        let roots = roots.map(|roots| load_roots(&roots)).transpose()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Verifier {
            roots: roots.map(Arc::new),
            check_host: mode == SslMode::VerifyFull,
            algorithms: provider.signature_verification_algorithms,
        };
        let mut tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Backend(format!("cannot set up TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        // What PostgreSQL 17 expects for direct TLS; older servers ignore it.
        tls.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeRustlsConnect {
            config: Some(Arc::new(tls)),
            roots: Arc::from(described),
        })
    }
}

fn load_roots(roots: &Roots) -> StoreResult<RootCertStore> {
    let path = match roots {
        Roots::Public => {
            return Ok(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            });
        }
        Roots::File(path) => path,
    };
    let unusable = |why: String| {
        StoreError::Backend(format!(
            "sslrootcert {} cannot be used: {why}",
            path.display()
        ))
    };
    let pem = std::fs::read(path).map_err(|e| unusable(e.to_string()))?;
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| unusable(format!("not PEM ({e:?})")))?;
        store
            .add(cert)
            .map_err(|e| unusable(format!("a certificate in it is not valid ({e})")))?;
    }
    if store.is_empty() {
        return Err(unusable("it holds no PEM certificate".to_owned()));
    }
    Ok(store)
}

/// Checks the server's certificate as the mode asks: with no roots only
/// that the handshake is signed by the certificate's key (what `require`
/// promises: encryption, with no proof of whom to); with roots the chain;
/// with `check_host` also the name.
#[derive(Debug)]
struct Verifier {
    roots: Option<Arc<RootCertStore>>,
    check_host: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
            if self.check_host {
                verify_server_name(&cert, server_name)?;
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// tokio-postgres's `MakeTlsConnect` over tokio-rustls: one per store,
/// shared by the pool and the listener connection.
#[derive(Clone)]
pub(crate) struct MakeRustlsConnect {
    /// `None` when TLS is off (tokio-postgres then never asks for it).
    config: Option<Arc<ClientConfig>>,
    /// The roots, in words, for errors.
    roots: Arc<str>,
}

impl std::fmt::Debug for MakeRustlsConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MakeRustlsConnect")
            .field("tls", &self.config.is_some())
            .finish()
    }
}

impl<S> MakeTlsConnect<S> for MakeRustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, host: &str) -> io::Result<RustlsConnect> {
        // Called for every connection, TLS or not (a unix socket's host is
        // ""), so a bad name is an error only once TLS is tried.
        Ok(RustlsConnect {
            config: self.config.clone(),
            host: host.to_owned(),
            roots: self.roots.clone(),
        })
    }
}

pub(crate) struct RustlsConnect {
    config: Option<Arc<ClientConfig>>,
    host: String,
    roots: Arc<str>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let config = self
                .config
                .ok_or_else(|| io::Error::other("TLS is off for this connection"))?;
            let name = ServerName::try_from(self.host.clone()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`{}` is not a host name TLS can verify", self.host),
                )
            })?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map_err(|e| explain(e, &self.host, &self.roots))?;
            Ok(RustlsStream(stream))
        })
    }
}

/// A refused certificate in words a reader can act on.
fn explain(e: io::Error, host: &str, roots: &str) -> io::Error {
    let Some(rustls::Error::InvalidCertificate(why)) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return e;
    };
    let reason = match why {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!(
                "it is not issued for the host name `{host}` (sslmode=verify-full checks the \
                 name; verify-ca checks only the chain)"
            )
        }
        CertificateError::UnknownIssuer => format!("it is not signed by {roots}"),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "it has expired".to_owned()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet".to_owned()
        }
        other => format!("{other:?}"),
    };
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the server's certificate could not be verified: {reason}"),
    )
}

/// A TLS connection to the server.
pub(crate) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> TlsStream for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// `tls-server-end-point` (RFC 5929) for SCRAM-SHA-256-PLUS: a hash of
    /// the server's certificate, so a man in the middle cannot relay the
    /// authentication.
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|cert| end_point_hash(cert))
            .map_or_else(ChannelBinding::none, ChannelBinding::tls_server_end_point)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// The certificate's hash for `tls-server-end-point`: by the hash of its
/// signature algorithm, SHA-256 for MD5 and SHA-1 (RFC 5929, 4.1). `None`
/// for algorithms whose hash is not that simple (RSA-PSS, EdDSA): SCRAM
/// then goes without channel binding rather than fail on a guess.
fn end_point_hash(cert: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest as _;
    // OIDs of the signature algorithms, as DER content bytes.
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    let oid = signature_algorithm(cert)?;
    let (family, last) = oid.split_last().map(|(last, family)| (family, *last))?;
    let bits = match (family, last) {
        // md5, sha1, sha256 WithRSAEncryption; ecdsa-with-SHA1
        (RSA, 0x04 | 0x05 | 0x0b) | (ECDSA_SHA2, 0x02) => 256,
        (RSA, 0x0c) | (ECDSA_SHA2, 0x03) => 384,
        (RSA, 0x0d) | (ECDSA_SHA2, 0x04) => 512,
        _ if oid == ECDSA_SHA1 => 256,
        _ => return None,
    };
    Some(match bits {
        256 => sha2::Sha256::digest(cert).to_vec(),
        384 => sha2::Sha384::digest(cert).to_vec(),
        _ => sha2::Sha512::digest(cert).to_vec(),
    })
}

/// The OID of a DER certificate's `signatureAlgorithm`.
fn signature_algorithm(cert: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const OID: u8 = 0x06;
    let (certificate, _) = der(cert, SEQUENCE)?;
    let (_tbs, rest) = der(certificate, SEQUENCE)?;
    let (algorithm, _) = der(rest, SEQUENCE)?;
    let (oid, _) = der(algorithm, OID)?;
    Some(oid)
}

/// One DER element with `tag` at the start of `input`: its contents and
/// what follows it.
fn der(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 {
            return None;
        }
        let (len, rest) = rest.split_at_checked(octets)?;
        let len = len
            .iter()
            .fold(0usize, |len, &byte| len << 8 | usize::from(byte));
        (len, rest)
    };
    rest.split_at_checked(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(url: &str) -> (String, TlsParams) {
        take_params(url).unwrap()
    }

    #[test]
    fn ssl_parameters_are_taken_out_of_a_url_and_the_rest_kept_as_written() {
        let (rest, params) = take(
            "postgres://ann:p%3Fw@db.example:5433/nimbus?application_name=x&sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem&options=-c%20a%3Db",
        );
        assert_eq!(
            rest,
            "postgres://ann:p%3Fw@db.example:5433/nimbus?application_name=x&options=-c%20a%3Db"
        );
        assert_eq!(params.mode, Some(SslMode::VerifyCa));
        assert_eq!(
            params.root_cert,
            Some(Roots::File(PathBuf::from("/etc/ca.pem")))
        );
        let (rest, params) = take("postgresql://db.example/nimbus?sslmode=require");
        assert_eq!(rest, "postgresql://db.example/nimbus");
        assert_eq!(params.mode, Some(SslMode::Require));
        assert_eq!(take("postgres://db/x").0, "postgres://db/x");
    }

    #[test]
    fn a_question_mark_in_the_password_does_not_start_the_query() {
        let (rest, params) = take("postgres://ann:a?b@db/nimbus?sslmode=require");
        assert_eq!(rest, "postgres://ann:a?b@db/nimbus");
        assert_eq!(params.mode, Some(SslMode::Require));
    }

    #[test]
    fn ssl_parameters_are_taken_out_of_the_key_value_form() {
        let (rest, params) = take(
            "host=db password='a \\'b' sslmode=verify-full sslrootcert='/my certs/ca.pem' dbname=nimbus",
        );
        assert_eq!(rest, "host=db password='a \\'b' dbname=nimbus");
        assert_eq!(params.mode, Some(SslMode::VerifyFull));
        assert_eq!(
            params.root_cert,
            Some(Roots::File(PathBuf::from("/my certs/ca.pem")))
        );
    }

    #[test]
    fn a_bad_sslmode_names_the_parameter_and_not_the_url() {
        let url = "postgres://ann:hunter2@db/nimbus?sslmode=verify-everything";
        let error = take_params(url).unwrap_err().to_string();
        assert!(error.contains("sslmode must be one of"), "{error}");
        assert!(
            !error.contains("hunter2") && !error.contains("db/nimbus"),
            "{error}"
        );
        let error = take_params("postgres://ann:hunter2@db/nimbus?sslcert=/me.pem")
            .unwrap_err()
            .to_string();
        assert!(error.contains("sslcert is not supported"), "{error}");
        let error = take_params("password=hunter2 sslmode=on")
            .unwrap_err()
            .to_string();
        assert!(error.contains("sslmode"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn an_unreadable_sslrootcert_names_the_parameter() {
        let error = config(
            "postgres://ann:hunter2@db/nimbus?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("sslrootcert /nonexistent/ca.pem cannot be used"),
            "{error}"
        );
        assert!(!error.contains("hunter2"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = config(&format!(
            "postgres://db/nimbus?sslmode=verify-ca&sslrootcert={}",
            empty.display()
        ))
        .unwrap_err()
        .to_string();
        assert!(error.contains("holds no PEM certificate"), "{error}");
    }

    #[test]
    fn modes_default_as_documented() {
        let mode = |url: &str| take(url).1.mode();
        assert_eq!(mode("postgres://db/x").unwrap(), SslMode::Disable);
        assert_eq!(
            mode("postgres://db/x?sslrootcert=/ca.pem").unwrap(),
            SslMode::VerifyFull
        );
        assert_eq!(
            mode("postgres://db/x?sslrootcert=system").unwrap(),
            SslMode::VerifyFull
        );
        let weak = mode("postgres://db/x?sslrootcert=system&sslmode=require")
            .unwrap_err()
            .to_string();
        assert!(
            weak.contains("sslmode=require may not be used with sslrootcert=system"),
            "{weak}"
        );
    }

    #[test]
    fn tls_is_never_tried_on_a_unix_socket() {
        let (config, tls) = config_of("postgres:///nimbus?host=/run/postgresql&sslmode=require");
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
        assert!(tls.config.is_none());
        let (config, tls) = config_of("postgres://db.example/nimbus?sslmode=verify-ca");
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert!(tls.config.is_some());
    }

    fn config_of(url: &str) -> (tokio_postgres::Config, MakeRustlsConnect) {
        config(url).unwrap()
    }

    #[test]
    fn the_end_point_hash_follows_the_signature_algorithm() {
        // A minimal certificate shape: SEQUENCE { SEQUENCE {}, SEQUENCE { OID } , BIT STRING }.
        let cert = |oid: &[u8]| {
            let mut algorithm = vec![0x06, oid.len() as u8];
            algorithm.extend_from_slice(oid);
            let mut body = vec![0x30, 0x00, 0x30, algorithm.len() as u8];
            body.extend_from_slice(&algorithm);
            body.extend_from_slice(&[0x03, 0x01, 0x00]);
            let mut cert = vec![0x30, body.len() as u8];
            cert.extend_from_slice(&body);
            cert
        };
        let ecdsa_sha384 = cert(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]);
        assert_eq!(end_point_hash(&ecdsa_sha384).map(|h| h.len()), Some(48));
        let sha1_rsa = cert(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05]);
        assert_eq!(end_point_hash(&sha1_rsa).map(|h| h.len()), Some(32));
        let ed25519 = cert(&[0x2b, 0x65, 0x70]);
        assert_eq!(end_point_hash(&ed25519), None);
        assert_eq!(end_point_hash(b"\x30\x85garbage"), None);
    }
}
