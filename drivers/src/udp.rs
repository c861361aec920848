//! The UDP driver, for monitors whose data export runs over the LAN (IntelliVue, port 24105):
//! each datagram is one message. It resolves the host, pumps the format's UDP device session through
//! the same pump as a serial port, and reconnects with backoff when the monitor is unreachable.

use crate::backoff::Backoff;
use crate::events::{Command, DriverEvent, Link};
use crate::report::Reporter;
use crate::serial::{Ended, Io, Pump};
use crate::{DeviceSpec, Transport};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longest reconnect delay.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A conversation that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(10);

/// A monitor on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpSpec {
    /// Its host name or address.
    pub host: String,
    /// Its data-export port (24105 for an IntelliVue).
    pub port: u16,
}

async fn open(spec: &UdpSpec) -> Result<UdpSocket, String> {
    let target = format!("{}:{}", spec.host, spec.port);
    let addr = tokio::net::lookup_host(&target)
        .await
        .map_err(|e| format!("cannot resolve {target}: {e}"))?
        .next()
        .ok_or_else(|| format!("{target} has no address"))?;
    let local = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    socket
        .connect(addr)
        .await
        .map_err(|e| format!("cannot reach {target}: {e}"))?;
    Ok(socket)
}

/// Runs a LAN device until `cancel` fires or the core goes away.
pub async fn run(
    spec: DeviceSpec,
    events: mpsc::Sender<DriverEvent>,
    mut commands: mpsc::Receiver<Command>,
    cancel: CancellationToken,
) {
    let Transport::Udp(udp) = &spec.transport else {
        tracing::error!(device = %spec.id, "UDP driver given another transport");
        return;
    };
    let Some(make_session) = spec.format.udp_session() else {
        tracing::error!(device = %spec.id, format = %spec.format, "format does not run over UDP");
        return;
    };
    let mut reporter = Reporter::new(Arc::from(spec.id.as_str()), events);
    let mut backoff = Backoff::new(MAX_BACKOFF);
    while !cancel.is_cancelled() {
        if reporter.link(Link::Connecting).await.is_err() {
            return;
        }
        let reason = match open(udp).await {
            Err(reason) => reason,
            Ok(socket) => {
                if reporter.link(Link::Connected).await.is_err() {
                    return;
                }
                let started = Instant::now();
                let pump = Pump {
                    format: spec.format,
                    port: Io::Udp(socket),
                    reporter: &mut reporter,
                    commands: &mut commands,
                    cancel: &cancel,
                };
                let ended = pump.run(make_session()).await;
                if started.elapsed() >= STABLE {
                    backoff.reset();
                }
                match ended {
                    Ended::Cancelled | Ended::CoreGone => return,
                    Ended::Lost(reason) => format!("{}:{}: {reason}", udp.host, udp.port),
                }
            }
        };
        if reporter.link(Link::Disconnected { reason }).await.is_err() {
            return;
        }
        let delay = backoff.next_delay();
        if crate::events::wait_refusing_commands(delay, &mut commands, &cancel)
            .await
            .is_err()
        {
            return;
        }
    }
}
