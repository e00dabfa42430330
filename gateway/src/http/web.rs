//! The web client, compiled into the binary.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../../../web/index.html");
const APP_JS: &str = include_str!("../../../web/app.js");
/// The ES modules `app.js` imports (`/js/<name>`), by concern; no build step.
const MODULES: [(&str, &str); 10] = [
    ("state.js", include_str!("../../../web/js/state.js")),
    ("session.js", include_str!("../../../web/js/session.js")),
    ("socket.js", include_str!("../../../web/js/socket.js")),
    ("compose.js", include_str!("../../../web/js/compose.js")),
    ("render.js", include_str!("../../../web/js/render.js")),
    ("records.js", include_str!("../../../web/js/records.js")),
    ("message-view.js", include_str!("../../../web/js/message-view.js")),
    ("conversation.js", include_str!("../../../web/js/conversation.js")),
    ("reads.js", include_str!("../../../web/js/reads.js")),
    ("moderation.js", include_str!("../../../web/js/moderation.js")),
];
const STYLE: &str = include_str!("../../../web/style.css");

const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";

pub async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        INDEX,
    )
}

pub async fn app_js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS)
}

pub async fn module(Path(name): Path<String>) -> Response {
    match MODULES.iter().find(|(n, _)| *n == name) {
        Some((_, source)) => ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], *source).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}
