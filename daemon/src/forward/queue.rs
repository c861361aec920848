//! The forwarder's queue: what the session record holds that the peer has not acknowledged.
//!
//! The queue is the record itself plus one row of progress per forward (`forward_progress`,
//! migration 4): the last reading and alarm event acknowledged. Nothing is copied, so the
//! forwarder adds no write to the core's or the record writer's path, and whatever the record
//! committed survives a restart (kill -9) and a peer outage. Readings go out batched per
//! device per second (one PCD-01 per batch); every alarm step as one PCD-04, merged in time order.
//! Delivery is at least once: a message acknowledged just before a crash is sent again, with the
//! same MSH-10, after the restart.

use crate::pcd;
use crate::storage::query::StoredReading;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use vigil_protocol::display::AlarmInfo;

/// Most readings read for one second's batches.
const BLOCK_MAX: usize = 500;
/// A second's readings are complete this long after the second ends, even when nothing later
/// has been recorded (the writer commits every 250 ms).
const SETTLE_MS: i64 = 1500;
/// While thinning, a device sends at most one batch in this many seconds.
pub const THIN_SECONDS: i64 = 10;

/// One message to send, and what acknowledging it completes.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// MSH-10: `R<rowid>` for a readings batch (its first reading), `A<rowid>` for an alarm step.
    pub control: String,
    /// The HL7 message (segments separated by CR).
    pub message: String,
    /// Alarm step (never thinned) or readings batch.
    pub alarm: bool,
    done: Done,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Done {
    /// The alarm event with this rowid.
    Alarm(i64),
    /// One more device batch of the block after `after`; `last` ends the block at `end`.
    Batch { after: i64, last: bool, end: i64 },
}

/// Where a forward stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    reading_after: i64,
    block_done: i64,
    alarm_after: i64,
}

/// What `next` found besides the item.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// Readings and alarm steps recorded but not yet acknowledged by the peer.
    pub pending: u64,
    /// Readings skipped by thinning on this call.
    pub thinned: u64,
}

/// The queue of one forward over its own connection to the record.
pub struct Queue {
    conn: Connection,
    name: String,
    room: String,
    /// Readings pending beyond which readings are thinned.
    max_pending_readings: u64,
    /// While thinning: the last second each device's batch was sent.
    last_sent: HashMap<String, i64>,
}

/// Notes forward `name` in the record if it is new there: a new forward starts at the end of
/// the record (it forwards what happens from now on, not past sessions). Called when the
/// daemon opens the record, before the core runs, so that nothing of this run is missed.
pub fn register(conn: &Connection, name: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO forward_progress (forward, reading_after, block_done, alarm_after)
         VALUES (?1, (SELECT coalesce(max(rowid), 0) FROM readings), 0,
                 (SELECT coalesce(max(rowid), 0) FROM alarm_events))
         ON CONFLICT(forward) DO NOTHING",
        params![name],
    )?;
    Ok(())
}

fn max_rowid(conn: &Connection, table: &str) -> rusqlite::Result<i64> {
    conn.query_row(
        &format!("SELECT coalesce(max(rowid), 0) FROM {table}"),
        [],
        |r| r.get(0),
    )
}

impl Queue {
    /// The queue of forward `name` in the record `conn` (see [`register`]).
    pub fn open(
        conn: Connection,
        name: &str,
        room: &str,
        max_pending_readings: u64,
    ) -> rusqlite::Result<Queue> {
        register(&conn, name)?;
        Ok(Queue {
            conn,
            name: name.to_string(),
            room: room.to_string(),
            max_pending_readings,
            last_sent: HashMap::new(),
        })
    }

    fn progress(&self) -> rusqlite::Result<Progress> {
        self.conn.query_row(
            "SELECT reading_after, block_done, alarm_after FROM forward_progress WHERE forward = ?1",
            params![self.name],
            |r| {
                Ok(Progress {
                    reading_after: r.get(0)?,
                    block_done: r.get(1)?,
                    alarm_after: r.get(2)?,
                })
            },
        )
    }

    fn save(&self, p: Progress) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE forward_progress SET reading_after = ?2, block_done = ?3, alarm_after = ?4 WHERE forward = ?1",
            params![self.name, p.reading_after, p.block_done, p.alarm_after],
        )?;
        Ok(())
    }

    /// Readings and alarm steps recorded and not yet acknowledged.
    pub fn pending(&self) -> rusqlite::Result<u64> {
        let p = self.progress()?;
        Ok(self.pending_readings(p)? + self.pending_alarms(p)?)
    }

    fn pending_readings(&self, p: Progress) -> rusqlite::Result<u64> {
        Ok((max_rowid(&self.conn, "readings")? - p.reading_after).max(0) as u64)
    }

    fn pending_alarms(&self, p: Progress) -> rusqlite::Result<u64> {
        Ok((max_rowid(&self.conn, "alarm_events")? - p.alarm_after).max(0) as u64)
    }

    /// The next message to send (the oldest of the next alarm step and the next complete
    /// second of a device's readings), at unix ms `now`; `None` when nothing is due.
    pub fn next(&mut self, now: i64) -> rusqlite::Result<(Option<Item>, Backlog)> {
        let mut backlog = Backlog::default();
        loop {
            let mut p = self.progress()?;
            let readings = self.pending_readings(p)?;
            backlog.pending = readings + self.pending_alarms(p)?;
            let alarm = self.next_alarm(p)?;
            let thinning = readings > self.max_pending_readings;
            if !thinning {
                self.last_sent.clear();
            }
            let block = self.block(p, now)?;
            let Some((rows, end)) = block else {
                return Ok((alarm.map(|a| a.item), backlog));
            };
            let first_at = rows.first().map(|r| r.1.received_at).unwrap_or(now);
            if let Some(a) = alarm {
                if a.at_ms < first_at {
                    return Ok((Some(a.item), backlog));
                }
            }
            // The block's batches: one per device, in the order of their first reading.
            let mut groups: Vec<(i64, Vec<StoredReading>)> = Vec::new();
            let mut sessions: Vec<i64> = Vec::new();
            for (rowid, r, session) in rows {
                match groups.iter().position(|(_, g)| g[0].device == r.device) {
                    Some(i) => groups[i].1.push(r),
                    None => {
                        groups.push((rowid, vec![r]));
                        sessions.push(session);
                    }
                }
            }
            let count = groups.len() as i64;
            if p.block_done >= count {
                // Only if the record changed under us: the block is done.
                p.reading_after = end;
                p.block_done = 0;
                self.save(p)?;
                continue;
            }
            let second = first_at.div_euclid(1000);
            for (i, (first_rowid, readings)) in groups
                .into_iter()
                .enumerate()
                .skip(p.block_done.max(0) as usize)
            {
                let last = i as i64 + 1 == count;
                let done = Done::Batch {
                    after: p.reading_after,
                    last,
                    end,
                };
                let device = readings[0].device.clone();
                let thin = thinning
                    && self
                        .last_sent
                        .get(&device)
                        .is_some_and(|s| second - s < THIN_SECONDS && second >= *s);
                let control = format!("R{first_rowid}");
                let message = (!thin)
                    .then(|| pcd::pcd01(&self.room, sessions[i], &control, &readings))
                    .flatten();
                match message {
                    Some(message) => {
                        if thinning {
                            self.last_sent.insert(device, second);
                        }
                        let item = Item {
                            control,
                            message,
                            alarm: false,
                            done,
                        };
                        return Ok((Some(item), backlog));
                    }
                    None => {
                        // Thinned, or nothing numeric to send (only unavailable values).
                        if thin {
                            backlog.thinned += readings.len() as u64;
                        }
                        p = self.complete_batch(p, done)?;
                    }
                }
            }
        }
    }

    fn complete_batch(&self, mut p: Progress, done: Done) -> rusqlite::Result<Progress> {
        if let Done::Batch { after, last, end } = done {
            if p.reading_after == after {
                if last {
                    p.reading_after = end;
                    p.block_done = 0;
                } else {
                    p.block_done += 1;
                }
                self.save(p)?;
            }
        }
        Ok(p)
    }

    /// The peer acknowledged `item` (or it was skipped after refusals): it is never sent again.
    pub fn done(&self, item: &Item) -> rusqlite::Result<()> {
        let mut p = self.progress()?;
        match item.done {
            Done::Alarm(rowid) => {
                p.alarm_after = p.alarm_after.max(rowid);
                self.save(p)
            }
            batch => self.complete_batch(p, batch).map(|_| ()),
        }
    }

    fn next_alarm(&self, p: Progress) -> rusqlite::Result<Option<NextAlarm>> {
        let row: Option<(i64, i64, String, String, i64)> = self
            .conn
            .query_row(
                "SELECT rowid, session, event, alarm, at FROM alarm_events WHERE rowid > ?1 ORDER BY rowid LIMIT 1",
                params![p.alarm_after],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((rowid, session, event, json, at)) = row else {
            return Ok(None);
        };
        let control = format!("A{rowid}");
        let message = match serde_json::from_str::<AlarmInfo>(&json) {
            Ok(alarm) => pcd::pcd04(&self.room, session, &control, &event, &alarm, at),
            Err(e) => {
                // A damaged row is still an alarm step: sent with what the typed columns hold.
                tracing::warn!(forward = %self.name, rowid, error = %e, "alarm event not readable in full; forwarding its columns");
                let alarm = alarm_from_columns(&self.conn, rowid)?;
                pcd::pcd04(&self.room, session, &control, &event, &alarm, at)
            }
        };
        Ok(Some(NextAlarm {
            at_ms: at,
            item: Item {
                control,
                message,
                alarm: true,
                done: Done::Alarm(rowid),
            },
        }))
    }
}

/// An alarm event row's alarm from its typed columns, for a row whose display JSON cannot be
/// read (the central station's publisher reads the record the same way).
pub(crate) fn alarm_from_columns(conn: &Connection, rowid: i64) -> rusqlite::Result<AlarmInfo> {
    conn.query_row(
            "SELECT alarm_id, coalesce(rule, ''), priority, state, device FROM alarm_events WHERE rowid = ?1",
            params![rowid],
            |r| {
                Ok(AlarmInfo {
                    id: r.get(0)?,
                    rule: r.get(1)?,
                    kind: String::new(),
                    vital: None,
                    device: r.get(4)?,
                    priority: r.get(2)?,
                    message: String::new(),
                    state: r.get(3)?,
                    since: String::new(),
                    acknowledged_by: None,
                    acknowledged_at: None,
                    latching: false,
                    awaiting_confirmation: false,
                    value: None,
                })
            },
        )
}

impl Queue {
    /// The readings of the next complete second after `p` (rowid, reading, session), and the
    /// rowid that ends it; `None` while that second may still be filling.
    #[allow(clippy::type_complexity)]
    fn block(
        &self,
        p: Progress,
        now: i64,
    ) -> rusqlite::Result<Option<(Vec<(i64, StoredReading, i64)>, i64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT rowid, session, device, vital, value, unavailable, unit, mdc, flags, received_at
             FROM readings WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![p.reading_after, BLOCK_MAX as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                StoredReading {
                    device: r.get(2)?,
                    vital: r.get(3)?,
                    value: r.get(4)?,
                    unavailable: r.get(5)?,
                    unit: r.get(6)?,
                    mdc: r.get(7)?,
                    flags: r.get(8)?,
                    received_at: r.get(9)?,
                },
                r.get::<_, i64>(1)?,
            ))
        })?;
        let rows: Vec<(i64, StoredReading, i64)> = rows.collect::<rusqlite::Result<_>>()?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let second = first.1.received_at.div_euclid(1000);
        let full = rows.len() == BLOCK_MAX;
        let len = rows
            .iter()
            .position(|r| r.1.received_at.div_euclid(1000) != second || r.2 != first.2)
            .unwrap_or(rows.len());
        let complete = len < rows.len() || full || now >= (second + 1) * 1000 + SETTLE_MS;
        if !complete {
            return Ok(None);
        }
        let mut rows = rows;
        rows.truncate(len);
        let end = rows.last().map(|r| r.0).unwrap_or(p.reading_after);
        Ok(Some((rows, end)))
    }
}

struct NextAlarm {
    at_ms: i64,
    item: Item,
}
