//! The dashboard at `/ui`: plain HTML, JavaScript and CSS compiled into the binary (no build
//! step, no CDN), served with a strict Content-Security-Policy. It holds no data of its own:
//! the pages call the API with the key the user logs in with, so a tenant sees exactly what
//! its key may read and the instance owner sees every tenant.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

/// Every asset: name, media type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("../ui/app.js")),
    ("overview.js", "text/javascript; charset=utf-8", include_str!("../ui/overview.js")),
    ("traces.js", "text/javascript; charset=utf-8", include_str!("../ui/traces.js")),
    ("operate.js", "text/javascript; charset=utf-8", include_str!("../ui/operate.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../ui/app.css")),
];
const INDEX: &str = include_str!("../ui/index.html");

/// Scripts and styles from this origin only, no inline script, no framing, API calls to this
/// origin only: injected markup could neither run nor send anything elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn page(media: &'static str, body: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Small files that change with the binary: always revalidate.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// `/ui` → `/ui/` (so the assets' relative base is right).
pub async fn redirect() -> Redirect {
    Redirect::permanent("/ui/")
}

/// The dashboard's page.
pub async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

/// One of the dashboard's scripts or its stylesheet.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, media, body)) => page(media, body),
        None => crate::error::ApiError::from(cairn_core::Error::NotFound(format!(
            "no dashboard file '{}'",
            name.chars().take(64).collect::<String>()
        )))
        .into_response(),
    }
}
