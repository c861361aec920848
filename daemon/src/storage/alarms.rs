//! Alarms in the record: typed columns written from the engine's view of an alarm, and read
//! back after a crash as the engine's own restore types (review, export and the forwarder read
//! them through `query.rs`).

use super::resume::Resumed;
use crate::clock::Clock;
use crate::core::{from_wire_name, wire_name};
use rusqlite::{params, Connection};
use vigil_alarm::{
    Act, AlarmChange, AlarmKind, AlarmState, AlarmView, Bp, Priority, RestoredAlarm,
    RestoredSession,
};
use vigil_protocol::Vital;

/// An open alarm as a restart reads it back from the typed columns. Fields are optional where a
/// row written by an older version, or damaged, may lack them: what cannot be read is named,
/// never guessed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlarm {
    /// `<rule id>#<number>`, as the display knows it.
    pub id: String,
    /// The rule that raised it.
    pub rule: Option<String>,
    /// Its occurrence number within the session.
    pub seq: Option<u64>,
    /// The device concerned.
    pub device: Option<String>,
    /// The vital concerned.
    pub vital: Option<Vital>,
    /// Its priority; `None` when the stored name is not one.
    pub priority: Option<Priority>,
    /// It was latched (its condition ended, it holds until reset).
    pub latched: bool,
    /// When it was declared (unix ms).
    pub since: Option<i64>,
    /// Who acknowledged it, and when (unix ms) when that can be read.
    pub acknowledged: Option<(String, Option<i64>)>,
    /// The latest value that bore on it.
    pub value: Option<f64>,
    /// A BP reading waits for a confirming repeat.
    pub awaiting_confirmation: bool,
}

/// An alarm at one step of its life, as the record writes it and review, export and the
/// forwarder read it back: the engine's own enums, times in unix ms.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedAlarm {
    /// `<rule id>#<number>`, as the display knows it.
    pub id: String,
    /// The rule that raised it.
    pub rule: String,
    /// Physiological or technical.
    pub kind: AlarmKind,
    /// The vital concerned.
    pub vital: Option<Vital>,
    /// The device concerned.
    pub device: Option<String>,
    /// Its priority.
    pub priority: Priority,
    /// What the display said.
    pub message: String,
    /// Where it was in its life after the step.
    pub state: AlarmState,
    /// When it was declared (unix ms).
    pub since: i64,
    /// Who acknowledged this occurrence.
    pub acknowledged_by: Option<String>,
    /// When (unix ms), when that can be read.
    pub acknowledged_at: Option<i64>,
    /// It holds after its condition ends, until reset.
    pub latching: bool,
    /// A BP reading waits for a confirming repeat.
    pub awaiting_confirmation: bool,
    /// The latest value that bore on it.
    pub value: Option<f64>,
}

impl RecordedAlarm {
    /// The alarm as the display protocol gives it (`AlarmInfo`): the export's JSON and the
    /// central's replay of steps it was not sent.
    pub fn display(&self) -> vigil_protocol::display::AlarmInfo {
        use crate::storage::rfc3339;
        vigil_protocol::display::AlarmInfo {
            id: self.id.clone(),
            rule: self.rule.clone(),
            kind: crate::core::wire_name(&self.kind),
            vital: self.vital,
            device: self.device.clone(),
            priority: crate::core::wire_name(&self.priority),
            message: self.message.clone(),
            state: crate::core::wire_name(&self.state),
            since: rfc3339(self.since),
            acknowledged_by: self.acknowledged_by.clone(),
            acknowledged_at: self.acknowledged_at.map(rfc3339),
            latching: self.latching,
            awaiting_confirmation: self.awaiting_confirmation,
            value: self.value,
        }
    }

    /// The engine's view of an alarm in the record's terms (times in unix ms).
    pub fn of(alarm: &AlarmView, clock: &Clock) -> RecordedAlarm {
        let unix_ms = |at| clock.unix_ms(tokio::time::Instant::from_std(at));
        RecordedAlarm {
            id: alarm.id.clone(),
            rule: alarm.rule.clone(),
            kind: alarm.kind,
            vital: alarm.vital,
            device: alarm.device.clone(),
            priority: alarm.priority,
            message: alarm.message.clone(),
            state: alarm.state,
            since: unix_ms(alarm.since),
            acknowledged_by: alarm.acknowledged.as_ref().map(|a| a.by.clone()),
            acknowledged_at: alarm.acknowledged.as_ref().map(|a| unix_ms(a.at)),
            latching: alarm.latching,
            awaiting_confirmation: alarm.awaiting_confirmation,
            value: alarm.value,
        }
    }

    /// Its occurrence number within the session: the engine names an occurrence
    /// `<rule id>#<number>`.
    pub fn seq(&self) -> Option<u64> {
        self.id
            .strip_prefix(self.rule.as_str())
            .and_then(|n| n.strip_prefix('#'))
            .and_then(|n| n.parse().ok())
    }
}

/// Writes one alarm step in typed columns, and the alarm as the display received it in `alarm`.
/// Nothing reads that JSON for these rows; it is written because the column cannot be NULL
/// (migration 1 made it so, and only a table rebuild could change that) and an older daemon
/// rolled back to reads it: see `docs/architecture.md`.
pub(super) fn write(
    conn: &Connection,
    session: i64,
    change: AlarmChange,
    alarm: &RecordedAlarm,
    display: &vigil_protocol::display::AlarmInfo,
    at: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at,
             rule, seq, device, vital, since_at, acknowledged_by, acknowledged_at, value,
             awaiting_confirmation, kind, message, latching)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
             ?19)",
    )?
    .execute(params![
        session,
        alarm.id,
        wire_name(&change),
        wire_name(&alarm.state),
        wire_name(&alarm.priority),
        serde_json::to_string(display).unwrap_or_default(),
        at,
        alarm.rule,
        alarm.seq().map(|s| s as i64),
        alarm.device,
        alarm.vital.map(Vital::name),
        alarm.since,
        alarm.acknowledged_by,
        alarm.acknowledged_at,
        alarm.value,
        alarm.awaiting_confirmation,
        wire_name(&alarm.kind),
        alarm.message,
        alarm.latching,
    ])?;
    Ok(())
}

/// The latest event of each alarm of the session that has not ended. A row without its rule
/// or number cannot be restored: it is logged and named in `unreadable`.
pub(super) fn open_alarms(
    conn: &Connection,
    session: i64,
    unreadable: &mut Vec<String>,
) -> rusqlite::Result<Vec<StoredAlarm>> {
    let mut stmt = conn.prepare(
        "SELECT e.alarm_id, e.rule, e.seq, e.device, e.vital, e.priority, e.state, e.since_at,
                e.acknowledged_by, e.acknowledged_at, e.value, e.awaiting_confirmation
         FROM alarm_events e
         JOIN (SELECT alarm_id, MAX(rowid) AS last FROM alarm_events WHERE session = ?1 GROUP BY alarm_id) l
           ON e.rowid = l.last
         WHERE e.state IN (?2, ?3, ?4)",
    )?;
    let mut alarms = Vec::new();
    let mut rows = stmt.query(params![
        session,
        wire_name(&AlarmState::Active),
        wire_name(&AlarmState::Acknowledged),
        wire_name(&AlarmState::Latched)
    ])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0).unwrap_or_else(|_| "(unknown id)".into());
        let vital: Result<Option<String>, _> = r.get(4);
        let read = || -> rusqlite::Result<Option<StoredAlarm>> {
            let (Some(rule), Some(seq), Ok(vital)) = (
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<i64>>(2)?,
                vital.map(|v| {
                    v.map(|name| Vital::from_name(&name).ok_or(name))
                        .transpose()
                }),
            ) else {
                return Ok(None);
            };
            let Ok(vital) = vital else { return Ok(None) };
            // An unknown priority is named, and the alarm comes back at High (see
            // `engine_session`); an unknown state is no alarm that can be restored.
            let priority = match r.get::<_, Option<String>>(5).ok().flatten() {
                Some(name) => from_wire_name::<Priority>("priority", &name)
                    .inspect_err(|e| tracing::error!(alarm = %id, session, error = %e, "stored alarm priority could not be read back"))
                    .ok(),
                None => None,
            };
            let Ok(state) = from_wire_name::<AlarmState>("alarm state", &r.get::<_, String>(6)?)
            else {
                return Ok(None);
            };
            Ok(Some(StoredAlarm {
                id: id.clone(),
                rule: Some(rule),
                seq: u64::try_from(seq).ok(),
                device: r.get(3)?,
                vital,
                priority,
                latched: state == AlarmState::Latched,
                since: r.get(7).ok().flatten(),
                acknowledged: r
                    .get::<_, Option<String>>(8)?
                    .map(|by| (by, r.get(9).ok().flatten())),
                value: r.get(10).ok().flatten(),
                awaiting_confirmation: r.get::<_, Option<bool>>(11)?.unwrap_or(false),
            }))
        };
        match read() {
            Ok(Some(alarm)) if alarm.seq.is_some() => alarms.push(alarm),
            // Never dropped silently: logged, and the core raises `record-unreadable`.
            _ => {
                tracing::error!(alarm = %id, session, "stored alarm could not be read back");
                unreadable.push(format!("alarm {id}"));
            }
        }
    }
    Ok(alarms)
}

/// The lowest occurrence number no alarm of the session has used, ended ones included: an id
/// is never given twice in a session.
pub(super) fn next_alarm_seq(conn: &Connection, session: i64) -> rusqlite::Result<u64> {
    let max: Option<i64> = conn.query_row(
        "SELECT MAX(seq) FROM alarm_events WHERE session = ?1",
        params![session],
        |r| r.get(0),
    )?;
    Ok(max.map_or(1, |m| u64::try_from(m).unwrap_or(0).saturating_add(1)))
}

impl Resumed {
    /// The session as the engine restores it, at `clock`'s now, with what could not be read
    /// back named. Nothing stored is dropped or lowered silently: an alarm whose priority or
    /// time cannot be read comes back at High, now, and is named.
    pub fn engine_session(&self, clock: &Clock) -> (RestoredSession, Vec<String>) {
        let now = clock.now().into_std();
        let instant = |ms: i64| clock.instant_of_unix_ms(ms);
        let mut unreadable = self.unreadable.clone();
        let mut alarms = Vec::new();
        for a in &self.alarms {
            let (Some(rule), Some(seq)) = (&a.rule, a.seq) else {
                unreadable.push(format!("alarm {}", a.id));
                continue;
            };
            let restored = RestoredAlarm {
                rule: rule.clone(),
                seq,
                device: a.device.clone(),
                vital: a.vital,
                priority: Priority::High,
                onset: now,
                since: now,
                acknowledged: None,
                latched: a.latched,
                value: a.value,
                awaiting_confirmation: a.awaiting_confirmation,
            };
            let (Some(priority), Some(since)) = (a.priority, a.since) else {
                tracing::error!(alarm = %a.id, "stored alarm could not be read back");
                unreadable.push(format!("alarm {}", a.id));
                alarms.push(restored);
                continue;
            };
            let since = instant(since);
            alarms.push(RestoredAlarm {
                priority,
                onset: since,
                since,
                acknowledged: a.acknowledged.as_ref().map(|(by, at)| Act {
                    by: by.clone(),
                    at: at.map_or(now, instant),
                }),
                ..restored
            });
        }
        let baseline = self.baseline.map(|(systolic, diastolic)| {
            let taken = self.baseline_taken.map_or(now, instant);
            let set_by = self.baseline_by.clone().map(|by| Act { by, at: taken });
            (
                Bp {
                    systolic,
                    diastolic,
                },
                taken,
                set_by,
            )
        });
        let session = RestoredSession {
            now,
            dose: self.dose.as_ref().map(|(at, by)| Act {
                by: by.clone(),
                at: instant(*at),
            }),
            baseline,
            bp_measurements: self
                .bp_measurements
                .iter()
                .map(|&(ms, systolic, diastolic)| {
                    (
                        instant(ms),
                        Bp {
                            systolic,
                            diastolic,
                        },
                    )
                })
                .collect(),
            alarms,
            next_seq: self.next_alarm_seq,
        };
        (session, unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::MIGRATIONS;
    use super::super::{open, resume_or_start};
    use rusqlite::{params, Connection};
    use vigil_alarm::Priority;
    use vigil_protocol::Vital;

    /// A record written before alarms had typed columns is migrated when it is opened: a
    /// resumed session restores its alarm from the migrated columns, names the row whose JSON
    /// cannot be read, and still never gives that row's number again.
    #[test]
    fn alarms_recorded_as_display_json_are_migrated_and_restored() {
        let dir = std::env::temp_dir().join(format!(
            "vigil-migrate-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v.db");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO meta VALUES ('schema_version', '2');",
            )
            .unwrap();
            old.execute_batch(MIGRATIONS[0]).unwrap();
            old.execute_batch(MIGRATIONS[1]).unwrap();
            old.execute(
                "INSERT INTO sessions (room, started_at, profile) VALUES ('Room 7', 0, '{}')",
                [],
            )
            .unwrap();
            let session = old.last_insert_rowid();
            let json = r#"{"id":"spo2-low#3","rule":"spo2-low","kind":"physiological","vital":"spo2","device":"ox","priority":"medium","message":"SpO2 low","state":"acknowledged","since":"2026-01-02T03:04:05.678Z","acknowledged_by":"Nurse Okafor","acknowledged_at":"2026-01-02T03:04:06.000Z","latching":false,"awaiting_confirmation":false,"value":86.0}"#;
            old.execute(
                "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at)
                 VALUES (?1, 'spo2-low#3', 'acknowledged', 'acknowledged', 'medium', ?2, 1000),
                        (?1, 'hr-high#9', 'raised', 'active', 'high', '{broken', 2000)",
                params![session, json],
            )
            .unwrap();
        }
        let conn = open(&path).unwrap();
        let resumed = resume_or_start(&conn, "Room 7", "{}").unwrap();
        assert_eq!(resumed.alarms.len(), 1, "{:?}", resumed.alarms);
        let a = &resumed.alarms[0];
        assert_eq!(a.rule.as_deref(), Some("spo2-low"));
        assert_eq!(a.seq, Some(3));
        assert_eq!(a.priority, Some(Priority::Medium));
        assert_eq!(a.vital, Some(Vital::Spo2));
        assert_eq!(a.device.as_deref(), Some("ox"));
        assert_eq!(a.since, Some(1_767_323_045_678));
        assert_eq!(
            a.acknowledged,
            Some(("Nurse Okafor".to_string(), Some(1_767_323_046_000)))
        );
        assert_eq!(a.value, Some(86.0));
        assert!(!a.latched);
        assert_eq!(resumed.unreadable, vec!["alarm hr-high#9".to_string()]);
        assert_eq!(resumed.next_alarm_seq, 10, "hr-high#9 was used");
        let _ = std::fs::remove_dir_all(dir);
    }
}
