//! `vigil probe` as a technician runs it: the real binary on a pseudo-terminal.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio_serial::{SerialPort, SerialStream};

#[tokio::test]
async fn probe_prints_link_events_and_readings_from_a_serial_port() {
    let (mut master, slave) = SerialStream::pair().unwrap();
    let path = slave.name().unwrap();
    drop(slave);
    let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "probe",
            "--format",
            "nonin-8",
            "--port",
            &path,
            "--duration",
            "3",
        ])
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Give the probe time to open the port, then send a second of Nonin #8 frames.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for _ in 0..5 {
        let frame = vigil_protocol::serial::nonin::Frame8 {
            status: 0,
            heart_rate: 64,
            spo2: 96,
            stat2: 0,
        };
        master.write_all(&frame.encode()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["link"], "connecting");
    assert_eq!(lines[1]["link"], "connected");
    let spo2: Vec<_> = lines.iter().filter(|l| l["vital"] == "spo2").collect();
    assert!(spo2.len() >= 4, "{lines:?}");
    assert_eq!(spo2[0]["value"], 96.0);
    assert_eq!(spo2[0]["mdc"], 150456);
}

#[tokio::test]
async fn probe_exits_non_zero_with_the_reason_when_nothing_arrives() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "probe",
            "--format",
            "masimo",
            "--port",
            "/dev/vigil-no-such-port",
            "--duration",
            "1",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(r#""link":"disconnected""#)
            && stdout.contains("cannot open /dev/vigil-no-such-port"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no readings arrived"));
}

#[tokio::test]
async fn probe_refuses_mismatched_transport_and_explains_missing_bluetooth() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["probe", "--format", "suntech", "--ble"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("suntech is a serial format"));

    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["probe", "--ble", "--scan", "--duration", "0.1"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no Bluetooth adapter"), "{err}");
}

#[tokio::test]
async fn probe_listens_for_an_hl7_monitor_and_acknowledges_it() {
    use tokio::io::AsyncReadExt;
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "probe",
            "--format",
            "hl7",
            "--listen",
            &addr.to_string(),
            "--duration",
            "3",
        ])
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut monitor = None;
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
            monitor = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut monitor = monitor.expect("the probe listens");
    let message = vigil_protocol::hl7::mllp::frame(
        b"MSH|^~\\&|MON|WARD|||20240520101500+0000||ORU^R01|P1|P|2.6\r\
          OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|96|262688^MDC_DIM_PERCENT^MDC|||||R\r",
    );
    monitor.write_all(&message).await.unwrap();
    let mut ack = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), monitor.read(&mut ack))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&ack[..n]).contains("MSA|AA|P1"));
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(r#""link":"connected""#), "{stdout}");
    assert!(
        stdout.contains(r#""vital":"spo2","value":96.0"#),
        "{stdout}"
    );
}
