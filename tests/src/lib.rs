//! Helpers for Vigil's end-to-end tests: a daemon in-process on port 0 with simulated devices,
//! and a display client that speaks the display protocol.

#![allow(clippy::unwrap_used)] // test support: a panic is the failure report

pub mod attack;
pub mod browser;
pub mod fake_room;
pub mod hl7_engine;
pub mod nats;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use vigil_daemon::config::Config;
use vigil_daemon::daemon::{Daemon, Options};
use vigil_drivers::ble::memory::{MemoryCentral, PeripheralSpec, SimPeripheral};
use vigil_drivers::ble::CharacteristicInfo;
use vigil_protocol::ble::uuid;

/// `GET path` on the daemon (at most 10 s): the status code and the body as JSON (null when
/// it is not JSON).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut text))
        .await
        .unwrap()
        .unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A display over TLS signed in with `token`: it trusts only the test certificate
/// `FIXTURES/cert.pem` (issued to `localhost`). The socket and the text of its first message.
pub async fn tls_display(
    fixtures: &str,
    addr: std::net::SocketAddr,
    token: &str,
) -> (
    WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>,
    String,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tls_client(fixtures)
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(
        format!("wss://localhost:{}/ws?token={token}", addr.port()),
        tls,
    )
    .await
    .unwrap();
    let first = ws.next().await.unwrap().unwrap();
    let first = first.to_text().unwrap().to_string();
    (ws, first)
}

fn tls_client(fixtures: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(
            rustls::pki_types::CertificateDer::from_pem_file(format!("{fixtures}/cert.pem"))
                .unwrap(),
        )
        .unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(client))
}

/// Tokens of the test users.
pub const NURSE: &str = "nurse-token-0123456789";
/// A provider.
pub const PROVIDER: &str = "provider-token-0123456789";
/// A viewer.
pub const VIEWER: &str = "viewer-token-0123456789";

/// The users every test daemon knows.
pub const USERS: &str = r#"
[[user]]
name = "Nurse Okafor"
role = "nurse"
token = "nurse-token-0123456789"
[[user]]
name = "Dr Rivera"
role = "provider"
token = "provider-token-0123456789"
[[user]]
name = "Lobby screen"
role = "viewer"
token = "viewer-token-0123456789"
"#;

/// A daemon with a BLE oximeter (`oximeter-1`) and a BLE cuff (`cuff-1`) in memory.
pub struct Room {
    /// The daemon.
    pub daemon: Daemon,
    /// The simulated oximeter.
    pub oximeter: SimPeripheral,
    /// The simulated cuff.
    pub cuff: SimPeripheral,
    /// The session record's path.
    pub db: String,
}

fn ch(uuid: u16, notify: bool, indicate: bool) -> CharacteristicInfo {
    CharacteristicInfo {
        uuid,
        notify,
        indicate,
        read: false,
    }
}

impl Room {
    /// Starts the room with a patient override file for the alarm profile.
    pub async fn with_overrides(overrides: &str) -> Room {
        let dir = std::env::temp_dir().join(format!(
            "vigil-room-{}-{}",
            std::process::id(),
            fastrand_u64()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("patient.toml"), overrides).unwrap();
        Room::build(
            &format!(
                "patient_overrides = \"{}\"\n",
                dir.join("patient.toml").display()
            ),
            "",
            Options::default(),
        )
        .await
    }

    /// Starts the room with `extra` appended to the config (more devices, say).
    pub async fn start(extra: &str, options: Options) -> Room {
        Room::build("", extra, options).await
    }

    /// Starts the room on a session record `prepare` has written first (a session left open
    /// by a crash, say).
    pub async fn with_record(prepare: impl FnOnce(&Path), options: Options) -> Room {
        let db = temp_db("room");
        prepare(Path::new(&db));
        Room::build_at(db, "", "", options).await
    }

    /// Starts the room with `head` before the config's own keys (top-level keys) and `extra`
    /// after them (tables).
    pub async fn build(head: &str, extra: &str, options: Options) -> Room {
        Room::build_at(temp_db("room"), head, extra, options).await
    }

    /// Starts the room on an existing session record (a restart after a crash).
    pub async fn resume(db: &str) -> Room {
        Room::build_at(db.to_string(), "", "", Options::default()).await
    }

    async fn build_at(db: String, head: &str, extra: &str, options: Options) -> Room {
        let central = MemoryCentral::new();
        let oximeter = central.add(PeripheralSpec {
            address: "C0:FF:EE:00:00:01".into(),
            name: "Sim Oximeter".into(),
            services: vec![uuid::PULSE_OXIMETER_SERVICE],
            characteristics: vec![ch(uuid::PLX_CONTINUOUS, true, false)],
            readable: HashMap::new(),
        });
        let cuff = central.add(PeripheralSpec {
            address: "C0:FF:EE:00:00:02".into(),
            name: "Sim Cuff".into(),
            services: vec![uuid::BLOOD_PRESSURE_SERVICE],
            characteristics: vec![ch(uuid::BLOOD_PRESSURE_MEASUREMENT, false, true)],
            readable: HashMap::new(),
        });
        let text = format!(
            r#"{head}
listen = "127.0.0.1:0"
room = "Test room"
[storage]
path = "{db}"
{USERS}
[[device]]
id = "oximeter-1"
format = "ble-plx-continuous"
ble = {{ name = "Sim Oximeter" }}
[[device]]
id = "cuff-1"
format = "ble-blood-pressure"
ble = {{ name = "Sim Cuff" }}
{extra}
"#
        );
        let config = Config::parse(&text, "test.toml", Path::new(".")).unwrap();
        let daemon = Daemon::start_with(config, Arc::new(central), options)
            .await
            .unwrap();
        Room {
            daemon,
            oximeter,
            cuff,
            db,
        }
    }

    /// Waits until both BLE devices have subscribed.
    pub async fn devices_ready(&self) {
        for _ in 0..500 {
            if !self.oximeter.subscriptions().is_empty() && !self.cuff.subscriptions().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("simulated devices never subscribed");
    }

    /// Sends one PLX continuous value: SpO2 and pulse rate.
    pub fn spo2(&self, spo2: u16, pulse: u16) {
        let mut v = vec![0x00];
        v.extend_from_slice(&spo2.to_le_bytes());
        v.extend_from_slice(&pulse.to_le_bytes());
        assert!(
            self.oximeter.notify(uuid::PLX_CONTINUOUS, &v),
            "oximeter not subscribed"
        );
    }

    /// Sends one blood-pressure measurement (mmHg, whole numbers).
    pub fn bp(&self, systolic: u16, diastolic: u16) {
        let mean = (systolic + 2 * diastolic) / 3;
        let mut v = vec![0x00];
        for x in [systolic, diastolic, mean] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        assert!(
            self.cuff.notify(uuid::BLOOD_PRESSURE_MEASUREMENT, &v),
            "cuff not subscribed"
        );
    }

    /// The WebSocket URL with a token in the query.
    pub fn ws_url(&self, token: &str) -> String {
        format!("ws://{}/ws?token={token}", self.daemon.addr)
    }
}

fn fastrand_u64() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A fresh database path in a new temporary folder.
pub fn temp_db(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "vigil-{name}-{}-{}",
        std::process::id(),
        fastrand_u64()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("vigil.db").display().to_string()
}

/// A display connected to the daemon.
pub struct Display {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Display {
    /// Connects with a token and returns the display and its first message (the snapshot).
    pub async fn connect(room: &Room, token: &str) -> (Display, Value) {
        let (ws, _) = tokio_tungstenite::connect_async(room.ws_url(token))
            .await
            .unwrap();
        let mut d = Display { ws };
        let first = d.next().await;
        assert_eq!(first["type"], "snapshot", "{first}");
        assert_eq!(first["v"], 1);
        (d, first)
    }

    /// Connects to a WebSocket URL (with its token) and returns the display and its snapshot.
    pub async fn connect_url(url: &str) -> (Display, Value) {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut d = Display { ws };
        let first = d.next().await;
        assert_eq!(first["type"], "snapshot", "{first}");
        (d, first)
    }

    /// Connects to a WebSocket URL and returns the display and its first message, whatever it
    /// is (a central's display starts with `rooms`).
    pub async fn open(url: &str) -> (Display, Value) {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut d = Display { ws };
        let first = d.next().await;
        (d, first)
    }

    /// Connects over a socket with a small receive buffer, like a slow tablet on poor Wi-Fi:
    /// when it stops reading, the daemon's writes to it block quickly.
    pub async fn connect_slow(room: &Room, token: &str) -> (Display, Value) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(room.daemon.addr).await.unwrap();
        let (ws, _) =
            tokio_tungstenite::client_async(room.ws_url(token), MaybeTlsStream::Plain(stream))
                .await
                .unwrap();
        let mut d = Display { ws };
        let first = d.next().await;
        assert_eq!(first["type"], "snapshot", "{first}");
        (d, first)
    }

    /// The next text message, as JSON (fails after 10 s).
    pub async fn next(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a message within 10 s")
                .expect("connection open")
                .expect("no error");
            match m {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// The next message for which `want` holds, skipping others (fails after 15 s).
    pub async fn until(&mut self, mut want: impl FnMut(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let mut skipped = Vec::new();
        loop {
            let m = tokio::time::timeout_at(deadline, self.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no matching message within 15 s; last skipped: {:?}",
                        skipped.iter().rev().take(5).collect::<Vec<_>>()
                    )
                });
            if want(&m) {
                return m;
            }
            if m["type"] != "heartbeat" {
                skipped.push(m);
            }
        }
    }

    /// Sends a JSON message.
    pub async fn send(&mut self, message: Value) {
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// The raw stream, for tests about frames and closing.
    pub fn raw(&mut self) -> &mut WebSocketStream<MaybeTlsStream<TcpStream>> {
        &mut self.ws
    }
}
