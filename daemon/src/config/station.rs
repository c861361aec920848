//! A central station's configuration (`vigil central --config central.toml`): the same
//! validation pass, people, `[tls]`, `[limits]` and token rules as a room's, and the NATS
//! connection in a `[nats]` table holding the keys of a room's `[central]` (`nats`, `token`,
//! `user` + `password`, `creds`, `tls`). They sit in a table, not at the top level, because the
//! top-level `user` and `tls` are the central's people (`[[user]]`) and its display's `[tls]`.

use super::check::Check;
use super::spans::Spans;
use super::users::users;
use super::{limits, refusals, ConfigError, ConfigErrors, LogFormat, User};
use crate::nats::{valid_slug, NatsSettings};
use std::net::SocketAddr;
use std::path::Path;

/// The durable consumer's name when the configuration names no central.
pub const DEFAULT_NAME: &str = "central";

/// A validated central configuration.
#[derive(Debug, Clone)]
pub struct CentralConfig {
    /// The display server's address.
    pub listen: SocketAddr,
    /// The site whose rooms it shows (`vigil.<site>.>`).
    pub site: String,
    /// This central's name: its durable consumer is `vigil-central-<name>`.
    pub name: String,
    /// The NATS connection (the `[nats]` table).
    pub nats: NatsSettings,
    /// People.
    pub users: Vec<User>,
    /// Log output.
    pub log_format: LogFormat,
    /// TLS for the display, when configured.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Connection limits, the metrics token, allowed origins.
    pub network: limits::Network,
}

impl CentralConfig {
    /// The durable consumer this central reads the site's stream with.
    pub fn consumer(&self) -> String {
        format!("vigil-central-{}", self.name)
    }

    /// Reads and validates a central configuration file.
    pub fn load(path: &Path) -> Result<CentralConfig, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                location: path.display().to_string(),
                message: format!("cannot read: {e}"),
                span: None,
            }])
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        CentralConfig::parse(&text, &path.display().to_string(), base)
    }

    /// Validates central configuration text.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<CentralConfig, ConfigErrors> {
        let doc = text.parse::<toml::Table>().map_err(|e| {
            ConfigErrors(vec![ConfigError {
                location: file.to_string(),
                message: format!("not valid TOML: {}", e.to_string().trim()),
                span: e.span(),
            }])
        })?;
        validate(&doc, file, base, &Spans::of(text))
    }
}

/// Is this document a central's configuration (a top-level `[nats]` table) rather than a room's?
pub fn is_central(text: &str) -> bool {
    text.parse::<toml::Table>()
        .is_ok_and(|doc| matches!(doc.get("nats"), Some(toml::Value::Table(_))))
}

fn slug(c: &mut Check<'_>, doc: &toml::Table, key: &str, default: &str, what: &str) -> String {
    let value = c
        .string(doc, key, "")
        .unwrap_or_else(|| default.to_string());
    if !valid_slug(&value) {
        c.error(
            key,
            format!("{value:?} is not a slug: 1 to 64 of a-z, 0-9 and -, as {what}"),
        );
    }
    value
}

fn validate(
    doc: &toml::Table,
    file: &str,
    base: &Path,
    spans: &Spans,
) -> Result<CentralConfig, ConfigErrors> {
    let mut errors = Vec::new();
    let mut c = Check {
        file: file.to_string(),
        errors: &mut errors,
        spans,
        entry: None,
    };
    c.unknown_keys(
        doc,
        &[
            "listen",
            "site",
            "name",
            "nats",
            "log_format",
            "tls",
            "allow_plaintext",
            "user",
            "limits",
            "metrics_token",
            "allowed_origins",
        ],
        "",
    );
    let listen = super::listen(doc, &mut c);
    let site = slug(&mut c, doc, "site", "clinic", "the rooms' [central] site");
    let name = slug(&mut c, doc, "name", DEFAULT_NAME, "the central's name");
    let log_format = c
        .choice(doc, "log_format", "", Some("human, json"))
        .unwrap_or(LogFormat::Human);
    let nats = match doc.get("nats") {
        Some(toml::Value::Table(t)) => {
            c.unknown_keys(t, NatsSettings::KEYS, "nats.");
            match toml::Value::Table(t.clone()).try_into::<NatsSettings>() {
                Ok(settings) => {
                    for (key, problem) in settings.problems() {
                        c.error(format!("nats.{key}"), problem);
                    }
                    Some(settings.relative_to(base))
                }
                Err(e) => {
                    c.error("nats", e.to_string().trim().to_string());
                    None
                }
            }
        }
        Some(_) => {
            c.error(
                "nats",
                "must be a table: [nats] with nats = \"nats://HOST:4222\"",
            );
            None
        }
        None => {
            c.error(
                "nats",
                "is required: a [nats] table with nats = \"nats://HOST:4222\" (and credentials)",
            );
            None
        }
    };
    let tls = super::display_tls(doc, base, &mut c);
    let users = users(doc, &mut c);
    if users.is_empty() {
        c.error(
            "user",
            "at least one [[user]] is required: nobody could sign in",
        );
    }
    refusals::plaintext_listen(doc, listen, &mut c);
    let network = limits::network(doc, &mut c);
    match (listen, nats) {
        (Some(listen), Some(nats)) if errors.is_empty() => Ok(CentralConfig {
            listen,
            site,
            name,
            nats,
            users,
            log_format,
            tls,
            network,
        }),
        _ => Err(ConfigErrors(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        listen = "127.0.0.1:0"
        site = "north"
        [nats]
        nats = ["nats://a:4222", "nats://b:4222"]
        user = "central"
        password = "a-long-nats-password"
        action_key = "site-action-key-0123456789"
        [[user]]
        name = "Dr Lee"
        role = "provider"
        token = "provider-token-0123456789"
    "#;

    #[test]
    fn a_central_config_loads_and_names_its_consumer() {
        assert!(is_central(GOOD));
        let c = CentralConfig::parse(GOOD, "central.toml", Path::new(".")).unwrap();
        assert_eq!(c.site, "north");
        assert_eq!(c.consumer(), "vigil-central-central");
        assert_eq!(c.nats.nats.urls(), vec!["nats://a:4222", "nats://b:4222"]);
        assert_eq!(c.users[0].name, "Dr Lee");
    }

    #[test]
    fn every_problem_of_a_central_config_is_listed_with_its_location() {
        let bad = r#"
            site = "North Site"
            room = "Room 1"
            [nats]
            nats = "nats://a:4222"
            token = "t"
            user = "u"
            [[user]]
            name = "A"
            role = "nurse"
            token = "short"
        "#;
        let text = CentralConfig::parse(bad, "central.toml", Path::new("."))
            .unwrap_err()
            .to_string();
        for needle in [
            "central.toml: site: \"North Site\" is not a slug",
            "central.toml: room: unknown key",
            "central.toml: nats.token: give one of token",
            "central.toml: nats.user: user and password go together",
            "central.toml: nats.action_key: is required",
            "user #1 \"A\".token: is 5 characters",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        let none = CentralConfig::parse("site = \"x\"", "c.toml", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(none.contains("c.toml: nats: is required"), "{none}");
        assert!(none.contains("c.toml: user: at least one"), "{none}");
        // A room's configuration is not taken for a central's.
        assert!(!is_central(
            "room = \"r\"\n[central]\nnats = \"nats://a:4222\"\n"
        ));
    }
}
