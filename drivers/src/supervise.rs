//! A driver that panics is restarted, never left dead: the panic is logged, the device is
//! reported disconnected meanwhile (so its disconnect alarm follows as usual), and a new
//! incarnation starts after a capped backoff. The daemon's handle on the device stays valid
//! across restarts: commands are forwarded to whichever incarnation runs.

use crate::events::{Command, CommandError, DeviceHandle, DriverEvent, DriverEventKind, Link};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The first wait before restarting a driver that panicked.
pub const RESTART_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between restarts of a driver that keeps panicking.
pub const RESTART_MAX: Duration = Duration::from_secs(30);

/// Runs the driver `start` makes, restarting it whenever it panics, until it ends normally
/// (cancelled, or nobody listens to `events`). `start` gets the commands for its incarnation.
pub async fn supervise<F, Fut>(
    handle: DeviceHandle,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<DriverEvent>,
    cancel: CancellationToken,
    mut start: F,
) where
    F: FnMut(mpsc::Receiver<Command>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let device: Arc<str> = handle.id.clone();
    let mut delay = RESTART_FIRST;
    loop {
        let (inner, inner_commands) = mpsc::channel(8);
        let driver = start(inner_commands);
        #[cfg(feature = "fault-injection")]
        let driver = {
            let fault = handle.fault.clone();
            async move {
                tokio::select! {
                    _ = driver => {}
                    _ = fault.notified() => panic!("injected fault: the driver panics"),
                }
            }
        };
        let started = Instant::now();
        let mut task = tokio::spawn(driver);
        let ended = loop {
            tokio::select! {
                ended = &mut task => break ended,
                Some(command) = commands.recv() => forward(&inner, command),
            }
        };
        let panic = match ended {
            Ok(()) => return,
            Err(e) if e.is_panic() => panic_message(&*e.into_panic()),
            // Aborted from outside: nothing to restart.
            Err(_) => return,
        };
        let lost = DriverEvent {
            device: device.clone(),
            at: Instant::now(),
            kind: DriverEventKind::Link(Link::Disconnected {
                reason: format!("driver failed ({panic}); restarting"),
            }),
        };
        if started.elapsed() > RESTART_MAX {
            delay = RESTART_FIRST;
        }
        tracing::error!(%device, panic = %panic, restart_in_s = delay.as_secs(), "driver panicked; restarting it");
        if events.send(lost).await.is_err() {
            return;
        }
        if crate::events::wait_refusing_commands(delay, &mut commands, &cancel)
            .await
            .is_err()
        {
            return;
        }
        delay = (delay * 2).min(RESTART_MAX);
    }
}

/// Hands a command to the running incarnation; a full or closed queue is answered at once.
fn forward(inner: &mpsc::Sender<Command>, command: Command) {
    match inner.try_send(command) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(command)) => {
            let _ = command.into_parts().1.send(Err(CommandError::Busy));
        }
        Err(mpsc::error::TrySendError::Closed(command)) => {
            let _ = command.into_parts().1.send(Err(CommandError::NotConnected));
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
