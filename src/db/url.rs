//! `DATABASE_URL` as libpq users write it. tokio-postgres understands most of it, but not the
//! TLS parameters beyond `sslmode=disable|prefer|require`: this takes `sslmode` (with
//! `verify-ca` and `verify-full`), `sslrootcert`, `sslcert` and `sslkey` out of the string,
//! hands the rest to tokio-postgres unchanged, and returns both.
//!
//! Both of libpq's forms are read: the URL (`postgres://u@host/db?sslmode=verify-full&…`,
//! values percent-encoded) and `key=value` pairs (`host=db sslmode=require`, values optionally
//! in single quotes with backslash escapes).

use std::path::PathBuf;
use std::str::FromStr;

/// libpq's `sslmode`, default `prefer` (as in libpq).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS if the server offers it, plaintext otherwise; the certificate is not checked.
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is checked against `sslrootcert` only when one
    /// is given (as libpq does when a root certificate exists).
    Require,
    /// TLS, and the server's certificate must chain to `sslrootcert`.
    VerifyCa,
    /// As `verify-ca`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<SslMode, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(
                    "sslmode=allow is not supported (it tries plaintext first); use prefer".into(),
                );
            }
            other => {
                return Err(format!(
                    "sslmode={other:?} is not one of disable, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }
}

/// Where the certificates that sign the server's certificate come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file with one or more CA certificates (`sslrootcert=/path/ca.pem`).
    File(PathBuf),
    /// The operating system's trust store (`sslrootcert=system`, as in libpq 16).
    System,
}

/// The TLS parameters of a connection string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsParams {
    pub mode: SslMode,
    pub root_cert: Option<RootCert>,
    /// Client certificate and key (PEM), for `cert` authentication.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// Splits the TLS parameters off `url`; returns what tokio-postgres should parse and them.
pub fn split_tls(url: &str) -> Result<(String, TlsParams), String> {
    let (rest, pairs) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        split_uri(url)
    } else {
        split_key_values(url)?
    };
    let mut mode = None;
    let (mut root, mut cert, mut key) = (None, None, None);
    for (k, v) in pairs {
        match k.as_str() {
            "sslmode" => mode = Some(v.parse::<SslMode>()?),
            "sslrootcert" => root = Some(v),
            "sslcert" => cert = Some(v),
            "sslkey" => key = Some(v),
            _ => unreachable!("split_* returns only TLS keys"),
        }
    }
    let mode = mode.unwrap_or_default();
    let root_cert = root.filter(|r| !r.is_empty()).map(|r| {
        if r == "system" {
            RootCert::System
        } else {
            RootCert::File(PathBuf::from(r))
        }
    });
    let client_cert = match (
        cert.filter(|c| !c.is_empty()),
        key.filter(|k| !k.is_empty()),
    ) {
        (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
        (None, None) => None,
        (Some(_), None) => return Err("sslcert is set but sslkey is not: give both".into()),
        (None, Some(_)) => return Err("sslkey is set but sslcert is not: give both".into()),
    };
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
        return Err(format!(
            "sslmode={} needs the certificate authority: add sslrootcert=/path/to/ca.pem \
             (or sslrootcert=system for the operating system's trust store)",
            mode.as_str()
        ));
    }
    if mode == SslMode::Disable && (root_cert.is_some() || client_cert.is_some()) {
        return Err("sslmode=disable, but sslrootcert/sslcert/sslkey are set".into());
    }
    Ok((
        rest,
        TlsParams {
            mode,
            root_cert,
            client_cert,
        },
    ))
}

fn is_tls_key(k: &str) -> bool {
    matches!(k, "sslmode" | "sslrootcert" | "sslcert" | "sslkey")
}

/// `postgres://…?a=1&sslmode=x&b=2` → (`postgres://…?a=1&b=2`, [(sslmode, x)]).
fn split_uri(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut tls = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k);
        if is_tls_key(&k) {
            tls.push((k, percent_decode(v)));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, tls)
}

/// Decodes `%xx` escapes (not `+`: libpq's URIs do not use it for spaces).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `host=db sslmode='verify-full'` → (`host='db'`, [(sslmode, verify-full)]).
fn split_key_values(s: &str) -> Result<(String, Vec<(String, String)>), String> {
    let mut kept = Vec::new();
    let mut tls = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!(
                "expected `=` after {key:?} in the connection string"
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quote in the value of {key:?}")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if is_tls_key(&key) {
            tls.push((key, value));
        } else {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{key}='{quoted}'"));
        }
    }
    Ok((kept.join(" "), tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parameters_are_taken_out_and_the_rest_kept_as_written() {
        let (rest, tls) = split_tls(
            "postgres://u:p%40ss@db:5432/app?application_name=x&sslmode=verify-full\
             &sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p%40ss@db:5432/app?application_name=x&connect_timeout=3"
        );
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(RootCert::File("/etc/ca.pem".into())));
        assert_eq!(tls.client_cert, None);

        let (rest, tls) = split_tls("postgresql://db/app?sslmode=require").unwrap();
        assert_eq!(rest, "postgresql://db/app");
        assert_eq!(tls.mode, SslMode::Require);
    }

    #[test]
    fn the_default_is_prefer_like_libpq() {
        let (rest, tls) = split_tls("postgres://db/app").unwrap();
        assert_eq!(rest, "postgres://db/app");
        assert_eq!(tls, TlsParams::default());
        assert_eq!(tls.mode, SslMode::Prefer);
    }

    #[test]
    fn key_value_strings_work_too() {
        let (rest, tls) = split_tls(
            "host=db  user = 'o\\'brien' sslmode=verify-ca sslrootcert='/a b/ca.pem' \
             sslcert=/c.pem sslkey=/k.pem",
        )
        .unwrap();
        assert_eq!(rest, "host='db' user='o\\'brien'");
        tokio_postgres::Config::from_str(&rest).unwrap();
        assert_eq!(tls.mode, SslMode::VerifyCa);
        assert_eq!(tls.root_cert, Some(RootCert::File("/a b/ca.pem".into())));
        assert_eq!(
            tls.client_cert,
            Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")))
        );
        assert_eq!(
            split_tls("host=db sslrootcert=system sslmode=verify-full")
                .unwrap()
                .1
                .root_cert,
            Some(RootCert::System)
        );
    }

    #[test]
    fn mistakes_are_explained() {
        let err = split_tls("postgres://db/app?sslmode=verify-full").unwrap_err();
        assert!(err.contains("sslrootcert"), "{err}");
        let err = split_tls("postgres://db/app?sslmode=strict").unwrap_err();
        assert!(err.contains("verify-full"), "{err}");
        let err = split_tls("postgres://db/app?sslmode=allow").unwrap_err();
        assert!(err.contains("prefer"), "{err}");
        let err = split_tls("postgres://db/app?sslcert=/c.pem").unwrap_err();
        assert!(err.contains("sslkey"), "{err}");
        let err = split_tls("host=db sslmode='require").unwrap_err();
        assert!(err.contains("unterminated"), "{err}");
    }
}
