//! Every scenario through the daemon, at full speed under tokio's paused clock: the alarms it
//! declares appear, at about the declared time and priority, and no others. The simulated
//! oximeter and cuff are BLE devices in-process, so decoders, drivers, the core and the engine
//! all run for real; only the clock is virtual.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_daemon::config::Config;
use vigil_daemon::daemon::Daemon;
use vigil_drivers::ble::memory::MemoryCentral;
use vigil_protocol::Format;
use vigil_simulator::run::{serve_ble, SimClock};
use vigil_simulator::{Device, Scenario};

#[derive(Debug)]
struct Raised {
    rule: String,
    at: f64,
    max_priority: String,
}

fn rank(p: &str) -> u8 {
    match p {
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

async fn run_scenario(name: &str) -> Vec<Raised> {
    let scenario = Arc::new(Scenario::load(name).unwrap());
    let central = MemoryCentral::new();
    let clock = SimClock::start(1.0);
    let cancel = CancellationToken::new();
    let mut config = format!(
        "listen = \"127.0.0.1:0\"\nroom = \"Scenario\"\n[storage]\npath = \"{}\"\n",
        vigil_tests::temp_db("scenario")
    );
    let mut devices = vec![
        ("oximeter", Format::BlePlxContinuous),
        ("cuff", Format::BleBloodPressure),
    ];
    if scenario.heart_rate_strap {
        devices.push(("strap", Format::BleHeartRate));
    }
    for (i, (id, kind)) in devices.into_iter().enumerate() {
        let device = Device::new(kind, scenario.clone(), 7, i as u64);
        let peripheral = central.add(device.ble_spec(&format!("C0:FF:EE:00:00:0{i}"), id));
        config.push_str(&format!(
            "[[device]]\nid = \"{id}\"\nformat = \"{}\"\nble = {{ name = \"{id}\" }}\n",
            kind.name()
        ));
        tokio::spawn(serve_ble(
            device,
            peripheral,
            clock,
            scenario.duration,
            cancel.clone(),
        ));
    }
    let config = Config::parse(&config, "scenario.toml", Path::new(".")).unwrap();
    let daemon = Daemon::start(config, Arc::new(central)).await.unwrap();
    let mut stream = daemon.subscribe();
    // The nurse marks the dose when the scenario gives it.
    if let Some(dose_at) = scenario.dose_at {
        let core = daemon.core();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(dose_at)).await;
            let mark = vigil_protocol::display::ClientMessage::MarkDose { request_id: None };
            core.act("Scenario nurse", mark).await.unwrap();
        });
    }
    let start = tokio::time::Instant::now();
    let collector = tokio::spawn(async move {
        let mut raised: Vec<Raised> = Vec::new();
        let mut ids: HashMap<String, usize> = HashMap::new();
        while let Ok(published) = stream.recv().await {
            for out in published.iter() {
                let m: serde_json::Value = serde_json::from_str(&out.text).unwrap();
                if m["type"] != "alarm" || m["alarm"]["priority"] == "info" {
                    continue;
                }
                let id = m["alarm"]["id"].as_str().unwrap().to_string();
                let priority = m["alarm"]["priority"].as_str().unwrap().to_string();
                match m["event"].as_str().unwrap() {
                    "raised" => {
                        ids.insert(id, raised.len());
                        raised.push(Raised {
                            rule: m["alarm"]["rule"].as_str().unwrap().into(),
                            at: start.elapsed().as_secs_f64(),
                            max_priority: priority,
                        });
                    }
                    "escalated" => {
                        let r = &mut raised[ids[&id]];
                        if rank(&priority) > rank(&r.max_priority) {
                            r.max_priority = priority;
                        }
                    }
                    _ => {}
                }
            }
        }
        raised
    });
    tokio::time::sleep(Duration::from_secs_f64(scenario.duration)).await;
    cancel.cancel();
    daemon.shutdown().await;
    collector.await.unwrap()
}

async fn check(name: &str) {
    let scenario = Scenario::load(name).unwrap();
    let raised = run_scenario(name).await;
    let mut matched = vec![false; raised.len()];
    for e in &scenario.expect {
        let hits: Vec<usize> = raised
            .iter()
            .enumerate()
            .filter(|(_, r)| r.rule == e.rule && (r.at - e.at).abs() <= e.within)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            hits.len(),
            e.count,
            "{name}: expected {} {} near {} s, got {raised:?}",
            e.count,
            e.rule,
            e.at
        );
        for i in hits {
            assert_eq!(
                raised[i].max_priority, e.priority,
                "{name}: {:?}",
                raised[i]
            );
            matched[i] = true;
        }
    }
    let others: Vec<&Raised> = raised
        .iter()
        .zip(&matched)
        .filter(|(_, m)| !**m)
        .map(|(r, _)| r)
        .collect();
    assert!(
        others.is_empty(),
        "{name}: alarms the scenario does not declare: {others:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn kap_typical() {
    check("kap-typical").await;
}

#[tokio::test(start_paused = true)]
async fn kap_hypertensive() {
    check("kap-hypertensive").await;
}

#[tokio::test(start_paused = true)]
async fn desaturation() {
    check("desaturation").await;
}

#[tokio::test(start_paused = true)]
async fn brief_dip() {
    check("brief-dip").await;
}

#[tokio::test(start_paused = true)]
async fn bradycardia() {
    check("bradycardia").await;
}

#[tokio::test(start_paused = true)]
async fn tachycardia() {
    check("tachycardia").await;
}

#[tokio::test(start_paused = true)]
async fn motion_artefact() {
    check("motion-artefact").await;
}

#[tokio::test(start_paused = true)]
async fn probe_off() {
    check("probe-off").await;
}

#[tokio::test(start_paused = true)]
async fn device_unplugged() {
    check("device-unplugged").await;
}

#[tokio::test(start_paused = true)]
async fn low_battery() {
    check("low-battery").await;
}

#[tokio::test(start_paused = true)]
async fn artefact_spikes() {
    check("artefact-spikes").await;
}

#[tokio::test(start_paused = true)]
async fn implausible_spo2() {
    check("implausible-spo2").await;
}

#[tokio::test(start_paused = true)]
async fn partial_bp() {
    check("partial-bp").await;
}

#[tokio::test(start_paused = true)]
async fn late_repeat() {
    check("late-repeat").await;
}

#[tokio::test(start_paused = true)]
async fn stale_baseline() {
    check("stale-baseline").await;
}

#[tokio::test(start_paused = true)]
async fn strap_no_contact() {
    check("strap-no-contact").await;
}

#[tokio::test(start_paused = true)]
async fn demo() {
    check("demo").await;
}
