//! `vigil-sim`: simulated bedside monitors that speak the real wire formats.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use vigil_protocol::Format;
use vigil_simulator::hl7::{self, serve_hl7, Hl7Monitor, Hl7Style};
use vigil_simulator::pty::PtyPort;
use vigil_simulator::run::{serve_hex, serve_serial, SimClock};
use vigil_simulator::{device_name, from_device_name, Device, Scenario, SIMULATED};

#[derive(Parser)]
#[command(
    name = "vigil-sim",
    version,
    about = "Simulated bedside monitors for Vigil (simulated data, never a patient)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the scenarios and device kinds.
    List,
    /// Run a scenario on one or more devices for one patient.
    Run {
        /// A built-in scenario name or a scenario TOML file.
        #[arg(long, default_value = "kap-typical")]
        scenario: String,
        /// Device kind; repeat for several devices on the same patient.
        #[arg(long = "device", value_name = "KIND", required = true)]
        devices: Vec<String>,
        /// Noise seed: the same seed gives the same bytes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Scenario seconds per real second (60 runs an hour in a minute).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Where serial devices' pseudo-terminal links are made (default: a new temporary folder).
        #[arg(long, value_name = "DIR")]
        link_dir: Option<PathBuf>,
        /// Publish BLE devices as peripherals on the emulated BlueZ at DBUS_SYSTEM_BUS_ADDRESS
        /// (python3-dbusmock's bluez5 template) instead of printing hex lines.
        #[arg(long)]
        bluez: bool,
        /// Where the `hl7-monitor` device dials Vigil (a device with format = "hl7" and
        /// listen = this address).
        #[arg(long, value_name = "HOST:PORT")]
        hl7_connect: Option<String>,
        /// How the `hl7-monitor` writes its messages.
        #[arg(long, value_enum, default_value = "pcd01")]
        hl7_style: Hl7Style,
    },
    /// Write the man page `vigil-sim.1` into DIR (for packaging).
    #[command(hide = true)]
    Manpages {
        /// Where the page goes.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Manpages { dir } => {
            let cmd = <Cli as clap::CommandFactory>::command().disable_help_subcommand(true);
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("vigil-sim.1"), page)?;
            Ok(())
        }
        Command::List => {
            println!("scenarios:");
            for (name, _) in vigil_simulator::scenario::BUILT_IN {
                let s = Scenario::load(name)?;
                println!("  {name:<18} {}", s.description);
            }
            println!("devices:");
            println!(
                "  {:<14} {:<20} MLLP/TCP, dials --hl7-connect",
                hl7::NAME,
                vigil_protocol::Format::Hl7.name()
            );
            for k in SIMULATED {
                let how = if k.is_ble() {
                    "BLE (hex lines on stdout; in-process for the demo)"
                } else {
                    "serial (pseudo-terminal)"
                };
                println!("  {:<14} {:<20} {how}", device_name(k), k.name());
            }
            Ok(())
        }
        Command::Run {
            scenario,
            devices,
            seed,
            speed,
            link_dir,
            bluez,
            hl7_connect,
            hl7_style,
        } => {
            if !(speed.is_finite() && speed > 0.0) {
                bail!("--speed must be a positive number");
            }
            let scenario = Arc::new(Scenario::load(&scenario)?);
            let hl7_monitors = devices.iter().filter(|d| *d == hl7::NAME).count();
            let hl7 = match (hl7_monitors, hl7_connect) {
                (0, _) => None,
                (_, None) => bail!("--device hl7-monitor needs --hl7-connect HOST:PORT"),
                (n, Some(peer)) => Some((n, peer, hl7_style)),
            };
            let kinds = devices
                .iter()
                .filter(|d| *d != hl7::NAME)
                .map(|d| {
                    from_device_name(d).with_context(|| {
                        format!("unknown device {d:?}; `vigil-sim list` shows them")
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let dir = match link_dir {
                Some(d) => d,
                None => std::env::temp_dir().join(format!("vigil-sim-{}", std::process::id())),
            };
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?
                .block_on(serve(scenario, kinds, hl7, seed, speed, dir, bluez))
        }
    }
}

async fn serve(
    scenario: Arc<Scenario>,
    kinds: Vec<Format>,
    hl7: Option<(usize, String, Hl7Style)>,
    seed: u64,
    speed: f64,
    dir: PathBuf,
    bluez: bool,
) -> Result<()> {
    // Listened for before any port is made: a stop that comes as soon as a path is printed still
    // closes the ports and removes their links, rather than killing the process.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let bus = if bluez {
        Some(std::env::var("DBUS_SYSTEM_BUS_ADDRESS").context(
            "--bluez needs DBUS_SYSTEM_BUS_ADDRESS pointing at a bus where `python3 -m dbusmock --system --template bluez5` runs",
        )?)
    } else {
        None
    };
    let cancel = CancellationToken::new();
    let clock = SimClock::start(speed);
    let end = scenario.duration;
    let ble_count = kinds.iter().filter(|k| k.is_ble()).count();
    let mut tasks = Vec::new();
    let mut stdout = std::io::stdout();
    for (i, kind) in kinds.iter().enumerate() {
        let device = Device::new(*kind, scenario.clone(), seed, i as u64);
        if let (true, Some(bus)) = (kind.is_ble(), &bus) {
            let address = format!("C0:FF:EE:00:01:{i:02X}");
            let name = format!("Vigil Sim {}-{i}", device_name(*kind));
            let peripheral =
                vigil_simulator::bluez::EmulatedPeripheral::start(bus, *kind, &address, &name)
                    .await
                    .context("cannot publish on the emulated BlueZ")?;
            writeln!(stdout, "bluez {address} {name}")?;
            stdout.flush()?;
            let cancel = cancel.clone();
            tasks.push(tokio::spawn(async move {
                vigil_simulator::run::serve_bluez(device, peripheral, clock, end, cancel)
                    .await
                    .map_err(anyhow::Error::from)
            }));
        } else if kind.is_ble() {
            let label = (ble_count > 1).then(|| format!("{}-{i}", device_name(*kind)));
            let cancel = cancel.clone();
            tasks.push(tokio::spawn(async move {
                let mut out = std::io::stdout();
                serve_hex(device, clock, end, cancel, label, &mut out)
                    .await
                    .map_err(anyhow::Error::from)
            }));
        } else {
            let link = dir.join(format!("{}-{i}", device_name(*kind)));
            // The port that will carry the data exists behind its link before the link is
            // printed, so a program may open the printed path at once.
            let port = PtyPort::open(&link).with_context(|| {
                format!("cannot create a pseudo-terminal at {}", link.display())
            })?;
            writeln!(stdout, "{}", link.display())?;
            stdout.flush()?;
            let cancel = cancel.clone();
            tasks.push(tokio::spawn(async move {
                serve_serial(device, port, clock, end, cancel)
                    .await
                    .map_err(anyhow::Error::from)
            }));
        }
    }
    if let Some((n, peer, style)) = hl7 {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        for i in 0..n {
            let stream = (kinds.len() + i) as u64;
            let monitor = Hl7Monitor::new(scenario.clone(), seed, stream, epoch);
            writeln!(stdout, "hl7 {peer} equipment {}", monitor.equipment)?;
            stdout.flush()?;
            let (peer, cancel) = (peer.clone(), cancel.clone());
            tasks.push(tokio::spawn(async move {
                serve_hl7(monitor, style, peer, clock, end, cancel).await;
                Ok(())
            }));
        }
    }
    eprintln!("vigil-sim: scenario {} ({} s at speed {speed}); simulated data, never a patient; Ctrl-C or SIGTERM stops", scenario.name, end);
    let mut all = std::pin::pin!(futures_join(tasks));
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
        r = &mut all => return r,
    }
    // Each device closes its port on the way out, which removes the port's link.
    cancel.cancel();
    all.await
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<Result<()>>>) -> Result<()> {
    for t in tasks {
        t.await??;
    }
    Ok(())
}
