//! Running the real `vigil` binary, shared by the command-line tests.

#![allow(clippy::unwrap_used, dead_code)] // test code; each test file uses part of it

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A configuration with its record in `dir`: `top` (the top-level keys, such as `room`), one
/// nurse, and one oximeter on a port that does not exist (its driver keeps looking; the core
/// runs).
pub fn missing_oximeter_config(dir: &Path, top: &str) -> String {
    format!(
        r#"listen = "127.0.0.1:0"
{top}
[storage]
path = {db}
[[user]]
name = "Nurse Okafor"
role = "nurse"
token = "nurse-token-0123456789"
[[device]]
id = "oximeter-1"
format = "masimo"
port = {port}
"#,
        db = vigil_daemon::config::toml_string(&dir.join("vigil.db").display().to_string()),
        port = vigil_daemon::config::toml_string(&dir.join("no-such-port").display().to_string()),
    )
}

/// A running `vigil run`.
pub struct Running {
    /// The process (killed when dropped).
    pub child: Child,
    /// The display's address, `host:port`.
    pub addr: String,
    /// Everything it logs, once it exits.
    pub log: tokio::task::JoinHandle<String>,
}

/// Starts `vigil run --config CONFIG` and waits (at most 10 s) for the line announcing the
/// display's address.
pub async fn start_run(config: &Path) -> Running {
    start_run_with(config, &[]).await
}

/// As [`start_run`], with more environment variables.
pub async fn start_run_with(config: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
    command
        .args(["run", "--config"])
        .arg(config)
        .envs(env.iter().copied());
    start_command(command).await
}

/// Spawns `command` (a `vigil run`, perhaps behind a shell) with `VIGIL_LOG=info` and waits (at
/// most 10 s) for the line announcing the display's address.
pub async fn start_command(mut command: Command) -> Running {
    let mut child = command
        .env("VIGIL_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("vigil run announces its address within 10 s")
        .unwrap()
        .expect("vigil run is running");
    let addr = line
        .strip_prefix("vigil: display at http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .trim_end_matches('/')
        .to_string();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = tokio::spawn(async move {
        let mut all = String::new();
        while let Ok(Some(l)) = err.next_line().await {
            all.push_str(&l);
            all.push('\n');
        }
        all
    });
    Running { child, addr, log }
}

/// Sends SIGTERM to `child` and asserts it exits cleanly within 5 s.
pub async fn stop_cleanly(child: &mut Child) {
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits within 5 s")
        .unwrap();
    assert!(status.success(), "{status:?}");
}
