//! `vigil-sim run --bluez`: a scenario's heart-rate strap published on an emulated BlueZ, read
//! through the real btleplug path.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{can_run, heart_rate, next_matching, strap};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use vigil_drivers::ble::bluez::BluezCentral;
use vigil_simulator::bluez::EmulatedBluez;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigil_sim_publishes_a_scenario_on_the_emulated_bluez() {
    if !can_run() {
        return;
    }
    let bluez = EmulatedBluez::start().await.unwrap();
    let mut sim = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil-sim"))
        .args([
            "run",
            "--scenario",
            "kap-typical",
            "--device",
            "ble-hr",
            "--bluez",
            "--speed",
            "5",
        ])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bluez.address)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sim.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first, "bluez C0:FF:EE:00:01:00 Vigil Sim ble-hr-0");

    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &bluez.address);
    let (mut rx, cancel, _task) = strap(Arc::new(BluezCentral::new()), "Vigil Sim ble-hr");
    let hr = next_matching(&mut rx, heart_rate).await;
    assert!(
        (68.0..=80.0).contains(&hr),
        "the kap-typical heart rate, got {hr}"
    );
    cancel.cancel();
}
