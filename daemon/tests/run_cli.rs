//! `vigil check-config` on the shipped example (its placeholder tokens refused, then filled in
//! with `vigil token` as the README shows), `vigil check-config --profile`, and `vigil run`
//! stopped by SIGTERM, as a service manager would.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use tokio::process::Command;

mod common;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../vigil.example.toml");

/// `vigil token`'s output.
async fn vigil_token() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("token")
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    assert!(token.ends_with('\n'), "{token:?}");
    token.trim_end().to_string()
}

/// The shipped example with its placeholder tokens filled in, as the README shows.
async fn filled_example() -> String {
    let mut text = std::fs::read_to_string(EXAMPLE).unwrap();
    for who in ["nurse", "provider", "viewer"] {
        let placeholder = format!("<{who} token>");
        assert!(text.contains(&placeholder), "{placeholder} in the example");
        text = text.replace(&placeholder, &vigil_token().await);
    }
    text
}

#[tokio::test]
async fn the_shipped_example_refuses_its_placeholders_and_checks_out_once_filled_in() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["check-config", EXAMPLE])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 problem(s)"), "{err}");
    for user in [
        "#1 \"Nurse Okafor\"",
        "#2 \"Dr Rivera\"",
        "#3 \"Lobby screen\"",
    ] {
        assert!(
            err.contains(&format!("user {user}.token: is ")) && err.contains("`vigil token`"),
            "{err}"
        );
    }

    let filled = std::env::temp_dir().join(format!("vigil-example-{}.toml", std::process::id()));
    std::fs::write(&filled, filled_example().await).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("check-config")
        .arg(&filled)
        .output()
        .await
        .unwrap();
    std::fs::remove_file(&filled).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("OK: room \"Treatment room 2\", 3 device(s), 3 user(s)"),
        "{text}"
    );
}

#[tokio::test]
async fn vigil_token_prints_a_fresh_token_each_time() {
    let (a, b) = (vigil_token().await, vigil_token().await);
    assert_eq!(a.len(), 32, "{a}");
    assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
    assert_ne!(a, b);
}

#[tokio::test]
async fn check_config_prints_the_effective_profile_with_each_values_source() {
    let dir = std::env::temp_dir().join(format!("vigil-profile-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("clinic.toml"),
        "[rules.spo2-low]\ndelay = \"10s\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("p-17.toml"), "[rules.spo2-low]\nbelow = 88\n").unwrap();
    let config = filled_example()
        .await
        .replace(
            "# clinic_overrides = \"clinic-overrides.toml\"",
            "clinic_overrides = \"clinic.toml\"",
        )
        .replace(
            "# patient_overrides = \"patient-overrides.toml\"",
            "patient_overrides = \"p-17.toml\"",
        );
    std::fs::write(dir.join("vigil.toml"), config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["check-config", "--profile"])
        .arg(dir.join("vigil.toml"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let spo2_low = &text[text.find("[rule spo2-low]").expect("the rule") + 1..];
    let spo2_low = &spo2_low[..spo2_low.find('[').unwrap_or(spo2_low.len())];
    let line = |key: &str| {
        spo2_low
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{key} =")))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
    };
    let file = |name: &str| dir.join(name).display().to_string();
    assert_eq!(
        line("below"),
        format!("below = 88 patient {}", file("p-17.toml"))
    );
    assert_eq!(
        line("delay"),
        format!("delay = \"10s\" clinic {}", file("clinic.toml"))
    );
    assert_eq!(line("priority"), "priority = \"medium\" default");

    // An override outside the envelope stops `vigil run` too, naming the file and key.
    std::fs::write(dir.join("p-17.toml"), "[rules.spo2-low]\nbelow = 75\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["run", "--config"])
        .arg(dir.join("vigil.toml"))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "alarm profile: patient {}: rules.spo2-low.below: 75 is under the bound 80",
            file("p-17.toml")
        )),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_broken_config_lists_every_problem_and_fails() {
    let dir = std::env::temp_dir().join(format!("vigil-run-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    let example = filled_example().await;
    std::fs::write(
        &bad,
        example
            .replace("role = \"nurse\"", "role = \"janitor\"")
            .replace("format = \"suntech\"", "format = \"philips\""),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["check-config"])
        .arg(&bad)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 problem(s)"), "{err}");
    assert!(err.contains("user #1 \"Nurse Okafor\".role"), "{err}");
    assert!(err.contains("device #2 \"cuff-1\".format"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn vigil_run_stops_cleanly_on_sigterm() {
    // The example's users (tokens filled in) and profile, on a free port, with one oximeter on
    // a pseudo-terminal (a config without a device is refused).
    let dir = std::env::temp_dir().join(format!("vigil-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let example = filled_example().await;
    let users_and_more = &example[..example.find("[[device]]").unwrap()];
    let (_master, slave) = tokio_serial::SerialStream::pair().unwrap();
    let port = tokio_serial::SerialPort::name(&slave).unwrap();
    drop(slave);
    let config = format!(
        "{}[[device]]\nid = \"oximeter-1\"\nformat = \"masimo\"\nport = \"{port}\"\n",
        users_and_more.replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
    );
    std::fs::write(dir.join("vigil.toml"), config).unwrap();
    let common::Running {
        mut child, addr, ..
    } = common::start_run(&dir.join("vigil.toml")).await;
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    common::stop_cleanly(&mut child).await;
    std::fs::remove_dir_all(&dir).unwrap();
}
