//! The page frame and the helpers pages share: how times, statuses and untrusted text are
//! shown, URL escaping, error pages.
//!
//! Untrusted text (payloads, headers, URLs, keys, receivers' answers) goes through maud,
//! which HTML-escapes it, and through [`visible`], which makes invisible and
//! direction-changing characters visible (so `evil\u{202E}gnp.exe` cannot pose as
//! `evilexe.png`) — and is wrapped in `<bdi>` where it sits inside other text.

use std::borrow::Cow;
use std::fmt::Write as _;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::Authed;
use super::assets;
use crate::eventlog::Status;

/// Which tab of the navigation a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Events,
    Endpoints,
    Sources,
    None,
}

/// A whole page: head, navigation (with the sign-out form when signed in), the body.
pub fn page(title: &str, tab: Tab, authed: Option<&Authed>, body: Markup) -> Markup {
    // A tenant portal shows its link's product name and accent colour (a stylesheet of its
    // own: the CSP allows no inline style), and no sign-out (the application owns it).
    let portal = authed.and_then(|a| a.portal());
    let brand = portal.and_then(|p| p.brand.as_deref()).unwrap_or("outboxd");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · " (visible(brand)) }
                link rel="stylesheet" href=(assets::url("console.css"));
                @if portal.is_some_and(|p| p.accent.is_some()) {
                    link rel="stylesheet" href="/ui/portal/theme.css";
                }
                script src=(assets::url("console.js")) defer {}
            }
            body {
                header.top {
                    a.brand href="/ui/events" data-portal=[portal.map(|_| "tenant")] { (visible(brand)) }
                    @if authed.is_some() {
                        nav {
                            a href="/ui/events" aria-current=[(tab == Tab::Events).then_some("page")] { "Event log" }
                            a href="/ui/endpoints" aria-current=[(tab == Tab::Endpoints).then_some("page")] { "Endpoints" }
                            a href="/ui/sources" aria-current=[(tab == Tab::Sources).then_some("page")] { "Sources" }
                        }
                    }
                    @if let Some(a) = authed.filter(|a| a.portal().is_none()) {
                        form.signout method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(a.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page as a response.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// An error page (the message is escaped like everything else).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let body = html! {
        section.error {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
            p { (visible(message)) }
            p { a href="/ui/events" { "Back to the event log" } }
        }
    };
    respond(status, page("Error", Tab::None, None, body))
}

/// Characters that change text direction or are invisible, shown as `⟨U+202E⟩`; control
/// characters other than newline and tab too.
pub fn visible(s: &str) -> Cow<'_, str> {
    fn hidden(c: char) -> bool {
        matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}'
            | '\u{061C}' | '\u{FEFF}' | '\u{00AD}')
            || (c.is_control() && c != '\n' && c != '\t')
    }
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if hidden(c) {
            let _ = write!(out, "⟨U+{:04X}⟩", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Untrusted text inside other text: visible, and isolated from the direction around it.
pub fn text(s: &str) -> Markup {
    html! { bdi { (visible(s)) } }
}

/// At most `max` bytes of `s` (on a character boundary), and whether it was cut.
pub fn cut(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        (s, false)
    } else {
        (&s[..s.floor_char_boundary(max)], true)
    }
}

/// A point in time: UTC, to the second, machine-readable too.
pub fn time(t: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S UTC")) }
    }
}

/// How long ago (or, for the future, "in …").
pub fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds();
    let (n, future) = (secs.unsigned_abs(), secs < 0);
    let span = match n {
        0..=59 => format!("{n} s"),
        60..=3599 => format!("{} min", n / 60),
        3600..=86_399 => format!("{} h", n / 3600),
        _ => format!("{} d", n / 86_400),
    };
    if future {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// A delivery status as a badge; `data-state` carries the API's name.
pub fn status(s: Status) -> Markup {
    html! {
        span class=(format!("status status-{}", s.as_str())) data-state=(s.as_str()) { (s.label()) }
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for a path segment or a
/// query value.
pub fn escape_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A query value (same escaping as a path segment).
pub fn query_escape(s: &str) -> String {
    escape_component(s)
}

/// The console's page of an event.
pub fn event_href(event_id: &str) -> String {
    format!("/ui/events/{}", escape_component(event_id))
}

/// A count that stops at a cap.
pub fn count(n: i64, cap: i64) -> String {
    if n >= cap {
        format!("{cap}+")
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_direction_characters_become_visible() {
        assert_eq!(visible("plain"), "plain");
        assert_eq!(visible("evil\u{202E}gnp.exe"), "evil⟨U+202E⟩gnp.exe");
        assert_eq!(visible("a\u{0000}b\u{2066}c"), "a⟨U+0000⟩b⟨U+2066⟩c");
        assert_eq!(visible("line\nnext\tx"), "line\nnext\tx");
    }

    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(escape_component("evt_1-a.b~"), "evt_1-a.b~");
        assert_eq!(escape_component("a/b?c#d e&f"), "a%2Fb%3Fc%23d%20e%26f");
        assert_eq!(escape_component("ü"), "%C3%BC");
        assert_eq!(event_href("../x"), "/ui/events/..%2Fx");
    }

    #[test]
    fn maud_escapes_what_it_is_given() {
        let evil = "<script>alert(1)</script>\"'&";
        let out = html! { p title=(evil) { (evil) } }.into_string();
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
        assert!(!out.contains("title=\"<"), "{out}");
    }

    #[test]
    fn ages_read_naturally() {
        let now = Utc::now();
        assert_eq!(ago(now - chrono::Duration::seconds(5), now), "5 s ago");
        assert_eq!(ago(now - chrono::Duration::minutes(3), now), "3 min ago");
        assert_eq!(ago(now + chrono::Duration::hours(2), now), "in 2 h");
        assert_eq!(count(10_000, 10_000), "10000+");
    }
}
