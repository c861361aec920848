//! `vigil-bench`: end-to-end latency, side by side with a bare WebSocket relay on the same
//! machine in the same run.
//!
//! - The floor: a bare tokio-tungstenite server relaying frames of the same size from one
//!   producer to the same number of clients.
//! - Vigil: Masimo lines written into pseudo-terminals (the device side), through the serial
//!   driver, decoder, alarm engine and hub, to the WebSocket frame each display receives. The
//!   perfusion index of each line carries a sequence number, so every delivery is timed from the
//!   write to the receive.
//!
//! - A stalled display: one more display per room that connects and never reads; the others'
//!   p99 with it against the run without it.
//! - Memory (the process's RSS) and CPU seconds per 1,000 readings.
//!
//! Run: `cargo run --release -p vigil-tests --bin vigil-bench -- [--rooms 1,64] [--seconds 10]
//! [--rate 10] [--stalled true|false]`. Writes a Markdown table to stdout and JSON to `target/bench/e2e.json`.

// A benchmark harness: a panic is the report. tungstenite's handshake callback must return its
// own (large) error response type.
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_serial::{SerialPort, SerialStream};
use tokio_tungstenite::tungstenite::Message;
use vigil_daemon::config::Config;
use vigil_daemon::daemon::Daemon;
use vigil_drivers::ble::memory::MemoryCentral;

/// Write time of each (room, device, sequence number).
type SentAt = Arc<Mutex<HashMap<(usize, usize, u64), Instant>>>;

const DEVICES_PER_ROOM: usize = 4;
const DISPLAYS_PER_ROOM: usize = 4;
const TOKEN: &str = "bench-token-0123456789";

struct Args {
    rooms: Vec<usize>,
    seconds: f64,
    rate: f64,
    stalled: bool,
}

fn args() -> Args {
    let mut a = Args {
        rooms: vec![1, 64],
        seconds: 10.0,
        rate: 10.0,
        stalled: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--rooms" => {
                a.rooms = value
                    .split(',')
                    .map(|r| r.parse().expect("--rooms 1,64"))
                    .collect()
            }
            "--seconds" => a.seconds = value.parse().expect("--seconds N"),
            "--rate" => a.rate = value.parse().expect("--rate HZ"),
            "--stalled" => a.stalled = value.parse().expect("--stalled true|false"),
            other => panic!("unknown flag {other}; use --rooms, --seconds, --rate, --stalled"),
        }
    }
    a
}

#[derive(Debug, serde::Serialize)]
struct Row {
    case: String,
    rooms: usize,
    clients: usize,
    deliveries: u64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
    cpu_s_per_1000_readings: Option<f64>,
    /// This row's p99 over the p99 of the row it is compared with (the relay floor, or Vigil
    /// without the stalled display).
    p99_ratio: Option<f64>,
    /// The bench process's resident memory after the daemons started and at the end of the
    /// case, in MB. It includes the harness and its clients, so it bounds the daemon's from
    /// above.
    rss_start_mb: Option<f64>,
    rss_end_mb: Option<f64>,
}

fn row(case: &str, rooms: usize, clients: usize, h: &Histogram<u64>, cpu: Option<f64>) -> Row {
    Row {
        case: case.into(),
        rooms,
        clients,
        p99_ratio: None,
        rss_start_mb: None,
        rss_end_mb: None,
        deliveries: h.len(),
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
        cpu_s_per_1000_readings: cpu,
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

/// CPU seconds this process has used (user + system).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
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

/// What one Vigil case measured.
struct VigilRun {
    latency: Histogram<u64>,
    readings: u64,
    cpu_s: f64,
    rss_start_mb: f64,
    rss_end_mb: f64,
}

/// Resident memory one room's full trend buffers take: a hub fed 2 h 10 min of 1 Hz readings
/// (the buffers' capacity) for the bench room's devices and vitals, in MB.
fn trend_memory_mb() -> f64 {
    use vigil_daemon::hub::{Hub, TREND_POINTS};
    use vigil_protocol::{Format, Reading, Unit, Vital};
    let devices: Vec<(String, Format)> = (0..DEVICES_PER_ROOM)
        .map(|d| (format!("ox-{d}"), Format::Masimo))
        .collect();
    let clock = vigil_daemon::clock::Clock::start();
    let start = clock.now();
    let before = rss_mb();
    let mut hub = Hub::new(&devices);
    for second in 0..TREND_POINTS as u64 {
        let at = start + Duration::from_secs(second);
        for (id, _) in &devices {
            for (vital, value, unit) in [
                (Vital::Spo2, 97.0, Unit::Percent),
                (Vital::PulseRate, 72.0, Unit::BeatsPerMinute),
                (Vital::PerfusionIndex, 2.5, Unit::Percent),
            ] {
                hub.record(&clock, id, &Reading::number(vital, value, unit), at);
            }
        }
    }
    let after = rss_mb();
    drop(hub);
    after - before
}

/// The floor: per room, a bare relay from that room's producers to that room's clients. Like
/// a device line in Vigil, each event is three frames of `size` bytes; the third is timed.
async fn relay(rooms: usize, rate: f64, seconds: f64, size: usize) -> Histogram<u64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let channels: Vec<broadcast::Sender<Arc<String>>> =
        (0..rooms).map(|_| broadcast::channel(65_536).0).collect();
    let server_channels = channels.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let channels = server_channels.clone();
            tokio::spawn(async move {
                let mut room = None;
                let callback =
                    |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                        room = req
                            .uri()
                            .path()
                            .trim_start_matches('/')
                            .parse::<usize>()
                            .ok();
                        Ok(resp)
                    };
                let mut ws = tokio_tungstenite::accept_hdr_async(tcp, callback)
                    .await
                    .unwrap();
                let mut rx = channels[room.unwrap_or(0)].subscribe();
                while let Ok(frame) = rx.recv().await {
                    if ws.send(Message::Text(frame.as_str().into())).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let hist = Arc::new(Mutex::new(histogram()));
    let mut readers = Vec::new();
    for room in 0..rooms {
        for _ in 0..DISPLAYS_PER_ROOM {
            let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/{room}"))
                .await
                .unwrap();
            let (sent, hist) = (sent.clone(), hist.clone());
            readers.push(tokio::spawn(async move {
                let (_, mut read) = ws.split();
                while let Some(Ok(Message::Text(t))) = read.next().await {
                    let seq: u64 = t[..t.find(' ').unwrap()].parse().unwrap();
                    if seq == u64::MAX {
                        return;
                    }
                    if !t.contains(" timed ") {
                        continue;
                    }
                    if let Some(at) = sent.lock().unwrap().get(&seq) {
                        hist.lock()
                            .unwrap()
                            .record(at.elapsed().as_micros().max(1) as u64)
                            .unwrap();
                    }
                }
            }));
        }
    }
    let padding = "x".repeat(size);
    let streams = rooms * DEVICES_PER_ROOM;
    let total = (rate * seconds) as u64 * streams as u64;
    // Producers spread evenly over each interval, as independent devices are.
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / (rate * streams as f64)));
    for seq in 0..total {
        tick.tick().await;
        let channel = &channels[(seq as usize % streams) / DEVICES_PER_ROOM];
        sent.lock().unwrap().insert(seq, Instant::now());
        for kind in ["untimed", "untimed", "timed"] {
            let _ = channel.send(Arc::new(format!("{seq} {kind} {padding}")));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for c in &channels {
        let _ = c.send(Arc::new(format!("{} end", u64::MAX)));
    }
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
    }
    Arc::try_unwrap(hist).ok().unwrap().into_inner().unwrap()
}

/// Vigil: `rooms` daemons, each with four Masimo oximeters on pseudo-terminals and four displays,
/// and with `stalled`, one more display per room that connects and never reads (with a small
/// receive buffer, so that it stops taking data within seconds).
async fn vigil(rooms: usize, rate: f64, seconds: f64, stalled: bool) -> VigilRun {
    let dir = std::env::temp_dir().join(format!("vigil-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut daemons = Vec::new();
    let mut ports = Vec::new();
    for r in 0..rooms {
        let mut config = format!(
            "listen = \"127.0.0.1:0\"\nroom = \"Bench {r}\"\n[storage]\npath = \"bench.db\"\n\
             [[user]]\nname = \"Bench\"\nrole = \"viewer\"\ntoken = \"{TOKEN}\"\n"
        );
        for d in 0..DEVICES_PER_ROOM {
            let (master, slave) = SerialStream::pair().unwrap();
            let path = slave.name().unwrap();
            drop(slave);
            config.push_str(&format!(
                "[[device]]\nid = \"ox-{d}\"\nformat = \"masimo\"\nport = \"{path}\"\n"
            ));
            ports.push((r, d, master));
        }
        let config = Config::parse(&config, "bench.toml", &dir).unwrap();
        daemons.push(
            Daemon::start(config, Arc::new(MemoryCentral::new()))
                .await
                .unwrap(),
        );
    }
    let rss_start_mb = rss_mb();
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
    // Each (room, device, sequence) write time; displays look their receipts up here.
    let sent: SentAt = Arc::default();
    let hist = Arc::new(Mutex::new(histogram()));
    let mut displays = Vec::new();
    for (r, daemon) in daemons.iter().enumerate() {
        for _ in 0..DISPLAYS_PER_ROOM {
            let url = format!("ws://{}/ws?token={TOKEN}", daemon.addr);
            let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            let (sent, hist) = (sent.clone(), hist.clone());
            displays.push(tokio::spawn(async move {
                let (_, mut read) = ws.split();
                while let Some(Ok(m)) = read.next().await {
                    let Message::Text(t) = m else { continue };
                    if !t.contains("\"perfusion_index\"") {
                        continue;
                    }
                    let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                    let device: usize = v["device"].as_str().unwrap()[3..].parse().unwrap();
                    let seq = (v["value"].as_f64().unwrap() * 100.0).round() as u64;
                    if let Some(at) = sent.lock().unwrap().get(&(r, device, seq)) {
                        hist.lock()
                            .unwrap()
                            .record(at.elapsed().as_micros().max(1) as u64)
                            .unwrap();
                    }
                }
            }));
        }
    }
    // Let the drivers open their ports.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cpu_before = cpu_seconds();
    let per_device = (rate * seconds) as u64;
    // Devices spread evenly over each interval, as independent devices are.
    let mut tick =
        tokio::time::interval(Duration::from_secs_f64(1.0 / (rate * ports.len() as f64)));
    for seq in 1..=per_device {
        for (r, d, master) in ports.iter_mut() {
            tick.tick().await;
            let line = format!(
                "11/23/26 10:00:00 SPO2=097% BPM=072 PI={:05.2}% ALARM=0000 EXC=000800\r\n",
                (seq % 9999 + 1) as f64 / 100.0
            );
            sent.lock()
                .unwrap()
                .insert((*r, *d, seq % 9999 + 1), Instant::now());
            master.write_all(line.as_bytes()).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let cpu = cpu_seconds() - cpu_before;
    let readings = per_device * (rooms * DEVICES_PER_ROOM) as u64 * 3;
    let rss_end_mb = rss_mb();
    drop(stalled_displays);
    for d in daemons {
        d.shutdown().await;
    }
    for t in displays {
        t.abort();
    }
    let _ = std::fs::remove_dir_all(&dir);
    let latency = hist.lock().unwrap().clone();
    VigilRun {
        latency,
        readings,
        cpu_s: cpu,
        rss_start_mb,
        rss_end_mb,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    // A reading frame as the daemon sends it, for a relay of the same size.
    let frame = r#"{"v":1,"type":"reading","seq":123456,"device":"ox-0","vital":"perfusion_index","value":12.34,"unit":"%","mdc":150448,"at":"2026-11-23T10:00:00.000Z","flags":[]}"#;
    // First, while the allocator holds no memory freed by other cases.
    let trend_mb = trend_memory_mb();
    let mut rows = Vec::new();
    let vigil_row = |case: &str, rooms: usize, clients: usize, run: &VigilRun, against: &Row| {
        let mut r = row(
            case,
            rooms,
            clients,
            &run.latency,
            Some(run.cpu_s / (run.readings as f64 / 1000.0)),
        );
        r.p99_ratio = Some(r.p99_us as f64 / against.p99_us.max(1) as f64);
        r.rss_start_mb = Some(run.rss_start_mb);
        r.rss_end_mb = Some(run.rss_end_mb);
        r
    };
    for &rooms in &a.rooms {
        let clients = rooms * DISPLAYS_PER_ROOM;
        let floor = row(
            "relay floor",
            rooms,
            clients,
            &relay(rooms, a.rate, a.seconds, frame.len()).await,
            None,
        );
        let run = vigil(rooms, a.rate, a.seconds, false).await;
        let plain = vigil_row("vigil end to end", rooms, clients, &run, &floor);
        rows.push(floor);
        if a.stalled {
            // The others' latency with one stalled display per room, against the same run
            // without it, back to back.
            let run = vigil(rooms, a.rate, a.seconds, true).await;
            let stalled = vigil_row(
                "vigil, 1 stalled display per room",
                rooms,
                clients,
                &run,
                &plain,
            );
            rows.push(plain);
            rows.push(stalled);
        } else {
            rows.push(plain);
        }
    }
    println!(
        "| case | rooms | displays | deliveries | p50 µs | p99 µs | p99.9 µs | max µs | p99 ratio | \
         CPU s per 1000 readings | RSS MB (start → end) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.case,
            r.rooms,
            r.clients,
            r.deliveries,
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.max_us,
            r.p99_ratio.map(|x| format!("{x:.2}")).unwrap_or_default(),
            r.cpu_s_per_1000_readings
                .map(|c| format!("{c:.4}"))
                .unwrap_or_default(),
            match (r.rss_start_mb, r.rss_end_mb) {
                (Some(a), Some(b)) => format!("{a:.1} → {b:.1}"),
                _ => String::new(),
            }
        );
    }
    println!(
        "\np99 ratio: Vigil over the relay floor; for the stalled case, over Vigil without it. \
         RSS is the whole bench process (harness and clients included)."
    );
    println!(
        "One room's trend buffers full (2 h 10 min at 1 Hz, {} series): +{trend_mb:.1} MB RSS.",
        DEVICES_PER_ROOM * 3
    );
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let report = serde_json::json!({
        "cases": rows,
        "one_room_full_trend_mb": trend_mb,
    });
    std::fs::write(
        out.join("e2e.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    eprintln!("wrote {}", out.join("e2e.json").display());
}
