//! The single-site benchmark (`target/bench/e2e.json`): memory of one room, then per scale the
//! relay floor, Vigil end to end, and Vigil with a stalled display; its report.

use crate::cases::{relay, vigil, Run, Scale};
use crate::Args;
use std::path::{Path, PathBuf};
use tokio::runtime::Handle;
/// A session record for room 0 of the bench that a crash left open after 2 h 10 min: every
/// vital of the room's devices once a second, so a daemon resuming it starts with full trends.
pub(crate) fn two_hour_session(path: &Path) {
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
pub(crate) struct Row {
    pub(crate) case: String,
    pub(crate) rooms: usize,
    pub(crate) displays: usize,
    pub(crate) readings_delivered: u64,
    pub(crate) readings_dropped: u64,
    pub(crate) resyncs: u64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) p999_us: u64,
    pub(crate) max_us: u64,
    /// This row's p99 over the p99 of the row it is compared with (the relay floor, or Vigil
    /// without the stalled display).
    pub(crate) p99_ratio: Option<f64>,
    /// The daemons' own p99 from the driver's read to the frame's write (Vigil only): the rest
    /// of the end-to-end time is the pseudo-terminal, the loopback and the harness.
    pub(crate) daemon_p99_us: Option<u64>,
    /// The server's CPU seconds per 1,000 readings the devices produced, and its busy cores
    /// (CPU seconds over wall-clock seconds) while they wrote.
    pub(crate) cpu_s_per_1000_readings: f64,
    pub(crate) cores_busy: f64,
    /// The whole machine's busy cores in the same window: the harness, the kernel's
    /// pseudo-terminal and loopback work, everything.
    pub(crate) machine_cores_busy: f64,
    /// The bench process's resident memory at the end of the case (harness included).
    pub(crate) rss_mb: f64,
}

pub(crate) fn row(case: &str, scale: Scale, run: &Run, against: Option<&Row>) -> Row {
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

#[derive(Debug, serde::Serialize)]
pub(crate) struct Memory {
    /// One room, four displays, devices streaming.
    pub(crate) start_mb: f64,
    /// The same room resumed from a 2 h 10 min session record: trend buffers full.
    pub(crate) after_2h_session_mb: f64,
    /// Then with a stalled display, after it stopped reading.
    pub(crate) with_stalled_display_mb: f64,
}

pub(crate) async fn bench(a: &Args, daemons: &Handle, relay_server: &Handle) -> (Vec<Row>, Memory) {
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

pub(crate) fn report(rows: &[Row], memory: &Memory) {
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
