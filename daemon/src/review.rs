//! Reading the session record back: exports (CSV, HL7 v2.6 per IHE PCD-01 and PCD-04, JSON
//! lines) and the summary a provider signs.
//!
//! Vigil knows no patient identity: a session is identified by its number and room only.

use rusqlite::Connection;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use vigil_alarm::{AlarmChange, AlarmState};
use vigil_protocol::{Unit, Vital};

use crate::core::wire_name;
use crate::pcd;

use crate::storage::query::{alarm_steps, session_profile, session_room, timeline_rows};
pub use crate::storage::query::{readings, AlarmStep, StoredReading};
use crate::storage::{rfc3339, RecordedAlarm};

/// The session's alarm steps in order; a step that cannot be read back stops the review with
/// an error naming it (a summary or an export never leaves a step out unsaid).
pub fn alarm_events(conn: &Connection, session: i64) -> anyhow::Result<Vec<AlarmStep>> {
    alarm_steps(conn, session)?
        .into_iter()
        .map(|step| {
            step.map_err(|e| {
                tracing::error!(session, error = %e, "stored alarm step could not be read back");
                anyhow::Error::new(e)
            })
        })
        .collect()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One row per reading.
pub fn export_csv(conn: &Connection, session: i64, out: &mut dyn Write) -> anyhow::Result<()> {
    session_room(conn, session)?;
    writeln!(
        out,
        "session,received_at,device,vital,value,unavailable,unit,mdc,flags"
    )?;
    for r in readings(conn, session)? {
        writeln!(
            out,
            "{session},{},{},{},{},{},{},{},{}",
            rfc3339(r.received_at),
            csv_field(&r.device),
            r.vital,
            r.value.map(|v| v.to_string()).unwrap_or_default(),
            r.unavailable.unwrap_or_default(),
            csv_field(&r.unit),
            r.mdc.map(|m| m.to_string()).unwrap_or_default(),
            csv_field(&r.flags)
        )?;
    }
    Ok(())
}

/// Every record of the session as JSON lines: readings, link events, alarm events, actions.
pub fn export_jsonl(conn: &Connection, session: i64, out: &mut dyn Write) -> anyhow::Result<()> {
    let (room, started, dose, baseline) = session_room(conn, session)?;
    let profile = session_profile(conn, session)?;
    let profile = serde_json::from_str::<serde_json::Value>(&profile).unwrap_or(profile.into());
    let header = serde_json::json!({"kind": "session", "session": session, "room": room, "started_at": rfc3339(started),
            "dose_at": dose.map(rfc3339), "baseline": baseline.map(|(s, d)| serde_json::json!({"systolic": s, "diastolic": d})),
            "profile": profile});
    let mut lines: Vec<(i64, serde_json::Value)> = Vec::new();
    for r in readings(conn, session)? {
        let mut v = serde_json::to_value(&r)?;
        v["kind"] = "reading".into();
        v["received_at"] = rfc3339(r.received_at).into();
        v["flags"] = serde_json::from_str(&r.flags).unwrap_or_default();
        lines.push((r.received_at, v));
    }
    for step in alarm_events(conn, session)? {
        lines.push((
            step.at,
            serde_json::json!({"kind": "alarm", "event": step.change, "alarm": RecordedAlarm::display(&step.alarm),
                "at": rfc3339(step.at)}),
        ));
    }
    for (kind, table, [name, value, detail]) in [
        ("link", "links", ["device", "state", "reason"]),
        ("action", "actions", ["action", "person", "target"]),
    ] {
        for (n, v, d, at) in timeline_rows(conn, session, table, [name, value, detail])? {
            // A link's state is shown as `link`, as the display protocol names it.
            let value_key = if kind == "link" { "link" } else { value };
            lines.push((
                at,
                serde_json::json!({"kind": kind, name: n, value_key: v, detail: d, "at": rfc3339(at)}),
            ));
        }
    }
    lines.sort_by_key(|(at, _)| *at);
    writeln!(out, "{header}")?;
    for (_, v) in lines {
        writeln!(out, "{v}")?;
    }
    Ok(())
}

/// PCD-01 observations (ORU^R01), one message per numeric reading, and PCD-04 alarm reports
/// (ORU^R40), one per alarm event, encoded by [`crate::pcd`]. Messages end with CR LF.
pub fn export_hl7(conn: &Connection, session: i64, out: &mut dyn Write) -> anyhow::Result<()> {
    let (room, _, _, _) = session_room(conn, session)?;
    let mut n = 0u64;
    for r in readings(conn, session)? {
        let control = format!("{session}-{}", n + 1);
        if let Some(message) = pcd::pcd01(&room, session, &control, std::slice::from_ref(&r)) {
            n += 1;
            write!(out, "{message}\r\n")?;
        }
    }
    for step in alarm_events(conn, session)? {
        n += 1;
        let control = format!("{session}-{n}");
        write!(out, "{}\r\n", pcd::pcd04(&room, &control, &step))?;
    }
    Ok(())
}

/// A stored value in its vital's canonical unit: an EtCO2 or a cuff pressure stored in kPa is
/// summarised in mmHg with the rest, never averaged with them as is.
fn in_canonical_unit(r: &StoredReading, value: f64) -> f64 {
    let canonical = Vital::from_name(&r.vital).map(Vital::canonical_unit);
    match (Unit::from_symbol(&r.unit), canonical) {
        (Some(Unit::KPa), Some(Unit::MmHg)) => vigil_protocol::kpa_to_mmhg(value),
        _ => value,
    }
}

/// The summary a provider signs.
pub fn report(conn: &Connection, session: i64) -> anyhow::Result<String> {
    let (room, started, dose, baseline) = session_room(conn, session)?;
    let mut out = String::new();
    let _ = writeln!(out, "Vigil session report: session {session}, {room}");
    let _ = writeln!(out, "Started {}", rfc3339(started));
    match dose {
        Some(d) => {
            let _ = writeln!(out, "Dose marked {}", rfc3339(d));
        }
        None => {
            let _ = writeln!(out, "No dose marked");
        }
    }
    let rs = readings(conn, session)?;
    let _ = writeln!(out, "\nVitals (valid values only):");
    let _ = writeln!(
        out,
        "  {:<16} {:>8} {:>8} {:>8} {:>8}",
        "vital", "min", "max", "mean", "count"
    );
    let mut by_vital: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in rs
        .iter()
        .filter(|r| r.flags == "[]" || !r.flags.contains("demo"))
    {
        if let Some(v) = r.value {
            by_vital
                .entry(r.vital.as_str())
                .or_default()
                .push(in_canonical_unit(r, v));
        }
    }
    for (vital, vs) in &by_vital {
        let (min, max) = vs
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(*v), b.max(*v))
            });
        let mean = vs.iter().sum::<f64>() / vs.len() as f64;
        let _ = writeln!(
            out,
            "  {vital:<16} {min:>8.1} {max:>8.1} {mean:>8.1} {:>8}",
            vs.len()
        );
    }
    let _ = writeln!(out, "\nBlood pressure:");
    match baseline {
        Some((s, d)) => {
            let _ = writeln!(out, "  pre-dose baseline {s:.0}/{d:.0} mmHg");
        }
        None => {
            let _ = writeln!(out, "  no pre-dose baseline");
        }
    }
    if let Some(dose) = dose {
        let sys = Vital::NibpSystolic.name();
        let dia = Vital::NibpDiastolic.name();
        let peak = rs
            .iter()
            .filter(|r| r.vital == sys && r.received_at >= dose)
            .filter_map(|r| r.value.map(|v| (v, r.received_at)))
            .fold(None::<(f64, i64)>, |best, x| {
                if best.is_none_or(|b| x.0 > b.0) {
                    Some(x)
                } else {
                    best
                }
            });
        match peak {
            Some((s, at)) => {
                let d = rs
                    .iter()
                    .find(|r| r.vital == dia && r.received_at == at)
                    .and_then(|r| r.value);
                let minutes = (at - dose) / 60_000;
                let _ = writeln!(
                    out,
                    "  peak after dose {s:.0}/{} mmHg at {minutes} min",
                    d.map(|d| format!("{d:.0}")).unwrap_or_else(|| "--".into())
                );
            }
            None => {
                let _ = writeln!(out, "  no BP measured after the dose");
            }
        }
    }
    let events = alarm_events(conn, session)?;
    // Per alarm id: (latest state, raised at, ended at, first acknowledgement (who, when)).
    type AlarmHistory = (RecordedAlarm, i64, Option<i64>, Option<(String, i64)>);
    let mut alarms: BTreeMap<String, AlarmHistory> = BTreeMap::new();
    for AlarmStep {
        change,
        alarm: a,
        at,
        ..
    } in &events
    {
        let entry = alarms
            .entry(a.id.clone())
            .or_insert_with(|| (a.clone(), *at, None, None));
        entry.0.priority = a.priority;
        match change {
            AlarmChange::Acknowledged => {
                if let Some(by) = &a.acknowledged_by {
                    entry.3.get_or_insert((by.clone(), *at));
                }
            }
            AlarmChange::Cleared if a.state == AlarmState::Cleared => entry.2 = Some(*at),
            AlarmChange::Reset => entry.2 = Some(*at),
            _ => {}
        }
    }
    let _ = writeln!(out, "\nAlarms ({}):", alarms.len());
    let mut time_in: BTreeMap<String, i64> = BTreeMap::new();
    for (a, raised, ended, ack) in alarms.values() {
        let end = ended.unwrap_or_else(|| events.last().map(|e| e.at).unwrap_or(*raised));
        *time_in.entry(a.rule.clone()).or_default() += end - raised;
        let ack_text = match ack {
            Some((by, at)) => format!("acknowledged by {by} after {} s", (at - raised) / 1000),
            None => "not acknowledged".into(),
        };
        let _ = writeln!(
            out,
            "  {} {:<7} {} (raised {}, {}{})",
            a.id,
            wire_name(&a.priority),
            a.message,
            rfc3339(*raised),
            ack_text,
            if ended.is_none() { ", still open" } else { "" }
        );
    }
    let _ = writeln!(out, "\nTime in alarm by rule:");
    for (rule, ms) in &time_in {
        let _ = writeln!(out, "  {rule:<22} {} s", ms / 1000);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage;
    use rusqlite::params;
    use vigil_protocol::display::AlarmInfo;

    fn db() -> (std::path::PathBuf, Connection, i64) {
        db_with(false)
    }

    /// The fixture session; its alarm steps in typed columns with no display JSON (`typed`),
    /// or only as display JSON (as rows recorded before migration 5).
    fn db_with(typed: bool) -> (std::path::PathBuf, Connection, i64) {
        let dir = std::env::temp_dir().join(format!(
            "vigil-review-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v.db");
        let conn = storage::open(&path).unwrap();
        let s = storage::resume_or_start(&conn, "Room 2", "kap-default")
            .unwrap()
            .session;
        conn.execute(
            "INSERT INTO readings (session, device, vital, value, unit, mdc, flags, received_at) VALUES
             (?1, 'ox-1', 'spo2', 97, '%', 150456, '[]', 1795400000000),
             (?1, 'ox-1', 'spo2', 86, '%', 150456, '[]', 1795400060000),
             (?1, 'cuff-1', 'nibp_systolic', 165, 'mmHg', 150021, '[]', 1795400120000),
             (?1, 'cuff-1', 'nibp_diastolic', 105, 'mmHg', 150022, '[]', 1795400120000),
             (?1, 'ox-1', 'pulse_rate', NULL, 'bpm', 149530, '[\"sensor_off\"]', 1795400180000)",
            params![s],
        )
        .unwrap();
        conn.execute(
            "UPDATE sessions SET dose_at = 1795399990000, dose_by = 'Dr Rivera', baseline_systolic = 120, baseline_diastolic = 78 WHERE id = ?1",
            params![s],
        )
        .unwrap();
        let alarm = |state: &str, ack: Option<&str>| AlarmInfo {
            id: "spo2-low#3".into(),
            rule: "spo2-low".into(),
            kind: "physiological".into(),
            vital: Some(Vital::Spo2),
            device: Some("ox-1".into()),
            priority: "medium".into(),
            message: "SpO2 below 90% | check probe".into(),
            state: state.into(),
            since: rfc3339(1795400075000),
            acknowledged_by: ack.map(str::to_string),
            acknowledged_at: ack.map(|_| rfc3339(1795400090000)),
            latching: false,
            awaiting_confirmation: false,
            value: Some(86.0),
        };
        for (event, a, at) in [
            ("raised", alarm("active", None), 1795400075000i64),
            (
                "acknowledged",
                alarm("acknowledged", Some("Nurse Okafor")),
                1795400090000,
            ),
            (
                "cleared",
                alarm("cleared", Some("Nurse Okafor")),
                1795400135000,
            ),
        ] {
            if typed {
                conn.execute(
                    "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at,
                         rule, seq, device, vital, since_at, acknowledged_by, acknowledged_at,
                         value, awaiting_confirmation, kind, message, latching)
                     VALUES (?1, ?2, ?3, ?4, ?5, '{}', ?6, 'spo2-low', 3, 'ox-1', 'spo2',
                         1795400075000, ?7, ?8, 86, 0, 'physiological', ?9, 0)",
                    params![
                        s,
                        a.id,
                        event,
                        a.state,
                        a.priority,
                        at,
                        a.acknowledged_by,
                        a.acknowledged_by.as_ref().map(|_| 1795400090000i64),
                        a.message
                    ],
                )
                .unwrap();
            } else {
                conn.execute(
                    "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![s, a.id, event, a.state, a.priority, serde_json::to_string(&a).unwrap(), at],
                )
                .unwrap();
            }
        }
        conn.execute(
            "UPDATE sessions SET started_at = 1795399900000 WHERE id = ?1",
            params![s],
        )
        .unwrap();
        (dir, conn, s)
    }

    fn fields(segment: &str) -> Vec<&str> {
        segment.split('|').collect()
    }

    /// Round trip: Vigil's own PCD-01 export read back by the HL7 reader gives the same
    /// readings (the PCD-04 alarm messages are refused as not ORU^R01, as they should be).
    #[test]
    fn hl7_export_reads_back_through_the_hl7_reader_to_the_same_readings() {
        let (dir, conn, s) = db();
        let mut out = Vec::new();
        export_hl7(&conn, s, &mut out).unwrap();
        let mut decoder = vigil_protocol::Format::Hl7.decoder();
        let mut items = Vec::new();
        decoder.feed(&out, &mut items);
        decoder.finish(&mut items);
        let back: Vec<(Vital, f64, Option<u32>)> = items
            .iter()
            .filter_map(|i| match i {
                Ok(vigil_protocol::Observation::Reading(r)) => {
                    Some((r.vital, r.value.number()?, r.mdc))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            back,
            [
                (Vital::Spo2, 97.0, Some(150_456)),
                (Vital::Spo2, 86.0, Some(150_456)),
                (Vital::NibpSystolic, 165.0, Some(150_021)),
                (Vital::NibpDiastolic, 105.0, Some(150_022)),
            ]
        );
        let refused = items.iter().filter(|i| i.is_err()).count();
        assert_eq!(refused, 3, "the three ORU^R40 alarm messages: {items:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn hl7_export_parses_back_with_its_fields() {
        let (dir, conn, s) = db();
        let mut out = Vec::new();
        export_hl7(&conn, s, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let messages: Vec<Vec<&str>> = text
            .split("\r\n")
            .filter(|m| !m.is_empty())
            .map(|m| m.split('\r').collect())
            .collect();
        // Four numeric readings (the null one is not exported) and three alarm events.
        assert_eq!(messages.len(), 7);
        let first = &messages[0];
        let msh = fields(first[0]);
        assert_eq!(msh[1], "^~\\&");
        assert_eq!(msh[8], "ORU^R01^ORU_R01");
        assert_eq!(msh[11], "2.6");
        assert_eq!(
            msh[20],
            "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
        );
        assert_eq!(
            fields(first[1])[3],
            format!("SESSION-{s}^^^VIGIL^PI"),
            "no patient identity"
        );
        let obx = fields(first[3]);
        assert_eq!(obx[0], "OBX");
        assert_eq!(obx[2], "NM");
        assert_eq!(obx[3], "150456^MDC_PULS_OXIM_SAT_O2^MDC");
        assert_eq!(obx[5], "97");
        assert_eq!(obx[6], "262688^MDC_DIM_PERCENT^MDC");
        assert_eq!(obx[14], "20261123021320.000+0000");
        assert_eq!(obx[18], "ox-1");
        let systolic = fields(messages[2][3]);
        assert_eq!(
            (systolic[3], systolic[6]),
            (
                "150021^MDC_PRESS_BLD_NONINV_SYS^MDC",
                "266016^MDC_DIM_MMHG^MDC"
            )
        );

        let raised = &messages[4];
        assert_eq!(fields(raised[0])[8], "ORU^R40^ORU_R40");
        let facet = fields(raised[3]);
        assert_eq!(facet[3], "196670^MDC_EVT_LO^MDC");
        assert_eq!(
            facet[5], "SpO2 below 90% \\F\\ check probe",
            "delimiters escaped"
        );
        assert_eq!(facet[8], "L~PM~SP", "OBX-8: limit, priority, source");
        assert_eq!(facet[11], "F");
        assert_eq!(facet[18], "ox-1");
        assert_eq!(fields(raised[4])[5], "start");
        assert_eq!(fields(raised[5])[5], "active");
        let acked = &messages[5];
        assert_eq!(fields(acked[4])[5], "inactivate");
        assert_eq!(fields(acked[6])[5], "alert-acknowledged");
        assert_eq!(fields(messages[6][4])[5], "end");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn csv_and_json_lines_hold_every_reading() {
        let (dir, conn, s) = db();
        let mut csv = Vec::new();
        export_csv(&conn, s, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 6, "{csv}");
        assert_eq!(
            lines[0],
            "session,received_at,device,vital,value,unavailable,unit,mdc,flags"
        );
        assert!(
            lines[5].ends_with(",bpm,149530,\"[\"\"sensor_off\"\"]\""),
            "{}",
            lines[5]
        );
        conn.execute(
            "INSERT INTO links (session, device, state, reason, at) VALUES
             (?1, 'ox-1', 'disconnected', 'cable unplugged', 1795400030000)",
            params![s],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO actions (session, action, person, target, at) VALUES
             (?1, 'ack', 'Nurse Okafor', 'A1', 1795400070000)",
            params![s],
        )
        .unwrap();
        let mut jsonl = Vec::new();
        export_jsonl(&conn, s, &mut jsonl).unwrap();
        let values: Vec<serde_json::Value> = String::from_utf8(jsonl)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(values[0]["profile"], "kap-default", "the profile in force");
        let link = values.iter().find(|v| v["kind"] == "link").unwrap();
        assert_eq!(
            link,
            &serde_json::json!({"kind": "link", "device": "ox-1", "link": "disconnected",
                "reason": "cable unplugged", "at": "2026-11-23T02:13:50.000Z"})
        );
        let action = values.iter().find(|v| v["kind"] == "action").unwrap();
        assert_eq!(
            action,
            &serde_json::json!({"kind": "action", "action": "ack", "person": "Nurse Okafor",
                "target": "A1", "at": "2026-11-23T02:14:30.000Z"})
        );
        let kinds: Vec<String> = values
            .iter()
            .map(|v| v["kind"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(kinds.iter().filter(|k| *k == "reading").count(), 5);
        assert_eq!(kinds.iter().filter(|k| *k == "alarm").count(), 3);
        assert_eq!(kinds[0], "session");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Alarm steps read from their typed columns export and summarise byte for byte as the
    /// same steps read from display JSON did (the JSON beside a typed row is not read).
    #[test]
    fn typed_alarm_steps_export_and_report_exactly_as_display_json_did() {
        let outputs = |typed| {
            let (dir, conn, s) = db_with(typed);
            let mut out = Vec::new();
            export_jsonl(&conn, s, &mut out).unwrap();
            export_hl7(&conn, s, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap() + &report(&conn, s).unwrap();
            std::fs::remove_dir_all(dir).unwrap();
            text
        };
        let (json, typed) = (outputs(false), outputs(true));
        assert!(json.contains(r#""kind":"alarm""#), "{json}");
        assert_eq!(typed, json);
    }

    /// A step whose stored name is none of the engine's stops the review with an error naming
    /// the step and the name; it is never shown as another priority.
    #[test]
    fn a_step_with_an_unknown_priority_is_named_not_summarised_as_another() {
        let (dir, conn, s) = db_with(true);
        conn.execute(
            "UPDATE alarm_events SET priority = 'urgent' WHERE event = 'acknowledged'",
            [],
        )
        .unwrap();
        let e = report(&conn, s).unwrap_err().to_string();
        assert_eq!(
            e,
            "alarm event 2 (spo2-low#3) cannot be read back: unknown priority `urgent`"
        );
        assert!(export_jsonl(&conn, s, &mut Vec::new()).is_err());
        assert!(export_hl7(&conn, s, &mut Vec::new()).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_report_summarises_vitals_bp_and_alarms() {
        let (dir, conn, s) = db();
        let r = report(&conn, s).unwrap();
        assert!(
            r.contains("spo2                 86.0     97.0     91.5        2"),
            "{r}"
        );
        assert!(r.contains("pre-dose baseline 120/78 mmHg"), "{r}");
        assert!(r.contains("peak after dose 165/105 mmHg at 2 min"), "{r}");
        assert!(
            r.contains("spo2-low#3 medium  SpO2 below 90% | check probe"),
            "{r}"
        );
        assert!(r.contains("acknowledged by Nurse Okafor after 15 s"), "{r}");
        assert!(r.contains("spo2-low               60 s"), "{r}");
        assert!(report(&conn, 999)
            .unwrap_err()
            .to_string()
            .contains("no session 999"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
