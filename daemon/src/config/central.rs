//! `[central]`: where the room publishes to the central station over NATS (optional; a room
//! without it runs alone, as before). The connection keys are the NATS contract's
//! ([`NatsSettings`]); `site` and `room_id` name the room's subjects.

use super::check::Check;
use crate::nats::{valid_slug, NatsSettings, NatsTls, NatsUrls};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The site when `[central]` names none.
pub const DEFAULT_SITE: &str = "clinic";

/// A validated `[central]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Central {
    /// How to reach NATS (paths made absolute).
    pub connection: NatsSettings,
    /// `site`: the clinic's slug, the stream's and subjects' second token.
    pub site: String,
    /// `room_id`: this room's slug, unique in the site.
    pub room_id: String,
}

/// `[central]` as written (for configurations made in code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CentralFile {
    /// The NATS connection keys.
    #[serde(flatten)]
    pub connection: NatsSettings,
    /// `site` (default `clinic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// `room_id` (default: made from `room`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
}

/// A slug made from a room's display name: lower case, each run of other characters as one
/// `-`, at most 64 characters (`"Room 2 (east)"` becomes `room-2-east`).
pub fn slug_of(room: &str) -> String {
    let mut out = String::new();
    for c in room.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(64);
    out.trim_end_matches('-').to_string()
}

const SLUG_RULE: &str = "1 to 64 of a-z, 0-9 and -, starting with a letter or digit";

/// Reads and checks `[central]`, reporting each problem through `c`.
pub(super) fn central(
    doc: &toml::Table,
    room: &str,
    base: &Path,
    c: &mut Check<'_>,
) -> Option<Central> {
    let t = match doc.get("central")? {
        toml::Value::Table(t) => t,
        _ => {
            c.error("central", "must be a table with `nats`");
            return None;
        }
    };
    let mut keys = NatsSettings::KEYS.to_vec();
    keys.extend(["site", "room_id"]);
    c.unknown_keys(t, &keys, "central.");
    let before = c.errors.len();

    let nats = match t.get("nats") {
        Some(toml::Value::String(s)) => Some(NatsUrls::One(s.clone())),
        Some(toml::Value::Array(a)) => {
            let urls: Vec<String> = a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            if urls.len() != a.len() {
                c.error("central.nats", "must be a URL or a list of URLs (strings)");
            }
            Some(NatsUrls::Many(urls))
        }
        Some(other) => {
            c.error(
                "central.nats",
                format!("must be a URL or a list of URLs, not {}", other.type_str()),
            );
            None
        }
        None => {
            c.error(
                "central.nats",
                "is required: the NATS server, such as \"nats://central:4222\"",
            );
            None
        }
    };
    let token = c.string(t, "token", "central.");
    let user = c.string(t, "user", "central.");
    let password = c.string(t, "password", "central.");
    let creds = c.string(t, "creds", "central.").map(PathBuf::from);
    let action_key = c.string(t, "action_key", "central.");
    let tls = match t.get("tls") {
        None => None,
        Some(toml::Value::Table(tls)) => {
            c.unknown_keys(tls, &["ca", "cert", "key"], "central.tls.");
            Some(NatsTls {
                ca: c.string(tls, "ca", "central.tls.").map(PathBuf::from),
                cert: c.string(tls, "cert", "central.tls.").map(PathBuf::from),
                key: c.string(tls, "key", "central.tls.").map(PathBuf::from),
            })
        }
        Some(_) => {
            c.error(
                "central.tls",
                "must be a table: { ca = PATH, cert = PATH, key = PATH }",
            );
            None
        }
    };
    let site = c
        .string(t, "site", "central.")
        .unwrap_or_else(|| DEFAULT_SITE.to_string());
    if !valid_slug(&site) {
        c.error(
            "central.site",
            format!("{site:?} is not a slug: {SLUG_RULE}"),
        );
    }
    let room_id = match c.string(t, "room_id", "central.") {
        Some(id) => {
            if !valid_slug(&id) {
                c.error(
                    "central.room_id",
                    format!("{id:?} is not a slug: {SLUG_RULE}"),
                );
            }
            id
        }
        None => {
            let id = slug_of(room);
            if id.is_empty() && !room.trim().is_empty() {
                c.error(
                    "central.room_id",
                    "is required: the room's name has no letter or digit to make one from",
                );
            }
            id
        }
    };

    let connection = NatsSettings {
        nats: nats?,
        token,
        user,
        password,
        creds,
        tls,
        action_key,
    }
    .relative_to(base);
    for (key, problem) in connection.problems() {
        c.error(format!("central.{key}"), problem);
    }
    let files = [
        ("creds", connection.creds.as_ref()),
        (
            "tls.ca",
            connection.tls.as_ref().and_then(|t| t.ca.as_ref()),
        ),
        (
            "tls.cert",
            connection.tls.as_ref().and_then(|t| t.cert.as_ref()),
        ),
        (
            "tls.key",
            connection.tls.as_ref().and_then(|t| t.key.as_ref()),
        ),
    ];
    for (key, path) in files {
        if let Some(path) = path {
            if let Err(e) = std::fs::metadata(path) {
                c.error(
                    format!("central.{key}"),
                    format!("cannot read {}: {e}", path.display()),
                );
            }
        }
    }
    (c.errors.len() == before).then_some(Central {
        connection,
        site,
        room_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_make_slugs() {
        assert_eq!(slug_of("Room 2 (east)"), "room-2-east");
        assert_eq!(slug_of("  Zimmer Ä-1 "), "zimmer-1");
        assert_eq!(slug_of("!!!"), "");
        assert_eq!(slug_of(&"x".repeat(80)).len(), 64);
    }
}
