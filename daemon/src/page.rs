//! The provider display: one HTML page with its CSS and JavaScript, embedded in the binary.

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("../web/index.html");

/// `GET /`.
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
}
