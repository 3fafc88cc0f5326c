//! Property tests of `parse_extra_headers` (endpoint and event headers are untrusted input).
//! Each property runs a moderate number of cases; `PROPTEST_CASES` runs more.

use proptest::prelude::*;

use super::parse_extra_headers;
use crate::test_support::cases;

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
