//! Who may reach the daemon over the network, and how many at once: the `[limits]` table, the
//! `metrics_token` and the `allowed_origins` list. Validated here, enforced in `crate::net`.

use super::check::Check;
use super::token_problem;

/// Caps on connections held at once (`[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections held at once, authenticated or not. A new connection beyond it closes the
    /// oldest unauthenticated one; when every held connection is an authenticated display, the
    /// new one is refused.
    pub max_connections: usize,
    /// Connections held at once that have not (yet) opened a display WebSocket with a valid
    /// token: page loads, scrapes, handshakes in progress, idle sockets. A new one beyond it
    /// closes the oldest of the address that holds the most.
    pub max_unauthenticated: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            max_unauthenticated: 64,
        }
    }
}

/// The network part of the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    /// Connection caps.
    pub limits: Limits,
    /// When set, `GET /metrics` requires `Authorization: Bearer` this token.
    pub metrics_token: Option<String>,
    /// Origins (`scheme://host[:port]`, lower case) whose pages may open the display's WebSocket
    /// besides the daemon's own (the `Host` the request was sent to).
    pub allowed_origins: Vec<String>,
}

/// Reads and checks `[limits]`, `metrics_token` and `allowed_origins`.
pub(super) fn network(doc: &toml::Table, c: &mut Check<'_>) -> Network {
    let mut network = Network::default();
    match doc.get("limits") {
        None => {}
        Some(toml::Value::Table(t)) => {
            c.unknown_keys(t, &["max_connections", "max_unauthenticated"], "limits.");
            let limits = &mut network.limits;
            if let Some(n) = c.integer(t, "max_connections", "limits.", 1..=65_536) {
                limits.max_connections = n as usize;
            }
            if let Some(n) = c.integer(t, "max_unauthenticated", "limits.", 1..=65_536) {
                limits.max_unauthenticated = n as usize;
            }
            if limits.max_unauthenticated > limits.max_connections {
                c.error(
                    "limits.max_unauthenticated",
                    format!(
                        "{} is more than max_connections ({})",
                        limits.max_unauthenticated, limits.max_connections
                    ),
                );
            }
        }
        Some(_) => c.error(
            "limits",
            "must be a table: [limits] with max_connections, max_unauthenticated",
        ),
    }
    if let Some(token) = c.string(doc, "metrics_token", "") {
        // The same rules as the users' tokens: one check for every token.
        if let Some(problem) = token_problem(&token) {
            c.error("metrics_token", problem);
        }
        network.metrics_token = Some(token);
    }
    match doc.get("allowed_origins") {
        None => {}
        Some(toml::Value::Array(list)) => {
            for (i, v) in list.iter().enumerate() {
                let at = format!("allowed_origins #{}", i + 1);
                match v.as_str().map(origin) {
                    Some(Ok(o)) => network.allowed_origins.push(o),
                    Some(Err(e)) => c.error(at, e),
                    None => c.error(at, "must be a string like \"https://vigil.example\""),
                }
            }
        }
        Some(_) => c.error(
            "allowed_origins",
            "must be a list like [\"https://vigil.example\"]",
        ),
    }
    network
}

/// An origin as browsers send it: `http` or `https`, a host, an optional port, nothing more.
fn origin(text: &str) -> Result<String, String> {
    let lower = text.trim().trim_end_matches('/').to_ascii_lowercase();
    let host = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or_else(|| format!("{text:?} must start with http:// or https://"))?;
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!(
            "{text:?} is not an origin: scheme://host[:port], without a path"
        ));
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;
    use std::path::Path;

    const BASE: &str = "room = \"r\"\n[storage]\npath = \"x.db\"\n\
        [[device]]\nid = \"oximeter-1\"\nformat = \"masimo\"\nport = \"/dev/ttyUSB0\"\n";

    #[test]
    fn defaults_keep_loopback_and_sane_caps() {
        let c = Config::parse(BASE, "vigil.toml", Path::new(".")).unwrap();
        assert!(c.listen.ip().is_loopback(), "{}", c.listen);
        assert_eq!(c.network, Network::default());
        assert_eq!(c.network.limits.max_connections, 256);
        assert_eq!(c.network.limits.max_unauthenticated, 64);
        assert_eq!(c.network.metrics_token, None);
    }

    #[test]
    fn limits_token_and_origins_are_read() {
        let text = format!(
            "metrics_token = \"scrape-token-0123456789\"\n\
             allowed_origins = [\"HTTPS://Vigil.Clinic.example/\", \"http://10.0.0.5:8080\"]\n\
             {BASE}[limits]\nmax_connections = 40\nmax_unauthenticated = 8\n"
        );
        let c = Config::parse(&text, "vigil.toml", Path::new(".")).unwrap();
        assert_eq!(
            c.network,
            Network {
                limits: Limits {
                    max_connections: 40,
                    max_unauthenticated: 8
                },
                metrics_token: Some("scrape-token-0123456789".into()),
                allowed_origins: vec![
                    "https://vigil.clinic.example".into(),
                    "http://10.0.0.5:8080".into()
                ],
            }
        );
    }

    #[test]
    fn bad_values_are_listed_with_their_location() {
        let text = format!(
            "metrics_token = \"short\"\nallowed_origins = [\"vigil.example\", \"https://x/path\", 3]\n\
             {BASE}[limits]\nmax_connections = 0\nmax_unauthenticated = 500\nmax_sessions = 3\n"
        );
        let err = Config::parse(&text, "vigil.toml", Path::new("."))
            .unwrap_err()
            .to_string();
        for needle in [
            "vigil.toml: limits.max_connections: 0 is outside 1..=65536",
            "vigil.toml: limits.max_unauthenticated: 500 is more than max_connections (256)",
            "vigil.toml: limits.max_sessions: unknown key",
            "vigil.toml: metrics_token: is 5 characters; at least 20",
            "vigil.toml: allowed_origins #1: \"vigil.example\" must start with http://",
            "vigil.toml: allowed_origins #2: \"https://x/path\" is not an origin",
            "vigil.toml: allowed_origins #3: must be a string",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }
}
