//! What an operator is shown instead of a write-only value: an endpoint's extra header
//! values and the user name and password of its URL. The admin API (`admin::views`), the
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

/// The URL with its user name and password (if any) masked.
pub fn masked_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            if !u.username().is_empty() {
                let _ = u.set_username(MASK);
            }
            if u.password().is_some() {
                let _ = u.set_password(Some(MASK));
            }
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
