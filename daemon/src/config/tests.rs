use super::*;

/// A complete configuration: the test users and device, and a BLE cuff.
fn good() -> String {
    format!(
        r#"
            listen = "127.0.0.1:0"
            room = "Room 2"
            [storage]
            path = "vigil.db"
            {TEST_USERS_AND_DEVICE}
            [[device]]
            id = "cuff-1"
            format = "ble-blood-pressure"
            ble = {{ name = "Cuff" }}
            "#
    )
}

#[test]
fn a_good_config_loads_with_defaults() {
    // The storage folder must exist: the system's temporary folder does.
    let etc = std::env::temp_dir();
    let c = Config::parse(&good(), "vigil.toml", &etc).unwrap();
    assert_eq!(c.room, "Room 2");
    assert_eq!(c.storage_path, etc.join("vigil.db"));
    assert_eq!(c.profile.name, "kap-default");
    assert_eq!(c.devices.len(), 2);
    assert_eq!(
        c.user_by_token("nurse-token-0123456789").unwrap().role,
        Role::Nurse
    );
    assert!(c.user_by_token("nurse-token-012345678").is_none());
}

#[test]
fn an_intellivue_on_the_lan_is_reached_by_udp_on_its_data_export_port() {
    let etc = std::env::temp_dir();
    let lan = format!(
        "{}[[device]]\nid = \"monitor-1\"\nformat = \"intellivue\"\nudp = \"10.0.0.7\"\n",
        good()
    );
    let c = Config::parse(&lan, "vigil.toml", &etc).unwrap();
    let monitor = c.devices.iter().find(|d| d.id == "monitor-1").unwrap();
    assert_eq!(
        monitor.transport,
        vigil_drivers::Transport::Udp(vigil_drivers::udp::UdpSpec {
            host: "10.0.0.7".into(),
            port: 24105
        })
    );
    // Only a format with a LAN variant takes `udp`, and never beside a port.
    let bad = format!(
            "{}[[device]]\nid = \"ox-2\"\nformat = \"masimo\"\nudp = \"10.0.0.8\"\n\
             [[device]]\nid = \"m-2\"\nformat = \"intellivue\"\nudp = \"h\"\nport = \"/dev/ttyS4\"\n",
            good()
        );
    let text = Config::parse(&bad, "vigil.toml", &etc)
        .unwrap_err()
        .to_string();
    for needle in [
            "device #3 \"ox-2\".udp: does not apply to masimo: it has no LAN variant",
            "device #4 \"m-2\".port: give exactly one of port = \"/dev/…\", usb = \"VID:PID\" or udp = \"HOST\"",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
}

#[test]
fn every_problem_is_listed_with_its_location() {
    let bad = r#"
            listen = "localhost"
            colour = "blue"
            [[user]]
            name = "A"
            role = "janitor"
            token = "short"
            [[device]]
            id = "ox 1"
            format = "masimo"
            [[device]]
            id = "hr"
            format = "ble-heart-rate"
            port = "/dev/ttyS0"
            [[device]]
            id = "x"
            format = "philips"
            port = "/dev/ttyS1"
        "#;
    let text = Config::parse(bad, "vigil.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    for needle in [
        "vigil.toml: listen: \"localhost\" is not an address",
        "vigil.toml: colour: unknown key",
        "vigil.toml: room: is required",
        "vigil.toml: storage: is required",
        "user #1 \"A\".role: \"janitor\" is not one of",
        "user #1 \"A\".token: is 5 characters; at least 20 are required",
        "device #1 \"ox 1\".id: is required: letters, digits",
        "device #1 \"ox 1\".port: give exactly one of",
        "device #2 \"hr\".port: does not apply to the BLE format ble-heart-rate",
        "device #2 \"hr\".ble: a BLE device needs a ble table",
        "device #3 \"x\".format: unknown format \"philips\"",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn central_is_optional_and_defaults_its_site_and_room_id() {
    let etc = std::env::temp_dir();
    assert_eq!(
        Config::parse(&good(), "vigil.toml", &etc).unwrap().central,
        None
    );
    let text = format!(
        "{}\n[central]\nnats = \"nats://central:4222\"\naction_key = \"site-action-key-0123456789\"\n",
        good()
    );
    let central = Config::parse(&text, "vigil.toml", &etc)
        .unwrap()
        .central
        .unwrap();
    assert_eq!(central.site, "clinic");
    assert_eq!(central.room_id, "room-2");
    assert_eq!(central.connection.nats.urls(), vec!["nats://central:4222"]);
}

#[test]
fn central_problems_are_listed_with_their_keys() {
    let text = format!(
        "{}\n[central]\nnats = 4\nsite = \"North Site\"\nroom_id = \"a.b\"\n\
             token = \"t\"\nuser = \"u\"\ncreds = \"missing.creds\"\ncolour = 1\n\
             tls = {{ cert = \"c.pem\" }}\n",
        good()
    );
    let dir = std::env::temp_dir();
    let err = Config::parse(&text, "vigil.toml", &dir)
        .unwrap_err()
        .to_string();
    for needle in [
        "central.colour: unknown key",
        "central.nats: must be a URL or a list of URLs, not integer",
        "central.site: \"North Site\" is not a slug",
        "central.room_id: \"a.b\" is not a slug",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let text = format!(
        "{}\n[central]\nnats = [\"nats://a:4222\", \"b:4222\"]\ntoken = \"t\"\n\
             user = \"u\"\ncreds = \"missing.creds\"\ntls = {{ cert = \"c.pem\" }}\n",
        good()
    );
    let err = Config::parse(&text, "vigil.toml", &dir)
        .unwrap_err()
        .to_string();
    for needle in [
        "central.token: give one of token, user with password, or creds",
        "central.user: user and password go together",
        "central.action_key: is required",
        "central.tls: tls.cert and tls.key go together",
        "central.creds: cannot read",
        "central.tls.cert: cannot read",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn profile_problems_are_reported_through_the_config() {
    let dir = std::env::temp_dir().join(format!("vigil-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("patient.toml"), "[rules.spo2-low]\nbelow = 20\n").unwrap();
    let text = format!("patient_overrides = \"patient.toml\"\n{}", good());
    let errors = Config::parse(&text, "vigil.toml", &dir)
        .unwrap_err()
        .to_string();
    assert!(errors.contains("alarm profile"), "{errors}");
    assert!(
        errors.contains("20 is outside the allowed range 70 to 100"),
        "{errors}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
