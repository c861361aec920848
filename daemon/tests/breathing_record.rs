//! Breathing vitals in the session record (issue 17): recorded through the writer like every
//! reading, and carried by review and the CSV, JSON-lines and HL7 exports, with their MDC codes.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use rusqlite::params;
use std::time::Duration;
use tokio::sync::mpsc;
use vigil_daemon::review;
use vigil_daemon::storage::{self, Health, Record};
use vigil_protocol::model::{Reading, Unit, Vital};

const T0: i64 = 1_795_400_000_000;

fn reading(vital: Vital, value: f64, unit: Unit, at: i64) -> Record {
    Record::Reading {
        device: "monitor-1".into(),
        reading: Box::new(Reading::number(vital, value, unit)),
        at,
    }
}

/// A record holding a rate, an EtCO2 in mmHg and one in kPa, written by the real writer, with
/// an apnea alarm raised; returns the open database and the session.
async fn record() -> (std::path::PathBuf, rusqlite::Connection, i64) {
    let dir = std::env::temp_dir().join(format!(
        "vigil-breathing-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("v.db");
    let (health_tx, mut health) = mpsc::unbounded_channel();
    let (store, writer) =
        storage::start(path.clone(), None, "Room 4".into(), "{}".into(), health_tx);
    store.record(reading(
        Vital::RespiratoryRate,
        12.0,
        Unit::BreathsPerMinute,
        T0,
    ));
    store.record(reading(Vital::Etco2, 38.0, Unit::MmHg, T0 + 1000));
    // 6.0 kPa is 45.0 mmHg.
    store.record(reading(Vital::Etco2, 6.0, Unit::KPa, T0 + 2000));
    let ok = tokio::time::timeout(Duration::from_secs(30), health.recv()).await;
    assert!(matches!(ok, Ok(Some(Health::Ok))), "{ok:?}");
    drop(store);
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    let conn = storage::open(&path).unwrap();
    let session: i64 = conn
        .query_row("SELECT MAX(id) FROM sessions", [], |r| r.get(0))
        .unwrap();
    let apnea = serde_json::json!({"id": "apnea#4", "rule": "apnea", "kind": "physiological",
        "vital": "respiratory_rate", "device": "monitor-1", "priority": "high",
        "message": "No breath detected", "state": "active", "since": "2026-11-23T02:13:23.000Z",
        "acknowledged_by": null, "acknowledged_at": null, "latching": false,
        "awaiting_confirmation": false, "value": 0.0});
    conn.execute(
        "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at)
         VALUES (?1, 'apnea#4', 'raised', 'active', 'high', ?2, ?3)",
        params![session, apnea.to_string(), T0 + 3000],
    )
    .unwrap();
    (dir, conn, session)
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_and_json_lines_carry_the_breathing_vitals_as_recorded() {
    let (dir, conn, s) = record().await;
    let mut csv = Vec::new();
    review::export_csv(&conn, s, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(
        rows[0].contains(",monitor-1,respiratory_rate,12,,/min,151562,"),
        "{}",
        rows[0]
    );
    assert!(rows[1].contains(",etco2,38,,mmHg,151708,"), "{}", rows[1]);
    assert!(rows[2].contains(",etco2,6,,kPa,151708,"), "{}", rows[2]);

    let mut jsonl = Vec::new();
    review::export_jsonl(&conn, s, &mut jsonl).unwrap();
    let readings: Vec<serde_json::Value> = String::from_utf8(jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "reading")
        .collect();
    let got: Vec<_> = readings
        .iter()
        .map(|r| {
            (
                r["vital"].as_str().unwrap(),
                r["value"].as_f64().unwrap(),
                r["unit"].as_str().unwrap(),
                r["mdc"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("respiratory_rate", 12.0, "/min", 151_562),
            ("etco2", 38.0, "mmHg", 151_708),
            ("etco2", 6.0, "kPa", 151_708),
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hl7_export_codes_breathing_vitals_and_apnea_in_mdc() {
    let (dir, conn, s) = record().await;
    let mut out = Vec::new();
    review::export_hl7(&conn, s, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let messages: Vec<Vec<&str>> = text
        .split("\r\n")
        .filter(|m| !m.is_empty())
        .map(|m| m.split('\r').collect())
        .collect();
    assert_eq!(messages.len(), 4, "{text}");
    let obx = |m: &[&str]| -> Vec<String> { m[3].split('|').map(str::to_string).collect() };
    let rate = obx(&messages[0]);
    assert_eq!(
        (rate[3].as_str(), rate[5].as_str(), rate[6].as_str()),
        (
            "151562^MDC_RESP_RATE^MDC",
            "12",
            "264928^MDC_DIM_RESP_PER_MIN^MDC"
        )
    );
    let mmhg = obx(&messages[1]);
    assert_eq!(
        (mmhg[3].as_str(), mmhg[6].as_str()),
        ("151708^MDC_AWAY_CO2_ET^MDC", "266016^MDC_DIM_MMHG^MDC")
    );
    let kpa = obx(&messages[2]);
    assert_eq!(
        (kpa[5].as_str(), kpa[6].as_str()),
        ("6", "265987^MDC_DIM_KILO_PASCAL^MDC")
    );
    // PCD-04: no breath is its own event, not a limit crossed.
    let apnea = obx(&messages[3]);
    assert_eq!(apnea[3], "199680^MDC_EVT_APNEA^MDC");
    assert_eq!(apnea[8], "~PH~SP", "no limit, high priority, physiological");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_summarises_etco2_in_mmhg_whatever_unit_it_came_in() {
    let (dir, conn, s) = record().await;
    let r = review::report(&conn, s).unwrap();
    // 38 mmHg and 6.0 kPa (45.0 mmHg): mean 41.5 mmHg, not (38 + 6) / 2.
    assert!(
        r.contains("etco2                38.0     45.0     41.5        2"),
        "{r}"
    );
    assert!(
        r.contains("respiratory_rate     12.0     12.0     12.0        1"),
        "{r}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
