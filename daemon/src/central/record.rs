//! What the room recorded and the central station has not had: the outbox's backing across a
//! restart. Like the HL7 forwarder's queue (`forward/queue.rs`) it copies nothing: the session
//! record is the store, and one progress row (`central_progress`, migration 6) holds the last
//! alarm event and link change JetStream acknowledged. After a restart (or `kill -9`) the
//! publisher reads the alarm steps and link changes recorded after that row and before this run
//! began, and publishes them first, in their recorded order, with their original times.
//!
//! The live path stays as it was (the core's feed into the in-memory outbox, published at once);
//! an acknowledged live step advances the row to the first unpublished row of the same alarm and
//! event (or device and state). That never goes past a row not yet published: rows and feed
//! share the core's order, so the first match is the step's own row or an earlier one, which
//! only makes a step published again after a crash (at least once), never lost.

use super::outbox::Subject;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil_protocol::display::{LinkState, ServerMessage};

/// Most recorded messages published from the record after a restart: the newest are kept (the
/// older ones are named in the log).
pub const REPLAY_MAX: usize = 10_000;
/// Acknowledgements waiting to be noted in the record; beyond it they are dropped, which only
/// makes the progress lag (a step published again after a crash).
const NOTES_MAX: usize = 4096;
/// A live step's row may not be committed yet when JetStream acknowledges it: tried again
/// this often, for at most [`NOTE_PATIENCE`].
const NOTE_RETRY: Duration = Duration::from_millis(250);
/// How long a live step's row is looked for (recording may be failing).
const NOTE_PATIENCE: Duration = Duration::from_secs(10);

/// What a publication acknowledged by JetStream completes in the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// A recorded alarm event (rowid), published from the record.
    AlarmRow(i64),
    /// A recorded link change (rowid), published from the record.
    LinkRow(i64),
    /// A live alarm step: the first unpublished row of this alarm with this event.
    Alarm {
        /// The alarm's id.
        alarm_id: String,
        /// `raised`, `acknowledged`, ...
        event: String,
    },
    /// A live link change: the first unpublished row of this device in this state.
    Link {
        /// The device's id.
        device: String,
        /// The link state's wire name.
        state: String,
    },
}

impl Done {
    /// What acknowledging a live message (its display JSON) completes, for the subjects the
    /// record keeps.
    pub fn of_live(subject: Subject, payload: &str) -> Option<Done> {
        let value: serde_json::Value = serde_json::from_str(payload).ok()?;
        let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
        match subject {
            Subject::Alarm => Some(Done::Alarm {
                alarm_id: text(&value["alarm"]["id"])?,
                event: text(&value["event"])?,
            }),
            Subject::Device => Some(Done::Link {
                device: text(&value["device"])?,
                state: text(&value["link"])?,
            }),
            _ => None,
        }
    }
}

/// One recorded message to publish after a restart.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// Its subject.
    pub subject: Subject,
    /// The display message (its `seq` set when it is queued).
    pub message: ServerMessage,
    /// What its acknowledgement completes.
    pub done: Done,
}

/// The central station's progress in the session record.
pub struct RecordProgress {
    conn: Arc<Mutex<Connection>>,
    /// The last rows recorded before this run began (alarm event, link change).
    before: (i64, i64),
}

fn max_rowid(conn: &Connection, table: &str) -> rusqlite::Result<i64> {
    conn.query_row(
        &format!("SELECT coalesce(max(rowid), 0) FROM {table}"),
        [],
        |r| r.get(0),
    )
}

impl RecordProgress {
    /// Opens the record at `path` on a connection of its own. Called before the core runs, so
    /// that what this run records is told from what an earlier run left. The first time, the
    /// progress starts at the end of the record.
    pub fn open(path: &Path) -> rusqlite::Result<RecordProgress> {
        let conn = crate::storage::open(path)?;
        conn.execute(
            "INSERT INTO central_progress (id, alarm_after, link_after)
             VALUES (1, (SELECT coalesce(max(rowid), 0) FROM alarm_events),
                        (SELECT coalesce(max(rowid), 0) FROM links))
             ON CONFLICT(id) DO NOTHING",
            [],
        )?;
        let before = (
            max_rowid(&conn, "alarm_events")?,
            max_rowid(&conn, "links")?,
        );
        Ok(RecordProgress {
            conn: Arc::new(Mutex::new(conn)),
            before,
        })
    }

    /// What an earlier run recorded and did not publish, oldest first (at most
    /// [`REPLAY_MAX`], the newest).
    pub async fn unpublished(&self) -> Vec<Replayed> {
        let (conn, before) = (self.conn.clone(), self.before);
        let read = tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            unpublished(&conn, before, REPLAY_MAX)
        })
        .await;
        match read {
            Ok(Ok((replayed, skipped))) => {
                if skipped > 0 {
                    tracing::error!(skipped, kept = replayed.len(), "more unpublished alarm steps and link changes in the record than the central station's outbox keeps: the oldest are not published");
                }
                if !replayed.is_empty() {
                    tracing::info!(
                        messages = replayed.len(),
                        "publishing to the central station what the last run recorded and could not publish"
                    );
                }
                replayed
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read what the last run did not publish to the central station");
                Vec::new()
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read what the last run did not publish to the central station");
                Vec::new()
            }
        }
    }

    /// Notes acknowledgements in the record, in order, until `cancel`.
    pub async fn keep(self, mut notes: mpsc::Receiver<Done>, cancel: CancellationToken) {
        let mut waiting: VecDeque<(Done, tokio::time::Instant)> = VecDeque::new();
        loop {
            if waiting.is_empty() {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    note = notes.recv() => match note {
                        Some(done) => waiting.push_back((done, tokio::time::Instant::now())),
                        None => return,
                    },
                }
            }
            while waiting.len() < NOTES_MAX {
                let Ok(done) = notes.try_recv() else { break };
                waiting.push_back((done, tokio::time::Instant::now()));
            }
            let Some((done, since)) = waiting.front().cloned() else {
                continue;
            };
            let conn = self.conn.clone();
            let noted = tokio::task::spawn_blocking(move || {
                let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                note(&conn, &done)
            })
            .await
            .unwrap_or(Ok(false));
            match noted {
                Ok(true) => {
                    waiting.pop_front();
                }
                Ok(false) if since.elapsed() >= NOTE_PATIENCE => {
                    // Its row never came (recording fails): the next steps' rows move on.
                    waiting.pop_front();
                }
                Ok(false) => {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(NOTE_RETRY) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot note in the session record what the central station has");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(crate::storage::RETRY) => {}
                    }
                }
            }
        }
    }
}

/// The publisher's end of the notes: never waits.
#[derive(Debug, Clone)]
pub struct Notes(mpsc::Sender<Done>);

/// A channel of acknowledgements to note.
pub fn notes() -> (Notes, mpsc::Receiver<Done>) {
    let (tx, rx) = mpsc::channel(NOTES_MAX);
    (Notes(tx), rx)
}

impl Notes {
    /// JetStream acknowledged the message that completes `done`.
    pub fn acknowledged(&self, done: Done) {
        if self.0.try_send(done).is_err() {
            tracing::debug!("central progress notes full: one not noted");
        }
    }
}

/// Notes one acknowledgement: `Ok(false)` when a live step's row is not (yet) in the record.
fn note(conn: &Connection, done: &Done) -> rusqlite::Result<bool> {
    let changed = match done {
        Done::AlarmRow(rowid) => conn.execute(
            "UPDATE central_progress SET alarm_after = max(alarm_after, ?1) WHERE id = 1",
            params![rowid],
        )?,
        Done::LinkRow(rowid) => conn.execute(
            "UPDATE central_progress SET link_after = max(link_after, ?1) WHERE id = 1",
            params![rowid],
        )?,
        Done::Alarm { alarm_id, event } => conn.execute(
            "UPDATE central_progress SET alarm_after = (SELECT min(rowid) FROM alarm_events
                 WHERE rowid > alarm_after AND alarm_id = ?1 AND event = ?2)
             WHERE id = 1 AND EXISTS (SELECT 1 FROM alarm_events
                 WHERE rowid > alarm_after AND alarm_id = ?1 AND event = ?2)",
            params![alarm_id, event],
        )?,
        Done::Link { device, state } => conn.execute(
            "UPDATE central_progress SET link_after = (SELECT min(rowid) FROM links
                 WHERE rowid > link_after AND device = ?1 AND state = ?2)
             WHERE id = 1 AND EXISTS (SELECT 1 FROM links
                 WHERE rowid > link_after AND device = ?1 AND state = ?2)",
            params![device, state],
        )?,
    };
    Ok(changed > 0 || matches!(done, Done::AlarmRow(_) | Done::LinkRow(_)))
}

/// The rows after the progress and up to `before`, merged in recorded order (time, then
/// alarm steps before link changes of the same millisecond), the newest `max`; and how many
/// older ones were left out.
fn unpublished(
    conn: &Connection,
    before: (i64, i64),
    max: usize,
) -> rusqlite::Result<(Vec<Replayed>, usize)> {
    let (alarm_after, link_after): (i64, i64) = conn
        .query_row(
            "SELECT alarm_after, link_after FROM central_progress WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .unwrap_or(before);
    let mut rows: Vec<(i64, u8, i64, Replayed)> = Vec::new();
    let found =
        crate::storage::query::newest_alarm_steps_between(conn, alarm_after, before.0, max)?;
    for step in found {
        let step = match step {
            Ok(step) => step,
            Err(unreadable) => {
                // Nothing is made up: a step the record cannot give back is not published.
                tracing::error!(error = %unreadable, "alarm step not replayed to the central: the record cannot give it back");
                continue;
            }
        };
        let (rowid, at) = (step.position, step.at);
        let message = ServerMessage::Alarm {
            seq: 0,
            event: crate::core::wire_name(&step.change),
            alarm: step.alarm.display(),
        };
        let done = Done::AlarmRow(rowid);
        rows.push((
            at,
            0,
            rowid,
            Replayed {
                subject: Subject::Alarm,
                message,
                done,
            },
        ));
    }
    let mut links = conn.prepare(
        "SELECT rowid, device, state, reason, at FROM links WHERE rowid > ?1 AND rowid <= ?2
         ORDER BY rowid DESC LIMIT ?3",
    )?;
    let found = links
        .query_map(params![link_after, before.1, max as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (rowid, device, state, reason, at) in found {
        let Ok(link) = serde_json::from_value::<LinkState>(serde_json::Value::String(state)) else {
            tracing::warn!(rowid, "recorded link change not readable; not published");
            continue;
        };
        let message = ServerMessage::Device {
            seq: 0,
            device,
            link,
            reason,
        };
        rows.push((
            at,
            1,
            rowid,
            Replayed {
                subject: Subject::Device,
                message,
                done: Done::LinkRow(rowid),
            },
        ));
    }
    rows.sort_by_key(|(at, table, rowid, _)| (*at, *table, *rowid));
    let skipped = rows.len().saturating_sub(max);
    Ok((
        rows.into_iter().skip(skipped).map(|(.., r)| r).collect(),
        skipped,
    ))
}

#[cfg(test)]
mod tests;
