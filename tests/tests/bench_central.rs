//! `vigil-bench --central` run small (4 rooms, 2 displays, 3 s): real room daemons publish
//! through a real `nats-server` to the real `vigil central` process. Its report must say that
//! every reading the rooms published reached every central display, from every room. No timing
//! is asserted: the figures are for the README, not for CI.

use std::path::{Path, PathBuf};
use std::process::Command;
use vigil_tests::nats::NatsServer;

/// The `vigil` binary beside the bench, built now if it is not there yet (`cargo test -p
/// vigil-tests` alone does not build the daemon's binary).
fn vigil_binary(bench: &Path) -> PathBuf {
    let vigil = bench.with_file_name("vigil");
    if !vigil.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "vigil-daemon", "--bin", "vigil"]);
        if bench.parent().is_some_and(|d| d.ends_with("release")) {
            build.arg("--release");
        }
        assert!(
            build.status().expect("cargo runs").success(),
            "building vigil failed"
        );
    }
    vigil
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_central_bench_delivers_every_reading_of_every_room_to_every_display() {
    // The bench starts its own servers; this one says whether nats-server is here (NOT RUN
    // without it, unless VIGIL_REQUIRE_NATS=1).
    let Some(server) = NatsServer::start().await else {
        return;
    };
    drop(server);
    let bench = Path::new(env!("CARGO_BIN_EXE_vigil-bench"));
    let vigil = vigil_binary(bench);
    let out = std::env::temp_dir().join(format!("vigil-bench-central-{}.json", std::process::id()));
    let status = Command::new(bench)
        .args([
            "--central",
            "--rooms",
            "4",
            "--displays",
            "2",
            "--seconds",
            "3",
        ])
        .arg("--vigil")
        .arg(&vigil)
        .arg("--out")
        .arg(&out)
        .status()
        .expect("the bench runs");
    assert!(status.success(), "vigil-bench --central failed");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("the report")).unwrap();
    let _ = std::fs::remove_file(&out);

    // Every room published readings: 3 s of four devices, throttled to once a second per vital.
    assert_eq!(report["rooms_silent"], 0, "{report:#}");
    assert!(
        report["readings_published"].as_u64().unwrap() >= 4 * 9,
        "{report:#}"
    );
    let central = &report["central"];
    assert_eq!(central["dropped"], 0, "{report:#}");
    assert_eq!(central["pairs_unreached"], 0, "{report:#}");
    assert_eq!(central["pairs_short"], 0, "{report:#}");
    assert_eq!(
        central["readings_delivered"], central["readings_expected"],
        "{report:#}"
    );
    assert_eq!(central["resyncs"], 0, "{report:#}");
    // The deliveries were timed (the measurement itself works).
    assert!(
        central["from_device"]["samples"].as_u64() > Some(0),
        "{report:#}"
    );
}
