//! The configuration file's shape as typed serde structs: what `vigil.toml` holds, key for key.
//! It is also the builder for configurations made in code (the demo, the benchmark): fill a
//! [`ConfigFile`] with struct literals and `..Default::default()`, then [`ConfigFile::build`]. It
//! goes through the same validation pass as a file (serialised to the same TOML document model,
//! never to text), so a configuration made in code is refused for exactly what a file would be.

use super::{Config, ConfigError, ConfigErrors, LogFormat, Role};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use vigil_protocol::serial::Parity;
use vigil_protocol::Format;

/// A whole configuration file. Keys left at their default are left out of the document, as if
/// not written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `listen`: where the display is served (default 127.0.0.1:8080).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// `room`: the name shown on the display (required).
    #[serde(default)]
    pub room: String,
    /// `log_format` (default human).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// `profile`: the clinic's alarm profile file (default the built-in KAP profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<PathBuf>,
    /// `clinic_overrides`: an override file on top of the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinic_overrides: Option<PathBuf>,
    /// `patient_overrides`: an override file on top of the clinic's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_overrides: Option<PathBuf>,
    /// `[storage]` (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageFile>,
    /// `[tls]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFile>,
    /// `allow_plaintext`: allow a non-loopback `listen` without `[tls]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_plaintext: Option<bool>,
    /// `[[user]]` tables.
    #[serde(default, rename = "user", skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserEntry>,
    /// `[[device]]` tables (at least one is required).
    #[serde(default, rename = "device", skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceEntry>,
    /// `[limits]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsFile>,
    /// `metrics_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_token: Option<String>,
    /// `allowed_origins`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// `[central]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub central: Option<super::CentralFile>,
    /// `[[forward]]` tables: interface engines to forward to over HL7.
    #[serde(default, rename = "forward", skip_serializing_if = "Vec::is_empty")]
    pub forwards: Vec<ForwardEntry>,
}

/// One `[[forward]]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardEntry {
    /// `name` (default `hl7-N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `hl7`: `HOST:PORT` of the interface engine (MLLP).
    pub hl7: String,
    /// `tls`: `{ ca = PATH }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ForwardTlsEntry>,
}

/// A `[[forward]]`'s `tls` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardTlsEntry {
    /// `ca`: PEM file of the CA certificate(s) the interface engine's certificate is checked
    /// against, relative to the configuration's folder.
    pub ca: PathBuf,
}

/// `[storage]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageFile {
    /// `path`: the session record database, relative to the configuration's folder.
    pub path: PathBuf,
    /// `retention_days` (1..=36500; default: keep everything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
}

/// `[tls]`: PEM files, relative to the configuration's folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// `cert`.
    pub cert: PathBuf,
    /// `key`.
    pub key: PathBuf,
}

/// One `[[user]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// `name`, recorded with every action.
    pub name: String,
    /// `role`.
    pub role: Role,
    /// `token` (make one with `vigil token`).
    pub token: String,
}

/// One `[[device]]`: `port` or `usb` (and line settings) for a serial format, `udp` for a
/// monitor on the LAN, `ble` for a BLE format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    /// `id`: letters, digits, '-' and '_'.
    pub id: String,
    /// `format`.
    pub format: Format,
    /// `port`: a device path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PathBuf>,
    /// `usb`: `VID:PID` or `VID:PID:SERIAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usb: Option<String>,
    /// `udp`: the host of a monitor on the LAN (IntelliVue data export, port 24105).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<String>,
    /// `ble`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ble: Option<BleEntry>,
    /// `baud` (default: the format's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baud: Option<u32>,
    /// `data_bits` (default: the format's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_bits: Option<u8>,
    /// `parity` (default: the format's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parity: Option<Parity>,
    /// `stop_bits` (default: the format's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_bits: Option<u8>,
    /// `listen` (format hl7): `ADDR:PORT` the monitor or gateway dials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `connect` (format hl7): `HOST:PORT` of a monitor that serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<String>,
    /// `match` (format hl7): which messages on a shared listener are this device's.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matcher: Option<MatchEntry>,
    /// `codes` (format hl7): a vendor code table file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codes: Option<PathBuf>,
    /// `tls` (format hl7): TLS on the monitor's connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<DeviceTlsEntry>,
}

/// An HL7 device's `tls` table: `cert` and `key` (and `client_ca`) on a `listen` device, `ca`
/// on a `connect` device; PEM files relative to the configuration's folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceTlsEntry {
    /// `cert`: the certificate chain Vigil presents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// `key`: its private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// `client_ca`: require a client certificate issued by these CAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// `ca`: the CAs the monitor's certificate is checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
}

/// An HL7 device's `match` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchEntry {
    /// `equipment`: an OBX-18 equipment identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equipment: Option<String>,
    /// `sending_facility`: the MSH-4 sending facility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending_facility: Option<String>,
}

impl DeviceEntry {
    /// A device on a serial port by path, with its format's line settings.
    pub fn serial(id: &str, format: Format, port: impl Into<PathBuf>) -> Self {
        DeviceEntry {
            port: Some(port.into()),
            ..DeviceEntry::bare(id, format)
        }
    }

    /// A BLE device found by its advertised name.
    pub fn ble_named(id: &str, format: Format, name: &str) -> Self {
        DeviceEntry {
            ble: Some(BleEntry {
                name: Some(name.into()),
                ..BleEntry::default()
            }),
            ..DeviceEntry::bare(id, format)
        }
    }

    /// An HL7 monitor that dials Vigil on `listen`.
    pub fn hl7_listen(id: &str, listen: &str) -> Self {
        DeviceEntry {
            listen: Some(listen.into()),
            ..DeviceEntry::bare(id, Format::Hl7)
        }
    }

    fn bare(id: &str, format: Format) -> Self {
        DeviceEntry {
            id: id.into(),
            format,
            port: None,
            usb: None,
            udp: None,
            ble: None,
            baud: None,
            data_bits: None,
            parity: None,
            stop_bits: None,
            listen: None,
            connect: None,
            matcher: None,
            codes: None,
            tls: None,
        }
    }
}

/// A device's `ble` table: exactly one of the three.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BleEntry {
    /// `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `name`: a substring of the advertised name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `any = true`: any health device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<bool>,
}

/// `[limits]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// `max_connections` (default 256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// `max_unauthenticated` (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unauthenticated: Option<u32>,
}

impl ConfigFile {
    /// Validates this configuration as [`Config::parse`] validates a file: `name` names it in
    /// messages; `base` resolves relative paths.
    pub fn build(&self, name: &str, base: &Path) -> Result<Config, ConfigErrors> {
        let doc = toml::Table::try_from(self).map_err(|e| {
            // Only a path that is not UTF-8 cannot be written as TOML.
            ConfigErrors(vec![ConfigError {
                location: name.to_string(),
                message: format!("cannot be written as TOML: {e}"),
                span: None,
            }])
        })?;
        super::validate(&doc, name, base, &super::Spans::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The builder's document is the one a person would write: reading it back as a file gives
    /// the same configuration.
    #[test]
    fn a_built_configuration_matches_the_same_file() {
        let file = ConfigFile {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            room: "Room 2".into(),
            log_format: Some(LogFormat::Json),
            storage: Some(StorageFile {
                path: "vigil.db".into(),
                retention_days: Some(30),
            }),
            users: vec![UserEntry {
                name: "Nurse Okafor".into(),
                role: Role::Nurse,
                token: "nurse-token-0123456789".into(),
            }],
            devices: vec![
                DeviceEntry {
                    parity: Some(Parity::Even),
                    baud: Some(4800),
                    ..DeviceEntry::serial("cuff-1", Format::Suntech, "/dev/ttyUSB0")
                },
                DeviceEntry::ble_named("strap-1", Format::BleHeartRate, "Strap"),
            ],
            limits: Some(LimitsFile {
                max_connections: Some(40),
                max_unauthenticated: Some(8),
            }),
            ..ConfigFile::default()
        };
        let text = r#"
            listen = "127.0.0.1:0"
            room = "Room 2"
            log_format = "json"
            [storage]
            path = "vigil.db"
            retention_days = 30
            [limits]
            max_connections = 40
            max_unauthenticated = 8
            [[user]]
            name = "Nurse Okafor"
            role = "nurse"
            token = "nurse-token-0123456789"
            [[device]]
            id = "cuff-1"
            format = "suntech"
            port = "/dev/ttyUSB0"
            baud = 4800
            parity = "even"
            [[device]]
            id = "strap-1"
            format = "ble-heart-rate"
            ble = { name = "Strap" }
        "#;
        let etc = std::env::temp_dir();
        let built = file.build("demo", &etc).unwrap();
        let parsed = Config::parse(text, "demo", &etc).unwrap();
        assert_eq!(built.listen, parsed.listen);
        assert_eq!(built.log_format, LogFormat::Json);
        assert_eq!(built.log_format, parsed.log_format);
        assert_eq!(built.storage_path, parsed.storage_path);
        assert_eq!(built.retention_days, Some(30));
        assert_eq!(built.users, parsed.users);
        assert_eq!(built.devices, parsed.devices);
        assert_eq!(built.network, parsed.network);
        assert_eq!(built.network.limits.max_unauthenticated, 8);
        // And the typed file reads back from the text.
        assert_eq!(toml::from_str::<ConfigFile>(text).unwrap(), file);
    }

    #[test]
    fn a_built_configuration_is_refused_as_a_file_would_be() {
        let file = ConfigFile {
            room: " ".into(),
            users: vec![UserEntry {
                name: "A".into(),
                role: Role::Viewer,
                token: "short".into(),
            }],
            ..ConfigFile::default()
        };
        let err = file
            .build("demo", &std::env::temp_dir())
            .unwrap_err()
            .to_string();
        for needle in [
            "demo: room: is required: the name shown on the display",
            "demo: storage: is required: a [storage] table with `path`",
            "demo: user #1 \"A\".token: is 5 characters; at least 20 are required",
            "demo: device: is required: at least one [[device]]",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }

    /// The typed file and the validation pass know the same keys: every key the builder can
    /// write is accepted, and a file using every key the pass accepts reads as a `ConfigFile`.
    #[test]
    fn the_typed_file_and_the_validation_know_the_same_keys() {
        let every = ConfigFile {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            room: "r".into(),
            log_format: Some(LogFormat::Human),
            profile: Some("p.toml".into()),
            clinic_overrides: Some("c.toml".into()),
            patient_overrides: Some("o.toml".into()),
            storage: Some(StorageFile {
                path: "x.db".into(),
                retention_days: Some(1),
            }),
            tls: Some(TlsFile {
                cert: "c.pem".into(),
                key: "k.pem".into(),
            }),
            allow_plaintext: Some(false),
            users: vec![UserEntry {
                name: "A".into(),
                role: Role::Admin,
                token: "admin-token-0123456789".into(),
            }],
            devices: vec![
                DeviceEntry {
                    usb: Some("0403:6001".into()),
                    ble: Some(BleEntry {
                        address: Some("C0:FF:EE:00:00:01".into()),
                        name: Some("n".into()),
                        any: Some(true),
                    }),
                    baud: Some(9600),
                    data_bits: Some(8),
                    parity: Some(Parity::Odd),
                    stop_bits: Some(1),
                    listen: Some("127.0.0.1:2575".into()),
                    connect: Some("m:2575".into()),
                    matcher: Some(MatchEntry {
                        equipment: Some("BED1".into()),
                        sending_facility: Some("WARD".into()),
                    }),
                    codes: Some("t.toml".into()),
                    tls: Some(DeviceTlsEntry {
                        cert: Some("c.pem".into()),
                        key: Some("k.pem".into()),
                        client_ca: Some("a.pem".into()),
                        ca: Some("a.pem".into()),
                    }),
                    ..DeviceEntry::serial("s", Format::Masimo, "/dev/x")
                },
                DeviceEntry {
                    ble: Some(BleEntry {
                        address: Some("C0:FF:EE:00:00:01".into()),
                        name: Some("n".into()),
                        any: Some(true),
                    }),
                    ..DeviceEntry::bare("b", Format::BleHeartRate)
                },
            ],
            limits: Some(LimitsFile {
                max_connections: Some(2),
                max_unauthenticated: Some(1),
            }),
            metrics_token: Some("scrape-token-0123456789".into()),
            allowed_origins: vec!["https://a.example".into()],
            forwards: vec![ForwardEntry {
                name: Some("ris".into()),
                hl7: "h:1".into(),
                tls: Some(ForwardTlsEntry {
                    ca: "ca.pem".into(),
                }),
            }],
            central: Some(super::super::CentralFile {
                connection: crate::nats::NatsSettings {
                    token: Some("t".into()),
                    user: Some("u".into()),
                    password: Some("p".into()),
                    creds: Some("c.creds".into()),
                    tls: Some(crate::nats::NatsTls {
                        ca: Some("a.pem".into()),
                        cert: Some("c.pem".into()),
                        key: Some("k.pem".into()),
                    }),
                    action_key: Some("a".into()),
                    ..crate::nats::NatsSettings::url("nats://c:4222")
                },
                site: Some("s".into()),
                room_id: Some("r".into()),
            }),
        };
        let err = every.build("every", Path::new(".")).unwrap_err().0;
        let unknown: Vec<_> = err
            .iter()
            .filter(|e| e.message.starts_with("unknown key"))
            .collect();
        assert!(unknown.is_empty(), "{unknown:#?}");
        // And the other way: the keys each `unknown key` message lists as expected.
        let text = "listen = \"127.0.0.1:0\"\nroom = \"r\"\nlog_format = \"json\"\n\
            profile = \"p\"\nclinic_overrides = \"c\"\npatient_overrides = \"o\"\n\
            allow_plaintext = true\nmetrics_token = \"t\"\nallowed_origins = []\n\
            [storage]\npath = \"x\"\nretention_days = 1\n[tls]\ncert = \"c\"\nkey = \"k\"\n\
            [limits]\nmax_connections = 1\nmax_unauthenticated = 1\n\
            [[forward]]\nname = \"ris\"\nhl7 = \"h:1\"\ntls = { ca = \"ca.pem\" }\n\
            [central]\nnats = \"n\"\ntoken = \"t\"\nuser = \"u\"\npassword = \"p\"\n\
            creds = \"c\"\nsite = \"s\"\nroom_id = \"r\"\naction_key = \"a\"\n\
            tls = { ca = \"a\", cert = \"c\", key = \"k\" }\n\
            [[user]]\nname = \"A\"\nrole = \"nurse\"\ntoken = \"t\"\n\
            [[device]]\nid = \"d\"\nformat = \"masimo\"\nport = \"p\"\nusb = \"u\"\nudp = \"h\"\nbaud = 1\n\
            data_bits = 8\nparity = \"none\"\nstop_bits = 1\n\
            ble = { address = \"a\", name = \"n\", any = true }\n\
            listen = \"l\"\nconnect = \"c\"\ncodes = \"t\"\n\
            tls = { cert = \"c\", key = \"k\", client_ca = \"a\", ca = \"a\" }\n\
            match = { equipment = \"e\", sending_facility = \"f\" }\n\
            [[device]]\nid = \"b\"\nformat = \"ble-heart-rate\"\n\
            ble = { address = \"a\", name = \"n\", any = true }\n";
        // An unknown key in every table: each refusal lists the keys that table accepts.
        let mut with_unknown_keys = format!("colour = 1\n{text}colour = 1\n");
        for table in [
            "[storage]\n",
            "[tls]\n",
            "[limits]\n",
            "[central]\n",
            "tls = { ",
            "[[user]]\n",
            "ble = { ",
            "[[forward]]\n",
        ] {
            let marked = if table.ends_with('\n') {
                format!("{table}colour = 1\n")
            } else {
                format!("{table}colour = 1, ")
            };
            with_unknown_keys = with_unknown_keys.replace(table, &marked);
        }
        let refusals = Config::parse(&with_unknown_keys, "f", Path::new("."))
            .unwrap_err()
            .0;
        let lists: Vec<_> = refusals
            .iter()
            .filter_map(|e| e.message.strip_prefix("unknown key; expected one of "))
            .collect();
        assert_eq!(lists.len(), 11, "{refusals:#?}");
        for key in lists.iter().flat_map(|l| l.split(", ")) {
            assert!(
                text.contains(&format!("\n{key} = "))
                    || text.contains(&format!("{{ {key} = "))
                    || text.contains(&format!(", {key} = "))
                    || text.starts_with(&format!("{key} = "))
                    || text.contains(&format!("[{key}]")),
                "{key} missing from the test"
            );
        }
        if let Err(e) = toml::from_str::<ConfigFile>(text) {
            panic!("{e}");
        }
    }
}
