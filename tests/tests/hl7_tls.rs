//! HL7 devices over TLS, over real TCP with a running daemon: a monitor dialling a TLS
//! listener, a `connect` device checking a monitor's certificate, clients that stall or speak
//! plain TCP at a TLS listener. (`[[forward]]` over TLS: `forward_hl7.rs`.)
//!
//! Certificates: `fixtures/tls/cert.pem` (and `key.pem`) is the one the servers present,
//! issued to `localhost` and 127.0.0.1; `other-cert.pem` (and `other-key.pem`) is a second,
//! unrelated self-signed one, the "wrong CA" and the stranger's client certificate.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use vigil_daemon::daemon::Options;
use vigil_tests::hl7_engine::{tls_acceptor, tls_fixture as fixture};
use vigil_tests::{Display, Room, VIEWER};

const WAIT: Duration = Duration::from_secs(30);
/// A TLS client trusting `ca`; with `identity` (cert, key) it presents that certificate.
fn connector(ca: &str, identity: Option<(&str, &str)>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(fixture(ca)).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(fixture(cert)).unwrap()],
                PrivateKeyDer::from_pem_file(fixture(key)).unwrap(),
            )
            .unwrap(),
    };
    Arc::new(config).into()
}

/// Every log line of this test binary, from the first call on.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
            .with_writer(move || Sink(sink.clone()))
            .try_init()
            .unwrap();
        buf
    })
    .clone()
}

/// Waits until a log line holds every one of `words`; returns it.
async fn logged(words: &[&str]) -> String {
    let logs = logs();
    timeout(WAIT, async {
        loop {
            let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
            if let Some(line) = text.lines().find(|l| words.iter().all(|w| l.contains(w))) {
                return line.to_string();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no log line with {words:?}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Now as an HL7 timestamp (UTC).
fn hl7_now() -> String {
    let rfc = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let digits: String = rfc.chars().filter(char::is_ascii_digit).collect();
    format!("{digits}+0000")
}

/// An MLLP-framed ORU^R01 with one SpO2 observation.
fn oru(control: &str, spo2: u32) -> Vec<u8> {
    let now = hl7_now();
    let mut out = vec![0x0B];
    out.extend_from_slice(
        format!(
            "MSH|^~\\&|MON|WARD|||{now}||ORU^R01^ORU_R01|{control}|P|2.6\r\
             OBR|1|||182777000^monitoring of patient^SNOMED-CT|||{now}\r\
             OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|{spo2}|262688^MDC_DIM_PERCENT^MDC|||||R\r"
        )
        .as_bytes(),
    );
    out.extend_from_slice(&[0x1C, 0x0D]);
    out
}

/// Reads one MLLP frame; panics if the connection closes first.
async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(&[0x1C, 0x0D]) {
        let n = timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("a frame in time")
            .unwrap();
        assert!(n > 0, "closed before a whole frame; got {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Sends one ORU and expects its `AA`.
async fn send_and_expect_aa<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    control: &str,
    spo2: u32,
) {
    stream.write_all(&oru(control, spo2)).await.unwrap();
    stream.flush().await.unwrap();
    let ack = read_frame(stream).await;
    assert!(ack.contains(&format!("MSA|AA|{control}\r")), "{ack}");
}

/// Connects to `addr`, retrying while the device binds it.
async fn dial(addr: SocketAddr) -> TcpStream {
    for _ in 0..500 {
        if let Ok(s) = TcpStream::connect(addr).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nothing listens on {addr}");
}

/// A monitor over TLS (trusting `cert.pem`, presenting `identity` if given).
async fn tls_monitor(
    addr: SocketAddr,
    identity: Option<(&str, &str)>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    connector("cert.pem", identity)
        .connect(ServerName::try_from("localhost").unwrap(), dial(addr).await)
        .await
}

fn hl7_device(id: &str, endpoint: &str, tls: &str) -> String {
    format!("[[device]]\nid = \"{id}\"\nformat = \"hl7\"\n{endpoint}\ntls = {{ {tls} }}\n")
}

fn listener_tls(client_ca: Option<&str>) -> String {
    let mut tls = format!(
        "cert = \"{}\", key = \"{}\"",
        fixture("cert.pem"),
        fixture("key.pem")
    );
    if let Some(ca) = client_ca {
        tls.push_str(&format!(", client_ca = \"{}\"", fixture(ca)));
    }
    tls
}

/// Waits until a new display's snapshot satisfies `want`; returns it.
async fn snapshot_until(
    room: &Room,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    timeout(WAIT, async {
        loop {
            let (_, snapshot) = Display::connect(room, VIEWER).await;
            if want(&snapshot) {
                return snapshot;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("no snapshot showed what was expected")
}

/// Waits until the display shows `device`'s SpO2 at `value`.
async fn shows_spo2(display: &mut Display, device: &str, value: f64) {
    display
        .until(|m| {
            m["type"] == "reading"
                && m["device"] == device
                && m["vital"] == "spo2"
                && m["value"].as_f64() == Some(value)
        })
        .await;
}

#[tokio::test]
async fn a_monitor_over_tls_is_acknowledged_and_its_reading_reaches_the_display() {
    let port = free_port();
    let room = Room::start(
        &hl7_device(
            "mon-tls",
            &format!("listen = \"127.0.0.1:{port}\""),
            &listener_tls(None),
        ),
        Options::default(),
    )
    .await;
    let (mut display, _) = Display::connect(&room, VIEWER).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut monitor = tls_monitor(addr, None).await.unwrap();
    send_and_expect_aa(&mut monitor, "T1", 95).await;
    display
        .until(|m| m["type"] == "device" && m["device"] == "mon-tls" && m["link"] == "connected")
        .await;
    shows_spo2(&mut display, "mon-tls", 95.0).await;
    // The monitor hangs up: the device shows it, as over plain TCP.
    drop(monitor);
    display
        .until(|m| m["type"] == "device" && m["device"] == "mon-tls" && m["link"] == "disconnected")
        .await;
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn stalled_and_plain_clients_at_a_tls_listener_do_not_block_a_good_monitor() {
    logs();
    let port = free_port();
    let room = Room::start(
        &hl7_device(
            "mon-guarded",
            &format!("listen = \"127.0.0.1:{port}\""),
            &listener_tls(None),
        ),
        Options::default(),
    )
    .await;
    let (mut display, _) = Display::connect(&room, VIEWER).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();

    // A client that connects and never starts the handshake (held until the end of the test).
    let stalled = dial(addr).await;
    // A monitor set up without TLS: it sends a plain ORU and gets no ACK, only a closed socket.
    let mut plain = dial(addr).await;
    plain.write_all(&oru("PLAIN-7", 81)).await.unwrap();
    let mut answer = Vec::new();
    let read = timeout(WAIT, plain.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the plain client was not closed");
    assert!(
        !String::from_utf8_lossy(&answer).contains("MSA|"),
        "a plain client got an HL7 answer: {answer:?}"
    );
    let line = logged(&["HL7 connection refused: no TLS", &port.to_string()]).await;
    assert!(
        !line.contains("PLAIN-7") && !line.contains("ORU"),
        "the log line holds the message: {line}"
    );

    // Meanwhile a good monitor is served at once, the stalled client still open.
    let mut monitor = tls_monitor(addr, None).await.unwrap();
    send_and_expect_aa(&mut monitor, "G1", 93).await;
    shows_spo2(&mut display, "mon-guarded", 93.0).await;
    // The listener never took the plain ORU as a reading.
    let (_, snapshot) = Display::connect(&room, VIEWER).await;
    let vitals = snapshot["vitals"].as_array().unwrap();
    assert!(
        !vitals
            .iter()
            .any(|v| v["device"] == "mon-guarded" && v["value"] == 81.0),
        "{vitals:?}"
    );
    // And the stalled client is cut off at the handshake deadline, not held for ever.
    let mut stalled = stalled;
    let mut rest = Vec::new();
    let cut = timeout(WAIT, stalled.read_to_end(&mut rest)).await;
    assert!(cut.is_ok(), "a client that never shook hands was kept");
    logged(&[
        "HL7 connection refused: no TLS",
        "no TLS handshake within 10s",
    ])
    .await;
    room.daemon.shutdown().await;
}

#[tokio::test]
async fn with_client_ca_only_a_monitor_with_a_certificate_from_it_is_served() {
    logs();
    let port = free_port();
    let room = Room::start(
        &hl7_device(
            "mon-mutual",
            &format!("listen = \"127.0.0.1:{port}\""),
            &listener_tls(Some("other-cert.pem")),
        ),
        Options::default(),
    )
    .await;
    let (mut display, _) = Display::connect(&room, VIEWER).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // No client certificate, then one the client CA did not issue: refused (TLS 1.3 reports
    // it on the first read) and logged.
    for identity in [None, Some(("cert.pem", "key.pem"))] {
        let refused = match tls_monitor(addr, identity).await {
            Err(_) => true,
            Ok(mut stranger) => {
                let _ = stranger.write_all(&oru("X1", 80)).await;
                let _ = stranger.flush().await;
                let mut buf = [0u8; 256];
                !matches!(timeout(WAIT, stranger.read(&mut buf)).await, Ok(Ok(n)) if n > 0)
            }
        };
        assert!(refused, "{identity:?} was served");
    }
    logged(&[
        "HL7 connection refused: no TLS",
        &port.to_string(),
        "certificate",
    ])
    .await;
    // The monitor with the expected certificate is served.
    let mut monitor = tls_monitor(addr, Some(("other-cert.pem", "other-key.pem")))
        .await
        .unwrap();
    send_and_expect_aa(&mut monitor, "M1", 96).await;
    shows_spo2(&mut display, "mon-mutual", 96.0).await;
    room.daemon.shutdown().await;
}

/// A monitor that serves HL7 over TLS: accepts connections, counts them, and on each sends one
/// ORU and expects its ACK.
struct ServingMonitor {
    addr: SocketAddr,
    connections: Arc<Mutex<usize>>,
    acked: Arc<Mutex<Vec<String>>>,
}

impl ServingMonitor {
    async fn start(spo2: u32) -> ServingMonitor {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections: Arc<Mutex<usize>> = Arc::default();
        let acked: Arc<Mutex<Vec<String>>> = Arc::default();
        let (count, acks) = (Arc::clone(&connections), Arc::clone(&acked));
        let tls = tls_acceptor();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                *count.lock().unwrap() += 1;
                let (tls, acks) = (tls.clone(), Arc::clone(&acks));
                tokio::spawn(async move {
                    let Ok(mut stream) = tls.accept(tcp).await else {
                        return;
                    };
                    if stream.write_all(&oru("S1", spo2)).await.is_err() {
                        return;
                    }
                    let _ = stream.flush().await;
                    let ack = read_frame(&mut stream).await;
                    acks.lock().unwrap().push(ack);
                    // Stay connected, as a monitor does.
                    let mut buf = [0u8; 64];
                    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
        ServingMonitor {
            addr,
            connections,
            acked,
        }
    }
}

#[tokio::test]
async fn a_connect_device_serves_a_monitor_whose_certificate_its_ca_issued_and_refuses_others() {
    logs();
    let good = ServingMonitor::start(94).await;
    let bad = ServingMonitor::start(88).await;
    let room = Room::start(
        &format!(
            "{}{}",
            hl7_device(
                "mon-dialled",
                &format!("connect = \"{}\"", good.addr),
                &format!("ca = \"{}\"", fixture("cert.pem")),
            ),
            hl7_device(
                "mon-wrong-ca",
                &format!("connect = \"{}\"", bad.addr),
                &format!("ca = \"{}\"", fixture("other-cert.pem")),
            )
        ),
        Options::default(),
    )
    .await;
    // (The device dials at start: its reading may be in the snapshot, not a message.)
    snapshot_until(&room, |s| {
        s["vitals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["device"] == "mon-dialled" && v["vital"] == "spo2" && v["value"] == 94.0)
    })
    .await;
    timeout(WAIT, async {
        while good.acked.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert!(good.acked.lock().unwrap()[0].contains("MSA|AA|S1\r"));

    // The monitor whose certificate the CA did not issue: refused, shown with the reason (the
    // log carries it too), retried, and never read.
    let snapshot = snapshot_until(&room, |s| {
        s["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["device"] == "mon-wrong-ca" && d["link"] == "disconnected")
    })
    .await;
    let wrong = snapshot["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == "mon-wrong-ca")
        .unwrap()
        .clone();
    let reason = wrong["reason"].as_str().unwrap();
    assert!(
        reason.contains("TLS handshake failed") && reason.contains("certificate"),
        "{reason}"
    );
    logged(&[
        "device disconnected",
        "mon-wrong-ca",
        "TLS handshake failed",
    ])
    .await;
    timeout(WAIT, async {
        while *bad.connections.lock().unwrap() < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the device did not try again");
    assert!(bad.acked.lock().unwrap().is_empty());
    let (_, snapshot) = Display::connect(&room, VIEWER).await;
    assert!(
        !snapshot["vitals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["device"] == "mon-wrong-ca"),
        "{snapshot}"
    );
    room.daemon.shutdown().await;
}
