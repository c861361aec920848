//! The NATS contract shared by a room (which publishes) and the central station (which reads):
//! the connection settings and [`connect`], the JetStream stream ([`ensure_stream`]), the subject
//! names ([`Subjects`]) and the message id ([`msg_id`]). One place, so both sides agree by
//! construction. `docs/nats.md` states the contract.

pub mod signed;
mod subjects;

pub use subjects::{msg_id, replay_msg_id, snapshot_msg_id, stream_name, valid_slug, Subjects};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the stream keeps a message.
pub const STREAM_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// How many bytes the stream keeps at most.
pub const STREAM_MAX_BYTES: i64 = 1 << 30;
/// The window within which the stream drops a message whose `Nats-Msg-Id` it has seen.
pub const STREAM_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// `nats`: one server URL or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NatsUrls {
    /// `nats = "nats://host:4222"`.
    One(String),
    /// `nats = ["nats://a:4222", "nats://b:4222"]`.
    Many(Vec<String>),
}

impl NatsUrls {
    /// The URLs, in the order written.
    pub fn urls(&self) -> Vec<&str> {
        match self {
            NatsUrls::One(u) => vec![u.as_str()],
            NatsUrls::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// `tls = { ca = PATH, cert = PATH, key = PATH }`: PEM files for the NATS connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsTls {
    /// `ca`: the certificate authority that signed the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// `cert`: this side's client certificate (with `key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// `key`: the client certificate's private key (with `cert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// The NATS connection settings: the same keys in a room's `[central]` and at the central
/// station's top level (embed with `#[serde(flatten)]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsSettings {
    /// `nats`: the server URL or URLs (required).
    pub nats: NatsUrls,
    /// `token`: a server token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `user`, with `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `password`, with `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `creds`: a NATS credentials file (JWT and NKey seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creds: Option<PathBuf>,
    /// `tls`: PEM files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<NatsTls>,
    /// `action_key`: the site's secret the central signs its requests to rooms with, the same
    /// at the central and in every room (see [`signed`]). Required by both configurations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_key: Option<String>,
}

/// What a configuration made wrong or a connection could not do.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The settings contradict themselves or name no server.
    #[error("nats settings: {0}")]
    Settings(String),
    /// A server URL does not parse.
    #[error("nats URL {url:?}: {reason}")]
    Url {
        /// The URL as written.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The credentials file could not be read.
    #[error("nats creds file {path}: {source}")]
    Creds {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Connecting failed.
    #[error("nats connect: {0}")]
    Connect(#[from] async_nats::ConnectError),
    /// The stream could not be made or read.
    #[error("nats stream {stream}: {reason}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// Why.
        reason: String,
    },
}

impl NatsSettings {
    /// The keys these settings take, for a table's unknown-key check.
    pub const KEYS: &'static [&'static str] = &[
        "nats",
        "token",
        "user",
        "password",
        "creds",
        "tls",
        "action_key",
    ];

    /// Settings for one server, no credentials.
    pub fn url(url: impl Into<String>) -> NatsSettings {
        NatsSettings {
            nats: NatsUrls::One(url.into()),
            token: None,
            user: None,
            password: None,
            creds: None,
            tls: None,
            action_key: None,
        }
    }

    /// The action key, when one is set.
    pub fn action_key(&self) -> Option<signed::ActionKey> {
        self.action_key.as_deref().map(signed::ActionKey::new)
    }

    /// Every mistake in the settings, each as a sentence naming its key (empty when fine).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = self.connection_problems();
        match &self.action_key {
            None => out.push((
                "action_key",
                "is required: the central signs its requests to rooms with it, and a room answers \
                 only those; the same value at the central and in every room of the site: make \
                 one with `vigil token`"
                    .into(),
            )),
            Some(key) => {
                if let Some(problem) = crate::config::token_problem(key) {
                    out.push(("action_key", problem));
                }
            }
        }
        out
    }

    /// The mistakes that stop a connection.
    fn connection_problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let urls = self.nats.urls();
        if urls.is_empty() {
            out.push((
                "nats",
                "names no server; give a URL such as nats://central:4222".into(),
            ));
        }
        for url in urls {
            if let Err(e) = url.parse::<async_nats::ServerAddr>() {
                out.push(("nats", format!("{url:?} is not a NATS URL: {e}")));
            }
        }
        let methods = [
            self.token.is_some(),
            self.user.is_some() || self.password.is_some(),
            self.creds.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            out.push((
                "token",
                "give one of token, user with password, or creds, not several".into(),
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            out.push(("user", "user and password go together".into()));
        }
        if let Some(tls) = &self.tls {
            if tls.cert.is_some() != tls.key.is_some() {
                out.push(("tls", "tls.cert and tls.key go together".into()));
            }
        }
        out
    }

    /// The same settings with relative paths taken from `dir` (the configuration's folder).
    pub fn relative_to(mut self, dir: &Path) -> NatsSettings {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        if let Some(c) = self.creds.as_mut() {
            join(c);
        }
        if let Some(tls) = self.tls.as_mut() {
            for p in [&mut tls.ca, &mut tls.cert, &mut tls.key]
                .into_iter()
                .flatten()
            {
                join(p);
            }
        }
        self
    }
}

/// Connects with `settings`, naming the connection `name` (shown by the server's monitoring).
/// Returns at once even when no server answers yet: the client keeps trying in the background,
/// forever, with a back-off of at most 4 s, so neither side waits on NATS to start.
pub async fn connect(settings: &NatsSettings, name: &str) -> Result<async_nats::Client, NatsError> {
    if let Some((key, problem)) = settings.connection_problems().into_iter().next() {
        return Err(NatsError::Settings(format!("{key}: {problem}")));
    }
    let addrs = settings
        .nats
        .urls()
        .into_iter()
        .map(|u| {
            u.parse::<async_nats::ServerAddr>()
                .map_err(|e| NatsError::Url {
                    url: u.to_string(),
                    reason: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(5)));
    if let Some(path) = &settings.creds {
        options = options
            .credentials_file(path)
            .await
            .map_err(|source| NatsError::Creds {
                path: path.clone(),
                source,
            })?;
    }
    if let Some(token) = &settings.token {
        options = options.token(token.clone());
    }
    if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(tls) = &settings.tls {
        options = options.require_tls(true);
        if let Some(ca) = &tls.ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
    }
    Ok(options.connect(addrs).await?)
}

/// Gets the site's stream, creating it with the contract's configuration if it is missing:
/// `VIGIL_<SITE>` over `vigil.<site>.>`, file storage, 24 h, 1 GiB, a 2 min duplicate window.
pub async fn ensure_stream(
    js: &async_nats::jetstream::Context,
    site: &str,
) -> Result<async_nats::jetstream::stream::Stream, NatsError> {
    use async_nats::jetstream::stream::{Config, StorageType};
    let name = stream_name(site);
    let config = Config {
        name: name.clone(),
        subjects: vec![Subjects::stream_filter(site)],
        storage: StorageType::File,
        max_age: STREAM_MAX_AGE,
        max_bytes: STREAM_MAX_BYTES,
        duplicate_window: STREAM_DUPLICATE_WINDOW,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map_err(|e| NatsError::Stream {
            stream: name,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_or_a_list_parse_from_toml() {
        let one: NatsSettings = toml::from_str("nats = \"nats://c:4222\"").expect("one");
        assert_eq!(one.nats.urls(), vec!["nats://c:4222"]);
        let many: NatsSettings =
            toml::from_str("nats = [\"nats://a:4222\", \"nats://b:4222\"]\ntoken = \"t\"\naction_key = \"site-action-key-0123456789\"")
                .expect("many");
        assert_eq!(many.nats.urls(), vec!["nats://a:4222", "nats://b:4222"]);
        assert!(many.problems().is_empty(), "{:?}", many.problems());
        // The site's key is required, and must be as strong as a person's token.
        let keys = |s: &NatsSettings| s.problems().into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(&one), vec!["action_key"]);
        let weak = NatsSettings {
            action_key: Some("short".into()),
            ..one
        };
        assert_eq!(keys(&weak), vec!["action_key"]);
    }

    #[test]
    fn contradicting_credentials_and_half_pairs_are_named() {
        let mut s = NatsSettings::url("nats://c:4222");
        s.token = Some("t".into());
        s.user = Some("u".into());
        s.action_key = Some("site-action-key-0123456789".into());
        let keys: Vec<_> = s.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["token", "user"]);
        let mut s = NatsSettings::url("nats://c:4222");
        s.tls = Some(NatsTls {
            cert: Some("c.pem".into()),
            ..Default::default()
        });
        assert_eq!(s.problems()[0].0, "tls");
        let s = NatsSettings {
            nats: NatsUrls::Many(vec![]),
            ..NatsSettings::url("")
        };
        assert_eq!(s.problems()[0].0, "nats");
    }

    #[test]
    fn relative_paths_are_taken_from_the_config_folder() {
        let mut s = NatsSettings::url("nats://c:4222");
        s.creds = Some("room.creds".into());
        s.tls = Some(NatsTls {
            ca: Some("/etc/ca.pem".into()),
            ..Default::default()
        });
        let s = s.relative_to(Path::new("/etc/vigil"));
        assert_eq!(s.creds, Some(PathBuf::from("/etc/vigil/room.creds")));
        assert_eq!(s.tls.and_then(|t| t.ca), Some(PathBuf::from("/etc/ca.pem")));
    }
}
