//! Moving a simulated device's bytes: over a pseudo-terminal (serial formats), through the
//! in-process BLE central, or as hex lines for `vigil decode`. Scenario time runs `speed` times
//! faster than tokio time, so tests under a paused clock run whole sessions in moments.

use crate::devices::{Device, Output};
use crate::pty::PtyPort;
use std::io::Write;
use std::time::Duration;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use vigil_drivers::ble::memory::SimPeripheral;

/// Scenario time against tokio time.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    start: Instant,
    speed: f64,
}

impl SimClock {
    /// Scenario second 0 is now; `speed` scenario seconds pass per real second.
    pub fn start(speed: f64) -> SimClock {
        SimClock {
            start: Instant::now(),
            speed: speed.max(1e-3),
        }
    }

    /// Scenario seconds now.
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * self.speed
    }

    /// The tokio instant of scenario second `t`.
    pub fn instant(&self, t: f64) -> Instant {
        self.start + Duration::from_secs_f64((t / self.speed).max(0.0))
    }
}

/// Serves a serial device on `port` until the scenario ends or `cancel` fires. An unplug fault
/// closes the port (the host reads end-of-file and its link goes, as an unplugged cable's device
/// does) and opens a new one behind the same link when it ends, as a replugged cable does.
pub async fn serve_serial(
    mut device: Device,
    port: PtyPort,
    clock: SimClock,
    end: f64,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let period = crate::devices::period(device.kind);
    let link = port.link().to_path_buf();
    let mut next = 0.0;
    let mut port = Some(port);
    let mut buf = [0u8; 512];
    while next <= end {
        let plugged_in = !device.unplugged(next);
        match (&port, plugged_in) {
            (Some(_), false) => port = None,
            (None, true) => port = Some(PtyPort::open(&link)?),
            _ => {}
        }
        let Some(port) = port.as_mut() else {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = sleep_until(clock.instant(next)) => {}
            }
            next += period;
            continue;
        };
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = sleep_until(clock.instant(next)) => {
                // Catch up on every tick that is due (fast formats at high speed).
                let now = clock.now();
                let mut bytes = Vec::new();
                while next <= now.min(end) {
                    for o in device.tick(next) {
                        if let Output::Serial(b) = o {
                            bytes.extend(b);
                        }
                    }
                    next += period;
                }
                port.send(&bytes).await;
            }
            // Waits until a host writes: the port's host side is held open, so this never spins.
            read = port.recv(&mut buf) => {
                let n = read?;
                if n == 0 {
                    // Never expected while the host side is held open; ending beats spinning.
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the pseudo-terminal closed",
                    ));
                }
                for o in device.host_bytes(clock.now(), &buf[..n]) {
                    if let Output::Serial(b) = o {
                        port.send(&b).await;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Serves a BLE device through an in-process peripheral. An unplug fault takes it out of range.
pub async fn serve_ble(
    mut device: Device,
    peripheral: SimPeripheral,
    clock: SimClock,
    end: f64,
    cancel: CancellationToken,
) {
    let period = crate::devices::period(device.kind);
    let mut next = 0.0;
    while next <= end {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = sleep_until(clock.instant(next)) => {}
        }
        let in_range = !device.unplugged(next);
        peripheral.set_in_range(in_range);
        let outputs = device.tick(next);
        if in_range {
            for o in outputs {
                if let Output::Ble { uuid, value } = o {
                    peripheral.notify(uuid, &value);
                }
            }
        }
        next += period;
    }
}

/// Writes a BLE device's values as hex lines (one characteristic value a line, as `vigil decode`
/// reads them); with `label`, each line starts with it and the characteristic.
pub async fn serve_hex(
    mut device: Device,
    clock: SimClock,
    end: f64,
    cancel: CancellationToken,
    label: Option<String>,
    out: &mut (dyn Write + Send),
) -> std::io::Result<()> {
    let period = crate::devices::period(device.kind);
    let mut next = 0.0;
    while next <= end {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = sleep_until(clock.instant(next)) => {}
        }
        for o in device.tick(next) {
            if let Output::Ble { uuid, value } = o {
                let hex: Vec<String> = value.iter().map(|b| format!("{b:02X}")).collect();
                match &label {
                    Some(l) => writeln!(out, "{l} 0x{uuid:04X} {}", hex.join(" "))?,
                    None => writeln!(out, "{}", hex.join(" "))?,
                }
            }
        }
        out.flush()?;
        next += period;
    }
    Ok(())
}

/// Serves a BLE device as a peripheral on an emulated BlueZ. An unplug fault drops the link.
pub async fn serve_bluez(
    mut device: Device,
    mut peripheral: crate::bluez::EmulatedPeripheral,
    clock: SimClock,
    end: f64,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let period = crate::devices::period(device.kind);
    let mut next = 0.0;
    let mut was_unplugged = false;
    while next <= end {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = sleep_until(clock.instant(next)) => {}
        }
        let unplugged = device.unplugged(next);
        if unplugged != was_unplugged {
            peripheral.set_in_range(!unplugged).await?;
        }
        was_unplugged = unplugged;
        for o in device.tick(next) {
            if let (Output::Ble { uuid, value }, false) = (o, unplugged) {
                peripheral.notify(uuid, &value).await?;
            }
        }
        next += period;
    }
    Ok(())
}
