//! The central bench's figures: per side (Vigil's central, the bare relay) what was delivered
//! against what the rooms published, latencies, CPU; printed as Markdown and written as JSON.

use super::{CentralArgs, Cpu, Published, Tally};
use crate::measure::histogram;
use hdrhistogram::Histogram;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// The measured window: while the devices wrote and the deliveries drained.
pub(super) struct Window {
    /// CPU seconds used in it.
    pub(super) cpu: Cpu,
    /// Its wall-clock seconds.
    pub(super) wall_s: f64,
    /// `/proc/loadavg` at its start.
    pub(super) load_before: String,
    /// `/proc/loadavg` at its end.
    pub(super) load_after: String,
    /// `snapshot` frames the central's displays got in it.
    pub(super) snapshots_during_run: u64,
}

/// The whole run's figures (`target/bench/central.json`).
#[derive(Debug, serde::Serialize)]
pub(crate) struct Report {
    /// Rooms publishing.
    pub(crate) rooms: usize,
    /// Displays at the central, and subscribers at the relay.
    pub(crate) displays: usize,
    /// Seconds the devices wrote.
    pub(crate) seconds: u64,
    /// Readings the rooms published (each once), over all rooms.
    pub(crate) readings_published: u64,
    /// Rooms that published no reading at all (the bench's devices failed to reach them).
    pub(crate) rooms_silent: usize,
    /// Every message the rooms published on the stored subjects (readings, alarm steps, link and
    /// session changes, snapshots).
    pub(crate) messages_published: u64,
    /// Vigil: `vigil central` and its displays.
    pub(crate) central: Side,
    /// The bare NATS publish-subscribe relay and its subscribers.
    pub(crate) relay: Side,
    /// The central's p99 over the relay's: from the device write, and from the publication.
    pub(crate) p99_ratio_from_device: f64,
    /// See [`Report::p99_ratio_from_device`].
    pub(crate) p99_ratio_from_nats: f64,
    /// The `nats-server` holding the site's stream: CPU seconds per 1,000 messages published.
    pub(crate) stream_nats_cpu_s_per_1000_messages: f64,
    /// Its busy cores.
    pub(crate) stream_nats_cores_busy: f64,
    /// The rooms' daemons in this process (runtime and session-record writers): busy cores.
    pub(crate) rooms_cores_busy: f64,
    /// The whole machine's busy cores while the devices wrote and the deliveries drained.
    pub(crate) machine_cores_busy: f64,
    /// Wall-clock seconds of that window.
    pub(crate) wall_s: f64,
    /// `/proc/loadavg` before and after.
    pub(crate) load_before: String,
    /// See [`Report::load_before`].
    pub(crate) load_after: String,
    /// `snapshot` frames the central's displays got while the devices wrote (a room's state
    /// sent again; readings it already holds are then not sent one by one).
    pub(crate) central_snapshots_during_run: u64,
}

/// One side's figures.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Side {
    /// Readings the receivers got, over all of them (each `seq` once per receiver).
    pub(crate) readings_delivered: u64,
    /// Readings published times receivers.
    pub(crate) readings_expected: u64,
    /// Readings a receiver should have had from a room and did not.
    pub(crate) dropped: u64,
    /// (receiver, room) pairs where the receiver got none of the room's readings.
    pub(crate) pairs_unreached: usize,
    /// (receiver, room) pairs that got fewer than the room published.
    pub(crate) pairs_short: usize,
    /// Fresh `rooms` messages a lagging central display got instead of frames.
    pub(crate) resyncs: u64,
    /// "room link lost" alarms the central raised (a room's heartbeat late by 5 s).
    pub(crate) link_lost_alarms: u64,
    /// Latency from the device write, µs.
    pub(crate) from_device: Latency,
    /// Latency from the moment the tap saw the reading published, µs.
    pub(crate) from_nats: Latency,
    /// Delivered readings not timed from NATS (the tap had not noted them yet).
    pub(crate) untimed_from_nats: u64,
    /// The server's CPU seconds (`vigil central`, or the relay's `nats-server`).
    pub(crate) cpu_s: f64,
    /// Per 1,000 messages published.
    pub(crate) cpu_s_per_1000_messages: f64,
    /// CPU seconds over wall-clock seconds.
    pub(crate) cores_busy: f64,
}

/// Quantiles in µs.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Latency {
    pub(crate) samples: u64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) p999_us: u64,
    pub(crate) max_us: u64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            samples: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

impl Side {
    fn of(tallies: &[Tally], published: &[u64], messages: u64, cpu_s: f64, wall_s: f64) -> Side {
        let (mut from_device, mut from_nats) = (histogram(), histogram());
        let (mut delivered, mut dropped, mut unreached, mut short) = (0, 0, 0, 0);
        let (mut resyncs, mut link_lost, mut untimed) = (0, 0, 0);
        for t in tallies {
            from_device.add(&t.from_device).unwrap();
            from_nats.add(&t.from_nats).unwrap();
            resyncs += t.resyncs;
            link_lost += t.link_lost;
            untimed += t.untimed;
            for (room, want) in published.iter().enumerate() {
                let got = t.per_room[room].load(Ordering::Relaxed);
                delivered += got;
                dropped += want.saturating_sub(got);
                unreached += usize::from(got == 0);
                short += usize::from(got < *want);
            }
        }
        Side {
            readings_delivered: delivered,
            readings_expected: published.iter().sum::<u64>() * tallies.len() as u64,
            dropped,
            pairs_unreached: unreached,
            pairs_short: short,
            resyncs,
            link_lost_alarms: link_lost,
            from_device: Latency::of(&from_device),
            from_nats: Latency::of(&from_nats),
            untimed_from_nats: untimed,
            cpu_s,
            cpu_s_per_1000_messages: cpu_s / (messages.max(1) as f64 / 1000.0),
            cores_busy: cpu_s / wall_s,
        }
    }
}

impl Report {
    pub(super) fn new(
        args: &CentralArgs,
        published: &Published,
        central: &[Tally],
        relay: &[Tally],
        window: Window,
    ) -> Report {
        let Window {
            cpu,
            wall_s,
            load_before,
            load_after,
            snapshots_during_run,
        } = window;
        // Which rooms fell short at the first display, for a reader looking for why.
        if let Some(first) = central.first() {
            for (room, got) in first.per_room.iter().enumerate() {
                let (got, want) = (
                    got.load(Ordering::Relaxed),
                    published.readings[room].load(Ordering::Relaxed),
                );
                if got < want {
                    eprintln!(
                        "room bench-{room}: {got} of {want} readings at the first central display"
                    );
                }
            }
        }
        let per_room: Vec<u64> = published
            .readings
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let messages = published.messages.load(Ordering::Relaxed);
        let central = Side::of(central, &per_room, messages, cpu.central, wall_s);
        let relay = Side::of(relay, &per_room, messages, cpu.relay_nats, wall_s);
        let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
        Report {
            rooms: args.rooms,
            displays: args.displays,
            seconds: args.seconds,
            readings_published: per_room.iter().sum(),
            rooms_silent: per_room.iter().filter(|n| **n == 0).count(),
            messages_published: messages,
            p99_ratio_from_device: ratio(central.from_device.p99_us, relay.from_device.p99_us),
            p99_ratio_from_nats: ratio(central.from_nats.p99_us, relay.from_nats.p99_us),
            central,
            relay,
            stream_nats_cpu_s_per_1000_messages: cpu.stored_nats
                / (messages.max(1) as f64 / 1000.0),
            stream_nats_cores_busy: cpu.stored_nats / wall_s,
            rooms_cores_busy: cpu.rooms / wall_s,
            machine_cores_busy: cpu.machine / wall_s,
            wall_s,
            load_before,
            load_after,
            central_snapshots_during_run: snapshots_during_run,
        }
    }

    /// Prints the Markdown table and writes the JSON to `out` (default
    /// `target/bench/central.json`).
    pub(crate) fn print_and_write(&self, out: Option<&Path>) {
        println!(
            "{} rooms, {} displays, {} s: {} readings and {} messages published\n",
            self.rooms,
            self.displays,
            self.seconds,
            self.readings_published,
            self.messages_published
        );
        println!(
            "| side | delivered / expected | dropped | pairs unreached | resyncs | link lost | \
             p50 µs from device | p99 µs from device | p50 µs from NATS | p99 µs from NATS | \
             p99.9 µs from NATS | CPU s per 1000 messages | cores busy |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (name, s) in [
            ("vigil central", &self.central),
            ("bare NATS relay", &self.relay),
        ] {
            println!(
                "| {name} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.4} | {:.2} |",
                s.readings_delivered,
                s.readings_expected,
                s.dropped,
                s.pairs_unreached,
                s.resyncs,
                s.link_lost_alarms,
                s.from_device.p50_us,
                s.from_device.p99_us,
                s.from_nats.p50_us,
                s.from_nats.p99_us,
                s.from_nats.p999_us,
                s.cpu_s_per_1000_messages,
                s.cores_busy,
            );
        }
        println!(
            "\nSnapshot frames at the central's displays during the run: {}.",
            self.central_snapshots_during_run
        );
        println!(
            "\np99 ratio, central over relay: {:.2} from the device write, {:.2} from the \
             publication (target 2). Central cores busy {:.2} (target under 0.5). The stream's \
             nats-server {:.2} cores ({:.4} s per 1000 messages), the rooms {:.2}, the machine \
             {:.2} of 2; load {} before, {} after.",
            self.p99_ratio_from_device,
            self.p99_ratio_from_nats,
            self.central.cores_busy,
            self.stream_nats_cores_busy,
            self.stream_nats_cpu_s_per_1000_messages,
            self.rooms_cores_busy,
            self.machine_cores_busy,
            self.load_before,
            self.load_after,
        );
        let out = out.map(Path::to_path_buf).unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench/central.json")
        });
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&out, serde_json::to_string_pretty(self).unwrap()).unwrap();
        eprintln!("wrote {}", out.display());
    }
}
