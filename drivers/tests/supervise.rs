//! A driver that panics is restarted, its device reported disconnected meanwhile, and the
//! daemon's handle on it keeps working (paused time: the backoff is exact).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigil_drivers::supervise::{supervise, RESTART_FIRST, RESTART_MAX};
use vigil_drivers::{Command, CommandError, DeviceHandle, DriverEvent, DriverEventKind, Link};

/// A driver that panics in its first `panics` incarnations and otherwise reports itself
/// connected and answers commands until cancelled.
fn flaky(
    panics: usize,
    events: mpsc::Sender<DriverEvent>,
    cancel: CancellationToken,
    started: Arc<AtomicUsize>,
) -> impl FnMut(mpsc::Receiver<Command>) -> futures::future::BoxFuture<'static, ()> {
    move |mut commands| {
        let (events, cancel) = (events.clone(), cancel.clone());
        let n = started.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if n < panics {
                panic!("a bug in incarnation {n}");
            }
            let connected = DriverEvent {
                device: "ox".into(),
                at: Instant::now(),
                kind: DriverEventKind::Link(Link::Connected),
            };
            events.send(connected).await.unwrap();
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    Some(Command::StartNibp { reply }) = commands.recv() => {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_driver_is_shown_disconnected_and_restarted_with_backoff() {
    let (events, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let started = Arc::new(AtomicUsize::new(0));
    let (handle, commands) = DeviceHandle::new("ox".into());
    let t0 = Instant::now();
    let task = tokio::spawn(supervise(
        handle.clone(),
        commands,
        events.clone(),
        cancel.clone(),
        flaky(2, events, cancel.clone(), started.clone()),
    ));
    let mut lost_at = Vec::new();
    for _ in 0..2 {
        let e = rx.recv().await.unwrap();
        match e.kind {
            DriverEventKind::Link(Link::Disconnected { reason }) => {
                assert!(reason.contains("driver failed"), "{reason}");
                assert!(reason.contains("a bug in incarnation"), "{reason}");
                lost_at.push(e.at - t0);
            }
            other => panic!("expected a disconnection, got {other:?}"),
        }
        // Commands are refused while no driver runs, never left waiting.
        assert_eq!(handle.start_nibp().await, Err(CommandError::NotConnected));
    }
    let e = rx.recv().await.unwrap();
    assert_eq!(e.kind, DriverEventKind::Link(Link::Connected));
    // Waits double: 1 s, then 2 s.
    assert_eq!(e.at - t0, RESTART_FIRST * 3);
    assert_eq!(lost_at, [Duration::ZERO, RESTART_FIRST]);
    assert_eq!(started.load(Ordering::SeqCst), 3);
    assert!(RESTART_MAX >= RESTART_FIRST * 4);
    // The same handle reaches the third incarnation.
    assert_eq!(handle.start_nibp().await, Ok(()));
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_driver_that_ends_normally_is_not_restarted() {
    let (events, _rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let started = Arc::new(AtomicUsize::new(0));
    let (handle, commands) = DeviceHandle::new("ox".into());
    let task = tokio::spawn(supervise(
        handle,
        commands,
        events.clone(),
        cancel.clone(),
        flaky(0, events, cancel.clone(), started.clone()),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    cancel.cancel();
    task.await.unwrap();
    assert_eq!(started.load(Ordering::SeqCst), 1);
}
