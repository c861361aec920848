//! Forwarding to the clinic's systems: each `[[forward]]` sends what the session record holds
//! to an interface engine over HL7 v2.6 / MLLP, PCD-01 ORU^R01 for readings (batched per device
//! per second) and PCD-04 ORU^R40 for every alarm step, one message at a time, each only after
//! the peer acknowledged the one before (MSA-2 = our MSH-10).
//!
//! The forwarder reads the record (its queue, [`queue`]) on its own connection and task: it is
//! on neither the core's nor the record writer's path, and a slow, refusing or dead peer costs
//! them nothing.

pub mod mllp;
pub mod queue;
#[cfg(test)]
mod tests;

use crate::config::ForwardSpec;
use queue::{Item, Queue};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// How often the pending count is refreshed while nothing is sent.
const PENDING_EVERY: Duration = Duration::from_millis(500);
/// Longest a TCP connect, and then a TLS handshake, may take: a peer that accepts and never
/// answers would otherwise hold the forward (and its backlog) forever.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// Tuning; the defaults are what `vigil run` uses.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Readings recorded and not acknowledged beyond which readings are thinned (alarm steps
    /// never are): about an hour of a busy room, five of a quiet one.
    pub max_pending_readings: u64,
    /// A peer that has not answered a message in this long is reconnected and the message sent
    /// again.
    pub ack_timeout: Duration,
    /// Refusals (AE/AR) of one message before it is skipped.
    pub max_refusals: u32,
    /// Wait before sending a refused message again.
    pub refusal_retry: Duration,
    /// Longest wait between connection attempts (doubling from 1 s).
    pub max_backoff: Duration,
    /// How often the record is looked at when nothing was due.
    pub poll: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_pending_readings: 500_000,
            ack_timeout: Duration::from_secs(30),
            max_refusals: 3,
            refusal_retry: Duration::from_secs(2),
            max_backoff: Duration::from_secs(30),
            poll: Duration::from_millis(200),
        }
    }
}

/// What `/metrics` and the display show of one forward.
#[derive(Debug, Default)]
pub struct Status {
    /// The forward's name.
    pub name: String,
    /// Readings and alarm steps recorded and not yet acknowledged by the peer.
    pub pending: AtomicU64,
    /// Messages the peer acknowledged.
    pub sent: AtomicU64,
    /// Messages skipped after [`Options::max_refusals`] refusals.
    pub refused: AtomicU64,
    /// Readings skipped by thinning at the bound.
    pub thinned: AtomicU64,
    /// The peer is connected.
    pub connected: AtomicBool,
}

/// Every forward's status, as `/metrics` renders it.
pub fn render_metrics(out: &mut String, forwards: &[Arc<Status>]) {
    type Series = (&'static str, &'static str, &'static str, fn(&Status) -> u64);
    let series: [Series; 5] = [
        (
            "vigil_forward_pending",
            "gauge",
            "Readings and alarm steps recorded and not yet acknowledged by the forward's peer.",
            |s| s.pending.load(Ordering::Relaxed),
        ),
        (
            "vigil_forward_sent_total",
            "counter",
            "HL7 messages the forward's peer acknowledged.",
            |s| s.sent.load(Ordering::Relaxed),
        ),
        (
            "vigil_forward_refused_total",
            "counter",
            "HL7 messages skipped after the peer refused them (AE/AR) repeatedly.",
            |s| s.refused.load(Ordering::Relaxed),
        ),
        (
            "vigil_forward_thinned_total",
            "counter",
            "Readings not forwarded because the forward's queue was at its bound.",
            |s| s.thinned.load(Ordering::Relaxed),
        ),
        (
            "vigil_forward_connected",
            "gauge",
            "1 while the forward's peer is connected.",
            |s| u64::from(s.connected.load(Ordering::Relaxed)),
        ),
    ];
    for (name, kind, help, get) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in forwards {
            let _ = writeln!(out, "{name}{{forward=\"{}\"}} {}", s.name, get(s));
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One forward's task.
pub struct Forwarder {
    spec: ForwardSpec,
    db: PathBuf,
    room: String,
    options: Options,
    status: Arc<Status>,
}

/// Runs `f` on the queue off the async threads.
async fn blocking<T: Send + 'static>(
    queue: &Arc<Mutex<Queue>>,
    f: impl FnOnce(&mut Queue) -> rusqlite::Result<T> + Send + 'static,
) -> rusqlite::Result<T> {
    let queue = queue.clone();
    tokio::task::spawn_blocking(move || {
        let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut q)
    })
    .await
    .unwrap_or_else(|e| Err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How one exchange ended.
enum Exchange {
    Accepted,
    Refused(mllp::Ack),
}

impl Forwarder {
    /// A forwarder for `spec`, reading the record at `db` of room `room`.
    pub fn new(spec: ForwardSpec, db: PathBuf, room: String, options: Options) -> Forwarder {
        let status = Arc::new(Status {
            name: spec.name.clone(),
            ..Status::default()
        });
        Forwarder {
            spec,
            db,
            room,
            options,
            status,
        }
    }

    /// Its status, for `/metrics` and the display.
    pub fn status(&self) -> Arc<Status> {
        self.status.clone()
    }

    /// Starts the task; it runs until `cancel`.
    pub fn start(self, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = self.run() => {}
            }
        })
    }

    async fn open_queue(&self) -> Arc<Mutex<Queue>> {
        loop {
            let (db, name, room) = (self.db.clone(), self.spec.name.clone(), self.room.clone());
            let max = self.options.max_pending_readings;
            let opened = tokio::task::spawn_blocking(move || {
                Queue::open(crate::storage::open(&db)?, &name, &room, max)
            })
            .await;
            match opened {
                Ok(Ok(q)) => return Arc::new(Mutex::new(q)),
                Ok(Err(e)) => {
                    tracing::warn!(forward = %self.spec.name, error = %e, "cannot open the session record to forward from; retrying")
                }
                Err(e) => {
                    tracing::warn!(forward = %self.spec.name, error = %e, "cannot open the session record to forward from; retrying")
                }
            }
            tokio::time::sleep(crate::storage::RETRY).await;
        }
    }

    async fn run(self) {
        let queue = self.open_queue().await;
        tokio::join!(self.count_pending(&queue), self.deliver(&queue));
    }

    /// Keeps the pending count current while the peer is down or slow to answer.
    async fn count_pending(&self, queue: &Arc<Mutex<Queue>>) {
        loop {
            if let Ok(pending) = blocking(queue, |q| q.pending()).await {
                self.status.pending.store(pending, Ordering::Relaxed);
            }
            tokio::time::sleep(PENDING_EVERY).await;
        }
    }

    async fn deliver(&self, queue: &Arc<Mutex<Queue>>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.connect().await {
                Ok(io) => {
                    tracing::info!(forward = %self.spec.name, "connected to the interface engine");
                    self.status.connected.store(true, Ordering::Relaxed);
                    let why = self.session(io, queue).await;
                    self.status.connected.store(false, Ordering::Relaxed);
                    tracing::warn!(forward = %self.spec.name, reason = %why, "interface engine connection lost; what is not acknowledged waits in the record");
                    backoff = Duration::from_secs(1).min(self.options.max_backoff);
                }
                Err(e) => {
                    tracing::warn!(forward = %self.spec.name, error = %e, retry_in = ?backoff, "cannot reach the interface engine");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.options.max_backoff);
        }
    }

    async fn connect(&self) -> std::io::Result<Box<dyn Io>> {
        let target = (self.spec.host.as_str(), self.spec.port);
        let timed_out = |what: &str| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no {what} within {}s", CONNECT_DEADLINE.as_secs()),
            )
        };
        let tcp = tokio::time::timeout(CONNECT_DEADLINE, tokio::net::TcpStream::connect(target))
            .await
            .map_err(|_| timed_out("connection"))??;
        let _ = tcp.set_nodelay(true);
        match &self.spec.tls {
            None => Ok(Box::new(tcp)),
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(self.spec.host.clone())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let handshake = tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp);
                let tls = tokio::time::timeout(CONNECT_DEADLINE, handshake)
                    .await
                    .map_err(|_| timed_out("TLS handshake"))??;
                Ok(Box::new(tls))
            }
        }
    }

    /// Sends until the connection fails; returns why.
    async fn session(&self, mut io: Box<dyn Io>, queue: &Arc<Mutex<Queue>>) -> String {
        let mut buf = Vec::new();
        let mut refusals = 0u32;
        loop {
            let next = blocking(queue, |q| q.next(now_ms())).await;
            let (item, backlog) = match next {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(forward = %self.spec.name, error = %e, "cannot read the session record to forward from");
                    tokio::time::sleep(self.options.poll).await;
                    continue;
                }
            };
            self.status
                .pending
                .store(backlog.pending, Ordering::Relaxed);
            if backlog.thinned > 0 {
                self.status
                    .thinned
                    .fetch_add(backlog.thinned, Ordering::Relaxed);
                tracing::warn!(forward = %self.spec.name, readings = backlog.thinned, pending = backlog.pending, "forward queue at its bound: readings thinned (alarm steps are kept)");
            }
            let Some(item) = item else {
                tokio::time::sleep(self.options.poll).await;
                continue;
            };
            match self.exchange(&mut io, &mut buf, &item).await {
                Err(why) => return why,
                Ok(Exchange::Accepted) => {
                    refusals = 0;
                    self.status.sent.fetch_add(1, Ordering::Relaxed);
                    self.complete(queue, item).await;
                }
                Ok(Exchange::Refused(ack)) => {
                    refusals += 1;
                    // The reason is the peer's text about our message, which holds no patient data.
                    tracing::warn!(forward = %self.spec.name, control = %item.control, code = %ack.code, reason = %ack.reason, refusals, "interface engine refused a message");
                    if refusals >= self.options.max_refusals {
                        refusals = 0;
                        self.status.refused.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(forward = %self.spec.name, control = %item.control, alarm_step = item.alarm, "message skipped after repeated refusals; the rest of the queue goes on");
                        self.complete(queue, item).await;
                    } else {
                        tokio::time::sleep(self.options.refusal_retry).await;
                    }
                }
            }
        }
    }

    async fn complete(&self, queue: &Arc<Mutex<Queue>>, item: Item) {
        if let Err(e) = blocking(queue, move |q| q.done(&item)).await {
            // Not fatal: the message is sent again (same MSH-10) and the peer can tell.
            tracing::warn!(forward = %self.spec.name, error = %e, "cannot note the acknowledgment in the record");
        }
    }

    /// Sends `item` and waits for its ACK; `Err` when the connection must be dropped.
    async fn exchange(
        &self,
        io: &mut Box<dyn Io>,
        buf: &mut Vec<u8>,
        item: &Item,
    ) -> Result<Exchange, String> {
        let frame = mllp::frame(&item.message);
        let wait = async {
            io.write_all(&frame)
                .await
                .map_err(|e| format!("write: {e}"))?;
            io.flush().await.map_err(|e| format!("write: {e}"))?;
            loop {
                let content = mllp::read_frame(io, buf).await.map_err(|e| e.to_string())?;
                match mllp::parse_ack(&content) {
                    Ok(ack) if ack.control != item.control => {
                        // A late answer to an earlier attempt: not ours.
                        tracing::debug!(forward = %self.spec.name, control = %ack.control, "ACK for another message ignored");
                    }
                    Ok(ack) if ack.accepted() => return Ok(Exchange::Accepted),
                    Ok(ack) => return Ok(Exchange::Refused(ack)),
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        match tokio::time::timeout(self.options.ack_timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no ACK within {} s",
                self.options.ack_timeout.as_secs()
            )),
        }
    }
}

/// Starts a forwarder per `[[forward]]`; returns their statuses.
pub fn start_all(
    specs: &[ForwardSpec],
    db: &std::path::Path,
    room: &str,
    options: Options,
    cancel: &CancellationToken,
) -> Vec<Arc<Status>> {
    specs
        .iter()
        .map(|spec| {
            let f = Forwarder::new(spec.clone(), db.to_path_buf(), room.to_string(), options);
            let status = f.status();
            f.start(cancel.child_token());
            status
        })
        .collect()
}
