//! One central display's reading of the broadcast: frames written in batches, and a display that
//! falls behind started again from the current state (hazard CS9), at most once per
//! [`RESTART_PACE`]: each fresh start holds the rooms' lock while it writes every room's state,
//! so a display that keeps falling behind (a client reading just slowly enough, on purpose or on
//! a bad link) is closed rather than allowed to hold up the central's other displays and rooms.

use super::hub::{Frame, Hub};
use axum::extract::ws::{Message, WebSocket};
use futures_util::SinkExt;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;
use vigil_protocol::display::UserInfo;

/// Frames written to a display before one flush.
const BATCH: usize = 256;
/// A display that falls behind again sooner than this after a fresh start is closed.
pub const RESTART_PACE: Duration = Duration::from_secs(10);
/// A display that takes nothing for this long (its writes wait) is closed: one that stopped
/// reading never falls behind the broadcast (its connection waits on the write first), and
/// would hold its connection, counted against the caps, for ever.
pub const WRITE_PATIENCE: Duration = Duration::from_secs(10);

/// The sending half of a display's WebSocket.
pub type WsSink = futures_util::stream::SplitSink<WebSocket, Message>;

/// Why a display's frames stopped.
#[derive(Debug)]
pub enum Ended {
    /// The connection failed.
    Connection,
    /// The display fell behind again within [`RESTART_PACE`] of its last fresh start, or took
    /// nothing for [`WRITE_PATIENCE`].
    TooSlow,
}

impl From<axum::Error> for Ended {
    fn from(_: axum::Error) -> Ended {
        Ended::Connection
    }
}

/// What a display has of the broadcast.
pub struct Subscription<'a> {
    hub: &'a Hub,
    info: &'a UserInfo,
    rx: broadcast::Receiver<Frame>,
    restarted: Option<Instant>,
}

impl<'a> Subscription<'a> {
    /// The `rooms` message a display starts from, and the broadcast from then.
    pub fn start(hub: &'a Hub, info: &'a UserInfo) -> (String, Subscription<'a>) {
        let (rooms, rx) = hub.subscribe(info);
        let subscription = Subscription {
            hub,
            info,
            rx,
            restarted: None,
        };
        (rooms, subscription)
    }

    /// The next frame; `Ok(None)`: the display fell behind (see [`Subscription::send`]);
    /// `Err`: the broadcast ended.
    pub async fn recv(&mut self) -> Result<Option<Frame>, ()> {
        match self.rx.recv().await {
            Ok(frame) => Ok(Some(frame)),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(person = %self.info.name, missed, "central display fell behind; sending a fresh rooms message");
                Ok(None)
            }
            Err(broadcast::error::RecvError::Closed) => Err(()),
        }
    }

    /// Sends `first` (`None`: a fresh start) and whatever else is already waiting, up to
    /// [`BATCH`] frames, then flushes once: a display on a busy site gets many small frames a
    /// second, and one write per frame is what made it fall behind.
    pub async fn send(&mut self, sink: &mut WsSink, first: Option<Frame>) -> Result<(), Ended> {
        let sent = tokio::time::timeout(WRITE_PATIENCE, self.send_now(sink, first)).await;
        sent.unwrap_or(Err(Ended::TooSlow))
    }

    async fn send_now(&mut self, sink: &mut WsSink, first: Option<Frame>) -> Result<(), Ended> {
        match first {
            Some(frame) => sink.feed(Message::Text(frame)).await?,
            None => self.restart(sink).await?,
        }
        self.feed_now(sink, BATCH).await?;
        Ok(sink.flush().await?)
    }

    /// Feeds up to `limit` frames already waiting (flushed when the sink's buffer fills, and by
    /// the caller's next send).
    pub async fn feed_waiting(&mut self, sink: &mut WsSink, limit: usize) -> Result<(), Ended> {
        let fed = tokio::time::timeout(WRITE_PATIENCE, self.feed_now(sink, limit)).await;
        fed.unwrap_or(Err(Ended::TooSlow))
    }

    async fn feed_now(&mut self, sink: &mut WsSink, limit: usize) -> Result<(), Ended> {
        for _ in 0..limit {
            match self.rx.try_recv() {
                Ok(frame) => sink.feed(Message::Text(frame)).await?,
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.restart(sink).await?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Never a silent gap: a display that fell behind gets a fresh `rooms` message and the
    /// broadcast from that moment on. Taking the frames still queued instead (the oldest the
    /// queue kept) would show values older than the state just sent, and leave the display as
    /// far behind as before, so at a large site it fell behind again at once (CS9).
    async fn restart(&mut self, sink: &mut WsSink) -> Result<(), Ended> {
        let now = Instant::now();
        if self
            .restarted
            .is_some_and(|at| now.duration_since(at) < RESTART_PACE)
        {
            return Err(Ended::TooSlow);
        }
        self.restarted = Some(now);
        let (rooms, fresh) = self.hub.subscribe(self.info);
        self.rx = fresh;
        Ok(sink.feed(Message::Text(rooms.into())).await?)
    }
}
