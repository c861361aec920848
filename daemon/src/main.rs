//! `vigil`: the daemon and its field tools.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vigil_daemon::config::{CentralConfig, Config, LogFormat};
use vigil_daemon::field;

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Vitals monitoring for ketamine-assisted therapy rooms"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: devices, alarms, and the display at the configured address.
    Run {
        /// The configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run the central station: every room of a site on one page, read from NATS.
    Central {
        /// The central's configuration file (`listen`, `site`, `[nats]`, `[[user]]`, ...).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run a whole session with simulated devices and the display: no hardware needed.
    Demo(DemoCommand),
    /// List the sessions in a session record.
    Sessions {
        /// The database (the config's `[storage] path`).
        #[arg(long, value_name = "PATH")]
        db: PathBuf,
    },
    /// Export one session: CSV (a row per reading), HL7 v2.6 (IHE PCD-01 and PCD-04) or JSON lines.
    Export {
        /// The database.
        #[arg(long, value_name = "PATH")]
        db: PathBuf,
        /// Session number (`vigil sessions` lists them).
        #[arg(long, value_name = "ID")]
        session: i64,
        /// Output format.
        #[arg(long, value_enum)]
        format: ExportFormat,
    },
    /// The summary of one session a provider signs.
    Report {
        /// The database.
        #[arg(long, value_name = "PATH")]
        db: PathBuf,
        /// Session number.
        #[arg(long, value_name = "ID")]
        session: i64,
    },
    /// Delete sessions that ended longer ago than the retention period.
    Prune {
        /// Take the database and `retention_days` from this configuration.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["db", "days"])]
        config: Option<PathBuf>,
        /// The database.
        #[arg(long, value_name = "PATH", requires = "days")]
        db: Option<PathBuf>,
        /// Keep sessions that ended within this many days.
        #[arg(long, value_name = "N")]
        days: Option<u32>,
    },
    /// Check a configuration file and list every problem with its location. A file with a
    /// top-level `[nats]` table is checked as a central's configuration, any other as a room's.
    CheckConfig {
        /// The configuration file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Also print the effective alarm profile, each value with its source (default,
        /// clinic, patient).
        #[arg(long)]
        profile: bool,
    },
    /// Print a fresh random token for a `[[user]]` of the configuration.
    Token,
    /// Copy the session record to a new file, consistently, while the daemon runs.
    Backup {
        /// The database (the config's `[storage] path`).
        #[arg(long, value_name = "PATH")]
        db: PathBuf,
        /// The new file (never overwritten).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Put a backup in place of the session record; refused while the daemon runs.
    Restore {
        /// The backup (`vigil backup --to FILE`).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The database to replace (the config's `[storage] path`).
        #[arg(long, value_name = "PATH")]
        db: PathBuf,
    },
    /// Write a man page per command into DIR (for packaging).
    #[command(hide = true)]
    Manpages {
        /// Where the pages go.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Decode a device capture and print readings, events and errors as JSON lines.
    Decode(field::decode::DecodeArgs),
    /// Open one device as the daemon would and print what it sends as JSON lines.
    Probe(field::probe::ProbeArgs),
}

/// `vigil demo`: one room, or with `--rooms N` a whole site with its central.
#[derive(clap::Args)]
struct DemoCommand {
    #[command(flatten)]
    args: vigil_daemon::demo::DemoArgs,
    /// Run N simulated rooms and the central station (at `--listen`), through a private
    /// `nats-server -js` started from the PATH or /usr/sbin.
    #[arg(long, value_name = "N")]
    rooms: Option<usize>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Csv,
    Hl7,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<()> = match &cli.command {
        Command::Run { config } => run(config),
        Command::Central { config } => central(config),
        Command::Sessions { db } => sessions(db),
        Command::Export {
            db,
            session,
            format,
        } => export(db, *session, *format),
        Command::Report { db, session } => report(db, *session),
        Command::Prune { config, db, days } => prune(config.as_deref(), db.as_deref(), *days),
        Command::Demo(DemoCommand {
            args,
            rooms: Some(rooms),
        }) => site_demo(args, *rooms),
        Command::Demo(DemoCommand { args, rooms: None }) => demo(args),
        Command::CheckConfig { file, profile } => check_config(file, *profile),
        Command::Token => token(),
        Command::Backup { db, to } => vigil_daemon::backup::backup(db, to)
            .map(|n| {
                println!(
                    "backed up {} ({n} session(s)) to {}",
                    db.display(),
                    to.display()
                )
            })
            .map_err(Into::into),
        Command::Restore { from, db } => vigil_daemon::backup::restore(from, db)
            .map(|n| {
                println!(
                    "restored {} ({n} session(s)) to {}",
                    from.display(),
                    db.display()
                )
            })
            .map_err(Into::into),
        Command::Manpages { dir } => {
            vigil_daemon::manpages::write(<Cli as clap::CommandFactory>::command(), dir)
        }
        Command::Decode(args) => field::decode::run(args, &mut io::stdout().lock()),
        Command::Probe(args) => probe(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `vigil decode … | head` closes the pipe early; that is not an error worth a message.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line with its causes, whatever RUST_BACKTRACE says.
            eprintln!("vigil: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn token() -> Result<()> {
    let token = vigil_daemon::config::new_token()
        .map_err(|e| anyhow::anyhow!("no random source for a token: {e}"))?;
    println!("{token}");
    Ok(())
}

fn check_config(file: &Path, profile: bool) -> Result<()> {
    if std::fs::read_to_string(file).is_ok_and(|text| vigil_daemon::config::is_central(&text)) {
        let config = CentralConfig::load(file).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "{}: OK: central for site {:?}, durable consumer {:?}, {} NATS server(s), {} user(s)",
            file.display(),
            config.site,
            config.consumer(),
            config.nats.nats.urls().len(),
            config.users.len()
        );
        return Ok(());
    }
    let config = Config::load(file).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "{}: OK: room {:?}, {} device(s), {} user(s), alarm profile {:?} with {} rule(s)",
        file.display(),
        config.room,
        config.devices.len(),
        config.users.len(),
        config.profile.name,
        config.profile.rules.len()
    );
    match &config.central {
        Some(c) => println!(
            "  publishes to the central station: site {:?}, room_id {:?}, NATS {}",
            c.site,
            c.room_id,
            c.connection.nats.urls().join(", ")
        ),
        None => println!("  no [central]: the room runs alone"),
    }
    if profile {
        print!(
            "{}",
            vigil_daemon::config::effective_profile(&config.profile)
        );
    }
    Ok(())
}

fn open_record(db: &Path) -> Result<rusqlite::Connection> {
    if !db.exists() {
        anyhow::bail!("no session record at {}", db.display());
    }
    let conn = vigil_daemon::storage::open_read_only(db)
        .map_err(|e| anyhow::anyhow!("cannot open the session record {}: {e}", db.display()))?;
    // A file that is not a session record should say so, not fail later with SQLite's words.
    conn.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get::<_, i64>(0))
        .map_err(|e| anyhow::anyhow!("{} is not a Vigil session record ({e})", db.display()))?;
    Ok(conn)
}

fn sessions(db: &Path) -> Result<()> {
    let conn = open_record(db)?;
    let list = vigil_daemon::storage::sessions(&conn)?;
    println!(
        "{:>5}  {:<24} {:<24} {:<24} {:<24} {:>9} {:>7}",
        "id", "room", "started", "dose", "ended", "readings", "alarms"
    );
    for s in list {
        println!(
            "{:>5}  {:<24} {:<24} {:<24} {:<24} {:>9} {:>7}",
            s.id,
            s.room,
            s.started,
            s.dose.unwrap_or_else(|| "-".into()),
            s.ended.unwrap_or_else(|| "open".into()),
            s.readings,
            s.alarms
        );
    }
    Ok(())
}

fn export(db: &Path, session: i64, format: ExportFormat) -> Result<()> {
    let conn = open_record(db)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    match format {
        ExportFormat::Csv => vigil_daemon::review::export_csv(&conn, session, &mut out)?,
        ExportFormat::Hl7 => vigil_daemon::review::export_hl7(&conn, session, &mut out)?,
        ExportFormat::Json => vigil_daemon::review::export_jsonl(&conn, session, &mut out)?,
    }
    use std::io::Write as _;
    out.flush()?;
    Ok(())
}

fn report(db: &Path, session: i64) -> Result<()> {
    let conn = open_record(db)?;
    print!("{}", vigil_daemon::review::report(&conn, session)?);
    Ok(())
}

fn prune(config: Option<&Path>, db: Option<&Path>, days: Option<u32>) -> Result<()> {
    let (db, days) = match (config, db, days) {
        (Some(file), _, _) => {
            let config = Config::load(file).map_err(|e| anyhow::anyhow!("{e}"))?;
            let days = config.retention_days.ok_or_else(|| {
                anyhow::anyhow!("{} sets no [storage] retention_days", file.display())
            })?;
            (config.storage_path, days)
        }
        (None, Some(db), Some(days)) => (db.to_path_buf(), days),
        _ => anyhow::bail!("give --config FILE, or --db PATH --days N"),
    };
    let conn = vigil_daemon::storage::open(&db)
        .map_err(|e| anyhow::anyhow!("cannot open the session record {}: {e}", db.display()))?;
    let n = vigil_daemon::storage::prune(&conn, days)?;
    println!("pruned {n} session(s) that ended more than {days} day(s) ago");
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
}

fn run(path: &Path) -> Result<()> {
    let config = Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    init_logging(config.log_format);
    log_panics();
    runtime()?.block_on(async {
        let stop = stop_signal()?;
        let hangups = vigil_daemon::reload::listen()?;
        let daemon =
            vigil_daemon::daemon::Daemon::start(config.clone(), field::probe::system_central())
                .await?;
        let reloader =
            vigil_daemon::reload::Reloader::new(path.to_path_buf(), config, daemon.live());
        vigil_daemon::reload::serve(hangups, reloader);
        println!("vigil: display at http://{}/", daemon.addr);
        // Under systemd (`Type=notify`): ready now; the core's loop feeds the watchdog.
        vigil_daemon::supervise::notify_ready();
        // A dead core or record writer ends it with an error: a non-zero exit status.
        daemon.run_until(stop).await
    })
}

fn central(path: &Path) -> Result<()> {
    let config = CentralConfig::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    init_logging(config.log_format);
    log_panics();
    runtime()?.block_on(async {
        let stop = stop_signal()?;
        let central = vigil_daemon::station::Central::start(config).await?;
        println!("vigil central: overview at http://{}/", central.addr);
        // Under systemd (`Type=notify`): ready once the page is served; the heartbeat task
        // feeds the watchdog.
        vigil_daemon::supervise::notify_ready();
        stop.await;
        central.stop().await;
        Ok(())
    })
}

/// Panics are logged like any other failure (then handled where they happen: fatal for the
/// core and the record writer, a restart for a driver).
fn log_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            panic = %info,
            "panic"
        );
        default(info);
    }));
}

fn demo(args: &vigil_daemon::demo::DemoArgs) -> Result<()> {
    init_logging(LogFormat::Human);
    runtime()?.block_on(async {
        let stop = stop_signal()?;
        let demo = vigil_daemon::demo::Demo::start(args).await?;
        let addr = demo.daemon.addr;
        println!("Vigil demo: SIMULATED DATA, never a patient");
        println!(
            "  display (nurse):  http://{addr}/?token={}",
            demo.nurse_token
        );
        println!(
            "  display (viewer): http://{addr}/?token={}",
            demo.viewer_token
        );
        println!("  nurse token:  {}", demo.nurse_token);
        println!("  viewer token: {}", demo.viewer_token);
        println!(
            "  scenario {} at speed {}: {}",
            args.scenario, args.speed, demo.description
        );
        println!("  Ctrl-C stops");
        if args.db.is_some() {
            println!(
                "  session record: {} (then `vigil sessions --db {}`, `vigil report ...`)",
                demo.db.display(),
                demo.db.display()
            );
        }
        use std::io::Write as _;
        let _ = io::stdout().flush();
        stop.await;
        demo.stop().await;
        Ok(())
    })
}

fn site_demo(args: &vigil_daemon::demo::DemoArgs, rooms: usize) -> Result<()> {
    init_logging(LogFormat::Human);
    runtime()?.block_on(async {
        let stop = stop_signal()?;
        let site = vigil_daemon::station::demo::SiteDemo::start(args, rooms).await?;
        let t = &site.tokens;
        println!("Vigil demo: {rooms} rooms and the central, SIMULATED DATA, never a patient");
        println!(
            "  central (provider): http://{}/?token={}",
            site.central.addr, t.provider
        );
        println!(
            "  central (viewer):   http://{}/?token={}",
            site.central.addr, t.viewer
        );
        for (n, room) in site.rooms.iter().enumerate() {
            println!(
                "  room {} (nurse):    http://{}/?token={}",
                n + 1,
                room.daemon.addr,
                t.nurse
            );
        }
        println!(
            "  nats-server: {} (site {:?})",
            site.nats_url,
            vigil_daemon::station::demo::SITE
        );
        println!("  Ctrl-C stops");
        use std::io::Write as _;
        let _ = io::stdout().flush();
        stop.await;
        site.stop().await;
        Ok(())
    })
}

/// SIGTERM (service managers) or Ctrl-C (a person), listened for from the moment this is called
/// (inside the runtime): a stop that arrives while the daemon is still starting is kept, not
/// left to the default action that would kill it without closing the session.
#[cfg(unix)]
fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn probe(args: &field::probe::ProbeArgs) -> Result<()> {
    let got_readings = runtime()?.block_on(field::probe::run(
        args,
        field::probe::system_central(),
        &mut io::stdout().lock(),
    ))?;
    if !got_readings {
        anyhow::bail!("no readings arrived (see the link lines above for why)");
    }
    Ok(())
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
