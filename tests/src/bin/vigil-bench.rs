//! `vigil-bench`: end-to-end latency, scale, CPU and memory, side by side with a bare WebSocket
//! relay on the same machine in the same run.
//!
//! Every room has the devices of a KAP room, each at its own real rate:
//! - a Nonin oximeter, format #2, on a pseudo-terminal: 75 five-byte frames a second, a packet
//!   (pulse rate and SpO2) every 25 frames;
//! - a Contec CMS50D+ (protocol V7.0) on a pseudo-terminal: 60 real-time packets a second, each
//!   with SpO2, pulse rate and perfusion index;
//! - a Masimo Radical-7 on a pseudo-terminal: one ASCII line a second;
//! - a BLE heart-rate strap (the GATT Heart Rate Measurement, through the in-memory BLE
//!   transport): one notification a second.
//!
//! One value of each device's message carries a sequence number (the Nonin's and the strap's
//! pulse rate, the Contec's and the Masimo's perfusion index), so every delivery to every
//! display is timed from the device write to the WebSocket receive, and every reading is counted:
//! a reading a display did not get is reported as dropped.
//!
//! - The floor: a bare tokio-tungstenite server relaying, per room, the same number of frames of
//!   the same size, on the same schedule, to the same number of clients.
//! - Vigil: one daemon per room in this process, on its own runtime (threads named
//!   `vigil-daemon`, plus each room's `vigil-storage` writer), so its CPU is counted apart from
//!   the harness's.
//! - A stalled display: one more display per room that connects and never reads; the others'
//!   p99 with it against the run without it.
//! - Memory: the process's RSS with one room at start, after a 2 h session (the room resumes a
//!   session record holding 2 h 10 min of readings, so its trend buffers are full), and with a
//!   stalled display.
//!
//! Run: `cargo run --release -p vigil-tests --bin vigil-bench -- [--scales 1x4,64x4,256x2]
//! [--seconds 10] [--stalled true|false]`, where `RxD` is R rooms with D displays each. Writes a
//! Markdown table to stdout and JSON to `target/bench/e2e.json`.

// A benchmark harness: a panic is the report. tungstenite's handshake callback must return its
// own (large) error response type.
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::broadcast;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_serial::{SerialPort, SerialStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use vigil_daemon::config::{ConfigFile, DeviceEntry, Role, StorageFile, UserEntry};
use vigil_daemon::daemon::Daemon;
use vigil_drivers::ble::memory::{MemoryCentral, PeripheralSpec, SimPeripheral};
use vigil_drivers::ble::CharacteristicInfo;
use vigil_protocol::ble::uuid;
use vigil_protocol::serial::{contec, nonin};
use vigil_protocol::Format;

const TOKEN: &str = "bench-token-0123456789";

/// One device of a bench room: a format from the one list (`Format::ALL`) and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kind {
    format: Format,
    id: &'static str,
}

const ROOM: [Kind; 4] = [
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
    fn id(self) -> &'static str {
        self.id
    }

    fn from_id(id: &str) -> Option<usize> {
        ROOM.iter().position(|k| k.id() == id)
    }

    fn format(self) -> Format {
        self.format
    }

    /// Writes the device makes per second (frames, packets, lines, notifications).
    fn writes_per_second(self) -> u64 {
        match self.format {
            Format::Nonin2 => 75,
            Format::Contec => 60,
            _ => 1,
        }
    }

    /// Writes per message that yields readings (a Nonin packet is 25 frames).
    fn writes_per_message(self) -> u64 {
        match self.format {
            Format::Nonin2 => nonin::FRAMES_PER_PACKET as u64,
            _ => 1,
        }
    }

    /// Messages the device sends in `seconds`.
    fn messages_in(self, seconds: u64) -> u64 {
        seconds * self.writes_per_second() / self.writes_per_message()
    }

    /// Readings the device sends in `seconds`.
    fn readings_in(self, seconds: u64) -> u64 {
        self.messages_in(seconds) * self.readings_per_message()
    }

    /// Readings each message yields.
    fn readings_per_message(self) -> u64 {
        match self.format {
            Format::Nonin2 => 2,
            Format::Contec | Format::Masimo => 3,
            _ => 1,
        }
    }

    /// The vital whose value carries the message's sequence number, the other vitals of the
    /// message (for the relay's frames), and how many sequence numbers there are before they
    /// repeat.
    fn timed_vital(self) -> (&'static str, &'static [&'static str], u64) {
        match self.format {
            Format::Nonin2 => ("pulse_rate", &["spo2"], 60),
            Format::Contec => ("perfusion_index", &["spo2", "pulse_rate"], 2000),
            Format::Masimo => ("perfusion_index", &["spo2", "pulse_rate"], 9999),
            _ => ("heart_rate", &[], 60),
        }
    }

    /// The timed value of message `seq`.
    fn value(self, seq: u64) -> f64 {
        let slot = seq % self.timed_vital().2;
        match self.format {
            Format::Contec | Format::Masimo => (slot + 1) as f64 / 100.0,
            // Pulse rates 60-119: inside every alarm limit.
            _ => 60.0 + slot as f64,
        }
    }

    /// The sequence slot of a received timed value.
    fn slot(self, value: f64) -> u64 {
        match self.format {
            Format::Contec | Format::Masimo => (value * 100.0).round() as u64 - 1,
            _ => (value - 60.0).round() as u64,
        }
    }

    /// The bytes of write `n` (from 0) of message `seq`.
    fn bytes(self, seq: u64, n: u64) -> Vec<u8> {
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
struct SentTimes(Vec<AtomicU64>);

impl SentTimes {
    fn new(kind: Kind) -> SentTimes {
        SentTimes(
            (0..kind.timed_vital().2)
                .map(|_| AtomicU64::new(0))
                .collect(),
        )
    }
}

/// Per room and device: when its messages were written.
type Sent = Arc<Vec<Vec<SentTimes>>>;

fn sent_times(rooms: usize) -> Sent {
    Arc::new(
        (0..rooms)
            .map(|_| ROOM.iter().map(|k| SentTimes::new(*k)).collect())
            .collect(),
    )
}

/// What one display received.
struct DisplayStats {
    latency: Mutex<Histogram<u64>>,
    readings: AtomicU64,
    /// Readings by device, in [`ROOM`] order.
    by_device: [AtomicU64; 4],
    /// Snapshots after the first: the display fell behind and was resynchronised.
    resyncs: AtomicU64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

/// The fields of a display message the bench looks at.
#[derive(serde::Deserialize)]
struct Received<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(borrow)]
    device: Option<&'a str>,
    #[serde(borrow)]
    vital: Option<&'a str>,
    value: Option<f64>,
}

/// Reads one display's stream until `stop`, timing and counting readings.
async fn display<S>(
    mut read: S,
    room: usize,
    epoch: Instant,
    sent: Sent,
    stats: Arc<DisplayStats>,
    stop: CancellationToken,
) where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut snapshots = 0;
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            m = read.next() => m,
        };
        let Some(Ok(Message::Text(text))) = message else {
            return;
        };
        let Ok(m) = serde_json::from_str::<Received>(&text) else {
            continue;
        };
        match m.kind {
            "snapshot" => {
                snapshots += 1;
                if snapshots > 1 {
                    stats.resyncs.fetch_add(1, Ordering::Relaxed);
                }
            }
            "reading" => {
                stats.readings.fetch_add(1, Ordering::Relaxed);
                let Some(d) = m.device.and_then(Kind::from_id) else {
                    continue;
                };
                stats.by_device[d].fetch_add(1, Ordering::Relaxed);
                let (Some(vital), Some(value)) = (m.vital, m.value) else {
                    continue;
                };
                let kind = ROOM[d];
                if vital != kind.timed_vital().0 {
                    continue;
                }
                let slot = kind.slot(value) as usize;
                let at = sent[room][d].0[slot].load(Ordering::Acquire);
                if at > 0 {
                    let now = epoch.elapsed().as_nanos() as u64;
                    let micros = (now.saturating_sub(at) / 1000).max(1);
                    stats.latency.lock().unwrap().record(micros).unwrap();
                }
            }
            _ => {}
        }
    }
}

/// Where a device's writes go.
enum Sink {
    Pty(SerialStream),
    Ble(SimPeripheral),
    Relay(broadcast::Sender<Arc<str>>, String),
}

/// Writes one device's messages at its real rate for `seconds`, recording when each message's
/// last write went out. Returns the sink: closing a pseudo-terminal right after a write can lose
/// the write, so the caller keeps it open until the deliveries are in.
async fn device(
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

fn stamp(times: &Sent, room: usize, d: usize, kind: Kind, seq: u64, epoch: Instant) {
    let slot = (seq % kind.timed_vital().2) as usize;
    times[room][d].0[slot].store(epoch.elapsed().as_nanos() as u64 + 1, Ordering::Release);
}

/// Readings each display should receive from one room in `seconds`.
fn expected_readings_per_display(seconds: u64) -> u64 {
    ROOM.iter().map(|k| k.readings_in(seconds)).sum()
}

/// CPU seconds (user + system) of this process's threads whose names start with `prefix`.
fn thread_cpu_seconds(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ticks = 0.0;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        ticks += fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    }
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

/// CPU seconds the whole machine has been busy (every process and the kernel; not idle, not
/// waiting for I/O).
fn machine_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let idle = ticks.get(3).unwrap_or(&0.0) + ticks.get(4).unwrap_or(&0.0);
    (ticks.iter().sum::<f64>() - idle) / 100.0
}

/// This process's resident set size in MB.
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// A scale: rooms and displays per room.
#[derive(Debug, Clone, Copy)]
struct Scale {
    rooms: usize,
    displays: usize,
}

/// What one case measured.
struct Run {
    latency: Histogram<u64>,
    /// The daemons' own reading-to-frame latency (driver read to socket write).
    inside: Option<Histogram<u64>>,
    readings: u64,
    expected: u64,
    resyncs: u64,
    /// CPU seconds of the server (the daemons, or the relay) while the devices wrote, and the
    /// wall-clock seconds of that window.
    cpu_s: f64,
    wall_s: f64,
    /// CPU seconds of the whole machine in the same window (harness and kernel included).
    machine_s: f64,
    /// Readings the devices produced.
    produced: u64,
    rss_ready_mb: f64,
    rss_end_mb: f64,
}

/// The harness side of a case: displays connected to `urls` (per room), devices writing into
/// `sinks` (per room, in [`ROOM`] order) for `seconds`, and the server's CPU counted from the
/// threads named `server_threads`.
async fn drive(
    urls: Vec<Vec<String>>,
    sinks: Vec<Vec<Sink>>,
    seconds: u64,
    server_threads: &str,
    ready: impl std::future::Future<Output = ()>,
) -> Run {
    let rooms = sinks.len();
    let epoch = Instant::now();
    let sent = sent_times(rooms);
    let stop = CancellationToken::new();
    let mut stats = Vec::new();
    let mut readers = Vec::new();
    for (room, urls) in urls.into_iter().enumerate() {
        for url in urls {
            // A small read buffer: tungstenite zero-fills its buffer (128 KiB by default) on
            // every read, which would make the harness, not the server, the bottleneck.
            let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                .read_buffer_size(4096);
            let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), false)
                .await
                .unwrap();
            let s = Arc::new(DisplayStats {
                latency: Mutex::new(histogram()),
                readings: AtomicU64::new(0),
                by_device: Default::default(),
                resyncs: AtomicU64::new(0),
            });
            stats.push(s.clone());
            let (_, read) = ws.split();
            readers.push(tokio::spawn(display(
                read,
                room,
                epoch,
                sent.clone(),
                s,
                stop.clone(),
            )));
        }
    }
    ready.await;
    let rss_ready_mb = rss_mb();
    let cpu_before = thread_cpu_seconds(server_threads);
    let machine_before = machine_cpu_seconds();
    let started = Instant::now();
    let start = started + Duration::from_millis(100);
    let mut devices = Vec::new();
    for (room, sinks) in sinks.into_iter().enumerate() {
        for (d, sink) in sinks.into_iter().enumerate() {
            // Devices are independent: spread their phases over a second.
            let phase = Duration::from_micros(((room * ROOM.len() + d) * 7919 % 1_000_000) as u64);
            devices.push(tokio::spawn(device(
                ROOM[d],
                sink,
                seconds,
                start + phase,
                sent.clone(),
                (room, d),
                epoch,
            )));
        }
    }
    let mut sinks = Vec::new();
    for d in devices {
        sinks.push(d.await.unwrap());
    }
    // Let the last deliveries arrive.
    let expected = expected_readings_per_display(seconds) * stats.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && stats
            .iter()
            .map(|s| s.readings.load(Ordering::Relaxed))
            .sum::<u64>()
            < expected
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu_s = thread_cpu_seconds(server_threads) - cpu_before;
    let machine_s = machine_cpu_seconds() - machine_before;
    let wall_s = started.elapsed().as_secs_f64();
    let rss_end_mb = rss_mb();
    drop(sinks);
    stop.cancel();
    for r in readers {
        let _ = r.await;
    }
    for (d, kind) in ROOM.iter().enumerate() {
        let got: u64 = stats
            .iter()
            .map(|s| s.by_device[d].load(Ordering::Relaxed))
            .sum();
        let want = kind.readings_in(seconds) * stats.len() as u64;
        if got != want {
            eprintln!("{}: {got} readings delivered, {want} expected", kind.id());
        }
    }
    let mut latency = histogram();
    for s in &stats {
        latency.add(&*s.latency.lock().unwrap()).unwrap();
    }
    Run {
        latency,
        inside: None,
        readings: stats
            .iter()
            .map(|s| s.readings.load(Ordering::Relaxed))
            .sum(),
        expected,
        resyncs: stats
            .iter()
            .map(|s| s.resyncs.load(Ordering::Relaxed))
            .sum(),
        cpu_s,
        wall_s,
        machine_s,
        produced: expected_readings_per_display(seconds) * rooms as u64,
        rss_ready_mb,
        rss_end_mb,
    }
}

/// The floor: per room, a bare relay from that room's devices to that room's clients, on its
/// own runtime (threads named `relay-server`).
async fn relay(server: &Handle, scale: Scale, seconds: u64, frame_len: usize) -> Run {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let channels: Vec<broadcast::Sender<Arc<str>>> = (0..scale.rooms)
        .map(|_| broadcast::channel(1024).0)
        .collect();
    let server_channels = channels.clone();
    let accept = server.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let channels = server_channels.clone();
            tokio::spawn(async move {
                let mut room = 0;
                let callback =
                    |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                        room = req.uri().path()[1..].parse().unwrap();
                        Ok(resp)
                    };
                let mut ws = tokio_tungstenite::accept_hdr_async(tcp, callback)
                    .await
                    .unwrap();
                let mut rx = channels[room].subscribe();
                while let Ok(frame) = rx.recv().await {
                    if ws.send(Message::Text((&*frame).into())).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let urls = (0..scale.rooms)
        .map(|r| vec![format!("ws://{addr}/{r}"); scale.displays])
        .collect();
    // Padding so the relay's frames are as long as Vigil's reading messages.
    let padding = format!(r#""pad":"{}""#, "x".repeat(frame_len.saturating_sub(100)));
    let sinks = channels
        .iter()
        .map(|c| {
            ROOM.iter()
                .map(|_| Sink::Relay(c.clone(), padding.clone()))
                .collect()
        })
        .collect();
    let run = drive(urls, sinks, seconds, "relay-server", async {}).await;
    accept.abort();
    run
}

fn ch(uuid: u16) -> CharacteristicInfo {
    CharacteristicInfo {
        uuid,
        notify: true,
        indicate: false,
        read: false,
    }
}

/// Vigil: one daemon per room on the `daemons` runtime, with the room's devices, `displays`
/// displays, and with `stalled`, one more display per room that connects and never reads (with
/// a small receive buffer, so that it stops taking data within seconds). With `resume`, room 0
/// resumes the session record at that path.
async fn vigil(
    daemons_rt: &Handle,
    scale: Scale,
    seconds: u64,
    stalled: bool,
    resume: Option<&Path>,
) -> Run {
    static CASES: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vigil-bench-{}-{}",
        std::process::id(),
        CASES.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut daemons = Vec::new();
    let mut sinks = Vec::new();
    for r in 0..scale.rooms {
        let db = match resume {
            Some(path) if r == 0 => path.to_path_buf(),
            _ => dir.join(format!("room-{r}.db")),
        };
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
        let central = MemoryCentral::new();
        let mut room_sinks = Vec::new();
        for kind in ROOM {
            if kind.format.is_ble() {
                config.devices.push(DeviceEntry::ble_named(
                    kind.id(),
                    kind.format(),
                    "Bench strap",
                ));
                room_sinks.push(Sink::Ble(central.add(PeripheralSpec {
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
                room_sinks.push(Sink::Pty(master));
            }
        }
        sinks.push(room_sinks);
        let config = config.build("bench.toml", &dir).unwrap();
        let central = Arc::new(central);
        daemons.push(
            daemons_rt
                .spawn(Daemon::start(config, central))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let mut stalled_displays = Vec::new();
    if stalled {
        for daemon in &daemons {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let tcp = socket.connect(daemon.addr).await.unwrap();
            let url = format!("ws://{}/ws?token={TOKEN}", daemon.addr);
            let (ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
            stalled_displays.push(ws);
        }
    }
    let urls = daemons
        .iter()
        .map(|d| vec![format!("ws://{}/ws?token={TOKEN}", d.addr); scale.displays])
        .collect();
    let cores: Vec<_> = daemons.iter().map(|d| d.core()).collect();
    // Ready when every device of every room is connected.
    let ready = async move {
        let user = vigil_protocol::display::UserInfo {
            name: "Bench".into(),
            role: "viewer".into(),
        };
        for core in cores {
            for _ in 0..500 {
                let snapshot = core.snapshot(user.clone()).await.unwrap();
                if snapshot
                    .devices
                    .iter()
                    .all(|d| d.link == vigil_protocol::display::LinkState::Connected)
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let mut run = drive(urls, sinks, seconds, "vigil-", ready).await;
    let mut inside = histogram();
    for d in &daemons {
        inside.add(d.metrics.delivery_latency()).unwrap();
    }
    run.inside = Some(inside);
    drop(stalled_displays);
    for d in daemons {
        daemons_rt.spawn(d.shutdown()).await.unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
    run
}

/// A session record for room 0 of the bench that a crash left open after 2 h 10 min: every
/// vital of the room's devices once a second, so a daemon resuming it starts with full trends.
fn two_hour_session(path: &Path) {
    use vigil_daemon::storage;
    use vigil_protocol::{Reading, Unit, Vital};
    let (health, _health_rx) = tokio::sync::mpsc::unbounded_channel();
    let (record, writer) = storage::start(
        path.to_path_buf(),
        None,
        "Bench 0".into(),
        "{}".into(),
        health,
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let series = [
        ("nonin", Vital::Spo2, Unit::Percent),
        ("nonin", Vital::PulseRate, Unit::BeatsPerMinute),
        ("contec", Vital::Spo2, Unit::Percent),
        ("contec", Vital::PulseRate, Unit::BeatsPerMinute),
        ("contec", Vital::PerfusionIndex, Unit::Percent),
        ("masimo", Vital::Spo2, Unit::Percent),
        ("masimo", Vital::PulseRate, Unit::BeatsPerMinute),
        ("masimo", Vital::PerfusionIndex, Unit::Percent),
        ("hr-strap", Vital::HeartRate, Unit::BeatsPerMinute),
    ];
    let seconds = vigil_daemon::trend::TREND_POINTS as i64;
    for second in 0..seconds {
        let at_ms = now_ms - (seconds - second) * 1000;
        for (device, vital, unit) in series {
            let value = if unit == Unit::Percent { 97.0 } else { 72.0 };
            record.record(storage::Record::Reading {
                device: device.into(),
                reading: Box::new(Reading::number(vital, value, unit)),
                at: at_ms,
            });
        }
        if second % 1000 == 999 {
            // The queue is bounded: let the writer take what is queued.
            std::thread::sleep(storage::COMMIT_EVERY * 2);
        }
    }
    assert_eq!(record.dropped(), 0, "the session record did not keep up");
    drop(record);
    writer.join().unwrap();
}

#[derive(Debug, serde::Serialize)]
struct Row {
    case: String,
    rooms: usize,
    displays: usize,
    readings_delivered: u64,
    readings_dropped: u64,
    resyncs: u64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
    /// This row's p99 over the p99 of the row it is compared with (the relay floor, or Vigil
    /// without the stalled display).
    p99_ratio: Option<f64>,
    /// The daemons' own p99 from the driver's read to the frame's write (Vigil only): the rest
    /// of the end-to-end time is the pseudo-terminal, the loopback and the harness.
    daemon_p99_us: Option<u64>,
    /// The server's CPU seconds per 1,000 readings the devices produced, and its busy cores
    /// (CPU seconds over wall-clock seconds) while they wrote.
    cpu_s_per_1000_readings: f64,
    cores_busy: f64,
    /// The whole machine's busy cores in the same window: the harness, the kernel's
    /// pseudo-terminal and loopback work, everything.
    machine_cores_busy: f64,
    /// The bench process's resident memory at the end of the case (harness included).
    rss_mb: f64,
}

fn row(case: &str, scale: Scale, run: &Run, against: Option<&Row>) -> Row {
    let p99 = run.latency.value_at_quantile(0.99);
    Row {
        case: case.into(),
        rooms: scale.rooms,
        displays: scale.rooms * scale.displays,
        readings_delivered: run.readings,
        readings_dropped: run.expected.saturating_sub(run.readings),
        resyncs: run.resyncs,
        p50_us: run.latency.value_at_quantile(0.5),
        p99_us: p99,
        p999_us: run.latency.value_at_quantile(0.999),
        max_us: run.latency.max(),
        p99_ratio: against.map(|a| p99 as f64 / a.p99_us.max(1) as f64),
        daemon_p99_us: run.inside.as_ref().map(|h| h.value_at_quantile(0.99)),
        cpu_s_per_1000_readings: run.cpu_s / (run.produced as f64 / 1000.0),
        cores_busy: run.cpu_s / run.wall_s,
        machine_cores_busy: run.machine_s / run.wall_s,
        rss_mb: run.rss_end_mb,
    }
}

struct Args {
    scales: Vec<Scale>,
    seconds: u64,
    stalled: bool,
}

fn args() -> Args {
    let mut a = Args {
        scales: vec![
            Scale {
                rooms: 1,
                displays: 4,
            },
            Scale {
                rooms: 64,
                displays: 4,
            },
            Scale {
                rooms: 256,
                displays: 2,
            },
        ],
        seconds: 10,
        stalled: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--scales" => {
                a.scales = value
                    .split(',')
                    .map(|s| {
                        let (rooms, displays) = s.split_once('x').expect("--scales 1x4,64x4");
                        Scale {
                            rooms: rooms.parse().expect("rooms"),
                            displays: displays.parse().expect("displays per room"),
                        }
                    })
                    .collect()
            }
            "--seconds" => a.seconds = value.parse().expect("--seconds N"),
            "--stalled" => a.stalled = value.parse().expect("--stalled true|false"),
            other => panic!("unknown flag {other}; use --scales, --seconds, --stalled"),
        }
    }
    a
}

fn runtime(threads: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(threads)
        .enable_all()
        .build()
        .unwrap()
}

fn main() {
    // The 2 h session record is written by a child process, so that its allocations do not
    // count in the memory this process reports.
    let mut argv = std::env::args().skip(1);
    if argv.next().as_deref() == Some("--write-two-hour-session") {
        two_hour_session(Path::new(&argv.next().expect("a path")));
        return;
    }
    let a = args();
    // The machine's cores, as `vigil run` would use them; the harness has its own.
    let daemons = runtime("vigil-daemon");
    let relay_server = runtime("relay-server");
    let harness = runtime("bench-harness");
    let (rows, memory) = harness.block_on(bench(&a, daemons.handle(), relay_server.handle()));
    report(&rows, &memory);
    daemons.shutdown_background();
    relay_server.shutdown_background();
}

#[derive(Debug, serde::Serialize)]
struct Memory {
    /// One room, four displays, devices streaming.
    start_mb: f64,
    /// The same room resumed from a 2 h 10 min session record: trend buffers full.
    after_2h_session_mb: f64,
    /// Then with a stalled display, after it stopped reading.
    with_stalled_display_mb: f64,
}

async fn bench(a: &Args, daemons: &Handle, relay_server: &Handle) -> (Vec<Row>, Memory) {
    let one_room = Scale {
        rooms: 1,
        displays: 4,
    };
    // Memory first, while the allocator holds nothing freed by other cases.
    let start = vigil(daemons, one_room, 3, false, None).await;
    let record: PathBuf =
        std::env::temp_dir().join(format!("vigil-bench-2h-{}.db", std::process::id()));
    let written = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--write-two-hour-session")
        .arg(&record)
        .status()
        .unwrap();
    assert!(written.success(), "writing the 2 h session record failed");
    let resumed = vigil(daemons, one_room, a.seconds, true, Some(&record)).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", record.display()));
    }
    let memory = Memory {
        start_mb: start.rss_end_mb,
        after_2h_session_mb: resumed.rss_ready_mb,
        with_stalled_display_mb: resumed.rss_end_mb,
    };

    // A reading message as the daemon sends it, for relay frames of the same size.
    let frame_len = r#"{"v":1,"type":"reading","seq":123456,"device":"contec","vital":"perfusion_index","value":12.34,"unit":"%","mdc":150448,"at":"2026-11-23T10:00:00.000Z","flags":[]}"#.len();
    let mut rows = Vec::new();
    for &scale in &a.scales {
        let floor = row(
            "relay floor",
            scale,
            &relay(relay_server, scale, a.seconds, frame_len).await,
            None,
        );
        let plain = row(
            "vigil end to end",
            scale,
            &vigil(daemons, scale, a.seconds, false, None).await,
            Some(&floor),
        );
        // The others' latency with one stalled display per room, against the same run without
        // it, back to back.
        let stalled = if a.stalled {
            let run = vigil(daemons, scale, a.seconds, true, None).await;
            Some(row(
                "vigil, 1 stalled display per room",
                scale,
                &run,
                Some(&plain),
            ))
        } else {
            None
        };
        rows.push(floor);
        rows.push(plain);
        rows.extend(stalled);
    }
    (rows, memory)
}

fn report(rows: &[Row], memory: &Memory) {
    println!(
        "| case | rooms | displays | readings delivered | dropped | resyncs | p50 µs | p99 µs | \
         p99.9 µs | max µs | p99 ratio | daemon p99 µs | server CPU s per 1000 readings | server cores busy | machine cores busy | RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.4} | {:.2} | {:.2} | {:.1} |",
            r.case,
            r.rooms,
            r.displays,
            r.readings_delivered,
            r.readings_dropped,
            r.resyncs,
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.max_us,
            r.p99_ratio.map(|x| format!("{x:.2}")).unwrap_or_default(),
            r.daemon_p99_us.map(|x| x.to_string()).unwrap_or_default(),
            r.cpu_s_per_1000_readings,
            r.cores_busy,
            r.machine_cores_busy,
            r.rss_mb,
        );
    }
    println!(
        "\np99 ratio: Vigil over the relay floor; for the stalled case, over Vigil without it. \
         Server CPU: the relay's threads, or the daemons' (runtime and session-record writers). \
         RSS: the whole bench process, harness and clients included."
    );
    println!(
        "\nMemory, one room (whole process): {:.1} MB at start; {:.1} MB after a 2 h session \
         (trend buffers full); {:.1} MB with a stalled display.",
        memory.start_mb, memory.after_2h_session_mb, memory.with_stalled_display_mb
    );
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let json = serde_json::json!({ "cases": rows, "memory_one_room": memory });
    std::fs::write(
        out.join("e2e.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
    eprintln!("wrote {}", out.join("e2e.json").display());
}
