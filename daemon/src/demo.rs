//! `vigil demo`: the daemon with one simulated device of each kind (and an HL7 monitor) and the display, on one
//! command, with no hardware. Everything it shows is simulated data, never a patient.

use crate::config::{ConfigFile, DeviceEntry, Role, StorageFile, UserEntry};
use crate::core::CoreHandle;
use crate::daemon::{Daemon, Options};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use vigil_drivers::ble::memory::MemoryCentral;
use vigil_protocol::display::ClientMessage;
use vigil_protocol::Format;
use vigil_simulator::hl7::{serve_hl7, Hl7Monitor, Hl7Style};
use vigil_simulator::pty::PtyPort;
use vigil_simulator::run::{serve_ble, serve_serial, SimClock};
use vigil_simulator::{Device, Scenario};

/// Arguments of `vigil demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Scenario: a built-in name (`vigil-sim list`) or a scenario file. The default, `demo`,
    /// raises and clears real alarms within its first few minutes.
    #[arg(long, default_value = "demo")]
    pub scenario: String,
    /// Scenario seconds per real second. The vitals' course is compressed; alarm delays are not,
    /// so above 1 brief events may pass without an alarm.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Where the display is served.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Noise seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep the session record here, for `vigil report` and `vigil export` afterwards. By
    /// default it is a temporary file, removed when the demo stops.
    #[arg(long)]
    pub db: Option<PathBuf>,
}

/// The devices of the demo room: id, kind.
pub const DEVICES: [(&str, Format); 4] = [
    ("oximeter-1", Format::Masimo),
    ("cuff-serial", Format::Suntech),
    ("cuff-ble", Format::BleBloodPressure),
    ("hr-strap", Format::BleHeartRate),
];

/// The demo room's HL7 monitor (format hl7, dialling the daemon).
pub const HL7_MONITOR: &str = "hl7-monitor";

/// Who marks the dose when the scenario gives it, if nobody has marked it by then.
pub const SCRIPT: &str = "Demo script";

/// A folder for this demo's links and record, apart from any other demo in this process.
fn demo_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("vigil-demo-{}-{n}", std::process::id()))
}

/// The people of a demo, one token each (the same in every room of `--rooms` and at the
/// central).
#[derive(Debug, Clone)]
pub struct Tokens {
    /// Demo nurse.
    pub nurse: String,
    /// Demo viewer.
    pub viewer: String,
    /// Demo provider.
    pub provider: String,
}

/// What sets one demo room apart from another.
#[derive(Debug, Clone)]
pub struct DemoRoom {
    /// Its name on the display.
    pub name: String,
    /// Where its display is served.
    pub listen: SocketAddr,
    /// Its devices' noise seed.
    pub seed: u64,
    /// Its `[central]`, when it publishes to a central.
    pub central: Option<crate::config::CentralFile>,
}

/// A running demo.
pub struct Demo {
    /// The daemon.
    pub daemon: Daemon,
    /// A nurse's token.
    pub nurse_token: String,
    /// A viewer's token.
    pub viewer_token: String,
    /// The session record.
    pub db: PathBuf,
    /// What the scenario plays, for a person starting the demo.
    pub description: String,
    sims: CancellationToken,
    dir: PathBuf,
}

impl Demo {
    /// Starts simulated devices and the daemon.
    pub async fn start(args: &DemoArgs) -> Result<Demo> {
        let token = || crate::config::new_token().context("no random source for the demo's tokens");
        let tokens = Tokens {
            nurse: token()?,
            viewer: token()?,
            provider: token()?,
        };
        let room = DemoRoom {
            name: "Demo room (simulated)".into(),
            listen: args.listen,
            seed: args.seed,
            central: None,
        };
        Demo::start_room(args, room, tokens).await
    }

    /// Starts one simulated room: its devices and its daemon, for `room` and `tokens`.
    pub async fn start_room(args: &DemoArgs, room: DemoRoom, tokens: Tokens) -> Result<Demo> {
        if !(args.speed.is_finite() && args.speed > 0.0) {
            anyhow::bail!("--speed must be a positive number");
        }
        let scenario = Arc::new(Scenario::load(&args.scenario)?);
        let dir = demo_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let central = MemoryCentral::new();
        let clock = SimClock::start(args.speed);
        let sims = CancellationToken::new();
        let Tokens {
            nurse: nurse_token,
            viewer: viewer_token,
            provider: provider_token,
        } = tokens;
        let db = match &args.db {
            Some(path) => std::path::absolute(path)
                .with_context(|| format!("cannot resolve {}", path.display()))?,
            None => dir.join("demo.db"),
        };
        let user = |name: &str, role, token: &str| UserEntry {
            name: name.into(),
            role,
            token: token.into(),
        };
        let mut config = ConfigFile {
            listen: Some(room.listen),
            room: room.name,
            central: room.central,
            storage: Some(StorageFile {
                path: db.clone(),
                retention_days: None,
            }),
            // Simulated data only: `--listen` on the network (a tablet in the room) needs no [tls].
            allow_plaintext: Some(true),
            users: vec![
                user("Demo nurse", Role::Nurse, &nurse_token),
                user("Demo provider", Role::Provider, &provider_token),
                user("Demo viewer", Role::Viewer, &viewer_token),
            ],
            ..ConfigFile::default()
        };
        for (i, (id, kind)) in DEVICES.iter().enumerate() {
            let device = Device::new(*kind, scenario.clone(), room.seed, i as u64);
            // The demo keeps going after the scenario's end, holding its last values.
            let end = f64::INFINITY;
            if kind.is_ble() {
                let name = format!("Vigil Sim {id}");
                let peripheral =
                    central.add(device.ble_spec(&format!("C0:FF:EE:00:00:{i:02X}"), &name));
                config
                    .devices
                    .push(DeviceEntry::ble_named(id, *kind, &name));
                tokio::spawn(serve_ble(device, peripheral, clock, end, sims.clone()));
            } else {
                let link = dir.join(id);
                // The port exists behind its link before the daemon is told the path.
                let port = PtyPort::open(&link).with_context(|| {
                    format!("cannot create a pseudo-terminal at {}", link.display())
                })?;
                config.devices.push(DeviceEntry::serial(id, *kind, &link));
                let cancel = sims.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_serial(device, port, clock, end, cancel).await {
                        tracing::error!(error = %e, "simulated serial device stopped");
                    }
                });
            }
        }
        // The room's multiparameter monitor: dials the daemon over MLLP on a free local port.
        let hl7_addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("no free local port for the demo's HL7 monitor")?;
        config
            .devices
            .push(DeviceEntry::hl7_listen(HL7_MONITOR, &hl7_addr.to_string()));
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let monitor = Hl7Monitor::new(scenario.clone(), args.seed, DEVICES.len() as u64, epoch);
        tokio::spawn(serve_hl7(
            monitor,
            Hl7Style::Pcd01,
            hl7_addr.to_string(),
            clock,
            f64::INFINITY,
            sims.clone(),
        ));
        let config = config
            .build("demo", &dir)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let options = Options {
            simulated: true,
            ..Options::default()
        };
        let daemon = Daemon::start_with(config, Arc::new(central), options).await?;
        if let Some(dose_at) = scenario.dose_at {
            tokio::spawn(mark_dose(
                daemon.core(),
                clock.instant(dose_at),
                sims.clone(),
            ));
        }
        Ok(Demo {
            daemon,
            nurse_token,
            viewer_token,
            db,
            description: scenario.description.clone(),
            sims,
            dir,
        })
    }

    /// Stops the daemon and the simulated devices.
    pub async fn stop(self) {
        self.daemon.shutdown().await;
        self.sims.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Marks the dose when the scenario gives it, as a nurse would, unless someone marked it first:
/// the post-dose alarms (a BP rise over the baseline) need it.
async fn mark_dose(core: CoreHandle, at: tokio::time::Instant, stop: CancellationToken) {
    tokio::select! {
        _ = stop.cancelled() => return,
        _ = tokio::time::sleep_until(at) => {}
    }
    let mark = ClientMessage::MarkDose { request_id: None };
    if let Err(refused) = core.act(SCRIPT, mark).await {
        // Marked already, most likely by the person trying the demo.
        tracing::info!(reason = %refused.reason, "the demo did not mark the dose");
    }
}
