//! The HL7 keys of a `[[device]]`: `listen` or `connect`, `match = { equipment,
//! sending_facility }`, `codes` (a vendor code table file) and `tls` ([`tls`]).

mod tls;

use super::check::Check;
use std::net::SocketAddr;
use std::path::Path;
use vigil_drivers::hl7::{Endpoint, Hl7Spec, Hl7Tls};
use vigil_drivers::Transport;
use vigil_protocol::hl7::{CodeTable, CodeTableFile, Match};

/// Keys only an HL7 device has.
pub(super) const KEYS: [&str; 5] = ["listen", "connect", "match", "codes", "tls"];

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
        "udp",
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
    let tls = tls::tls(t, at, endpoint.as_ref(), base, c);
    Some(Transport::Hl7(Hl7Spec {
        endpoint: endpoint?,
        matcher: matcher?,
        table: table?,
        tls: tls.ok()?,
    }))
}

/// Devices sharing a `listen` address must each pick their messages with a distinct `match`
/// (at most one may take the rest), and read them with the same code table and TLS settings:
/// one connection's messages are read before they are routed.
pub(super) fn shared_listen(
    seen: &mut Vec<(SocketAddr, Match, CodeTable, Option<Hl7Tls>, String)>,
    transport: &Transport,
    at: &str,
    name: &str,
    c: &mut Check<'_>,
) {
    let Transport::Hl7(Hl7Spec {
        endpoint: Endpoint::Listen(addr),
        matcher,
        table,
        tls,
    }) = transport
    else {
        return;
    };
    if let Some((.., first)) = seen.iter().find(|(a, m, ..)| a == addr && m == matcher) {
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
    if let Some((.., first)) = seen.iter().find(|(a, _, t, ..)| a == addr && t != table) {
        c.error(
            format!("{at}codes"),
            format!("{first} listens on {addr} too with other codes: devices on one listen address read with the same code table"),
        );
    }
    if let Some((.., first)) = seen.iter().find(|(a, _, _, s, _)| a == addr && s != tls) {
        c.error(
            format!("{at}tls"),
            format!("{first} listens on {addr} too with other tls: devices on one listen address share one listener, so give them the same tls"),
        );
    }
    seen.push((
        *addr,
        matcher.clone(),
        table.clone(),
        tls.clone(),
        name.to_string(),
    ));
}

#[cfg(test)]
mod tests {
    use super::super::{Config, TEST_USERS_AND_DEVICE};
    use vigil_drivers::hl7::Endpoint;
    use vigil_drivers::Transport;
    use vigil_protocol::Vital;

    fn parse(devices: &str, dir: &std::path::Path) -> Result<Config, Vec<String>> {
        let text = format!(
            "room = \"Room 2\"\n[storage]\npath = \"vigil.db\"\n{TEST_USERS_AND_DEVICE}\n{devices}"
        );
        Config::parse(&text, "vigil.toml", dir)
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    fn has(lines: &[String], location: &str, message: &str) {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("vigil.toml: {location}: ")) && l.contains(message)),
            "no {location:?} with {message:?} in {lines:#?}"
        );
    }

    #[test]
    fn a_gateway_and_a_dialled_monitor_with_a_vendor_table_are_accepted() {
        let dir = std::env::temp_dir().join(format!("vigil-hl7-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("acme.toml"),
            "[[code]]\ncode = \"101\"\ncoding_system = \"ACME\"\nvital = \"etco2\"\nunit = \"kPa\"\nscale = 0.1\n",
        )
        .unwrap();
        let config = parse(
            r#"
            [[device]]
            id = "bed-1"
            format = "hl7"
            listen = "127.0.0.1:2575"
            match = { equipment = "BED1" }
            [[device]]
            id = "bed-2"
            format = "hl7"
            listen = "127.0.0.1:2575"
            match = { sending_facility = "WARD7" }
            [[device]]
            id = "mon-3"
            format = "hl7"
            connect = "monitor-3.local:2575"
            codes = "acme.toml"
            "#,
            &dir,
        )
        .unwrap();
        let Transport::Hl7(dialled) = &config.devices[3].transport else {
            panic!()
        };
        assert_eq!(
            dialled.endpoint,
            Endpoint::Connect("monitor-3.local:2575".into())
        );
        assert_eq!(
            dialled.table.lookup("101", "ACME").unwrap().vital,
            Vital::Etco2
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hl7_mistakes_are_refused_with_file_and_key() {
        let dir = std::env::temp_dir();
        let lines = parse(
            r#"
            [[device]]
            id = "a"
            format = "hl7"
            [[device]]
            id = "b"
            format = "hl7"
            listen = "2575"
            match = { equipment = "", colour = 1 }
            [[device]]
            id = "c"
            format = "hl7"
            listen = "127.0.0.1:2576"
            port = "/dev/ttyUSB1"
            [[device]]
            id = "d"
            format = "hl7"
            listen = "127.0.0.1:2576"
            [[device]]
            id = "e"
            format = "masimo"
            port = "/dev/ttyUSB2"
            listen = "127.0.0.1:2577"
            [[device]]
            id = "f"
            format = "hl7"
            connect = "monitor"
            codes = "no-such-table.toml"
            "#,
            &dir,
        )
        .unwrap_err();
        has(&lines, "device #2 \"a\".listen", "exactly one of listen");
        has(&lines, "device #3 \"b\".listen", "must be ADDRESS:PORT");
        has(&lines, "device #3 \"b\".match.colour", "unknown key");
        has(&lines, "device #3 \"b\".match", "not empty");
        has(
            &lines,
            "device #4 \"c\".port",
            "does not apply to format hl7",
        );
        has(&lines, "device #7 \"f\".codes", "cannot read");
        has(
            &lines,
            "device #5 \"d\".match",
            "listens on 127.0.0.1:2576 too",
        );
        has(
            &lines,
            "device #6 \"e\".listen",
            "applies only to format hl7",
        );
        has(&lines, "device #7 \"f\".connect", "must be HOST:PORT");
    }

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/tls");

    #[test]
    fn tls_on_a_listener_and_on_a_dialled_monitor_is_loaded() {
        let f = FIXTURES;
        let config = parse(
            &format!(
                r#"
            [[device]]
            id = "gw"
            format = "hl7"
            listen = "127.0.0.1:2590"
            tls = {{ cert = "{f}/cert.pem", key = "{f}/key.pem" }}
            [[device]]
            id = "gw-mutual"
            format = "hl7"
            listen = "127.0.0.1:2591"
            tls = {{ cert = "{f}/cert.pem", key = "{f}/key.pem", client_ca = "{f}/other-cert.pem" }}
            [[device]]
            id = "mon"
            format = "hl7"
            connect = "localhost:2575"
            tls = {{ ca = "{f}/cert.pem" }}
            "#
            ),
            std::path::Path::new("."),
        )
        .unwrap();
        let tls = |n: usize| match &config.devices[n].transport {
            Transport::Hl7(spec) => spec.tls.clone().unwrap(),
            _ => panic!(),
        };
        assert!(tls(1).is_server() && tls(2).is_server());
        assert!(!tls(3).is_server());
        assert_ne!(tls(1), tls(2), "client_ca makes other settings");
        // Debug names the files and never shows a key.
        assert!(format!("{:?}", tls(1)).contains("key.pem"));
    }

    #[test]
    fn tls_mistakes_are_refused_with_file_and_key() {
        let f = FIXTURES;
        let lines = parse(
            &format!(
                r#"
            [[device]]
            id = "a"
            format = "hl7"
            tls = {{ ca = "{f}/cert.pem" }}
            [[device]]
            id = "b"
            format = "hl7"
            listen = "127.0.0.1:2592"
            tls = {{ ca = "{f}/cert.pem" }}
            [[device]]
            id = "c"
            format = "hl7"
            listen = "127.0.0.1:2593"
            tls = {{ cert = "{f}/cert.pem" }}
            [[device]]
            id = "d"
            format = "hl7"
            listen = "127.0.0.1:2594"
            tls = {{ cert = "{f}/key.pem", key = "{f}/key.pem" }}
            [[device]]
            id = "e"
            format = "hl7"
            listen = "127.0.0.1:2595"
            tls = {{ cert = "{f}/cert.pem", key = "{f}/missing.pem", colour = 1 }}
            [[device]]
            id = "g"
            format = "hl7"
            connect = "m:2575"
            tls = {{ cert = "{f}/cert.pem", key = "{f}/key.pem" }}
            [[device]]
            id = "h"
            format = "hl7"
            connect = "m:2575"
            tls = {{}}
            [[device]]
            id = "i"
            format = "hl7"
            connect = "m:2575"
            tls = {{ ca = "{f}/key.pem" }}
            [[device]]
            id = "j"
            format = "hl7"
            connect = "m:2575"
            tls = "yes"
            [[device]]
            id = "k"
            format = "hl7"
            listen = "127.0.0.1:2596"
            tls = {{ cert = "{f}/cert.pem", key = "{f}/key.pem", client_ca = "{f}/none.pem" }}
            [[device]]
            id = "l"
            format = "hl7"
            listen = "127.0.0.1:2597"
            match = {{ equipment = "B1" }}
            tls = {{ cert = "{f}/cert.pem", key = "{f}/key.pem" }}
            [[device]]
            id = "m"
            format = "hl7"
            listen = "127.0.0.1:2597"
            match = {{ equipment = "B2" }}
            [[device]]
            id = "n"
            format = "hl7"
            listen = "127.0.0.1:2598"
            tls = {{ cert = "{f}/cert.pem", key = "{f}/other-key.pem" }}
            "#
            ),
            std::path::Path::new("."),
        )
        .unwrap_err();
        has(&lines, "device #2 \"a\".tls", "needs listen or connect");
        has(&lines, "device #3 \"b\".tls.ca", "is for a connect device");
        has(&lines, "device #4 \"c\".tls", "needs both cert and key");
        has(&lines, "device #5 \"d\".tls", "no certificate in the file");
        has(&lines, "device #6 \"e\".tls", "cannot read a private key");
        has(&lines, "device #6 \"e\".tls.colour", "unknown key");
        has(&lines, "device #7 \"g\".tls.cert", "is for a listen device");
        has(
            &lines,
            "device #8 \"h\".tls.ca",
            "is required on a connect device",
        );
        has(&lines, "device #9 \"i\".tls.ca", "holds no certificate");
        has(&lines, "device #10 \"j\".tls", "must be a table");
        has(&lines, "device #11 \"k\".tls.client_ca", "cannot read");
        has(&lines, "device #13 \"m\".tls", "too with other tls");
        has(&lines, "device #14 \"n\".tls", "do not make a usable pair");
    }

    #[test]
    fn devices_on_one_listen_address_share_their_code_table() {
        let dir = std::env::temp_dir().join(format!("vigil-hl7-shared-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("acme.toml"),
            "[[code]]\ncode = \"1\"\ncoding_system = \"ACME\"\nvital = \"spo2\"\nunit = \"%\"\n",
        )
        .unwrap();
        let lines = parse(
            "[[device]]\nid = \"b1\"\nformat = \"hl7\"\nlisten = \"127.0.0.1:2580\"\n\
             match = { equipment = \"B1\" }\ncodes = \"acme.toml\"\n\
             [[device]]\nid = \"b2\"\nformat = \"hl7\"\nlisten = \"127.0.0.1:2580\"\n\
             match = { equipment = \"B2\" }\n",
            &dir,
        )
        .unwrap_err();
        has(&lines, "device #3 \"b2\".codes", "same code table");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_bad_vendor_row_is_refused_with_its_row() {
        let dir = std::env::temp_dir().join(format!("vigil-hl7-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("bad.toml"),
            "[[code]]\ncode = \"7\"\ncoding_system = \"X\"\nvital = \"spo2\"\nunit = \"%\"\n\
             [[code]]\ncode = \"8\"\ncoding_system = \"X\"\nvital = \"oxygen\"\nunit = \"%\"\n",
        )
        .unwrap();
        let lines = parse(
            "[[device]]\nid = \"m\"\nformat = \"hl7\"\nconnect = \"m:1\"\ncodes = \"bad.toml\"\n",
            &dir,
        )
        .unwrap_err();
        has(
            &lines,
            "device #2 \"m\".codes",
            "row 2 (code \"8\"): unknown vital \"oxygen\"",
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
