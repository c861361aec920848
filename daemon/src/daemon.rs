//! Starting and stopping the whole daemon: drivers, core, server. Tests run it in-process on
//! port 0; `vigil run` runs it until SIGTERM or Ctrl-C.

use crate::clock::Clock;
use crate::config::Config;
use crate::core::Core;
use crate::device_set::DeviceSet;
use crate::metrics::Metrics;
use crate::net::listener::GatedListener;
use crate::net::{Conn, Net};
use crate::server::{router, App};
use crate::supervise::Fatal;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vigil_alarm::Engine;
use vigil_drivers::ble::Central;

/// Raises `fatal` if the core task ends any way but by cancellation.
fn watch_core(core: JoinHandle<Engine>, fatal: Fatal) -> JoinHandle<()> {
    tokio::spawn(async move {
        match core.await {
            Ok(_) => {}
            Err(e) if e.is_panic() => {
                let why = crate::supervise::panic_message(&*e.into_panic());
                fatal.raise(format!("the core task panicked: {why}"));
            }
            Err(e) => fatal.raise(format!("the core task stopped: {e}")),
        }
    })
}

/// The profile in force as the session record keeps it: its name and every setting with the
/// layer it came from.
pub fn profile_record(profile: &vigil_alarm::Profile) -> String {
    serde_json::json!({
        "name": profile.name,
        "settings": profile.settings,
    })
    .to_string()
}

/// How long shutdown may take before it stops waiting.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(4);

/// Small kernel send buffers bound what a stalled display can hold (it falls behind and gets a
/// snapshot instead), and no Nagle delay on the frames that carry alarms.
pub(crate) fn tune(tcp: &tokio::net::TcpStream) {
    let _ = tcp.set_nodelay(true);
    let _ = socket2::SockRef::from(tcp).set_send_buffer_size(SEND_BUFFER);
}

fn serve<L>(listener: L, app: Arc<App>, stop: CancellationToken) -> JoinHandle<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
    Conn: for<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    tokio::spawn(async move {
        let served = axum::serve(
            listener,
            router(app).into_make_service_with_connect_info::<Conn>(),
        )
        .with_graceful_shutdown(stop.cancelled_owned())
        .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    })
}

/// Kernel send buffer per display connection (Linux doubles it): about 4 s of a busy room's
/// messages. A display that stops reading stops costing the daemon anything once it is full;
/// what does not fit waits in the display connection's own bounded buffer.
const SEND_BUFFER: usize = 64 * 1024;

/// Tuning that only tests and benchmarks change, and what `vigil demo` tells the daemon.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Publications (the messages of one event each) a display may be behind before it gets a
    /// fresh snapshot instead. The queue keeps that many of the latest publications in memory
    /// whether or not anyone lags, so it is sized in time: about 15 s of a busy room (an
    /// oximeter sending 60 packets a second), about 0.7 MB.
    pub broadcast_capacity: usize,
    /// The devices are simulated (`vigil demo`): the display page says so in a banner.
    pub simulated: bool,
    /// The `[[forward]]`s' queue bound and timeouts.
    pub forward: crate::forward::Options,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            broadcast_capacity: 1024,
            simulated: false,
            forward: crate::forward::Options::default(),
        }
    }
}

/// A running daemon.
pub struct Daemon {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    cancel: CancellationToken,
    out: broadcast::Sender<crate::core::Published>,
    core_handle: crate::core::CoreHandle,
    writer: std::thread::JoinHandle<()>,
    drivers: TaskTracker,
    device_set: Arc<Mutex<DeviceSet>>,
    display_connections: TaskTracker,
    core: JoinHandle<()>,
    fatal: Fatal,
    server: JoinHandle<()>,
    users: crate::reload::Users,
    /// The publisher to the central station (none without `[central]`).
    central: TaskTracker,
}

impl Daemon {
    /// Starts everything the configuration describes. BLE devices use `central`.
    pub async fn start(config: Config, central: Arc<dyn Central>) -> Result<Daemon> {
        Daemon::start_with(config, central, Options::default()).await
    }

    /// As [`Daemon::start`], with tuning.
    pub async fn start_with(
        config: Config,
        central: Arc<dyn Central>,
        options: Options,
    ) -> Result<Daemon> {
        let clock = Clock::start();
        let cancel = CancellationToken::new();
        crate::net::raise_open_files_limit(&config.network);
        let metrics = Arc::new(Metrics::default());
        let (out, _) = broadcast::channel(options.broadcast_capacity);
        let (events, driver_rx) = mpsc::channel(4096);
        let mut device_set = DeviceSet::new(central, events, cancel.clone());
        let mut handles = HashMap::new();
        for spec in &config.devices {
            handles.insert(spec.id.clone(), device_set.start(spec));
        }
        // The session record: resume a session a crash left open, or start one. A database that
        // cannot be opened does not stop monitoring; the writer keeps trying.
        let path = config.storage_path.clone();
        let profile_record = profile_record(&config.profile);
        let (room, profile) = (config.room.clone(), profile_record.clone());
        let retention_days = config.retention_days;
        let forward_names: Vec<String> = config.forwards.iter().map(|f| f.name.clone()).collect();
        let opened = tokio::task::spawn_blocking(move || {
            let conn = crate::storage::open(&path)?;
            // A new forward starts where the record ends now, before this run records anything.
            for name in &forward_names {
                if let Err(e) = crate::forward::queue::register(&conn, name) {
                    tracing::warn!(forward = %name, error = %e, "cannot note the forward in the record");
                }
            }
            if let Some(days) = retention_days {
                match crate::storage::prune(&conn, days) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(sessions = n, days, "pruned sessions past retention"),
                    Err(e) => tracing::warn!(error = %e, "cannot prune the session record"),
                }
            }
            if let Err(e) = crate::upgrade::reopen_after_upgrade(&conn, &path, &room) {
                tracing::warn!(error = %e, "cannot continue the session an upgrade stopped; starting a new one");
            }
            crate::storage::resume_or_start(&conn, &room, &profile)
        })
        .await?;
        let (health_tx, health_rx) = mpsc::unbounded_channel();
        let resumed = match opened {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(error = %e, path = %config.storage_path.display(), "cannot open the session record; monitoring goes on");
                let _ = health_tx.send(crate::storage::Health::Failing(e.to_string()));
                None
            }
        };
        let fatal = Fatal::default();
        let (storage, writer) = crate::storage::Writer {
            path: config.storage_path.clone(),
            session: resumed.as_ref().map(|r| r.session),
            room: config.room.clone(),
            profile: profile_record,
            health: health_tx,
            retry: crate::storage::RETRY,
            fatal: fatal.clone(),
        }
        .start();
        let mut core = Core::new(
            Engine::new(config.profile.clone()),
            clock,
            config.room.clone(),
            handles,
            out.clone(),
            metrics.clone(),
            (storage, health_rx),
        );
        if let Some(r) = resumed.as_ref().filter(|r| r.resumed) {
            let gap = r
                .last_reading_at
                .map(|at| (clock.unix_ms(clock.now()) - at) as f64 / 1000.0);
            tracing::warn!(
                session = r.session,
                alarms = r.alarms.len(),
                trend_points = r.trend.iter().map(|s| s.points.len()).sum::<usize>(),
                seconds_since_last_recorded_reading = gap,
                "resuming a session left open by a crash: readings after the last recorded one were lost"
            );
            core.restore(r);
        }
        // Forwarders read the record on their own connections, beside the core, never on it;
        // the core and /metrics only read their counters.
        let forwards = crate::forward::start_all(
            &config.forwards,
            &config.storage_path,
            &config.room,
            options.forward,
            &cancel,
        );
        metrics.set_forwards(forwards.clone());
        core.set_forwards(forwards);
        // `[central]`: the core feeds the publisher, which never holds the core up.
        // Its progress in the record is read before the core runs, to tell what an earlier run
        // left unpublished from what this one records.
        let central_feed = config.central.as_ref().map(|_| {
            let (feed, receiver) = crate::central::feed(metrics.clone());
            core.feed_central(feed);
            let record = crate::central::RecordProgress::open(&config.storage_path)
                .inspect_err(|e| tracing::error!(error = %e, "cannot read the central station's progress in the session record: what is not published before a restart is lost"))
                .ok();
            (receiver, record)
        });
        let trends = crate::trend::TrendService::new(core.trends(), clock);
        let pulse = core.pulse();
        let (core_handle, core) = core.start(driver_rx, cancel.child_token());
        let core = watch_core(core, fatal.clone());
        let central = match (&config.central, central_feed) {
            (Some(central), Some(feed)) => {
                crate::central::start(
                    central,
                    &config.room,
                    (core_handle.clone(), trends.clone()),
                    metrics.clone(),
                    feed,
                    cancel.child_token(),
                )
                .await
            }
            _ => {
                let none = TaskTracker::new();
                none.close();
                none
            }
        };

        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() && config.tls.is_none() {
            tracing::warn!(%addr, "listening beyond this machine without TLS: tokens and patient data travel in clear text; configure [tls] or put a TLS proxy in front");
        }
        let display_connections = TaskTracker::new();
        let net = Net::new(&config.network);
        let users = crate::reload::Users::new(config.users.clone());
        let app = Arc::new(App {
            users: users.clone(),
            core: core_handle.clone(),
            out: out.clone(),
            metrics: metrics.clone(),
            shutdown: cancel.clone(),
            display_connections: display_connections.clone(),
            started: tokio::time::Instant::now(),
            net: net.clone(),
            trends,
            pulse,
            simulated: options.simulated,
        });
        let server = match &config.tls {
            Some(tls) => {
                let listener = crate::tls::TlsListener::new(
                    listener,
                    tls.clone(),
                    tune,
                    net.gate.clone(),
                    cancel.clone(),
                )?;
                serve(listener, app, cancel.clone())
            }
            None => serve(
                GatedListener::new(listener, net.gate.clone(), tune),
                app,
                cancel.clone(),
            ),
        };
        net.housekeeping(cancel.child_token());
        tracing::info!(%addr, room = %config.room, devices = config.devices.len(), "vigil running");
        Ok(Daemon {
            addr,
            metrics,
            cancel,
            out,
            core_handle,
            writer,
            drivers: device_set.tasks(),
            device_set: Arc::new(Mutex::new(device_set)),
            display_connections,
            core,
            fatal,
            server,
            users,
            central,
        })
    }

    /// The stream every display receives after its snapshot, in-process (for tests and tools).
    pub fn subscribe(&self) -> broadcast::Receiver<crate::core::Published> {
        self.out.subscribe()
    }

    /// The users the display server checks tokens against; a reload replaces them.
    pub fn users(&self) -> crate::reload::Users {
        self.users.clone()
    }

    /// What a configuration reload changes in the running daemon.
    pub fn live(&self) -> crate::reload::Live {
        crate::reload::Live {
            users: self.users.clone(),
            core: self.core_handle.clone(),
            devices: self.device_set.clone(),
        }
    }

    /// The core, for acting in-process as a person would from a display (tests and tools).
    pub fn core(&self) -> crate::core::CoreHandle {
        self.core_handle.clone()
    }

    /// Waits until a part the daemon cannot run without (the core, the record writer) has
    /// died, and says which and why. `vigil run` then exits non-zero so that its service
    /// manager restarts it.
    pub async fn failed(&self) -> String {
        self.fatal.wait().await
    }

    /// Runs until `stop` (SIGTERM, Ctrl-C) or until a part the daemon cannot run without
    /// dies, then shuts down. `Err` says what died: `vigil run` exits non-zero with it, so that
    /// the service manager restarts the daemon and the record resumes the session.
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()>) -> Result<()> {
        let failed = tokio::select! {
            _ = stop => None,
            why = self.failed() => Some(why),
        };
        self.shutdown().await;
        match failed {
            Some(why) => anyhow::bail!("stopped because {why}; restart to resume monitoring"),
            None => Ok(()),
        }
    }

    /// Stops drivers, lets the core publish its final state, closes display connections with a
    /// close frame, and waits (at most [`SHUTDOWN_DEADLINE`]).
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        self.cancel.cancel();
        let wait = async {
            self.display_connections.close();
            self.display_connections.wait().await;
            self.drivers.close();
            self.drivers.wait().await;
            let _ = self.core.await;
            let _ = self.server.await;
            self.central.wait().await;
            // The core has queued the session's end; the writer finishes once every sender of
            // its queue (the core, the display connections) is gone.
            let writer = self.writer;
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        };
        if tokio::time::timeout(SHUTDOWN_DEADLINE, wait).await.is_err() {
            tracing::warn!("shutdown deadline passed; exiting anyway");
        }
    }
}
