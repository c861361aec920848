//! The record's query module: what review and export read, and how. The SQL that reads a
//! finished session lives here, beside the schema, not in the commands that print it.

use rusqlite::{params, Connection};
use vigil_protocol::display::AlarmInfo;

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

/// The session's readings in receive order.
pub fn readings(conn: &Connection, session: i64) -> anyhow::Result<Vec<StoredReading>> {
    let mut stmt = conn.prepare(
        "SELECT device, vital, value, unavailable, unit, mdc, flags, received_at FROM readings
         WHERE session = ?1 ORDER BY received_at, rowid",
    )?;
    let rows = stmt.query_map(params![session], |r| {
        Ok(StoredReading {
            device: r.get(0)?,
            vital: r.get(1)?,
            value: r.get(2)?,
            unavailable: r.get(3)?,
            unit: r.get(4)?,
            mdc: r.get(5)?,
            flags: r.get(6)?,
            received_at: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The session's alarm events in order: (event, alarm, unix ms).
pub fn alarm_events(
    conn: &Connection,
    session: i64,
) -> anyhow::Result<Vec<(String, AlarmInfo, i64)>> {
    let mut stmt = conn.prepare(
        "SELECT event, alarm, at FROM alarm_events WHERE session = ?1 ORDER BY at, rowid",
    )?;
    let rows = stmt.query_map(params![session], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (event, json, at) = row?;
        out.push((event, serde_json::from_str(&json)?, at));
    }
    Ok(out)
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
