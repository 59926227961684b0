//! The AWS-compatible endpoints beside the gateway: the S3 endpoint over
//! the served version's buckets and the SQS endpoint over its queues, each
//! on its own listener (`--s3-listen`, `--sqs-listen`), over HTTPS when a
//! certificate is given (`--aws-tls-cert`, `--aws-tls-key`); the S3 one
//! with virtual-hosted-style buckets under `--s3-domain`.

use crate::serving::Serving;
use anyhow::Context as _;
use nimbus_access::AccessKeys;
use nimbus_gateway::Endpoint;
use nimbus_store::Store;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;

/// What `--s3-listen`, `--sqs-listen` and the TLS flags asked for.
#[derive(Clone, Default)]
pub(crate) struct EndpointSettings {
    pub s3: Option<SocketAddr>,
    /// Checked as the settings are made, so a bad one stops the start.
    pub s3_domain: Option<String>,
    pub sqs: Option<SocketAddr>,
    /// Made from the certificate and key files as the server opens, so a
    /// bad file stops the start before anything is served.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl EndpointSettings {
    pub(crate) fn new(
        s3: Option<SocketAddr>,
        s3_domain: Option<String>,
        sqs: Option<SocketAddr>,
        tls: Option<(PathBuf, PathBuf)>,
    ) -> anyhow::Result<Self> {
        let tls = match tls {
            Some((cert, key)) => Some(tls_acceptor(&cert, &key)?),
            None => None,
        };
        if let Some(domain) = &s3_domain {
            nimbus_s3::check_domain(domain).context("--s3-domain")?;
        }
        Ok(EndpointSettings {
            s3,
            s3_domain,
            sqs,
            tls,
        })
    }

    /// Binds the endpoints asked for and prints where each listens.
    pub(crate) async fn bind(
        &self,
        serving: &Arc<Serving>,
        store: &Arc<dyn Store>,
        keys: &Arc<AccessKeys>,
    ) -> anyhow::Result<Vec<Endpoint>> {
        let tls = self.tls.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut endpoints = Vec::new();
        if let Some(addr) = self.s3 {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("failed to bind the S3 endpoint to {addr}"))?;
            announce("s3", scheme, &listener)?;
            let view = serving.view();
            let handler = nimbus_s3::S3Endpoint::new(
                Arc::new(move || view.get().buckets.clone()),
                keys.clone(),
                self.s3_domain.as_deref(),
            )
            .context("--s3-domain")?;
            endpoints.push(Endpoint::new(listener, tls.clone(), Arc::new(handler)));
        }
        if let Some(addr) = self.sqs {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("failed to bind the SQS endpoint to {addr}"))?;
            announce("sqs", scheme, &listener)?;
            let view = serving.view();
            let queues = Arc::new(move || {
                // The declared queues; internal ones (`_async.F`, ...)
                // are Nimbus's own.
                Arc::new(
                    view.get()
                        .queues
                        .iter()
                        .filter(|q| !q.starts_with('_'))
                        .cloned()
                        .collect(),
                )
            });
            let store: Arc<dyn Store> = store.clone();
            let handler = nimbus_sqs::SqsEndpoint::new(
                queue_store(store.clone()),
                store.signals().clone(),
                queues,
                keys.clone(),
            )
            .https(tls.is_some());
            endpoints.push(Endpoint::new(listener, tls, Arc::new(handler)));
        }
        Ok(endpoints)
    }
}

fn queue_store(store: Arc<dyn Store>) -> Arc<dyn nimbus_store::QueueStore> {
    store
}

fn announce(name: &str, scheme: &str, listener: &TcpListener) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{name} listening on {scheme}://{}",
        listener.local_addr()?
    )?;
    out.flush()?;
    Ok(())
}

/// A TLS acceptor for the certificate chain and key in `cert` and `key`
/// (PEM), offering HTTP/1.1 (the AWS SDKs' protocol).
fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "--aws-tls-cert: cannot read certificates from {}",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        anyhow::bail!(
            "--aws-tls-cert: {} holds no PEM certificate",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "--aws-tls-key: cannot read a PEM private key from {}",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS: no protocol version available")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("--aws-tls-cert/--aws-tls-key: the key does not fit the certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
