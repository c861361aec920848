//! The daemon's configuration file (TOML). Loading validates everything and reports every
//! problem at once, each with where it is; `vigil check-config FILE` prints them.
//!
//! One validation pass ([`Config::parse`], here) walks the document section by section,
//! reading values through their types' `Deserialize` and reporting through `check` (key path,
//! message, and the span `spans` finds in the text). Configurations made in code (the demo,
//! the benchmark) fill the typed [`ConfigFile`] and go through the same pass. The sections with
//! more to say have their own modules: `users` (and the one token check), `devices`, `limits`,
//! `refusals`; the alarm profile's files are loaded here and validated by `vigil_alarm`.

mod central;
mod check;
mod devices;
mod effective;
mod file;
mod forward;
pub mod hl7;
mod refusals;
mod spans;
mod station;
mod users;

pub use central::{slug_of, Central, CentralFile, DEFAULT_SITE};
pub use effective::effective_profile;
pub use file::{
    BleEntry, ConfigFile, DeviceEntry, DeviceTlsEntry, ForwardEntry, ForwardTlsEntry, LimitsFile,
    StorageFile, TlsFile, UserEntry,
};
pub use station::{is_central, CentralConfig};
pub use users::{find_user, new_token, token_matches, token_problem, MIN_TOKEN_LEN};

use check::Check;
use devices::devices;
use forward::forwards;
pub use forward::ForwardSpec;
use spans::Spans;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use users::users;
use vigil_alarm::{Layer, Profile, Source};
use vigil_drivers::DeviceSpec;

pub mod limits;

/// What a person may do; written in lower case (`role = "nurse"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read only.
    Viewer,
    /// May acknowledge, pause audio, reset, mark the dose and start an NIBP.
    Nurse,
    /// As a nurse.
    Provider,
    /// As a provider.
    Admin,
}

impl Role {
    /// The role's name in config and on the display.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Nurse => "nurse",
            Role::Provider => "provider",
            Role::Admin => "admin",
        }
    }

    /// May this role act on alarms and the session?
    pub fn may_act(self) -> bool {
        self != Role::Viewer
    }
}

/// A person who may use the display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Name recorded with every action.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Bearer token.
    pub token: String,
}

/// Log output; written in lower case (`log_format = "json"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people.
    Human,
    /// One JSON object per line, for collectors.
    Json,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Room name shown on the display.
    pub room: String,
    /// Session record database.
    pub storage_path: PathBuf,
    /// Days after its end a session is kept; none keeps everything.
    pub retention_days: Option<u32>,
    /// The alarm profile in force.
    pub profile: Profile,
    /// People.
    pub users: Vec<User>,
    /// Devices.
    pub devices: Vec<DeviceSpec>,
    /// Log output.
    pub log_format: LogFormat,
    /// TLS for the display, when configured.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Connection limits, the metrics token, allowed origins.
    pub network: limits::Network,
    /// `[[forward]]`: interface engines readings and alarm steps are forwarded to (HL7).
    pub forwards: Vec<ForwardSpec>,
    /// `[central]`: where the room publishes to the central station; none runs alone.
    pub central: Option<Central>,
}

/// One problem with its location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigError {
    /// `file: key` or `file: device #2 "oximeter-1".port`.
    pub location: String,
    /// What is wrong.
    pub message: String,
    /// The byte range in the file's text of the key (and value) it is about, when the problem
    /// is about a key the file has (not one it lacks) and the configuration came from text.
    pub span: Option<std::ops::Range<usize>>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Every problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the configuration:", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads and validates a configuration file. Relative paths inside it (profile, storage)
    /// are relative to the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                location: path.display().to_string(),
                message: format!("cannot read: {e}"),
                span: None,
            }])
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &path.display().to_string(), base)
    }

    /// Validates configuration text; `file` names it in messages; `base` resolves relative paths.
    /// Configurations made in code use [`ConfigFile::build`], which checks the same way.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Config, ConfigErrors> {
        match text.parse::<toml::Table>() {
            Ok(doc) => validate(&doc, file, base, &Spans::of(text)),
            Err(e) => Err(ConfigErrors(vec![ConfigError {
                location: file.to_string(),
                message: format!("not valid TOML: {}", e.to_string().trim()),
                span: e.span(),
            }])),
        }
    }

    /// The user a token belongs to.
    pub fn user_by_token(&self, token: &str) -> Option<&User> {
        find_user(&self.users, token)
    }
}

/// The one validation pass, over the document a file parses to or a [`ConfigFile`] serialises
/// to: every problem, in the order of the file's sections, each with its location.
fn validate(
    doc: &toml::Table,
    file: &str,
    base: &Path,
    spans: &Spans,
) -> Result<Config, ConfigErrors> {
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
            "room",
            "log_format",
            "profile",
            "clinic_overrides",
            "patient_overrides",
            "storage",
            "tls",
            "allow_plaintext",
            "user",
            "device",
            // Read by limits::network.
            "limits",
            "metrics_token",
            "allowed_origins",
            "forward",
            "central",
        ],
        "",
    );
    let listen = listen(doc, &mut c);
    let room = c.string(doc, "room", "").unwrap_or_default();
    if room.trim().is_empty() {
        c.error("room", "is required: the name shown on the display");
    }
    let log_format = c
        .choice(doc, "log_format", "", Some("human, json"))
        .unwrap_or(LogFormat::Human);

    let mut retention_days = None;
    let storage_path = match doc.get("storage") {
        Some(toml::Value::Table(t)) => {
            c.unknown_keys(t, &["path", "retention_days"], "storage.");
            retention_days = c
                .integer(t, "retention_days", "storage.", 1..=36_500)
                .and_then(|d| u32::try_from(d).ok());
            match c.string(t, "path", "storage.") {
                Some(p) => Some(base.join(p)),
                None => {
                    c.error(
                        "storage.path",
                        "is required: where the session record is kept",
                    );
                    None
                }
            }
        }
        Some(_) => {
            c.error("storage", "must be a table with `path`");
            None
        }
        None => {
            c.error("storage", "is required: a [storage] table with `path`");
            None
        }
    };

    let tls = display_tls(doc, base, &mut c);
    let profile = load_profile(doc, base, &mut c);
    let users = users(doc, &mut c);
    let devices = devices(doc, base, &mut c);
    if let Some(storage) = &storage_path {
        refusals::storage_folder(storage, &mut c);
    }
    refusals::plaintext_listen(doc, listen, &mut c);
    let network = limits::network(doc, &mut c);
    let forwards = forwards(doc, base, &mut c);
    let central = central::central(doc, &room, base, &mut c);

    match (listen, storage_path, profile) {
        (Some(listen), Some(storage_path), Some(profile)) if errors.is_empty() => Ok(Config {
            listen,
            room,
            storage_path,
            retention_days,
            profile,
            users,
            devices,
            log_format,
            tls,
            network,
            forwards,
            central,
        }),
        _ => Err(ConfigErrors(errors)),
    }
}

/// `listen`: the display server's address (127.0.0.1:8080 when absent).
fn listen(doc: &toml::Table, c: &mut Check<'_>) -> Option<SocketAddr> {
    match c.string(doc, "listen", "") {
        None => Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
        Some(s) => match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                c.error(
                    "listen",
                    format!("{s:?} is not an address like 127.0.0.1:8080"),
                );
                None
            }
        },
    }
}

/// `[tls]`: the certificate and key the display server (a room's or the central's) serves.
fn display_tls(
    doc: &toml::Table,
    base: &Path,
    c: &mut Check<'_>,
) -> Option<std::sync::Arc<rustls::ServerConfig>> {
    match doc.get("tls") {
        None => None,
        Some(toml::Value::Table(t)) => {
            c.unknown_keys(t, &["cert", "key"], "tls.");
            let cert = c.string(t, "cert", "tls.");
            let key = c.string(t, "key", "tls.");
            match (cert, key) {
                (Some(cert), Some(key)) => {
                    match crate::tls::load(&base.join(cert), &base.join(key)) {
                        Ok(config) => Some(config),
                        Err(e) => {
                            c.error("tls", e);
                            None
                        }
                    }
                }
                _ => {
                    c.error("tls", "needs both cert and key (PEM files)");
                    None
                }
            }
        }
        Some(_) => {
            c.error("tls", "must be a table with cert and key");
            None
        }
    }
}

/// A TOML basic string holding `s`, for writing configuration files (paths may hold
/// backslashes or quotes).
pub fn toml_string(s: &str) -> String {
    // A JSON string is a valid TOML basic string: the same quotes and escapes.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn load_profile(doc: &toml::Table, base: &Path, c: &mut Check<'_>) -> Option<Profile> {
    let read = |c: &mut Check<'_>, key: &str| -> Option<(String, String)> {
        let p = c.string(doc, key, "")?;
        let path = base.join(&p);
        match std::fs::read_to_string(&path) {
            Ok(text) => Some((path.display().to_string(), text)),
            Err(e) => {
                c.error(key, format!("cannot read {}: {e}", path.display()));
                None
            }
        }
    };
    let main = read(c, "profile");
    let clinic = read(c, "clinic_overrides");
    let patient = read(c, "patient_overrides");
    let base_layer = match &main {
        Some((name, text)) => Layer {
            source: Source::Clinic(name.clone()),
            text,
        },
        None => Layer {
            source: Source::Default,
            text: vigil_alarm::profile::KAP_DEFAULT,
        },
    };
    let mut overrides = Vec::new();
    if let Some((name, text)) = &clinic {
        overrides.push(Layer {
            source: Source::Clinic(name.clone()),
            text,
        });
    }
    if let Some((name, text)) = &patient {
        overrides.push(Layer {
            source: Source::Patient(name.clone()),
            text,
        });
    }
    match Profile::load(base_layer, &overrides) {
        Ok(p) => Some(p),
        Err(errors) => {
            for e in errors.0 {
                // The location is in the profile's files, not this one: no span here.
                c.errors.push(ConfigError {
                    location: format!("{}: alarm profile: {}", c.file, e.location),
                    message: e.message,
                    span: None,
                });
            }
            None
        }
    }
}

/// For tests: a nurse and an oximeter on a serial port, the users and devices a configuration
/// needs besides its `room` and `[storage]`.
#[cfg(test)]
const TEST_USERS_AND_DEVICE: &str = r#"
    [[user]]
    name = "Nurse Okafor"
    role = "nurse"
    token = "nurse-token-0123456789"
    [[device]]
    id = "oximeter-1"
    format = "masimo"
    port = "/dev/ttyUSB0"
"#;

#[cfg(test)]
mod tests;
