//! The web inspector: a home page, a live page per channel and their assets,
//! all embedded in the binary (no CDN, no build step).
//!
//! Pages are static shells: no token and no payload is ever in the HTML. The
//! scripts read events from the history API and the WebSocket and render
//! them as text nodes only; a strict Content-Security-Policy on every
//! response backs that up, so a payload that slips into markup still cannot
//! run (no inline scripts, no foreign origins).

mod assets;

use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::AppError;
use crate::state::AppState;

/// Sent with every page and asset.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

const INDEX: &str = include_str!("assets/index.html");
const CHANNEL: &str = include_str!("assets/channel.html");
/// Where the pages take the relay's public base URL from (empty: the page's origin).
const BASE_SLOT: &str = "{{BASE}}";

/// The inspector's own routes: `GET /` and `GET /assets/{name}`. The channel
/// page shares `GET /{channel}` with the subscribe transports.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/assets/{name}", get(assets::serve))
}

/// `GET /`: what the relay is, a "New channel" button, how to run the client.
async fn home(State(state): State<AppState>) -> Response {
    page(StatusCode::OK, fill_base(INDEX, &state))
}

/// `GET /{channel}` from a browser: the channel's live page, or an HTML `404`
/// for an unknown channel. Needs no token; the page asks for it.
pub async fn channel_page(state: &AppState, channel: &str) -> Response {
    match state.channel_token_hash(channel).await {
        Ok(_) => page(StatusCode::OK, fill_base(CHANNEL, state)),
        Err(AppError::ChannelNotFound) => error_page(
            StatusCode::NOT_FOUND,
            "No such channel",
            "This relay has no channel with this id. Check the link, or create a new channel.",
        ),
        Err(e) => {
            let status = e.into_response().status();
            error_page(
                status,
                "The relay could not open this channel",
                "Something went wrong on the relay (its log says what). Reload to try again.",
            )
        }
    }
}

/// An HTML error page with the inspector's look.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\"><title>{title} · hookpipe</title>\
         <link rel=\"icon\" href=\"/assets/icon.svg\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"/assets/app.css\"></head>\
         <body><header class=\"top\"><a class=\"brand\" href=\"/\">hookpipe</a></header>\
         <main class=\"prose\"><h1>{title}</h1><p>{message}</p>\
         <p><a class=\"button\" href=\"/\">Go to the home page</a></p></main></body></html>\n",
        title = escape(title),
        message = escape(message),
    );
    page(status, body)
}

fn fill_base(template: &str, state: &AppState) -> String {
    let base = state.config.public_url.as_deref().unwrap_or("");
    template.replace(BASE_SLOT, &escape(base.trim_end_matches('/')))
}

fn page(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    let headers = res.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(headers);
    res
}

/// The security headers every inspector response carries.
fn secure(headers: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, name: &'static str, value: &'static str| {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    };
    set(headers, "content-security-policy", CONTENT_SECURITY_POLICY);
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "no-referrer");
}

/// Escapes text for HTML content and quoted attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
