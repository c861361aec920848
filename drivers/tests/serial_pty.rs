//! The serial driver over real pseudo-terminals: the test holds the device side.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::expect;

use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout, Instant};
use tokio_serial::{SerialPort, SerialStream};
use vigil_drivers::ble::memory::MemoryCentral;
use vigil_drivers::{DeviceSpec, DriverEventKind, Link, PortSelector, SerialSpec, Transport};
use vigil_protocol::serial::{contec, suntech};
use vigil_protocol::stream::Deframer;
use vigil_protocol::{Format, Vital};

/// A pseudo-terminal whose slave is reachable through a stable symlink, like a udev name.
struct FakePort {
    master: SerialStream,
    link: PathBuf,
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "vigil-pty-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl FakePort {
    fn new(link: PathBuf) -> FakePort {
        let (master, slave) = SerialStream::pair().expect("a pseudo-terminal pair");
        let name = slave.name().expect("the slave has a path");
        drop(slave);
        let _ = std::fs::remove_file(&link);
        symlink(name, &link).unwrap();
        FakePort { master, link }
    }
}

fn spec(format: Format, path: PathBuf) -> DeviceSpec {
    DeviceSpec {
        id: "dev-1".into(),
        format,
        transport: Transport::Serial(SerialSpec {
            port: PortSelector::Path(path),
            line: format.line_settings().unwrap(),
        }),
    }
}

fn start(spec: DeviceSpec) -> common::Started {
    common::spawn(spec, MemoryCentral::new())
}

fn masimo_line(spo2: u32) -> Vec<u8> {
    format!("11/23/26 10:00:00 SPO2={spo2:03}% BPM=072 PI=02.10% ALARM=0000 EXC=000800\r\n")
        .into_bytes()
}

fn spo2_of(kind: &DriverEventKind) -> Option<f64> {
    match kind {
        DriverEventKind::Readings(rs) => rs.iter().find(|r| r.vital == Vital::Spo2)?.value.number(),
        _ => None,
    }
}

fn connected(kind: &DriverEventKind) -> Option<()> {
    matches!(kind, DriverEventKind::Link(Link::Connected)).then_some(())
}

#[tokio::test]
async fn readings_arrive_and_garbage_is_skipped() {
    let d = dir();
    let mut port = FakePort::new(d.join("masimo"));
    let (mut rx, _h, cancel) = start(spec(Format::Masimo, port.link.clone()));
    expect(&mut rx, Duration::from_secs(5), connected).await;
    port.master.write_all(&masimo_line(97)).await.unwrap();
    assert_eq!(expect(&mut rx, Duration::from_secs(5), spo2_of).await, 97.0);
    // Noise on the line, then a good line: the noise is counted, the reading still arrives.
    port.master
        .write_all(b"\x00\xff\x13garbage\r\n")
        .await
        .unwrap();
    port.master.write_all(&masimo_line(95)).await.unwrap();
    let mut errors = 0;
    let spo2 = expect(&mut rx, Duration::from_secs(5), |k| {
        if let DriverEventKind::DecodeErrors { count, .. } = k {
            errors += count;
        }
        spo2_of(k)
    })
    .await;
    assert_eq!(spo2, 95.0);
    // Errors are reported at most once a second; wait for the report if it was not first.
    if errors == 0 {
        expect(&mut rx, Duration::from_secs(3), |k| {
            matches!(k, DriverEventKind::DecodeErrors { .. }).then_some(())
        })
        .await;
    }
    cancel.cancel();
}

#[tokio::test]
async fn unplug_is_noticed_within_two_seconds_and_replug_resumes() {
    let d = dir();
    let link = d.join("nonin");
    let mut port = FakePort::new(link.clone());
    let (mut rx, _h, cancel) = start(spec(Format::Nonin8, link.clone()));
    expect(&mut rx, Duration::from_secs(5), connected).await;
    port.master
        .write_all(
            &vigil_protocol::serial::nonin::Frame8 {
                status: 0,
                heart_rate: 72,
                spo2: 97,
                stat2: 0,
            }
            .encode(),
        )
        .await
        .unwrap();
    assert_eq!(expect(&mut rx, Duration::from_secs(5), spo2_of).await, 97.0);

    let unplugged = Instant::now();
    drop(port);
    let reason = expect(&mut rx, Duration::from_secs(2), |k| match k {
        DriverEventKind::Link(Link::Disconnected { reason }) => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(unplugged.elapsed() < Duration::from_secs(2));
    assert!(
        reason.contains("nonin"),
        "the reason names the port: {reason}"
    );

    // The same path now leads to a new pseudo-terminal, as a replugged cable would.
    let mut port = FakePort::new(link.clone());
    expect(&mut rx, Duration::from_secs(15), connected).await;
    port.master
        .write_all(
            &vigil_protocol::serial::nonin::Frame8 {
                status: 0,
                heart_rate: 80,
                spo2: 94,
                stat2: 0,
            }
            .encode(),
        )
        .await
        .unwrap();
    assert_eq!(expect(&mut rx, Duration::from_secs(5), spo2_of).await, 94.0);
    cancel.cancel();
}

#[tokio::test]
async fn a_missing_port_is_reported_and_retried() {
    let d = dir();
    let (mut rx, _h, cancel) = start(spec(Format::Masimo, d.join("not-yet")));
    let reason = expect(&mut rx, Duration::from_secs(5), |k| match k {
        DriverEventKind::Link(Link::Disconnected { reason }) => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(reason.contains("cannot open"), "{reason}");
    let mut port = FakePort::new(d.join("not-yet"));
    expect(&mut rx, Duration::from_secs(15), connected).await;
    port.master.write_all(&masimo_line(99)).await.unwrap();
    assert_eq!(expect(&mut rx, Duration::from_secs(5), spo2_of).await, 99.0);
    cancel.cancel();
}

#[tokio::test]
async fn silence_is_reported_as_no_data() {
    let d = dir();
    let port = FakePort::new(d.join("quiet"));
    let (mut rx, _h, cancel) = start(spec(Format::Masimo, port.link.clone()));
    expect(&mut rx, Duration::from_secs(5), connected).await;
    let seconds = expect(&mut rx, Duration::from_secs(8), |k| match k {
        DriverEventKind::Link(Link::NoData { seconds }) => Some(*seconds),
        _ => None,
    })
    .await;
    assert!(seconds >= 5);
    cancel.cancel();
    drop(port);
}

/// A Contec V7.0 as the protocol describes it: real-time packets only after the start command,
/// and silence once no keep-alive has come for `timeout`.
async fn fake_contec(mut master: SerialStream, timeout: Duration, run_for: Duration) -> usize {
    let mut commands = Deframer::new(contec::CommandDecoder);
    let mut buf = [0u8; 256];
    let mut started = false;
    let mut last_keep_alive = Instant::now();
    let mut sent = 0;
    let end = Instant::now() + run_for;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while Instant::now() < end {
        tokio::select! {
            n = master.read(&mut buf) => {
                let Ok(n) = n else { break };
                commands.push(&buf[..n]);
                while let Some(Ok(cmd)) = commands.next_frame() {
                    match cmd {
                        contec::Command::StartRealTime => { started = true; last_keep_alive = Instant::now(); }
                        contec::Command::KeepAlive => last_keep_alive = Instant::now(),
                        _ => {}
                    }
                }
            }
            _ = tick.tick() => {
                if started && last_keep_alive.elapsed() < timeout {
                    let p = contec::Packet::RealTime(contec::RealTime { status: 6, pleth: 50, bar: 5, pulse_rate: 140, spo2: 96, pi: 250 });
                    if master.write_all(&p.encode()).await.is_err() { break; }
                    sent += 1;
                }
            }
        }
    }
    sent
}

#[tokio::test]
async fn the_contec_keep_alive_keeps_data_flowing() {
    let d = dir();
    let port = FakePort::new(d.join("contec"));
    let (mut rx, _h, cancel) = start(spec(Format::Contec, port.link.clone()));
    expect(&mut rx, Duration::from_secs(5), connected).await;
    // The device gives up after 7 s without a keep-alive; the driver sends one every 5 s.
    let device = tokio::spawn(fake_contec(
        port.master,
        Duration::from_secs(7),
        Duration::from_secs(12),
    ));
    let mut last_reading = Instant::now();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(11) {
        if let Ok(Some(e)) = timeout(Duration::from_millis(500), rx.recv()).await {
            if let DriverEventKind::Readings(rs) = &e.kind {
                // Pulse rate 140 survives the high-byte restoration end to end.
                assert!(rs
                    .iter()
                    .any(|r| r.vital == Vital::PulseRate && r.value.number() == Some(140.0)));
                last_reading = Instant::now();
            }
        }
        assert!(
            last_reading.elapsed() < Duration::from_secs(2),
            "data stopped at {:?}",
            started.elapsed()
        );
    }
    cancel.cancel();
    assert!(device.await.unwrap() > 80);
}

#[tokio::test]
async fn without_keep_alive_the_simulated_contec_goes_silent() {
    // The same fake device, driven by a host that sends only the start command.
    let d = dir();
    let port = FakePort::new(d.join("contec-raw"));
    let mut host = vigil_drivers::serial::open_path(&port.link, contec::LINE).unwrap();
    let device = tokio::spawn(fake_contec(
        port.master,
        Duration::from_secs(2),
        Duration::from_secs(4),
    ));
    host.write_all(&contec::Command::StartRealTime.encode())
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut last_data = Instant::now();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        if let Ok(Ok(n)) = timeout(Duration::from_millis(200), host.read(&mut buf)).await {
            if n > 0 {
                last_data = Instant::now();
            }
        }
    }
    assert!(
        last_data.duration_since(started) < Duration::from_millis(2500),
        "kept streaming without keep-alive"
    );
    assert!(
        device.await.unwrap() > 5,
        "it streamed after the start command"
    );
}

#[tokio::test]
async fn nibp_start_is_refused_by_formats_that_cannot_do_it() {
    let d = dir();
    let port = FakePort::new(d.join("masimo-nibp"));
    let (mut rx, handle, cancel) = start(spec(Format::Masimo, port.link.clone()));
    expect(&mut rx, Duration::from_secs(5), connected).await;
    assert_eq!(
        handle.start_nibp().await,
        Err(vigil_drivers::CommandError::NotSupported)
    );
    cancel.cancel();
}

/// Reads host commands from the device side of a SunTech port until `want` has arrived.
async fn suntech_hears(master: &mut SerialStream, want: suntech::Command) {
    let mut commands = Deframer::new(suntech::CommandDecoder);
    let mut buf = [0u8; 256];
    loop {
        let n = timeout(Duration::from_secs(5), master.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("the module never heard {want:?}"))
            .unwrap();
        commands.push(&buf[..n]);
        while let Some(frame) = commands.next_frame() {
            if frame == Ok(want) {
                return;
            }
        }
    }
}

#[tokio::test]
async fn suntech_start_fetch_and_cancel_go_through_the_pump() {
    let d = dir();
    let mut port = FakePort::new(d.join("suntech"));
    let (mut rx, handle, cancel) = start(spec(Format::Suntech, port.link.clone()));
    expect(&mut rx, Duration::from_secs(5), connected).await;
    use vigil_drivers::CommandError;
    assert_eq!(handle.cancel_nibp().await, Err(CommandError::NotRunning));
    assert_eq!(handle.start_nibp().await, Ok(()));
    suntech_hears(&mut port.master, suntech::Command::StartMeasurement).await;
    assert_eq!(handle.start_nibp().await, Err(CommandError::Busy));
    // The module polls its way through; `K` makes the driver fetch the record.
    suntech_hears(&mut port.master, suntech::Command::GetCuffPressure).await;
    let done = suntech::Response::Status(suntech::STATUS_COMPLETE).encode();
    port.master.write_all(&done).await.unwrap();
    suntech_hears(&mut port.master, suntech::Command::GetBpData).await;
    // A new cycle, cancelled: the module hears the abort, and nothing runs afterwards.
    assert_eq!(handle.start_nibp().await, Ok(()));
    assert_eq!(handle.cancel_nibp().await, Ok(()));
    suntech_hears(&mut port.master, suntech::Command::AbortMeasurement).await;
    assert_eq!(handle.cancel_nibp().await, Err(CommandError::NotRunning));
    cancel.cancel();
}

#[tokio::test]
async fn nibp_cancel_is_refused_by_formats_that_cannot_do_it() {
    let d = dir();
    let port = FakePort::new(d.join("masimo-cancel"));
    let (mut rx, handle, cancel) = start(spec(Format::Masimo, port.link.clone()));
    expect(&mut rx, Duration::from_secs(5), connected).await;
    assert_eq!(
        handle.cancel_nibp().await,
        Err(vigil_drivers::CommandError::CancelNotSupported)
    );
    cancel.cancel();
}
