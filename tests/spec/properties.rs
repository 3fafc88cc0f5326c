//! Property tests (issue 4, "fuzzing") of the parts that read untrusted input, through the
//! public API only: event-type patterns, extra headers, signing secrets and signatures, retry
//! schedules, allowed networks and the SSRF check of literal-IP URLs.
//!
//! Every property runs a moderate number of cases (see [`cases`]), so the whole file takes a
//! few seconds; set `PROPTEST_CASES` to run more (e.g. `PROPTEST_CASES=100000` for a soak).
//! A failure prints the shrunk input; add it to the deterministic cases at the bottom.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use outboxd::config::parse_networks;
use outboxd::delivery::http::parse_extra_headers;
use outboxd::retry::parse_schedule;
use outboxd::router::Pattern;
use outboxd::signing::Secret;
use outboxd::ssrf::{AddressPolicy, UrlError, check_url};
use proptest::prelude::*;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// The case count: `PROPTEST_CASES` when set, else `default`.
fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases: n,
        // Failures are printed shrunk; no regression files are written into the repository.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Patterns

/// Reference glob: plain recursion over chars, no regex, no cleverness. `*` matches any run of
/// characters (dots included); everything else matches itself.
fn reference_glob(p: &[char], s: &[char]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some(('*', rest)) => {
            reference_glob(rest, s) || (!s.is_empty() && reference_glob(p, &s[1..]))
        }
        Some((c, rest)) => s.first() == Some(c) && reference_glob(rest, &s[1..]),
    }
}

/// What `Pattern::parse` documents: non-empty, at most 255 bytes, no whitespace or control
/// characters.
fn pattern_is_acceptable(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Patterns over a tiny alphabet, so that matches are frequent and every glob case is reached.
fn small_pattern() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![Just('a'), Just('b'), Just('.'), Just('*')],
        1..10,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn small_event_type() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![Just('a'), Just('b'), Just('.')], 0..14)
        .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn pattern_parse_never_panics_and_follows_its_contract(s in any::<String>()) {
        let parsed = Pattern::parse(&s);
        prop_assert_eq!(parsed.is_ok(), pattern_is_acceptable(&s), "{:?}", s);
        if let Ok(p) = parsed {
            prop_assert_eq!(p.as_str(), s.as_str());
        }
    }

    #[test]
    fn pattern_matching_never_panics(p in "\\PC{1,40}", s in any::<String>()) {
        if let Ok(p) = Pattern::parse(&p) {
            let _ = p.matches(&s);
            let _ = p.matches("");
        }
    }

    #[test]
    fn a_lone_star_matches_everything(s in any::<String>()) {
        let star = Pattern::parse("*").expect("'*' is a valid pattern");
        prop_assert!(star.matches(&s));
    }

    #[test]
    fn a_pattern_without_star_matches_only_itself(p in "[^*\\s\\p{Cc}]{1,30}", s in any::<String>()) {
        let pattern = Pattern::parse(&p).expect("no whitespace, no control characters");
        prop_assert!(pattern.matches(&p));
        prop_assert_eq!(pattern.matches(&s), s == p);
        // A one-character change is never a match.
        let mut changed = p.clone();
        changed.push('x');
        prop_assert!(!pattern.matches(&changed));
    }

    #[test]
    fn glob_agrees_with_the_reference_on_a_small_alphabet(p in small_pattern(), s in small_event_type()) {
        let pattern = Pattern::parse(&p).expect("valid");
        let pc: Vec<char> = p.chars().collect();
        let sc: Vec<char> = s.chars().collect();
        prop_assert_eq!(pattern.matches(&s), reference_glob(&pc, &sc), "pattern {:?} vs {:?}", p, s);
    }

    #[test]
    fn glob_agrees_with_the_reference_on_unicode(p in "[a-cé☃.*]{1,10}", s in "[a-cé☃.]{0,14}") {
        // Byte-wise matching in the engine must give the same answer as char-wise matching.
        let pattern = Pattern::parse(&p).expect("valid");
        let pc: Vec<char> = p.chars().collect();
        let sc: Vec<char> = s.chars().collect();
        prop_assert_eq!(pattern.matches(&s), reference_glob(&pc, &sc), "pattern {:?} vs {:?}", p, s);
    }

    #[test]
    fn prefix_star_matches_every_extension_but_not_the_prefix_alone(
        prefix in "[a-z]{1,10}\\.", rest in "[a-z.]{1,20}"
    ) {
        // `order.*` matches `order.paid` and `order.item.added`; the star's run may be empty
        // (`order.` matches), but the dot is literal (`order` does not).
        let pattern = Pattern::parse(&format!("{prefix}*")).expect("valid");
        let with_rest = format!("{prefix}{rest}");
        prop_assert!(pattern.matches(&with_rest));
        prop_assert!(pattern.matches(&prefix));
        prop_assert!(!pattern.matches(prefix.trim_end_matches('.')));
    }
}

// ---------------------------------------------------------------------------------------------
// Extra headers

fn is_visible_ascii_or_blank(v: &[u8]) -> bool {
    v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// Header-ish names: mostly valid tokens, sometimes with characters that are not.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}",
        1 => "\\PC{0,12}",
        1 => "[a-z]{1,5}[ :\"(),/\\[\\]{}=?@]{1,2}",
    ]
}

/// Header-ish values: mostly valid, sometimes with CR/LF, NUL, DEL or non-ASCII.
fn header_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        5 => "[ -~\t]{0,30}".prop_map(serde_json::Value::String),
        2 => any::<String>().prop_map(serde_json::Value::String),
        1 => "[a-z]{0,5}[\r\n\0\u{7f}é][a-z]{0,5}".prop_map(serde_json::Value::String),
        1 => any::<i64>().prop_map(serde_json::Value::from),
        1 => Just(serde_json::Value::Null),
        1 => any::<bool>().prop_map(serde_json::Value::Bool),
    ]
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn parse_extra_headers_never_panics_on_arbitrary_text(s in any::<String>()) {
        let _ = parse_extra_headers(&s);
    }

    #[test]
    fn parse_extra_headers_never_panics_on_json_shaped_text(
        s in "[{}\\[\\]\":,a-z0-9 \\\\nult]{0,40}"
    ) {
        let _ = parse_extra_headers(&s);
    }

    #[test]
    fn accepted_headers_are_valid_and_exactly_the_input(
        entries in proptest::collection::vec((header_name(), header_value()), 0..6)
    ) {
        let object: serde_json::Map<String, serde_json::Value> = entries.into_iter().collect();
        let json = serde_json::Value::Object(object.clone()).to_string();
        let all_valid = object.iter().all(|(k, v)| {
            axum::http::HeaderName::from_bytes(k.as_bytes()).is_ok()
                && v.as_str().is_some_and(|s| is_visible_ascii_or_blank(s.as_bytes()))
        });
        match parse_extra_headers(&json) {
            Ok(map) => {
                prop_assert!(all_valid, "accepted {}", json);
                for (name, value) in &map {
                    prop_assert!(axum::http::HeaderName::from_bytes(name.as_str().as_bytes()).is_ok());
                    prop_assert!(is_visible_ascii_or_blank(value.as_bytes()), "{:?}", value);
                }
                // Every input entry is there with its value (names are case-insensitive, so
                // entries differing only in case collapse into one).
                for (k, v) in &object {
                    let got = map.get(k.as_str()).map(|v| v.as_bytes());
                    let lower_dups = object.keys().filter(|o| o.eq_ignore_ascii_case(k)).count();
                    if lower_dups == 1 {
                        prop_assert_eq!(got, v.as_str().map(str::as_bytes));
                    } else {
                        prop_assert!(got.is_some());
                    }
                }
            }
            Err(message) => {
                prop_assert!(!all_valid, "refused valid headers {}: {}", json, message);
                prop_assert!(!message.is_empty());
            }
        }
    }

    #[test]
    fn refused_header_values_are_never_repeated_in_the_error(
        name in "[a-z]{1,10}", secret in "[A-Za-z0-9]{12,24}", bad in "[\r\n\0\u{7f}é]"
    ) {
        // The value may be a credential: the error names the header, never the value.
        let json = serde_json::json!({ name.clone(): format!("{secret}{bad}") }).to_string();
        let message = parse_extra_headers(&json).expect_err("invalid value");
        prop_assert!(message.contains(&name), "{}", message);
        prop_assert!(!message.contains(&secret), "{}", message);
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets and signatures

fn secret_from(key: &[u8]) -> String {
    format!("whsec_{}", B64.encode(key))
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn secret_parse_never_panics(s in any::<String>(), b64 in "[A-Za-z0-9+/=]{0,120}") {
        let _ = Secret::parse(&s);
        let _ = Secret::parse(&format!("whsec_{b64}"));
    }

    #[test]
    fn secrets_of_1_to_64_bytes_are_accepted_and_longer_ones_refused(
        key in proptest::collection::vec(any::<u8>(), 0..100)
    ) {
        let parsed = Secret::parse(&secret_from(&key));
        prop_assert_eq!(parsed.is_ok(), (1..=64).contains(&key.len()));
        if let Ok(s) = parsed {
            // Debug never shows the key.
            prop_assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        }
    }

    #[test]
    fn signing_is_deterministic_and_binds_id_timestamp_and_body(
        key in proptest::collection::vec(any::<u8>(), 1..=64),
        id in "[ -~]{1,40}",
        ts in 0i64..4_000_000_000,
        body in proptest::collection::vec(any::<u8>(), 0..300),
        other in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let secret = Secret::parse(&secret_from(&key)).expect("valid key");
        let sig = secret.sign(&id, ts, &body);
        prop_assert_eq!(&sig, &secret.sign(&id, ts, &body), "deterministic");
        prop_assert!(sig.starts_with("v1,"));
        prop_assert_eq!(B64.decode(&sig[3..]).map(|d| d.len()).ok(), Some(32));
        if other != body {
            prop_assert_ne!(&sig, &secret.sign(&id, ts, &other), "different bodies");
        }
        prop_assert_ne!(&sig, &secret.sign(&id, ts + 1, &body), "different timestamps");
        prop_assert_ne!(&sig, &secret.sign(&format!("{id}x"), ts, &body), "different ids");
    }

    #[test]
    fn signatures_verify_with_the_independent_standardwebhooks_library(
        key in proptest::collection::vec(any::<u8>(), 1..=64),
        id in "[A-Za-z0-9_]{1,40}",
        body in "\\PC{0,200}",
    ) {
        let secret_text = secret_from(&key);
        let secret = Secret::parse(&secret_text).expect("valid key");
        let ts = chrono::Utc::now().timestamp();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("webhook-id", id.parse().expect("ascii id"));
        headers.insert("webhook-timestamp", ts.to_string().parse().expect("digits"));
        headers.insert(
            "webhook-signature",
            secret.sign(&id, ts, body.as_bytes()).parse().expect("base64"),
        );
        let verifier = standardwebhooks::Webhook::new(&secret_text).expect("library accepts it");
        prop_assert!(verifier.verify(body.as_bytes(), &headers).is_ok());
    }
}

// ---------------------------------------------------------------------------------------------
// Retry schedules

fn duration_entry() -> impl Strategy<Value = (String, Duration)> {
    (1u64..100_000, 0usize..4).prop_map(|(n, unit)| match unit {
        0 => (format!("{n}ms"), Duration::from_millis(n)),
        1 => (format!("{n}s"), Duration::from_secs(n)),
        2 => (format!("{n}m"), Duration::from_secs(n * 60)),
        _ => (format!("{n}h"), Duration::from_secs(n * 3600)),
    })
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn parse_schedule_never_panics_and_accepts_only_positive_non_empty_lists(
        s in prop_oneof![
            any::<String>(),
            "([0-9]{1,25}(ns|us|ms|s|m|h|d|x)? ?,? ?){0,5}",
        ]
    ) {
        if let Ok(schedule) = parse_schedule(&s) {
            prop_assert!(!schedule.is_empty(), "{:?}", s);
            prop_assert!(schedule.iter().all(|d| !d.is_zero()), "{:?}", s);
        }
    }

    #[test]
    fn parse_schedule_reads_back_what_was_written(
        entries in proptest::collection::vec(duration_entry(), 1..8),
        sep in prop_oneof![Just(","), Just(", "), Just(" ,"), Just(",,")],
    ) {
        let text = entries.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join(sep);
        let expected: Vec<Duration> = entries.iter().map(|(_, d)| *d).collect();
        prop_assert_eq!(parse_schedule(&text).ok(), Some(expected), "{:?}", text);
    }

    #[test]
    fn a_zero_entry_anywhere_is_refused(
        entries in proptest::collection::vec(duration_entry(), 0..4),
        zero in prop_oneof![Just("0s"), Just("0ms"), Just("0h")],
        at in 0usize..5,
    ) {
        let mut parts: Vec<String> = entries.into_iter().map(|(t, _)| t).collect();
        parts.insert(at.min(parts.len()), zero.to_owned());
        prop_assert!(parse_schedule(&parts.join(",")).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// Allowed networks

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn parse_networks_never_panics(s in prop_oneof![any::<String>(), "[0-9a-f.:/, ]{0,40}"]) {
        if let Ok(nets) = parse_networks(&s) {
            let parts = s.split(',').filter(|p| !p.trim().is_empty()).count();
            prop_assert_eq!(nets.len(), parts, "{:?}", s);
        }
    }

    #[test]
    fn parse_networks_reads_back_cidrs_and_bare_addresses(
        nets in proptest::collection::vec(
            prop_oneof![
                (any::<u32>(), 0u8..=32).prop_map(|(a, p)| (IpAddr::V4(Ipv4Addr::from(a)), Some(p))),
                (any::<u128>(), 0u8..=128).prop_map(|(a, p)| (IpAddr::V6(a.into()), Some(p))),
                any::<u32>().prop_map(|a| (IpAddr::V4(Ipv4Addr::from(a)), None)),
                any::<u128>().prop_map(|a| (IpAddr::V6(a.into()), None)),
            ],
            0..6,
        ),
        spaced in any::<bool>(),
    ) {
        let sep = if spaced { " , " } else { "," };
        let text = nets
            .iter()
            .map(|(a, p)| match p {
                Some(p) => format!("{a}/{p}"),
                None => a.to_string(),
            })
            .collect::<Vec<_>>()
            .join(sep);
        let parsed = parse_networks(&text).map_err(|e| e.to_string());
        let expected: Vec<ipnet::IpNet> = nets
            .iter()
            .map(|(a, p)| match p {
                Some(p) => ipnet::IpNet::new(*a, *p).expect("valid prefix"),
                None => ipnet::IpNet::from(*a),
            })
            .collect();
        prop_assert_eq!(parsed, Ok(expected), "{:?}", text);
    }
}

// ---------------------------------------------------------------------------------------------
// SSRF check of literal-IP URLs

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

// ---------------------------------------------------------------------------------------------
// Deterministic cases found or worth pinning

#[test]
fn pinned_cases() {
    let p = Pattern::parse("order.*").expect("valid");
    assert!(p.matches("order.paid") && p.matches("order.item.added") && !p.matches("order"));
    let p = Pattern::parse("*a*a*a*a*a*a*a*a*b").expect("valid");
    assert!(
        !p.matches(&"a".repeat(10_000)),
        "no catastrophic backtracking"
    );
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
