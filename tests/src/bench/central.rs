//! `vigil-bench --central`: rooms at real device rates through one `nats-server` into one
//! `vigil central` process with its displays, against a bare NATS publish-subscribe relay of the
//! same messages in the same run.
//!
//! - The rooms are real room daemons (`Daemon::start`, as `vigil run` starts them) in this
//!   process, on the `vigil-daemon` runtime, each with `[central]`: their devices write real
//!   bytes into pseudo-terminals (and the in-memory BLE transport), which the real decoders,
//!   core, session record and publisher handle. Only the devices and the BLE radio are stand-ins.
//! - The central is the `vigil central` binary in its own process, reading the site's stream from
//!   a `nats-server -js`, with `--displays` WebSocket displays (clients in this process).
//! - A tap (a plain NATS subscriber on `vigil.<site>.>`) sees each message as the rooms publish
//!   it: it counts what was sent per room, notes when, and republishes it unchanged to a second,
//!   plain `nats-server`, where `--displays` plain subscribers receive it: the bare relay.
//!
//! Every reading the displays and the relay's subscribers get is timed from the device write
//! whose value it carries (the room publishes each vital's latest value at most once a second,
//! so that includes up to a second of waiting for the throttle, in both), and from the moment
//! the tap saw it published (the path from NATS onward, where the central and the relay differ).

use crate::devices::{bench_room, device, sent_times, ROOM, TOKEN};
use crate::measure::{load_average, machine_cpu_seconds, process_cpu_seconds, thread_cpu_seconds};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigil_daemon::config::CentralFile;
use vigil_daemon::daemon::Daemon;
use vigil_daemon::nats::{NatsSettings, NatsUrls};
use vigil_tests::nats::NatsServer;

mod receive;
mod report;

use receive::{central_display, relay_subscriber, tap, Clock, Published, Tally};

pub(crate) use report::Report;
use report::Window;

/// The site of the bench's rooms.
const SITE: &str = "clinic";
/// The site's key the central signs its requests to the rooms with.
const ACTION_KEY: &str = "bench-action-key-0123456789";
/// Longest wait for the last deliveries after the devices stop.
const DRAIN: Duration = Duration::from_secs(30);
/// How long the counts must stand still to count as drained.
const SETTLED: Duration = Duration::from_secs(2);

/// `--central` options.
#[derive(Debug, Clone)]
pub(crate) struct CentralArgs {
    /// `--rooms` (256).
    pub(crate) rooms: usize,
    /// `--displays`: displays at the central, and subscribers at the relay (64).
    pub(crate) displays: usize,
    /// `--seconds` the devices write (10).
    pub(crate) seconds: u64,
    /// `--vigil`: the `vigil` binary (default: beside this one).
    pub(crate) vigil: Option<PathBuf>,
    /// `--out`: where the JSON report goes (default `target/bench/central.json`).
    pub(crate) out: Option<PathBuf>,
}

/// The `vigil central` process.
struct CentralProcess {
    child: std::process::Child,
    addr: SocketAddr,
}

impl CentralProcess {
    /// Starts `vigil central` for [`SITE`] on a free port, reading NATS at `url`, with the bench's
    /// viewer; waits for the address it prints. Its log (warnings up) goes to `dir/central.log`.
    fn start(vigil: &Path, dir: &Path, url: &str) -> CentralProcess {
        let config = dir.join("central.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nsite = \"{SITE}\"\n[nats]\nnats = \"{url}\"\n\
                 action_key = \"{ACTION_KEY}\"\n[[user]]\nname = \"Bench\"\nrole = \"viewer\"\ntoken = \"{TOKEN}\"\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("central.log")).unwrap();
        let mut child = std::process::Command::new(vigil)
            .arg("central")
            .arg("--config")
            .arg(&config)
            .env("VIGIL_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", vigil.display()));
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!(
                    "vigil central stopped before serving; its log: {}",
                    dir.join("central.log").display()
                );
            };
            if let Some(rest) = line.split("overview at http://").nth(1) {
                break rest.trim_end_matches('/').parse().unwrap();
            }
        };
        CentralProcess { child, addr }
    }

    fn stop(self) {
        // Dropping it stops it.
    }
}

impl Drop for CentralProcess {
    /// Stops the central, also when the bench panics on the way.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `vigil` binary: `--vigil`, or the one built beside this bench.
fn vigil_binary(args: &CentralArgs) -> PathBuf {
    let path = args
        .vigil
        .clone()
        .unwrap_or_else(|| std::env::current_exe().unwrap().with_file_name("vigil"));
    assert!(
        path.is_file(),
        "{} not found: build it first (cargo build --release -p vigil-daemon --bin vigil), or \
         name it with --vigil PATH",
        path.display()
    );
    path
}

/// Waits until `done` holds or `limit` passes; whether it held.
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

fn counts(tallies: &[Arc<Vec<AtomicU64>>]) -> u64 {
    tallies
        .iter()
        .flat_map(|t| t.iter())
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
}

/// Runs the central bench and returns its report.
pub(crate) async fn bench(args: &CentralArgs, daemons_rt: &Handle) -> Report {
    let rooms = args.rooms;
    let dir = std::env::temp_dir().join(format!("vigil-bench-central-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stored_server = NatsServer::start()
        .await
        .expect("nats-server is needed for --central (apt-get install nats-server)");
    let relay_server = NatsServer::start().await.expect("nats-server");
    let central = CentralProcess::start(&vigil_binary(args), &dir, &stored_server.url());

    let clock = Clock {
        epoch: Instant::now(),
        sent: sent_times(rooms),
        tapped: sent_times(rooms),
    };
    let stop = CancellationToken::new();

    // The central's displays, then the relay's subscribers.
    let url = format!("ws://{}/ws?token={TOKEN}", central.addr);
    let mut displays = Vec::new();
    let mut display_counts = Vec::new();
    let mut display_snapshots = Vec::new();
    for _ in 0..args.displays {
        let tally = Tally::new(rooms);
        display_counts.push(tally.per_room.clone());
        display_snapshots.push(tally.snapshots.clone());
        displays.push(tokio::spawn(central_display(
            url.clone(),
            clock.clone(),
            tally,
            stop.clone(),
        )));
    }
    let mut subscribers = Vec::new();
    let mut subscriber_counts = Vec::new();
    for _ in 0..args.displays {
        let client = relay_server.client().await;
        let messages = client.subscribe("bench-relay.>").await.unwrap();
        client.flush().await.unwrap();
        let tally = Tally::new(rooms);
        subscriber_counts.push(tally.per_room.clone());
        subscribers.push((
            client,
            tokio::spawn(relay_subscriber(
                messages,
                clock.clone(),
                tally,
                stop.clone(),
            )),
        ));
    }
    let published = Arc::new(Published {
        readings: (0..rooms).map(|_| AtomicU64::new(0)).collect(),
        messages: AtomicU64::new(0),
    });
    let tap_client = stored_server.client().await;
    let stored = tap_client
        .subscribe(format!("vigil.{SITE}.>"))
        .await
        .unwrap();
    tap_client.flush().await.unwrap();
    let tapping = tokio::spawn(tap(
        stored,
        relay_server.client().await,
        clock.clone(),
        published.clone(),
        stop.clone(),
    ));

    // The rooms.
    eprintln!(
        "central at {}; {} displays and relay subscribers connected; starting {rooms} rooms",
        central.addr, args.displays
    );
    let mut daemons = Vec::new();
    let mut sinks = Vec::new();
    for r in 0..rooms {
        let (mut config, room_sinks, ble) = bench_room(r, dir.join(format!("room-{r}.db")));
        config.central = Some(CentralFile {
            connection: NatsSettings {
                nats: NatsUrls::One(stored_server.url()),
                token: None,
                user: None,
                password: None,
                creds: None,
                tls: None,
                action_key: Some(ACTION_KEY.into()),
            },
            site: Some(SITE.into()),
            room_id: Some(format!("bench-{r}")),
        });
        let config = config.build("bench.toml", &dir).unwrap();
        let daemon = daemons_rt
            .spawn(Daemon::start(config, Arc::new(ble)))
            .await
            .unwrap()
            .unwrap();
        // Each room's devices connect before the next room starts: a device that then stays
        // silent until the run may be reported as such, which is not "not connected yet".
        crate::cases::devices_connected(vec![daemon.core()]).await;
        daemons.push(daemon);
        sinks.push(room_sinks);
    }
    // Ready when every device is connected and every room's state is at every display; then a
    // few seconds for the central's live snapshot requests (a snapshot answered after readings
    // were queued would hold them, and the central rightly skips them).
    eprintln!("rooms started; waiting for their devices and their states at the central");
    let missing = || {
        display_snapshots
            .iter()
            .map(|s| s.iter().filter(|n| n.load(Ordering::Relaxed) == 0).count())
            .sum::<usize>()
    };
    if !wait_until(Duration::from_secs(60), || missing() == 0).await {
        eprintln!(
            "{} (display, room) pairs had no state from the central within 60 s; going on",
            missing()
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    let snapshots_now = || {
        display_snapshots
            .iter()
            .flat_map(|s| s.iter())
            .map(|n| n.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let snapshots_before = snapshots_now();
    // The devices write.
    eprintln!("devices writing for {} s", args.seconds);
    let load_before = load_average();
    let cpu = Cpu::now(&central, &stored_server, &relay_server);
    let started = Instant::now();
    let start = started + Duration::from_millis(100);
    let mut writers = Vec::new();
    for (room, room_sinks) in sinks.into_iter().enumerate() {
        for (d, sink) in room_sinks.into_iter().enumerate() {
            let phase = Duration::from_micros(((room * ROOM.len() + d) * 7919 % 1_000_000) as u64);
            writers.push(tokio::spawn(device(
                ROOM[d],
                sink,
                args.seconds,
                start + phase,
                clock.sent.clone(),
                (room, d),
                clock.epoch,
            )));
        }
    }
    let mut open_sinks = Vec::new();
    for w in writers {
        open_sinks.push(w.await.unwrap());
    }
    eprintln!("devices done; draining");
    // The last deliveries: until the rooms have published everything (the tap's count stands
    // still) and every receiver has every room's readings, or the drain time is up.
    let mut last = (u64::MAX, Instant::now());
    let published_now = || {
        published
            .readings
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let receivers = (args.displays * 2) as u64;
    wait_until(DRAIN, || {
        let now = published_now();
        if now != last.0 {
            last = (now, Instant::now());
        }
        last.1.elapsed() >= SETTLED
            && counts(&display_counts) + counts(&subscriber_counts) == now * receivers
    })
    .await;
    let wall_s = started.elapsed().as_secs_f64();
    let used = cpu.since(&central, &stored_server, &relay_server);
    let load_after = load_average();
    let snapshots_during_run = snapshots_now() - snapshots_before;
    stop.cancel();
    drop(open_sinks);
    let mut central_tallies = Vec::new();
    for d in displays {
        central_tallies.push(d.await.unwrap());
    }
    let mut relay_tallies = Vec::new();
    for (_client, s) in subscribers {
        relay_tallies.push(s.await.unwrap());
    }
    let _ = tapping.await;
    for d in daemons {
        daemons_rt.spawn(d.shutdown()).await.unwrap();
    }
    central.stop();
    let _ = std::fs::remove_dir_all(&dir);

    let window = Window {
        cpu: used,
        wall_s,
        load_before,
        load_after,
        snapshots_during_run,
    };
    Report::new(args, &published, &central_tallies, &relay_tallies, window)
}

/// CPU seconds so far: the central process, the two `nats-server`s, the rooms' threads, the
/// machine.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cpu {
    pub(crate) central: f64,
    pub(crate) stored_nats: f64,
    pub(crate) relay_nats: f64,
    pub(crate) rooms: f64,
    pub(crate) machine: f64,
}

impl Cpu {
    fn now(central: &CentralProcess, stored: &NatsServer, relay: &NatsServer) -> Cpu {
        Cpu {
            central: process_cpu_seconds(central.child.id()),
            stored_nats: stored.pid().map(process_cpu_seconds).unwrap_or(0.0),
            relay_nats: relay.pid().map(process_cpu_seconds).unwrap_or(0.0),
            rooms: thread_cpu_seconds("vigil-"),
            machine: machine_cpu_seconds(),
        }
    }

    fn since(self, central: &CentralProcess, stored: &NatsServer, relay: &NatsServer) -> Cpu {
        let now = Cpu::now(central, stored, relay);
        Cpu {
            central: now.central - self.central,
            stored_nats: now.stored_nats - self.stored_nats,
            relay_nats: now.relay_nats - self.relay_nats,
            rooms: now.rooms - self.rooms,
            machine: now.machine - self.machine,
        }
    }
}
