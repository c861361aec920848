//! A shared `listen` address: one listener per address, however many devices use it. Each
//! connection is its own task with a frame deadline, and the number of connections is capped:
//! at the cap a new connection takes the place of one that has read nothing (V3), so a slow or
//! hostile client cannot block the monitors. On a TLS listener the handshake runs in that task
//! too, bounded by [`super::HANDSHAKE_DEADLINE`], so a client that never finishes it (or speaks
//! plain TCP) holds one connection slot for that long at most, and is logged. Each message goes
//! to the first device whose `match` takes it; a message no device takes is acknowledged and
//! counted.
//!
//! Nothing a peer sends writes a log line per message or per connection: refusals, drops,
//! evictions and the comings and goings of connections are counted ([`Tally`]) and logged at
//! most once a minute with their count (W1); a monitor's own device says when its link drops.

use super::{refuse, write_ack, Hl7Spec, Hl7Tls, Stream, FRAME_DEADLINE, IDLE_LIMIT, MAX_BACKOFF};
use crate::backoff::Backoff;
use crate::events::{Command, Link};
use crate::report::{CoreGone as HubGone, Reporter};
use crate::tally::Tally;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{interval, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use vigil_protocol::format::Decoded;
use vigil_protocol::hl7::replay::mark_replayed;
use vigil_protocol::hl7::{CodeTable, Header, Hl7Receiver, Match, Received, ReplayGuard, SentAt};
use vigil_protocol::{DecodeError, Format};

/// Most connections one listener holds at once. At the cap, a new connection takes the place of
/// the oldest one that has not yet delivered a message (else of the one silent longest): idle
/// clients cannot keep a monitor out (V3).
pub const MAX_CONNECTIONS: usize = 16;
/// Messages queued for one device before further ones are dropped (and logged): a stalled
/// device never stalls the listener.
const DEVICE_QUEUE: usize = 64;

static UNMATCHED: AtomicU64 = AtomicU64::new(0);

/// Messages acknowledged on a shared listener that no device's `match` took (`/metrics`).
pub fn unmatched_total() -> u64 {
    UNMATCHED.load(Ordering::Relaxed)
}

/// What a connection hands a device.
enum Routed {
    /// Outputs of one message, from connection `conn`, sent at `sent` (MSH-7).
    Decoded {
        conn: u64,
        sent: Option<SentAt>,
        items: Vec<Decoded>,
    },
    /// Connection `conn` ended.
    Closed { conn: u64, reason: String },
}

struct Registration {
    key: u64,
    device: String,
    matcher: Match,
    tx: mpsc::Sender<Routed>,
    /// Messages dropped because the device's queue was full, logged ...
    dropped_log: Tally,
    /// ... and counted for the device to report (W2).
    dropped: Arc<AtomicU64>,
}

/// The listener's rate-limited log lines (W1).
#[derive(Default)]
struct Logs {
    opened: Tally,
    /// Connections that delivered messages (the device's own link line says more).
    closed: Tally,
    /// Connections that closed without delivering a message (scanners, idle or hostile clients).
    closed_quiet: Tally,
    evicted: Tally,
    /// TLS refused: a failed handshake (a plain or misconfigured client) ...
    no_tls: Tally,
    /// ... and one never finished (a stalled client), each kind logged at once.
    no_tls_stalled: Tally,
    refused: Tally,
}

/// One listening address and the devices on it.
struct Gateway {
    addr: SocketAddr,
    devices: Mutex<Vec<Registration>>,
    /// The first device's table reads every message (devices on one address share a vendor).
    table: CodeTable,
    /// The first device's TLS settings (devices on one address share them too).
    tls: Option<Hl7Tls>,
    connections: Mutex<Vec<Slot>>,
    logs: Mutex<Logs>,
    stop: CancellationToken,
}

/// A connection the listener holds.
struct Slot {
    conn: u64,
    /// When it last delivered a message it could read; None: never yet.
    last_message: Option<Instant>,
    accepted: Instant,
    close: CancellationToken,
}

impl Gateway {
    /// Takes `conn` in, closing the connection that gives way to it when at the cap: one that
    /// never delivered a message (the oldest), else the one silent longest. A monitor sends
    /// every few seconds, so idle or slow clients go first.
    fn admit(&self, conn: u64, close: CancellationToken) -> Option<u64> {
        let mut slots = lock(&self.connections);
        let mut closed = None;
        if slots.len() >= MAX_CONNECTIONS {
            let oldest = (0..slots.len()).min_by_key(|&i| {
                (
                    slots[i].last_message.is_some(),
                    slots[i].last_message,
                    slots[i].accepted,
                )
            });
            if let Some(i) = oldest {
                let slot = slots.swap_remove(i);
                slot.close.cancel();
                closed = Some(slot.conn);
            }
        }
        slots.push(Slot {
            conn,
            last_message: None,
            accepted: Instant::now(),
            close,
        });
        closed
    }

    /// `conn` delivered a message.
    fn delivered(&self, conn: u64) {
        if let Some(slot) = lock(&self.connections).iter_mut().find(|s| s.conn == conn) {
            slot.last_message = Some(Instant::now());
        }
    }

    /// Forgets `conn`; whether it ever delivered a message.
    fn release(&self, conn: u64) -> bool {
        let mut slots = lock(&self.connections);
        let delivered = slots
            .iter()
            .any(|s| s.conn == conn && s.last_message.is_some());
        slots.retain(|s| s.conn != conn);
        delivered
    }

    /// Counts an event in the tally `pick` chooses; `Some(count)` when its line is due.
    fn tally(&self, pick: impl FnOnce(&mut Logs) -> &mut Tally) -> Option<u64> {
        pick(&mut lock(&self.logs)).note(Instant::now())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn registry() -> &'static Mutex<HashMap<SocketAddr, Weak<Gateway>>> {
    static GATEWAYS: OnceLock<Mutex<HashMap<SocketAddr, Weak<Gateway>>>> = OnceLock::new();
    GATEWAYS.get_or_init(Mutex::default)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The gateway on `addr`, bound now if no device holds it yet.
async fn gateway(addr: SocketAddr, spec: &Hl7Spec) -> Result<Arc<Gateway>, String> {
    if let Some(g) = running(&lock(registry()), addr) {
        return same_settings(g, spec);
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let mut map = lock(registry());
    // Another device may have bound it meanwhile (then this bind failed above, or won the race).
    if let Some(g) = running(&map, addr) {
        return same_settings(g, spec);
    }
    let g = Arc::new(Gateway {
        addr,
        devices: Mutex::default(),
        table: spec.table.clone(),
        tls: spec.tls.clone(),
        connections: Mutex::default(),
        logs: Mutex::default(),
        stop: CancellationToken::new(),
    });
    map.insert(addr, Arc::downgrade(&g));
    tracing::info!(%addr, tls = g.tls.is_some(), "HL7 listener started");
    tokio::spawn(accept(listener, Arc::downgrade(&g), g.stop.clone()));
    Ok(g)
}

/// The gateway on `addr` unless it is gone or stopping (its last device left).
fn running(map: &HashMap<SocketAddr, Weak<Gateway>>, addr: SocketAddr) -> Option<Arc<Gateway>> {
    map.get(&addr)
        .and_then(Weak::upgrade)
        .filter(|g| !g.stop.is_cancelled())
}

/// `g` if it reads and secures connections as `spec` asks. A device restarted with new settings
/// (a reload) may find the old listener still closing: it waits and tries again rather than
/// serve with the old certificate or codes.
fn same_settings(g: Arc<Gateway>, spec: &Hl7Spec) -> Result<Arc<Gateway>, String> {
    if g.table == spec.table && g.tls == spec.tls {
        Ok(g)
    } else {
        Err(format!(
            "{} is still held by a listener with other codes or TLS settings",
            g.addr
        ))
    }
}

async fn accept(listener: TcpListener, gateway: Weak<Gateway>, stop: CancellationToken) {
    let mut next_conn = 0u64;
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "HL7 listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(g) = gateway.upgrade() else { return };
        next_conn += 1;
        let (conn, close) = (next_conn, stop.child_token());
        if let Some(closed) = g.admit(conn, close.clone()) {
            if let Some(count) = g.tally(|l| &mut l.evicted) {
                tracing::warn!(addr = %g.addr, %peer, max = MAX_CONNECTIONS, closed, count, "HL7 listener: too many connections; closed the one silent longest");
            }
        }
        if let Some(count) = g.tally(|l| &mut l.opened) {
            tracing::info!(addr = %g.addr, %peer, count, "HL7 connection opened");
        }
        tokio::spawn(async move {
            let stream: Box<dyn Stream> = match &g.tls {
                None => Box::new(stream),
                Some(tls) => {
                    let accepted = tokio::select! {
                        _ = close.cancelled() => Err("closed for a new connection (too many connections)".to_string()),
                        accepted = tls.accept(stream) => accepted,
                    };
                    match accepted {
                        Ok(stream) => stream,
                        Err(reason) => {
                            // A monitor set up without TLS, a wrong certificate, or a stalled
                            // client: nothing was read, so nothing of a patient's is in the reason.
                            let stalled = reason == super::tls::no_handshake();
                            let tally = g.tally(|l| {
                                if stalled {
                                    &mut l.no_tls_stalled
                                } else {
                                    &mut l.no_tls
                                }
                            });
                            if let Some(count) = tally {
                                tracing::warn!(addr = %g.addr, %peer, %reason, count, "HL7 connection refused: no TLS");
                            }
                            g.release(conn);
                            return;
                        }
                    }
                }
            };
            let reason = connection(stream, conn, &g, &close).await;
            let devices: Vec<_> = lock(&g.devices).iter().map(|r| r.tx.clone()).collect();
            for tx in devices {
                let _ = tx.try_send(Routed::Closed {
                    conn,
                    reason: reason.clone(),
                });
            }
            if g.release(conn) {
                if let Some(count) = g.tally(|l| &mut l.closed) {
                    tracing::info!(addr = %g.addr, %peer, %reason, count, "HL7 connection closed");
                }
            } else if let Some(count) = g.tally(|l| &mut l.closed_quiet) {
                tracing::info!(addr = %g.addr, %peer, %reason, count, "HL7 connection closed without a message");
            }
        });
    }
}

/// Serves one connection; returns why it ended.
async fn connection(
    mut stream: Box<dyn Stream>,
    conn: u64,
    g: &Gateway,
    stop: &CancellationToken,
) -> String {
    let mut receiver = Hl7Receiver::new(g.table.clone());
    let mut buf = vec![0u8; 16 * 1024];
    let mut frame_started = Instant::now();
    let mut last_bytes = Instant::now();
    let mut tick = interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return if g.stop.is_cancelled() {
                "no device listens here any more".into()
            } else {
                "closed for a new connection (too many connections)".into()
            },
            read = stream.read(&mut buf) => {
                let n = match read {
                    Ok(0) => return "the monitor closed the connection".into(),
                    Ok(n) => n,
                    Err(e) => return format!("read failed: {e}"),
                };
                let now = Instant::now();
                last_bytes = now;
                if receiver.pending() == 0 {
                    frame_started = now;
                }
                for received in receiver.handle_input(&buf[..n]) {
                    if matches!(received, Received::Message { .. }) {
                        g.delivered(conn);
                    }
                    route(g, conn, received);
                }
                while let Some(ack) = receiver.poll_transmit() {
                    if write_ack(&mut stream, &ack).await.is_err() {
                        return "cannot write the ACK".into();
                    }
                }
            }
            _ = tick.tick() => {
                if receiver.pending() > 0 && frame_started.elapsed() >= FRAME_DEADLINE {
                    return format!("a message did not complete within {}s", FRAME_DEADLINE.as_secs());
                }
                if last_bytes.elapsed() >= IDLE_LIMIT {
                    return format!("nothing received for {}s", IDLE_LIMIT.as_secs());
                }
            }
        }
    }
}

fn route(g: &Gateway, conn: u64, received: Received) {
    let (header, items): (_, Vec<Decoded>) = match received {
        Received::Message {
            header,
            observations,
        } => (header, observations.into_iter().map(Ok).collect()),
        Received::Refused { header, error } => {
            if let Some(count) = g.tally(|l| &mut l.refused) {
                tracing::warn!(addr = %g.addr, control_id = %header.control_id, %error, count, "HL7 message refused (AE sent)");
            }
            let e = DecodeError::Malformed(format!("HL7 message refused (AE): {error}"));
            // A refused message's MSH-7 is no evidence of the device's clock.
            let header = Header {
                sent: None,
                ..header
            };
            (header, vec![Err(e)])
        }
        Received::Framing(e) => {
            tracing::debug!(addr = %g.addr, error = %e, "HL7 framing error");
            return;
        }
    };
    let mut devices = lock(&g.devices);
    let Some(device) = devices.iter_mut().find(|r| r.matcher.matches(&header)) else {
        if items.iter().any(Result::is_ok) {
            UNMATCHED.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(addr = %g.addr, facility = %header.sending_facility, "HL7 message no device matches; acknowledged and counted");
        }
        return;
    };
    let sent = header.sent;
    if device
        .tx
        .try_send(Routed::Decoded { conn, sent, items })
        .is_err()
    {
        device.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(count) = device.dropped_log.note(Instant::now()) {
            tracing::warn!(device = %device.device, count, "HL7 device not keeping up; messages dropped");
        }
    }
}

/// Removes a device's registration when its driver ends.
struct Registered {
    gateway: Arc<Gateway>,
    key: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut devices = lock(&self.gateway.devices);
        devices.retain(|r| r.key != self.key);
        // The last device left: stop listening and close the connections, which would
        // otherwise keep the listener (and its settings) alive for a device that replaces it.
        if devices.is_empty() {
            self.gateway.stop.cancel();
        }
    }
}

/// Adds a device to `g`; `None` if `g` stopped meanwhile (checked under the lock its last
/// device stops it under).
fn register(
    g: Arc<Gateway>,
    device: &str,
    matcher: &Match,
) -> Option<(Registered, mpsc::Receiver<Routed>, Arc<AtomicU64>)> {
    static KEYS: AtomicU64 = AtomicU64::new(0);
    let key = KEYS.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(DEVICE_QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let mut devices = lock(&g.devices);
    if g.stop.is_cancelled() {
        return None;
    }
    // Devices with a match come first, so a match-all device only gets what no other takes.
    let at = if matcher.is_empty() {
        devices.len()
    } else {
        devices.iter().take_while(|r| !r.matcher.is_empty()).count()
    };
    devices.insert(
        at,
        Registration {
            key,
            device: device.to_string(),
            matcher: matcher.clone(),
            tx,
            dropped_log: Tally::default(),
            dropped: dropped.clone(),
        },
    );
    drop(devices);
    Some((Registered { gateway: g, key }, rx, dropped))
}

/// Runs one device on a shared listener.
pub(super) async fn run_device(
    id: &str,
    addr: SocketAddr,
    spec: &Hl7Spec,
    reporter: &mut Reporter,
    commands: &mut mpsc::Receiver<Command>,
    cancel: &CancellationToken,
) -> Result<(), HubGone> {
    let mut backoff = Backoff::new(MAX_BACKOFF);
    while !cancel.is_cancelled() {
        reporter.link(Link::Connecting).await?;
        let registered = gateway(addr, spec).await.and_then(|g| {
            register(g, id, &spec.matcher)
                .ok_or_else(|| format!("the listener on {addr} was closing"))
        });
        match registered {
            Ok((_registered, rx, dropped)) => {
                return serve_device(rx, &dropped, reporter, commands, cancel).await
            }
            Err(reason) => {
                reporter.link(Link::Disconnected { reason }).await?;
                let delay = backoff.next_delay();
                if crate::events::wait_refusing_commands(delay, commands, cancel)
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

async fn serve_device(
    mut rx: mpsc::Receiver<Routed>,
    dropped: &AtomicU64,
    reporter: &mut Reporter,
    commands: &mut mpsc::Receiver<Command>,
    cancel: &CancellationToken,
) -> Result<(), HubGone> {
    let mut second = interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let silence = Format::Hl7.silence_limit();
    let mut last_data = Instant::now();
    // The open connections this device's messages came on: its link is up while any is, so a
    // client that comes, sends one message and goes cannot flap the monitor's link (W4).
    // Bounded: the listener holds at most MAX_CONNECTIONS.
    let mut live: Vec<u64> = Vec::new();
    let mut silent = false;
    // The device's, whichever connection its messages come on: a backlog re-sent on a new one
    // is older than its newest message (W3).
    let mut replay = ReplayGuard::default();
    let mut replay_log = Tally::default();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            Some(routed) = rx.recv() => match routed {
                Routed::Decoded { conn, sent, mut items } => {
                    if replay.is_replay(sent, Instant::now().into_std()) {
                        items = replayed(items);
                        if let Some(count) = replay_log.note(Instant::now()) {
                            tracing::warn!(device = %reporter.device(), count, "HL7 messages older than the device's newest: read as replays (stored)");
                        }
                    }
                    if items.iter().any(Result::is_ok) {
                        last_data = Instant::now();
                        // A message on another live connection is no link change: telling the
                        // core (and the log) at every switch would be a line per message (W1).
                        if live.is_empty() || silent {
                            silent = false;
                            reporter.link(Link::Connected).await?;
                        }
                        if !live.contains(&conn) {
                            if live.len() >= MAX_CONNECTIONS {
                                // A close that was lost (a full queue): the oldest goes.
                                live.remove(0);
                            }
                            live.push(conn);
                        }
                    }
                    reporter.decoded(&mut items).await?;
                }
                Routed::Closed { conn, reason } => {
                    if let Some(i) = live.iter().position(|&c| c == conn) {
                        live.remove(i);
                        if live.is_empty() {
                            reporter.link(Link::Disconnected { reason }).await?;
                        }
                    }
                }
            },
            Some(command) = commands.recv() => refuse(command),
            _ = second.tick() => {
                // Messages the listener could not queue for this device: never silently (W2).
                let lost = dropped.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    reporter.count_errors(lost, format!("{lost} HL7 messages dropped: the device could not keep up"));
                }
                reporter.flush_errors(true).await?;
                let quiet = last_data.elapsed();
                if !live.is_empty() && !silent && silence.is_some_and(|limit| quiet >= limit) {
                    silent = true;
                    reporter.link(Link::NoData { seconds: quiet.as_secs() }).await?;
                }
            }
        }
    }
}

/// A replayed message's outputs: readings `stored`, device events dropped (W3).
fn replayed(items: Vec<Decoded>) -> Vec<Decoded> {
    let (ok, errors): (Vec<_>, Vec<_>) = items.into_iter().partition(Result::is_ok);
    mark_replayed(ok.into_iter().flatten().collect())
        .into_iter()
        .map(Ok)
        .chain(errors)
        .collect()
}
