//! The HL7 keys of a `[[device]]`: `listen` or `connect`, `match = { equipment,
//! sending_facility }`, and `codes` (a vendor code table file).

use super::check::Check;
use std::net::SocketAddr;
use std::path::Path;
use vigil_drivers::hl7::{Endpoint, Hl7Spec};
use vigil_drivers::Transport;
use vigil_protocol::hl7::{CodeTable, CodeTableFile, Match};

/// Keys only an HL7 device has.
pub(super) const KEYS: [&str; 4] = ["listen", "connect", "match", "codes"];

/// Reads a vendor code table file: the built-in MDC codes plus its rows.
pub fn load_code_table(path: &Path) -> Result<CodeTable, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: CodeTableFile =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    CodeTable::with_vendor(&file.code).map_err(|e| format!("{}: {e}", path.display()))
}

/// The transport of an HL7 device, or None after reporting what is wrong.
pub(super) fn transport(
    t: &toml::Table,
    at: &str,
    base: &Path,
    c: &mut Check<'_>,
) -> Option<Transport> {
    for key in [
        "port",
        "usb",
        "ble",
        "baud",
        "data_bits",
        "parity",
        "stop_bits",
    ] {
        if t.contains_key(key) {
            c.error(
                format!("{at}{key}"),
                "does not apply to format hl7 (use listen or connect)",
            );
        }
    }
    let endpoint = match (c.string(t, "listen", at), c.string(t, "connect", at)) {
        (Some(l), None) => match l.parse::<SocketAddr>() {
            Ok(addr) => Some(Endpoint::Listen(addr)),
            Err(_) => {
                c.error(
                    format!("{at}listen"),
                    "must be ADDRESS:PORT, e.g. \"0.0.0.0:2575\"",
                );
                None
            }
        },
        (None, Some(peer)) => {
            let ok = peer.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if ok {
                Some(Endpoint::Connect(peer))
            } else {
                c.error(
                    format!("{at}connect"),
                    "must be HOST:PORT, e.g. \"monitor-3.local:2575\"",
                );
                None
            }
        }
        _ => {
            c.error(
                format!("{at}listen"),
                "an hl7 device needs exactly one of listen = \"ADDR:PORT\" or connect = \"HOST:PORT\"",
            );
            None
        }
    };
    let matcher = match t.get("match") {
        None => Some(Match::default()),
        Some(toml::Value::Table(m)) => {
            let mat = format!("{at}match.");
            c.unknown_keys(m, &["equipment", "sending_facility"], &mat);
            let equipment = c.string(m, "equipment", &mat);
            let sending_facility = c.string(m, "sending_facility", &mat);
            let matcher = Match {
                equipment,
                sending_facility,
            };
            if matcher.is_empty()
                || [&matcher.equipment, &matcher.sending_facility]
                    .iter()
                    .any(|v| v.as_deref() == Some(""))
            {
                c.error(format!("{at}match"), "give equipment = \"…\" (OBX-18) and/or sending_facility = \"…\" (MSH-4), not empty");
                None
            } else {
                Some(matcher)
            }
        }
        Some(other) => {
            c.error(
                format!("{at}match"),
                format!("must be a table, not {}", other.type_str()),
            );
            None
        }
    };
    let table = match c.string(t, "codes", at) {
        None => Some(CodeTable::default()),
        Some(path) => match load_code_table(&base.join(&path)) {
            Ok(table) => Some(table),
            Err(e) => {
                c.error(format!("{at}codes"), e);
                None
            }
        },
    };
    Some(Transport::Hl7(Hl7Spec {
        endpoint: endpoint?,
        matcher: matcher?,
        table: table?,
    }))
}

/// Devices sharing a `listen` address must each pick their messages with a distinct `match`;
/// at most one may take the rest.
pub(super) fn shared_listen(
    seen: &mut Vec<(SocketAddr, Match, String)>,
    transport: &Transport,
    at: &str,
    name: &str,
    c: &mut Check<'_>,
) {
    let Transport::Hl7(Hl7Spec {
        endpoint: Endpoint::Listen(addr),
        matcher,
        ..
    }) = transport
    else {
        return;
    };
    if let Some((_, _, first)) = seen.iter().find(|(a, m, _)| a == addr && m == matcher) {
        let what = if matcher.is_empty() {
            "takes every message"
        } else {
            "has the same match"
        };
        c.error(
            format!("{at}match"),
            format!("{first} listens on {addr} too and {what}: give each device on a shared listen address its own match"),
        );
    }
    seen.push((*addr, matcher.clone(), name.to_string()));
}
