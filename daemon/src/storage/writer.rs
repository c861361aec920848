//! The writer thread: batches records into transactions, keeps them while the database fails,
//! and notices a database file deleted or replaced under it.

use super::*;

fn write(conn: &Connection, session: i64, r: &Record) -> rusqlite::Result<()> {
    match r {
        Record::Reading {
            device,
            reading,
            at,
        } => {
            let (value, unavailable) = match reading.value {
                Value::Number(v) => (Some(v), None),
                Value::Unavailable(why) => (None, Some(wire_name(&why))),
            };
            conn.prepare_cached(
                "INSERT INTO readings (session, device, vital, value, unavailable, unit, mdc, flags, device_time, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                session,
                device,
                reading.vital.name(),
                value,
                unavailable,
                reading.unit.symbol(),
                reading.mdc,
                serde_json::to_string(&reading.flags).unwrap_or_default(),
                reading.device_time.and_then(|t| serde_json::to_string(&t).ok()),
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
        Record::Alarm {
            change,
            alarm,
            display,
            at,
        } => alarms::write(conn, session, *change, alarm, display, *at)?,
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
        #[cfg(feature = "fault-injection")]
        Record::Panic => panic!("injected fault: the record writer panics"),
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
    Writer {
        path,
        session,
        room,
        profile,
        health,
        retry: RETRY,
        fatal: Fatal::default(),
    }
    .start()
}

/// How long the people in the room see `recording-failed` after the database file was deleted
/// or replaced, even when writing into the new file works at once: what the old file held since
/// the last check is gone, and somebody should find out why.
pub const REPLACED_ALARM_HOLD: Duration = Duration::from_secs(30);
/// How often an idle writer checks that its file is still the one at the path.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Everything the writer thread needs.
#[derive(Debug)]
pub struct Writer {
    /// The database's path.
    pub path: PathBuf,
    /// The session opened at start-up, if the database could be opened then.
    pub session: Option<i64>,
    /// The room, for a session the writer has to start.
    pub room: String,
    /// The profile record, likewise.
    pub profile: String,
    /// Hears when writing fails and when it recovers.
    pub health: mpsc::UnboundedSender<Health>,
    /// How long to wait before retrying a failing database (an urgent record retries at once).
    pub retry: Duration,
    /// Raised if the writer thread panics.
    pub fatal: Fatal,
}

/// The open database and the identity (device, inode) of the file it was opened from.
struct Db {
    conn: Connection,
    file: Option<(u64, u64)>,
}

#[cfg(unix)]
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_path: &Path) -> Option<(u64, u64)> {
    None
}

impl Db {
    fn open(path: &Path) -> rusqlite::Result<Db> {
        let conn = open(path)?;
        Ok(Db {
            conn,
            file: file_id(path),
        })
    }

    /// The file at the path is no longer the one this connection writes to: it was deleted
    /// or replaced, and whatever is written here would be lost.
    fn replaced(&self, path: &Path) -> bool {
        self.file.is_some() && file_id(path) != self.file
    }
}

impl Writer {
    /// Starts the thread.
    pub fn start(self) -> (Storage, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<Record>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let urgent = Arc::new(Urgent::default());
        let (dropped_by_writer, woken) = (dropped.clone(), urgent.clone());
        let writer = std::thread::Builder::new()
            .name("vigil-storage".into())
            .spawn(move || self.run(rx, &woken, &dropped_by_writer))
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

    fn run(self, mut rx: mpsc::Receiver<Record>, woken: &Urgent, dropped: &AtomicU64) {
        let _guard = PanicGuard {
            part: "session record writer",
            fatal: self.fatal.clone(),
        };
        let path = &self.path;
        let mut db: Option<Db> = None;
        let mut session = self.session;
        let mut failing = session.is_none();
        // After a replaced file, `recording-failed` stays up until then.
        let mut hold_until: Option<std::time::Instant> = None;
        // Records of batches that failed, written first once the database works again.
        let mut pending: Vec<Record> = Vec::new();
        let mut closed = false;
        // The last transaction was full: more is queued, so write on without waiting.
        let mut backlog = false;
        // The writer just waited for records to gather.
        let mut waited = false;
        let mut checked = std::time::Instant::now();
        // Records lost so far (a full queue, or the cap on what is kept while failing).
        let mut lost = 0;
        loop {
            self.report_loss(dropped, &mut lost, &mut failing, &mut hold_until);
            let mut batch = std::mem::take(&mut pending);
            if batch.is_empty() {
                match rx.try_recv() {
                    Ok(first) => {
                        if !first.is_urgent() && !backlog && !waited {
                            woken.wait(COMMIT_EVERY);
                        }
                        batch.push(first);
                    }
                    Err(mpsc::error::TryRecvError::Empty) => {
                        if checked.elapsed() >= CHECK_EVERY {
                            checked = std::time::Instant::now();
                            self.check_file(&mut db, &mut session, &mut failing, &mut hold_until);
                        }
                        self.report_recovery(&mut failing, &mut hold_until, db.is_some());
                        // Idle: wake for an urgent record, to gather readings, or to check.
                        woken.wait(COMMIT_EVERY);
                        waited = true;
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            }
            waited = false;
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
            // Nothing more is written into a file that was deleted or replaced.
            checked = std::time::Instant::now();
            self.check_file(&mut db, &mut session, &mut failing, &mut hold_until);
            let result = (|| -> rusqlite::Result<()> {
                if db.is_none() {
                    db = Some(Db::open(path)?);
                }
                let c = &db.as_ref().ok_or(rusqlite::Error::InvalidQuery)?.conn;
                let id = match session {
                    Some(id) => id,
                    None => {
                        let id = resume_or_start(c, &self.room, &self.profile)?.session;
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
                            format!(
                                "{e}; it is kept in memory and written once recording works again"
                            )
                        }));
                    }
                }
            }
            match outcome {
                Ok(()) => self.report_recovery(&mut failing, &mut hold_until, true),
                Err(e) => {
                    if !failing {
                        tracing::error!(error = %e, path = %path.display(), "cannot write the session record");
                        let _ = self.health.send(Health::Failing(e));
                    }
                    failing = true;
                    db = None;
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
                        dropped.fetch_add(excess as u64, Ordering::Relaxed);
                    }
                    pending = batch;
                    // An urgent record (a person waiting on her action) retries at once.
                    woken.wait(self.retry);
                }
            }
        }
    }

    /// Drops the connection if its file is no longer the one at the path (deleted or
    /// replaced), so that the next commit opens a new file there and starts or resumes the
    /// room's session in it; tells the core, which raises `recording-failed`.
    fn check_file(
        &self,
        db: &mut Option<Db>,
        session: &mut Option<i64>,
        failing: &mut bool,
        hold_until: &mut Option<std::time::Instant>,
    ) {
        if !db.as_ref().is_some_and(|d| d.replaced(&self.path)) {
            return;
        }
        let why = "the database file was deleted or replaced while the daemon ran";
        tracing::error!(path = %self.path.display(), "{why}; opening a new one at the path");
        // Closing first lets SQLite fold its journal into the old file and remove it, so the
        // new file does not start from another database's journal.
        *db = None;
        *session = None;
        if !*failing {
            let _ = self.health.send(Health::Failing(why.into()));
        }
        *failing = true;
        *hold_until = Some(std::time::Instant::now() + REPLACED_ALARM_HOLD);
    }

    /// Records were lost since the last look (the queue was full: the writer fell behind):
    /// the record has a hole, so the core raises `recording-failed`, held like a replaced file.
    fn report_loss(
        &self,
        dropped: &AtomicU64,
        lost: &mut u64,
        failing: &mut bool,
        hold_until: &mut Option<std::time::Instant>,
    ) {
        let now_lost = dropped.load(Ordering::Relaxed);
        if now_lost <= *lost {
            return;
        }
        let why = format!("{} records lost: the writer fell behind", now_lost - *lost);
        tracing::error!(records = now_lost - *lost, "session records lost");
        *lost = now_lost;
        if !*failing {
            let _ = self.health.send(Health::Failing(why));
        }
        *failing = true;
        *hold_until = Some(std::time::Instant::now() + REPLACED_ALARM_HOLD);
    }

    /// Tells the core that writing works again, once any hold after a replaced file is over.
    fn report_recovery(
        &self,
        failing: &mut bool,
        hold_until: &mut Option<std::time::Instant>,
        writing: bool,
    ) {
        if !*failing || !writing || hold_until.is_some_and(|h| std::time::Instant::now() < h) {
            return;
        }
        *failing = false;
        *hold_until = None;
        tracing::info!("session record writing again");
        let _ = self.health.send(Health::Ok);
    }
}
