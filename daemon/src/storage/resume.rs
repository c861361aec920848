//! Resuming the session a crash left open, or starting one.

use super::alarms::{next_alarm_seq, StoredAlarm};
use super::now_ms;
use super::restore::{bp_measurements, session_row};
use rusqlite::{params, Connection, OptionalExtension};
use vigil_protocol::display::TrendSeries;

/// The session a daemon resumes or starts.
#[derive(Debug, Clone, Default)]
pub struct Resumed {
    /// Session id.
    pub session: i64,
    /// It was left open by a crash and is resumed.
    pub resumed: bool,
    /// Dose time (unix ms) and who marked it.
    pub dose: Option<(i64, String)>,
    /// Baseline BP.
    pub baseline: Option<(f64, f64)>,
    /// When the baseline measurement was taken (unix ms).
    pub baseline_taken: Option<i64>,
    /// Who set the baseline, when a person did.
    pub baseline_by: Option<String>,
    /// Complete valid BP measurements of the session (unix ms, systolic, diastolic), oldest
    /// first.
    pub bp_measurements: Vec<(i64, f64, f64)>,
    /// Stored alarm or session rows that could not be read back (logged, each with its id).
    pub unreadable: Vec<String>,
    /// The lowest alarm occurrence number the session has not used.
    pub next_alarm_seq: u64,
    /// Alarms active, acknowledged or latched when the previous run stopped.
    pub alarms: Vec<StoredAlarm>,
    /// When the last reading was recorded (unix ms).
    pub last_reading_at: Option<i64>,
    /// The last value of each second for every (device, vital), over the trend window before
    /// the last reading: the provider's trend chart survives the restart. Points are (receive
    /// time in unix ms, value in the vital's canonical unit), only values an alarm could act on,
    /// as the live trend keeps.
    pub trend: Vec<TrendSeries>,
}

/// Resumes the room's open session (left by a crash) or starts a new one.
pub fn resume_or_start(conn: &Connection, room: &str, profile: &str) -> rusqlite::Result<Resumed> {
    let open: Option<(i64, String)> = conn
        .query_row(
            "SELECT id, profile FROM sessions
             WHERE room = ?1 AND ended_at IS NULL ORDER BY id DESC LIMIT 1",
            params![room],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((session, profile_then)) = open else {
        conn.execute(
            "INSERT INTO sessions (room, started_at, profile) VALUES (?1, ?2, ?3)",
            params![room, now_ms(), profile],
        )?;
        return Ok(Resumed {
            session: conn.last_insert_rowid(),
            ..Resumed::default()
        });
    };
    // Limits change only through the configuration, so a resumed session whose configuration
    // was edited in between records the profile now in force, and when.
    let in_force = conn
        .query_row(
            "SELECT target FROM actions WHERE session = ?1 AND action = 'profile_changed'
             ORDER BY rowid DESC LIMIT 1",
            params![session],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten()
        .unwrap_or(profile_then);
    if in_force != profile {
        conn.execute(
            "INSERT INTO actions (session, action, person, target, at)
             VALUES (?1, 'profile_changed', 'configuration file', ?2, ?3)",
            params![session, profile, now_ms()],
        )?;
    }
    let mut unreadable = Vec::new();
    let row = session_row(conn, session, &mut unreadable)?;
    let alarms = super::alarms::open_alarms(conn, session, &mut unreadable)?;
    let last_reading_at = conn
        .query_row(
            "SELECT MAX(received_at) FROM readings WHERE session = ?1",
            params![session],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let trend = match last_reading_at {
        Some(last) => trend_before(conn, session, last, &mut unreadable)?,
        None => Vec::new(),
    };
    let bp_measurements = bp_measurements(conn, session, &mut unreadable)?;
    Ok(Resumed {
        session,
        resumed: true,
        dose: row.dose,
        baseline: row.baseline,
        baseline_taken: row.baseline_taken,
        baseline_by: row.baseline_by,
        bp_measurements,
        next_alarm_seq: next_alarm_seq(conn, session)?,
        unreadable,
        alarms,
        last_reading_at,
        trend,
    })
}

/// The last number recorded in each second of the trend window ending at `last` (unix ms), per
/// device and vital. Rows the model cannot read back are skipped; a row whose columns cannot
/// be read at all is named in `unreadable` (one damaged row must not stop the resume).
fn trend_before(
    conn: &Connection,
    session: i64,
    last: i64,
    unreadable: &mut Vec<String>,
) -> rusqlite::Result<Vec<TrendSeries>> {
    let since = last - crate::trend::TREND_POINTS as i64 * 1000;
    let mut stmt = conn.prepare(
        "SELECT device, vital, value, unit, flags, received_at, rowid FROM readings
         WHERE rowid IN (SELECT MAX(rowid) FROM readings
                         WHERE session = ?1 AND received_at > ?2 AND value IS NOT NULL
                         GROUP BY device, vital, received_at / 1000)
         ORDER BY received_at",
    )?;
    let mut rows = stmt.query(params![session, since])?;
    let mut series: Vec<TrendSeries> = Vec::new();
    while let Some(row) = rows.next()? {
        let read = || -> rusqlite::Result<_> {
            let (Some(vital), Some(unit), Ok(flags)) = (
                vigil_protocol::Vital::from_name(row.get_ref(1)?.as_str()?),
                vigil_protocol::Unit::from_symbol(row.get_ref(3)?.as_str()?),
                serde_json::from_str(row.get_ref(4)?.as_str()?),
            ) else {
                return Ok(None);
            };
            let reading =
                vigil_protocol::Reading::number(vital, row.get(2)?, unit).with_flags(flags);
            let at_ms: i64 = row.get(5)?;
            let device = row.get_ref(0)?.as_str()?;
            Ok(reading.clinical_value().map(|v| (vital, v, device, at_ms)))
        };
        let (vital, value, device, at_ms) = match read() {
            Ok(Some(point)) => point,
            Ok(None) => continue,
            Err(e) => {
                unreadable_reading(row, session, &e, unreadable);
                continue;
            }
        };
        match series
            .iter_mut()
            .find(|s| s.vital == vital && s.device == device)
        {
            Some(s) => s.points.push((at_ms, value)),
            None => series.push(TrendSeries {
                device: device.to_string(),
                vital,
                points: vec![(at_ms, value)],
            }),
        }
    }
    Ok(series)
}

/// A stored reading row that cannot be read back: logged with its row id and named, so that
/// the core raises `record-unreadable`; the resume goes on without it.
pub(super) fn unreadable_reading(
    row: &rusqlite::Row<'_>,
    session: i64,
    e: &rusqlite::Error,
    unreadable: &mut Vec<String>,
) {
    let id: i64 = row.get("rowid").unwrap_or(-1);
    tracing::error!(session, reading = id, error = %e, "stored reading could not be read back");
    let name = format!("reading {id}");
    if !unreadable.contains(&name) {
        unreadable.push(name);
    }
}

/// Ends a session (graceful shutdown).
pub fn end_session(conn: &Connection, session: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE sessions SET ended_at = ?1 WHERE id = ?2",
        params![now_ms(), session],
    )?;
    Ok(())
}
