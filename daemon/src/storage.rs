//! The session record: SQLite (bundled, WAL) at the config's `[storage] path`.
//!
//! Everything the room does is kept: sessions, every reading with its device and receive times,
//! link events, the alarm lifecycle, and every person's action. Writes go through a bounded
//! queue to one writer thread, batched into transactions, so the live path never waits on the
//! disk; a person's action is committed before the display hears it succeeded. When the disk
//! fails, monitoring goes on, the core raises "recording failed", and the writer keeps retrying.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use vigil_protocol::display::{AlarmInfo, LinkState, ReadingInfo};
use vigil_protocol::DeviceTime;

mod restore;
use restore::{bp_measurements, next_alarm_seq, session_row};

/// Schema migrations, applied in order; `meta.schema_version` says how many ran.
const MIGRATIONS: [&str; 2] = [
    r#"
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    dose_at INTEGER,
    dose_by TEXT,
    baseline_systolic REAL,
    baseline_diastolic REAL,
    profile TEXT NOT NULL
);
CREATE TABLE readings (
    session INTEGER NOT NULL REFERENCES sessions(id),
    device TEXT NOT NULL,
    vital TEXT NOT NULL,
    value REAL,
    unavailable TEXT,
    unit TEXT NOT NULL,
    mdc INTEGER,
    flags TEXT NOT NULL,
    device_time TEXT,
    received_at INTEGER NOT NULL
);
CREATE INDEX readings_by_session ON readings(session, received_at);
CREATE TABLE links (
    session INTEGER NOT NULL REFERENCES sessions(id),
    device TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    at INTEGER NOT NULL
);
CREATE TABLE alarm_events (
    session INTEGER NOT NULL REFERENCES sessions(id),
    alarm_id TEXT NOT NULL,
    event TEXT NOT NULL,
    state TEXT NOT NULL,
    priority TEXT NOT NULL,
    alarm TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX alarm_events_by_session ON alarm_events(session, alarm_id, at);
CREATE TABLE actions (
    session INTEGER NOT NULL REFERENCES sessions(id),
    action TEXT NOT NULL,
    person TEXT NOT NULL,
    target TEXT,
    at INTEGER NOT NULL
);
"#,
    // When the baseline measurement was taken, and who set it (`set_baseline`): restored after a
    // restart and shown on the display.
    r#"
ALTER TABLE sessions ADD COLUMN baseline_at INTEGER;
ALTER TABLE sessions ADD COLUMN baseline_by TEXT;
"#,
];

/// Something to write.
#[derive(Debug)]
pub enum Record {
    /// A reading as the display received it, its receive time (unix ms) and the device's own
    /// timestamp when the format carries one.
    Reading(Box<ReadingInfo>, i64, Option<DeviceTime>),
    /// A device's link changed.
    Link {
        /// Device.
        device: String,
        /// New state.
        state: LinkState,
        /// Why.
        reason: Option<String>,
        /// Unix ms.
        at: i64,
    },
    /// An alarm changed.
    Alarm {
        /// `raised`, `acknowledged`, ...
        event: String,
        /// The alarm after the change.
        alarm: Box<AlarmInfo>,
        /// Unix ms.
        at: i64,
    },
    /// The dose was marked.
    Dose {
        /// Unix ms.
        at: i64,
        /// Who.
        by: String,
        /// Pre-dose baseline.
        baseline: Option<(f64, f64)>,
        /// When the baseline measurement was taken (unix ms).
        baseline_taken: Option<i64>,
    },
    /// A person set the baseline from a later valid measurement.
    Baseline {
        /// Systolic and diastolic, mmHg.
        baseline: (f64, f64),
        /// When the measurement was taken (unix ms).
        taken: i64,
        /// Who set it.
        by: String,
    },
    /// The session ends (graceful shutdown).
    End,
    /// A person's action; `done` hears when it is committed (or why not).
    Action {
        /// `ack`, `reset`, `pause_audio`, `mark_dose`, `start_nibp`.
        action: String,
        /// Who.
        person: String,
        /// The alarm or device it concerned.
        target: Option<String>,
        /// Unix ms.
        at: i64,
        /// Committed, or the error.
        done: Option<oneshot::Sender<Result<(), String>>>,
    },
}

/// What the writer tells the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Writing works.
    Ok,
    /// Writing fails; why.
    Failing(String),
}

/// The live side's handle on the writer.
#[derive(Debug, Clone)]
pub struct Storage {
    tx: mpsc::Sender<Record>,
    dropped: Arc<AtomicU64>,
    urgent: Arc<Urgent>,
}

/// Wakes the writer early for a record somebody waits on.
#[derive(Debug, Default)]
struct Urgent {
    queued: std::sync::Mutex<bool>,
    wake: std::sync::Condvar,
}

impl Urgent {
    fn notify(&self) {
        if let Ok(mut queued) = self.queued.lock() {
            *queued = true;
            self.wake.notify_one();
        }
    }

    /// Waits until `timeout` passes or an urgent record is queued.
    fn wait(&self, timeout: Duration) {
        if let Ok(queued) = self.queued.lock() {
            if let Ok((mut queued, _)) = self.wake.wait_timeout_while(queued, timeout, |q| !*q) {
                *queued = false;
            }
        }
    }
}

impl Record {
    /// A person's action waits for its commit; alarms and the session's end are rare and
    /// matter most after a crash. These are committed at once, with whatever is queued before.
    fn is_urgent(&self) -> bool {
        matches!(
            self,
            Record::Action { .. } | Record::Alarm { .. } | Record::End
        )
    }
}

/// How many records may wait for the writer.
const QUEUE: usize = 20_000;
/// Most records in one transaction.
const BATCH: usize = 5000;
/// How long readings wait to be committed together: a crash loses at most about this much, and
/// a busy room (an oximeter sending 60 packets a second) commits four times a second rather than
/// sixty, which is most of what recording costs.
pub const COMMIT_EVERY: Duration = Duration::from_millis(250);
/// Most records kept in memory while the database fails (about an hour of a busy room).
const PENDING_MAX: usize = 100_000;
/// How long the writer waits before retrying a failing database.
const RETRY: Duration = Duration::from_secs(5);

impl Storage {
    /// Queues a record without waiting; a full queue drops it and counts the loss.
    pub fn record(&self, record: Record) {
        let urgent = record.is_urgent();
        match self.tx.try_send(record) {
            Ok(()) if urgent => self.urgent.notify(),
            Ok(()) => {}
            Err(e) => self.refused(e),
        }
    }

    /// A record the queue refused is lost and counted; a person waiting on it is told.
    fn refused(&self, e: mpsc::error::TrySendError<Record>) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if let mpsc::error::TrySendError::Full(Record::Action {
            done: Some(done), ..
        })
        | mpsc::error::TrySendError::Closed(Record::Action {
            done: Some(done), ..
        }) = e
        {
            let _ = done.send(Err("the session record is not keeping up".into()));
        }
    }

    /// Records lost: the writer could not keep up, or the database failed for so long that
    /// the records kept in memory for it reached their cap.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

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
    pub alarms: Vec<(AlarmInfo, i64)>,
    /// When the last reading was recorded (unix ms).
    pub last_reading_at: Option<i64>,
    /// The last value of each second for every (device, vital), over the trend window before
    /// the last reading: the provider's trend chart survives the restart.
    pub trend: Vec<TrendSeries>,
}

/// One restored trend series.
#[derive(Debug, Clone)]
pub struct TrendSeries {
    /// The device id.
    pub device: String,
    /// The vital.
    pub vital: vigil_protocol::Vital,
    /// (receive time in unix ms, value in the vital's canonical unit), oldest first; only values
    /// an alarm could act on, as the live trend keeps.
    pub points: Vec<(i64, f64)>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The name a unit-like enum has in the display protocol (`sensor_off`, `disconnected`), so the
/// record and the protocol spell states alike.
fn wire_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// Opens (creating and migrating) a database.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(2))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    migrate(&conn)?;
    Ok(conn)
}

/// Opens a database read-only, for the review commands.
pub fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    )?;
    let version: usize = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![(i + 1).to_string()],
        )?;
        tx.commit()?;
    }
    Ok(())
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
    // The latest event of each alarm that has not ended.
    let mut stmt = conn.prepare(
        "SELECT e.alarm_id, e.alarm, e.at FROM alarm_events e
         JOIN (SELECT alarm_id, MAX(rowid) AS last FROM alarm_events WHERE session = ?1 GROUP BY alarm_id) l
           ON e.rowid = l.last
         WHERE e.state IN ('active', 'acknowledged', 'latched')",
    )?;
    let mut alarms = Vec::new();
    let mut rows = stmt.query(params![session])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0).unwrap_or_else(|_| "(unknown id)".into());
        let alarm = r
            .get::<_, String>(1)
            .ok()
            .and_then(|json| serde_json::from_str::<AlarmInfo>(&json).ok());
        match (alarm, r.get::<_, i64>(2)) {
            (Some(a), Ok(at)) => alarms.push((a, at)),
            // Never dropped silently: logged, and the core raises `record-unreadable`.
            _ => {
                tracing::error!(alarm = %id, session, "stored alarm could not be read back");
                unreadable.push(format!("alarm {id}"));
            }
        }
    }
    let last_reading_at = conn
        .query_row(
            "SELECT MAX(received_at) FROM readings WHERE session = ?1",
            params![session],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let trend = match last_reading_at {
        Some(last) => trend_before(conn, session, last)?,
        None => Vec::new(),
    };
    Ok(Resumed {
        session,
        resumed: true,
        dose: row.dose,
        baseline: row.baseline,
        baseline_taken: row.baseline_taken,
        baseline_by: row.baseline_by,
        bp_measurements: bp_measurements(conn, session)?,
        next_alarm_seq: next_alarm_seq(conn, session)?,
        unreadable,
        alarms,
        last_reading_at,
        trend,
    })
}

/// The last number recorded in each second of the trend window ending at `last` (unix ms), per
/// device and vital. Rows the model cannot read back are skipped.
fn trend_before(conn: &Connection, session: i64, last: i64) -> rusqlite::Result<Vec<TrendSeries>> {
    let since = last - crate::hub::TREND_POINTS as i64 * 1000;
    let mut stmt = conn.prepare(
        "SELECT device, vital, value, unit, flags, received_at FROM readings
         WHERE rowid IN (SELECT MAX(rowid) FROM readings
                         WHERE session = ?1 AND received_at > ?2 AND value IS NOT NULL
                         GROUP BY device, vital, received_at / 1000)
         ORDER BY received_at",
    )?;
    let mut rows = stmt.query(params![session, since])?;
    let mut series: Vec<TrendSeries> = Vec::new();
    while let Some(row) = rows.next()? {
        let (Some(vital), Some(unit), Ok(flags)) = (
            vigil_protocol::Vital::from_name(row.get_ref(1)?.as_str()?),
            vigil_protocol::Unit::from_symbol(row.get_ref(3)?.as_str()?),
            serde_json::from_str(row.get_ref(4)?.as_str()?),
        ) else {
            continue;
        };
        let reading = vigil_protocol::Reading::number(vital, row.get(2)?, unit).with_flags(flags);
        let Some(value) = reading.clinical_value() else {
            continue;
        };
        let device = row.get_ref(0)?.as_str()?;
        let at_ms: i64 = row.get(5)?;
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

/// Ends a session (graceful shutdown).
pub fn end_session(conn: &Connection, session: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE sessions SET ended_at = ?1 WHERE id = ?2",
        params![now_ms(), session],
    )?;
    Ok(())
}

fn write(conn: &Connection, session: i64, r: &Record) -> rusqlite::Result<()> {
    match r {
        Record::Reading(info, at, device_time) => {
            conn.prepare_cached(
                "INSERT INTO readings (session, device, vital, value, unavailable, unit, mdc, flags, device_time, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                session,
                info.device,
                info.vital.name(),
                info.value,
                info.unavailable.as_ref().map(wire_name),
                info.unit.symbol(),
                info.mdc,
                serde_json::to_string(&info.flags).unwrap_or_default(),
                device_time.and_then(|t| serde_json::to_string(&t).ok()),
                at,
            ])?;
        }
        Record::Link {
            device,
            state,
            reason,
            at,
        } => {
            conn.prepare_cached("INSERT INTO links (session, device, state, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![session, device, wire_name(state), reason, at])?;
        }
        Record::Alarm { event, alarm, at } => {
            conn.prepare_cached(
                "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                session,
                alarm.id,
                event,
                alarm.state,
                alarm.priority,
                serde_json::to_string(alarm).unwrap_or_default(),
                at
            ])?;
        }
        Record::Dose {
            at,
            by,
            baseline,
            baseline_taken,
        } => {
            conn.execute(
                "UPDATE sessions SET dose_at = ?1, dose_by = ?2, baseline_systolic = ?3, baseline_diastolic = ?4, baseline_at = ?5 WHERE id = ?6",
                params![at, by, baseline.map(|b| b.0), baseline.map(|b| b.1), baseline_taken, session],
            )?;
        }
        Record::Baseline {
            baseline,
            taken,
            by,
        } => {
            conn.execute(
                "UPDATE sessions SET baseline_systolic = ?1, baseline_diastolic = ?2, baseline_at = ?3, baseline_by = ?4 WHERE id = ?5",
                params![baseline.0, baseline.1, taken, by, session],
            )?;
        }
        Record::End => end_session(conn, session)?,
        Record::Action {
            action,
            person,
            target,
            at,
            ..
        } => {
            conn.prepare_cached("INSERT INTO actions (session, action, person, target, at) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![session, action, person, target, at])?;
        }
    }
    Ok(())
}

/// Starts the writer thread for the database at `path`. `session` is the session opened at
/// start-up; when the database could not be opened then, the writer starts one (for `room`,
/// with `profile`) once it can. `health` hears when writing fails and when it recovers.
pub fn start(
    path: PathBuf,
    session: Option<i64>,
    room: String,
    profile: String,
    health: mpsc::UnboundedSender<Health>,
) -> (Storage, std::thread::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Record>(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let dropped_by_writer = dropped.clone();
    let urgent = Arc::new(Urgent::default());
    let woken = urgent.clone();
    let writer = std::thread::Builder::new()
        .name("vigil-storage".into())
        .spawn(move || {
            let mut conn: Option<Connection> = None;
            let mut session = session;
            let mut failing = session.is_none();
            // Records of batches that failed, written first once the database works again.
            let mut pending: Vec<Record> = Vec::new();
            let mut closed = false;
            // The last transaction was full: more is queued, so write on without waiting.
            let mut backlog = false;
            loop {
                let mut batch = std::mem::take(&mut pending);
                if batch.is_empty() {
                    match rx.blocking_recv() {
                        Some(first) => {
                            if !first.is_urgent() && !backlog {
                                woken.wait(COMMIT_EVERY);
                            }
                            batch.push(first);
                        }
                        None => break,
                    }
                }
                // Everything that queued while the last batch was written goes in one
                // transaction: a crash loses at most that batch.
                let limit = batch.len() + BATCH;
                while batch.len() < limit {
                    match rx.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
                backlog = batch.len() >= limit;
                let result = (|| -> rusqlite::Result<()> {
                    if conn.is_none() {
                        conn = Some(open(&path)?);
                    }
                    let c = conn.as_ref().ok_or(rusqlite::Error::InvalidQuery)?;
                    let id = match session {
                        Some(id) => id,
                        None => {
                            let id = resume_or_start(c, &room, &profile)?.session;
                            session = Some(id);
                            id
                        }
                    };
                    let tx = c.unchecked_transaction()?;
                    for r in &batch {
                        write(&tx, id, r)?;
                    }
                    tx.commit()
                })();
                let outcome = result.map_err(|e| e.to_string());
                for r in &mut batch {
                    if let Record::Action { done, .. } = r {
                        if let Some(done) = done.take() {
                            let _ = done.send(outcome.clone().map_err(|e| {
                                format!("{e}; it is kept in memory and written once recording works again")
                            }));
                        }
                    }
                }
                match outcome {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("session record writing again");
                        let _ = health.send(Health::Ok);
                    }
                    Ok(()) => {}
                    Err(e) => {
                        if !failing {
                            tracing::error!(error = %e, path = %path.display(), "cannot write the session record");
                            let _ = health.send(Health::Failing(e));
                        }
                        failing = true;
                        conn = None;
                        if closed {
                            tracing::error!(
                                records = batch.len(),
                                "shutting down with records the session record could not take"
                            );
                            break;
                        }
                        // Keep the newest records up to the cap; older ones are the loss.
                        if batch.len() > PENDING_MAX {
                            let excess = batch.len() - PENDING_MAX;
                            batch.drain(..excess);
                            dropped_by_writer.fetch_add(excess as u64, Ordering::Relaxed);
                        }
                        pending = batch;
                        std::thread::sleep(RETRY);
                    }
                }
            }
        })
        .expect("the storage thread starts");
    (
        Storage {
            tx,
            dropped,
            urgent,
        },
        writer,
    )
}

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

/// RFC 3339 of unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Every session, newest first.
pub fn sessions(conn: &Connection) -> rusqlite::Result<Vec<SessionSummary>> {
    let mut stmt = conn.prepare(
        "SELECT s.id, s.room, s.started_at, s.dose_at, s.ended_at,
                (SELECT COUNT(*) FROM readings r WHERE r.session = s.id),
                (SELECT COUNT(DISTINCT alarm_id) FROM alarm_events a WHERE a.session = s.id AND a.event = 'raised')
         FROM sessions s ORDER BY s.id DESC",
    )?;
    let rows = stmt.query_map([], |r| {
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
    tx.commit()?;
    Ok(ids.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_protocol::model::{Flags, Unit, Vital};

    fn reading(value: f64) -> Record {
        Record::Reading(
            Box::new(ReadingInfo {
                device: "ox-1".into(),
                vital: Vital::Spo2,
                value: Some(value),
                unavailable: None,
                unit: Unit::Percent,
                mdc: Some(150456),
                at: "2026-11-23T05:00:00.000Z".into(),
                flags: Flags::default(),
            }),
            1_795_400_000_000,
            None,
        )
    }

    /// A new empty folder for one test's database.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "vigil-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Dana acknowledges alarm A1; `done` hears whether it was committed.
    fn ack(done: oneshot::Sender<Result<(), String>>) -> Record {
        Record::Action {
            action: "ack".into(),
            person: "Dana".into(),
            target: Some("A1".into()),
            at: 1_795_400_001_000,
            done: Some(done),
        }
    }

    /// Closes the queue and waits for the writer to finish.
    async fn finish(storage: Storage, writer: std::thread::JoinHandle<()>) {
        drop(storage);
        tokio::task::spawn_blocking(move || writer.join().unwrap())
            .await
            .unwrap();
    }

    /// A database that cannot be opened at first (its directory is missing) and then can:
    /// what queued meanwhile is written once it works, and the person was told in between.
    #[tokio::test(flavor = "multi_thread")]
    async fn records_queued_while_the_database_fails_are_written_when_it_recovers() {
        let dir = temp_dir("storage");
        let path = dir.join("missing").join("v.db");
        let (health_tx, mut health) = mpsc::unbounded_channel();
        let (storage, writer) = start(
            path.clone(),
            None,
            "Room 2".into(),
            "kap-default".into(),
            health_tx,
        );
        storage.record(reading(97.0));
        let (done, committed) = oneshot::channel();
        storage.record(ack(done));
        let refused = committed.await.expect("the writer answers");
        let reason = refused.expect_err("the database cannot be opened yet");
        assert!(
            reason.contains("written once recording works again"),
            "{reason}"
        );

        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        storage.record(reading(96.0));
        assert_eq!(health.recv().await, Some(Health::Ok));
        finish(storage, writer).await;

        let conn = open_read_only(&path).unwrap();
        let values: Vec<f64> = conn
            .prepare("SELECT value FROM readings ORDER BY rowid")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(values, vec![97.0, 96.0]);
        let unit: String = conn
            .query_row("SELECT unit FROM readings LIMIT 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            unit, "%",
            "units are kept by their symbol, as the review reads them"
        );
        let by: String = conn
            .query_row("SELECT person FROM actions WHERE action = 'ack'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(by, "Dana");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Readings wait to be committed together, but a person's action does not wait for them:
    /// its commit takes the readings queued before it along, in order, and more than a
    /// transaction's worth of readings queued at once is all written.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_action_commits_at_once_with_the_readings_queued_before_it() {
        let dir = temp_dir("storage");
        let path = dir.join("v.db");
        let (health_tx, _health) = mpsc::unbounded_channel();
        let (storage, writer) = start(
            path.clone(),
            None,
            "Room 3".into(),
            "kap-default".into(),
            health_tx,
        );
        let queued = BATCH + 10;
        for i in 0..queued {
            storage.record(reading(90.0 + (i % 10) as f64));
        }
        let (done, committed) = oneshot::channel();
        storage.record(ack(done));
        committed
            .await
            .expect("the writer answers")
            .expect("committed");
        let conn = open_read_only(&path).unwrap();
        let count: i64 = conn
            .query_row("SELECT COUNT(*) FROM readings", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            count, queued as i64,
            "the action's commit includes every reading queued before it"
        );
        assert_eq!(storage.dropped(), 0);
        finish(storage, writer).await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A resumed session brings back the last value of each second of every trend, leaving out
    /// values an alarm would not act on (a sensor-off reading) and those outside the window.
    #[test]
    fn a_resumed_session_brings_back_its_trends() {
        let dir = temp_dir("trend");
        let conn = open(&dir.join("v.db")).unwrap();
        let session = resume_or_start(&conn, "Room 4", "{}").unwrap().session;
        let last = 1_795_400_000_000_i64;
        let too_old = last - crate::hub::TREND_POINTS as i64 * 1000 - 1000;
        for (value, flags, at) in [
            (80.0, "[]", too_old),
            (96.0, "[]", last - 2000),
            (95.0, "[]", last - 1500),
            (97.0, "[]", last - 1200),
            (50.0, "[\"sensor_off\"]", last - 1000),
            (98.0, "[]", last),
        ] {
            conn.execute(
                "INSERT INTO readings (session, device, vital, value, unit, flags, received_at)
                 VALUES (?1, 'ox-1', 'spo2', ?2, '%', ?3, ?4)",
                params![session, value, flags, at],
            )
            .unwrap();
        }
        let resumed = resume_or_start(&conn, "Room 4", "{}").unwrap();
        assert!(resumed.resumed);
        assert_eq!(resumed.trend.len(), 1, "{:?}", resumed.trend);
        let series = &resumed.trend[0];
        assert_eq!(
            (series.device.as_str(), series.vital),
            ("ox-1", Vital::Spo2)
        );
        // 96, 95 and 97 share a second, whose last value is kept; the sensor-off second is left out.
        assert_eq!(series.points, vec![(last - 1200, 97.0), (last, 98.0)]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn prune_deletes_only_sessions_that_ended_before_the_retention_period() {
        let dir = temp_dir("prune");
        let conn = open(&dir.join("v.db")).unwrap();
        let day = 86_400_000;
        let mut ids = Vec::new();
        for ended in [Some(now_ms() - 40 * day), Some(now_ms() - 20 * day), None] {
            conn.execute(
                "INSERT INTO sessions (room, started_at, ended_at, profile) VALUES ('Room 2', 0, ?1, '')",
                params![ended],
            )
            .unwrap();
            let id = conn.last_insert_rowid();
            conn.execute(
                "INSERT INTO readings (session, device, vital, value, unit, flags, received_at)
                 VALUES (?1, 'ox-1', 'spo2', 97, '%', '[]', 0)",
                params![id],
            )
            .unwrap();
            ids.push(id);
        }
        assert_eq!(prune(&conn, 30).unwrap(), 1);
        let left: Vec<i64> = conn
            .prepare("SELECT DISTINCT session FROM readings ORDER BY session")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(left, ids[1..]);
        assert_eq!(sessions(&conn).unwrap().len(), 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_resumed_session_records_a_profile_changed_in_between() {
        let dir = temp_dir("profile");
        let conn = open(&dir.join("v.db")).unwrap();
        let first = resume_or_start(&conn, "Room 2", "{\"spo2-low\":90}").unwrap();
        assert!(!first.resumed);
        let again = resume_or_start(&conn, "Room 2", "{\"spo2-low\":90}").unwrap();
        assert_eq!((again.session, again.resumed), (first.session, true));
        let changed = resume_or_start(&conn, "Room 2", "{\"spo2-low\":88}").unwrap();
        assert_eq!(changed.session, first.session);
        resume_or_start(&conn, "Room 2", "{\"spo2-low\":88}").unwrap();
        let changes: Vec<String> = conn
            .prepare("SELECT target FROM actions WHERE action = 'profile_changed'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(changes, ["{\"spo2-low\":88}"]);
        let _ = std::fs::remove_dir_all(dir);
    }
}
