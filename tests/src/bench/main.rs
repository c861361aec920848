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
//!
//! `--central [--rooms 256] [--displays 64] [--seconds 10] [--vigil PATH] [--out PATH]`: the
//! central station bench instead (`central.rs`): rooms through `nats-server` into `vigil
//! central`, against a bare NATS relay; JSON to `target/bench/central.json`.

// A benchmark harness: a panic is the report. tungstenite's handshake callback must return its
// own (large) error response type.
#![allow(clippy::unwrap_used, clippy::result_large_err)]

mod cases;
mod central;
mod devices;
mod e2e;
mod measure;

use cases::Scale;
use e2e::{bench, report, two_hour_session};
use std::path::Path;
use tokio::runtime::Runtime;

struct Args {
    scales: Vec<Scale>,
    seconds: u64,
    stalled: bool,
    /// `--central`: the central station bench instead.
    central: Option<central::CentralArgs>,
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
        central: None,
    };
    let mut central = false;
    let mut c = central::CentralArgs {
        rooms: 256,
        displays: 64,
        seconds: 10,
        vigil: None,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--central" {
            central = true;
            continue;
        }
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--rooms" => c.rooms = value.parse().expect("--rooms N"),
            "--displays" => c.displays = value.parse().expect("--displays N"),
            "--vigil" => c.vigil = Some(value.into()),
            "--out" => c.out = Some(value.into()),
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
            "--seconds" => {
                a.seconds = value.parse().expect("--seconds N");
                c.seconds = a.seconds;
            }
            "--stalled" => a.stalled = value.parse().expect("--stalled true|false"),
            other => panic!(
                "unknown flag {other}; use --scales, --seconds, --stalled, or --central with \
                 --rooms, --displays, --seconds, --vigil, --out"
            ),
        }
    }
    if central {
        a.central = Some(c);
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
    if let Some(c) = &a.central {
        let harness = runtime("bench-harness");
        let report = harness.block_on(central::bench(c, daemons.handle()));
        report.print_and_write(c.out.as_deref());
        daemons.shutdown_background();
        return;
    }
    let relay_server = runtime("relay-server");
    let harness = runtime("bench-harness");
    let (rows, memory) = harness.block_on(bench(&a, daemons.handle(), relay_server.handle()));
    report(&rows, &memory);
    daemons.shutdown_background();
    relay_server.shutdown_background();
}
