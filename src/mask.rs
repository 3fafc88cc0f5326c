//! What an operator is shown instead of a write-only value: an endpoint's extra header
//! values, the user name and password of its URL, and the values of its query parameters
//! that carry credentials (`?token=…`, `?api_key=…`, `?sig=…`). The admin API (`admin::views`), the
//! event log and the console all mask the same way.

use serde_json::Value;

/// What the API shows instead of a write-only value: an extra header's value, the user name
/// and password of an endpoint URL. Sent back in a PATCH, it keeps the stored value.
pub const MASK: &str = "********";

/// The extra headers with their values masked (the names stay: they tell what is set).
pub fn masked_headers(headers: &Value) -> Value {
    match headers {
        Value::Object(map) => Value::Object(
            map.keys()
                .map(|k| (k.clone(), Value::String(MASK.to_owned())))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The URL with its user name and password (if any) masked, and the value of each query
/// parameter whose name says it is a credential ([`is_secret_param`]). Sent back in a PATCH
/// exactly as shown, it keeps the stored URL (the admin API compares masked forms).
pub fn masked_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let secret_query = u.query_pairs().any(|(k, _)| is_secret_param(&k));
    if u.username().is_empty() && u.password().is_none() && !secret_query {
        return url.to_owned();
    }
    if !u.username().is_empty() {
        let _ = u.set_username(MASK);
    }
    if u.password().is_some() {
        let _ = u.set_password(Some(MASK));
    }
    if secret_query {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_param(&k) {
                    MASK.into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// A URL sent back by an operator, with every masked part ([`MASK`] as the user name, the
/// password or a credential's query value) replaced by the stored URL's value, so that
/// editing the path of `https://…?token=********` keeps the token. Errors name the part
/// that is masked but has nothing stored to stand for.
pub fn unmask_url(new: &str, stored: &str) -> Result<String, String> {
    if new == masked_url(stored) {
        return Ok(stored.to_owned());
    }
    if !new.contains(MASK) {
        return Ok(new.to_owned());
    }
    let (Ok(mut n), Ok(s)) = (url::Url::parse(new), url::Url::parse(stored)) else {
        return Ok(new.to_owned());
    };
    if n.username() == MASK {
        if s.username().is_empty() {
            return Err(format!(
                "the URL's user name is {MASK:?} (a masked value) but the stored URL has none: send it"
            ));
        }
        let _ = n.set_username(s.username());
    }
    if n.password() == Some(MASK) {
        match s.password() {
            Some(p) => {
                let _ = n.set_password(Some(p));
            }
            None => {
                return Err(format!(
                    "the URL's password is {MASK:?} (a masked value) but the stored URL has none: send it"
                ));
            }
        }
    }
    if n.query_pairs().any(|(_, v)| v == MASK) {
        let mut pairs = Vec::new();
        for (k, v) in n.query_pairs() {
            let v = if v == MASK {
                match s.query_pairs().find(|(sk, _)| *sk == k) {
                    Some((_, sv)) => sv.into_owned(),
                    None => {
                        return Err(format!(
                            "the URL's query parameter {k:?} is {MASK:?} (a masked value) but the stored URL has no such parameter: send its value"
                        ));
                    }
                }
            } else {
                v.into_owned()
            };
            pairs.push((k.into_owned(), v));
        }
        n.query_pairs_mut().clear().extend_pairs(pairs);
    }
    Ok(n.to_string())
}

/// Whether a query parameter's name says its value is a credential: it contains `token`,
/// `key`, `secret`, `sig`, `pass`, `auth` or `credential` (any case), as in `?token=`,
/// `?api_key=`, `?X-Amz-Signature=`, `?access_token=`, `?code=` (Azure Functions).
pub fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "code"
        || [
            "token",
            "key",
            "secret",
            "sig",
            "pass",
            "auth",
            "credential",
        ]
        .iter()
        .any(|w| n.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_query_string_are_masked_and_the_rest_is_kept() {
        assert_eq!(
            masked_url("https://hooks.example.com/in?token=abc123&team=7"),
            "https://hooks.example.com/in?token=********&team=7"
        );
        assert_eq!(
            masked_url("https://u:p@fn.example.net/api/x?code=s3cr3t&api_key=k"),
            "https://********:********@fn.example.net/api/x?code=********&api_key=********"
        );
        assert_eq!(
            masked_url("https://hooks.example.com/x?page=2&sort=asc"),
            "https://hooks.example.com/x?page=2&sort=asc"
        );
        assert!(is_secret_param("X-Amz-Signature"));
        assert!(is_secret_param("access_token"));
        assert!(!is_secret_param("team"));
    }

    #[test]
    fn a_url_sent_back_with_masked_parts_keeps_the_stored_values() {
        let stored = "https://u:pw@hooks.example.com/in?token=abc&team=7";
        assert_eq!(
            unmask_url(&masked_url(stored), stored).as_deref(),
            Ok(stored)
        );
        assert_eq!(
            unmask_url(
                "https://********:********@hooks.example.com/v2?token=********&team=8",
                stored
            )
            .as_deref(),
            Ok("https://u:pw@hooks.example.com/v2?token=abc&team=8")
        );
        assert_eq!(
            unmask_url("https://other.example.com/", stored).as_deref(),
            Ok("https://other.example.com/")
        );
        let err = unmask_url("https://hooks.example.com/in?key=********", stored).unwrap_err();
        assert!(err.contains("\"key\""), "{err}");
    }
}
