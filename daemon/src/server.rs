//! HTTP and WebSocket: `GET /` (the display), `GET /ws` (the display protocol), `GET /metrics`,
//! `GET /healthz`.

use crate::config::User;
use crate::core::{CoreHandle, Published};
use crate::metrics::Metrics;
use crate::net::flood::{Flood, Verdict};
use crate::net::{Conn, Net};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vigil_protocol::display::{ClientMessage, ServerMessage, UserInfo};

/// The largest frame a display may send.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// The read buffer per display. Displays send a few small commands; tungstenite's default
/// (128 KiB) is zero-filled on every read, which profiling showed as 5 % of the daemon's CPU.
const READ_BUFFER: usize = 4 * 1024;
/// Bytes a stalled display may have queued before its connection is dropped.
const MAX_WRITE_BUFFER: usize = 4 * 1024 * 1024;
/// Batches already published that go out to a display in one write.
const WRITE_BATCH: usize = 64;
/// Requests (actions, trends) a display connection may have waiting for their answers at once; the
/// connection goes on forwarding while they wait.
const IN_FLIGHT: usize = 4;

/// What every request handler shares.
pub struct App {
    /// People by token; a reload replaces them (see `crate::reload`).
    pub users: crate::reload::Users,
    /// The core.
    pub core: CoreHandle,
    /// The broadcast every display connection subscribes to.
    pub out: broadcast::Sender<Published>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Fires at shutdown.
    pub shutdown: CancellationToken,
    /// Open display connections, so that shutdown can wait for their close frames.
    pub display_connections: TaskTracker,
    /// When the daemon started.
    pub started: Instant,
    /// Connection limits, failed-authentication throttle, origins, metrics token.
    pub net: Arc<Net>,
    /// Answers trend requests off the core.
    pub trends: crate::trend::TrendService,
    /// The core's heartbeat, for `/healthz`.
    pub pulse: Arc<crate::supervise::Pulse>,
    /// The devices are simulated (`vigil demo`): the display page says so.
    pub simulated: bool,
}

impl App {
    fn user(&self, token: &str) -> Option<User> {
        self.users.find(token)
    }
}

/// The routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(crate::page::page))
        .route("/ws", get(ws))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(app)
}

async fn metrics(
    State(app): State<Arc<App>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = app
        .net
        .metrics_refusal(&headers, conn.ip(), &app.shutdown)
        .await
    {
        return refusal;
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render() + &app.net.render(),
    )
        .into_response()
}

/// 200 while the core's heartbeat is fresh; 503 naming the late part when it is older than
/// [`crate::supervise::CORE_LATE`] (the core is stalled or dead, and alarms are not evaluated).
async fn healthz(State(app): State<Arc<App>>) -> impl IntoResponse {
    let age = app.pulse.core_age(Instant::now());
    let late = age > crate::supervise::CORE_LATE;
    let body = serde_json::json!({
        "status": if late { "late" } else { "ok" },
        "late": if late { vec!["core"] } else { vec![] },
        "core_heartbeat_age_s": (age.as_secs_f64() * 10.0).round() / 10.0,
        "record": if app.pulse.record_failing() { "failing" } else { "ok" },
        "uptime_s": app.started.elapsed().as_secs(),
    });
    let status = if late {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

pub(crate) fn token(headers: &HeaderMap, query: &HashMap<String, String>) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    bearer.or_else(|| query.get("token").cloned())
}

async fn ws(
    State(app): State<Arc<App>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Cheapest first, and nothing about tokens is learnt from a foreign page or a locked-out
    // address.
    if let Some(refusal) = app.net.origin_refusal(&headers) {
        return refusal;
    }
    if let Some(refusal) = app.net.locked_out(conn.ip()) {
        return refusal;
    }
    let Some(user) = token(&headers, &query).and_then(|t| app.user(&t)) else {
        return app
            .net
            .failed(
                conn.ip(),
                "a valid token is required: Authorization: Bearer TOKEN or ?token=TOKEN",
                &app.shutdown,
            )
            .await;
    };
    // From here the connection is a display's: no deadline, no eviction.
    if !conn.authenticate() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "connection closed by the limits",
        )
            .into_response();
    }
    upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| {
            let tracker = app.display_connections.clone();
            tracker.track_future(display_connection(socket, app, user))
        })
}

pub(crate) fn error(request_id: Option<String>, code: &str, reason: impl Into<String>) -> Message {
    Message::Text(
        ServerMessage::Error {
            request_id,
            code: code.into(),
            reason: reason.into(),
        }
        .to_json()
        .into(),
    )
}

pub(crate) fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// One display's WebSocket connection, counted in the metrics while it is open.
async fn display_connection(socket: WebSocket, app: Arc<App>, user: User) {
    app.metrics.displays(1);
    tracing::info!(person = %user.name, role = user.role.name(), "display connected");
    serve_display(socket, &app, &user).await;
    app.metrics.displays(-1);
    tracing::info!(person = %user.name, "display disconnected");
}

/// Serves one display: its snapshot, then what the core publishes, and its requests.
async fn serve_display(socket: WebSocket, app: &App, user: &User) {
    let (sink, mut stream) = socket.split();
    let info = UserInfo {
        name: user.name.clone(),
        role: user.role.name().into(),
    };
    // Subscribe before taking the snapshot so that nothing falls between the two.
    let mut rx = app.out.subscribe();
    let mut out = Outbox {
        sink,
        seen: 0,
        delivered: Vec::new(),
        app,
        info,
        person: &user.name,
    };
    let Some(snapshot) = app.core.snapshot(out.info.clone()).await else {
        out.close(1001, "daemon shutting down").await;
        return;
    };
    out.seen = snapshot.seq;
    let text = ServerMessage::Snapshot(Box::new(snapshot)).to_json();
    if out.sink.send(Message::Text(text.into())).await.is_err() {
        return;
    }
    let mut flood = Flood::new(Instant::now());
    // Answers still being worked out: the connection forwards while they wait (for the record, a
    // trend slot, a cuff).
    let mut waiting = futures_util::stream::FuturesUnordered::new();
    let mut reloaded = app.users.changes();
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), out.close(1001, "daemon shutting down")).await;
                return;
            }
            Ok(()) = reloaded.changed() => {
                if !app.users.still_valid(user) {
                    tracing::warn!(person = %user.name, "closing a display whose token a reload withdrew");
                    out.close(1008, "token withdrawn by a configuration reload").await;
                    return;
                }
            }
            published = rx.recv() => {
                // Whatever else is already queued goes out in the same write.
                let mut next = Some(published);
                let mut batches = 0;
                while let Some(published) = next.take() {
                    if out.queue(published).await.is_err() {
                        return;
                    }
                    batches += 1;
                    if batches < WRITE_BATCH {
                        next = try_recv(&mut rx);
                    }
                }
                if out.flush().await.is_err() {
                    return;
                }
            }
            Some(reply) = waiting.next(), if !waiting.is_empty() => {
                if out.reply(&mut rx, reply).await.is_err() {
                    return;
                }
            }
            incoming = stream.next() => {
                let reply = match incoming {
                    None => return,
                    Some(Err(e)) => {
                        let (code, reason) = close_for(e);
                        tracing::warn!(person = %user.name, code, reason, "display connection error");
                        out.close(code, reason).await;
                        linger(&mut stream).await;
                        return;
                    }
                    Some(Ok(Message::Close(_))) => return,
                    // Every other frame counts against the flood limit, pings included.
                    Some(Ok(frame)) => match flood.frame(Instant::now()) {
                        Verdict::Close => {
                            tracing::warn!(person = %user.name, "closing a display that floods the daemon");
                            app.net.flood_closed();
                            out.close(1008, "too many messages").await;
                            linger(&mut stream).await;
                            return;
                        }
                        Verdict::Refuse => Some(error(None, "rate_limited", "too many messages: at most 10 a second")),
                        Verdict::Allow => match frame {
                            Message::Text(_) if waiting.len() >= IN_FLIGHT => {
                                Some(error(None, "busy", "too many requests waiting for their answers"))
                            }
                            Message::Text(text) => {
                                let text = text.to_string();
                                waiting.push(async move { handle_client(app, user, &text).await });
                                None
                            }
                            Message::Binary(_) => Some(error(None, "bad_message", "binary frames are not part of the display protocol")),
                            // tungstenite answers pings itself.
                            _ => None,
                        },
                    },
                };
                if let Some(reply) = reply {
                    if out.reply(&mut rx, reply).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// The close code and reason for a frame the WebSocket layer refused.
pub(crate) fn close_for(e: axum::Error) -> (u16, &'static str) {
    use tungstenite::error::{CapacityError, Error};
    match e.into_inner().downcast_ref::<Error>() {
        Some(Error::Utf8(_)) => (1007, "text frame is not valid UTF-8"),
        Some(Error::Capacity(CapacityError::MessageTooLong { .. })) => (1009, "message too big"),
        _ => (1002, "malformed frame"),
    }
}

/// After the daemon's close frame: reads and drops what the display still sends until its
/// closing reply (at most 2 s). Closing the socket with unread data would make the kernel reset
/// the connection, and the display might never read why it was closed.
pub(crate) async fn linger(stream: &mut futures_util::stream::SplitStream<WebSocket>) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(frame)) = stream.next().await {
            if matches!(frame, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

/// What the core published and a display connection has not yet taken, without waiting.
fn try_recv(
    rx: &mut broadcast::Receiver<Published>,
) -> Option<Result<Published, broadcast::error::RecvError>> {
    use broadcast::error::{RecvError, TryRecvError};
    match rx.try_recv() {
        Ok(published) => Some(Ok(published)),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
        Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
    }
}

/// One display's outgoing side: frames are queued, then written together by `flush`.
struct Outbox<'a> {
    sink: Sink,
    /// The last broadcast sequence number the display has (in a snapshot or a frame).
    seen: u64,
    /// When the readings queued since the last flush arrived, for the delivery metric.
    delivered: Vec<tokio::time::Instant>,
    app: &'a App,
    info: UserInfo,
    person: &'a str,
}

impl Outbox<'_> {
    /// Queues what the core published, or a fresh snapshot if the display fell behind. `Err`
    /// ends the connection.
    async fn queue(
        &mut self,
        published: Result<Published, broadcast::error::RecvError>,
    ) -> Result<(), ()> {
        match published {
            Ok(batch) => {
                for message in batch.iter() {
                    // Already in the snapshot the display started from.
                    if message.seq <= self.seen {
                        continue;
                    }
                    self.seen = message.seq;
                    if message.snapshot_due {
                        self.fresh_snapshot().await?;
                        continue;
                    }
                    self.sink
                        .feed(Message::Text(message.text.clone()))
                        .await
                        .map_err(|_| ())?;
                    self.delivered.extend(message.received);
                }
                Ok(())
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                // Never a silent gap: a display that fell behind starts again from the state.
                tracing::warn!(person = %self.person, missed, "display fell behind; sending a fresh snapshot");
                self.fresh_snapshot().await
            }
            Err(broadcast::error::RecvError::Closed) => {
                self.close(1001, "daemon shutting down").await;
                Err(())
            }
        }
    }

    /// Queues a fresh snapshot; what it already holds is skipped from the stream after it.
    async fn fresh_snapshot(&mut self) -> Result<(), ()> {
        let snapshot = self.app.core.snapshot(self.info.clone()).await.ok_or(())?;
        self.seen = self.seen.max(snapshot.seq);
        let text = ServerMessage::Snapshot(Box::new(snapshot)).to_json();
        self.sink
            .feed(Message::Text(text.into()))
            .await
            .map_err(|_| ())
    }

    /// Sends an answer to the display's own request. The changes an action caused go out
    /// before its result, so that a display sees the new state by the time it learns the
    /// action worked.
    async fn reply(
        &mut self,
        rx: &mut broadcast::Receiver<Published>,
        reply: Message,
    ) -> Result<(), ()> {
        while let Some(published) = try_recv(rx) {
            self.queue(published).await?;
        }
        self.sink.feed(reply).await.map_err(|_| ())?;
        self.flush().await
    }

    /// Writes what was queued.
    async fn flush(&mut self) -> Result<(), ()> {
        self.sink.flush().await.map_err(|_| ())?;
        for received in self.delivered.drain(..) {
            self.app.metrics.record_delivery(received.elapsed());
        }
        Ok(())
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let _ = self.sink.send(close(code, reason)).await;
    }
}

async fn handle_client(app: &App, user: &User, text: &str) -> Message {
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            let request_id = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v.get("request_id")?.as_str().map(str::to_string));
            return error(request_id, "bad_message", format!("not understood: {e}"));
        }
    };
    let request_id = message.request_id().map(str::to_string);
    let action = message.action();
    if let Err(refusal) = crate::core::check_numbers(&message) {
        return error(request_id, refusal.code, refusal.reason);
    }
    if let ClientMessage::Trend { minutes, .. } = message {
        return match app.trends.answer(request_id.clone(), minutes).await {
            Some(text) => Message::Text(text.into()),
            None => error(request_id, "unavailable", "the daemon is shutting down"),
        };
    }
    if !user.role.may_act() {
        return error(
            request_id,
            "forbidden",
            format!("{} is signed in as a viewer and cannot {action}", user.name),
        );
    }
    match app.core.act(&user.name, message).await {
        Ok(()) => Message::Text(
            ServerMessage::Result {
                request_id,
                action: action.into(),
            }
            .to_json()
            .into(),
        ),
        Err(refusal) => error(request_id, refusal.code, refusal.reason),
    }
}
