//! SSRF guard (SPEC §7): which addresses outboxd refuses to deliver to.
//!
//! By default every address that is not on the public internet is refused: unspecified,
//! loopback, private, shared (CGNAT), link-local (including the cloud metadata endpoints),
//! unique-local IPv6, multicast, broadcast, documentation and reserved ranges. IPv6 forms
//! that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`,
//! NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the IPv4 address they embed.
//! `OUTBOXD_ALLOW_NETWORKS` opens specific ranges ([`AddressPolicy::new`]).
//!
//! The guard is applied twice:
//! * [`check_url`] before a request, for URLs whose host is an IP literal: reqwest does not
//!   call a custom resolver for those, so they must be checked here. The `url` crate already
//!   normalizes odd IPv4 spellings (`http://2130706433/`, `http://0177.0.0.1/`,
//!   `http://0x7f.1/`) to `127.0.0.1`, so they are judged like the plain form.
//! * [`GuardedResolver`], the DNS resolver of the HTTP client, for host names: it resolves the
//!   name and hands reqwest only the addresses the policy accepts. reqwest connects only to the
//!   addresses the resolver returns, so a name that resolves to a public address at check time
//!   and to `127.0.0.1` at connect time (DNS rebinding) is still refused: the check *is* the
//!   resolution used for the connection.
//!
//! **Through an egress proxy** (`crate::egress`) outboxd does not connect to the target: the
//! proxy does, after resolving the name itself. So the guard checks what it can before the
//! request leaves: an IP-literal target as above ([`check_url`]); a host name is resolved here
//! and refused if **any** of its addresses is refused, or if it does not resolve here at all
//! ([`GuardedResolver::check_through_proxy`]). What it cannot see: the proxy's own resolution.
//! A name whose answer changes between our check and the proxy's lookup (DNS rebinding, a
//! short TTL, split-horizon DNS where the proxy sees other records) reaches whatever the proxy
//! resolves; only the proxy's own rules (its ACL of destinations) can stop that. The proxy
//! itself is trusted: its address (often private) is not checked.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockReason {
    /// `0.0.0.0`, `::`.
    Unspecified,
    /// `0.0.0.0/8` other than `0.0.0.0` ("this network", RFC 1122).
    ThisNetwork,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// `100.64.0.0/10` (carrier-grade NAT, RFC 6598).
    SharedAddressSpace,
    /// `169.254.169.254`, `fd00:ec2::254`: cloud instance metadata services.
    CloudMetadata,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// `fc00::/7` (IPv6 unique local addresses), `fec0::/10` (deprecated site-local),
    /// `64:ff9b:1::/48` (local-use NAT64).
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`.
    Documentation,
    /// `198.18.0.0/15` (RFC 2544 benchmarking).
    Benchmarking,
    /// `192.0.0.0/24`, `192.88.99.0/24`, `240.0.0.0/4`, `100::/64`, other special IPv6 ranges.
    Reserved,
    /// `2001::/32`: a Teredo tunnel address, whose real destination is obfuscated.
    Teredo,
}

impl BlockReason {
    fn describe(self) -> &'static str {
        match self {
            BlockReason::Unspecified => "an unspecified address",
            BlockReason::ThisNetwork => "a \"this network\" address (0.0.0.0/8)",
            BlockReason::Loopback => "a loopback address",
            BlockReason::Private => "a private address",
            BlockReason::SharedAddressSpace => "a carrier-grade NAT address (100.64.0.0/10)",
            BlockReason::CloudMetadata => "a cloud metadata service address",
            BlockReason::LinkLocal => "a link-local address",
            BlockReason::UniqueLocal => "a unique local (private) IPv6 address",
            BlockReason::Multicast => "a multicast address",
            BlockReason::Broadcast => "the broadcast address",
            BlockReason::Documentation => "a documentation address",
            BlockReason::Benchmarking => "a benchmarking address (198.18.0.0/15)",
            BlockReason::Reserved => "a reserved address",
            BlockReason::Teredo => "a Teredo tunnel address",
        }
    }
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// An address the SSRF guard refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct BlockedAddress {
    /// The address as given (resolved or literal).
    pub addr: IpAddr,
    /// The IPv4 address embedded in `addr` that was judged, for IPv4-mapped, IPv4-compatible,
    /// NAT64 and 6to4 IPv6 addresses.
    pub embedded: Option<Ipv4Addr>,
    pub reason: BlockReason,
}

impl BlockedAddress {
    fn render(&self) -> String {
        const TAIL: &str = "outboxd refuses it unless OUTBOXD_ALLOW_NETWORKS covers it";
        match self.embedded {
            Some(v4) => format!(
                "{} embeds the IPv4 address {v4}, which is {}; {TAIL}",
                self.addr, self.reason
            ),
            None => format!("{} is {}; {TAIL}", self.addr, self.reason),
        }
    }
}

/// Which destination addresses are acceptable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allow: Vec<IpNet>,
}

impl AddressPolicy {
    /// `allow`: networks exempt from the guard (`OUTBOXD_ALLOW_NETWORKS`). An empty list
    /// refuses every non-public address.
    pub fn new(allow: Vec<IpNet>) -> Self {
        AddressPolicy { allow }
    }

    /// Accepts a public address, or any address inside an allowed network.
    ///
    /// For IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`) addresses, which
    /// the OS connects to as IPv4, an allowed network containing the embedded IPv4 address
    /// also accepts them (`127.0.0.0/8` opens `::ffff:127.0.0.1`).
    pub fn check(&self, ip: IpAddr) -> Result<(), BlockedAddress> {
        if self.is_allowed(ip) {
            return Ok(());
        }
        match ip {
            IpAddr::V4(v4) => match classify_v4(v4) {
                None => Ok(()),
                Some(reason) => Err(BlockedAddress {
                    addr: ip,
                    embedded: None,
                    reason,
                }),
            },
            IpAddr::V6(v6) => match classify_v6(v6) {
                V6Verdict::Public => Ok(()),
                V6Verdict::Blocked(reason) => Err(BlockedAddress {
                    addr: ip,
                    embedded: None,
                    reason,
                }),
                V6Verdict::Embedded { v4, os_level } => {
                    if os_level && self.is_allowed(IpAddr::V4(v4)) {
                        return Ok(());
                    }
                    match classify_v4(v4) {
                        None => Ok(()),
                        Some(reason) => Err(BlockedAddress {
                            addr: ip,
                            embedded: Some(v4),
                            reason,
                        }),
                    }
                }
            },
        }
    }

    fn is_allowed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&ip))
    }
}

/// `None` when the address is public.
fn classify_v4(ip: Ipv4Addr) -> Option<BlockReason> {
    let [a, b, c, d] = ip.octets();
    let reason = match (a, b, c, d) {
        (0, 0, 0, 0) => BlockReason::Unspecified,
        (0, ..) => BlockReason::ThisNetwork,
        (127, ..) => BlockReason::Loopback,
        (10, ..) => BlockReason::Private,
        (172, 16..=31, ..) => BlockReason::Private,
        (192, 168, ..) => BlockReason::Private,
        (100, 64..=127, ..) => BlockReason::SharedAddressSpace,
        (169, 254, 169, 254) => BlockReason::CloudMetadata,
        (169, 254, ..) => BlockReason::LinkLocal,
        (224..=239, ..) => BlockReason::Multicast,
        (255, 255, 255, 255) => BlockReason::Broadcast,
        (240..=255, ..) => BlockReason::Reserved,
        (192, 0, 0, _) => BlockReason::Reserved,
        (192, 0, 2, _) => BlockReason::Documentation,
        (198, 51, 100, _) => BlockReason::Documentation,
        (203, 0, 113, _) => BlockReason::Documentation,
        (198, 18..=19, ..) => BlockReason::Benchmarking,
        (192, 88, 99, _) => BlockReason::Reserved,
        _ => return None,
    };
    Some(reason)
}

enum V6Verdict {
    Public,
    Blocked(BlockReason),
    /// Judge the embedded IPv4 address. `os_level`: the OS treats the address as that IPv4
    /// address (mapped/compatible), as opposed to a translation/tunnel prefix.
    Embedded {
        v4: Ipv4Addr,
        os_level: bool,
    },
}

fn classify_v6(ip: Ipv6Addr) -> V6Verdict {
    let seg = ip.segments();
    let o = ip.octets();
    let last_v4 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);

    if ip.is_unspecified() {
        return V6Verdict::Blocked(BlockReason::Unspecified);
    }
    if ip.is_loopback() {
        return V6Verdict::Blocked(BlockReason::Loopback);
    }
    // ::ffff:a.b.c.d (IPv4-mapped)
    if seg[..5] == [0, 0, 0, 0, 0] && seg[5] == 0xffff {
        return V6Verdict::Embedded {
            v4: last_v4,
            os_level: true,
        };
    }
    // ::a.b.c.d (IPv4-compatible, deprecated; :: and ::1 handled above)
    if seg[..6] == [0, 0, 0, 0, 0, 0] {
        return V6Verdict::Embedded {
            v4: last_v4,
            os_level: true,
        };
    }
    // ::ffff:0:a.b.c.d (SIIT IPv4-translated, RFC 2765)
    if seg[..4] == [0, 0, 0, 0] && seg[4] == 0xffff && seg[5] == 0 {
        return V6Verdict::Embedded {
            v4: last_v4,
            os_level: false,
        };
    }
    // 64:ff9b::/96 (well-known NAT64 prefix)
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return V6Verdict::Embedded {
            v4: last_v4,
            os_level: false,
        };
    }
    // 64:ff9b:1::/48 (local-use NAT64, RFC 8215): translation happens inside the local network
    if seg[..3] == [0x64, 0xff9b, 1] {
        return V6Verdict::Blocked(BlockReason::UniqueLocal);
    }
    // 2002::/16 (6to4): the IPv4 address sits in bits 16..48
    if seg[0] == 0x2002 {
        return V6Verdict::Embedded {
            v4: Ipv4Addr::new(o[2], o[3], o[4], o[5]),
            os_level: false,
        };
    }
    // fd00:ec2::254 (AWS IMDS over IPv6) is inside fc00::/7; name it for a clearer message.
    if seg == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] {
        return V6Verdict::Blocked(BlockReason::CloudMetadata);
    }
    let reason = if seg[0] & 0xfe00 == 0xfc00 {
        BlockReason::UniqueLocal
    } else if seg[0] & 0xffc0 == 0xfe80 {
        BlockReason::LinkLocal
    } else if seg[0] & 0xffc0 == 0xfec0 {
        BlockReason::UniqueLocal
    } else if seg[0] & 0xff00 == 0xff00 {
        BlockReason::Multicast
    } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
        BlockReason::Documentation
    } else if seg[0] == 0x3fff && seg[1] & 0xf000 == 0 {
        // 3fff::/20, documentation (RFC 9637)
        BlockReason::Documentation
    } else if seg[0] == 0x2001 && seg[1] == 0 {
        BlockReason::Teredo
    } else if seg[..4] == [0x0100, 0, 0, 0] {
        // 100::/64, discard-only (RFC 6666)
        BlockReason::Reserved
    } else if seg[0] == 0x2001 && seg[1] & 0xfff0 == 0x0010 {
        // 2001:10::/28 ORCHID (deprecated), not routable
        BlockReason::Reserved
    } else if seg[0] == 0x2001 && seg[1] & 0xfff0 == 0x0020 {
        // 2001:20::/28 ORCHIDv2, not routable
        BlockReason::Reserved
    } else if seg[0] & 0xe000 != 0x2000 {
        // Everything outside 2000::/3 (global unicast) is unassigned or special.
        BlockReason::Reserved
    } else {
        return V6Verdict::Public;
    };
    V6Verdict::Blocked(reason)
}

/// Why a URL cannot be delivered to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The URL is not one outboxd can send to (scheme, host).
    #[error("invalid URL: {0}")]
    Invalid(String),
    /// The host is an IP literal the policy refuses.
    #[error(transparent)]
    Blocked(#[from] BlockedAddress),
}

/// Checks what can be checked without DNS: the scheme is `http` or `https`, a host is present,
/// and an IP-literal host is accepted by `policy`. Host names are checked at connect time by
/// [`GuardedResolver`].
pub fn check_url(url: &url::Url, policy: &AddressPolicy) -> Result<(), UrlError> {
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(UrlError::Invalid(format!(
                "scheme must be http or https, got {other:?}"
            )));
        }
    }
    match url.host() {
        None => Err(UrlError::Invalid("the URL has no host".into())),
        Some(url::Host::Domain("")) => Err(UrlError::Invalid("the URL has no host".into())),
        Some(url::Host::Domain(_)) => Ok(()),
        Some(url::Host::Ipv4(v4)) => Ok(policy.check(IpAddr::V4(v4))?),
        Some(url::Host::Ipv6(v6)) => Ok(policy.check(IpAddr::V6(v6))?),
    }
}

/// Why [`GuardedResolver`] returned no address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The DNS lookup itself failed (or timed out inside the system resolver).
    #[error("DNS lookup of {host} failed")]
    Lookup {
        host: String,
        #[source]
        source: std::io::Error,
    },
    /// The lookup succeeded with an empty answer.
    #[error("{host} resolved to no address")]
    NoAddresses { host: String },
    /// Every resolved address is refused by the policy; `source` is the first refused one.
    #[error("every address {host} resolves to is refused")]
    Blocked {
        host: String,
        #[source]
        source: BlockedAddress,
    },
}

/// A `reqwest` DNS resolver that drops the addresses the [`AddressPolicy`] refuses.
///
/// Errors are [`ResolveError`]s; reqwest wraps them (as DNS errors) in its own error, where
/// the sender finds them again by walking `std::error::Error::source()`.
///
/// The host names of the egress proxies (`crate::egress`) are *trusted*: the HTTP client
/// resolves them through this resolver too, and a proxy on a private address is the normal
/// case (the operator chose it), so their addresses are not checked.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<AddressPolicy>,
    /// Names resolved without the policy: the egress proxies' (lower case).
    trusted: Arc<[String]>,
}

impl GuardedResolver {
    #[cfg(test)]
    pub fn new(policy: Arc<AddressPolicy>) -> Self {
        GuardedResolver::trusting(policy, Vec::new())
    }

    /// A resolver that also resolves `names` (the egress proxies' host names) unchecked.
    pub fn trusting(policy: Arc<AddressPolicy>, names: Vec<String>) -> Self {
        GuardedResolver {
            policy,
            trusted: names.into(),
        }
    }

    /// `host` is an egress proxy's name (resolved unchecked).
    pub fn is_trusted(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        self.trusted.iter().any(|t| t.eq_ignore_ascii_case(host))
    }

    async fn lookup(host: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        let resolved =
            tokio::net::lookup_host((host, 0))
                .await
                .map_err(|source| ResolveError::Lookup {
                    host: host.to_owned(),
                    source,
                })?;
        let resolved: Vec<SocketAddr> = resolved.collect();
        if resolved.is_empty() {
            return Err(ResolveError::NoAddresses {
                host: host.to_owned(),
            });
        }
        Ok(resolved)
    }

    /// Before sending to `host` through a proxy, which resolves the name itself (and may get
    /// other answers): resolves it here and refuses it if **any** of its addresses is refused
    /// (the proxy may connect to any of them). A name that does not resolve here is refused
    /// too (kind `dns`): outboxd cannot check what it cannot see.
    pub async fn check_through_proxy(&self, host: &str) -> Result<(), ResolveError> {
        for addr in Self::lookup(host).await? {
            if let Err(source) = self.policy.check(addr.ip()) {
                return Err(ResolveError::Blocked {
                    host: host.to_owned(),
                    source,
                });
            }
        }
        Ok(())
    }

    /// Resolves `host` and keeps the accepted addresses (port 0: reqwest fills in the port).
    /// A trusted name (an egress proxy's) keeps them all.
    pub async fn resolve_host(&self, host: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        let resolved = Self::lookup(host).await?;
        if self.is_trusted(host) {
            return Ok(resolved);
        }
        let mut kept = Vec::new();
        let mut first_blocked = None;
        for addr in resolved {
            match self.policy.check(addr.ip()) {
                Ok(()) => kept.push(addr),
                Err(blocked) => {
                    tracing::debug!(host, %blocked, "SSRF guard dropped a resolved address");
                    first_blocked.get_or_insert(blocked);
                }
            }
        }
        if !kept.is_empty() {
            return Ok(kept);
        }
        Err(match first_blocked {
            Some(source) => ResolveError::Blocked {
                host: host.to_owned(),
                source,
            },
            None => ResolveError::NoAddresses {
                host: host.to_owned(),
            },
        })
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = this.resolve_host(&host).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_policy() -> AddressPolicy {
        AddressPolicy::default()
    }

    fn reason(ip: &str) -> Option<BlockReason> {
        let ip: IpAddr = ip.parse().unwrap();
        default_policy().check(ip).err().map(|b| b.reason)
    }

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(reason(ip), None, "{ip} should pass");
        }
    }

    #[test]
    fn refuses_unspecified_and_this_network() {
        assert_eq!(reason("0.0.0.0"), Some(BlockReason::Unspecified));
        assert_eq!(reason("::"), Some(BlockReason::Unspecified));
        assert_eq!(reason("0.1.2.3"), Some(BlockReason::ThisNetwork));
    }

    #[test]
    fn refuses_loopback() {
        for ip in ["127.0.0.1", "127.255.255.254", "127.1.2.3", "::1"] {
            assert_eq!(reason(ip), Some(BlockReason::Loopback), "{ip}");
        }
    }

    #[test]
    fn refuses_private() {
        for ip in [
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "192.168.255.255",
        ] {
            assert_eq!(reason(ip), Some(BlockReason::Private), "{ip}");
        }
    }

    #[test]
    fn refuses_cgnat() {
        for ip in ["100.64.0.1", "100.127.255.255", "100.100.100.200"] {
            assert_eq!(reason(ip), Some(BlockReason::SharedAddressSpace), "{ip}");
        }
    }

    #[test]
    fn refuses_link_local_and_metadata() {
        assert_eq!(reason("169.254.0.1"), Some(BlockReason::LinkLocal));
        assert_eq!(reason("169.254.170.2"), Some(BlockReason::LinkLocal));
        assert_eq!(reason("169.254.169.254"), Some(BlockReason::CloudMetadata));
        assert_eq!(reason("fe80::1"), Some(BlockReason::LinkLocal));
        assert_eq!(reason("febf::1"), Some(BlockReason::LinkLocal));
        assert_eq!(reason("fd00:ec2::254"), Some(BlockReason::CloudMetadata));
    }

    #[test]
    fn refuses_unique_local_v6() {
        for ip in [
            "fc00::1",
            "fd12:3456:789a::1",
            "fdff::1",
            "fec0::1",
            "64:ff9b:1::1",
        ] {
            assert_eq!(reason(ip), Some(BlockReason::UniqueLocal), "{ip}");
        }
    }

    #[test]
    fn refuses_multicast_and_broadcast() {
        for ip in ["224.0.0.1", "239.255.255.250", "ff02::1", "ff05::2"] {
            assert_eq!(reason(ip), Some(BlockReason::Multicast), "{ip}");
        }
        assert_eq!(reason("255.255.255.255"), Some(BlockReason::Broadcast));
    }

    #[test]
    fn refuses_documentation_and_reserved() {
        for ip in [
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.200",
            "2001:db8::1",
            "3fff::1",
        ] {
            assert_eq!(reason(ip), Some(BlockReason::Documentation), "{ip}");
        }
        assert_eq!(reason("198.18.0.1"), Some(BlockReason::Benchmarking));
        assert_eq!(reason("198.19.255.255"), Some(BlockReason::Benchmarking));
        for ip in [
            "192.0.0.1",
            "192.0.0.170",
            "192.88.99.1",
            "240.0.0.1",
            "254.255.255.255",
            "100::1",
            "2001:10::1",
            "2001:20::1",
            "4000::1",
        ] {
            assert_eq!(reason(ip), Some(BlockReason::Reserved), "{ip}");
        }
        assert_eq!(reason("2001::1"), Some(BlockReason::Teredo));
    }

    #[test]
    fn judges_the_ipv4_embedded_in_ipv6() {
        let cases = [
            ("::ffff:127.0.0.1", "127.0.0.1", BlockReason::Loopback),
            ("::ffff:7f00:1", "127.0.0.1", BlockReason::Loopback),
            (
                "::ffff:169.254.169.254",
                "169.254.169.254",
                BlockReason::CloudMetadata,
            ),
            ("::ffff:10.0.0.1", "10.0.0.1", BlockReason::Private),
            ("::127.0.0.1", "127.0.0.1", BlockReason::Loopback),
            ("::10.1.2.3", "10.1.2.3", BlockReason::Private),
            ("::ffff:0:127.0.0.1", "127.0.0.1", BlockReason::Loopback),
            ("64:ff9b::127.0.0.1", "127.0.0.1", BlockReason::Loopback),
            (
                "64:ff9b::a9fe:a9fe",
                "169.254.169.254",
                BlockReason::CloudMetadata,
            ),
            ("2002:7f00:1::", "127.0.0.1", BlockReason::Loopback),
            ("2002:c0a8:101::1", "192.168.1.1", BlockReason::Private),
            ("::ffff:0.0.0.0", "0.0.0.0", BlockReason::Unspecified),
        ];
        for (ip, v4, why) in cases {
            let err = default_policy().check(ip.parse().unwrap()).unwrap_err();
            assert_eq!(err.embedded, Some(v4.parse().unwrap()), "{ip}");
            assert_eq!(err.reason, why, "{ip}");
        }
    }

    #[test]
    fn message_names_the_address_and_the_reason() {
        let err = default_policy()
            .check("127.0.0.1".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "127.0.0.1 is a loopback address; outboxd refuses it unless OUTBOXD_ALLOW_NETWORKS covers it"
        );
        let err = default_policy()
            .check("::ffff:10.0.0.1".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "::ffff:10.0.0.1 embeds the IPv4 address 10.0.0.1, which is a private address; \
             outboxd refuses it unless OUTBOXD_ALLOW_NETWORKS covers it"
        );
    }

    #[test]
    fn allowlist_opens_exactly_its_networks() {
        let policy = AddressPolicy::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
        ] {
            assert_eq!(policy.check(ip.parse().unwrap()), Ok(()), "{ip}");
        }
        for ip in ["10.0.0.1", "169.254.169.254", "::2", "fe80::1", "0.0.0.0"] {
            assert!(policy.check(ip.parse().unwrap()).is_err(), "{ip}");
        }
        // Only the OS-level IPv4 forms inherit the IPv4 allowlist, not translation prefixes.
        assert!(policy.check("64:ff9b::7f00:1".parse().unwrap()).is_err());
        assert!(policy.check("2002:7f00:1::".parse().unwrap()).is_err());

        let private = AddressPolicy::new(vec!["10.1.0.0/16".parse().unwrap()]);
        assert_eq!(private.check("10.1.2.3".parse().unwrap()), Ok(()));
        assert!(private.check("10.2.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn check_url_accepts_public_and_named_hosts() {
        let p = default_policy();
        assert_eq!(check_url(&url("https://example.com/hook"), &p), Ok(()));
        assert_eq!(check_url(&url("http://8.8.8.8:8080/x"), &p), Ok(()));
        assert_eq!(check_url(&url("https://[2606:4700::1]/x"), &p), Ok(()));
        // names are judged at connect time by the resolver
        assert_eq!(check_url(&url("http://localhost:1234/"), &p), Ok(()));
    }

    #[test]
    fn check_url_refuses_other_schemes() {
        let p = default_policy();
        for s in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://example.com/",
            "ws://example.com/",
            "mailto:a@example.com",
            "data:text/plain,hi",
        ] {
            assert!(
                matches!(check_url(&url(s), &p), Err(UrlError::Invalid(_))),
                "{s}"
            );
        }
    }

    #[test]
    fn check_url_refuses_literal_ips_in_every_spelling() {
        let p = default_policy();
        for s in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.0.0.1/",
            "http://0x7f000001/",
            "http://127.1/",
            "http://017700000001/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://0/",
            "http://[::]/",
        ] {
            let u = url(s);
            let err = check_url(&u, &p).unwrap_err();
            assert!(matches!(err, UrlError::Blocked(_)), "{s}: {err}");
        }
        // the url crate normalizes the odd spellings before we see them
        assert_eq!(url("http://2130706433/").host_str(), Some("127.0.0.1"));
        assert_eq!(url("http://0177.0.0.1/").host_str(), Some("127.0.0.1"));
        assert_eq!(url("http://0x7f.0.0.1/").host_str(), Some("127.0.0.1"));
        for s in [
            "http://169.254.169.254/latest/meta-data/",
            "http://0xa9fea9fe/",
            "http://2852039166/",
            "http://[fd00:ec2::254]/",
        ] {
            match check_url(&url(s), &p) {
                Err(UrlError::Blocked(b)) => {
                    assert_eq!(b.reason, BlockReason::CloudMetadata, "{s}")
                }
                other => panic!("{s}: {other:?}"),
            }
        }
    }

    #[test]
    fn check_url_honours_the_allowlist() {
        let p = AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert_eq!(check_url(&url("http://127.0.0.1:8080/"), &p), Ok(()));
        assert_eq!(check_url(&url("http://2130706433/"), &p), Ok(()));
    }

    #[tokio::test]
    async fn resolver_refuses_localhost() {
        let r = GuardedResolver::new(Arc::new(default_policy()));
        match r.resolve_host("localhost").await {
            Err(ResolveError::Blocked { host, source }) => {
                assert_eq!(host, "localhost");
                assert_eq!(source.reason, BlockReason::Loopback);
            }
            other => panic!("expected Blocked, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn resolver_keeps_only_allowed_addresses() {
        let r = GuardedResolver::new(Arc::new(AddressPolicy::new(vec![
            "127.0.0.0/8".parse().unwrap(),
        ])));
        let addrs = r.resolve_host("localhost").await.unwrap();
        assert!(!addrs.is_empty());
        assert!(
            addrs
                .iter()
                .all(|a| a.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "{addrs:?}"
        );
    }

    #[tokio::test]
    async fn resolver_through_the_reqwest_trait() {
        use reqwest::dns::Resolve as _;
        let r = GuardedResolver::new(Arc::new(default_policy()));
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let err = match r.resolve(name).await {
            Ok(addrs) => panic!("expected an error, got {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        let resolve_err = err.downcast_ref::<ResolveError>().unwrap();
        assert!(matches!(resolve_err, ResolveError::Blocked { .. }));
    }

    #[tokio::test]
    async fn a_proxys_own_name_is_trusted_but_a_target_behind_it_is_still_checked() {
        let r = GuardedResolver::trusting(Arc::new(default_policy()), vec!["localhost".into()]);
        // The proxy (the operator's choice) may sit on a private or loopback address.
        assert!(!r.resolve_host("LOCALHOST").await.unwrap().is_empty());
        assert!(r.is_trusted("localhost."));
        // A target sent through the proxy: every address it resolves to here must pass.
        assert!(matches!(
            r.check_through_proxy("localhost").await,
            Err(ResolveError::Blocked { .. })
        ));
        // A name that does not resolve here cannot be checked: refused.
        assert!(matches!(
            r.check_through_proxy("no-such-host.invalid").await,
            Err(ResolveError::Lookup { .. } | ResolveError::NoAddresses { .. })
        ));
        let allowing = GuardedResolver::new(Arc::new(AddressPolicy::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ])));
        assert!(allowing.check_through_proxy("localhost").await.is_ok());
    }
}

/// Property tests: the SSRF check of literal-IP URLs in every spelling. Each property runs a moderate number of cases; `PROPTEST_CASES`
/// runs more (e.g. `PROPTEST_CASES=100000` for a soak). A failure prints the shrunk input:
/// pin it as a plain test.
#[cfg(test)]
mod properties {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;
    use crate::test_support::cases;

    /// Independent table of the IPv4 ranges the README says are refused by default.
    fn reference_blocked_v4(ip: Ipv4Addr) -> bool {
        const RANGES: &[([u8; 4], u8)] = &[
            ([0, 0, 0, 0], 8),
            ([10, 0, 0, 0], 8),
            ([100, 64, 0, 0], 10),
            ([127, 0, 0, 0], 8),
            ([169, 254, 0, 0], 16),
            ([172, 16, 0, 0], 12),
            ([192, 0, 0, 0], 24),
            ([192, 0, 2, 0], 24),
            ([192, 88, 99, 0], 24),
            ([192, 168, 0, 0], 16),
            ([198, 18, 0, 0], 15),
            ([198, 51, 100, 0], 24),
            ([203, 0, 113, 0], 24),
            ([224, 0, 0, 0], 4),
            ([240, 0, 0, 0], 4),
        ];
        let a = u32::from(ip);
        RANGES.iter().any(|(net, len)| {
            let mask = if *len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(*len))
            };
            a & mask == u32::from(Ipv4Addr::from(*net)) & mask
        })
    }

    /// An address inside 127/8, 10/8, 192.168/16 or 169.254/16.
    fn internal_v4() -> impl Strategy<Value = Ipv4Addr> {
        (0usize..4, any::<u32>()).prop_map(|(range, low)| {
            let (net, bits) = [
                (0x7f00_0000u32, 8),
                (0x0a00_0000, 8),
                (0xc0a8_0000, 16),
                (0xa9fe_0000, 16),
            ][range];
            Ipv4Addr::from(net | (low >> bits))
        })
    }

    /// Ways of writing an IPv4 address in a URL host that the WHATWG parser (the `url` crate)
    /// understands: dotted, one number, octal, hex, short forms, trailing dot, percent-encoding,
    /// and IPv6 forms embedding it.
    fn spellings(ip: Ipv4Addr) -> Vec<String> {
        let [a, b, c, d] = ip.octets();
        let n = u32::from(ip);
        let mut v = vec![
            format!("{a}.{b}.{c}.{d}"),
            format!("{n}"),
            format!("0{a:o}.0{b:o}.0{c:o}.0{d:o}"),
            format!("0x{a:x}.0x{b:x}.0x{c:x}.0x{d:x}"),
            format!("0x{n:08x}"),
            format!("0{n:o}"),
            format!("{a}.{}", n & 0x00ff_ffff),
            format!("{a}.{b}.{}", n & 0xffff),
            format!("{a}.{b}.{c}.{d}."),
            format!("[::ffff:{a}.{b}.{c}.{d}]"),
            format!("[::ffff:{:x}:{:x}]", n >> 16, n & 0xffff),
        ];
        // Percent-encoded first octet digits, e.g. %31%32%37.0.0.1
        let enc: String = a.to_string().bytes().map(|b| format!("%{b:02X}")).collect();
        v.push(format!("{enc}.{b}.{c}.{d}"));
        v
    }

    proptest! {
        #![proptest_config(cases(256))]

        #[test]
        fn check_url_never_panics_on_arbitrary_urls(
            s in prop_oneof![
                any::<String>(),
                "(http|https|ftp|file|HTTP)://\\PC{0,40}",
                "http://\\[[0-9a-f:.]{0,40}\\](:[0-9]{1,5})?/",
                "https?://[0-9a-fx.%]{0,30}/",
            ]
        ) {
            if let Ok(url) = url::Url::parse(&s) {
                let _ = check_url(&url, &AddressPolicy::default());
                let _ = check_url(
                    &url,
                    &AddressPolicy::new(vec!["127.0.0.0/8".parse().expect("cidr")]),
                );
            }
        }

        #[test]
        fn internal_ipv4_literals_are_blocked_in_every_spelling(
            ip in internal_v4(),
            scheme in prop_oneof![Just("http"), Just("https"), Just("HTTP")],
            port in prop_oneof![Just(String::new()), (1u16..).prop_map(|p| format!(":{p}"))],
            userinfo in prop_oneof![Just(""), Just("user:pass@")],
        ) {
            for host in spellings(ip) {
                let text = format!("{scheme}://{userinfo}{host}{port}/hook?x=1");
                // Every spelling is a valid WHATWG host, so every one must parse.
                let url = url::Url::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
                let verdict = check_url(&url, &AddressPolicy::default());
                prop_assert!(
                    matches!(verdict, Err(UrlError::Blocked(_))),
                    "{} (parsed host {:?}) was not blocked: {:?}", text, url.host_str(), verdict
                );
            }
            // The plain dotted form must parse (so the loop above did test something).
            let plain = format!("http://{ip}/");
            prop_assert!(url::Url::parse(&plain).is_ok());
        }

        #[test]
        fn ipv4_literal_verdict_matches_the_reference_table(a in any::<u32>()) {
            let ip = Ipv4Addr::from(a);
            let policy = AddressPolicy::default();
            for text in [format!("http://{ip}/"), format!("http://[::ffff:{ip}]/"), format!("http://{a}/")] {
                let url = url::Url::parse(&text).expect("valid URL");
                let blocked = matches!(check_url(&url, &policy), Err(UrlError::Blocked(_)));
                prop_assert_eq!(blocked, reference_blocked_v4(ip), "{}", text);
            }
        }

        #[test]
        fn allowing_loopback_opens_only_loopback(ip in internal_v4()) {
            let policy = AddressPolicy::new(vec!["127.0.0.0/8".parse().expect("cidr")]);
            let url = url::Url::parse(&format!("http://{ip}:8080/")).expect("valid URL");
            let allowed = check_url(&url, &policy).is_ok();
            prop_assert_eq!(allowed, ip.is_loopback(), "{}", ip);
        }

        #[test]
        fn non_http_schemes_are_invalid(scheme in "[a-z][a-z0-9+.-]{0,8}", ip in internal_v4()) {
            prop_assume!(scheme != "http" && scheme != "https");
            if let Ok(url) = url::Url::parse(&format!("{scheme}://{ip}/")) {
                prop_assert!(matches!(
                    check_url(&url, &AddressPolicy::new(vec!["0.0.0.0/0".parse().expect("cidr")])),
                    Err(UrlError::Invalid(_))
                ));
            }
        }
    }

    #[test]
    fn pinned_cases() {
        for host in [
            "0177.0.0.1",
            "2130706433",
            "0x7f.1",
            "127.1",
            "[::ffff:127.0.0.1]",
        ] {
            let url = url::Url::parse(&format!("http://{host}/")).expect("valid");
            assert!(
                matches!(
                    check_url(&url, &AddressPolicy::default()),
                    Err(UrlError::Blocked(_))
                ),
                "{host}"
            );
        }
    }
}
