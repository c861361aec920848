//! Findings of the red-team review (docs/hazards.md, "Found in review") that need the whole
//! daemon: each test fails without its control.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::time::Duration;
use vigil_daemon::daemon::Options;
use vigil_tests::{Display, Room, NURSE};

/// A session left open by a crash whose dose time reads back as one minute before 1970 (a
/// damaged row; or a run whose clock started at 1970, on a board without RTC before NTP).
fn dose_before_1970(db: &Path) {
    let conn = vigil_daemon::storage::open(db).unwrap();
    let session = vigil_daemon::storage::resume_or_start(&conn, "Test room", "{}")
        .unwrap()
        .session;
    conn.execute(
        "UPDATE sessions SET dose_at = -60000, dose_by = 'Dr Rivera' WHERE id = ?1",
        [session],
    )
    .unwrap();
}

/// F8: the first display to connect after the restart panicked the core (formatting the dose
/// time), the daemon exited, and the service manager brought it back to the same record: no
/// monitoring at all. The display must get its snapshot and the core live on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dose_time_before_1970_in_the_record_does_not_kill_the_core() {
    let room = Room::with_record(dose_before_1970, Options::default()).await;
    let connected = tokio::spawn({
        let url = room.ws_url(NURSE);
        async move { Display::connect_url(&url).await.1 }
    });
    let failed = tokio::time::timeout(Duration::from_secs(5), room.daemon.failed()).await;
    assert!(failed.is_err(), "the daemon failed: {:?}", failed.ok());
    let snapshot = tokio::time::timeout(Duration::from_secs(5), connected)
        .await
        .expect("the snapshot comes")
        .expect("the display connected");
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    assert_eq!(snapshot["session"]["dose_by"], "Dr Rivera", "{snapshot}");
}

/// F9: the core's loop polls device events before its heartbeat and the displays' requests
/// (`select!` with `biased`). A device that sends faster than the core takes its frames (a
/// faulty or hostile USB/BLE oximeter) keeps the device queue full, and the core's own
/// heartbeat is never taken: `/healthz` goes late, the watchdog would restart the daemon, and
/// the displays see CONNECTION LOST. The core's heartbeat must stay fresh under a device flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_device_does_not_starve_the_cores_heartbeat() {
    let room = Room::start("", Options::default()).await;
    room.devices_ready().await;
    let oximeter = room.oximeter.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let frame = [0x00, 97, 0, 72, 0];
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if oximeter.notify(vigil_protocol::ble::uuid::PLX_CONTINUOUS, &frame) {
                    sent += 1;
                } else {
                    std::thread::yield_now();
                }
            }
            sent
        }
    });
    let mut worst = 0.0f64;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, body) = vigil_tests::http_get(room.daemon.addr, "/healthz").await;
        worst = worst.max(body["core_heartbeat_age_s"].as_f64().unwrap_or(0.0));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = flood.join().unwrap();
    println!("FIGURE device flood: {sent} frames in 8 s; worst core heartbeat age {worst:.1} s");
    assert!(
        worst < 2.0,
        "the core's heartbeat was {worst:.1} s old under a device flood ({sent} frames)"
    );
}
