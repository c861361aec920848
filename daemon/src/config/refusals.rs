//! Refusals of what would hurt later: a configuration that would load today but then lose the
//! record at the first write, or put the alarm controls on the network in plain text.

use super::check::Check;
use std::net::SocketAddr;
use std::path::Path;

/// The session record's folder must exist: the daemon creates the file, not the folders, and a
/// missing folder would surface only when the first session starts.
pub(super) fn storage_folder(storage: &Path, c: &mut Check<'_>) {
    let folder = match storage.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        c.error(
            "storage.path",
            format!(
                "the folder {} does not exist: create it, or point path at a folder that does",
                folder.display()
            ),
        );
    }
}

/// A display on the network without TLS sends tokens and patient data in plain text. Allowed
/// only when the configuration says so (`allow_plaintext = true`, for a TLS proxy in front).
pub(super) fn plaintext_listen(doc: &toml::Table, listen: Option<SocketAddr>, c: &mut Check<'_>) {
    let allow = match doc.get("allow_plaintext") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(other) => {
            c.error(
                "allow_plaintext",
                format!("must be true or false, not {}", other.type_str()),
            );
            return;
        }
    };
    let Some(listen) = listen else { return };
    if !listen.ip().is_loopback() && !doc.contains_key("tls") && !allow {
        c.error(
            "listen",
            format!(
                "{listen} is reachable from the network but there is no [tls]: tokens and \
                 vitals would cross it in plain text. Add [tls], listen on 127.0.0.1 behind a \
                 TLS proxy, or set allow_plaintext = true if the network is private to the room"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, TEST_USERS_AND_DEVICE};
    use std::path::Path;

    fn problems(text: &str) -> Vec<String> {
        match Config::parse(text, "vigil.toml", &std::env::temp_dir()) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    fn assert_has(lines: &[String], location: &str, message: &str) {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("vigil.toml: {location}: ")) && l.contains(message)),
            "no {location:?} with {message:?} in {lines:#?}"
        );
    }

    #[test]
    fn everything_that_would_hurt_later_is_refused_at_once() {
        let lines = problems(
            r#"
            listen = "0.0.0.0:8080"
            room = "Room 2"
            [storage]
            path = "no-such-folder-for-vigil/vigil.db"
            [[user]]
            name = "Nurse Okafor"
            role = "nurse"
            token = " padded-token-0123456789"
            [[user]]
            name = "Dr Rivera"
            role = "provider"
            token = "zzzzzzzzzzzzzzzzzzzzzzzz"
            [[user]]
            name = "Lobby"
            role = "viewer"
            token = "short-token-1234567"
            [[user]]
            name = "Dr Chen"
            role = "provider"
            token = "shared-token-0123456789"
            [[user]]
            name = "nurse okafor"
            role = "viewer"
            token = "shared-token-0123456789"
            [[device]]
            id = "oximeter-1"
            format = "masimo"
            port = "/dev/ttyUSB0"
            [[device]]
            id = "cuff-1"
            format = "suntech"
            port = "/dev/ttyUSB0"
            [[device]]
            id = "cuff-2"
            format = "suntech"
            usb = "0403:6001"
            [[device]]
            id = "oximeter-2"
            format = "nonin-8"
            usb = "0403:6001"
            [[device]]
            id = "strap-1"
            format = "ble-heart-rate"
            ble = { address = "C0:FF:EE:00:00:01" }
            [[device]]
            id = "strap-2"
            format = "ble-heart-rate"
            ble = { address = "c0:ff:ee:00:00:01" }
            "#,
        );
        for (location, message) in [
            (
                "listen",
                "0.0.0.0:8080 is reachable from the network but there is no [tls]",
            ),
            ("storage.path", "does not exist"),
            (
                "user #1 \"Nurse Okafor\".token",
                "starts or ends with blanks",
            ),
            ("user #2 \"Dr Rivera\".token", "repeats one character"),
            (
                "user #3 \"Lobby\".token",
                "is 19 characters; at least 20 are required",
            ),
            ("user #5 \"nurse okafor\".token", "is the same as user #4's"),
            ("user #5 \"nurse okafor\".name", "is the same as user #1's"),
            (
                "device #2 \"cuff-1\".port",
                "is the same port as device #1 \"oximeter-1\"'s",
            ),
            (
                "device #4 \"oximeter-2\".usb",
                "is the same port as device #3 \"cuff-2\"'s",
            ),
            (
                "device #6 \"strap-2\".ble",
                "is the same port as device #5 \"strap-1\"'s",
            ),
        ] {
            assert_has(&lines, location, message);
        }
        assert_eq!(lines.len(), 10, "{lines:#?}");
        // A refusal never prints a token: it goes to terminals and logs.
        assert!(
            lines.iter().all(|l| !l.contains("shared-token")),
            "{lines:#?}"
        );
    }

    #[test]
    fn a_config_with_no_device_is_refused() {
        let text = "room = \"Room 2\"\n[storage]\npath = \"vigil.db\"\n";
        let lines = problems(text);
        assert_has(&lines, "device", "is required: at least one [[device]]");
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(problems(&format!("{text}{TEST_USERS_AND_DEVICE}")).is_empty());
    }

    #[test]
    fn plain_text_on_the_network_only_when_the_config_says_so() {
        let with = |head: &str| {
            problems(&format!(
                "{head}\nroom = \"Room 2\"\n[storage]\npath = \"vigil.db\"\n{TEST_USERS_AND_DEVICE}"
            ))
        };
        assert!(with("listen = \"127.0.0.1:8080\"").is_empty());
        assert!(with("listen = \"[::1]:8080\"").is_empty());
        assert!(with("listen = \"192.168.1.20:8080\"\nallow_plaintext = true").is_empty());
        assert_has(
            &with("listen = \"192.168.1.20:8080\"\nallow_plaintext = false"),
            "listen",
            "is reachable from the network but there is no [tls]",
        );
        assert_has(
            &with("listen = \"192.168.1.20:8080\"\nallow_plaintext = \"yes\""),
            "allow_plaintext",
            "must be true or false",
        );
    }

    #[test]
    fn the_storage_folder_may_be_the_config_files_own() {
        let text =
            format!("room = \"Room 2\"\n[storage]\npath = \"vigil.db\"\n{TEST_USERS_AND_DEVICE}");
        // `vigil check-config vigil.toml` run in the config's folder: the base is "".
        assert!(Config::parse(&text, "vigil.toml", Path::new("")).is_ok());
    }
}
