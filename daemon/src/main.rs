//! `vigil`: the daemon and its field tools.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::io;
use std::process::ExitCode;
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
    /// Decode a device capture and print readings, events and errors as JSON lines.
    Decode(field::decode::DecodeArgs),
    /// Open one device as the daemon would and print what it sends as JSON lines.
    Probe(field::probe::ProbeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<()> = match &cli.command {
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
