//! A room as the central sees it over NATS, for the central's tests: it publishes what the
//! NATS contract says (stored messages with their `Nats-Msg-Id`, live heartbeats) and answers
//! actions with `result`, remembering each request.

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The site the fake rooms publish to.
pub const SITE: &str = "clinic";
/// The central's provider, Dr Lee.
pub const PROVIDER: &str = "provider-token-0123456789";
/// The central's viewer.
pub const VIEWER: &str = "viewer-token-0123456789ab";
/// The site's key the central signs its requests to rooms with (`action_key`).
pub const ACTION_KEY: &str = "site-action-key-0123456789";

/// A central for [`SITE`] on a free port, reading NATS at `url`, with [`PROVIDER`] and
/// [`VIEWER`] as its people.
pub async fn central(url: &str) -> vigil_daemon::station::Central {
    let text = format!(
        r#"
        listen = "127.0.0.1:0"
        site = "{SITE}"
        [nats]
        nats = "{url}"
        action_key = "{ACTION_KEY}"
        [[user]]
        name = "Dr Lee"
        role = "provider"
        token = "{PROVIDER}"
        [[user]]
        name = "Visitor"
        role = "viewer"
        token = "{VIEWER}"
        "#
    );
    let config = vigil_daemon::config::CentralConfig::parse(
        &text,
        "central.toml",
        std::path::Path::new("."),
    )
    .unwrap();
    vigil_daemon::station::Central::start(config).await.unwrap()
}

/// A room as the central sees it over NATS: it publishes contract messages and answers actions
/// with `result`, remembering each request.
pub struct FakeRoom {
    /// Its `room_id`.
    pub id: &'static str,
    /// Its NATS connection.
    pub client: async_nats::Client,
    /// Its JetStream context.
    pub js: async_nats::jetstream::Context,
    boot: u64,
    seq: u64,
    /// The action requests it received, in order.
    pub requests: Arc<Mutex<Vec<Value>>>,
    beating: CancellationToken,
}

impl FakeRoom {
    /// Connects to `url` and starts its heartbeats and its answers.
    pub async fn start(url: &str, id: &'static str) -> FakeRoom {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client.clone());
        vigil_daemon::nats::ensure_stream(&js, SITE).await.unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let mut actions = client
            .subscribe(format!("vigil-live.{SITE}.{id}.action"))
            .await
            .unwrap();
        // The server has the subscription before anyone sends the room a request.
        client.flush().await.unwrap();
        let (answer, seen) = (client.clone(), requests.clone());
        tokio::spawn(async move {
            while let Some(request) = actions.next().await {
                let value: Value = serde_json::from_slice(&request.payload).unwrap();
                let reply = json!({"v":1,"type":"result","request_id":value["request_id"],"action":value["type"]});
                seen.lock().unwrap().push(value);
                if let Some(to) = request.reply {
                    answer.publish(to, reply.to_string().into()).await.unwrap();
                }
            }
        });
        let mut room = FakeRoom {
            id,
            client,
            js,
            boot: 1_795_000_000_000,
            seq: 0,
            requests,
            beating: CancellationToken::new(),
        };
        room.beat();
        room
    }

    /// Heartbeats every 200 ms until [`FakeRoom::silence`].
    pub fn beat(&mut self) {
        self.beating = CancellationToken::new();
        let (client, id, boot, stop) = (
            self.client.clone(),
            self.id,
            self.boot,
            self.beating.clone(),
        );
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let beat = json!({"v":1,"type":"heartbeat","at":"2026-11-29T10:00:00.000Z","room":format!("Room {id}"),"room_id":id,"boot":boot,"seq":0});
                let _ = client
                    .publish(
                        format!("vigil-live.{SITE}.{id}.heartbeat"),
                        beat.to_string().into(),
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    /// Stops its heartbeats.
    pub fn silence(&self) {
        self.beating.cancel();
    }

    /// Publishes a stored message of `kind`, with the next `seq`, as the room would.
    pub async fn publish(&mut self, kind: &str, mut message: Value) -> u64 {
        self.seq += 1;
        message["v"] = json!(1);
        message["seq"] = json!(self.seq);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            format!("{}.{}.{}", self.id, self.boot, self.seq).as_str(),
        );
        self.js
            .publish_with_headers(
                format!("vigil.{SITE}.{}.{kind}", self.id),
                headers,
                message.to_string().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        self.seq
    }

    /// Publishes a snapshot: the room's whole state, one oximeter, no alarms.
    pub async fn snapshot(&mut self) {
        let name = format!("Room {}", self.id);
        self.publish("snapshot", json!({"type":"snapshot","room":name,"user":{"name":"","role":""},
            "server_time":"2026-11-29T10:00:00.000Z",
            "session":{"phase":"pre_dose","dose_at":null,"dose_by":null,"minutes_since_dose":null,"baseline":null},
            "devices":[{"device":"oximeter-1","format":"masimo","link":"connected"}],"vitals":[],"alarms":[],
            "audio_pause_remaining_s":null,"trend":{"minutes":0,"resolution_s":0,"series":[]},"limits":[]}))
            .await;
    }

    /// Publishes a reading of the oximeter.
    pub async fn reading(&mut self, vital: &str, value: f64) {
        self.publish("reading", json!({"type":"reading","device":"oximeter-1","vital":vital,"value":value,
            "unit":if vital == "spo2" { "%" } else { "bpm" },"mdc":null,"at":"2026-11-29T10:00:01.000Z","flags":[]}))
            .await;
    }

    /// Answers the central's trend requests as a room does: an SpO2 series of `points`
    /// (`[unix ms, value]`), with the request's minutes and id.
    pub async fn answer_trends(&self, points: Vec<(i64, f64)>) {
        let mut requests = self
            .client
            .subscribe(format!("vigil-live.{SITE}.{}.trend", self.id))
            .await
            .unwrap();
        self.client.flush().await.unwrap();
        let client = self.client.clone();
        tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let asked: Value = serde_json::from_slice(&request.payload).unwrap();
                let trend = json!({"v":1,"type":"trend","request_id":asked["request_id"],
                    "trend":{"minutes":asked["minutes"],"resolution_s":30,
                        "series":[{"device":"oximeter-1","vital":"spo2","points":points}]}});
                if let Some(to) = request.reply {
                    client.publish(to, trend.to_string().into()).await.unwrap();
                }
            }
        });
    }

    /// Publishes a raised high SpO2 alarm with its time.
    pub async fn alarm(&mut self, id: &str, since: &str) {
        self.publish("alarm", json!({"type":"alarm","event":"raised","alarm":{"id":id,"rule":"spo2-low",
            "kind":"physiological","vital":"spo2","device":"oximeter-1","priority":"high","message":"SpO2 low",
            "state":"active","since":since,"acknowledged_by":null,"acknowledged_at":null,"latching":false,
            "awaiting_confirmation":false,"value":85.0}}))
            .await;
    }
}

/// A request to a room signed as the central signs it, with `key` (the site's is
/// [`ACTION_KEY`]), and the room's answer.
pub async fn signed_request(
    client: &async_nats::Client,
    subject: &str,
    payload: &str,
    key: &str,
) -> Value {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as i64;
    let headers =
        vigil_daemon::nats::signed::ActionKey::new(key).sign(subject, payload.as_bytes(), now_ms);
    let reply = client
        .request_with_headers(subject.to_string(), headers, payload.to_string().into())
        .await
        .expect("the room answers");
    serde_json::from_slice(&reply.payload).expect("the answer is JSON")
}
