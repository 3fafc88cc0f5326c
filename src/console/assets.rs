//! The console's stylesheet and script, embedded in the binary (no build step, no Node).
//! Their URLs carry a hash of their content, so browsers may keep them for a year and still
//! never run an old script against a new page.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// (name, content type, content)
const ASSETS: &[(&str, &str, &str)] = &[
    ("console.css", "text/css; charset=utf-8", CSS),
    ("console.js", "text/javascript; charset=utf-8", JS),
];

static VERSIONS: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|(name, _, body)| {
            let hash = hex::encode(&Sha256::digest(body.as_bytes())[..6]);
            (*name, hash)
        })
        .collect()
});

/// The URL of an asset, versioned by its content.
pub fn url(name: &str) -> String {
    let v = VERSIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("0");
    format!("/ui/assets/{name}?v={v}")
}

pub async fn serve(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => {
            let mut r = (*body).into_response();
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            r.headers_mut().insert(
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            r
        }
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}
