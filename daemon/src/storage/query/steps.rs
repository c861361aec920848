//! Alarm steps read back from the record, typed: one reader of the `alarm_events` rows for
//! review, export and the forwarder, and the one place that still parses the display JSON of
//! rows recorded before migration 5.

use super::limit_sql;
use crate::core::{from_wire_name, UnknownName};
use crate::storage::RecordedAlarm;
use rusqlite::{params, Connection, Row};
use vigil_alarm::{AlarmChange, AlarmKind, AlarmState, Priority};
use vigil_protocol::display::AlarmInfo;
use vigil_protocol::Vital;

/// One step of an alarm's life as the record holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmStep {
    /// Its position in the record (the row id): later steps have higher positions.
    pub position: i64,
    /// The session it belongs to.
    pub session: i64,
    /// What happened to the alarm.
    pub change: AlarmChange,
    /// The alarm after the step.
    pub alarm: RecordedAlarm,
    /// When (unix ms).
    pub at: i64,
}

/// Why a stored alarm step cannot be read back. Nothing is guessed: an unknown name is never
/// read as a default.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A name that is none of its enum's.
    #[error(transparent)]
    UnknownName(#[from] UnknownName),
    /// A column the step needs is empty.
    #[error("no {0}")]
    Missing(&'static str),
    /// A column holds a value of the wrong type.
    #[error("{0}: {1}")]
    Column(&'static str, rusqlite::Error),
    /// A time in the display JSON of an older row is not RFC 3339.
    #[error("unreadable time `{0}`")]
    Time(String),
    /// The display JSON of an older row cannot be read.
    #[error("its display JSON cannot be read: {0}")]
    Json(#[from] serde_json::Error),
}

/// A stored alarm step that cannot be read back, with where it is.
#[derive(Debug, thiserror::Error)]
#[error("alarm event {position} ({alarm_id}) cannot be read back: {error}")]
pub struct UnreadableStep {
    /// Its position in the record.
    pub position: i64,
    /// Its alarm's id, as far as it can be read.
    pub alarm_id: String,
    /// What cannot be read (said in this error's message, so not its source too).
    pub error: StepError,
}

/// An alarm step, or why it cannot be read.
pub type ReadStep = Result<AlarmStep, UnreadableStep>;

/// The columns [`read_step`] reads, in its order.
const STEP_COLUMNS: &str = "rowid, session, alarm_id, event, at, kind, rule, vital, device,
    priority, message, state, since_at, acknowledged_by, acknowledged_at, latching,
    awaiting_confirmation, value, alarm";

/// Every step of the session's alarms, in the order they happened.
pub fn alarm_steps(conn: &Connection, session: i64) -> rusqlite::Result<Vec<ReadStep>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {STEP_COLUMNS} FROM alarm_events WHERE session = ?1 ORDER BY at, rowid"
    ))?;
    let rows = stmt.query_map(params![session], |r| Ok(read_step(r)))?;
    rows.collect()
}

/// At most `limit` alarm steps recorded after position `after`, of every session, in the order
/// they were recorded: a reader that remembers the last position it handled (the forwarder)
/// reads on from there, a batch at a time.
pub fn alarm_steps_after(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> rusqlite::Result<Vec<ReadStep>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {STEP_COLUMNS} FROM alarm_events WHERE rowid > ?1 ORDER BY rowid LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![after, limit_sql(limit)], |r| Ok(read_step(r)))?;
    rows.collect()
}

/// The newest `limit` alarm steps recorded after position `after` up to position `upto`, newest
/// first: what a publisher cut off before a restart replays (the central's, which keeps the
/// newest when it cannot replay all).
pub fn newest_alarm_steps_between(
    conn: &Connection,
    after: i64,
    upto: i64,
    limit: usize,
) -> rusqlite::Result<Vec<ReadStep>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {STEP_COLUMNS} FROM alarm_events WHERE rowid > ?1 AND rowid <= ?2
         ORDER BY rowid DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![after, upto, limit_sql(limit)], |r| Ok(read_step(r)))?;
    rows.collect()
}

/// The position of the last alarm step recorded; 0 when there is none.
pub fn last_alarm_step_position(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT coalesce(max(rowid), 0) FROM alarm_events",
        [],
        |r| r.get(0),
    )
}

/// One column, its read error named.
fn column<T: rusqlite::types::FromSql>(
    r: &Row<'_>,
    i: usize,
    name: &'static str,
) -> Result<T, StepError> {
    r.get(i).map_err(|e| StepError::Column(name, e))
}

/// A required column.
fn required<T: rusqlite::types::FromSql>(
    r: &Row<'_>,
    i: usize,
    name: &'static str,
) -> Result<T, StepError> {
    column::<Option<T>>(r, i, name)?.ok_or(StepError::Missing(name))
}

/// Reads one row of [`STEP_COLUMNS`].
fn read_step(r: &Row<'_>) -> ReadStep {
    let position = r.get(0).unwrap_or(-1);
    let read = || -> Result<AlarmStep, StepError> {
        let event: String = required(r, 3, "event")?;
        let alarm = match column::<Option<String>>(r, 5, "kind")? {
            Some(kind) => typed_alarm(r, &kind)?,
            // Recorded before migration 5: the alarm is in its display JSON only.
            None => older_alarm(&required::<String>(r, 18, "alarm")?)?,
        };
        Ok(AlarmStep {
            position,
            session: required(r, 1, "session")?,
            change: from_wire_name("alarm change", &event)?,
            alarm,
            at: required(r, 4, "at")?,
        })
    };
    read().map_err(|error| UnreadableStep {
        position,
        alarm_id: r.get(2).unwrap_or_else(|_| "unknown id".into()),
        error,
    })
}

/// The alarm from the typed columns of a row recorded since migration 5.
fn typed_alarm(r: &Row<'_>, kind: &str) -> Result<RecordedAlarm, StepError> {
    let vital = match column::<Option<String>>(r, 7, "vital")? {
        Some(name) => Some(Vital::from_name(&name).ok_or(UnknownName {
            what: "vital",
            name,
        })?),
        None => None,
    };
    Ok(RecordedAlarm {
        id: required(r, 2, "alarm_id")?,
        rule: required(r, 6, "rule")?,
        kind: from_wire_name("alarm kind", kind)?,
        vital,
        device: column(r, 8, "device")?,
        priority: from_wire_name("priority", &required::<String>(r, 9, "priority")?)?,
        message: required(r, 10, "message")?,
        state: from_wire_name("alarm state", &required::<String>(r, 11, "state")?)?,
        since: required(r, 12, "since_at")?,
        acknowledged_by: column(r, 13, "acknowledged_by")?,
        acknowledged_at: column(r, 14, "acknowledged_at")?,
        latching: required(r, 15, "latching")?,
        awaiting_confirmation: column::<Option<bool>>(r, 16, "awaiting_confirmation")?
            .unwrap_or(false),
        value: column(r, 17, "value")?,
    })
}

/// The alarm from the display JSON a row recorded before migration 5 holds (review and export
/// read these rows as they always did).
fn older_alarm(json: &str) -> Result<RecordedAlarm, StepError> {
    let a: AlarmInfo = serde_json::from_str(json)?;
    let unix_ms = |text: &str| {
        humantime::parse_rfc3339(text)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .ok_or_else(|| StepError::Time(text.to_string()))
    };
    Ok(RecordedAlarm {
        kind: from_wire_name::<AlarmKind>("alarm kind", &a.kind)?,
        priority: from_wire_name::<Priority>("priority", &a.priority)?,
        state: from_wire_name::<AlarmState>("alarm state", &a.state)?,
        since: unix_ms(&a.since)?,
        acknowledged_at: a.acknowledged_at.as_deref().map(unix_ms).transpose()?,
        id: a.id,
        rule: a.rule,
        vital: a.vital,
        device: a.device,
        message: a.message,
        acknowledged_by: a.acknowledged_by,
        latching: a.latching,
        awaiting_confirmation: a.awaiting_confirmation,
        value: a.value,
    })
}
