//! `vigil demo` with its defaults shows what Vigil is for: within the session's first two
//! minutes a real alarm is raised, a nurse acknowledges it, and it clears; the BP rise after the
//! dose follows. The demo runs whole (its simulated serial and BLE devices, the daemon, the
//! alarm engine with its real delays) under tokio's paused clock, so minutes pass in moments.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use clap::Parser;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use vigil_daemon::demo::{Demo, DemoArgs, SCRIPT};
use vigil_protocol::display::ClientMessage;

/// `vigil demo`'s arguments, parsed as the command line parses them.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    demo: DemoArgs,
}

/// What happened to an alarm, in session seconds.
#[derive(Debug, Default)]
struct Seen {
    rule: String,
    device: String,
    priority: String,
    raised: f64,
    acknowledged_by: Option<String>,
    cleared: Option<f64>,
}

#[tokio::test(start_paused = true)]
async fn the_default_demo_raises_an_alarm_in_its_first_two_minutes_that_is_acknowledged_and_clears()
{
    // As the README runs it, on a free port.
    let args = Cli::parse_from(["demo", "--listen", "127.0.0.1:0"]).demo;
    let start = Instant::now();
    let demo = Demo::start(&args).await.unwrap();
    let mut stream = demo.daemon.subscribe();
    let core = demo.daemon.core();
    let mut alarms: Vec<(String, Seen)> = Vec::new();
    let mut dose_marked_by = None;
    let end = start + Duration::from_secs(4 * 60);
    loop {
        let published = tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            p = stream.recv() => match p {
                Ok(p) => p,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            },
        };
        let now = start.elapsed().as_secs_f64();
        for out in published.iter() {
            let m: serde_json::Value = serde_json::from_str(&out.text).unwrap();
            if m["type"] == "session" && m["event"] == "dose_marked" {
                dose_marked_by = m["by"].as_str().map(String::from);
            }
            if m["type"] != "alarm" || m["alarm"]["priority"] == "info" {
                continue;
            }
            let a = &m["alarm"];
            let id = a["id"].as_str().unwrap().to_string();
            match m["event"].as_str().unwrap() {
                "raised" => {
                    let seen = Seen {
                        rule: a["rule"].as_str().unwrap().into(),
                        device: a["device"].as_str().unwrap_or_default().into(),
                        priority: a["priority"].as_str().unwrap().into(),
                        raised: now,
                        ..Seen::default()
                    };
                    // The nurse acknowledges the desaturation as the README suggests.
                    if seen.rule == "spo2-low" {
                        let ack = ClientMessage::Ack {
                            alarm_id: id.clone(),
                            request_id: None,
                        };
                        core.act("Demo nurse", ack).await.unwrap();
                    }
                    alarms.push((id, seen));
                }
                "acknowledged" => {
                    if let Some((_, s)) = alarms.iter_mut().find(|(i, _)| *i == id) {
                        s.acknowledged_by = a["acknowledged_by"].as_str().map(String::from);
                    }
                }
                "cleared" if a["state"] == "cleared" => {
                    if let Some((_, s)) = alarms.iter_mut().find(|(i, _)| *i == id) {
                        s.cleared = Some(now);
                    }
                }
                _ => {}
            }
        }
    }
    demo.stop().await;

    let seen: Vec<&Seen> = alarms.iter().map(|(_, s)| s).collect();
    let desaturation = seen
        .iter()
        .find(|s| s.rule == "spo2-low")
        .unwrap_or_else(|| panic!("no SpO2 alarm: {seen:?}"));
    // The oximeter and the HL7 monitor play the same scenario: whichever reads the dip first
    // raises it (a race between a pseudo-terminal and a TCP connection).
    assert!(
        ["oximeter-1", vigil_daemon::demo::HL7_MONITOR].contains(&desaturation.device.as_str()),
        "{desaturation:?}"
    );
    assert_eq!(desaturation.priority, "medium");
    assert!(
        desaturation.raised < 120.0,
        "raised within the first two minutes: {desaturation:?}"
    );
    assert_eq!(
        desaturation.acknowledged_by.as_deref(),
        Some("Demo nurse"),
        "{desaturation:?}"
    );
    let cleared = desaturation
        .cleared
        .unwrap_or_else(|| panic!("the SpO2 alarm clears: {desaturation:?}"));
    assert!(cleared > desaturation.raised, "{desaturation:?}");

    // The dose is marked on the demo's behalf (nobody did it first here), so the BP rise at the
    // next cuff reading raises the post-dose alarm, and the reading after clears it.
    assert_eq!(dose_marked_by.as_deref(), Some(SCRIPT));
    let rise = seen
        .iter()
        .find(|s| s.rule == "bp-rise")
        .unwrap_or_else(|| panic!("no BP rise alarm: {seen:?}"));
    assert!(rise.raised < 150.0, "{rise:?}");
    assert!(rise.cleared.is_some(), "the BP rise clears: {rise:?}");

    let others: Vec<&&Seen> = seen
        .iter()
        .filter(|s| s.rule != "spo2-low" && s.rule != "bp-rise")
        .collect();
    assert!(others.is_empty(), "no other alarms: {others:?}");
}
