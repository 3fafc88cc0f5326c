//! A forward proxy on 127.0.0.1 for tests of outboxd's egress proxy: it records what each
//! client connection asked for and then tunnels the bytes.
//!
//! * `CONNECT host:port` (an `https://` target): answers `200 Connection established` and
//!   tunnels; the TLS inside is between outboxd and the target, as with a real proxy.
//! * An absolute-form request (`POST http://host:port/path HTTP/1.1`, an `http://` target):
//!   connects to `host:port`, forwards the request head in origin form (without
//!   `Proxy-Authorization`), then tunnels the rest of the connection.
//!
//! Only the first request of each client connection is recorded ([`Seen`]); later requests
//! on a kept-alive connection pass through unseen (tests look at the first). Waiting is a
//! poll with a deadline ([`Proxy::wait_for`]), never a sleep.
//!
//! [`Proxy::start_tls`] serves the same proxy over TLS (an `https://` proxy URL): the client
//! speaks TLS to the proxy first, with the test CA's server certificate ([`Certs`]), and
//! then asks for the tunnel inside that TLS.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::tls::Certs;

/// The longest request head read.
const MAX_HEAD: usize = 64 * 1024;

/// What one client connection asked the proxy for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `CONNECT`, `POST`, …
    pub method: String,
    /// `127.0.0.1:4443` for CONNECT, `http://127.0.0.1:8080/hook` for absolute form.
    pub target: String,
    /// The `Proxy-Authorization` header, if the client sent one.
    pub proxy_authorization: Option<String>,
    /// The request came inside TLS to the proxy ([`Proxy::start_tls`]).
    pub tls: bool,
}

/// A running proxy; it stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    tls: bool,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Handshakes a client broke off or failed (e.g. it did not trust the certificate).
    refusals: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Binds 127.0.0.1:0 and serves plain HTTP.
    pub async fn start() -> Proxy {
        Proxy::bind(None).await
    }

    /// Binds 127.0.0.1:0 and serves over TLS with `certs`' server certificate (for
    /// `localhost` and `127.0.0.1`, signed by `certs`' CA).
    pub async fn start_tls(certs: &Certs) -> Proxy {
        let acceptor = TlsAcceptor::from(crate::tls_receiver::server_config(certs, false));
        Proxy::bind(Some(acceptor)).await
    }

    async fn bind(tls: Option<TlsAcceptor>) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("binding the proxy on 127.0.0.1");
        let addr = listener.local_addr().expect("the proxy's address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let is_tls = tls.is_some();
        let task = {
            let (seen, refusals) = (Arc::clone(&seen), Arc::clone(&refusals));
            crate::poll::serve_each(listener, move |stream| {
                let (seen, refusals, tls) = (Arc::clone(&seen), Arc::clone(&refusals), tls.clone());
                async move {
                    let Some(acceptor) = tls else {
                        return serve(stream, seen, false).await;
                    };
                    match acceptor.accept(stream).await {
                        Ok(stream) => serve(stream, seen, true).await,
                        Err(e) => lock(&refusals).push(e.to_string()),
                    }
                }
            })
        };
        Proxy {
            addr,
            tls: is_tls,
            seen,
            refusals,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`, or `https://…` for a TLS proxy.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the connections so far asked for, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }

    /// Why the TLS handshakes that failed failed, as the proxy saw it (e.g. the client sent
    /// an alert: it did not trust the certificate).
    pub fn refusals(&self) -> Vec<String> {
        lock(&self.refusals).clone()
    }

    /// Waits until `n` connections have been seen; false at the deadline.
    pub async fn wait_for(&self, n: usize, deadline: Duration) -> bool {
        crate::poll::poll_until(deadline, || async { self.seen().len() >= n }).await
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One client connection (plain or inside TLS): read the head, record it, tunnel.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: S,
    seen: Arc<Mutex<Vec<Seen>>>,
    tls: bool,
) {
    let Some((head, rest)) = read_head(&mut client).await else {
        return;
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (method, target, version) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("HTTP/1.1").to_owned(),
    );
    let headers: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    let is_proxy_header = |l: &&str| {
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        name == "proxy-authorization" || name == "proxy-connection"
    };
    let proxy_authorization = headers
        .iter()
        .find(|l| {
            l.split(':')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case("proxy-authorization"))
        })
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned());
    lock(&seen).push(Seen {
        method: method.clone(),
        target: target.clone(),
        proxy_authorization,
        tls,
    });

    if method.eq_ignore_ascii_case("CONNECT") {
        let Ok(mut upstream) = TcpStream::connect(&target).await else {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
            return;
        };
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        if !rest.is_empty() && upstream.write_all(&rest).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        return;
    }

    let Ok(url) = url::Url::parse(&target) else {
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        return;
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        return;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(mut upstream) = TcpStream::connect((host, port)).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    let origin_form = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let mut forwarded = format!("{method} {origin_form} {version}\r\n");
    for h in headers.iter().filter(|l| !is_proxy_header(l)) {
        forwarded.push_str(h);
        forwarded.push_str("\r\n");
    }
    forwarded.push_str("\r\n");
    if upstream.write_all(forwarded.as_bytes()).await.is_err()
        || upstream.write_all(&rest).await.is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// The request head (up to the blank line, as text) and the bytes read after it.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    // Each round reads at least a byte or ends; the head is at most MAX_HEAD.
    while buf.len() < MAX_HEAD {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            return Some((head, buf[end + 4..].to_vec()));
        }
    }
    None
}
