//! The central station (`vigil central`): reads the site's stream with a durable consumer,
//! keeps each room's state, raises "room link lost" for a room it no longer hears, and serves
//! the overview page and the room display protocol with a `room` field
//! (`docs/central-protocol.md`). Actions from its displays go to the room as NATS requests.
//!
//! - [`rooms`]: the rooms' state and the link alarm, sans-IO;
//! - [`hub`]: the rooms behind a lock, and the broadcast to displays;
//! - [`feed`]: NATS in: the stream, the heartbeats, the snapshot requests;
//! - [`server`]: HTTP and WebSocket;
//! - [`subscription`]: one display's reading of the broadcast;
//! - this module: start and stop, and [`Forward`] (NATS out: actions).

pub mod budget;
pub mod demo;
pub mod feed;
pub mod hub;
pub mod natsd;
pub mod rooms;
pub mod server;
pub mod subscription;
#[cfg(test)]
mod tests;

use crate::clock::Clock;
use crate::config::{CentralConfig, User};
use crate::nats::signed::{unix_ms_now, ActionKey};
use crate::nats::Subjects;
use crate::net::listener::GatedListener;
use crate::net::{Conn, Net};
use anyhow::{Context, Result};
use axum::extract::ws::Message;
use hub::Hub;
use server::{router, CentralApp};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the central checks the rooms' heartbeats; its own display heartbeat goes out every
/// fourth check (once a second).
const TICK: Duration = Duration::from_millis(250);

/// Sends display actions to rooms over NATS (`vigil-live.<site>.<room_id>.action`).
#[derive(Clone)]
pub struct Forward {
    client: async_nats::Client,
    site: String,
    /// Signs every request (a room answers only signed ones: hazard V6).
    key: Option<ActionKey>,
}

impl Forward {
    /// Whether the central is connected to NATS now.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Forwards `action` (a display action without its `room`) to `room_id` with the person and
    /// role, and returns the room's answer (a `result` or an `error`).
    pub async fn action(
        &self,
        room_id: &str,
        mut action: serde_json::Map<String, serde_json::Value>,
        user: &User,
        request_id: Option<String>,
    ) -> Message {
        use crate::server::error;
        if !crate::nats::valid_slug(room_id) {
            return error(
                request_id,
                "unknown_room",
                format!("{room_id:?} is not a room id"),
            );
        }
        action.insert("user".into(), user.name.clone().into());
        action.insert("role".into(), user.role.name().into());
        let subject = Subjects::new(&self.site, room_id).action();
        let payload = serde_json::Value::Object(action).to_string();
        tracing::info!(room = %room_id, person = %user.name, "forwarding an action to a room");
        self.request(room_id, subject, payload, request_id).await
    }

    /// Asks `room_id` for its trend (`request`: a display `trend` request without its `room`,
    /// range-checked) and returns the room's `trend` or `error`.
    pub async fn trend(
        &self,
        room_id: &str,
        request: serde_json::Map<String, serde_json::Value>,
        request_id: Option<String>,
    ) -> Message {
        use crate::server::error;
        if !crate::nats::valid_slug(room_id) {
            return error(
                request_id,
                "unknown_room",
                format!("{room_id:?} is not a room id"),
            );
        }
        let subject = Subjects::new(&self.site, room_id).trend_request();
        let payload = serde_json::Value::Object(request).to_string();
        self.request(room_id, subject, payload, request_id).await
    }

    /// One request to a room and its answer, or why there is none.
    async fn request(
        &self,
        room_id: &str,
        subject: String,
        payload: String,
        request_id: Option<String>,
    ) -> Message {
        use crate::server::error;
        let Some(key) = &self.key else {
            return error(
                request_id,
                "unavailable",
                "this central has no action_key: rooms answer only requests signed with it",
            );
        };
        let headers = key.sign(&subject, payload.as_bytes(), unix_ms_now());
        let request = self
            .client
            .request_with_headers(subject, headers, payload.into());
        match request.await {
            Ok(reply) => match serde_json::from_slice::<serde_json::Value>(&reply.payload) {
                Ok(value @ serde_json::Value::Object(_)) => Message::Text(value.to_string().into()),
                _ => error(
                    request_id,
                    "bad_reply",
                    "the room's answer was not understood",
                ),
            },
            Err(e) => {
                use async_nats::client::RequestErrorKind;
                let reason = match e.kind() {
                    RequestErrorKind::NoResponders => {
                        format!("room {room_id} is not reachable now: act at the room")
                    }
                    RequestErrorKind::TimedOut => {
                        format!("room {room_id} did not answer in time: act at the room")
                    }
                    RequestErrorKind::Other => format!("the request to room {room_id} failed: {e}"),
                };
                error(request_id, "unavailable", reason)
            }
        }
    }
}

/// A running central.
pub struct Central {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// The rooms (for tests and tools).
    pub hub: Arc<Hub>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    display_connections: TaskTracker,
}

impl Central {
    /// Connects to NATS (in the background: the page serves at once), starts reading the site's
    /// stream and serving displays.
    pub async fn start(config: CentralConfig) -> Result<Central> {
        let client = crate::nats::connect(&config.nats, &format!("vigil central {}", config.name))
            .await
            .context("NATS")?;
        let hub = Hub::new(Clock::start());
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let key = config.nats.action_key();
        tasks.spawn(feed::run(
            (client.clone(), key.clone()),
            config.site.clone(),
            config.consumer(),
            hub.clone(),
            cancel.clone(),
        ));
        tasks.spawn(ticks(hub.clone(), cancel.clone()));

        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() && config.tls.is_none() {
            tracing::warn!(%addr, "listening beyond this machine without TLS: tokens and patient data travel in clear text; configure [tls] or put a TLS proxy in front");
        }
        let net = Net::new(&config.network);
        let display_connections = TaskTracker::new();
        let app = Arc::new(CentralApp {
            users: crate::reload::Users::new(config.users.clone()),
            hub: hub.clone(),
            forward: Forward {
                client,
                site: config.site.clone(),
                key,
            },
            net: net.clone(),
            shutdown: cancel.clone(),
            display_connections: display_connections.clone(),
        });
        match &config.tls {
            Some(tls) => {
                let listener = crate::tls::TlsListener::new(
                    listener,
                    tls.clone(),
                    crate::daemon::tune,
                    net.gate.clone(),
                    cancel.clone(),
                )?;
                tasks.spawn(serve(listener, app, cancel.clone()));
            }
            None => {
                let listener = GatedListener::new(listener, net.gate.clone(), crate::daemon::tune);
                tasks.spawn(serve(listener, app, cancel.clone()));
            }
        }
        net.housekeeping(cancel.child_token());
        tracing::info!(%addr, site = %config.site, consumer = %config.consumer(), "vigil central running");
        Ok(Central {
            addr,
            hub,
            cancel,
            tasks,
            display_connections,
        })
    }

    /// Stops: closes the displays, ends the NATS tasks.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.display_connections.close();
        self.tasks.close();
        let _ = tokio::time::timeout(crate::daemon::SHUTDOWN_DEADLINE, async {
            self.display_connections.wait().await;
            self.tasks.wait().await;
        })
        .await;
    }
}

async fn serve<L>(listener: L, app: Arc<CentralApp>, stop: CancellationToken)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
    Conn: for<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    let served = axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<Conn>(),
    )
    .with_graceful_shutdown(stop.cancelled_owned())
    .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "central HTTP server stopped");
    }
}

/// The heartbeat watch over the rooms, the central's own display heartbeat, and systemd's
/// watchdog (under `WatchdogSec`): a central whose runtime stops turning is restarted.
async fn ticks(hub: Arc<Hub>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watchdog = crate::supervise::Watchdog::from_env();
    let mut n: u64 = 0;
    loop {
        let now = tokio::select! {
            _ = cancel.cancelled() => return,
            now = tick.tick() => now,
        };
        hub.tick();
        watchdog.kick(now);
        if n % 4 == 0 {
            hub.display_heartbeat();
        }
        n += 1;
    }
}
