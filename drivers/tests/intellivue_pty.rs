//! The serial pump driving an IntelliVue session over a real pseudo-terminal: the test plays the
//! monitor (association, MDS create, poll replies, release).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::expect;

use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_serial::{SerialPort, SerialStream};
use vigil_drivers::ble::memory::MemoryCentral;
use vigil_drivers::{DeviceSpec, DriverEventKind, Link, PortSelector, SerialSpec, Transport};
use vigil_protocol::intellivue::frame::{encode, FrameReader};
use vigil_protocol::intellivue::message::{mds_create_event, spdu, PollReply, RELEASE_RESULT};
use vigil_protocol::intellivue::numeric::{physio, unit, NuObsValue};
use vigil_protocol::intellivue::Message;
use vigil_protocol::stream::Deframer;
use vigil_protocol::{Format, Vital};

/// The monitor's end of a pseudo-terminal, and the stable path the driver opens.
fn pty(name: &str) -> (SerialStream, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "vigil-ivue-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (master, slave) = SerialStream::pair().expect("a pseudo-terminal pair");
    let link = dir.join(name);
    symlink(slave.name().expect("the slave has a path"), &link).unwrap();
    drop(slave);
    (master, link)
}

fn start(link: PathBuf) -> common::Started {
    let format = Format::Intellivue;
    common::spawn(
        DeviceSpec {
            id: "monitor-1".into(),
            format,
            transport: Transport::Serial(SerialSpec {
                port: PortSelector::Path(link),
                line: format.line_settings().unwrap(),
            }),
        },
        MemoryCentral::new(),
    )
}

fn numeric(
    physio_id: u16,
    unit_code: u16,
    value: u32,
) -> (NuObsValue, Option<vigil_protocol::DeviceTime>) {
    let nu = NuObsValue {
        physio_id,
        state: 0,
        unit_code,
        value,
    };
    (nu, None)
}

/// A monitor that refuses the first `refusals` association requests and accepts the next,
/// answers every extended poll with SpO2 96 and pulse 71, and reports each message it hears.
async fn monitor(mut port: SerialStream, refusals: usize, heard: mpsc::UnboundedSender<Message>) {
    let mut frames = Deframer::new(FrameReader);
    let mut buf = [0u8; 1024];
    let mut refused = 0;
    loop {
        let Ok(n) = port.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        frames.push(&buf[..n]);
        while let Some(frame) = frames.next_frame() {
            let Ok(message) = frame.and_then(|data| Message::decode(&data)) else {
                continue;
            };
            let answer: Vec<Vec<u8>> = match &message {
                Message::AssociationRequest if refused < refusals => {
                    refused += 1;
                    vec![vec![spdu::RF, 0x00]]
                }
                Message::AssociationRequest => {
                    vec![vec![spdu::AC, 0x00], mds_create_event(1, None)]
                }
                Message::PollRequest {
                    invoke_id,
                    extended: true,
                    ..
                } => vec![PollReply {
                    invoke_id: *invoke_id,
                    time: None,
                    numerics: vec![
                        numeric(physio::PULS_OXIM_SAT_O2, unit::PERCENT, 96),
                        numeric(physio::PLETH_PULS_RATE, unit::BEAT_PER_MIN, 71),
                    ],
                }
                .encode()],
                Message::ReleaseRequest => vec![RELEASE_RESULT.to_vec()],
                _ => vec![],
            };
            let _ = heard.send(message);
            for user_data in answer {
                if port.write_all(&encode(&user_data)).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn spo2_of(kind: &DriverEventKind) -> Option<f64> {
    match kind {
        DriverEventKind::Readings(rs) => rs.iter().find(|r| r.vital == Vital::Spo2)?.value.number(),
        _ => None,
    }
}

/// Waits until the monitor has heard a message `want` accepts.
async fn monitor_hears(heard: &mut mpsc::UnboundedReceiver<Message>, want: fn(&Message) -> bool) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(m) = heard.recv().await {
            if want(&m) {
                return;
            }
        }
        panic!("the monitor stopped");
    })
    .await
    .expect("the monitor heard it within 5 s");
}

#[tokio::test]
async fn the_pump_associates_polls_delivers_numerics_and_releases_on_shutdown() {
    let (master, link) = pty("intellivue");
    let (tx, mut heard) = mpsc::unbounded_channel();
    tokio::spawn(monitor(master, 0, tx));
    let (mut rx, handle, cancel) = start(link);
    assert_eq!(expect(&mut rx, Duration::from_secs(5), spo2_of).await, 96.0);
    monitor_hears(&mut heard, |m| {
        matches!(m, Message::MdsCreateResult { invoke_id: 1 })
    })
    .await;
    // Read-only: the cuff cannot be started from Vigil.
    assert_eq!(
        handle.start_nibp().await,
        Err(vigil_drivers::CommandError::NotSupported)
    );
    cancel.cancel();
    monitor_hears(&mut heard, |m| matches!(m, Message::ReleaseRequest)).await;
}

#[tokio::test]
async fn a_refusing_monitor_shows_disconnected_with_the_reason_until_numerics_flow() {
    let (master, link) = pty("intellivue-refuses");
    let (tx, _heard) = mpsc::unbounded_channel();
    tokio::spawn(monitor(master, 1, tx));
    let (mut rx, _handle, cancel) = start(link);
    let reason = expect(&mut rx, Duration::from_secs(5), |k| match k {
        DriverEventKind::Link(Link::Disconnected { reason }) => Some(reason.clone()),
        DriverEventKind::Readings(_) => panic!("readings before the refusal was shown"),
        _ => None,
    })
    .await;
    assert!(reason.contains("refused the association"), "{reason}");
    // The session retries after its backoff; the monitor accepts and the link comes back,
    // before the readings it carries.
    expect(&mut rx, Duration::from_secs(5), |k| match k {
        DriverEventKind::Link(Link::Connected) => Some(()),
        DriverEventKind::Readings(_) => panic!("readings while shown disconnected"),
        _ => None,
    })
    .await;
    assert_eq!(expect(&mut rx, Duration::from_secs(5), spo2_of).await, 96.0);
    cancel.cancel();
}
