//! Admission at the socket: caps on connections held at once and on those not yet
//! authenticated, and a deadline for finishing the TLS handshake and the HTTP upgrade.
//!
//! Every accepted TCP connection takes a [`Slot`] and is wrapped in [`Guarded`], which closes it
//! (reads and writes fail) when its slot is evicted or its deadline passes before a display
//! session with a valid token promotes it. Its slot is given back when the connection is
//! dropped, so the counts are those of connections the daemon actually holds.

use super::Tally;
use crate::config::limits::Limits;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a connection may take from accept to an authenticated display connection: its TLS
/// handshake and its HTTP upgrade. Page loads and scrapes are closed then too (browsers and
/// scrapers open a new connection when they need one).
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// Connections the daemon holds, and what it closed or refused at the gate.
pub struct Gate {
    limits: Limits,
    state: Mutex<State>,
    evicted: AtomicU64,
    expired: AtomicU64,
    refused: AtomicU64,
}

#[derive(Default)]
struct State {
    next_id: u64,
    authenticated: usize,
    /// Unauthenticated connections, oldest first.
    pending: BTreeMap<u64, Pending>,
    /// Unauthenticated connections per client address.
    per_address: HashMap<IpAddr, usize>,
    evicted_log: Tally,
    expired_log: Tally,
    refused_log: Tally,
}

struct Pending {
    address: IpAddr,
    kill: CancellationToken,
}

impl State {
    fn remove_pending(&mut self, id: u64) -> bool {
        let Some(p) = self.pending.remove(&id) else {
            return false;
        };
        if let Some(n) = self.per_address.get_mut(&p.address) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&p.address);
            }
        }
        true
    }

    /// Closes the oldest unauthenticated connection of the address that holds the most, so that
    /// one client flooding the daemon only ever pushes out its own connections.
    fn evict_one(&mut self) -> bool {
        let Some(&most) = self.per_address.values().max() else {
            return false;
        };
        let victim = self
            .pending
            .iter()
            .find(|(_, p)| self.per_address.get(&p.address) == Some(&most))
            .map(|(id, p)| (*id, p.kill.clone()));
        match victim {
            Some((id, kill)) => {
                kill.cancel();
                self.remove_pending(id)
            }
            None => false,
        }
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Gate {
    /// A gate with these caps.
    pub fn new(limits: Limits) -> Arc<Gate> {
        Arc::new(Gate {
            limits,
            state: Mutex::default(),
            evicted: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Takes a slot for a connection just accepted from `address`, closing the oldest
    /// unauthenticated connection if a cap is reached, or refuses it (`None`: drop it) when
    /// every held connection is an authenticated display.
    pub fn admit(self: &Arc<Self>, address: SocketAddr) -> Option<Arc<Slot>> {
        let ip = address.ip().to_canonical();
        let now = Instant::now();
        let mut s = lock(&self.state);
        if s.pending.len() >= self.limits.max_unauthenticated
            || s.authenticated + s.pending.len() >= self.limits.max_connections
        {
            if s.evict_one() {
                self.evicted.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = s.evicted_log.note(now) {
                    tracing::warn!(closed = n, max_unauthenticated = self.limits.max_unauthenticated, max_connections = self.limits.max_connections,
                        "connection cap reached: closing the oldest unauthenticated connections of the busiest address (count since the last such line)");
                }
            } else {
                self.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = s.refused_log.note(now) {
                    tracing::warn!(refused = n, max_connections = self.limits.max_connections,
                        "every connection is an authenticated display: refusing new connections (count since the last such line)");
                }
                return None;
            }
        }
        let id = s.next_id;
        s.next_id += 1;
        let kill = CancellationToken::new();
        s.pending.insert(
            id,
            Pending {
                address: ip,
                kill: kill.clone(),
            },
        );
        *s.per_address.entry(ip).or_default() += 1;
        Some(Arc::new(Slot {
            id,
            address,
            gate: self.clone(),
            authenticated: AtomicBool::new(false),
            kill,
        }))
    }

    /// Connections held now: (authenticated, unauthenticated).
    pub fn held(&self) -> (usize, usize) {
        let s = lock(&self.state);
        (s.authenticated, s.pending.len())
    }

    /// Connections closed so far: (evicted by a cap, past the deadline, refused at a full gate).
    pub fn closed(&self) -> (u64, u64, u64) {
        (
            self.evicted.load(Ordering::Relaxed),
            self.expired.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }

    /// Closes every unauthenticated connection (at shutdown).
    pub fn close_unauthenticated(&self) {
        let mut s = lock(&self.state);
        for p in std::mem::take(&mut s.pending).into_values() {
            p.kill.cancel();
        }
        s.per_address.clear();
    }

    /// Logs the counts the last minute's lines left out.
    pub fn flush_logs(&self, now: Instant) {
        let mut s = lock(&self.state);
        if let Some(n) = s.evicted_log.flush(now) {
            tracing::warn!(
                closed = n,
                "connection cap: closed the oldest unauthenticated connections"
            );
        }
        if let Some(n) = s.expired_log.flush(now) {
            tracing::warn!(
                closed = n,
                "closed connections that did not open a display session within 10 s"
            );
        }
        if let Some(n) = s.refused_log.flush(now) {
            tracing::warn!(
                refused = n,
                "refused connections: every connection is an authenticated display"
            );
        }
    }

    /// The deadline passed: closes the connection unless it was promoted. True if it closes.
    fn expire(&self, slot: &Slot) -> bool {
        let mut s = lock(&self.state);
        if !s.remove_pending(slot.id) {
            return false;
        }
        self.expired.fetch_add(1, Ordering::Relaxed);
        if let Some(n) = s.expired_log.note(Instant::now()) {
            tracing::warn!(
                closed = n,
                "closing connections that did not open a display session within 10 s (count since the last such line)"
            );
        }
        true
    }
}

/// One admitted connection's place at the gate.
pub struct Slot {
    id: u64,
    address: SocketAddr,
    gate: Arc<Gate>,
    authenticated: AtomicBool,
    kill: CancellationToken,
}

impl Slot {
    /// The client's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Promotes the connection to an authenticated display connection: it no longer counts against
    /// the unauthenticated cap, nor has a deadline, nor can be evicted. False if it was already
    /// closed (evicted or past its deadline).
    pub fn authenticate(&self) -> bool {
        let mut s = lock(&self.gate.state);
        if !s.remove_pending(self.id) {
            return false;
        }
        s.authenticated += 1;
        self.authenticated.store(true, Ordering::Relaxed);
        true
    }

    fn release(&self) {
        let mut s = lock(&self.gate.state);
        if !s.remove_pending(self.id) && self.authenticated.load(Ordering::Relaxed) {
            s.authenticated -= 1;
        }
    }
}

/// A connection that fails once its slot is closed.
pub struct Guarded<T> {
    io: T,
    slot: Arc<Slot>,
    /// Completes when the connection must close; `None` once it has.
    end: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<T> Guarded<T> {
    /// Wraps an accepted connection with its slot; its deadline starts now.
    pub fn new(io: T, slot: Arc<Slot>) -> Guarded<T> {
        let watched = slot.clone();
        let deadline = Instant::now() + HANDSHAKE_DEADLINE;
        let end = Box::pin(async move {
            tokio::select! {
                _ = watched.kill.cancelled() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    if !watched.gate.expire(&watched) {
                        watched.kill.cancelled().await;
                    }
                }
            }
        });
        Guarded {
            io,
            slot,
            end: Some(end),
        }
    }

    /// The connection's slot.
    pub fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// True once the connection must close; otherwise registers to be woken when it must.
    fn closed(&mut self, cx: &mut Context<'_>) -> bool {
        match &mut self.end {
            None => true,
            Some(end) => {
                if end.as_mut().poll(cx).is_ready() {
                    self.end = None;
                    true
                } else {
                    false
                }
            }
        }
    }
}

impl<T> Drop for Guarded<T> {
    fn drop(&mut self) {
        self.slot.release();
    }
}

fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "closed by the connection limits",
    )
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.closed(cx) {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.closed(cx) {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.closed(cx) {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.closed(cx) {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.closed(cx) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((ip, port))
    }

    fn connect(gate: &Arc<Gate>, ip: [u8; 4], port: u16) -> (Guarded<DuplexStream>, DuplexStream) {
        let (server, client) = tokio::io::duplex(64);
        let slot = gate.admit(addr(ip, port)).expect("admitted");
        (Guarded::new(server, slot), client)
    }

    async fn is_closed(conn: &mut Guarded<DuplexStream>) -> bool {
        let mut b = [0u8; 1];
        // A live connection with nothing to read stays pending.
        matches!(
            tokio::time::timeout(Duration::from_millis(1), conn.read(&mut b)).await,
            Ok(Err(_))
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_does_not_authenticate_within_10_s_is_closed() {
        let gate = Gate::new(Limits::default());
        let (mut idle, _c1) = connect(&gate, [127, 0, 0, 1], 1);
        let (mut display, mut c2) = connect(&gate, [127, 0, 0, 1], 2);
        assert!(display.slot().authenticate());
        tokio::time::sleep(Duration::from_millis(9_900)).await;
        assert!(!is_closed(&mut idle).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(is_closed(&mut idle).await);
        assert_eq!(gate.closed(), (0, 1, 0));
        // The authenticated one lives on, long after.
        tokio::time::sleep(Duration::from_secs(600)).await;
        c2.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        display.read_exact(&mut b).await.unwrap();
        assert_eq!(gate.held(), (1, 0));
        drop(idle);
        drop(display);
        assert_eq!(gate.held(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn the_busiest_address_loses_its_oldest_and_displays_keep_their_place() {
        let gate = Gate::new(Limits {
            max_connections: 6,
            max_unauthenticated: 3,
        });
        let (mut display, _d) = connect(&gate, [10, 0, 0, 9], 1);
        assert!(display.slot().authenticate());
        let (mut a1, _c1) = connect(&gate, [10, 0, 0, 66], 1);
        let (mut other, _c2) = connect(&gate, [10, 0, 0, 7], 1);
        let (mut a2, _c3) = connect(&gate, [10, 0, 0, 66], 2);
        assert_eq!(gate.held(), (1, 3));
        // A fourth unauthenticated connection: the attacker's oldest goes, not the other's.
        let (mut a3, _c4) = connect(&gate, [10, 0, 0, 66], 3);
        assert!(is_closed(&mut a1).await);
        assert!(!is_closed(&mut other).await && !is_closed(&mut a2).await);
        assert!(!is_closed(&mut a3).await && !is_closed(&mut display).await);
        assert_eq!(gate.held(), (1, 3));
        // An evicted connection can no longer be promoted.
        assert!(!a1.slot().authenticate());
        assert_eq!(gate.closed(), (1, 0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_connection_is_a_display_new_ones_are_refused() {
        let gate = Gate::new(Limits {
            max_connections: 2,
            max_unauthenticated: 2,
        });
        let (d1, _c1) = connect(&gate, [10, 0, 0, 1], 1);
        let (d2, _c2) = connect(&gate, [10, 0, 0, 2], 1);
        assert!(d1.slot().authenticate() && d2.slot().authenticate());
        assert!(gate.admit(addr([10, 0, 0, 3], 1)).is_none());
        assert_eq!(gate.closed(), (0, 0, 1));
        drop(d1);
        assert!(gate.admit(addr([10, 0, 0, 3], 2)).is_some());
    }
}
