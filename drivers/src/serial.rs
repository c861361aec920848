//! The serial driver: opens the port with the format's line settings, decodes what arrives,
//! speaks to devices that need it, watches for silence, and reconnects on its own.

use crate::backoff::Backoff;
use crate::events::{Command, CommandError, DriverEvent, Link};
use crate::report::{now, CoreGone, Reporter};
use crate::{usb, DeviceSpec, PortSelector, SerialSpec, Transport};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{interval, sleep_until, timeout, Instant, MissedTickBehavior};
use tokio_serial::{DataBits, Parity, SerialPortBuilderExt, SerialStream, StopBits};
use tokio_util::sync::CancellationToken;
use vigil_protocol::format::Decoded;
use vigil_protocol::serial::LineSettings;
use vigil_protocol::{DeviceEvent, DeviceSession, Format, Observation};

/// Longest reconnect delay.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long the goodbye on shutdown may take to write.
const SHUTDOWN_WRITE: Duration = Duration::from_millis(500);
/// A connection that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(10);

/// Where to look for USB cables (sysfs and /dev); tests point these at a fake tree.
#[derive(Debug, Clone)]
pub struct SystemPaths {
    /// Normally `/sys`.
    pub sysfs: PathBuf,
    /// Normally `/dev`.
    pub dev: PathBuf,
}

impl Default for SystemPaths {
    fn default() -> Self {
        SystemPaths {
            sysfs: "/sys".into(),
            dev: "/dev".into(),
        }
    }
}

/// Runs a serial device until `cancel` fires or the core goes away.
pub async fn run(
    spec: DeviceSpec,
    events: mpsc::Sender<DriverEvent>,
    mut commands: mpsc::Receiver<Command>,
    cancel: CancellationToken,
    paths: SystemPaths,
) {
    let Transport::Serial(serial) = &spec.transport else {
        tracing::error!(device = %spec.id, "serial driver given a BLE device");
        return;
    };
    let mut reporter = Reporter::new(Arc::from(spec.id.as_str()), events);
    let mut backoff = Backoff::new(MAX_BACKOFF);
    while !cancel.is_cancelled() {
        if reporter.link(Link::Connecting).await.is_err() {
            return;
        }
        let reason = match open(serial, &paths) {
            Err(reason) => reason,
            Ok((port, path)) => {
                if reporter.link(Link::Connected).await.is_err() {
                    return;
                }
                let started = Instant::now();
                let pump = Pump {
                    format: spec.format,
                    port: Io::Serial(port),
                    reporter: &mut reporter,
                    commands: &mut commands,
                    cancel: &cancel,
                };
                let ended = pump.run(spec.format.session()).await;
                if started.elapsed() >= STABLE {
                    backoff.reset();
                }
                match ended {
                    Ended::Cancelled | Ended::CoreGone => return,
                    Ended::Lost(reason) => format!("{}: {reason}", path.display()),
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

fn open(spec: &SerialSpec, paths: &SystemPaths) -> Result<(SerialStream, PathBuf), String> {
    let path = match &spec.port {
        PortSelector::Path(p) => p.clone(),
        PortSelector::Usb(id) => usb::find_tty(id, &paths.sysfs, &paths.dev)
            .ok_or_else(|| format!("no USB serial device {id} is plugged in"))?,
    };
    open_path(&path, spec.line).map(|port| (port, path))
}

/// Opens a port. Pseudo-terminals accept the settings and ignore parity and speed, which is fine.
pub fn open_path(path: &Path, line: LineSettings) -> Result<SerialStream, String> {
    let data_bits = match line.data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let parity = match line.parity {
        vigil_protocol::serial::Parity::None => Parity::None,
        vigil_protocol::serial::Parity::Odd => Parity::Odd,
        vigil_protocol::serial::Parity::Even => Parity::Even,
    };
    let stop_bits = if line.stop_bits == 2 {
        StopBits::Two
    } else {
        StopBits::One
    };
    tokio_serial::new(path.to_string_lossy(), line.baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

pub(crate) enum Ended {
    Cancelled,
    CoreGone,
    Lost(String),
}

impl From<CoreGone> for Ended {
    fn from(_: CoreGone) -> Self {
        Ended::CoreGone
    }
}

/// What the pump last showed of a connected port's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    /// Connected, data flowing.
    Connected,
    /// Silent for longer than the format's limit.
    NoData,
    /// The device session reported the device not responding (shown disconnected).
    NotResponding,
}

/// What a pump's bytes travel over: a serial stream (any split), or UDP datagrams (one
/// message each, the IntelliVue LAN variant).
pub(crate) enum Io {
    Serial(SerialStream),
    Udp(tokio::net::UdpSocket),
}

impl Io {
    /// The next chunk (serial) or datagram (UDP); 0 only at a serial end-of-file.
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Io::Serial(port) => port.read(buf).await,
            Io::Udp(socket) => loop {
                // An empty datagram carries nothing; it is not an end of file.
                let n = socket.recv(buf).await?;
                if n > 0 {
                    return Ok(n);
                }
            },
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Io::Serial(port) => port.write_all(bytes).await,
            Io::Udp(socket) => socket.send(bytes).await.map(drop),
        }
    }
}

/// One connection's pump; the UDP driver uses it too.
pub(crate) struct Pump<'a> {
    pub(crate) format: Format,
    pub(crate) port: Io,
    pub(crate) reporter: &'a mut Reporter,
    pub(crate) commands: &'a mut mpsc::Receiver<Command>,
    pub(crate) cancel: &'a CancellationToken,
}

impl Pump<'_> {
    /// Pumps `device` until the connection is lost or cancelled.
    pub(crate) async fn run(mut self, device: Box<dyn DeviceSession>) -> Ended {
        match self.serve(device).await {
            Ok(()) => Ended::Cancelled,
            Err(e) => e,
        }
    }

    /// Writes everything the device session has queued.
    async fn transmit(&mut self, device: &mut dyn DeviceSession) -> Result<(), Ended> {
        while let Some(bytes) = device.poll_transmit() {
            self.port
                .write(&bytes)
                .await
                .map_err(|e| Ended::Lost(format!("write failed: {e}")))?;
        }
        Ok(())
    }

    /// Hands what the device session produced to the core, and shows what it says of the link:
    /// a device session that reports the device not responding shows it disconnected with the reason,
    /// until readings flow again.
    async fn report(
        &mut self,
        device: &mut dyn DeviceSession,
        decoded: &mut Vec<Decoded>,
        shown: &mut Shown,
    ) -> Result<(), Ended> {
        decoded.extend(std::iter::from_fn(|| device.poll_output()));
        let readings = decoded
            .iter()
            .any(|d| matches!(d, Ok(Observation::Reading(_))));
        if readings && *shown == Shown::NotResponding {
            // Connected first, so the core takes the readings from a connected device.
            *shown = Shown::Connected;
            self.reporter.link(Link::Connected).await?;
        }
        for event in self.reporter.decoded(decoded).await? {
            if let DeviceEvent::NotResponding { reason } = event {
                *shown = Shown::NotResponding;
                self.reporter.link(Link::Disconnected { reason }).await?;
            }
        }
        Ok(())
    }

    /// The pump: bytes read go to the device session, its bytes are written, its timer is
    /// kept, commands are handed to it; silence and decoding errors are watched here.
    async fn serve(&mut self, mut device: Box<dyn DeviceSession>) -> Result<(), Ended> {
        device.handle_connected(now());
        self.transmit(device.as_mut()).await?;
        let mut decoded = Vec::new();
        let mut buf = vec![0u8; 4096];
        let mut second = interval(Duration::from_secs(1));
        second.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let silence = self.format.silence_limit();
        let mut last_data = Instant::now();
        let mut shown = Shown::Connected;
        loop {
            let timer = device.poll_timeout().map(Instant::from_std);
            tokio::select! {
                _ = self.cancel.cancelled() => {
                    // Say goodbye (an IntelliVue release), but never let a stuck port hold up
                    // the shutdown.
                    device.handle_shutdown(now());
                    let _ = timeout(SHUTDOWN_WRITE, self.transmit(device.as_mut())).await;
                    return Ok(());
                }
                read = self.port.read(&mut buf) => {
                    let n = match read {
                        // An unplugged USB-serial port or a closed pty reads end-of-file.
                        Ok(0) => return Err(Ended::Lost("end of file: cable unplugged or device closed".into())),
                        Ok(n) => n,
                        Err(e) => return Err(Ended::Lost(format!("read failed: {e}"))),
                    };
                    last_data = Instant::now();
                    if shown == Shown::NoData {
                        shown = Shown::Connected;
                        self.reporter.link(Link::Connected).await?;
                    }
                    device.handle_input(&buf[..n], now());
                    self.report(device.as_mut(), &mut decoded, &mut shown).await?;
                }
                _ = sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => {
                    device.handle_timeout(now());
                    self.report(device.as_mut(), &mut decoded, &mut shown).await?;
                }
                Some(command) = self.commands.recv() => {
                    let (command, reply) = command.into_parts();
                    let answer = device
                        .handle_command(command, now())
                        .map_err(|refusal| CommandError::refused(command, refusal));
                    let _ = reply.send(answer);
                }
                _ = second.tick() => {
                    self.reporter.flush_errors(true).await?;
                    let quiet = last_data.elapsed();
                    if let Some(limit) = silence {
                        // A device session that already said why the device is not answering keeps
                        // its reason on the display.
                        if quiet >= limit && shown == Shown::Connected {
                            shown = Shown::NoData;
                            self.reporter.link(Link::NoData { seconds: quiet.as_secs() }).await?;
                        }
                    }
                }
            }
            self.transmit(device.as_mut()).await?;
        }
    }
}
