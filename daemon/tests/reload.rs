//! Reloading the configuration (SIGHUP, `systemctl reload vigil`): users and tokens change live,
//! a display whose token was withdrawn is closed, a configuration that does not pass
//! check-config changes nothing, and what applies only at a restart is reported as such.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::{self, Message};
use vigil_daemon::config::{new_token, Config};
use vigil_daemon::daemon::Daemon;
use vigil_daemon::reload::{Outcome, Reloader};
use vigil_drivers::ble::memory::MemoryCentral;

mod common;
mod reload_live;

fn write_config(dir: &Path, nurse: &str, viewer: &str, port: &str) -> PathBuf {
    let path = dir.join("vigil.toml");
    std::fs::write(
        &path,
        format!(
            r#"listen = "127.0.0.1:0"
room = "Reload room"
[storage]
path = "record.db"
[[user]]
name = "Nurse Okafor"
role = "nurse"
token = "{nurse}"
[[user]]
name = "Lobby screen"
role = "viewer"
token = "{viewer}"
[[device]]
id = "oximeter-1"
format = "masimo"
port = "{port}"
"#
        ),
    )
    .unwrap();
    path
}

/// `N` fresh tokens, as `vigil new-token` makes them.
fn tokens<const N: usize>() -> [String; N] {
    std::array::from_fn(|_| new_token().unwrap())
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-reload-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects as a display; `Err(status)` when the daemon refuses the token.
async fn connect(addr: &str, token: &str) -> Result<Ws, u16> {
    match tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={token}")).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("cannot reach the daemon: {e}"),
    }
}

/// The close frame a display gets, skipping the snapshot and updates before it.
async fn close_code(ws: &mut Ws) -> Option<u16> {
    let wait = async {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .expect("the display is closed within 5 s")
}

async fn start(dir: &Path, path: &Path) -> (Daemon, Reloader) {
    let _ = dir;
    let config = Config::load(path).unwrap();
    let daemon = Daemon::start(config.clone(), Arc::new(MemoryCentral::new()))
        .await
        .unwrap();
    let reloader = Reloader::new(path.to_path_buf(), config, daemon.live());
    (daemon, reloader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_tokens_and_closes_the_display_whose_token_was_withdrawn() {
    let dir = tempdir("swap");
    let [old, new, viewer] = tokens();
    let port = dir.join("no-such-port").display().to_string();
    let path = write_config(&dir, &old, &viewer, &port);
    let (daemon, mut reloader) = start(&dir, &path).await;
    let addr = daemon.addr.to_string();
    let mut nurse = connect(&addr, &old).await.unwrap();
    let mut lobby = connect(&addr, &viewer).await.unwrap();

    write_config(&dir, &new, &viewer, &port);
    assert_eq!(
        reloader.reload().await,
        Outcome::Applied {
            users: 2,
            live: vec![],
            need_restart: vec![]
        }
    );
    assert_eq!(close_code(&mut nurse).await, Some(1008), "withdrawn token");
    assert_eq!(connect(&addr, &old).await.err(), Some(401));
    connect(&addr, &new).await.unwrap();
    // The viewer's token did not change: its display stays open.
    let still_open = tokio::time::timeout(Duration::from_millis(500), close_code(&mut lobby)).await;
    assert!(still_open.is_err(), "the unchanged viewer was closed");
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_that_fails_check_config_changes_nothing() {
    let dir = tempdir("bad");
    let [nurse, viewer] = tokens();
    let port = dir.join("no-such-port").display().to_string();
    let path = write_config(&dir, &nurse, &viewer, &port);
    let (daemon, mut reloader) = start(&dir, &path).await;
    let addr = daemon.addr.to_string();

    // Someone puts the shipped placeholder back.
    write_config(&dir, "<nurse token>", &viewer, &port);
    match reloader.reload().await {
        Outcome::Refused(why) => assert!(why.contains("token"), "{why}"),
        other => panic!("applied a configuration check-config refuses: {other:?}"),
    }
    connect(&addr, &nurse).await.unwrap();
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_change_waits_for_a_restart_while_users_and_devices_apply_at_once() {
    let dir = tempdir("devices");
    let [nurse, viewer, new] = tokens();
    let path = write_config(&dir, &nurse, &viewer, "/dev/vigil-port-a");
    let (daemon, mut reloader) = start(&dir, &path).await;
    let addr = daemon.addr.to_string();

    write_config(&dir, &new, &viewer, "/dev/vigil-port-b");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("127.0.0.1:0", "127.0.0.1:1")).unwrap();
    assert_eq!(
        reloader.reload().await,
        Outcome::Applied {
            users: 2,
            live: vec!["devices"],
            need_restart: vec!["listen"]
        }
    );
    connect(&addr, &new).await.unwrap();
    daemon.shutdown().await;
}

/// The real binary: SIGHUP reloads (and does not end the daemon, SIGHUP's default action).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_running_daemon() {
    let dir = tempdir("sighup");
    let [old, new, viewer] = tokens();
    let port = dir.join("no-such-port").display().to_string();
    let path = write_config(&dir, &old, &viewer, &port);
    let mut run = common::start_run(&path).await;
    connect(&run.addr, &old).await.unwrap();

    write_config(&dir, &new, &viewer, &port);
    let pid = run.child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut accepted = false;
    for _ in 0..50 {
        if connect(&run.addr, &new).await.is_ok() {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted, "the new token is not accepted after SIGHUP");
    assert_eq!(connect(&run.addr, &old).await.err(), Some(401));
    assert!(
        run.child.try_wait().unwrap().is_none(),
        "SIGHUP ended the daemon"
    );
    let _ = std::process::Command::new("kill").arg(&pid).status();
    let _ = run.child.wait().await;
    let log = run.log.await.unwrap();
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(
        !log.contains(&new) && !log.contains(&old),
        "a token in the log"
    );
}
