//! The inspector's scripts, styles and icon, compiled into the binary and
//! served with an ETag: browsers revalidate on each load and get a `304`
//! until the relay is upgraded.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("dom.js", JS),
    asset!("home.js", JS),
    asset!("channel.js", JS),
    asset!("detail.js", JS),
    asset!("icon.svg", "image/svg+xml"),
];

/// `"<first 16 hex digits of the SHA-256>"` of each asset, in `ASSETS` order.
fn etags() -> &'static [HeaderValue] {
    static ETAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body);
                let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                HeaderValue::try_from(format!("\"{hex}\"")).expect("hex is a valid header value")
            })
            .collect()
    })
}

/// `GET /assets/{name}`.
pub async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return super::error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "The inspector has no file by this name.",
        );
    };
    let (asset, etag) = (&ASSETS[i], &etags()[i]);
    let fresh = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().trim_start_matches("W/") == etag.to_str().unwrap_or_default());
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(ETAG, etag.clone());
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    super::secure(h);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_small_and_tagged() {
        let total: usize = ASSETS.iter().map(|a| a.body.len()).sum();
        let pages = super::super::INDEX.len() + super::super::CHANNEL.len();
        assert!(
            total + pages < 64 * 1024,
            "inspector assets grew to {} bytes",
            total + pages
        );
        assert_eq!(etags().len(), ASSETS.len());
    }
}
