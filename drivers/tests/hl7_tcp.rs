//! HL7 devices over real TCP: ACKs, a gateway with two beds, reconnecting, and the bad inputs a
//! listener must survive without stalling.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::expect;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use vigil_drivers::ble::memory::MemoryCentral;
use vigil_drivers::hl7::{Endpoint, Hl7Spec, FRAME_DEADLINE, MAX_CONNECTIONS};
use vigil_drivers::{DeviceSpec, DriverEventKind, Link, Transport};
use vigil_protocol::hl7::mllp::{frame, MAX_MESSAGE};
use vigil_protocol::hl7::{CodeTable, Match};
use vigil_protocol::{Format, Vital};

const WAIT: Duration = Duration::from_secs(10);

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn device(id: &str, endpoint: Endpoint, matcher: Match) -> common::Started {
    let spec = DeviceSpec {
        id: id.into(),
        format: Format::Hl7,
        transport: Transport::Hl7(Hl7Spec {
            endpoint,
            matcher,
            table: CodeTable::default(),
            tls: None,
        }),
    };
    common::spawn(spec, MemoryCentral::new())
}

fn bed(equipment: &str) -> Match {
    Match {
        equipment: Some(equipment.into()),
        sending_facility: None,
    }
}

fn oru(id: &str, equipment: &str, spo2: u32) -> Vec<u8> {
    frame(
        format!(
            "MSH|^~\\&|MON|WARD|||20240520101500+0000||ORU^R01^ORU_R01|{id}|P|2.6\r\
             OBR|1|||182777000^monitoring of patient^SNOMED-CT|||20240520101500+0000\r\
             OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|{spo2}|262688^MDC_DIM_PERCENT^MDC|||||R|||||||{equipment}\r"
        )
        .as_bytes(),
    )
}

/// Connects to the listener, retrying while the driver binds it.
async fn dial(addr: SocketAddr) -> TcpStream {
    for _ in 0..200 {
        if let Ok(s) = TcpStream::connect(addr).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nothing listens on {addr}");
}

/// Reads one MLLP-framed reply.
async fn read_ack(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(&[0x1C, 0x0D]) {
        let n = timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("an ACK in time")
            .unwrap();
        assert!(n > 0, "connection closed before the ACK; got {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn spo2(kind: &DriverEventKind) -> Option<f64> {
    match kind {
        DriverEventKind::Readings(rs) => rs.iter().find(|r| r.vital == Vital::Spo2)?.value.number(),
        _ => None,
    }
}

#[tokio::test]
async fn a_listening_device_acknowledges_reads_and_shows_the_link() {
    let addr = free_addr();
    let (mut rx, _h, cancel) = device("mon-1", Endpoint::Listen(addr), Match::default());
    let mut monitor = dial(addr).await;
    monitor.write_all(&oru("M1", "BED1", 95)).await.unwrap();
    assert!(read_ack(&mut monitor).await.contains("MSA|AA|M1\r"));
    expect(&mut rx, WAIT, |k| {
        matches!(k, DriverEventKind::Link(Link::Connected)).then_some(())
    })
    .await;
    assert_eq!(expect(&mut rx, WAIT, spo2).await, 95.0);
    // A bad message: AE with the reason, and the connection goes on.
    monitor
        .write_all(&frame(
            b"MSH|^~\\&|MON|WARD|||20240520||ORU^R01|BAD|P|2.1\rOBX|1|NM|150456^^MDC||90",
        ))
        .await
        .unwrap();
    let ae = read_ack(&mut monitor).await;
    assert!(
        ae.contains("MSA|AE|BAD|") && ae.contains("ERR|||203^"),
        "{ae}"
    );
    monitor.write_all(&oru("M2", "BED1", 94)).await.unwrap();
    assert!(read_ack(&mut monitor).await.contains("MSA|AA|M2\r"));
    assert_eq!(expect(&mut rx, WAIT, spo2).await, 94.0);
    // The monitor hangs up: the device's link shows it.
    drop(monitor);
    let reason = expect(&mut rx, WAIT, |k| match k {
        DriverEventKind::Link(Link::Disconnected { reason }) => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(reason.contains("closed"), "{reason}");
    cancel.cancel();
}

#[tokio::test]
async fn a_gateway_with_two_beds_feeds_two_devices_and_counts_the_rest() {
    let addr = free_addr();
    let (mut bed1, _h1, c1) = device("bed-1", Endpoint::Listen(addr), bed("BED1"));
    let (mut bed2, _h2, c2) = device("bed-2", Endpoint::Listen(addr), bed("BED2"));
    // Both drivers must have registered before the gateway sends.
    for rx in [&mut bed1, &mut bed2] {
        expect(rx, WAIT, |k| {
            matches!(k, DriverEventKind::Link(Link::Connecting)).then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut gw = dial(addr).await;
    let before = vigil_drivers::hl7::unmatched_total();
    for (id, equipment, value) in [("G1", "BED1", 91), ("G2", "BED2", 92), ("G3", "BED9", 93)] {
        gw.write_all(&oru(id, equipment, value)).await.unwrap();
        assert!(read_ack(&mut gw).await.contains(&format!("MSA|AA|{id}\r")));
    }
    assert_eq!(expect(&mut bed1, WAIT, spo2).await, 91.0);
    assert_eq!(expect(&mut bed2, WAIT, spo2).await, 92.0);
    assert!(vigil_drivers::hl7::unmatched_total() > before);
    // Each device got only its own bed.
    gw.write_all(&oru("G4", "BED2", 88)).await.unwrap();
    read_ack(&mut gw).await;
    assert_eq!(expect(&mut bed2, WAIT, spo2).await, 88.0);
    assert!(timeout(Duration::from_millis(300), async {
        expect(&mut bed1, WAIT, spo2).await
    })
    .await
    .is_err());
    c1.cancel();
    c2.cancel();
}

#[tokio::test]
async fn a_connect_device_reconnects_when_the_monitor_drops_it() {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (mut rx, _h, cancel) = device(
        "mon-2",
        Endpoint::Connect(addr.to_string()),
        Match::default(),
    );
    for round in 1..=2 {
        let (mut conn, _) = timeout(WAIT, server.accept()).await.unwrap().unwrap();
        expect(&mut rx, WAIT, |k| {
            matches!(k, DriverEventKind::Link(Link::Connected)).then_some(())
        })
        .await;
        conn.write_all(&oru(&format!("C{round}"), "", 90 + round))
            .await
            .unwrap();
        assert!(read_ack(&mut conn)
            .await
            .contains(&format!("MSA|AA|C{round}\r")));
        assert_eq!(expect(&mut rx, WAIT, spo2).await, f64::from(90 + round));
        drop(conn);
        expect(&mut rx, WAIT, |k| {
            matches!(k, DriverEventKind::Link(Link::Disconnected { .. })).then_some(())
        })
        .await;
    }
    cancel.cancel();
}

#[tokio::test]
async fn bad_input_gets_an_ae_or_is_skipped_and_the_connection_goes_on() {
    let addr = free_addr();
    let (mut rx, _h, cancel) = device("mon-3", Endpoint::Listen(addr), Match::default());
    let mut monitor = dial(addr).await;
    // Binary garbage outside any frame: skipped, no reply.
    monitor
        .write_all(&[0xFF, 0x00, 0x13, 0x37, 0x1C, 0x0D])
        .await
        .unwrap();
    // A message over 1 MiB: AE.
    let mut big = vec![0x0B];
    big.resize(MAX_MESSAGE + 64, b'A');
    monitor.write_all(&big).await.unwrap();
    assert!(read_ack(&mut monitor).await.contains("MSA|AE|"));
    // A frame without its end bytes, then a good one: the good one is read.
    monitor.write_all(&[0x0B]).await.unwrap();
    monitor.write_all(b"MSH|^~\\&|lost").await.unwrap();
    // A segment with 10,000 fields: AE.
    let wide = [
        b"MSH|^~\\&|M|F|||20240520||ORU^R01|WIDE|P|2.5\rOBX".to_vec(),
        vec![b'|'; 10_000],
    ]
    .concat();
    monitor.write_all(&frame(&wide)).await.unwrap();
    assert!(read_ack(&mut monitor).await.contains("MSA|AE|WIDE|"));
    // An ORU with no OBX: AE.
    monitor
        .write_all(&frame(
            b"MSH|^~\\&|M|F|||20240520||ORU^R01|EMPTY|P|2.5\rOBR|1",
        ))
        .await
        .unwrap();
    assert!(read_ack(&mut monitor).await.contains("MSA|AE|EMPTY|"));
    monitor.write_all(&oru("OK", "", 97)).await.unwrap();
    assert!(read_ack(&mut monitor).await.contains("MSA|AA|OK\r"));
    assert_eq!(expect(&mut rx, WAIT, spo2).await, 97.0);
    cancel.cancel();
}

#[tokio::test]
async fn slow_and_surplus_clients_do_not_block_the_monitor() {
    let addr = free_addr();
    let (mut rx, _h, cancel) = device("mon-4", Endpoint::Listen(addr), Match::default());
    // A slow-loris client holds a frame open.
    let mut loris = dial(addr).await;
    loris.write_all(b"\x0bMSH|^~\\&|slow").await.unwrap();
    // Clients up to the cap hold idle connections; one more takes the place of the oldest
    // that has delivered nothing, the loris (V3).
    let mut idle = Vec::new();
    for _ in 1..MAX_CONNECTIONS {
        idle.push(dial(addr).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    idle.push(dial(addr).await);
    let mut buf = [0u8; 16];
    let n = timeout(WAIT, loris.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(
        n, 0,
        "the oldest connection that delivered nothing gives way"
    );
    // The monitor comes in at the cap and is served.
    let mut monitor = dial(addr).await;
    monitor.write_all(&oru("FAST", "", 96)).await.unwrap();
    assert!(read_ack(&mut monitor).await.contains("MSA|AA|FAST\r"));
    assert_eq!(expect(&mut rx, WAIT, spo2).await, 96.0);
    // A slow-loris is cut off at its frame deadline, while the monitor is served.
    let mut loris = dial(addr).await;
    loris.write_all(b"\x0bMSH|^~\\&|slow").await.unwrap();
    monitor.write_all(&oru("FAST2", "", 95)).await.unwrap();
    assert!(read_ack(&mut monitor).await.contains("MSA|AA|FAST2\r"));
    let n = timeout(FRAME_DEADLINE + WAIT, loris.read(&mut buf))
        .await
        .expect("the slow client is closed at its deadline")
        .unwrap_or(0);
    assert_eq!(n, 0);
    cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_monitor_that_stops_sending_shows_no_data() {
    let addr = free_addr();
    let (mut rx, _h, cancel) = device("mon-5", Endpoint::Listen(addr), Match::default());
    let mut monitor = dial(addr).await;
    monitor.write_all(&oru("S1", "", 95)).await.unwrap();
    assert!(read_ack(&mut monitor).await.contains("MSA|AA|S1\r"));
    assert_eq!(expect(&mut rx, WAIT, spo2).await, 95.0);
    // The connection stays open but nothing more comes: the silence limit passes.
    let seconds = expect(&mut rx, Duration::from_secs(30), |k| match k {
        DriverEventKind::Link(Link::NoData { seconds }) => Some(*seconds),
        _ => None,
    })
    .await;
    assert!(seconds >= 15, "{seconds}");
    // A message again: connected again.
    monitor.write_all(&oru("S2", "", 96)).await.unwrap();
    read_ack(&mut monitor).await;
    expect(&mut rx, WAIT, |k| {
        matches!(k, DriverEventKind::Link(Link::Connected)).then_some(())
    })
    .await;
    cancel.cancel();
}

/// The test certificate (`localhost`, 127.0.0.1) as a `listen` device's TLS settings.
fn server_tls() -> vigil_drivers::hl7::Hl7Tls {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/tls");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from_pem_file(format!("{dir}/cert.pem")).unwrap()],
        PrivateKeyDer::from_pem_file(format!("{dir}/key.pem")).unwrap(),
    )
    .unwrap();
    vigil_drivers::hl7::Hl7Tls::server(std::sync::Arc::new(config), dir.into(), 1)
}

#[tokio::test]
async fn a_device_restarted_with_tls_gets_a_new_listener_though_a_monitor_held_the_old_one() {
    let addr = free_addr();
    let (mut rx, h1, c1) = device("mon-6", Endpoint::Listen(addr), Match::default());
    let mut old = dial(addr).await;
    old.write_all(&oru("P1", "", 91)).await.unwrap();
    assert!(read_ack(&mut old).await.contains("MSA|AA|P1\r"));
    assert_eq!(expect(&mut rx, WAIT, spo2).await, 91.0);
    // A reload turns TLS on: the device is stopped and started again with it, while the
    // monitor still holds its plain connection.
    c1.cancel();
    drop(h1);
    let spec = DeviceSpec {
        id: "mon-6".into(),
        format: Format::Hl7,
        transport: Transport::Hl7(Hl7Spec {
            endpoint: Endpoint::Listen(addr),
            matcher: Match::default(),
            table: CodeTable::default(),
            tls: Some(server_tls()),
        }),
    };
    let (mut rx, _h2, c2) = common::spawn(spec, MemoryCentral::new());
    // The old connection is closed with the old listener...
    let mut rest = Vec::new();
    let closed = timeout(WAIT, old.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the old plain connection was kept");
    // ...and the new one speaks TLS only.
    let connector = {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(
                rustls::pki_types::CertificateDer::from_pem_file(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../tests/fixtures/tls/cert.pem"
                ))
                .unwrap(),
            )
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
    };
    let monitor = timeout(WAIT, async {
        loop {
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            if let Ok(tls) = connector.connect(name, dial(addr).await).await {
                break tls;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the restarted device never served TLS");
    let mut monitor = monitor;
    monitor.write_all(&oru("P2", "", 92)).await.unwrap();
    monitor.flush().await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(&[0x1C, 0x0D]) {
        let n = timeout(WAIT, monitor.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before the ACK");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).contains("MSA|AA|P2\r"));
    assert_eq!(expect(&mut rx, WAIT, spo2).await, 92.0);
    c2.cancel();
}
