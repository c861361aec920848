//! HL7 monitors over MLLP/TCP: `listen` accepts connections from monitors or their gateway
//! (several devices may share one address, each picking its messages by `match`), `connect`
//! dials a monitor that serves and reconnects with the usual backoff. Either may run over TLS
//! ([`Hl7Tls`]). Every message is acknowledged; a connection that drops shows as the device's
//! link.

mod gateway;
mod tls;

pub use gateway::{unmatched_total, MAX_CONNECTIONS};
use tls::Stream;
pub use tls::{server_name, Hl7Tls, HANDSHAKE_DEADLINE};

use crate::backoff::Backoff;
use crate::events::{Command, CommandError, DriverEvent, Link};
use crate::report::{CoreGone as HubGone, Reporter};
use crate::{DeviceSpec, Transport};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{interval, timeout, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use vigil_protocol::device::{CommandRefusal, DeviceSession};
use vigil_protocol::format::Decoded;
use vigil_protocol::hl7::{CodeTable, Hl7Session, Match};
use vigil_protocol::Format;

/// Longest reconnect delay.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A connection that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(10);
/// How long a dial or an ACK write may take.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a frame may take from its first byte to its end (a slow-loris peer is cut off).
pub const FRAME_DEADLINE: Duration = Duration::from_secs(10);
/// A connection with no bytes for this long is closed (monitors send every few seconds).
pub const IDLE_LIMIT: Duration = Duration::from_secs(300);

/// An HL7 device: where its messages come from, which are its, and how to read their codes.
#[derive(Debug, Clone, PartialEq)]
pub struct Hl7Spec {
    /// Listen or dial.
    pub endpoint: Endpoint,
    /// Which messages on the connection are this device's.
    pub matcher: Match,
    /// The built-in MDC codes and the device's vendor table.
    pub table: CodeTable,
    /// `tls`: TLS on the link (a certificate to present on `listen`, a CA to check the
    /// monitor's against on `connect`); `None` for plain TCP.
    pub tls: Option<Hl7Tls>,
}

/// Which side opens the TCP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `listen = "ADDR:PORT"`: the monitor or gateway dials Vigil.
    Listen(SocketAddr),
    /// `connect = "HOST:PORT"`: Vigil dials a monitor that serves.
    Connect(String),
}

/// Runs an HL7 device until `cancel` fires or the hub goes away.
pub async fn run(
    spec: DeviceSpec,
    events: mpsc::Sender<DriverEvent>,
    mut commands: mpsc::Receiver<Command>,
    cancel: CancellationToken,
) {
    let Transport::Hl7(hl7) = &spec.transport else {
        tracing::error!(device = %spec.id, "HL7 driver given a device of another transport");
        return;
    };
    let mut reporter = Reporter::new(Arc::from(spec.id.as_str()), events);
    let _ = match &hl7.endpoint {
        Endpoint::Listen(addr) => {
            gateway::run_device(&spec.id, *addr, hl7, &mut reporter, &mut commands, &cancel).await
        }
        Endpoint::Connect(peer) => {
            run_connect(peer, hl7, &mut reporter, &mut commands, &cancel).await
        }
    };
}

/// Why a connection ended.
enum Ended {
    Cancelled,
    HubGone,
    Lost(String),
}

impl From<HubGone> for Ended {
    fn from(_: HubGone) -> Self {
        Ended::HubGone
    }
}

/// Writes one ACK and flushes it (a TLS stream holds bytes until flushed), within
/// [`IO_TIMEOUT`].
async fn write_ack(stream: &mut Box<dyn Stream>, ack: &[u8]) -> Result<(), ()> {
    let write = async {
        stream.write_all(ack).await?;
        stream.flush().await
    };
    match timeout(IO_TIMEOUT, write).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// An HL7 monitor takes no commands from the room: each is refused in its own terms.
fn refuse(command: Command) {
    let (asked, reply) = command.into_parts();
    let _ = reply.send(Err(CommandError::refused(
        asked,
        CommandRefusal::NotSupported,
    )));
}

async fn run_connect(
    peer: &str,
    spec: &Hl7Spec,
    reporter: &mut Reporter,
    commands: &mut mpsc::Receiver<Command>,
    cancel: &CancellationToken,
) -> Result<(), HubGone> {
    let mut backoff = Backoff::new(MAX_BACKOFF);
    // One session for every connection: a backlog the monitor re-sends after a reconnect is
    // older than the newest message already read, so a replay (W3).
    let mut session = Hl7Session::new(spec.table.clone(), spec.matcher.clone());
    while !cancel.is_cancelled() {
        reporter.link(Link::Connecting).await?;
        let reason = match dial(peer, spec.tls.as_ref()).await {
            Err(reason) => format!("{peer}: {reason}"),
            Ok(stream) => {
                reporter.link(Link::Connected).await?;
                let started = Instant::now();
                session.reconnected();
                let ended = serve(stream, &mut session, reporter, commands, cancel).await;
                if started.elapsed() >= STABLE {
                    backoff.reset();
                }
                match ended {
                    Ended::Cancelled => return Ok(()),
                    Ended::HubGone => return Err(HubGone),
                    Ended::Lost(reason) => format!("{peer}: {reason}"),
                }
            }
        };
        reporter.link(Link::Disconnected { reason }).await?;
        let delay = backoff.next_delay();
        if crate::events::wait_refusing_commands(delay, commands, cancel)
            .await
            .is_err()
        {
            return Ok(());
        }
    }
    Ok(())
}

/// Opens the TCP connection to `peer` and, with `tls`, runs the handshake (each bounded).
async fn dial(peer: &str, tls: Option<&Hl7Tls>) -> Result<Box<dyn Stream>, String> {
    let tcp = match timeout(IO_TIMEOUT, TcpStream::connect(peer)).await {
        Err(_) => return Err(format!("no answer within {}s", IO_TIMEOUT.as_secs())),
        Ok(Err(e)) => return Err(format!("cannot connect: {e}")),
        Ok(Ok(tcp)) => tcp,
    };
    match tls {
        None => Ok(Box::new(tcp)),
        Some(tls) => {
            let host = peer.rsplit_once(':').map_or(peer, |(host, _)| host);
            tls.connect(host, tcp).await
        }
    }
}

/// One dialled connection: read, acknowledge, report; watch for silence and stalled frames.
async fn serve(
    mut stream: Box<dyn Stream>,
    session: &mut Hl7Session,
    reporter: &mut Reporter,
    commands: &mut mpsc::Receiver<Command>,
    cancel: &CancellationToken,
) -> Ended {
    let mut buf = vec![0u8; 16 * 1024];
    let mut decoded: Vec<Decoded> = Vec::new();
    let mut second = interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let silence = Format::Hl7.silence_limit();
    let mut last_data = Instant::now();
    let mut frame_started = Instant::now();
    let mut silent = false;
    let mut replay_log = crate::tally::Tally::default();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ended::Cancelled,
            read = stream.read(&mut buf) => {
                let n = match read {
                    Ok(0) => return Ended::Lost("the monitor closed the connection".into()),
                    Ok(n) => n,
                    Err(e) => return Ended::Lost(format!("read failed: {e}")),
                };
                let now = Instant::now();
                if session.pending_frame_bytes() == 0 {
                    frame_started = now;
                }
                let replays = session.replays();
                session.feed_live(&buf[..n], now.into_std());
                if session.replays() > replays {
                    if let Some(count) = replay_log.note(now) {
                        tracing::warn!(device = %reporter.device(), count, "HL7 messages older than the device's newest: read as replays (stored)");
                    }
                }
                while let Some(ack) = session.poll_transmit() {
                    if write_ack(&mut stream, &ack).await.is_err() {
                        return Ended::Lost("cannot write the ACK".into());
                    }
                }
                decoded.extend(std::iter::from_fn(|| session.poll_output()));
                if decoded.iter().any(Result::is_ok) {
                    last_data = now;
                    if silent {
                        silent = false;
                        if reporter.link(Link::Connected).await.is_err() {
                            return Ended::HubGone;
                        }
                    }
                }
                if let Err(e) = reporter.decoded(&mut decoded).await {
                    return e.into();
                }
            }
            Some(command) = commands.recv() => refuse(command),
            _ = second.tick() => {
                if reporter.flush_errors(true).await.is_err() {
                    return Ended::HubGone;
                }
                if session.pending_frame_bytes() > 0 && frame_started.elapsed() >= FRAME_DEADLINE {
                    return Ended::Lost(format!(
                        "a message did not complete within {}s",
                        FRAME_DEADLINE.as_secs()
                    ));
                }
                let quiet = last_data.elapsed();
                if silence.is_some_and(|limit| quiet >= limit) && !silent {
                    silent = true;
                    if reporter.link(Link::NoData { seconds: quiet.as_secs() }).await.is_err() {
                        return Ended::HubGone;
                    }
                }
            }
        }
    }
}
