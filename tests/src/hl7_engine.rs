//! A fake interface engine for the HL7 forwarding tests: an MLLP server on a real TCP port
//! (optionally TLS) that keeps every message it receives, in order, and answers each as it is
//! told.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the engine answers one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `MSA|AA|<control>`.
    Accept,
    /// `MSA|AE|<control>|<reason>`.
    Error,
    /// Never answers (a stalled engine); it keeps reading.
    Stall,
}

/// What the engine saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Every message received (segments separated by CR), in order, resent ones included.
    pub messages: Vec<String>,
    /// The messages it accepted, in order.
    pub accepted: Vec<String>,
    /// A frame arrived while an earlier one was still unanswered.
    pub sent_before_ack: bool,
    /// Connections accepted.
    pub connections: usize,
    /// TLS handshakes that failed (on an engine started with TLS).
    pub handshake_failures: usize,
}

/// The path of a test certificate file in `fixtures/tls` (`cert.pem` and `key.pem`, issued to
/// `localhost` and 127.0.0.1; `other-cert.pem` and `other-key.pem`, an unrelated one).
pub fn tls_fixture(name: &str) -> String {
    format!("{}/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A TLS server configuration presenting `cert.pem`, for [`Engine::start_tls`] and other test
/// peers.
pub fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from_pem_file(tls_fixture("cert.pem")).unwrap()],
        PrivateKeyDer::from_pem_file(tls_fixture("key.pem")).unwrap(),
    )
    .unwrap();
    Arc::new(config).into()
}

/// A connection's bytes, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The running engine.
pub struct Engine {
    /// Its address, `127.0.0.1:PORT`.
    pub addr: std::net::SocketAddr,
    /// What it saw.
    pub seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// A message's field `n` of the first segment named `segment`.
pub fn field(message: &str, segment: &str, n: usize) -> String {
    message
        .split('\r')
        .find(|s| s.starts_with(segment))
        .and_then(|s| s.split('|').nth(n))
        .unwrap_or("")
        .to_string()
}

/// MSH-10 of a message.
pub fn control(message: &str) -> String {
    field(message, "MSH", 9)
}

impl Engine {
    /// Starts on `port` (0: any free one); `answer(message, times seen before)` decides each
    /// answer. After each frame it waits `quiet` for bytes that should not come yet.
    pub async fn start(
        port: u16,
        quiet: Duration,
        answer: impl Fn(&str, usize) -> Answer + Send + Sync + 'static,
    ) -> Engine {
        Engine::start_with(port, quiet, None, answer).await
    }

    /// [`Engine::start`] over TLS: each connection's handshake runs with `tls` first.
    pub async fn start_tls(
        port: u16,
        quiet: Duration,
        tls: tokio_rustls::TlsAcceptor,
        answer: impl Fn(&str, usize) -> Answer + Send + Sync + 'static,
    ) -> Engine {
        Engine::start_with(port, quiet, Some(tls), answer).await
    }

    async fn start_with(
        port: u16,
        quiet: Duration,
        tls: Option<tokio_rustls::TlsAcceptor>,
        answer: impl Fn(&str, usize) -> Answer + Send + Sync + 'static,
    ) -> Engine {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let answer = Arc::new(answer);
        let state = seen.clone();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let tasks = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                state.lock().unwrap().connections += 1;
                let (state, answer, tls) = (state.clone(), answer.clone(), tls.clone());
                let connection = tokio::spawn(async move {
                    let mut tcp: Box<dyn Io> = match tls {
                        None => Box::new(tcp),
                        Some(tls) => match tls.accept(tcp).await {
                            Ok(stream) => Box::new(stream),
                            Err(_) => {
                                state.lock().unwrap().handshake_failures += 1;
                                return;
                            }
                        },
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 65536];
                    loop {
                        // One whole frame.
                        let frame = loop {
                            if let (Some(s), Some(e)) = (
                                buf.iter().position(|b| *b == 0x0B),
                                buf.windows(2).position(|w| w == [0x1C, 0x0D]),
                            ) {
                                let frame = String::from_utf8_lossy(&buf[s + 1..e]).to_string();
                                buf.drain(..e + 2);
                                break frame;
                            }
                            match tcp.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let before = {
                            let mut s = state.lock().unwrap();
                            let before = s.messages.iter().filter(|m| **m == frame).count();
                            s.messages.push(frame.clone());
                            before
                        };
                        // Nothing more may come until this one is answered.
                        if !buf.is_empty() {
                            state.lock().unwrap().sent_before_ack = true;
                        }
                        if !quiet.is_zero() {
                            if let Ok(Ok(n)) =
                                tokio::time::timeout(quiet, tcp.read(&mut chunk)).await
                            {
                                if n > 0 {
                                    state.lock().unwrap().sent_before_ack = true;
                                    buf.extend_from_slice(&chunk[..n]);
                                }
                            }
                        }
                        let code = match answer(&frame, before) {
                            Answer::Accept => "AA",
                            Answer::Error => "AE",
                            Answer::Stall => {
                                // Keep reading (and forget) whatever comes; never answer.
                                while let Ok(n) = tcp.read(&mut chunk).await {
                                    if n == 0 {
                                        return;
                                    }
                                }
                                return;
                            }
                        };
                        if code == "AA" {
                            state.lock().unwrap().accepted.push(frame.clone());
                        }
                        let ack = format!(
                            "\x0bMSH|^~\\&|ENGINE||VIGIL||20261129120000||ACK^R01^ACK|K{}|P|2.6\rMSA|{code}|{}|{}\x1c\r",
                            fastrand_ish(),
                            control(&frame),
                            if code == "AE" { "OBX-3 code not on file" } else { "" }
                        );
                        if tcp.write_all(ack.as_bytes()).await.is_err()
                            || tcp.flush().await.is_err()
                        {
                            return;
                        }
                    }
                });
                tasks.lock().unwrap().push(connection);
            }
        });
        Engine {
            addr,
            seen,
            task,
            connections,
        }
    }

    /// Stops listening and drops every connection (an outage); returns its port.
    pub async fn stop(self) -> u16 {
        self.task.abort();
        let _ = self.task.await;
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
        // Let the aborted tasks drop their sockets.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.addr.port()
    }

    /// Waits (at most `within`) until `done(seen)` holds.
    pub async fn until(&self, within: Duration, done: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !done(&self.seen.lock().unwrap()) {
            if tokio::time::Instant::now() > deadline {
                let seen = self.seen.lock().unwrap();
                panic!(
                    "the engine never saw what was expected; it has {} messages, {} accepted; the last: {:?}",
                    seen.messages.len(),
                    seen.accepted.len(),
                    seen.messages
                        .iter()
                        .rev()
                        .take(8)
                        .map(|m| control(m))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn fastrand_ish() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// `GET /metrics` as text.
pub async fn metrics(addr: std::net::SocketAddr) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut text))
        .await
        .unwrap()
        .unwrap();
    text
}

/// The value of the metric line starting with `series` (name and labels).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}
