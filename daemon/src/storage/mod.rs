//! The session record: SQLite (bundled, WAL) at the config's `[storage] path`.
//!
//! Everything the room does is kept: sessions, every reading with its device and receive times,
//! link events, the alarm lifecycle, and every person's action. Writes go through a bounded
//! queue to one writer thread, batched into transactions, so the live path never waits on the
//! disk; a person's action is committed before the display hears it succeeded. When the disk
//! fails, monitoring goes on, the core raises "recording failed", and the writer keeps retrying.

use crate::core::wire_name;
use crate::supervise::{Fatal, PanicGuard};
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use vigil_protocol::display::{AlarmInfo, LinkState};
use vigil_protocol::{Reading, Value};

mod alarms;
pub mod query;
mod restore;
mod resume;
mod schema;
mod summary;
mod writer;

pub use alarms::{RecordedAlarm, StoredAlarm};
pub use resume::{end_session, resume_or_start, Resumed};
pub use schema::{open, open_read_only};
pub use summary::{prune, rfc3339, sessions, SessionSummary};
pub use writer::{start, Writer, REPLACED_ALARM_HOLD};

/// Something to write.
#[derive(Debug)]
pub enum Record {
    /// A reading as decoded (with the device's own timestamp when the format carries one).
    Reading {
        /// Device id.
        device: String,
        /// The reading.
        reading: Box<Reading>,
        /// Receive time, unix ms.
        at: i64,
    },
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
        /// What happened to it.
        change: vigil_alarm::AlarmChange,
        /// The alarm after the change, typed (what review, export and a restart read).
        alarm: Box<RecordedAlarm>,
        /// The alarm after the change as the display received it: written, never read back
        /// (see `alarms::write`).
        display: Box<AlarmInfo>,
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
    /// Makes the writer panic (tests only).
    #[cfg(feature = "fault-injection")]
    Panic,
    /// A person's action; `done` hears when it is committed (or why not).
    Action {
        /// `ack`, `reset`, `pause_audio`, `mark_dose`, `start_nibp`, `cancel_nibp`.
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
        ) || self.is_fault()
    }

    #[cfg(feature = "fault-injection")]
    fn is_fault(&self) -> bool {
        matches!(self, Record::Panic)
    }

    #[cfg(not(feature = "fault-injection"))]
    fn is_fault(&self) -> bool {
        false
    }
}

/// How many records may wait for the writer.
const QUEUE: usize = 20_000;
/// Places in the queue that only urgent records (actions, alarm steps, the end) may take: a
/// flood of readings that fills the queue never costs a person's action or an alarm step (V8).
const URGENT_RESERVE: usize = 1024;
/// Most records in one transaction.
const BATCH: usize = 5000;
/// How long readings wait to be committed together: a crash loses at most about this much, and
/// a busy room (an oximeter sending 60 packets a second) commits four times a second rather than
/// sixty, which is most of what recording costs.
pub const COMMIT_EVERY: Duration = Duration::from_millis(250);
/// Most records kept in memory while the database fails (about an hour of a busy room).
const PENDING_MAX: usize = 100_000;
/// How long the writer waits before retrying a failing database.
pub const RETRY: Duration = Duration::from_secs(5);

impl Storage {
    /// Queues a record without waiting; a full queue drops it and counts the loss. Other
    /// records leave the last [`URGENT_RESERVE`] places to urgent ones.
    pub fn record(&self, record: Record) {
        let urgent = record.is_urgent();
        if !urgent && self.tx.capacity() <= URGENT_RESERVE {
            return self.refused(mpsc::error::TrySendError::Full(record));
        }
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

    /// Queues a person's action; the future says whether it was committed, or why not in
    /// words for her display.
    pub fn commit_action(
        &self,
        action: String,
        person: String,
        target: Option<String>,
        at: i64,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        let (done, committed) = oneshot::channel();
        self.record(Record::Action {
            action,
            person,
            target,
            at,
            done: Some(done),
        });
        async move {
            match committed.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!(
                    "done, but the session record could not be written: {e}"
                )),
                Err(_) => Err("done, but the session record has stopped".into()),
            }
        }
    }

    /// Records lost: the writer could not keep up, or the database failed for so long that
    /// the records kept in memory for it reached their cap.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
