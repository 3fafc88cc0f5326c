//! One signed webhook attempt (SPEC §3): `POST <url>` with the Standard Webhooks headers,
//! through the SSRF guard (SPEC §7), turned into an [`Outcome`].
//!
//! * One [`reqwest::Client`] per process ([`Sender`] is a cheap clone): connections are pooled
//!   and reused per host. Redirects are never followed (a 3xx is a failed attempt with kind
//!   `status`), and host names are resolved by [`GuardedResolver`], so the addresses connected
//!   to are exactly the ones the SSRF guard accepted.
//! * No proxy unless one is configured ([`crate::egress`]; the environment's proxy variables
//!   are read by the configuration, never behind its back). Through a proxy, the proxy
//!   resolves the target: before sending, an IP-literal target is checked as always, and a
//!   host name is resolved here and refused if any of its addresses is (`crate::ssrf` says
//!   what the guard cannot see then). An `https://` proxy's certificate is checked against the
//!   same roots as endpoints' (the system's and `OUTBOXD_EGRESS_CA_FILE`: reqwest builds the
//!   proxy's TLS from the client's); a failure with no answer names the proxy
//!   ([`through_proxy`]), which may be the hop that failed.
//! * Endpoints that present a client certificate (mutual TLS) get a client of their own per
//!   certificate ([`identities`]), built the same way plus the identity, and rebuilt when the
//!   mounted files change. Extra trusted roots (`OUTBOXD_EGRESS_CA_FILE`) apply to every
//!   client, next to the system's.
//! * The request timeout covers the whole attempt: connecting, sending, the response head and
//!   reading the response excerpt.
//! * Only the first [`EXCERPT_LIMIT`] bytes of a response body are read; the rest is never
//!   downloaded (the connection is closed instead of being returned to the pool).
//! * [`Sender::send`] never fails and never panics on bad input: every problem is an
//!   [`Outcome::Failed`] with an [`ErrorKind`].

pub(crate) mod identities;
#[cfg(test)]
mod properties;

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{
    CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT,
};
use tokio::time::Instant;

use super::{EXCERPT_LIMIT, ErrorKind, Outcome};
use crate::egress::EgressProxy;
use crate::signing::{Secret, signature_header};
use crate::ssrf::{self, AddressPolicy, BlockedAddress, GuardedResolver, ResolveError, UrlError};

/// The default `OUTBOXD_CONNECT_TIMEOUT` (SPEC §3: connect 5 s).
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default `OUTBOXD_REQUEST_TIMEOUT` (SPEC §3: total 15 s).
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The default `OUTBOXD_MAX_PAYLOAD_BYTES`: 64 MiB (SPEC §1 asks for at least 10 MB).
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Settings of the HTTP client.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// TCP (+ TLS) connect timeout. Default 5 s.
    pub connect_timeout: Duration,
    /// Total time of one attempt, from the first byte sent to the end of the excerpt.
    /// Default 15 s.
    pub request_timeout: Duration,
    /// Largest request body (payload) sent; larger ones fail with `body_too_large`.
    /// Default 64 MiB.
    pub max_body_bytes: usize,
    /// Networks exempt from the SSRF guard (`OUTBOXD_ALLOW_NETWORKS`).
    pub allow_networks: Vec<ipnet::IpNet>,
    /// `outboxd/<version>`.
    pub user_agent: String,
    /// The egress proxy, if deliveries use one (`OUTBOXD_EGRESS_PROXY`, `HTTPS_PROXY`, …).
    pub proxy: Option<EgressProxy>,
    /// Extra trusted roots for endpoints' server certificates, next to the system's
    /// (`OUTBOXD_EGRESS_CA_FILE`, read by [`read_ca_file`]).
    pub extra_roots: Vec<reqwest::Certificate>,
    /// Where client certificates are mounted (`OUTBOXD_CLIENT_CERT_DIR`).
    pub client_cert_dir: Option<PathBuf>,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            allow_networks: Vec::new(),
            user_agent: concat!("outboxd/", env!("CARGO_PKG_VERSION")).to_owned(),
            proxy: None,
            extra_roots: Vec::new(),
            client_cert_dir: None,
        }
    }
}

/// Why a [`Sender`] cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("the user agent {0:?} is not a valid header value")]
    InvalidUserAgent(String),
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Why `OUTBOXD_EGRESS_CA_FILE` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    Empty { path: PathBuf },
    #[error("{} is not a PEM certificate bundle: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

/// The certificates of a PEM bundle (`OUTBOXD_EGRESS_CA_FILE`): roots trusted for endpoints'
/// server certificates, next to the system's.
pub fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, CaFileError> {
    let pem = std::fs::read(path).map_err(|source| CaFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| CaFileError::Invalid {
        path: path.to_owned(),
        reason: error_text(&e),
    })?;
    if certs.is_empty() {
        return Err(CaFileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// What every client of a [`Sender`] is built from (with or without a client certificate).
#[derive(Clone)]
pub(crate) struct ClientBase {
    connect_timeout: Duration,
    user_agent: HeaderValue,
    resolver: GuardedResolver,
    proxy: Option<EgressProxy>,
    extra_roots: Vec<reqwest::Certificate>,
}

impl ClientBase {
    /// A client builder with the settings every delivery client shares.
    fn builder(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .pool_max_idle_per_host(64)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .user_agent(self.user_agent.clone())
            .dns_resolver(Arc::new(self.resolver.clone()))
            .tls_certs_merge(self.extra_roots.iter().cloned());
        match &self.proxy {
            // Never the environment's proxy behind the configuration's back.
            None => builder.no_proxy(),
            Some(proxy) => {
                let proxy = proxy.clone();
                builder.proxy(reqwest::Proxy::custom(move |target| {
                    proxy.proxy_for(target).map(|p| p.url().clone())
                }))
            }
        }
    }
}

/// Sends webhook attempts. Cheap to clone; all clones share one connection pool.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    /// Clients that present a client certificate, one per certificate.
    identities: identities::Identities,
    policy: Arc<AddressPolicy>,
    resolver: GuardedResolver,
    proxy: Option<EgressProxy>,
    request_timeout: Duration,
    max_body_bytes: usize,
    user_agent: HeaderValue,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("policy", &self.inner.policy)
            .field("proxy", &self.inner.proxy)
            .field("request_timeout", &self.inner.request_timeout)
            .field("max_body_bytes", &self.inner.max_body_bytes)
            .finish_non_exhaustive()
    }
}

/// One attempt of one event to one endpoint.
#[derive(Debug, Clone)]
pub struct WebhookRequest<'a> {
    pub url: &'a str,
    /// `webhook-id`: the event's `event_id`.
    pub msg_id: &'a str,
    /// `webhook-timestamp`: unix seconds of this attempt, chosen by the caller.
    pub timestamp: i64,
    /// The exact bytes sent and signed.
    pub body: Bytes,
    /// The endpoint's active secrets; one signature each.
    pub secrets: &'a [Secret],
    /// The endpoint's extra headers, validated at config load ([`parse_extra_headers`]).
    pub endpoint_headers: &'a HeaderMap,
    /// Raw JSON text of `outbox.events.headers` (an object of string values), if any.
    pub event_headers: Option<&'a str>,
    /// The body's content type; `None`: `application/json` (a published event's payload).
    /// A relayed inbound request sends the provider's.
    pub content_type: Option<HeaderValue>,
    /// A relayed inbound request's original headers (prefixed) and provenance
    /// ([`crate::delivery::relay`]); sent as they are, after the endpoint's headers.
    pub relayed_headers: Option<&'a HeaderMap>,
    /// The name of the client certificate to present (mutual TLS;
    /// `outbox.endpoints.client_certificate`), if any.
    pub client_certificate: Option<&'a str>,
}

impl Sender {
    pub fn new(cfg: SenderConfig) -> Result<Self, SenderError> {
        let user_agent = HeaderValue::from_str(&cfg.user_agent)
            .map_err(|_| SenderError::InvalidUserAgent(cfg.user_agent.clone()))?;
        let policy = Arc::new(AddressPolicy::new(cfg.allow_networks));
        let trusted = cfg
            .proxy
            .as_ref()
            .map(EgressProxy::proxy_host_names)
            .unwrap_or_default();
        let resolver = GuardedResolver::trusting(policy.clone(), trusted);
        let base = ClientBase {
            connect_timeout: cfg.connect_timeout,
            user_agent: user_agent.clone(),
            resolver: resolver.clone(),
            proxy: cfg.proxy.clone(),
            extra_roots: cfg.extra_roots,
        };
        let client = base.builder().build().map_err(SenderError::Client)?;
        Ok(Sender {
            inner: Arc::new(Inner {
                client,
                identities: identities::Identities::new(cfg.client_cert_dir, base),
                policy,
                resolver,
                proxy: cfg.proxy,
                request_timeout: cfg.request_timeout,
                max_body_bytes: cfg.max_body_bytes,
                user_agent,
            }),
        })
    }

    /// The SSRF policy in force (e.g. to check endpoint URLs when they are created).
    pub fn policy(&self) -> &AddressPolicy {
        &self.inner.policy
    }

    /// Makes one attempt. Never fails: every problem is an [`Outcome::Failed`].
    pub async fn send(&self, req: WebhookRequest<'_>) -> Outcome {
        let inner = &*self.inner;
        let deadline = Instant::now() + inner.request_timeout;

        if req.body.len() > inner.max_body_bytes {
            return failed(
                ErrorKind::BodyTooLarge,
                format!(
                    "the payload is {} bytes, more than the maximum request body of {} bytes",
                    req.body.len(),
                    inner.max_body_bytes
                ),
            );
        }
        if req.secrets.is_empty() {
            // Not the event's fault (so not `invalid_event`, which is permanent): the
            // endpoint can get a secret and the retry will go through.
            return failed(
                ErrorKind::Request,
                "the endpoint has no signing secret".into(),
            );
        }
        let headers = match self.build_headers(&req) {
            Ok(h) => h,
            Err(message) => return failed(ErrorKind::InvalidEvent, message),
        };
        let url = match url::Url::parse(req.url) {
            Ok(u) => u,
            Err(e) => return failed(ErrorKind::InvalidUrl, format!("invalid URL: {e}")),
        };
        match ssrf::check_url(&url, &inner.policy) {
            Ok(()) => {}
            Err(UrlError::Invalid(m)) => {
                return failed(ErrorKind::InvalidUrl, format!("invalid URL: {m}"));
            }
            Err(UrlError::Blocked(b)) => return failed(ErrorKind::BlockedAddress, b.to_string()),
        }
        if let Err(outcome) = self.check_through_proxy(&url).await {
            return outcome;
        }
        // Named in the message of a failure before any answer: the proxy may be what failed
        // (unreachable, an untrusted certificate), and the operator must know it was in the way.
        let through = inner
            .proxy
            .as_ref()
            .and_then(|p| p.proxy_for(&url))
            .map(|p| p.to_string());
        let client = match req.client_certificate {
            None => inner.client.clone(),
            Some(name) => match inner.identities.client(name) {
                Ok(c) => c,
                Err(e) => return failed(ErrorKind::Tls, e.to_string()),
            },
        };
        let request = match client
            .post(url)
            .headers(headers)
            .body(req.body.clone())
            .build()
        {
            Ok(r) => r,
            Err(e) => return failed(ErrorKind::InvalidUrl, error_text(&e.without_url())),
        };

        let response = match tokio::time::timeout_at(deadline, client.execute(request)).await {
            Err(_elapsed) => {
                return failed(
                    ErrorKind::Timeout,
                    format!(
                        "no response within the request timeout of {}",
                        humantime::format_duration(inner.request_timeout)
                    ),
                );
            }
            Ok(Err(e)) => return through_proxy(classify(e), through.as_deref()),
            Ok(Ok(r)) => r,
        };

        let status = response.status();
        let retry_after = if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::SERVICE_UNAVAILABLE
        {
            response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| parse_retry_after(v, SystemTime::now()))
        } else {
            None
        };
        // A failure or the deadline while reading the excerpt does not change the verdict:
        // the status has arrived (a 2xx is a delivery), the excerpt is what was read.
        let excerpt = read_excerpt(response, deadline).await;
        if status.is_success() {
            Outcome::Delivered {
                status: status.as_u16(),
                excerpt,
            }
        } else {
            Outcome::Failed {
                kind: ErrorKind::Status,
                status: Some(status.as_u16()),
                message: status_message(status),
                excerpt: Some(excerpt),
                retry_after,
            }
        }
    }

    /// Whether a delivery to `url` may go through the egress proxy. The proxy resolves the
    /// target's name, not [`GuardedResolver`]: a host name is resolved here first and refused
    /// if any of its addresses is (or if it does not resolve). A target named like a proxy,
    /// which the resolver trusts, is checked the same way even when it goes direct.
    async fn check_through_proxy(&self, url: &url::Url) -> Result<(), Outcome> {
        let inner = &*self.inner;
        let Some(url::Host::Domain(host)) = url.host() else {
            return Ok(()); // literal addresses: check_url judged them
        };
        let proxied = inner
            .proxy
            .as_ref()
            .is_some_and(|p| p.proxy_for(url).is_some());
        if !proxied && !inner.resolver.is_trusted(host) {
            return Ok(()); // direct: the resolver checks at connect time
        }
        inner.resolver.check_through_proxy(host).await.map_err(|e| {
            let kind = match e {
                ResolveError::Blocked { .. } => ErrorKind::BlockedAddress,
                ResolveError::Lookup { .. } | ResolveError::NoAddresses { .. } => ErrorKind::Dns,
            };
            failed(
                kind,
                format!(
                    "{} (checked by outboxd before sending through the egress proxy)",
                    error_text(&e)
                ),
            )
        })
    }

    /// Loads the client certificates `names` now (at start-up and when the catalog changes),
    /// so a missing or invalid one is logged before a delivery needs it. Never fails.
    pub fn preload_client_certificates<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        for name in names {
            // The error is logged by `client` (once per change of the files).
            let _ = self.inner.identities.client(name);
        }
    }

    /// For `/metrics`: each client certificate of `names`, with its expiry (the leaf's
    /// `notAfter`, Unix seconds) or `None` when it cannot be used now. Looks at the files as
    /// a delivery would (so a rotated Secret shows within seconds); never fails.
    pub fn client_certificate_expiry<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Vec<(&'a str, Option<i64>)> {
        names
            .into_iter()
            .map(|name| (name, self.inner.identities.expiry(name).ok()))
            .collect()
    }

    /// The request headers: ours, then the endpoint's, then the event's.
    ///
    /// Extra headers never replace `content-type`, `content-length`, `host`, `user-agent`,
    /// any `webhook-*` header or the hop-by-hop/framing headers (see [`is_reserved_header`]):
    /// such entries are dropped silently, so neither an endpoint nor an event can break the
    /// signature or the HTTP framing. An event header replaces an endpoint header of the same
    /// name.
    fn build_headers(&self, req: &WebhookRequest<'_>) -> Result<HeaderMap, String> {
        let mut headers = HeaderMap::new();
        for (name, value) in req.endpoint_headers {
            if !is_reserved_header(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        if let Some(json) = req.event_headers {
            let event =
                parse_extra_headers(json).map_err(|e| format!("invalid event headers: {e}"))?;
            for name in event.keys() {
                headers.remove(name);
            }
            for (name, value) in &event {
                if !is_reserved_header(name) {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
        if let Some(relayed) = req.relayed_headers {
            for (name, value) in relayed {
                headers.append(name.clone(), value.clone());
            }
        }
        let msg_id = ascii_header_value(req.msg_id).ok_or_else(|| {
            "the event_id cannot be sent as a webhook-id header (only visible ASCII is allowed)"
                .to_owned()
        })?;
        let signature = signature_header(req.secrets, req.msg_id, req.timestamp, &req.body);
        let signature = HeaderValue::from_str(&signature)
            .map_err(|_| "the webhook signature is not a valid header value".to_owned())?;
        headers.insert(
            CONTENT_TYPE,
            req.content_type
                .clone()
                .unwrap_or_else(|| HeaderValue::from_static("application/json")),
        );
        headers.insert(USER_AGENT, self.inner.user_agent.clone());
        headers.insert(HeaderName::from_static("webhook-id"), msg_id);
        headers.insert(
            HeaderName::from_static("webhook-timestamp"),
            HeaderValue::from(req.timestamp),
        );
        headers.insert(HeaderName::from_static("webhook-signature"), signature);
        Ok(headers)
    }
}

/// Headers that extra (endpoint or event) headers may not set: ours (`content-type`,
/// `user-agent`, `webhook-*`), the ones the HTTP client derives (`content-length`, `host`)
/// and hop-by-hop/framing headers (`connection`, `transfer-encoding`, …).
pub fn is_reserved_header(name: &HeaderName) -> bool {
    let n = name.as_str(); // always lowercase
    n.starts_with("webhook-")
        || *name == CONTENT_TYPE
        || *name == CONTENT_LENGTH
        || *name == HOST
        || *name == USER_AGENT
        || matches!(
            n,
            "connection"
                | "keep-alive"
                | "proxy-connection"
                | "transfer-encoding"
                | "te"
                | "trailer"
                | "upgrade"
        )
}

/// Parses and validates extra headers given as a JSON object of strings, e.g.
/// `{"x-tenant": "acme"}`. Names must be valid HTTP header names, values visible ASCII
/// (spaces and tabs allowed). JSON `null` means no headers. Reserved names
/// ([`is_reserved_header`]) are accepted here and dropped when sending.
///
/// The error message names the offending header but never repeats its value (it may be a
/// credential).
pub fn parse_extra_headers(json: &str) -> Result<HeaderMap, String> {
    use serde_json::Value;
    let value: Value = serde_json::from_str(json)
        .map_err(|e| format!("headers must be a JSON object of strings: {e}"))?;
    let object = match value {
        Value::Object(o) => o,
        Value::Null => return Ok(HeaderMap::new()),
        other => {
            return Err(format!(
                "headers must be a JSON object of strings, got {}",
                json_type(&other)
            ));
        }
    };
    let mut headers = HeaderMap::with_capacity(object.len());
    for (name, value) in object {
        let shown = shorten(&name);
        let Value::String(value) = value else {
            return Err(format!(
                "header {shown:?}: the value must be a string, got {}",
                json_type(&value)
            ));
        };
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{shown:?} is not a valid header name"))?;
        // `HeaderValue` would also take non-ASCII bytes (obs-text), which receivers decode
        // inconsistently (often as Latin-1): only ASCII is accepted.
        let header_value = ascii_header_value(&value).ok_or_else(|| {
            format!(
                "header {shown:?}: the value is not a valid header value \
                 (only visible ASCII, spaces and tabs are allowed)"
            )
        })?;
        headers.insert(header_name, header_value);
    }
    Ok(headers)
}

/// A header value made of visible ASCII, spaces and tabs only.
fn ascii_header_value(s: &str) -> Option<HeaderValue> {
    if !s.is_ascii() {
        return None;
    }
    HeaderValue::from_str(s).ok()
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn shorten(s: &str) -> &str {
    const MAX: usize = 64;
    if s.len() <= MAX {
        s
    } else {
        &s[..s.floor_char_boundary(MAX)]
    }
}

fn failed(kind: ErrorKind, message: String) -> Outcome {
    Outcome::Failed {
        kind,
        status: None,
        message,
        excerpt: None,
        retry_after: None,
    }
}

/// "HTTP 503 Service Unavailable".
fn status_message(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

/// `Retry-After` as delta-seconds or an HTTP-date; a date in the past is zero.
fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let s = value.to_str().ok()?.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly large values saturate; the retry policy caps them anyway.
        return Some(Duration::from_secs(s.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let when = httpdate::parse_http_date(s).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Reads at most [`EXCERPT_LIMIT`] bytes of the body, until `deadline`, then drops the
/// response (closing the connection if the body was not finished).
async fn read_excerpt(mut response: reqwest::Response, deadline: Instant) -> String {
    let mut buf = Vec::with_capacity(
        EXCERPT_LIMIT.min(
            response
                .content_length()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(EXCERPT_LIMIT),
        ),
    );
    let mut truncated = false;
    // Each round either adds a byte, ends the body or fails; the bound only guards against a
    // peer sending an endless run of empty frames (the deadline would stop it too).
    for _ in 0..(EXCERPT_LIMIT * 4) {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let room = EXCERPT_LIMIT - buf.len();
                if chunk.len() >= room {
                    buf.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(Ok(None)) => break,
            Ok(Err(_)) | Err(_) => {
                truncated = true;
                break;
            }
        }
    }
    excerpt_text(&buf, truncated)
}

/// Lossy UTF-8 of the excerpt, at most [`EXCERPT_LIMIT`] bytes long. A character cut by the
/// limit is dropped rather than shown as U+FFFD; NUL characters (which PostgreSQL `text`
/// cannot store) become U+FFFD.
fn excerpt_text(bytes: &[u8], truncated: bool) -> String {
    let bytes = if truncated {
        trim_incomplete_tail(bytes)
    } else {
        bytes
    };
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    if text.contains('\0') {
        text = text.replace('\0', "\u{FFFD}");
    }
    if text.len() > EXCERPT_LIMIT {
        text.truncate(text.floor_char_boundary(EXCERPT_LIMIT));
    }
    text
}

/// `b` without a UTF-8 sequence that starts in its last 3 bytes and is cut short.
fn trim_incomplete_tail(b: &[u8]) -> &[u8] {
    for back in 1..=b.len().min(3) {
        let i = b.len() - back;
        let byte = b[i];
        if byte & 0xC0 == 0x80 {
            continue; // continuation byte: look further back for the lead byte
        }
        let needed = match byte {
            0xF0..=0xF7 => 4,
            0xE0..=0xEF => 3,
            0xC0..=0xDF => 2,
            _ => 1,
        };
        return if needed > back { &b[..i] } else { b };
    }
    b
}

/// The errors behind `err`, outermost first. `io::Error::source()` skips the error it wraps,
/// so that one is visited explicitly (that is where rustls errors sit).
fn error_chain<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut chain = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        if chain.len() >= 32 {
            break;
        }
        chain.push(e);
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(wrapped) => Some(wrapped as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    chain
}

/// The messages of an error chain joined with ": ", skipping a message already contained
/// in the previous one.
fn chain_text(chain: &[&(dyn StdError + 'static)]) -> String {
    let mut out = String::new();
    let mut previous = String::new();
    for e in chain {
        let text = e.to_string();
        if text.is_empty() || previous.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        previous = text;
    }
    out
}

fn error_text(err: &(dyn StdError + 'static)) -> String {
    chain_text(&error_chain(err))
}

/// Turns a reqwest error (no response arrived) into a failed outcome.
///
/// Our resolver's [`ResolveError`] travels inside reqwest's error (reqwest tags it as a DNS
/// error, hyper-util as a connect error); it is found by walking `source()` and downcasting.
fn classify(err: reqwest::Error) -> Outcome {
    // The URL can carry credentials (userinfo, tokens in the query): keep it out of messages.
    let err = err.without_url();
    let chain = error_chain(&err);

    let blocked_at = chain.iter().position(|e| {
        e.is::<BlockedAddress>()
            || matches!(
                e.downcast_ref::<ResolveError>(),
                Some(ResolveError::Blocked { .. })
            )
    });
    if let Some(i) = blocked_at {
        return failed(ErrorKind::BlockedAddress, chain_text(&chain[i..]));
    }

    let message = chain_text(&chain);
    let is_io = |kinds: &[std::io::ErrorKind]| {
        chain.iter().any(|e| {
            e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| kinds.contains(&io.kind()))
        })
    };
    let kind = if err.is_timeout() || is_io(&[std::io::ErrorKind::TimedOut]) {
        ErrorKind::Timeout
    } else if err.is_dns() || chain.iter().any(|e| e.is::<ResolveError>()) {
        ErrorKind::Dns
    } else if chain.iter().any(|e| e.is::<rustls::Error>()) {
        ErrorKind::Tls
    } else if err.is_connect()
        || is_io(&[
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::ConnectionAborted,
            std::io::ErrorKind::BrokenPipe,
            std::io::ErrorKind::UnexpectedEof,
            std::io::ErrorKind::NotConnected,
        ])
        || chain.iter().any(|e| {
            // The receiver closed the connection before (fully) answering.
            e.downcast_ref::<hyper::Error>()
                .is_some_and(|h| h.is_incomplete_message() || h.is_closed() || h.is_canceled())
        })
    {
        ErrorKind::Connect
    } else {
        ErrorKind::Request
    };
    failed(kind, message)
}

/// A failure with no answer, through the egress proxy `proxy` (shown with its credentials
/// masked): the message says so, since the failing hop may be the proxy itself (TCP, or the
/// TLS of an `https://` proxy) as well as the endpoint behind it.
fn through_proxy(outcome: Outcome, proxy: Option<&str>) -> Outcome {
    match (outcome, proxy) {
        (
            Outcome::Failed {
                kind,
                status,
                message,
                excerpt,
                retry_after,
            },
            Some(proxy),
        ) => Outcome::Failed {
            kind,
            status,
            message: format!("{message} (through the egress proxy {proxy})"),
            excerpt,
            retry_after,
        },
        (outcome, _) => outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::{Receiver, Reply, always, sequence};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn loopback_allowed(request_timeout: Duration) -> Sender {
        Sender::new(SenderConfig {
            request_timeout,
            allow_networks: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            ..SenderConfig::default()
        })
        .unwrap()
    }

    fn now() -> i64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    struct Req<'a> {
        url: String,
        body: Bytes,
        secrets: Vec<Secret>,
        endpoint_headers: HeaderMap,
        event_headers: Option<&'a str>,
        timestamp: i64,
    }

    impl<'a> Req<'a> {
        fn new(url: String) -> Self {
            Req {
                url,
                body: Bytes::from_static(br#"{"id":42,"status":"paid"}"#),
                secrets: vec![Secret::parse(SECRET).unwrap()],
                endpoint_headers: HeaderMap::new(),
                event_headers: None,
                timestamp: now(),
            }
        }
        fn get(&self) -> WebhookRequest<'_> {
            WebhookRequest {
                url: &self.url,
                msg_id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
                timestamp: self.timestamp,
                body: self.body.clone(),
                secrets: &self.secrets,
                endpoint_headers: &self.endpoint_headers,
                event_headers: self.event_headers,
                content_type: None,
                relayed_headers: None,
                client_certificate: None,
            }
        }
    }

    fn kind(outcome: &Outcome) -> Option<ErrorKind> {
        match outcome {
            Outcome::Failed { kind, .. } => Some(*kind),
            Outcome::Delivered { .. } => None,
        }
    }

    fn message(outcome: &Outcome) -> &str {
        match outcome {
            Outcome::Failed { message, .. } => message,
            Outcome::Delivered { .. } => "",
        }
    }

    // (1)
    #[tokio::test]
    async fn delivers_a_signed_request_that_standard_webhooks_verifies() {
        let rx = Receiver::start(SECRET, always(Reply::ok().with_body("thank-u!"))).await;
        let sender = loopback_allowed(Duration::from_secs(5));
        let mut req = Req::new(rx.url_for("/hooks?x=1"));
        req.endpoint_headers = parse_extra_headers(
            r#"{"x-endpoint": "e", "x-both": "from-endpoint", "Content-Type": "text/plain",
                "webhook-id": "forged", "host": "evil.example"}"#,
        )
        .unwrap();
        req.event_headers = Some(
            r#"{"X-Tenant": "acme", "x-both": "from-event", "user-agent": "evil",
                "webhook-signature": "v1,forged", "content-length": "1", "transfer-encoding": "chunked"}"#,
        );
        let outcome = sender.send(req.get()).await;
        assert_eq!(
            outcome,
            Outcome::Delivered {
                status: 200,
                excerpt: "thank-u!".into()
            }
        );
        let seen = &rx.requests()[0];
        assert_eq!(
            (seen.method.as_str(), seen.path.as_str(), seen.version),
            ("POST", "/hooks?x=1", reqwest::Version::HTTP_11)
        );
        assert_eq!(seen.body, req.body);
        let h = &seen.headers;
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(
            h["user-agent"],
            concat!("outboxd/", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(h["webhook-id"], "msg_p5jXN8AQM9LWM0D4loKWxJek");
        assert_eq!(h["webhook-timestamp"], req.timestamp.to_string().as_str());
        assert_eq!(h["host"], rx.addr().to_string().as_str());
        assert_eq!(h["content-length"], req.body.len().to_string().as_str());
        assert!(h.get("transfer-encoding").is_none());
        assert_eq!(h["x-endpoint"], "e");
        assert_eq!(h["x-tenant"], "acme");
        assert_eq!(
            h.get_all("x-both").iter().collect::<Vec<_>>(),
            vec!["from-event"]
        );
        assert_eq!(h.get_all("webhook-signature").iter().count(), 1);
        standardwebhooks::Webhook::new(SECRET)
            .unwrap()
            .verify(&seen.body, h)
            .expect("signature verifies");
        assert!(seen.signature_ok);
    }

    #[tokio::test]
    async fn rotation_sends_a_signature_that_each_secret_verifies() {
        let rx = Receiver::start(SECRET, always(Reply::status(204))).await;
        let sender = loopback_allowed(Duration::from_secs(5));
        let other = "whsec_dGhpcyBpcyBhIG5ldyBzZWNyZXQ=";
        let mut req = Req::new(rx.url_for("/"));
        req.secrets = vec![
            Secret::parse(other).unwrap(),
            Secret::parse(SECRET).unwrap(),
        ];
        let outcome = sender.send(req.get()).await;
        assert_eq!(
            outcome,
            Outcome::Delivered {
                status: 204,
                excerpt: String::new()
            }
        );
        let seen = &rx.requests()[0];
        for secret in [SECRET, other] {
            standardwebhooks::Webhook::new(secret)
                .unwrap()
                .verify(&seen.body, &seen.headers)
                .expect("signature verifies");
        }
    }

    #[tokio::test]
    async fn reuses_pooled_connections() {
        let rx = Receiver::start(SECRET, always(Reply::ok().with_body("ok"))).await;
        let sender = loopback_allowed(Duration::from_secs(5));
        let req = Req::new(rx.url_for("/"));
        for _ in 0..3 {
            assert!(sender.send(req.get()).await.is_success());
        }
        assert_eq!(rx.connections_so_far().await, 1);
    }

    // (2)
    #[tokio::test]
    async fn literal_loopback_is_blocked_without_connecting() {
        let rx = Receiver::ok(SECRET).await;
        let addr = rx.addr();
        let sender = Sender::new(SenderConfig::default()).unwrap();
        for url in [
            format!("http://{addr}/"),
            format!("http://2130706433:{}/", addr.port()),
            format!("http://0177.0.0.1:{}/", addr.port()),
            format!("http://[::ffff:127.0.0.1]:{}/", addr.port()),
        ] {
            let outcome = sender.send(Req::new(url.clone()).get()).await;
            assert_eq!(
                kind(&outcome),
                Some(ErrorKind::BlockedAddress),
                "{url}: {outcome:?}"
            );
            assert!(
                message(&outcome).contains("127.0.0.1") && message(&outcome).contains("loopback"),
                "{outcome:?}"
            );
        }
        assert_eq!(rx.connections_so_far().await, 0);
    }

    // (3)
    #[tokio::test]
    async fn localhost_is_blocked_by_the_resolver() {
        let rx = Receiver::ok(SECRET).await;
        let sender = Sender::new(SenderConfig::default()).unwrap();
        let outcome = sender
            .send(Req::new(format!("http://localhost:{}/", rx.addr().port())).get())
            .await;
        assert_eq!(
            kind(&outcome),
            Some(ErrorKind::BlockedAddress),
            "{outcome:?}"
        );
        let m = message(&outcome);
        assert!(
            m.starts_with("every address localhost resolves to is refused: "),
            "{m}"
        );
        assert!(m.contains("a loopback address"), "{m}");
        assert_eq!(rx.connections_so_far().await, 0);

        // With the allowlist, the same name goes through.
        let outcome = loopback_allowed(Duration::from_secs(5))
            .send(Req::new(format!("http://localhost:{}/", rx.addr().port())).get())
            .await;
        assert!(outcome.is_success(), "{outcome:?}");
    }

    // (4)
    #[tokio::test]
    async fn redirects_are_not_followed() {
        let target = Receiver::ok(SECRET).await;
        let redirect = Reply::status(302)
            .with_header("location", &target.url_for("/"))
            .with_body("moved");
        let rx = Receiver::start(SECRET, always(redirect)).await;
        let outcome = loopback_allowed(Duration::from_secs(5))
            .send(Req::new(rx.url_for("/")).get())
            .await;
        assert_eq!(
            outcome,
            Outcome::Failed {
                kind: ErrorKind::Status,
                status: Some(302),
                message: "HTTP 302 Found".into(),
                excerpt: Some("moved".into()),
                retry_after: None,
            }
        );
        assert_eq!(target.connections_so_far().await, 0);
    }

    // (5)
    #[tokio::test]
    async fn retry_after_is_read_on_429_and_503_only() {
        let sender = loopback_allowed(Duration::from_secs(5));
        let rx = Receiver::start(
            SECRET,
            sequence([
                Reply::status(429)
                    .with_header("retry-after", "7")
                    .with_body("slow"),
                Reply::status(503).with_header("retry-after", "120"),
                Reply::status(500).with_header("retry-after", "7"),
                Reply::status(410),
            ]),
        )
        .await;
        let req = Req::new(rx.url_for("/"));
        let outcome = sender.send(req.get()).await;
        assert_eq!(
            outcome,
            Outcome::Failed {
                kind: ErrorKind::Status,
                status: Some(429),
                message: "HTTP 429 Too Many Requests".into(),
                excerpt: Some("slow".into()),
                retry_after: Some(Duration::from_secs(7)),
            }
        );

        let outcome = sender.send(req.get()).await;
        assert!(
            matches!(&outcome, Outcome::Failed { status: Some(503), retry_after: Some(d), message, .. }
                if *d == Duration::from_secs(120) && message == "HTTP 503 Service Unavailable"),
            "{outcome:?}"
        );

        let outcome = sender.send(req.get()).await;
        assert!(
            matches!(
                &outcome,
                Outcome::Failed {
                    status: Some(500),
                    retry_after: None,
                    ..
                }
            ),
            "{outcome:?}"
        );

        let outcome = sender.send(req.get()).await;
        assert!(outcome.is_gone(), "{outcome:?}");
    }

    #[test]
    fn parses_retry_after_forms() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(
            parse_retry_after(&v("7"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(parse_retry_after(&v(" 0 "), now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(&v("Sun, 06 Nov 1994 08:51:37 GMT"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after(&v("Sun, 06 Nov 1994 08:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(&v("99999999999999999999999"), now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse_retry_after(&v("-5"), now), None);
        assert_eq!(parse_retry_after(&v("soon"), now), None);
        assert_eq!(parse_retry_after(&v(""), now), None);
    }

    // (6)
    #[tokio::test]
    async fn a_hanging_receiver_times_out() {
        let rx = Receiver::start(SECRET, always(Reply::hang(Duration::from_secs(30)))).await;
        let sender = loopback_allowed(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let outcome = sender.send(Req::new(rx.url_for("/")).get()).await;
        let elapsed = started.elapsed();
        assert_eq!(kind(&outcome), Some(ErrorKind::Timeout), "{outcome:?}");
        assert!(
            elapsed >= Duration::from_millis(280) && elapsed < Duration::from_secs(2),
            "{elapsed:?}"
        );
        assert_eq!(
            message(&outcome),
            "no response within the request timeout of 300ms"
        );
    }

    // A 2xx whose body then stalls is still a delivery, cut at the deadline.
    #[tokio::test]
    async fn a_2xx_with_a_stalling_body_is_delivered() {
        // 100 bytes announced: "partial" at once, the rest over 30 s.
        let stalling = Reply::ok()
            .with_body("partial")
            .trickle(100, Duration::from_secs(30));
        let rx = Receiver::start(SECRET, always(stalling)).await;
        let sender = loopback_allowed(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let outcome = sender.send(Req::new(rx.url_for("/")).get()).await;
        assert_eq!(
            outcome,
            Outcome::Delivered {
                status: 200,
                excerpt: "partial".into()
            }
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    // (7a)
    #[tokio::test]
    async fn a_10_mb_body_is_not_read_fully() {
        let huge = Reply::ok().huge_body(10 * 1024 * 1024).fill("a");
        let rx = Receiver::start(SECRET, always(huge)).await;
        let sender = loopback_allowed(Duration::from_secs(10));
        let started = std::time::Instant::now();
        let outcome = sender.send(Req::new(rx.url_for("/")).get()).await;
        assert!(started.elapsed() < Duration::from_secs(3));
        match outcome {
            Outcome::Delivered { status, excerpt } => {
                assert_eq!(status, 200);
                assert_eq!(excerpt, "a".repeat(EXCERPT_LIMIT));
            }
            other => panic!("{other:?}"),
        }
    }

    // (7b)
    #[tokio::test]
    async fn a_never_ending_chunked_body_is_not_read_fully() {
        let rx = Receiver::start(SECRET, always(Reply::ok().endless_body().fill("é"))).await;
        let sender = loopback_allowed(Duration::from_secs(10));
        let started = std::time::Instant::now();
        let outcome = sender.send(Req::new(rx.url_for("/")).get()).await;
        assert!(started.elapsed() < Duration::from_secs(3));
        match outcome {
            Outcome::Delivered { status, excerpt } => {
                assert_eq!(status, 200);
                assert_eq!(excerpt, "é".repeat(EXCERPT_LIMIT / 2));
            }
            other => panic!("{other:?}"),
        }
    }

    // (8) A receiver that reads the request and closes without answering: the connection
    // broke mid-request, which is `connect` (see ErrorKind::Connect).
    #[tokio::test]
    async fn a_receiver_closing_without_answer_is_a_connect_failure() {
        let rx = Receiver::start(SECRET, always(Reply::close())).await;
        let outcome = loopback_allowed(Duration::from_secs(5))
            .send(Req::new(rx.url_for("/")).get())
            .await;
        assert_eq!(kind(&outcome), Some(ErrorKind::Connect), "{outcome:?}");
        assert!(!message(&outcome).contains("127.0.0.1"), "{outcome:?}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_failure() {
        // A port nothing listens on: bound, then closed at once (a receiver's listener would
        // close only once its task noticed).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let outcome = loopback_allowed(Duration::from_secs(5))
            .send(Req::new(format!("http://{addr}/")).get())
            .await;
        assert_eq!(kind(&outcome), Some(ErrorKind::Connect), "{outcome:?}");
    }

    #[tokio::test]
    async fn https_to_a_plain_http_receiver_is_a_tls_failure() {
        let rx = Receiver::ok(SECRET).await;
        let outcome = loopback_allowed(Duration::from_secs(5))
            .send(Req::new(format!("https://{}/", rx.addr())).get())
            .await;
        assert_eq!(kind(&outcome), Some(ErrorKind::Tls), "{outcome:?}");
        // The receiver saw a ClientHello, no HTTP.
        assert!(
            rx.wait_for_open_connections(0, Duration::from_secs(5))
                .await
        );
        assert_eq!(rx.counters().protocol_errors, 1);
    }

    // (9)
    #[tokio::test]
    async fn invalid_event_headers_fail_without_connecting() {
        let rx = Receiver::ok(SECRET).await;
        let sender = loopback_allowed(Duration::from_secs(5));
        for (headers, expected) in [
            (
                r#"{"x-a": "line\nbreak"}"#,
                "header \"x-a\": the value is not a valid header value",
            ),
            (
                r#"{"x-a": 5}"#,
                "header \"x-a\": the value must be a string, got a number",
            ),
            (
                r#"{"bad name": "v"}"#,
                "\"bad name\" is not a valid header name",
            ),
            (
                r#"["x-a"]"#,
                "headers must be a JSON object of strings, got an array",
            ),
            (r#"{"x-a": "#, "headers must be a JSON object of strings: "),
        ] {
            let mut req = Req::new(rx.url_for("/"));
            req.event_headers = Some(headers);
            let outcome = sender.send(req.get()).await;
            assert_eq!(kind(&outcome), Some(ErrorKind::InvalidEvent), "{outcome:?}");
            let m = message(&outcome);
            assert!(
                m.starts_with(&format!("invalid event headers: {expected}")),
                "{m}"
            );
        }
        let req = Req::new(rx.url_for("/"));
        let outcome = sender
            .send(WebhookRequest {
                msg_id: "evt\r\nx-injected: 1",
                ..req.get()
            })
            .await;
        assert_eq!(kind(&outcome), Some(ErrorKind::InvalidEvent), "{outcome:?}");
        assert_eq!(rx.connections_so_far().await, 0);
    }

    // (10)
    #[tokio::test]
    async fn a_body_above_the_limit_fails_without_connecting() {
        let rx = Receiver::ok(SECRET).await;
        let sender = Sender::new(SenderConfig {
            max_body_bytes: 10,
            allow_networks: vec!["127.0.0.0/8".parse().unwrap()],
            ..SenderConfig::default()
        })
        .unwrap();
        let mut req = Req::new(rx.url_for("/"));
        req.body = Bytes::from_static(b"01234567890");
        let outcome = sender.send(req.get()).await;
        assert_eq!(kind(&outcome), Some(ErrorKind::BodyTooLarge), "{outcome:?}");
        assert_eq!(
            message(&outcome),
            "the payload is 11 bytes, more than the maximum request body of 10 bytes"
        );
        req.body = Bytes::from_static(b"0123456789");
        assert!(sender.send(req.get()).await.is_success());
        assert_eq!(rx.connections_so_far().await, 1);
    }

    #[tokio::test]
    async fn unusable_urls_are_invalid_url() {
        let sender = loopback_allowed(Duration::from_secs(5));
        for url in [
            "not a url",
            "ftp://example.com/",
            "file:///etc/passwd",
            "http://",
        ] {
            let outcome = sender.send(Req::new(url.into()).get()).await;
            assert_eq!(
                kind(&outcome),
                Some(ErrorKind::InvalidUrl),
                "{url}: {outcome:?}"
            );
        }
    }

    #[tokio::test]
    async fn no_secret_is_a_retryable_failure() {
        let sender = loopback_allowed(Duration::from_secs(5));
        let mut req = Req::new("http://127.0.0.1:9/".into());
        req.secrets.clear();
        let outcome = sender.send(req.get()).await;
        assert_eq!(kind(&outcome), Some(ErrorKind::Request), "{outcome:?}");
    }

    #[test]
    fn parse_extra_headers_accepts_objects_of_strings() {
        let h = parse_extra_headers(r#"{"X-Tenant": "acme", "x-trace": "a b\tc"}"#).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h["x-tenant"], "acme");
        assert_eq!(h["x-trace"], "a b\tc");
        assert!(parse_extra_headers("null").unwrap().is_empty());
        assert!(parse_extra_headers("{}").unwrap().is_empty());
        assert!(parse_extra_headers(r#"{"x": "é"}"#).is_err());
        assert!(parse_extra_headers(r#"{"": "v"}"#).is_err());
        assert!(parse_extra_headers(r#"{"x": null}"#).is_err());
        assert!(parse_extra_headers(r#""x""#).is_err());
        // the value is never echoed
        let err = parse_extra_headers(r#"{"authorization": "Bearer s3cret\u0001"}"#).unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn reserved_headers() {
        for n in [
            "content-type",
            "Content-Length",
            "host",
            "user-agent",
            "webhook-id",
            "webhook-anything",
            "transfer-encoding",
            "connection",
        ] {
            assert!(
                is_reserved_header(&HeaderName::from_bytes(n.as_bytes()).unwrap()),
                "{n}"
            );
        }
        for n in ["authorization", "x-webhook-id", "x-tenant"] {
            assert!(
                !is_reserved_header(&HeaderName::from_bytes(n.as_bytes()).unwrap()),
                "{n}"
            );
        }
    }

    #[test]
    fn excerpt_text_stays_within_the_limit() {
        // a 2-byte character cut by the limit is dropped
        let mut bytes = vec![b'a'; EXCERPT_LIMIT - 1];
        bytes.push(0xC3);
        assert_eq!(excerpt_text(&bytes, true), "a".repeat(EXCERPT_LIMIT - 1));
        // invalid bytes and NULs are replaced, the result is still at most 4096 bytes
        let bytes = vec![0xFF; EXCERPT_LIMIT];
        let text = excerpt_text(&bytes, true);
        assert!(text.len() <= EXCERPT_LIMIT && text.starts_with('\u{FFFD}'));
        assert_eq!(excerpt_text(b"a\0b", false), "a\u{FFFD}b");
        assert_eq!(excerpt_text("héllo".as_bytes(), false), "héllo");
        assert_eq!(trim_incomplete_tail(&[b'a', 0xE2, 0x82]), b"a");
        assert_eq!(trim_incomplete_tail("a€".as_bytes()), "a€".as_bytes());
    }

    // Through an egress proxy the guard still judges the target, before anything is sent:
    // a literal address, and every address a name resolves to here. The proxy itself sits
    // on loopback (trusted: the operator's choice).
    #[tokio::test]
    async fn the_ssrf_guard_judges_the_target_before_the_proxy_sees_it() {
        let proxy = testkit::proxy::Proxy::start().await;
        let settings = crate::egress::ProxySettings {
            explicit: Some(&proxy.url()),
            ..Default::default()
        };
        let sender = Sender::new(SenderConfig {
            proxy: crate::egress::EgressProxy::from_settings(&settings).unwrap(),
            ..SenderConfig::default()
        })
        .unwrap();
        let outcome = sender
            .send(Req::new("http://127.0.0.1:9/".into()).get())
            .await;
        assert_eq!(
            kind(&outcome),
            Some(ErrorKind::BlockedAddress),
            "{outcome:?}"
        );
        let outcome = sender
            .send(Req::new("https://localhost:9/".into()).get())
            .await;
        assert_eq!(
            kind(&outcome),
            Some(ErrorKind::BlockedAddress),
            "{outcome:?}"
        );
        assert!(
            message(&outcome).contains("before sending through the egress proxy"),
            "{outcome:?}"
        );
        let outcome = sender
            .send(Req::new("https://no-such-host.invalid/".into()).get())
            .await;
        assert_eq!(kind(&outcome), Some(ErrorKind::Dns), "{outcome:?}");
        assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
    }

    #[test]
    fn sender_config_defaults() {
        let cfg = SenderConfig::default();
        assert_eq!(cfg.connect_timeout, Duration::from_secs(5));
        assert_eq!(cfg.request_timeout, Duration::from_secs(15));
        assert_eq!(cfg.max_body_bytes, 64 * 1024 * 1024);
        assert!(cfg.allow_networks.is_empty());
        assert!(cfg.user_agent.starts_with("outboxd/"));
        assert!(matches!(
            Sender::new(SenderConfig {
                user_agent: "bad\nagent".into(),
                ..SenderConfig::default()
            }),
            Err(SenderError::InvalidUserAgent(_))
        ));
    }
}
