//! The central's HTTP and WebSocket: `GET /` (the overview page), `GET /ws` (the room display
//! protocol with a `room` field, `docs/central-protocol.md`), `GET /healthz`. The same gate,
//! throttle, origin check, flood limit and frame caps as a room's display server.

use super::hub::{Hub, BROADCAST_CAPACITY};
use super::rooms::{LinkAction, Rooms};
use super::subscription::{Ended, Subscription, WsSink};
use super::Forward;
use crate::config::User;
use crate::net::flood::{Flood, Verdict};
use crate::net::{Conn, Net};
use crate::server::{close, close_for, error, linger, token, MAX_MESSAGE};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vigil_protocol::display::{ClientMessage, UserInfo};

const PAGE: &str = include_str!("../../web/central.html");
/// The read buffer per display (they send a few small commands).
const READ_BUFFER: usize = 4 * 1024;
/// Bytes a stalled display may have queued before its connection is dropped.
const MAX_WRITE_BUFFER: usize = 4 * 1024 * 1024;
/// Requests of each kind (actions, trends) a display connection may have waiting for a room's
/// answer at once.
const IN_FLIGHT: usize = 4;

/// What every request handler shares.
pub struct CentralApp {
    /// People by token.
    pub users: crate::reload::Users,
    /// The rooms.
    pub hub: Arc<Hub>,
    /// Sends actions to rooms.
    pub forward: Forward,
    /// Connection limits, failed-authentication throttle, origins.
    pub net: Arc<Net>,
    /// Fires at shutdown.
    pub shutdown: CancellationToken,
    /// Open display connections.
    pub display_connections: TaskTracker,
}

/// The routes.
pub fn router(app: Arc<CentralApp>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/ws", get(ws))
        .route("/healthz", get(healthz))
        .with_state(app)
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
}

async fn healthz(State(app): State<Arc<CentralApp>>) -> impl IntoResponse {
    let body = serde_json::json!({
        "status": "ok",
        "nats": if app.forward.connected() { "connected" } else { "disconnected" },
        "malformed_from_rooms": app.hub.malformed_count(),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

async fn ws(
    State(app): State<Arc<CentralApp>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Some(refusal) = app.net.origin_refusal(&headers) {
        return refusal;
    }
    if let Some(refusal) = app.net.locked_out(conn.ip()) {
        return refusal;
    }
    let Some(user) = token(&headers, &query).and_then(|t| app.users.find(&t)) else {
        return app
            .net
            .failed(
                conn.ip(),
                "a valid token is required: Authorization: Bearer TOKEN or ?token=TOKEN",
                &app.shutdown,
            )
            .await;
    };
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
            tracker.track_future(async move {
                tracing::info!(person = %user.name, role = user.role.name(), "central display connected");
                display_connection(socket, &app, &user).await;
                tracing::info!(person = %user.name, "central display disconnected");
            })
        })
}

/// One central display's WebSocket connection: the `rooms` message, then the broadcast, and its
/// requests.
async fn display_connection(socket: WebSocket, app: &CentralApp, user: &User) {
    let (mut sink, mut stream) = socket.split();
    let info = UserInfo {
        name: user.name.clone(),
        role: user.role.name().into(),
    };
    let (rooms, mut frames) = Subscription::start(&app.hub, &info);
    if sink.send(Message::Text(rooms.into())).await.is_err() {
        return;
    }
    let mut flood = Flood::new(Instant::now());
    let mut waiting = futures_util::stream::FuturesUnordered::new();
    // Requests waiting for their answers: actions and reads (trends) apart, so a display's slow
    // trend requests never make its acknowledgement of a sounding alarm wait (X10).
    let mut in_flight = InFlight::default();
    loop {
        let reply = tokio::select! {
            _ = app.shutdown.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close(1001, "central shutting down"))).await;
                return;
            }
            frame = frames.recv() => {
                let Ok(first) = frame else { return };
                if let Err(ended) = frames.send(&mut sink, first).await {
                    too_slow(&mut sink, user, ended).await;
                    return;
                }
                continue;
            }
            Some((kind, reply)) = waiting.next(), if !waiting.is_empty() => {
                in_flight.done(kind);
                // The changes an action caused go out before its answer (at most a queue's worth:
                // under a flood of changes the answer still goes).
                if let Err(ended) = frames.feed_waiting(&mut sink, BROADCAST_CAPACITY).await {
                    too_slow(&mut sink, user, ended).await;
                    return;
                }
                reply
            }
            incoming = stream.next() => match incoming {
                None | Some(Ok(Message::Close(_))) => return,
                Some(Err(e)) => {
                    let (code, reason) = close_for(e);
                    tracing::warn!(person = %user.name, code, reason, "central display connection error");
                    let _ = sink.send(close(code, reason)).await;
                    linger(&mut stream).await;
                    return;
                }
                Some(Ok(frame)) => match flood.frame(Instant::now()) {
                    Verdict::Close => {
                        tracing::warn!(person = %user.name, "closing a central display that floods the central");
                        app.net.flood_closed();
                        let _ = sink.send(close(1008, "too many messages")).await;
                        linger(&mut stream).await;
                        return;
                    }
                    Verdict::Refuse => error(None, "rate_limited", "too many messages: at most 10 a second"),
                    Verdict::Allow => match frame {
                        Message::Text(text) => {
                            let (kind, request_id) = RequestKind::of(&text);
                            if !in_flight.start(kind) {
                                error(request_id, "busy", "too many requests waiting for their answers")
                            } else {
                                let text = text.to_string();
                                waiting.push(async move { (kind, handle(app, user, &text).await) });
                                continue;
                            }
                        }
                        Message::Binary(_) => error(None, "bad_message", "binary frames are not part of the display protocol"),
                        _ => continue,
                    },
                },
            },
        };
        if sink.send(reply).await.is_err() {
            return;
        }
    }
}

/// What a display's request asks for, for its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestKind {
    /// Anything but a trend (an action, or a request not understood yet).
    Action,
    /// A trend, read from the room.
    Read,
}

impl RequestKind {
    /// The kind of request `text` is, and its `request_id` when it has one.
    fn of(text: &str) -> (RequestKind, Option<String>) {
        #[derive(serde::Deserialize)]
        struct Peek {
            #[serde(rename = "type")]
            kind: Option<String>,
            request_id: Option<String>,
        }
        match serde_json::from_str::<Peek>(text) {
            Ok(peek) if peek.kind.as_deref() == Some("trend") => {
                (RequestKind::Read, peek.request_id)
            }
            Ok(peek) => (RequestKind::Action, peek.request_id),
            Err(_) => (RequestKind::Action, None),
        }
    }
}

/// Requests of each kind waiting for their answers, at most [`IN_FLIGHT`] each.
#[derive(Debug, Default)]
struct InFlight {
    actions: usize,
    reads: usize,
}

impl InFlight {
    fn count(&mut self, kind: RequestKind) -> &mut usize {
        match kind {
            RequestKind::Action => &mut self.actions,
            RequestKind::Read => &mut self.reads,
        }
    }

    /// Counts a request in, unless its kind has [`IN_FLIGHT`] waiting already.
    fn start(&mut self, kind: RequestKind) -> bool {
        let count = self.count(kind);
        if *count >= IN_FLIGHT {
            return false;
        }
        *count += 1;
        true
    }

    fn done(&mut self, kind: RequestKind) {
        let count = self.count(kind);
        *count = count.saturating_sub(1);
    }
}

/// Closes a display that keeps falling behind (its page reconnects and starts from the state).
async fn too_slow(sink: &mut WsSink, user: &User, ended: Ended) {
    if let Ended::TooSlow = ended {
        tracing::warn!(person = %user.name, "closing a central display that keeps falling behind");
        let reason = "this display cannot keep up with the site; reconnect";
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close(1008, reason))).await;
    }
}

/// `frame` with `"room": room_id` added (answers are about a room).
fn in_room(room_id: &str, reply: Message) -> Message {
    let Message::Text(text) = &reply else {
        return reply;
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert("room".into(), serde_json::Value::String(room_id.into()));
            Message::Text(serde_json::Value::Object(map).to_string().into())
        }
        _ => reply,
    }
}

/// One request from a display: `room` names the room; the rest is a room display action.
async fn handle(app: &CentralApp, user: &User, text: &str) -> Message {
    let mut value = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(_) => {
            return error(
                None,
                "bad_message",
                "not understood: expected a JSON object",
            )
        }
        Err(e) => return error(None, "bad_message", format!("not understood: {e}")),
    };
    let request_id = value
        .get("request_id")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let Some(serde_json::Value::String(room_id)) = value.remove("room") else {
        return error(
            request_id,
            "bad_message",
            "every request names its room: \"room\": ROOM_ID",
        );
    };
    let message: ClientMessage =
        match serde_json::from_value(serde_json::Value::Object(value.clone())) {
            Ok(m) => m,
            Err(e) => {
                return in_room(
                    &room_id,
                    error(request_id, "bad_message", format!("not understood: {e}")),
                )
            }
        };
    let action = message.action();
    if let ClientMessage::Trend { .. } = message {
        // Any role may read a trend, as at the room; the room answers from its own trend
        // service, a few at a time for all its displays and the central together.
        let reply = match crate::numbers::check_numbers(&message) {
            Err(refusal) => error(request_id, refusal.code, refusal.reason),
            Ok(()) => app.forward.trend(&room_id, value, request_id).await,
        };
        return in_room(&room_id, reply);
    }
    let reply = if !user.role.may_act() {
        error(
            request_id,
            "forbidden",
            format!("{} is signed in as a viewer and cannot {action}", user.name),
        )
    } else {
        match &message {
            ClientMessage::Ack { alarm_id, .. } | ClientMessage::Reset { alarm_id, .. }
                if Rooms::is_link_alarm(alarm_id) =>
            {
                let reset = matches!(message, ClientMessage::Reset { .. });
                match app.hub.link_action(&room_id, alarm_id, &user.name, reset) {
                    LinkAction::Done(_) => Message::Text(
                        serde_json::json!({
                            "v": vigil_protocol::display::VERSION,
                            "type": "result",
                            "request_id": request_id,
                            "action": action,
                        })
                        .to_string()
                        .into(),
                    ),
                    LinkAction::Refused(code, reason) => error(request_id, code, reason),
                }
            }
            ClientMessage::SetBaseline { .. } => error(
                request_id,
                "unsupported",
                format!("{action} is done at the room's own display"),
            ),
            _ => app.forward.action(&room_id, value, user, request_id).await,
        }
    };
    in_room(&room_id, reply)
}
