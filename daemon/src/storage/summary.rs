//! What the review commands list, and pruning past the retention period.

use super::now_ms;
use rusqlite::{params, Connection};
use serde::Serialize;
use std::time::Duration;

/// A summary line of one session, for `vigil sessions`.
#[derive(Debug, Serialize)]
pub struct SessionSummary {
    /// Id.
    pub id: i64,
    /// Room.
    pub room: String,
    /// Start (RFC 3339).
    pub started: String,
    /// Dose (RFC 3339).
    pub dose: Option<String>,
    /// End (RFC 3339); none while open.
    pub ended: Option<String>,
    /// Readings kept.
    pub readings: i64,
    /// Alarms raised.
    pub alarms: i64,
}

/// RFC 3339 of unix milliseconds, held between 1970 and 9999 (humantime fails outside: a
/// damaged row must not stop `vigil record`).
pub fn rfc3339(ms: i64) -> String {
    let ms = (ms.max(0) as u64).min(253_402_300_799_999);
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Every session, newest first.
pub fn sessions(conn: &Connection) -> rusqlite::Result<Vec<SessionSummary>> {
    let mut stmt = conn.prepare(
        "SELECT s.id, s.room, s.started_at, s.dose_at, s.ended_at,
                (SELECT COUNT(*) FROM readings r WHERE r.session = s.id),
                (SELECT COUNT(DISTINCT alarm_id) FROM alarm_events a WHERE a.session = s.id AND a.event = ?1)
         FROM sessions s ORDER BY s.id DESC",
    )?;
    let raised = crate::core::wire_name(&vigil_alarm::AlarmChange::Raised);
    let rows = stmt.query_map(params![raised], |r| {
        Ok(SessionSummary {
            id: r.get(0)?,
            room: r.get(1)?,
            started: rfc3339(r.get(2)?),
            dose: r.get::<_, Option<i64>>(3)?.map(rfc3339),
            ended: r.get::<_, Option<i64>>(4)?.map(rfc3339),
            readings: r.get(5)?,
            alarms: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// Deletes sessions that ended more than `days` ago, with everything recorded in them.
pub fn prune(conn: &Connection, days: u32) -> rusqlite::Result<usize> {
    let cutoff = now_ms() - i64::from(days) * 86_400_000;
    let tx = conn.unchecked_transaction()?;
    let ids: Vec<i64> = tx
        .prepare("SELECT id FROM sessions WHERE ended_at IS NOT NULL AND ended_at < ?1")?
        .query_map(params![cutoff], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in &ids {
        for table in ["readings", "links", "alarm_events", "actions"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE session = ?1"),
                params![id],
            )?;
        }
        tx.execute("DELETE FROM sessions WHERE id = ?1", params![id])?;
    }
    // Row ids are positions that readers by position (the forwarders) remember. SQLite gives a
    // new row the highest id left plus one, so once the newest rows are gone, new ones get ids
    // at or below a remembered position and would be taken as already sent: bring every
    // remembered position (the forwarders' and the central publisher's) down to the last row left.
    tx.execute(
        "UPDATE forward_progress SET
             block_done = CASE WHEN reading_after > (SELECT coalesce(max(rowid), 0) FROM readings)
                          THEN 0 ELSE block_done END,
             reading_after = min(reading_after, (SELECT coalesce(max(rowid), 0) FROM readings)),
             alarm_after = min(alarm_after, (SELECT coalesce(max(rowid), 0) FROM alarm_events))",
        [],
    )?;
    tx.execute(
        "UPDATE central_progress SET
             alarm_after = min(alarm_after, (SELECT coalesce(max(rowid), 0) FROM alarm_events)),
             link_after = min(link_after, (SELECT coalesce(max(rowid), 0) FROM links))",
        [],
    )?;
    tx.commit()?;
    Ok(ids.len())
}
