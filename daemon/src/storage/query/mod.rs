//! The record's query module: what review, export and the forwarder read, and how. The SQL
//! that reads the record back lives here, beside the schema, not in the commands that print it
//! nor in the forwarder that sends it. Alarm steps come back in the engine's own types
//! ([`AlarmStep`], read by [`steps`]).

mod steps;

use rusqlite::{params, Connection};
pub use steps::{
    alarm_steps, alarm_steps_after, last_alarm_step_position, newest_alarm_steps_between,
    AlarmStep, ReadStep, StepError, UnreadableStep,
};

/// One stored reading.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredReading {
    /// Device id.
    pub device: String,
    /// Vital name.
    pub vital: String,
    /// Value, when there was one.
    pub value: Option<f64>,
    /// Why there was none.
    pub unavailable: Option<String>,
    /// Unit symbol.
    pub unit: String,
    /// MDC code.
    pub mdc: Option<u32>,
    /// Quality flags (JSON list).
    pub flags: String,
    /// Receive time, unix ms.
    pub received_at: i64,
}

/// A session's header row: (room, started at, dose at, baseline systolic/diastolic).
pub type SessionHeader = (String, i64, Option<i64>, Option<(f64, f64)>);

/// The session's row, or an error naming the session.
pub fn session_room(conn: &Connection, session: i64) -> anyhow::Result<SessionHeader> {
    conn.query_row(
        "SELECT room, started_at, dose_at, baseline_systolic, baseline_diastolic FROM sessions WHERE id = ?1",
        params![session],
        |r| {
            let base: (Option<f64>, Option<f64>) = (r.get(3)?, r.get(4)?);
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, base.0.zip(base.1)))
        },
    )
    .map_err(|_| anyhow::anyhow!("no session {session} in this database (`vigil sessions` lists them)"))
}

/// A reading at its place in the record.
#[derive(Debug, Clone)]
pub struct PositionedReading {
    /// Its position in the record (the row id): later readings have higher positions.
    pub position: i64,
    /// The session it belongs to.
    pub session: i64,
    /// The reading.
    pub reading: StoredReading,
}

/// The columns [`stored_reading`] reads, in its order.
const READING_COLUMNS: &str = "device, vital, value, unavailable, unit, mdc, flags, received_at";

fn stored_reading(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<StoredReading> {
    Ok(StoredReading {
        device: r.get(first)?,
        vital: r.get(first + 1)?,
        value: r.get(first + 2)?,
        unavailable: r.get(first + 3)?,
        unit: r.get(first + 4)?,
        mdc: r.get(first + 5)?,
        flags: r.get(first + 6)?,
        received_at: r.get(first + 7)?,
    })
}

/// The session's readings in receive order.
pub fn readings(conn: &Connection, session: i64) -> anyhow::Result<Vec<StoredReading>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {READING_COLUMNS} FROM readings WHERE session = ?1 ORDER BY received_at, rowid"
    ))?;
    let rows = stmt.query_map(params![session], |r| stored_reading(r, 0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// At most `limit` readings recorded after position `after`, of every session, in the order
/// they were recorded: a reader that remembers the last position it handled (the forwarder)
/// reads on from there, a batch at a time.
pub fn readings_after(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> rusqlite::Result<Vec<PositionedReading>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT rowid, session, {READING_COLUMNS} FROM readings
         WHERE rowid > ?1 ORDER BY rowid LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![after, limit_sql(limit)], |r| {
        Ok(PositionedReading {
            position: r.get(0)?,
            session: r.get(1)?,
            reading: stored_reading(r, 2)?,
        })
    })?;
    rows.collect()
}

/// The position of the last reading recorded; 0 when there is none.
pub fn last_reading_position(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(max(rowid), 0) FROM readings", [], |r| {
        r.get(0)
    })
}

/// A batch size as SQLite's LIMIT takes it.
fn limit_sql(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The profile the session recorded (JSON text).
pub fn session_profile(conn: &Connection, session: i64) -> anyhow::Result<String> {
    Ok(conn.query_row(
        "SELECT profile FROM sessions WHERE id = ?1",
        params![session],
        |r| r.get(0),
    )?)
}

/// A link event or an action: name, value, detail, unix ms.
pub type TimelineRow = (String, String, Option<String>, i64);

/// The session's link events or actions, as `(name, value, detail, unix ms)` rows of the
/// columns given; `table` is `links` or `actions`.
pub fn timeline_rows(
    conn: &Connection,
    session: i64,
    table: &str,
    [name, value, detail]: [&str; 3],
) -> anyhow::Result<Vec<TimelineRow>> {
    anyhow::ensure!(
        matches!(table, "links" | "actions"),
        "no timeline table {table}"
    );
    let mut stmt = conn.prepare(&format!(
        "SELECT {name}, {value}, {detail}, at FROM {table} WHERE session = ?1"
    ))?;
    let rows = stmt.query_map(params![session], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests;
