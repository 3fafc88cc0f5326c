//! A webhook receiver over TLS on 127.0.0.1, for tests of mutual TLS: it serves with the
//! test CA's server certificate ([`Certs`], names `localhost` and `127.0.0.1`) and, when
//! asked, accepts only clients presenting a certificate signed by that CA. Every request is
//! answered `200` and recorded with the subject of the client certificate it came with; a
//! handshake the receiver refused is counted ([`TlsReceiver::refused`]).
//!
//! The plain [`crate::Receiver`] stays the receiver of every other test: this one only adds
//! what TLS needs (a handshake before HTTP, a client certificate to look at).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::tls::Certs;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct TlsRequest {
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// Whether the connection presented a client certificate (verified against the CA).
    pub client_certificate: bool,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<TlsRequest>>,
    refused: AtomicU64,
    refusals: Mutex<Vec<String>>,
}

/// A running TLS receiver; it stops when dropped.
pub struct TlsReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl TlsReceiver {
    /// Serves HTTPS with the CA's server certificate; with `require_client_certificate`, a
    /// client without a certificate signed by the CA is refused in the handshake.
    pub async fn start(certs: &Certs, require_client_certificate: bool) -> TlsReceiver {
        let config = server_config(certs, require_client_certificate);
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("binding the TLS receiver on 127.0.0.1");
        let addr = listener.local_addr().expect("the TLS receiver's address");
        let shared = Arc::new(Shared::default());
        let task = {
            let (acceptor, shared) = (TlsAcceptor::from(config), Arc::clone(&shared));
            crate::poll::serve_each(listener, move |stream| {
                serve(stream, acceptor.clone(), Arc::clone(&shared))
            })
        };
        TlsReceiver { addr, shared, task }
    }

    /// `https://127.0.0.1:<port><path>`
    pub fn url_for(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<TlsRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Handshakes refused so far (e.g. no client certificate).
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// rustls's reasons for the refused handshakes (the first few).
    pub fn refusals(&self) -> Vec<String> {
        self.shared
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until `n` requests arrived; false at the deadline.
    pub async fn wait_for_requests(&self, n: usize, deadline: Duration) -> bool {
        crate::poll::poll_until(deadline, || async { self.requests().len() >= n }).await
    }
}

impl Drop for TlsReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The rustls server side: the CA's server certificate; client certificates verified
/// against the CA (required, or not asked for). The TLS proxy ([`crate::proxy`]) serves with
/// it too.
pub(crate) fn server_config(
    certs: &Certs,
    require_client_certificate: bool,
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let (cert, key) = certs.server();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .expect("server.pem")
        .collect::<Result<_, _>>()
        .expect("server.pem certificates");
    let key = PrivateKeyDer::from_pem_file(&key).expect("server.key");
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("TLS versions");
    let builder = if require_client_certificate {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(certs.ca()).expect("ca.pem") {
            roots.add(ca.expect("ca.pem certificate")).expect("CA root");
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .expect("server certificate and key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

async fn serve(stream: tokio::net::TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let tls = match acceptor.accept(stream).await {
        Ok(tls) => tls,
        Err(e) => {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            let mut r = shared.refusals.lock().unwrap_or_else(|e| e.into_inner());
            if r.len() < 5 {
                r.push(e.to_string());
            }
            return;
        }
    };
    let client_certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .is_some_and(|c| !c.is_empty());
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = Arc::clone(&shared);
        async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            shared
                .requests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(TlsRequest {
                    path: parts.uri.path().to_owned(),
                    headers: parts.headers,
                    body,
                    client_certificate,
                });
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
}
