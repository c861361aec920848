//! `vigil backup` and `vigil restore`: a consistent copy of the session record taken while the
//! daemon runs (SQLite's online backup), and putting one back while it is stopped.
//!
//! Restore knows the daemon runs because the daemon keeps the record open: in WAL mode every open
//! connection holds a shared lock on the database file, so the exclusive lock restore takes
//! before it writes anything is refused, and restore says so instead of swapping the record under
//! a running daemon.

use rusqlite::backup::Backup;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Pages copied per step; between steps the daemon's writer may commit, so a backup never holds
/// the record for long.
const PAGES_PER_STEP: std::ffi::c_int = 256;
/// Pause between steps.
const STEP_PAUSE: Duration = Duration::from_millis(5);

/// Why a backup or restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// There is no file where the record should be.
    #[error("no session record at {0}")]
    Missing(PathBuf),
    /// The file is not a Vigil session record.
    #[error("{0} is not a Vigil session record ({1})")]
    NotARecord(PathBuf, String),
    /// Something else has the record open (the daemon, a `vigil sessions`, ...).
    #[error(
        "{0} is in use (is the daemon running? stop it first: `systemctl stop vigil`); nothing was changed"
    )]
    InUse(PathBuf),
    /// The backup's destination exists already.
    #[error("{0} exists already; choose a new file name (a backup never overwrites)")]
    Exists(PathBuf),
    /// SQLite said no.
    #[error("{0}: {1}")]
    Sqlite(PathBuf, rusqlite::Error),
}

/// Names the file SQLite complained about.
fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Sqlite(path.to_path_buf(), e)
}

/// Sessions in a record, which also proves it is one.
fn session_count(conn: &Connection, path: &Path) -> Result<i64, Error> {
    conn.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
        .map_err(|e| Error::NotARecord(path.to_path_buf(), e.to_string()))
}

/// Copies the record at `db` to a new file `to`, consistent as of one moment, while the daemon
/// may go on writing. Returns the number of sessions in the copy.
pub fn backup(db: &Path, to: &Path) -> Result<i64, Error> {
    if !db.exists() {
        return Err(Error::Missing(db.to_path_buf()));
    }
    if to.exists() {
        return Err(Error::Exists(to.to_path_buf()));
    }
    let src =
        Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(db))?;
    src.busy_timeout(Duration::from_secs(5))
        .map_err(sqlite(db))?;
    session_count(&src, db)?;
    let mut dst = Connection::open(to).map_err(sqlite(to))?;
    let copied = Backup::new(&src, &mut dst)
        .and_then(|b| b.run_to_completion(PAGES_PER_STEP, STEP_PAUSE, None))
        .map_err(sqlite(db));
    if let Err(e) = copied {
        drop(dst);
        let _ = std::fs::remove_file(to);
        return Err(e);
    }
    session_count(&dst, to)
}

/// Replaces the record at `db` with the backup `from`, refusing while anything (the daemon) has
/// `db` open. Returns the number of sessions restored.
pub fn restore(from: &Path, db: &Path) -> Result<i64, Error> {
    if !from.exists() {
        return Err(Error::Missing(from.to_path_buf()));
    }
    let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite(from))?;
    let sessions = session_count(&src, from)?;
    let mut dst = Connection::open(db).map_err(sqlite(db))?;
    // No waiting: a lock held by someone else means the daemon (or a reader) is there.
    dst.busy_timeout(Duration::ZERO).map_err(sqlite(db))?;
    dst.pragma_update(None, "locking_mode", "EXCLUSIVE")
        .map_err(sqlite(db))?;
    let busy = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            Error::InUse(db.to_path_buf())
        }
        _ => Error::Sqlite(db.to_path_buf(), e),
    };
    // Take and keep the exclusive lock before anything is written: with locking_mode EXCLUSIVE
    // it is held until this connection closes, so no daemon can open the record mid-restore.
    dst.transaction_with_behavior(TransactionBehavior::Exclusive)
        .and_then(|tx| {
            tx.execute_batch("CREATE TABLE IF NOT EXISTS vigil_restore_probe (x); DROP TABLE vigil_restore_probe")?;
            tx.commit()
        })
        .map_err(busy)?;
    Backup::new(&src, &mut dst)
        .and_then(|b| b.run_to_completion(PAGES_PER_STEP, STEP_PAUSE, None))
        .map_err(busy)?;
    Ok(sessions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(dir: &Path, name: &str, sessions: usize) -> PathBuf {
        let path = dir.join(name);
        let conn = crate::storage::open(&path).unwrap();
        for _ in 0..sessions {
            let s = crate::storage::resume_or_start(&conn, "room", "{}")
                .unwrap()
                .session;
            crate::storage::end_session(&conn, s).unwrap();
        }
        path
    }

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-backup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn backup_while_the_record_is_being_written_is_consistent() {
        let dir = tempdir("live");
        let db = record(&dir, "live.db", 3);
        // A writer in the middle of a transaction (as the daemon's writer is, often).
        let writer = crate::storage::open(&db).unwrap();
        writer.execute_batch("BEGIN IMMEDIATE").unwrap();
        writer
            .execute(
                "INSERT INTO sessions (room, started_at, profile) VALUES ('x', 0, '{}')",
                [],
            )
            .unwrap();
        let copy = dir.join("copy.db");
        assert_eq!(
            backup(&db, &copy).unwrap(),
            3,
            "the uncommitted session is not in it"
        );
        writer.execute_batch("COMMIT").unwrap();
        assert_eq!(backup(&db, &dir.join("copy2.db")).unwrap(), 4);
        assert!(matches!(backup(&db, &copy), Err(Error::Exists(_))));
    }

    #[test]
    fn restore_refuses_while_the_record_is_open_and_works_once_closed() {
        let dir = tempdir("restore");
        let db = record(&dir, "live.db", 2);
        let copy = dir.join("copy.db");
        backup(&db, &copy).unwrap();
        // The daemon goes on and records more.
        let daemon = crate::storage::open(&db).unwrap();
        crate::storage::resume_or_start(&daemon, "room", "{}").unwrap();
        let err = restore(&copy, &db).unwrap_err();
        assert!(matches!(err, Error::InUse(_)), "{err}");
        assert!(err.to_string().contains("is the daemon running"), "{err}");
        drop(daemon);
        assert_eq!(restore(&copy, &db).unwrap(), 2);
        let back = crate::storage::open(&db).unwrap();
        assert_eq!(crate::storage::sessions(&back).unwrap().len(), 2);
    }

    #[test]
    fn restore_refuses_a_file_that_is_not_a_record() {
        let dir = tempdir("notrecord");
        let db = record(&dir, "live.db", 1);
        let other = dir.join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        assert!(matches!(restore(&other, &db), Err(Error::NotARecord(..))));
        assert_eq!(
            crate::storage::sessions(&crate::storage::open(&db).unwrap())
                .unwrap()
                .len(),
            1
        );
    }
}
