//! The bench's rooms: the four devices of a KAP room at their real rates, the bytes they write,
//! when each message went out, and a room daemon's configuration with them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_serial::{SerialPort, SerialStream};
use vigil_daemon::config::{ConfigFile, DeviceEntry, Role, StorageFile, UserEntry};
use vigil_drivers::ble::memory::{MemoryCentral, PeripheralSpec, SimPeripheral};
use vigil_drivers::ble::CharacteristicInfo;
use vigil_protocol::ble::uuid;
use vigil_protocol::serial::{contec, nonin};
use vigil_protocol::Format;

pub(crate) const TOKEN: &str = "bench-token-0123456789";

/// One device of a bench room: a format from the one list (`Format::ALL`) and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kind {
    pub(crate) format: Format,
    pub(crate) id: &'static str,
}

pub(crate) const ROOM: [Kind; 4] = [
    Kind {
        format: Format::Nonin2,
        id: "nonin",
    },
    Kind {
        format: Format::Contec,
        id: "contec",
    },
    Kind {
        format: Format::Masimo,
        id: "masimo",
    },
    Kind {
        format: Format::BleHeartRate,
        id: "hr-strap",
    },
];

impl Kind {
    pub(crate) fn id(self) -> &'static str {
        self.id
    }

    pub(crate) fn from_id(id: &str) -> Option<usize> {
        ROOM.iter().position(|k| k.id() == id)
    }

    pub(crate) fn format(self) -> Format {
        self.format
    }

    /// Writes the device makes per second (frames, packets, lines, notifications).
    pub(crate) fn writes_per_second(self) -> u64 {
        match self.format {
            Format::Nonin2 => 75,
            Format::Contec => 60,
            _ => 1,
        }
    }

    /// Writes per message that yields readings (a Nonin packet is 25 frames).
    pub(crate) fn writes_per_message(self) -> u64 {
        match self.format {
            Format::Nonin2 => nonin::FRAMES_PER_PACKET as u64,
            _ => 1,
        }
    }

    /// Messages the device sends in `seconds`.
    pub(crate) fn messages_in(self, seconds: u64) -> u64 {
        seconds * self.writes_per_second() / self.writes_per_message()
    }

    /// Readings the device sends in `seconds`.
    pub(crate) fn readings_in(self, seconds: u64) -> u64 {
        self.messages_in(seconds) * self.readings_per_message()
    }

    /// Readings each message yields.
    pub(crate) fn readings_per_message(self) -> u64 {
        match self.format {
            Format::Nonin2 => 2,
            Format::Contec | Format::Masimo => 3,
            _ => 1,
        }
    }

    /// The vital whose value carries the message's sequence number, the other vitals of the
    /// message (for the relay's frames), and how many sequence numbers there are before they
    /// repeat.
    pub(crate) fn timed_vital(self) -> (&'static str, &'static [&'static str], u64) {
        match self.format {
            Format::Nonin2 => ("pulse_rate", &["spo2"], 60),
            Format::Contec => ("perfusion_index", &["spo2", "pulse_rate"], 2000),
            Format::Masimo => ("perfusion_index", &["spo2", "pulse_rate"], 9999),
            _ => ("heart_rate", &[], 60),
        }
    }

    /// The timed value of message `seq`.
    pub(crate) fn value(self, seq: u64) -> f64 {
        let slot = seq % self.timed_vital().2;
        match self.format {
            Format::Contec | Format::Masimo => (slot + 1) as f64 / 100.0,
            // Pulse rates 60-119: inside every alarm limit.
            _ => 60.0 + slot as f64,
        }
    }

    /// The sequence slot of a received timed value.
    pub(crate) fn slot(self, value: f64) -> u64 {
        match self.format {
            Format::Contec | Format::Masimo => (value * 100.0).round() as u64 - 1,
            _ => (value - 60.0).round() as u64,
        }
    }

    /// The bytes of write `n` (from 0) of message `seq`.
    pub(crate) fn bytes(self, seq: u64, n: u64) -> Vec<u8> {
        let value = self.value(seq);
        match self.format {
            Format::Nonin2 => {
                let packet = nonin::Packet {
                    status: 0x02,
                    heart_rate: value as u16,
                    spo2: 97,
                    firmware: 48,
                    stat2: 0,
                };
                let frames = packet.encode(nonin::NoninFormat::Two, &[64; 25]);
                frames[n as usize * 5..n as usize * 5 + 5].to_vec()
            }
            Format::Contec => contec::Packet::RealTime(contec::RealTime {
                status: 0x06,
                pleth: 64,
                bar: 7,
                pulse_rate: 72,
                spo2: 97,
                pi: (value * 100.0).round() as u16,
            })
            .encode(),
            Format::Masimo => format!(
                "11/23/26 10:00:00 SPO2=097% BPM=072 PI={value:05.2}% ALARM=0000 EXC=000000\r\n"
            )
            .into_bytes(),
            // The strap: a BLE Heart Rate Measurement (flags 0, 8-bit rate).
            _ => vec![0x00, value as u8],
        }
    }
}

/// When each message of one device was written, by sequence slot, as nanoseconds since the
/// bench started (0: never).
pub(crate) struct SentTimes(pub(crate) Vec<AtomicU64>);

impl SentTimes {
    pub(crate) fn new(kind: Kind) -> SentTimes {
        SentTimes(
            (0..kind.timed_vital().2)
                .map(|_| AtomicU64::new(0))
                .collect(),
        )
    }
}

/// Per room and device: when its messages were written.
pub(crate) type Sent = Arc<Vec<Vec<SentTimes>>>;

pub(crate) fn sent_times(rooms: usize) -> Sent {
    Arc::new(
        (0..rooms)
            .map(|_| ROOM.iter().map(|k| SentTimes::new(*k)).collect())
            .collect(),
    )
}

/// Where a device's writes go.
pub(crate) enum Sink {
    Pty(SerialStream),
    Ble(SimPeripheral),
    Relay(broadcast::Sender<Arc<str>>, String),
}

/// Writes one device's messages at its real rate for `seconds`, recording when each message's
/// last write went out. Returns the sink: closing a pseudo-terminal right after a write can lose
/// the write, so the caller keeps it open until the deliveries are in.
pub(crate) async fn device(
    kind: Kind,
    mut sink: Sink,
    seconds: u64,
    start: Instant,
    times: Arc<Vec<Vec<SentTimes>>>,
    (room, d): (usize, usize),
    epoch: Instant,
) -> Sink {
    let period = Duration::from_secs_f64(1.0 / kind.writes_per_second() as f64);
    let mut tick = tokio::time::interval_at(start, period);
    // Catch up after a late tick, as the device's own clock would.
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    for seq in 0..kind.messages_in(seconds) {
        for n in 0..kind.writes_per_message() {
            tick.tick().await;
            let last = n + 1 == kind.writes_per_message();
            match &mut sink {
                Sink::Pty(port) => {
                    let bytes = kind.bytes(seq, n);
                    if last {
                        stamp(&times, room, d, kind, seq, epoch);
                    }
                    port.write_all(&bytes).await.unwrap();
                }
                Sink::Ble(peripheral) => {
                    let bytes = kind.bytes(seq, n);
                    stamp(&times, room, d, kind, seq, epoch);
                    assert!(peripheral.notify(uuid::HEART_RATE_MEASUREMENT, &bytes));
                }
                Sink::Relay(channel, padding) => {
                    if !last {
                        continue;
                    }
                    // As many frames as the message has readings, the same size as Vigil's; the
                    // last carries the timed value.
                    let (timed, others, _) = kind.timed_vital();
                    stamp(&times, room, d, kind, seq, epoch);
                    for vital in others.iter().chain([&timed]) {
                        let value = if *vital == timed {
                            kind.value(seq)
                        } else {
                            97.0
                        };
                        let _ = channel.send(
                            format!(
                                r#"{{"v":1,"type":"reading","seq":{seq},"device":"{}","vital":"{vital}","value":{value},{padding}}}"#,
                                kind.id()
                            )
                            .into(),
                        );
                    }
                }
            }
        }
    }
    sink
}

pub(crate) fn stamp(times: &Sent, room: usize, d: usize, kind: Kind, seq: u64, epoch: Instant) {
    let slot = (seq % kind.timed_vital().2) as usize;
    times[room][d].0[slot].store(epoch.elapsed().as_nanos() as u64 + 1, Ordering::Release);
}

/// Readings each display should receive from one room in `seconds`.
pub(crate) fn expected_readings_per_display(seconds: u64) -> u64 {
    ROOM.iter().map(|k| k.readings_in(seconds)).sum()
}

fn ch(uuid: u16) -> CharacteristicInfo {
    CharacteristicInfo {
        uuid,
        notify: true,
        indicate: false,
        read: false,
    }
}

/// Room `r` of the bench, recording to `db`: its configuration (a display server on a free
/// loopback port, the bench's viewer token, the four devices of [`ROOM`]), the sinks its
/// devices' bytes are written into (in [`ROOM`] order), and the in-memory BLE transport its
/// strap is found on.
pub(crate) fn bench_room(r: usize, db: PathBuf) -> (ConfigFile, Vec<Sink>, MemoryCentral) {
    let mut config = ConfigFile {
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        room: format!("Bench {r}"),
        storage: Some(StorageFile {
            path: db,
            retention_days: None,
        }),
        users: vec![UserEntry {
            name: "Bench".into(),
            role: Role::Viewer,
            token: TOKEN.into(),
        }],
        ..ConfigFile::default()
    };
    let ble = MemoryCentral::new();
    let mut sinks = Vec::new();
    for kind in ROOM {
        if kind.format.is_ble() {
            config.devices.push(DeviceEntry::ble_named(
                kind.id(),
                kind.format(),
                "Bench strap",
            ));
            sinks.push(Sink::Ble(ble.add(PeripheralSpec {
                address: format!("C0:FF:EE:00:{:02X}:{:02X}", r / 256, r % 256),
                name: "Bench strap".into(),
                services: vec![uuid::HEART_RATE_SERVICE],
                characteristics: vec![ch(uuid::HEART_RATE_MEASUREMENT)],
                readable: Default::default(),
            })));
        } else {
            let (master, slave) = SerialStream::pair().unwrap();
            config.devices.push(DeviceEntry::serial(
                kind.id(),
                kind.format(),
                slave.name().unwrap(),
            ));
            drop(slave);
            sinks.push(Sink::Pty(master));
        }
    }
    (config, sinks, ble)
}
