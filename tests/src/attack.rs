//! Helpers for the network abuse tests: many sockets from a chosen loopback address, raw HTTP,
//! a display that times its heartbeats, the daemon's counters, and this process's memory.
//! Everything stays on the loopback range and every loop is bounded.

use crate::{Display, Room};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// The address attackers connect from (Linux routes all of 127.0.0.0/8 to loopback), so that
/// displays on 127.0.0.1 are another client.
pub const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A TCP connection to `to` from `from` (fails after 5 s).
pub async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    tokio::time::timeout(Duration::from_secs(5), socket.connect(to))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

/// Whether the daemon has closed this connection (EOF or reset), without waiting.
pub fn closed_by_peer(s: &TcpStream) -> bool {
    let mut b = [0u8; 256];
    match s.try_read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Status line, headers and body of one HTTP/1.1 request from `from` (fails after 15 s).
pub async fn http(from: Ipv4Addr, to: SocketAddr, request_head: &str) -> String {
    let mut s = connect_from(from, to).await.expect("connect");
    s.write_all(format!("{request_head}Host: {to}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut out))
        .await
        .expect("an answer within 15 s")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

/// A WebSocket upgrade request head for `/ws` with `query` and extra header lines.
pub fn upgrade_head(query: &str, extra: &str) -> String {
    format!(
        "GET /ws{query} HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}"
    )
}

/// The status code of an HTTP answer.
pub fn status(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `/metrics` from 127.0.0.1, with a bearer token when given.
pub async fn metrics(room: &Room, token: Option<&str>) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    http(
        Ipv4Addr::LOCALHOST,
        room.daemon.addr,
        &format!("GET /metrics HTTP/1.1\r\n{auth}"),
    )
    .await
}

/// A sample's value in Prometheus text (`name` with its labels, as printed).
pub fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
}

/// The gate's figures: (authenticated held, unauthenticated held, evicted, past the deadline,
/// refused).
pub async fn gate(room: &Room) -> [f64; 5] {
    let m = metrics(room, None).await;
    [
        "vigil_connections{state=\"authenticated\"}",
        "vigil_connections{state=\"unauthenticated\"}",
        "vigil_connections_closed_total{reason=\"evicted\"}",
        "vigil_connections_closed_total{reason=\"deadline\"}",
        "vigil_connections_closed_total{reason=\"refused\"}",
    ]
    .map(|name| sample(&m, name))
}

/// This process's resident memory in KiB (the daemon and the attackers both, in-process).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A display that keeps reading and notes when each heartbeat arrives.
pub struct Watcher {
    beats: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    /// Connects a display with `token` (it must get in) and starts timing its heartbeats.
    pub async fn start(room: &Room, token: &str) -> Watcher {
        let (mut display, _) = Display::connect(room, token).await;
        let beats = Arc::new(Mutex::new(Vec::new()));
        let noted = beats.clone();
        let task = tokio::spawn(async move {
            loop {
                // `next` fails the test if nothing comes for 10 s or the connection closes.
                let m: Value = display.next().await;
                if m["type"] == "heartbeat" {
                    noted.lock().unwrap().push(Instant::now());
                }
            }
        });
        Watcher { beats, task }
    }

    /// Heartbeats so far, and the longest wait between two, or since the last one until now.
    pub fn so_far(&self) -> (usize, Duration) {
        assert!(!self.task.is_finished(), "the display's connection failed");
        let beats = self.beats.lock().unwrap();
        let now = Instant::now();
        let worst = beats
            .windows(2)
            .map(|w| w[1] - w[0])
            .chain(beats.last().map(|last| now - *last))
            .max()
            .unwrap_or_default();
        (beats.len(), worst)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits (at most `within`) until `f` holds, checking every 50 ms.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !f().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
