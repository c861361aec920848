//! HL7 listener findings of the review after the monitors, HL7 and central issues
//! (docs/hazards.md, "Found in review after the monitors, HL7 and central issues").

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::expect;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use vigil_drivers::ble::memory::MemoryCentral;
use vigil_drivers::hl7::{Endpoint, Hl7Spec, MAX_CONNECTIONS};
use vigil_drivers::{DeviceSpec, DriverEventKind, Transport};
use vigil_protocol::hl7::mllp::frame;
use vigil_protocol::hl7::{CodeTable, Match};
use vigil_protocol::{Format, Vital};

const WAIT: Duration = Duration::from_secs(10);

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn listening(id: &str, addr: SocketAddr) -> common::Started {
    let spec = DeviceSpec {
        id: id.into(),
        format: Format::Hl7,
        transport: Transport::Hl7(Hl7Spec {
            endpoint: Endpoint::Listen(addr),
            matcher: Match::default(),
            table: CodeTable::default(),
            tls: None,
        }),
    };
    common::spawn(spec, MemoryCentral::new())
}

fn oru(id: &str, spo2: u32) -> Vec<u8> {
    frame(
        format!(
            "MSH|^~\\&|MON|WARD|||20240520101500+0000||ORU^R01^ORU_R01|{id}|P|2.6\r\
             OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|{spo2}|262688^MDC_DIM_PERCENT^MDC|||||R\r"
        )
        .as_bytes(),
    )
}

async fn dial(addr: SocketAddr) -> TcpStream {
    for _ in 0..200 {
        if let Ok(s) = TcpStream::connect(addr).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nothing listens on {addr}");
}

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

/// V3: anyone on the network who opens the listener's 16 connections and sends nothing kept
/// the monitor out for 5 minutes at a time (its connection was closed on arrival), so the
/// room's vitals stopped. The connection silent longest gives way to a new one.
#[tokio::test]
async fn idle_connections_at_the_cap_give_way_to_the_monitor() {
    let addr = free_addr();
    let (mut rx, _h, cancel) = listening("mon-v3", addr);
    let mut idle = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        idle.push(dial(addr).await);
    }
    // Every idle connection has been accepted before the monitor comes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut monitor = dial(addr).await;
    monitor.write_all(&oru("V3A", 93)).await.unwrap();
    assert!(read_ack(&mut monitor).await.contains("MSA|AA|V3A\r"));
    assert_eq!(expect(&mut rx, WAIT, spo2).await, 93.0);
    // More idle connections do not push the monitor out: it is the one that speaks.
    for _ in 0..MAX_CONNECTIONS {
        idle.push(dial(addr).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    monitor.write_all(&oru("V3B", 92)).await.unwrap();
    assert!(read_ack(&mut monitor).await.contains("MSA|AA|V3B\r"));
    assert_eq!(expect(&mut rx, WAIT, spo2).await, 92.0);
    cancel.cancel();
}
