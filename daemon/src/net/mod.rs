//! The daemon's edge to the network: who may connect, how many at once, how fast they may fail
//! or send, and what it tells the logs about it. Nobody on the network can stop or starve the
//! room's monitoring through it.
//!
//! - [`gate`]: caps on connections held (authenticated or not) and the 10 s handshake deadline;
//! - [`throttle`]: failed authentication slowed per address, then refused with 429;
//! - [`flood`]: a display connection's frame rate;
//! - [`listener`]: the plain TCP accept loop through the gate, and the connection info handlers
//!   see;
//! - this module: the `Origin` check, the metrics token, the open-files limit, and the counters
//!   `/metrics` shows.

pub mod flood;
pub mod gate;
pub mod listener;
pub mod throttle;

use crate::config::limits::Network;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gate::Gate;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use throttle::{Answer, Throttle};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use listener::Conn;

pub use vigil_drivers::tally::{Tally, LOG_EVERY};

/// What the display server needs from this module.
pub struct Net {
    /// Connection caps.
    pub gate: Arc<Gate>,
    /// Failed authentication per address.
    pub throttle: Throttle,
    allowed_origins: Vec<String>,
    metrics_token: Option<String>,
    origin_refused: AtomicU64,
    origin_log: Mutex<Tally>,
    flood_closed: AtomicU64,
}

impl Net {
    /// From the configuration.
    pub fn new(network: &Network) -> Arc<Net> {
        Arc::new(Net {
            gate: Gate::new(network.limits),
            throttle: Throttle::default(),
            allowed_origins: network.allowed_origins.clone(),
            metrics_token: network.metrics_token.clone(),
            origin_refused: AtomicU64::new(0),
            origin_log: Mutex::default(),
            flood_closed: AtomicU64::new(0),
        })
    }

    /// A WebSocket upgrade from a page of another site is refused (403): only the daemon's own
    /// page (an `Origin` naming the `Host` the request was sent to) and the configured
    /// `allowed_origins` may open the display. Clients that are not browsers send no `Origin`.
    pub fn origin_refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let origin = headers.get(header::ORIGIN)?;
        let origin = origin
            .to_str()
            .unwrap_or("")
            .trim()
            .trim_end_matches('/')
            .to_ascii_lowercase();
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.trim().to_ascii_lowercase());
        let own = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if (own.is_some() && own.map(str::to_string) == host)
            || self.allowed_origins.contains(&origin)
        {
            return None;
        }
        self.origin_refused.fetch_add(1, Ordering::Relaxed);
        let due = self
            .origin_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .note(Instant::now());
        if let Some(n) = due {
            // The origin is a site's name, not a person's.
            tracing::warn!(refused = n, origin = %origin, "refused display connections from a page of another site (count since the last such line); add its origin to allowed_origins if it is yours");
        }
        Some(
            (
                StatusCode::FORBIDDEN,
                "this page's origin may not open the display; see allowed_origins in the daemon's configuration",
            )
                .into_response(),
        )
    }

    /// 429 while `ip` is locked out, before any token is looked at.
    pub fn locked_out(&self, ip: IpAddr) -> Option<Response> {
        let retry = self.throttle.locked(ip, Instant::now())?;
        Some(too_many(retry))
    }

    /// A missing or wrong token: waits as the throttle says, then answers 401 with `message`
    /// (or 429 when this failure locks the address out).
    pub async fn failed(
        &self,
        ip: IpAddr,
        message: &'static str,
        shutdown: &CancellationToken,
    ) -> Response {
        match self.throttle.failed(ip, Instant::now()) {
            Answer::Locked(retry) => too_many(retry),
            Answer::Delayed(wait) => {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => {}
                }
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    message,
                )
                    .into_response()
            }
        }
    }

    /// `Some(refusal)` when `/metrics` needs a token this request does not carry.
    pub async fn metrics_refusal(
        &self,
        headers: &HeaderMap,
        ip: IpAddr,
        shutdown: &CancellationToken,
    ) -> Option<Response> {
        let expected = self.metrics_token.as_deref()?;
        if let Some(locked) = self.locked_out(ip) {
            return Some(locked);
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        if crate::config::token_matches(expected, given) {
            return None;
        }
        Some(
            self.failed(
                ip,
                "/metrics needs Authorization: Bearer METRICS_TOKEN",
                shutdown,
            )
            .await,
        )
    }

    /// A session was closed for flooding.
    pub fn flood_closed(&self) {
        self.flood_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// Once a minute until `stop`: logs the counts that the per-minute lines left out and
    /// forgets quiet addresses. At `stop`, closes unauthenticated connections.
    pub fn housekeeping(self: Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(LOG_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let now = Instant::now();
                self.throttle.sweep(now);
                self.gate.flush_logs(now);
                if let Some(n) = self
                    .origin_log
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .flush(now)
                {
                    tracing::warn!(
                        refused = n,
                        "refused display connections from pages of other sites"
                    );
                }
            }
            self.gate.close_unauthenticated();
        })
    }

    /// The Prometheus lines of this module.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let (authenticated, unauthenticated) = self.gate.held();
        let (evicted, expired, refused) = self.gate.closed();
        let (failed, locked) = self.throttle.refused();
        let _ = writeln!(
            out,
            "# HELP vigil_connections Connections held, by whether they opened a display session with a valid token.\n\
             # TYPE vigil_connections gauge\n\
             vigil_connections{{state=\"authenticated\"}} {authenticated}\n\
             vigil_connections{{state=\"unauthenticated\"}} {unauthenticated}\n\
             # HELP vigil_connections_closed_total Connections closed or refused by the connection limits.\n\
             # TYPE vigil_connections_closed_total counter\n\
             vigil_connections_closed_total{{reason=\"evicted\"}} {evicted}\n\
             vigil_connections_closed_total{{reason=\"deadline\"}} {expired}\n\
             vigil_connections_closed_total{{reason=\"refused\"}} {refused}\n\
             # HELP vigil_auth_refused_total Requests refused for a missing or wrong token (401) or a locked-out address (429).\n\
             # TYPE vigil_auth_refused_total counter\n\
             vigil_auth_refused_total{{status=\"401\"}} {failed}\n\
             vigil_auth_refused_total{{status=\"429\"}} {locked}\n\
             # HELP vigil_origin_refused_total WebSocket upgrades refused for a foreign Origin.\n\
             # TYPE vigil_origin_refused_total counter\n\
             vigil_origin_refused_total {}\n\
             # HELP vigil_flood_closed_total Display sessions closed for flooding (1008).\n\
             # TYPE vigil_flood_closed_total counter\n\
             vigil_flood_closed_total {}",
            self.origin_refused.load(Ordering::Relaxed),
            self.flood_closed.load(Ordering::Relaxed),
        );
        out
    }
}

fn too_many(retry: Duration) -> Response {
    // Rounded up: a client that waits this long is let in.
    let seconds = retry.as_millis().div_ceil(1000).max(1);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, seconds.to_string())],
        format!("too many failed attempts from this address: try again in {seconds} s"),
    )
        .into_response()
}

/// Raises the open-files soft limit to the hard limit, so that the connection caps, not the
/// kernel, decide who is refused; logs the figure. Returns the limit in force.
pub fn raise_open_files_limit(network: &Network) -> Option<u64> {
    let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, soft, "cannot raise the open-files limit");
            soft
        }
    };
    // Besides connections: the session record, devices, the listener, the runtime.
    let needed = network.limits.max_connections as u64 + 64;
    if limit < needed {
        tracing::warn!(open_files = limit, max_connections = network.limits.max_connections,
            "the open-files limit is below what limits.max_connections needs; raise the hard limit (LimitNOFILE=) or lower max_connections");
    } else {
        tracing::info!(open_files = limit, was = soft, "open-files limit");
    }
    Some(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn only_the_daemons_own_pages_and_listed_origins_may_upgrade() {
        let net = Net::new(&Network {
            allowed_origins: vec!["https://vigil.clinic.example".into()],
            ..Network::default()
        });
        let ok = |h: HeaderMap| net.origin_refusal(&h).is_none();
        assert!(ok(headers(&[(header::HOST, "127.0.0.1:8080")])));
        assert!(ok(headers(&[
            (header::HOST, "127.0.0.1:8080"),
            (header::ORIGIN, "http://127.0.0.1:8080")
        ])));
        assert!(ok(headers(&[
            (header::HOST, "Room2.local:8443"),
            (header::ORIGIN, "https://room2.LOCAL:8443")
        ])));
        assert!(ok(headers(&[
            (header::HOST, "10.0.0.5:8080"),
            (header::ORIGIN, "https://Vigil.Clinic.example")
        ])));
        for origin in [
            "http://evil.example",
            "http://127.0.0.1:8081",
            "null",
            "http://127.0.0.1:8080.evil.example",
        ] {
            assert!(
                !ok(headers(&[
                    (header::HOST, "127.0.0.1:8080"),
                    (header::ORIGIN, origin)
                ])),
                "{origin}"
            );
        }
        assert_eq!(net.origin_refused.load(Ordering::Relaxed), 4);
    }
}
