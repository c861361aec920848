//! The database: its schema and how it is opened.

use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::time::Duration;

/// Schema migrations, applied in order; `meta.schema_version` says how many ran.
pub(super) const MIGRATIONS: [&str; 6] = [
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
    // Alarms in typed columns, which a restart reads back (before, only as the display's JSON in
    // `alarm`, which stays for review and export). Rows already recorded are migrated from that
    // JSON; a row whose JSON cannot be read keeps empty columns and is named when restored.
    r#"
ALTER TABLE alarm_events ADD COLUMN rule TEXT;
ALTER TABLE alarm_events ADD COLUMN seq INTEGER;
ALTER TABLE alarm_events ADD COLUMN device TEXT;
ALTER TABLE alarm_events ADD COLUMN vital TEXT;
ALTER TABLE alarm_events ADD COLUMN since_at INTEGER;
ALTER TABLE alarm_events ADD COLUMN acknowledged_by TEXT;
ALTER TABLE alarm_events ADD COLUMN acknowledged_at INTEGER;
ALTER TABLE alarm_events ADD COLUMN value REAL;
ALTER TABLE alarm_events ADD COLUMN awaiting_confirmation INTEGER;
UPDATE alarm_events SET
    rule = json_extract(alarm, '$.rule'),
    device = json_extract(alarm, '$.device'),
    vital = json_extract(alarm, '$.vital'),
    since_at = CAST(round((julianday(json_extract(alarm, '$.since')) - 2440587.5) * 86400000.0) AS INTEGER),
    acknowledged_by = json_extract(alarm, '$.acknowledged_by'),
    acknowledged_at = CAST(round((julianday(json_extract(alarm, '$.acknowledged_at')) - 2440587.5) * 86400000.0) AS INTEGER),
    value = json_extract(alarm, '$.value'),
    awaiting_confirmation = coalesce(json_extract(alarm, '$.awaiting_confirmation'), 0)
WHERE json_valid(alarm);
UPDATE alarm_events SET seq = CAST(substr(alarm_id, length(rtrim(alarm_id, '0123456789')) + 1) AS INTEGER)
WHERE rtrim(alarm_id, '0123456789') LIKE '%#'
  AND length(rtrim(alarm_id, '0123456789')) < length(alarm_id);
"#,
    // HL7 forwarding (`[[forward]]`): per forward, the last reading and alarm event its peer
    // acknowledged (rowids), and how many device batches of the next second it has; everything
    // after is its queue.
    r#"
CREATE TABLE forward_progress (
    forward TEXT PRIMARY KEY,
    reading_after INTEGER NOT NULL,
    block_done INTEGER NOT NULL,
    alarm_after INTEGER NOT NULL
);
"#,
    // The rest of an alarm in typed columns: its kind, message and whether it latches. Every
    // row written since has them, and review, export and the forwarder read the typed columns
    // only; a row without `kind` (recorded before this migration) is read from its display
    // JSON in `alarm` (`storage/query.rs`, the one place that still parses it).
    r#"
ALTER TABLE alarm_events ADD COLUMN kind TEXT;
ALTER TABLE alarm_events ADD COLUMN message TEXT;
ALTER TABLE alarm_events ADD COLUMN latching INTEGER;
"#,
    // The central station (`[central]`): the last alarm event and link change (rowids) that
    // JetStream acknowledged; what the record holds after them and before a restart is
    // published from the record after that restart. One row.
    r#"
CREATE TABLE central_progress (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    alarm_after INTEGER NOT NULL,
    link_after INTEGER NOT NULL
);
"#,
];

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
