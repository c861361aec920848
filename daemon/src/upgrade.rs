//! Resuming the session across a package upgrade.
//!
//! An upgrade restarts the service, and a graceful stop ends the session. So that an upgrade in
//! the middle of a session continues it instead of splitting it in two, the package's `prerm`
//! (on upgrade) writes [`MARKER`] next to the record before the old daemon stops; the new
//! daemon, at start, reopens the session that ended after the marker was written, and removes
//! the marker. A marker older than [`MARKER_FRESH`] is ignored (an upgrade whose daemon was not
//! restarted then): a session that ended long ago is never reopened. The record's schema is
//! migrated at every open (`storage::open`), so the new daemon reads what the old one wrote.

use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The file `prerm upgrade` writes in the record's folder.
pub const MARKER: &str = ".vigil-upgrading";
/// How long after the marker was written an ended session may still be reopened.
pub const MARKER_FRESH: Duration = Duration::from_secs(15 * 60);

/// Reopens the room's session that ended during an upgrade, if the marker beside `db` says one
/// is under way. Returns the session reopened. The marker is removed either way.
pub fn reopen_after_upgrade(
    conn: &Connection,
    db: &Path,
    room: &str,
) -> rusqlite::Result<Option<i64>> {
    let Some(marker) = db.parent().map(|dir| dir.join(MARKER)) else {
        return Ok(None);
    };
    let Ok(written) = std::fs::metadata(&marker).and_then(|m| m.modified()) else {
        return Ok(None);
    };
    if let Err(e) = std::fs::remove_file(&marker) {
        tracing::warn!(error = %e, marker = %marker.display(), "cannot remove the upgrade marker");
    }
    let age = SystemTime::now()
        .duration_since(written)
        .unwrap_or(Duration::ZERO);
    if age > MARKER_FRESH {
        tracing::info!(
            age_s = age.as_secs(),
            "an old upgrade marker: no session reopened"
        );
        return Ok(None);
    }
    let since = written
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64;
    let ended: Option<i64> = conn
        .query_row(
            "SELECT id FROM sessions WHERE room = ?1 AND ended_at >= ?2
             AND NOT EXISTS (SELECT 1 FROM sessions later WHERE later.room = ?1 AND later.id > sessions.id)",
            params![room, since],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = ended {
        conn.execute(
            "UPDATE sessions SET ended_at = NULL WHERE id = ?1",
            params![id],
        )?;
        tracing::info!(
            session = id,
            "continuing the session the package upgrade stopped"
        );
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> (std::path::PathBuf, Connection) {
        let dir = std::env::temp_dir().join(format!("vigil-upgrade-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("sessions.db");
        let conn = crate::storage::open(&db).unwrap();
        (db, conn)
    }

    #[test]
    fn the_session_an_upgrade_stopped_is_resumed() {
        let (db, conn) = record("resume");
        let old = crate::storage::resume_or_start(&conn, "room", "{}")
            .unwrap()
            .session;
        crate::storage::end_session(&conn, old).unwrap();
        // prerm upgrade, then the old daemon stops and ends its session.
        std::fs::write(db.parent().unwrap().join(MARKER), "").unwrap();
        let open = crate::storage::resume_or_start(&conn, "room", "{}")
            .unwrap()
            .session;
        std::thread::sleep(Duration::from_millis(5));
        crate::storage::end_session(&conn, open).unwrap();

        assert_eq!(
            reopen_after_upgrade(&conn, &db, "room").unwrap(),
            Some(open)
        );
        let resumed = crate::storage::resume_or_start(&conn, "room", "{}").unwrap();
        assert!(resumed.resumed);
        assert_eq!(resumed.session, open);
        assert!(!db.parent().unwrap().join(MARKER).exists(), "marker kept");
    }

    #[test]
    fn without_a_marker_or_for_a_session_ended_before_it_nothing_is_reopened() {
        let (db, conn) = record("none");
        let s = crate::storage::resume_or_start(&conn, "room", "{}")
            .unwrap()
            .session;
        crate::storage::end_session(&conn, s).unwrap();
        assert_eq!(reopen_after_upgrade(&conn, &db, "room").unwrap(), None);
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(db.parent().unwrap().join(MARKER), "").unwrap();
        assert_eq!(reopen_after_upgrade(&conn, &db, "room").unwrap(), None);
        let next = crate::storage::resume_or_start(&conn, "room", "{}").unwrap();
        assert!(!next.resumed);
    }
}
