//! What a restart reads back for the alarm engine beyond the alarms: the session row's dose and
//! baseline (column by column, naming what cannot be read) and the session's BP measurements.

use rusqlite::{params, Connection};

/// The session row's dose and baseline as far as they can be read back.
#[derive(Default)]
pub(super) struct SessionRow {
    pub(super) dose: Option<(i64, String)>,
    pub(super) baseline: Option<(f64, f64)>,
    pub(super) baseline_taken: Option<i64>,
    pub(super) baseline_by: Option<String>,
}

/// Reads the session row column by column: a column that cannot be read is logged and named in
/// `unreadable` (the core raises `record-unreadable`), and the rest still counts.
pub(super) fn session_row(
    conn: &Connection,
    session: i64,
    unreadable: &mut Vec<String>,
) -> rusqlite::Result<SessionRow> {
    fn column<T: rusqlite::types::FromSql>(
        r: &rusqlite::Row<'_>,
        i: usize,
        name: &str,
        session: i64,
        unreadable: &mut Vec<String>,
    ) -> Option<T> {
        r.get::<_, Option<T>>(i).unwrap_or_else(|e| {
            tracing::error!(session, column = name, error = %e, "stored session value could not be read back");
            unreadable.push(format!("session {session} {name}"));
            None
        })
    }
    conn.query_row(
        "SELECT dose_at, dose_by, baseline_systolic, baseline_diastolic, baseline_at, baseline_by
         FROM sessions WHERE id = ?1",
        params![session],
        |r| {
            let dose_at: Option<i64> = column(r, 0, "dose_at", session, unreadable);
            let dose_by: Option<String> = column(r, 1, "dose_by", session, unreadable);
            let sys: Option<f64> = column(r, 2, "baseline_systolic", session, unreadable);
            let dia: Option<f64> = column(r, 3, "baseline_diastolic", session, unreadable);
            Ok(SessionRow {
                dose: dose_at.zip(dose_by),
                baseline: sys.zip(dia),
                baseline_taken: column(r, 4, "baseline_at", session, unreadable),
                baseline_by: column(r, 5, "baseline_by", session, unreadable),
            })
        },
    )
}

/// How many of the session's latest BP measurements a restart reads back.
const BP_MEASUREMENTS: usize = 64;

/// The session's complete valid BP measurements (systolic and diastolic from the same frame,
/// both evidence), oldest first: the last BP, and what `set_baseline` may choose from.
/// A row whose columns cannot be read is named in `unreadable`, and the rest still counts.
pub(super) fn bp_measurements(
    conn: &Connection,
    session: i64,
    unreadable: &mut Vec<String>,
) -> rusqlite::Result<Vec<(i64, f64, f64)>> {
    let mut stmt = conn.prepare(
        "SELECT s.value, s.unit, s.flags, d.value, d.unit, d.flags, s.received_at, s.rowid
         FROM readings s JOIN readings d
           ON d.session = s.session AND d.device = s.device AND d.received_at = s.received_at
         WHERE s.session = ?1 AND s.vital = 'nibp_systolic' AND d.vital = 'nibp_diastolic'
           AND s.value IS NOT NULL AND d.value IS NOT NULL
         ORDER BY s.received_at DESC LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![session, BP_MEASUREMENTS as i64])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let evidence = |vital, value: usize| -> rusqlite::Result<Option<f64>> {
            let unit = vigil_protocol::Unit::from_symbol(row.get_ref(value + 1)?.as_str()?);
            let flags = serde_json::from_str(row.get_ref(value + 2)?.as_str()?).ok();
            Ok(unit.zip(flags).and_then(|(unit, flags)| {
                vigil_protocol::Reading::number(vital, row.get(value).ok()?, unit)
                    .with_flags(flags)
                    .evidence()
            }))
        };
        let measurement = || -> rusqlite::Result<_> {
            Ok(
                match (
                    evidence(vigil_protocol::Vital::NibpSystolic, 0)?,
                    evidence(vigil_protocol::Vital::NibpDiastolic, 3)?,
                ) {
                    (Some(s), Some(d)) => Some((row.get(6)?, s, d)),
                    _ => None,
                },
            )
        };
        match measurement() {
            Ok(m) => out.extend(m),
            Err(e) => super::resume::unreadable_reading(row, session, &e, unreadable),
        }
    }
    out.reverse();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{open, resume_or_start};
    use rusqlite::params;

    fn temp_db(name: &str) -> (std::path::PathBuf, rusqlite::Connection) {
        let dir = std::env::temp_dir().join(format!(
            "vigil-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let conn = open(&dir.join("v.db")).unwrap();
        (dir, conn)
    }

    fn insert(
        conn: &rusqlite::Connection,
        session: i64,
        vital: &str,
        value: f64,
        flags: &str,
        at: i64,
    ) {
        conn.execute(
            "INSERT INTO readings (session, device, vital, value, unit, flags, received_at)
             VALUES (?1, 'cuff', ?2, ?3, 'mmHg', ?4, ?5)",
            params![session, vital, value, flags, at],
        )
        .unwrap();
    }

    /// Only complete, valid measurements come back: a partial frame, a flagged one and an
    /// implausible one do not.
    #[test]
    fn a_restart_reads_back_the_complete_valid_bp_measurements() {
        let (dir, conn) = temp_db("bp");
        let session = resume_or_start(&conn, "Room 5", "{}").unwrap().session;
        insert(&conn, session, "nibp_systolic", 128.0, "[]", 1_000);
        insert(&conn, session, "nibp_diastolic", 84.0, "[]", 1_000);
        insert(&conn, session, "nibp_systolic", 150.0, "[]", 2_000); // partial
        insert(
            &conn,
            session,
            "nibp_systolic",
            140.0,
            "[\"cuff_loose\"]",
            3_000,
        );
        insert(
            &conn,
            session,
            "nibp_diastolic",
            90.0,
            "[\"cuff_loose\"]",
            3_000,
        );
        insert(&conn, session, "nibp_systolic", 900.0, "[]", 4_000);
        insert(&conn, session, "nibp_diastolic", 90.0, "[]", 4_000);
        insert(&conn, session, "nibp_systolic", 132.0, "[]", 5_000);
        insert(&conn, session, "nibp_diastolic", 86.0, "[]", 5_000);
        let resumed = resume_or_start(&conn, "Room 5", "{}").unwrap();
        assert_eq!(
            resumed.bp_measurements,
            vec![(1_000, 128.0, 84.0), (5_000, 132.0, 86.0)]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The baseline, its time and who set it come back; a value that cannot be read, and an
    /// alarm row that is not an alarm, are named, never dropped silently.
    #[test]
    fn unreadable_rows_are_named_and_the_rest_is_restored() {
        let (dir, conn) = temp_db("unreadable");
        let session = resume_or_start(&conn, "Room 6", "{}").unwrap().session;
        conn.execute(
            "UPDATE sessions SET dose_at = 'yesterday', dose_by = 'Dr Rivera',
             baseline_systolic = 120, baseline_diastolic = 80, baseline_at = 7000, baseline_by = 'Nurse Okafor'
             WHERE id = ?1",
            params![session],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO alarm_events (session, alarm_id, event, state, priority, alarm, at, seq)
             VALUES (?1, 'spo2-low#7', 'raised', 'active', 'medium', '{not json', 1000, 7)",
            params![session],
        )
        .unwrap();
        let resumed = resume_or_start(&conn, "Room 6", "{}").unwrap();
        assert_eq!(resumed.baseline, Some((120.0, 80.0)));
        assert_eq!(resumed.baseline_taken, Some(7000));
        assert_eq!(resumed.baseline_by.as_deref(), Some("Nurse Okafor"));
        assert_eq!(resumed.dose, None);
        assert_eq!(
            resumed.unreadable,
            vec![
                format!("session {session} dose_at"),
                "alarm spo2-low#7".to_string()
            ]
        );
        assert!(resumed.alarms.is_empty());
        assert_eq!(resumed.next_alarm_seq, 8, "spo2-low#7 was used");
        let _ = std::fs::remove_dir_all(dir);
    }
}
