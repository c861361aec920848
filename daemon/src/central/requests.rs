//! The central station's requests, answered through the core exactly as a local display's:
//! `action` (the person recorded as `NAME (central)`, a viewer `forbidden`, the core's own
//! refusals), `snapshot`, and `trend` (answered off the core by the same trend service as the
//! room's displays, sharing its few slots, up to 8 hours). Bounded: a few in flight at once, and
//! the display's flood limit, for actions and for reads apart. A request that is not understood gets an
//! `error` reply and a log line.

use super::Room;
use crate::config::Role;
use crate::nats::signed::{unix_ms_now, Signed, Unsigned, Verifier};
use crate::net::flood::{Flood, Verdict};
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigil_protocol::display::{ClientMessage, ServerMessage};

/// Requests answered at once; more are refused with `rate_limited` until one is done. Actions
/// and reads (snapshots, trends) each have this many, and each their own flood limit: reads,
/// which any role at the central may ask for, never use up what a nurse's `ack` needs (X9).
pub const MAX_IN_FLIGHT: usize = 4;
/// The longest person's name a request may carry.
const MAX_NAME: usize = 100;

fn error(request_id: Option<String>, code: &str, reason: impl Into<String>) -> String {
    ServerMessage::Error {
        request_id,
        code: code.into(),
        reason: reason.into(),
    }
    .to_json()
}

/// Subscribes to the room's request subjects and answers until `cancel`.
pub(super) async fn answer(room: Room, cancel: CancellationToken) {
    let (actions, snapshots, trends) = match (
        room.client.subscribe(room.subjects.action()).await,
        room.client
            .subscribe(room.subjects.snapshot_request())
            .await,
        room.client.subscribe(room.subjects.trend_request()).await,
    ) {
        (Ok(a), Ok(s), Ok(t)) => (a, s, t),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            tracing::error!(error = %e, "cannot take requests from the central station");
            return;
        }
    };
    let mut requests = futures_util::stream::select_all([
        actions.map(|m| (Request::Action, m)).boxed(),
        snapshots.map(|m| (Request::Snapshot, m)).boxed(),
        trends.map(|m| (Request::Trend, m)).boxed(),
    ]);
    // Index 0: actions; 1: reads.
    let in_flight = [(); 2].map(|()| Arc::new(Semaphore::new(MAX_IN_FLIGHT)));
    let mut flood = [(); 2].map(|()| Flood::new(Instant::now()));
    let mut verifier = room.action_key.clone().map(Verifier::new);
    let mut unsigned_log = crate::net::Tally::default();
    // Unsigned requests are refused before they count against the central's budgets, and
    // answered only at a display's flood rate: a flood of them must neither use up the
    // central's own requests nor crowd the room's publications on its one connection.
    let mut unsigned_replies = Flood::new(Instant::now());
    loop {
        let (request, message) = tokio::select! {
            _ = cancel.cancelled() => return,
            next = requests.next() => match next {
                Some(m) => m,
                None => return,
            },
        };
        let Some(reply_to) = message.reply.clone() else {
            tracing::warn!(subject = %message.subject, "a request from the central station without a reply subject; ignored");
            continue;
        };
        let signed = match authentic(verifier.as_ref(), &message) {
            Ok(signed) => signed,
            Err(why) => {
                if let Some(count) = unsigned_log.note(Instant::now()) {
                    tracing::warn!(subject = %message.subject, count, reason = %why, "refusing requests not signed by the central station (count since the last such line)");
                }
                if let Verdict::Allow = unsigned_replies.frame(Instant::now()) {
                    unauthenticated(&room, reply_to, &message.payload, why).await;
                }
                continue;
            }
        };
        // A replay of an action is refused before it counts against the central's budget, so
        // replays cannot use it up.
        if let (Request::Action, Some(verifier)) = (request, verifier.as_ref()) {
            if let Err(why) = verifier.seen_before(&signed) {
                tracing::warn!(reason = %why, "refusing an action request from the central station");
                unauthenticated(&room, reply_to, &message.payload, why).await;
                continue;
            }
        }
        let budget = usize::from(!matches!(request, Request::Action));
        let refused = match flood[budget].frame(Instant::now()) {
            Verdict::Allow => None,
            Verdict::Refuse | Verdict::Close => Some("too many requests; slow down"),
        };
        // An action is carried out once: a replay of the central's is refused. Reads (trend,
        // snapshot) change nothing, so they are not remembered.
        if let (None, Request::Action, Some(verifier)) = (refused, request, verifier.as_mut()) {
            if let Err(why) = verifier.first_time(signed, unix_ms_now()) {
                tracing::warn!(reason = %why, "refusing an action request from the central station");
                unauthenticated(&room, reply_to, &message.payload, why).await;
                continue;
            }
        }
        let permit = match refused {
            Some(_) => None,
            None => in_flight[budget].clone().try_acquire_owned().ok(),
        };
        let Some(permit) = permit else {
            tracing::warn!("refusing a request from the central station: too many");
            let text = error(
                None,
                "rate_limited",
                refused.unwrap_or("too many requests at once"),
            );
            let _ = room.client.publish(reply_to, text.into()).await;
            continue;
        };
        let room = room.clone();
        tokio::spawn(async move {
            let text = match request {
                Request::Action => act(&room, &message.payload).await,
                Request::Snapshot => match room.snapshot().await {
                    Some((_, text)) => text,
                    None => error(None, "unavailable", "the daemon is shutting down"),
                },
                Request::Trend => trend(&room, &message.payload).await,
            };
            if let Err(e) = room.client.publish(reply_to, text.into()).await {
                tracing::warn!(error = %e, "cannot answer the central station");
            }
            drop(permit);
        });
    }
}

/// Whether `message` is signed by the central, and fresh (hazard V6). A room without a key
/// answers nothing (its configuration requires one).
fn authentic(
    verifier: Option<&Verifier>,
    message: &async_nats::Message,
) -> Result<Signed, Unsigned> {
    let Some(verifier) = verifier else {
        return Err(Unsigned::Forged);
    };
    verifier.authentic(
        message.subject.as_str(),
        message.headers.as_ref(),
        &message.payload,
        unix_ms_now(),
    )
}

/// Answers a request the room refused as not the central's, with its `request_id`.
async fn unauthenticated(
    room: &Room,
    reply_to: async_nats::Subject,
    payload: &[u8],
    why: Unsigned,
) {
    let text = error(request_id_of(payload), "unauthenticated", why.to_string());
    let _ = room.client.publish(reply_to, text.into()).await;
}

/// The `request_id` of a request, when it has one, for the refusal's `error`.
fn request_id_of(payload: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()?
        .get("request_id")?
        .as_str()
        .map(str::to_string)
}

/// What the central asks.
#[derive(Debug, Clone, Copy)]
enum Request {
    Action,
    Snapshot,
    Trend,
}

/// A `trend` request: the display's own (`{"type":"trend","minutes":M,"request_id":...}`),
/// answered by the display's `trend` message.
pub(super) async fn trend(room: &Room, payload: &[u8]) -> String {
    let (request_id, minutes) = match trend_request(payload) {
        Ok(request) => request,
        Err((request_id, reason)) => {
            tracing::warn!(%reason, "a trend request from the central station not understood");
            return error(request_id, "bad_message", reason);
        }
    };
    let Some(text) = room.trends.answer(request_id.clone(), minutes).await else {
        return error(request_id, "unavailable", "the daemon is shutting down");
    };
    // NATS carries at most the server's largest payload (1 MiB by default).
    let max = room.client.server_info().max_payload;
    if max > 0 && text.len() > max {
        return error(
            request_id,
            "too_large",
            format!(
                "the trend of {minutes} minutes is {} bytes, more than NATS carries ({max}); ask for fewer minutes",
                text.len()
            ),
        );
    }
    text
}

/// Reads a trend request: its `request_id` and minutes (1 to 480); the error carries the
/// `request_id` when one could be read.
fn trend_request(payload: &[u8]) -> Result<(Option<String>, u32), (Option<String>, String)> {
    let message = match serde_json::from_slice::<ClientMessage>(payload) {
        Ok(m) => m,
        Err(e) => return Err((request_id_of(payload), format!("not understood: {e}"))),
    };
    let request_id = message.request_id().map(str::to_string);
    if let Err(refusal) = crate::numbers::check_numbers(&message) {
        return Err((request_id, refusal.reason));
    }
    match message {
        ClientMessage::Trend { minutes, .. } => Ok((request_id, minutes)),
        other => Err((
            request_id,
            format!("not understood: {} is not a trend request", other.action()),
        )),
    }
}

/// An `action` request: a display action plus `user` and `role`.
pub(super) async fn act(room: &Room, payload: &[u8]) -> String {
    match action(payload) {
        Err((request_id, reason)) => {
            tracing::warn!(%reason, "a request from the central station not understood");
            error(request_id, "bad_message", reason)
        }
        Ok((user, role, message)) => {
            let request_id = message.request_id().map(str::to_string);
            let action = message.action();
            if !role.may_act() {
                return error(
                    request_id,
                    "forbidden",
                    format!("{user} is signed in as a viewer and cannot {action}"),
                );
            }
            match room.core.act(&format!("{user} (central)"), message).await {
                Ok(()) => ServerMessage::Result {
                    request_id,
                    action: action.into(),
                }
                .to_json(),
                Err(refusal) => error(request_id, refusal.code, refusal.reason),
            }
        }
    }
}

/// Reads an action request; the error carries its `request_id` when one could be read.
fn action(payload: &[u8]) -> Result<(String, Role, ClientMessage), (Option<String>, String)> {
    let mut value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| (None, format!("not understood: {e}")))?;
    let request_id = value
        .get("request_id")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let bad = |reason: String| (request_id.clone(), reason);
    let fields = value
        .as_object_mut()
        .ok_or_else(|| bad("not understood: not a JSON object".into()))?;
    let user = match fields.remove("user") {
        Some(serde_json::Value::String(u))
            if !u.trim().is_empty()
                && u.chars().count() <= MAX_NAME
                && !u.chars().any(char::is_control) =>
        {
            u
        }
        _ => {
            return Err(bad(format!(
                "user: a person's name (1 to {MAX_NAME} characters) is required"
            )))
        }
    };
    let role: Role = fields
        .remove("role")
        .and_then(|r| serde_json::from_value(r).ok())
        .ok_or_else(|| bad("role: viewer, nurse or provider is required".into()))?;
    let message: ClientMessage =
        serde_json::from_value(value).map_err(|e| bad(format!("not understood: {e}")))?;
    match message {
        ClientMessage::Ack { .. }
        | ClientMessage::Reset { .. }
        | ClientMessage::PauseAudio { .. }
        | ClientMessage::StartNibp { .. }
        | ClientMessage::MarkDose { .. } => Ok((user, role, message)),
        other => Err(bad(format!(
            "{} is not an action the central station may request",
            other.action()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_requests_are_refused_with_a_reason_never_a_panic() {
        let cases: [(&[u8], Option<&str>, &str); 7] = [
            (b"\xff\xfe", None, "not understood"),
            (b"[1,2]", None, "not a JSON object"),
            (
                br#"{"type":"ack","alarm_id":"a","request_id":"r1","role":"nurse"}"#,
                Some("r1"),
                "user:",
            ),
            (
                br#"{"type":"ack","alarm_id":"a","user":"A","role":"janitor"}"#,
                None,
                "role:",
            ),
            (
                br#"{"type":"ack","user":"A","role":"nurse","request_id":"r2"}"#,
                Some("r2"),
                "not understood",
            ),
            (
                br#"{"type":"trend","minutes":60,"user":"A","role":"nurse"}"#,
                None,
                "not an action",
            ),
            (
                br#"{"type":"ack","alarm_id":"a","user":"A\u0007","role":"nurse"}"#,
                None,
                "user:",
            ),
        ];
        for (payload, request_id, reason) in cases {
            let (id, why) = action(payload).map(|_| ()).unwrap_err();
            assert_eq!(id.as_deref(), request_id, "{why}");
            assert!(why.contains(reason), "{why}");
        }
        let (user, role, message) = action(
            br#"{"type":"ack","alarm_id":"a","request_id":"r","user":"Dr Ames","role":"provider"}"#,
        )
        .unwrap();
        assert_eq!((user.as_str(), role), ("Dr Ames", Role::Provider));
        assert_eq!(message.action(), "ack");
    }

    #[test]
    fn trend_requests_are_read_and_range_checked_never_a_panic() {
        assert_eq!(
            trend_request(br#"{"type":"trend","minutes":480,"request_id":"t1"}"#),
            Ok((Some("t1".into()), 480))
        );
        let cases: [(&[u8], Option<&str>, &str); 5] = [
            (b"\xff\xfe", None, "not understood"),
            (
                br#"{"type":"trend","request_id":"t2"}"#,
                Some("t2"),
                "not understood",
            ),
            (
                br#"{"type":"trend","minutes":0,"request_id":"t3"}"#,
                Some("t3"),
                "1 to 480",
            ),
            (br#"{"type":"trend","minutes":481}"#, None, "1 to 480"),
            (
                br#"{"type":"mark_dose","request_id":"t4"}"#,
                Some("t4"),
                "not a trend request",
            ),
        ];
        for (payload, id, reason) in cases {
            let (request_id, why) = trend_request(payload).unwrap_err();
            assert_eq!(request_id.as_deref(), id, "{why}");
            assert!(why.contains(reason), "{why:?} lacks {reason:?}");
        }
    }
}
