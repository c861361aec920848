//! NATS in: the site's stream read with the central's durable consumer, the rooms' live
//! heartbeats, and a live snapshot asked of each room the first time this central process hears
//! it, which is the room's state only while the stream has given no snapshot of it (the
//! stream's order decides everything else: a live snapshot never makes the central skip a
//! stored step).
//!
//! At start, each room's last stored `snapshot` seeds its state (an ephemeral consumer over
//! `vigil.<site>.*.snapshot`, last per subject). The durable consumer `vigil-central-<name>` is
//! created, the first time, at the oldest of those snapshots, and from then on resumes where
//! this central left it: what a room published while the central was down (or the room was cut
//! off and later replayed) arrives in order. What it had delivered before a restart is read
//! again from the oldest snapshot (the restarted process has no memory of it). Messages
//! already applied are skipped by `seq`.
//!
//! A heartbeat keeps a room's link up only while the central has read the stream as far as the
//! room's last stored message (`stream_seq` in the heartbeat): a central whose reading stalls
//! (its consumer broken, or behind a flood) must not show rooms as watched (see [`Lag`]).

use super::budget::ReadingBudget;
use super::hub::Hub;
use super::rooms::{Malformed, LINK_TIMEOUT, MAX_ROOMS};
use crate::nats::signed::ActionKey;
use crate::nats::{ensure_stream, Subjects};
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Wait before trying the stream again after a failure.
const RETRY: Duration = Duration::from_secs(1);
/// Messages the durable consumer may have delivered and not yet acknowledged.
const MAX_ACK_PENDING: i64 = 4096;
/// The live snapshot request is repeated this often while a room has not answered it.
const ASK_AGAIN: Duration = Duration::from_secs(5);

/// The boot of a stored message: the middle part of its `Nats-Msg-Id`,
/// `<room_id>.<boot>.<seq>`.
fn boot_of(headers: Option<&async_nats::HeaderMap>) -> Option<String> {
    // The header's constant: as read from the wire it is a standard header, which a `&str`
    // key ("Nats-Msg-Id") never finds (X6).
    let id = headers?.get(async_nats::header::NATS_MESSAGE_ID)?.as_str();
    let mut parts = id.split('.');
    let (_room, boot, _seq) = (parts.next()?, parts.next()?, parts.next()?);
    Some(boot.to_string())
}

/// Applies one stored message (`vigil.<site>.<room_id>.<kind>`).
fn apply(hub: &Hub, site: &str, message: &async_nats::Message) {
    match Subjects::parse(message.subject.as_str()) {
        Some((s, room_id, _kind)) if s == site => hub.apply(
            room_id,
            boot_of(message.headers.as_ref()).as_deref(),
            &message.payload,
        ),
        _ => hub.malformed(
            "?",
            &Malformed::NotJson(format!("unexpected subject {}", message.subject)),
        ),
    }
}

/// Whether `message` is within its room's reading budget (X7); a reading beyond it is counted
/// as malformed and not applied.
fn within_budget(
    budget: &mut ReadingBudget,
    hub: &Hub,
    message: &async_nats::Message,
    published_s: Option<i64>,
) -> bool {
    let (Some((_, room_id, "reading")), Some(published_s)) =
        (Subjects::parse(message.subject.as_str()), published_s)
    else {
        return true;
    };
    if budget.admit(room_id, published_s) {
        return true;
    }
    hub.malformed(room_id, &Malformed::Flood);
    false
}

/// How far behind the rooms the central's reading of the stream is: per room, the oldest
/// heartbeat whose `stream_seq` the central had not yet read when it arrived (sans-IO).
#[derive(Debug, Default)]
pub struct Lag {
    owed: HashMap<String, (u64, Instant)>,
}

impl Lag {
    /// Whether `room_id`'s heartbeat at `now`, saying the stream holds the room's messages up to
    /// `stream_seq`, may keep its link up, the central having applied the stream up to
    /// `applied`: not once the central has been behind the room for [`LINK_TIMEOUT`]. The
    /// room's link is then lost as if it were silent, and its alarm sounds: nobody watches the
    /// room through the central. A heartbeat without `stream_seq` (an older room) counts.
    pub fn current(
        &mut self,
        room_id: &str,
        stream_seq: Option<u64>,
        applied: u64,
        now: Instant,
    ) -> bool {
        let Some(stream_seq) = stream_seq else {
            return true;
        };
        if let Some(&(owed, since)) = self.owed.get(room_id) {
            if applied < owed {
                return now.saturating_duration_since(since) < LINK_TIMEOUT;
            }
        }
        if applied >= stream_seq {
            self.owed.remove(room_id);
        } else if self.owed.contains_key(room_id) || self.owed.len() < MAX_ROOMS {
            self.owed.insert(room_id.to_string(), (stream_seq, now));
        }
        true
    }
}

/// Runs until `cancel`: the stream (seeding, then the durable consumer) and the heartbeats.
pub async fn run(
    (client, key): (async_nats::Client, Option<ActionKey>),
    site: String,
    consumer: String,
    hub: Arc<Hub>,
    cancel: CancellationToken,
) {
    // The stream sequence up to which the central has applied the site's stream.
    let applied = AtomicU64::new(0);
    let stored = stream(client.clone(), &site, &consumer, &hub, &applied);
    let live = heartbeats(client, key, &site, &hub, &applied);
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = stored => {}
        _ = live => {}
    }
}

async fn stream(
    client: async_nats::Client,
    site: &str,
    name: &str,
    hub: &Hub,
    applied: &AtomicU64,
) {
    let js = async_nats::jetstream::new(client);
    // While NATS is down this fails every second: logged at once, then once a minute.
    let mut failures = crate::net::Tally::default();
    loop {
        if let Err(e) = consume(&js, site, name, hub, applied).await {
            if let Some(count) = failures.note(Instant::now()) {
                tracing::warn!(error = %e, count, "reading the site's stream failed; trying again every second");
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Seeds from the last snapshots, then reads the durable consumer until it fails.
async fn consume(
    js: &async_nats::jetstream::Context,
    site: &str,
    name: &str,
    hub: &Hub,
    applied: &AtomicU64,
) -> anyhow::Result<()> {
    let stream = ensure_stream(js, site).await?;
    let seed = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::LastPerSubject,
            filter_subject: format!("vigil.{site}.*.snapshot"),
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await?;
    let mut oldest: Option<u64> = None;
    let mut snapshots = seed.fetch().max_messages(10_000).messages().await?;
    while let Some(message) = snapshots.next().await {
        let message = message.map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Ok(info) = message.info() {
            oldest = Some(oldest.map_or(info.stream_sequence, |o| o.min(info.stream_sequence)));
        }
        apply(hub, site, &message);
    }
    let deliver_policy = match oldest {
        Some(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
        None => DeliverPolicy::All,
    };
    // Created once with this start; later starts resume where it left off.
    let durable = stream
        .get_or_create_consumer(
            name,
            pull::Config {
                durable_name: Some(name.to_string()),
                deliver_policy,
                ack_policy: AckPolicy::Explicit,
                max_ack_pending: MAX_ACK_PENDING,
                ..Default::default()
            },
        )
        .await?;
    // What the durable consumer delivered before this process started is not in this
    // process's memory: read it again, from the oldest snapshot up to where the durable
    // consumer stands (already applied messages are skipped by `seq`).
    let delivered = durable.get_info().await?.delivered.stream_sequence;
    if let Some(start_sequence) = oldest.filter(|o| *o <= delivered) {
        rebuild(&stream, site, start_sequence, delivered, hub).await?;
    }
    // This consumer's position (stream sequences start again with a new stream).
    applied.store(delivered, Ordering::Relaxed);
    tracing::info!(consumer = %name, "reading the site's stream");
    let mut budget = ReadingBudget::default();
    let mut messages = durable.messages().await?;
    while let Some(message) = messages.next().await {
        match message {
            Ok(message) => {
                // A redelivery (its acknowledgement lost, or in flight when an earlier process
                // stopped) comes after newer messages and was applied already: applied again,
                // a room's earlier run would undo its current state (X5).
                let info = message.info().ok();
                let at = info.as_ref().map(|i| i.stream_sequence);
                let published_s = info.as_ref().map(|i| i.published.unix_timestamp());
                if at.is_none_or(|at| at > applied.load(Ordering::Relaxed))
                    && within_budget(&mut budget, hub, &message, published_s)
                {
                    apply(hub, site, &message);
                }
                if let Some(at) = at {
                    applied.fetch_max(at, Ordering::Relaxed);
                }
                if let Err(e) = message.ack().await {
                    tracing::warn!(error = %e, "cannot acknowledge a stream message");
                }
            }
            // Missed heartbeats of the pull and the like: the stream goes on.
            Err(e) => tracing::warn!(error = %e, "the site's stream"),
        }
    }
    Ok(())
}

/// Applies the stored messages from `from` to `to` (stream sequences) with an ephemeral
/// consumer.
async fn rebuild(
    stream: &async_nats::jetstream::stream::Stream,
    site: &str,
    from: u64,
    to: u64,
    hub: &Hub,
) -> anyhow::Result<()> {
    let replay = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await?;
    loop {
        let mut batch = replay.fetch().max_messages(1000).messages().await?;
        let mut got = 0;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| anyhow::anyhow!("{e}"))?;
            let at = message
                .info()
                .map(|i| i.stream_sequence)
                .unwrap_or(u64::MAX);
            if at > to {
                return Ok(());
            }
            apply(hub, site, &message);
            got += 1;
        }
        if got == 0 {
            return Ok(());
        }
    }
}

/// The rooms' heartbeats; asks a room heard for the first time for its current snapshot.
async fn heartbeats(
    client: async_nats::Client,
    key: Option<ActionKey>,
    site: &str,
    hub: &Arc<Hub>,
    applied: &AtomicU64,
) {
    #[derive(serde::Deserialize)]
    struct Beat {
        #[serde(default)]
        room: String,
        room_id: String,
        #[serde(default)]
        boot: Option<serde_json::Value>,
        #[serde(default)]
        stream_seq: Option<u64>,
    }
    let subject = format!("vigil-live.{site}.*.heartbeat");
    let mut asked: HashMap<String, Instant> = HashMap::new();
    let mut lag = Lag::default();
    let mut behind_log = crate::net::Tally::default();
    loop {
        let mut beats = match client.subscribe(subject.clone()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to the rooms' heartbeats");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let subscribed = Instant::now();
        while let Some(message) = beats.next().await {
            let Some((_, room_id, _)) = Subjects::parse(message.subject.as_str()) else {
                continue;
            };
            let beat = match serde_json::from_slice::<Beat>(&message.payload) {
                Ok(beat) if beat.room_id == room_id => beat,
                Ok(_) => {
                    hub.malformed(
                        room_id,
                        &Malformed::NotJson("a heartbeat names another room".into()),
                    );
                    continue;
                }
                Err(e) => {
                    hub.malformed(room_id, &Malformed::NotJson(e.to_string()));
                    continue;
                }
            };
            let boot = beat.boot.map(|b| match b {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            });
            let now = Instant::now();
            let read = applied.load(Ordering::Relaxed);
            if !lag.current(room_id, beat.stream_seq, read, now) {
                // Not passed on: the room's link is lost at the central after LINK_TIMEOUT.
                if let Some(count) = behind_log.note(now) {
                    tracing::warn!(room = %room_id, applied = read, count, "the central has not read the room's stored messages for 5 s: its heartbeats do not keep its link up");
                }
                continue;
            }
            hub.heartbeat(room_id, &beat.room, boot.as_deref());
            let due = hub.knows(room_id)
                && asked.get(room_id).is_none_or(|at| {
                    hub.needs_snapshot(room_id) && now.saturating_duration_since(*at) >= ASK_AGAIN
                });
            if due {
                asked.insert(room_id.to_string(), now);
                tokio::spawn(ask_snapshot(
                    (client.clone(), key.clone()),
                    Subjects::new(site, room_id).snapshot_request(),
                    room_id.to_string(),
                    hub.clone(),
                ));
            }
        }
        // The subscription ended (the client closed): not again at once.
        tokio::time::sleep(RETRY.saturating_sub(subscribed.elapsed())).await;
    }
}

/// Asks a room for its current snapshot; the answer is its state only while the stream has
/// given no snapshot of the room (see `Rooms::apply_live_snapshot`).
async fn ask_snapshot(
    (client, key): (async_nats::Client, Option<ActionKey>),
    subject: String,
    room_id: String,
    hub: Arc<Hub>,
) {
    // Signed like every request to a room (hazard V6); without a key the room would refuse it.
    let Some(key) = key else {
        return;
    };
    let headers = key.sign(&subject, b"", crate::nats::signed::unix_ms_now());
    match client
        .request_with_headers(subject, headers, "".into())
        .await
    {
        Ok(reply) => {
            // A room that refuses the central's signature refuses its actions too: say so
            // loudly now, not when a nurse's acknowledgement is refused.
            if let Ok(serde_json::Value::Object(answer)) = serde_json::from_slice(&reply.payload) {
                if answer.get("code").and_then(|c| c.as_str()) == Some("unauthenticated") {
                    let reason = answer.get("reason").and_then(|r| r.as_str()).unwrap_or("");
                    tracing::error!(room = %room_id, %reason, "the room refuses this central's requests: check that both have the site's action_key, and both clocks");
                    return;
                }
            }
            hub.apply_live_snapshot(&room_id, &reply.payload)
        }
        Err(e) => {
            tracing::info!(room = %room_id, error = %e, "a room did not answer the snapshot request")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// X2: heartbeats keep a room's link up only while the central reads the stream as far as
    /// the room has stored; a central stalled behind the room for LINK_TIMEOUT stops counting
    /// them, and counts them again once it has caught up.
    #[test]
    fn heartbeats_count_only_while_the_central_reads_as_far_as_the_room_stored() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut lag = Lag::default();
        // Caught up, or a heartbeat from a room without stream_seq: counts.
        assert!(lag.current("room-1", Some(10), 10, start));
        assert!(lag.current("room-1", None, 0, start));
        // The central's reading stalls at 10 while the room stores on.
        for i in 1..=4u32 {
            assert!(lag.current("room-1", Some(10 + u64::from(i)), 10, start + second * i));
        }
        assert!(!lag.current("room-1", Some(16), 10, start + second * 6));
        // Another room the central has read is unaffected.
        assert!(lag.current("room-2", Some(9), 10, start + second * 6));
        // Caught up: counts again.
        assert!(lag.current("room-1", Some(17), 17, start + second * 7));
        // A central that keeps up with a busy room, a little behind each time, is current.
        for i in 8..30u32 {
            let at = start + second * i;
            assert!(lag.current("room-1", Some(u64::from(i) * 10), u64::from(i - 1) * 10, at));
        }
    }
}
