//! No part of the daemon dies quietly. A panic in the core or the record writer is fatal: it is
//! logged and `vigil run` exits non-zero, so that the service manager restarts the daemon and
//! the record resumes the session. The core's heartbeat is also kept here, for `/healthz` and
//! the systemd watchdog.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Faults tests inject to prove that no part dies quietly.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// The core task panics.
    PanicCore,
    /// The core task blocks its thread this long (a stall, as a bug would).
    StallCore(Duration),
    /// The record writer thread panics.
    PanicWriter,
    /// The driver of this device panics.
    PanicDriver(&'static str),
}

/// The first failure the daemon cannot run on after.
#[derive(Debug, Clone, Default)]
pub struct Fatal {
    raised: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl Fatal {
    /// Records `reason` (the first one counts) and wakes whoever waits in [`Fatal::wait`].
    pub fn raise(&self, reason: String) {
        tracing::error!(%reason, "fatal: the daemon must restart");
        if let Ok(mut kept) = self.reason.lock() {
            kept.get_or_insert(reason);
        }
        self.raised.cancel();
    }

    /// Waits for a fatal failure and says what it was.
    pub async fn wait(&self) -> String {
        self.raised.cancelled().await;
        self.reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "unknown".into())
    }

    /// Whether one happened.
    pub fn is_raised(&self) -> bool {
        self.raised.is_cancelled()
    }
}

/// Held by a thread that must not die: if the thread unwinds from a panic, dropping the guard
/// raises the fatal failure.
#[derive(Debug)]
pub struct PanicGuard {
    /// What the thread is, for the log.
    pub part: &'static str,
    /// Raised on panic.
    pub fatal: Fatal,
}

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.fatal.raise(format!("the {} panicked", self.part));
        }
    }
}

/// The text of a panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// How old the core's heartbeat may be before `/healthz` says it is late.
pub const CORE_LATE: Duration = Duration::from_secs(2);

/// The core's heartbeat and the record's state, as `/healthz` reports them.
#[derive(Debug)]
pub struct Pulse {
    started: Instant,
    /// Milliseconds after `started` of the core's last heartbeat.
    core_ms: AtomicU64,
    record_failing: AtomicBool,
}

impl Pulse {
    /// A pulse that has just beaten.
    pub fn new() -> Pulse {
        Pulse {
            started: Instant::now(),
            core_ms: AtomicU64::new(0),
            record_failing: AtomicBool::new(false),
        }
    }

    /// The core is alive at `now`.
    pub fn beat(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.started).as_millis() as u64;
        self.core_ms.store(ms, Ordering::Relaxed);
    }

    /// The age of the core's last heartbeat at `now`.
    pub fn core_age(&self, now: Instant) -> Duration {
        let at = self.started + Duration::from_millis(self.core_ms.load(Ordering::Relaxed));
        now.saturating_duration_since(at)
    }

    /// The record is failing or writing again.
    pub fn set_record_failing(&self, failing: bool) {
        self.record_failing.store(failing, Ordering::Relaxed);
    }

    /// Whether the record is failing.
    pub fn record_failing(&self) -> bool {
        self.record_failing.load(Ordering::Relaxed)
    }
}

impl Default for Pulse {
    fn default() -> Self {
        Pulse::new()
    }
}

/// Feeds systemd's watchdog from the core's loop (`WATCHDOG=1` at half `WATCHDOG_USEC`), when
/// the daemon runs under systemd with `WatchdogSec`; does nothing otherwise.
#[derive(Debug)]
pub struct Watchdog {
    every: Option<Duration>,
    last: Option<Instant>,
}

impl Watchdog {
    /// Reads `WATCHDOG_USEC` (and `WATCHDOG_PID`) from the environment.
    pub fn from_env() -> Watchdog {
        let every = sd_notify::watchdog_enabled().map(|d| d / 2);
        if let Some(every) = every {
            if every < crate::core::HEARTBEAT {
                tracing::warn!(
                    watchdog_s = (every * 2).as_secs_f64(),
                    "WatchdogSec is shorter than two core heartbeats (1 s): set it to 2 s or more, or systemd will restart a healthy daemon"
                );
            }
        }
        Watchdog { every, last: None }
    }

    /// Called on every heartbeat of the core.
    pub fn kick(&mut self, now: Instant) {
        let Some(every) = self.every else { return };
        if self
            .last
            .is_some_and(|l| now.saturating_duration_since(l) < every)
        {
            return;
        }
        self.last = Some(now);
        if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]) {
            tracing::warn!(error = %e, "cannot notify systemd's watchdog");
        }
    }
}

/// Tells systemd (when `NOTIFY_SOCKET` is set) that the daemon is ready.
pub fn notify_ready() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "cannot notify systemd that the daemon is ready");
    }
}
