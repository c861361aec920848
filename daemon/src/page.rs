//! The provider display: one HTML page with its CSS and JavaScript, embedded in the binary.

use crate::server::App;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::sync::{Arc, LazyLock};

const PAGE: &str = include_str!("../web/index.html");

/// The page's banner that says the data is simulated, as the page has it (hidden) ...
const SIMULATED_HIDDEN: &str = r#"<span id="simulated" class="hidden">"#;
/// ... and as a simulated room's page shows it.
const SIMULATED_SHOWN: &str = r#"<span id="simulated">"#;

/// The page of a room whose devices are simulated (`vigil demo`).
static SIMULATED_PAGE: LazyLock<String> =
    LazyLock::new(|| PAGE.replacen(SIMULATED_HIDDEN, SIMULATED_SHOWN, 1));

/// `GET /`. A simulated room's page says so in a banner, so nobody takes it for a patient's.
pub async fn page(State(app): State<Arc<App>>) -> impl IntoResponse {
    let page: &'static str = if app.simulated {
        SIMULATED_PAGE.as_str()
    } else {
        PAGE
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_simulated_rooms_page_shows_the_simulated_banner() {
        assert!(PAGE.contains(SIMULATED_HIDDEN));
        assert!(!PAGE.contains(SIMULATED_SHOWN));
        assert!(SIMULATED_PAGE.contains(SIMULATED_SHOWN));
        assert!(!SIMULATED_PAGE.contains(SIMULATED_HIDDEN));
    }
}
