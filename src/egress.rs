//! The egress proxy for deliveries: which target URLs go through which proxy. Pure.
//!
//! Off unless configured. `OUTBOXD_EGRESS_PROXY=<url>` sends every delivery through that proxy
//! (it wins over the usual variables); otherwise the usual variables apply: `HTTPS_PROXY` for
//! `https://` endpoints, `HTTP_PROXY` for `http://` ones (upper case first, then lower case, as
//! Go reads them), and `NO_PROXY` lists the hosts that are reached directly, whichever proxy
//! is in force. `OUTBOXD_EGRESS_PROXY=off` ignores the usual variables.
//!
//! `NO_PROXY` is a comma-separated list, as curl reads it: `*` (every host), a domain
//! (`example.com` or `.example.com`: that name and every name under it), an IP address or a
//! CIDR (`10.0.0.0/8`, matched against IP-literal hosts only), each optionally with `:port`.
//!
//! What the SSRF guard sees through a proxy (`crate::ssrf`): the proxy resolves the target's
//! name, so outboxd checks the target itself before sending (the literal address, or every
//! address the name resolves to here), and trusts the proxy's own address, which the operator
//! chose. A proxy URL's user name and password are never shown ([`ProxyUrl`]'s `Display` masks
//! them, as `crate::mask` masks endpoint URLs).

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use url::Url;

/// Why a proxy setting is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("{name}: {message}")]
    Invalid { name: &'static str, message: String },
}

/// A proxy URL (`http://` or `https://`, maybe with `user:password@`). `Debug` and `Display`
/// hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl(Url);

impl ProxyUrl {
    /// Parses `name`'s value; a bare `host:port` means `http://host:port`.
    pub fn parse(name: &'static str, raw: &str) -> Result<ProxyUrl, EgressError> {
        let invalid = |message: String| EgressError::Invalid { name, message };
        let raw = raw.trim();
        let with_scheme = if raw.contains("://") {
            raw.to_owned()
        } else {
            format!("http://{raw}")
        };
        let url = Url::parse(&with_scheme)
            .map_err(|e| invalid(format!("not a proxy URL like http://proxy:3128 ({e})")))?;
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(invalid(format!(
                    "the proxy must be http:// or https://, got {other}://"
                )));
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("the proxy URL has no host".into()));
        }
        Ok(ProxyUrl(url))
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The proxy's host name, when it is a name rather than an IP literal.
    pub fn host_name(&self) -> Option<&str> {
        match self.0.host() {
            Some(url::Host::Domain(d)) => Some(d),
            _ => None,
        }
    }
}

/// What a proxy URL's user name and password are shown as (the same as `crate::mask::MASK`;
/// this floor-1 module imports no other).
const MASK: &str = "********";

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.clone();
        if !shown.username().is_empty() {
            let _ = shown.set_username(MASK);
        }
        if shown.password().is_some() {
            let _ = shown.set_password(Some(MASK));
        }
        write!(f, "{shown}")
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

/// One `NO_PROXY` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bypass {
    /// Matches IP-literal hosts in the network.
    Network { net: IpNet, port: Option<u16> },
    /// Matches the name and every name under it (lower case, no leading dot).
    Domain { name: String, port: Option<u16> },
}

/// The hosts reached without the proxy (`NO_PROXY`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    every_host: bool,
    entries: Vec<Bypass>,
}

impl NoProxy {
    /// Parses a `NO_PROXY` list. Never fails: an entry that is neither an address nor a
    /// name-like string is kept as a name, which simply matches nothing real.
    pub fn parse(list: &str) -> NoProxy {
        let mut out = NoProxy::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                out.every_host = true;
                continue;
            }
            let (host, port) = split_port(entry);
            let host = host.trim_start_matches("*.").trim_start_matches('.');
            let unbracketed = host.trim_start_matches('[').trim_end_matches(']');
            let net = unbracketed
                .parse::<IpNet>()
                .ok()
                .or_else(|| unbracketed.parse::<IpAddr>().ok().map(IpNet::from));
            out.entries.push(match net {
                Some(net) => Bypass::Network { net, port },
                None => Bypass::Domain {
                    name: host.to_ascii_lowercase(),
                    port,
                },
            });
        }
        out
    }

    /// The target is reached directly.
    pub fn bypasses(&self, url: &Url) -> bool {
        if self.every_host {
            return true;
        }
        let port = url.port_or_known_default();
        let port_ok = |p: &Option<u16>| p.is_none() || *p == port;
        match url.host() {
            Some(url::Host::Domain(d)) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                self.entries.iter().any(|e| match e {
                    Bypass::Domain { name, port } => {
                        port_ok(port)
                            && (d == *name
                                || (d.len() > name.len()
                                    && d.ends_with(name.as_str())
                                    && d.as_bytes()[d.len() - name.len() - 1] == b'.'))
                    }
                    Bypass::Network { .. } => false,
                })
            }
            Some(url::Host::Ipv4(v4)) => self.bypasses_ip(IpAddr::V4(v4), port),
            Some(url::Host::Ipv6(v6)) => self.bypasses_ip(IpAddr::V6(v6), port),
            None => false,
        }
    }

    fn bypasses_ip(&self, ip: IpAddr, target_port: Option<u16>) -> bool {
        self.entries.iter().any(|e| match e {
            Bypass::Network { net, port } => {
                net.contains(&ip) && (port.is_none() || *port == target_port)
            }
            Bypass::Domain { .. } => false,
        })
    }
}

/// `host:port` → (`host`, port); IPv6 addresses only with brackets (`[::1]:8080`).
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some((host, port)) = entry.rsplit_once(':')
        && (!host.contains(':') || host.ends_with(']'))
        && let Ok(p) = port.parse::<u16>()
    {
        return (host, Some(p));
    }
    (entry, None)
}

/// Which proxy deliveries use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressProxy {
    /// For `http://` endpoints.
    pub http: Option<ProxyUrl>,
    /// For `https://` endpoints.
    pub https: Option<ProxyUrl>,
    pub no_proxy: NoProxy,
}

/// The raw settings, as the configuration read them.
#[derive(Debug, Clone, Default)]
pub struct ProxySettings<'a> {
    /// `OUTBOXD_EGRESS_PROXY`: a URL, or `off`.
    pub explicit: Option<&'a str>,
    /// `HTTPS_PROXY` (else `https_proxy`).
    pub https: Option<&'a str>,
    /// `HTTP_PROXY` (else `http_proxy`).
    pub http: Option<&'a str>,
    /// `NO_PROXY` (else `no_proxy`).
    pub no_proxy: Option<&'a str>,
}

impl EgressProxy {
    /// The proxy configuration; `None` when deliveries go direct.
    pub fn from_settings(s: &ProxySettings<'_>) -> Result<Option<EgressProxy>, EgressError> {
        fn set(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        let (http, https) = match set(s.explicit) {
            Some(off) if off.eq_ignore_ascii_case("off") || off.eq_ignore_ascii_case("none") => {
                return Ok(None);
            }
            Some(url) => {
                let p = ProxyUrl::parse("OUTBOXD_EGRESS_PROXY", url)?;
                (Some(p.clone()), Some(p))
            }
            None => (
                set(s.http)
                    .map(|u| ProxyUrl::parse("HTTP_PROXY", u))
                    .transpose()?,
                set(s.https)
                    .map(|u| ProxyUrl::parse("HTTPS_PROXY", u))
                    .transpose()?,
            ),
        };
        if http.is_none() && https.is_none() {
            return Ok(None);
        }
        Ok(Some(EgressProxy {
            http,
            https,
            no_proxy: NoProxy::parse(set(s.no_proxy).unwrap_or("")),
        }))
    }

    /// The proxy a request to `target` goes through, if any.
    pub fn proxy_for(&self, target: &Url) -> Option<&ProxyUrl> {
        let proxy = match target.scheme() {
            "https" => self.https.as_ref(),
            "http" => self.http.as_ref(),
            _ => None,
        }?;
        if self.no_proxy.bypasses(target) {
            None
        } else {
            Some(proxy)
        }
    }

    /// Host names of the proxies (the operator's choice: resolved without the SSRF guard).
    pub fn proxy_host_names(&self) -> Vec<String> {
        let mut names: Vec<String> = [&self.http, &self.https]
            .into_iter()
            .flatten()
            .filter_map(|p| p.host_name().map(str::to_ascii_lowercase))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn proxy(settings: ProxySettings<'_>) -> Option<EgressProxy> {
        EgressProxy::from_settings(&settings).unwrap()
    }

    #[test]
    fn off_unless_set() {
        assert_eq!(proxy(ProxySettings::default()), None);
        assert_eq!(
            proxy(ProxySettings {
                no_proxy: Some("localhost"),
                ..ProxySettings::default()
            }),
            None
        );
        assert_eq!(
            proxy(ProxySettings {
                explicit: Some("off"),
                https: Some("http://proxy:3128"),
                ..ProxySettings::default()
            }),
            None,
            "OUTBOXD_EGRESS_PROXY=off ignores HTTPS_PROXY"
        );
    }

    #[test]
    fn each_scheme_takes_its_own_variable_and_the_explicit_one_takes_both() {
        let p = proxy(ProxySettings {
            https: Some("http://secure-proxy:3128"),
            ..ProxySettings::default()
        })
        .unwrap();
        assert_eq!(
            p.proxy_for(&url("https://hooks.example.com/x"))
                .map(|p| p.url().as_str()),
            Some("http://secure-proxy:3128/")
        );
        assert_eq!(p.proxy_for(&url("http://hooks.example.com/x")), None);
        let p = proxy(ProxySettings {
            explicit: Some("proxy.corp:8080"),
            http: Some("http://ignored:1"),
            ..ProxySettings::default()
        })
        .unwrap();
        for target in ["http://a.example/", "https://b.example/"] {
            assert_eq!(
                p.proxy_for(&url(target)).map(|p| p.url().as_str()),
                Some("http://proxy.corp:8080/")
            );
        }
        assert_eq!(p.proxy_host_names(), ["proxy.corp"]);
    }

    #[test]
    fn no_proxy_matches_domains_suffixes_addresses_networks_and_ports() {
        let n = NoProxy::parse(
            " example.com, .internal ,10.0.0.0/8, 192.168.1.7, [::1], api.local:8443, *.svc",
        );
        let yes = [
            "https://example.com/",
            "https://a.b.example.com/",
            "http://x.internal/",
            "http://10.1.2.3:8080/",
            "http://192.168.1.7/",
            "http://[::1]:9000/",
            "https://api.local:8443/",
            "http://db.svc/",
            "http://EXAMPLE.com./",
        ];
        let no = [
            "https://notexample.com/",
            "https://example.com.evil.net/",
            "http://11.0.0.1/",
            "https://api.local/",
            "http://internal.com/",
        ];
        for u in yes {
            assert!(n.bypasses(&url(u)), "{u} should bypass");
        }
        for u in no {
            assert!(!n.bypasses(&url(u)), "{u} should use the proxy");
        }
        assert!(NoProxy::parse("*").bypasses(&url("https://anything/")));
        assert!(!NoProxy::parse("").bypasses(&url("https://anything/")));
    }

    #[test]
    fn proxy_urls_are_checked_and_never_shown_with_their_password() {
        let p = ProxyUrl::parse("HTTPS_PROXY", "http://proxyuser:s3cret@proxy:3128").unwrap();
        let shown = format!("{p} {p:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("proxyuser"),
            "{shown}"
        );
        assert_eq!(p.url().password(), Some("s3cret"), "kept for the proxy");
        let e = ProxyUrl::parse("HTTPS_PROXY", "socks5://proxy:1080").unwrap_err();
        assert!(e.to_string().starts_with("HTTPS_PROXY: "), "{e}");
        assert!(ProxyUrl::parse("OUTBOXD_EGRESS_PROXY", "http://").is_err());
        assert_eq!(p.host_name(), Some("proxy"));
        let literal = ProxyUrl::parse("HTTP_PROXY", "10.0.0.5:3128").unwrap();
        assert_eq!(literal.host_name(), None);
    }
}
