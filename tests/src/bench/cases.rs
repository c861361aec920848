//! The single-site cases: one daemon per room with its own displays, against a bare WebSocket
//! relay of as many frames of the same size on the same schedule.

use crate::devices::{
    bench_room, device, expected_readings_per_display, sent_times, Kind, Sent, Sink, ROOM, TOKEN,
};
use crate::measure::{histogram, machine_cpu_seconds, rss_mb, thread_cpu_seconds};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use vigil_daemon::daemon::Daemon;

/// What one display received.
pub(crate) struct DisplayStats {
    pub(crate) latency: Mutex<Histogram<u64>>,
    pub(crate) readings: AtomicU64,
    /// Readings by device, in [`ROOM`] order.
    pub(crate) by_device: [AtomicU64; 4],
    /// Snapshots after the first: the display fell behind and was resynchronised.
    pub(crate) resyncs: AtomicU64,
}

/// The fields of a display message the bench looks at.
#[derive(serde::Deserialize)]
pub(crate) struct Received<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'a str,
    #[serde(borrow)]
    pub(crate) device: Option<&'a str>,
    #[serde(borrow)]
    pub(crate) vital: Option<&'a str>,
    pub(crate) value: Option<f64>,
}

/// Reads one display's stream until `stop`, timing and counting readings.
pub(crate) async fn display<S>(
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

/// A scale: rooms and displays per room.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    pub(crate) rooms: usize,
    pub(crate) displays: usize,
}

/// What one case measured.
pub(crate) struct Run {
    pub(crate) latency: Histogram<u64>,
    /// The daemons' own reading-to-frame latency (driver read to socket write).
    pub(crate) inside: Option<Histogram<u64>>,
    pub(crate) readings: u64,
    pub(crate) expected: u64,
    pub(crate) resyncs: u64,
    /// CPU seconds of the server (the daemons, or the relay) while the devices wrote, and the
    /// wall-clock seconds of that window.
    pub(crate) cpu_s: f64,
    pub(crate) wall_s: f64,
    /// CPU seconds of the whole machine in the same window (harness and kernel included).
    pub(crate) machine_s: f64,
    /// Readings the devices produced.
    pub(crate) produced: u64,
    pub(crate) rss_ready_mb: f64,
    pub(crate) rss_end_mb: f64,
}

/// The harness side of a case: displays connected to `urls` (per room), devices writing into
/// `sinks` (per room, in [`ROOM`] order) for `seconds`, and the server's CPU counted from the
/// threads named `server_threads`.
pub(crate) async fn drive(
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
pub(crate) async fn relay(server: &Handle, scale: Scale, seconds: u64, frame_len: usize) -> Run {
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

/// Vigil: one daemon per room on the `daemons` runtime, with the room's devices, `displays`
/// displays, and with `stalled`, one more display per room that connects and never reads (with
/// a small receive buffer, so that it stops taking data within seconds). With `resume`, room 0
/// resumes the session record at that path.
pub(crate) async fn vigil(
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
        let (config, room_sinks, ble) = bench_room(r, db);
        sinks.push(room_sinks);
        let config = config.build("bench.toml", &dir).unwrap();
        daemons.push(
            daemons_rt
                .spawn(Daemon::start(config, Arc::new(ble)))
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
    let ready = devices_connected(cores);
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

/// Waits until every device of every room (`cores`) is connected (at most 10 s per room).
pub(crate) async fn devices_connected(cores: Vec<vigil_daemon::core::CoreHandle>) {
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
}
