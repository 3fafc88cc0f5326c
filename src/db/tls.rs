//! TLS to PostgreSQL with rustls (the crypto provider reqwest already brings, aws-lc-rs; no
//! OpenSSL): a tokio-postgres `MakeTlsConnect` built from the connection string's
//! [`TlsParams`]. Every connection outboxd opens (the pool, LISTEN, `migrate`) goes through
//! one of these.
//!
//! What is checked, by `sslmode` (libpq's meaning):
//!
//! | sslmode | encrypted | certificate chain | host name |
//! |---|---|---|---|
//! | `disable` | no | – | – |
//! | `prefer` (default) | if the server offers it | no | no |
//! | `require` | yes | only if `sslrootcert` is given | no |
//! | `verify-ca` | yes | yes | no |
//! | `verify-full` | yes | yes | yes |
//!
//! Channel binding (`SCRAM-SHA-256-PLUS`) is not offered; SCRAM without it works.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use super::url::{RootCert, SslMode, TlsParams};

/// Makes TLS connections as the connection string says. Cheap to clone (shared config).
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
    mode: SslMode,
    /// Completed handshakes, so a caller can tell whether its connection is encrypted.
    handshakes: Arc<AtomicU64>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("mode", &self.mode).finish()
    }
}

impl Tls {
    /// Reads the certificate files and builds the rustls configuration.
    pub fn new(params: &TlsParams) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let roots = match &params.root_cert {
            None => None,
            Some(source) => Some(Arc::new(root_store(source)?)),
        };
        let chain = match &roots {
            Some(roots) => Some(
                WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                    .build()
                    .map_err(|e| format!("sslrootcert: {e}"))?,
            ),
            None if matches!(params.mode, SslMode::VerifyCa | SslMode::VerifyFull) => {
                return Err(format!(
                    "sslmode={} needs sslrootcert",
                    params.mode.as_str()
                ));
            }
            None => None,
        };
        let verifier = Arc::new(Verifier {
            chain,
            host_name: params.mode == SslMode::VerifyFull,
            provider: provider.clone(),
        });
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &params.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("sslcert {}: {e}", cert.display()))?;
                if chain.is_empty() {
                    return Err(format!("sslcert {}: no certificate in it", cert.display()));
                }
                let key_der = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("sslkey {}: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| format!("sslcert/sslkey: {e}"))?
            }
        };
        // PostgreSQL 17's direct TLS negotiation requires it; older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Tls {
            config: Arc::new(config),
            mode: params.mode,
            handshakes: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The same configuration with its own handshake counter (to tell whether one particular
    /// connection ended up encrypted).
    pub fn counted(&self) -> Tls {
        Tls {
            handshakes: Arc::new(AtomicU64::new(0)),
            ..self.clone()
        }
    }

    /// TLS handshakes completed through this value (and its clones).
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }
}

fn root_store(source: &RootCert) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match source {
        RootCert::File(path) => {
            for cert in read_certs(path)? {
                store
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            }
        }
        RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(format!(
                    "sslrootcert=system: no certificate found in the system's trust store ({} errors)",
                    found.errors.len()
                ));
            }
        }
    }
    Ok(store)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "sslrootcert {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// What `sslmode` checks of the server's certificate. The handshake's signatures are always
/// verified; the certificate itself is checked against the root certificates only when
/// there are some (`prefer`, and `require` without `sslrootcert`, check nothing, as libpq
/// does), and must name the host only for `verify-full`.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    host_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.host_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS failure, saying which `sslmode` asked for what.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TlsError {
    message: String,
}

impl TlsError {
    fn new(mode: SslMode, host: &str, e: io::Error) -> TlsError {
        let rustls_error = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        let message = match rustls_error {
            Some(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => format!(
                "sslmode={}: the server's certificate is not valid for the host name {host:?} \
                 in DATABASE_URL ({e}); connect with the name the certificate carries, or use \
                 sslmode=verify-ca to check the chain only",
                mode.as_str()
            ),
            Some(rustls::Error::InvalidCertificate(_)) => format!(
                "sslmode={}: the server's certificate was refused ({e}); is sslrootcert the \
                 certificate authority that signed it?",
                mode.as_str()
            ),
            _ => format!("sslmode={}: {e}", mode.as_str()),
        };
        TlsError { message }
    }
}

/// One connection's TLS set-up (made per connection attempt by tokio-postgres).
pub struct Connect {
    tls: Tls,
    /// `None` for a Unix socket, where PostgreSQL offers no TLS.
    name: Option<ServerName<'static>>,
    host: String,
}

impl<S> MakeTlsConnect<S> for Tls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = Connect;
    type Error = TlsError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connect, TlsError> {
        Ok(Connect {
            tls: self.clone(),
            name: ServerName::try_from(domain.to_owned()).ok(),
            host: domain.to_owned(),
        })
    }
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsStream<S>, TlsError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let mode = self.tls.mode;
            let Some(name) = self.name else {
                return Err(TlsError {
                    message: format!(
                        "sslmode={}: {:?} is not a host name TLS can check",
                        mode.as_str(),
                        self.host
                    ),
                });
            };
            let stream = tokio_rustls::TlsConnector::from(self.tls.config.clone())
                .connect(name, stream)
                .await
                .map_err(|e| TlsError::new(mode, &self.host, e))?;
            self.tls.handshakes.fetch_add(1, Ordering::Relaxed);
            Ok(TlsStream(stream))
        })
    }
}

/// An encrypted connection to PostgreSQL.
pub struct TlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
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
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}
