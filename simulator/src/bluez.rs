//! Simulated BLE devices as peripherals on an emulated BlueZ (python-dbusmock's `bluez5`
//! template) on a private D-Bus bus, so that the real btleplug path runs with no adapter.
//!
//! Needs Debian's `dbus` and `python3-dbusmock`. [`EmulatedBluez::start`] runs the bus and the
//! emulated BlueZ; [`EmulatedPeripheral`] puts one device on it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use vigil_protocol::ble::uuid;
use vigil_protocol::Format;

const HELPER: &str = include_str!("../bluez/emulated_peripheral.py");
const PYTHON: &str = "/usr/bin/python3";

/// Are `dbus-daemon` and python3-dbusmock installed?
pub fn available() -> bool {
    Path::new("/usr/bin/dbus-daemon").exists()
        && std::process::Command::new(PYTHON)
            .args(["-c", "import dbusmock, dbus"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// A private system bus with an emulated BlueZ on it. Stops when dropped.
pub struct EmulatedBluez {
    /// The bus address: give it to btleplug as `DBUS_SYSTEM_BUS_ADDRESS`.
    pub address: String,
    dir: PathBuf,
    _bus: Child,
    _bluez: Child,
}

impl EmulatedBluez {
    /// Starts `dbus-daemon` and `python3 -m dbusmock --system --template bluez5`.
    pub async fn start() -> std::io::Result<EmulatedBluez> {
        let dir = std::env::temp_dir().join(format!(
            "vigil-bluez-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("bus");
        let address = format!("unix:path={}", socket.display());
        let bus = Command::new("/usr/bin/dbus-daemon")
            .args([
                "--config-file=/usr/share/dbus-1/session.conf",
                "--nofork",
                "--nopidfile",
            ])
            .arg(format!("--address={address}"))
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        for _ in 0..200 {
            if socket.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let bluez = Command::new(PYTHON)
            .args(["-m", "dbusmock", "--system", "--template", "bluez5"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        Ok(EmulatedBluez {
            address,
            dir,
            _bus: bus,
            _bluez: bluez,
        })
    }
}

impl Drop for EmulatedBluez {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One peripheral on the emulated BlueZ.
pub struct EmulatedPeripheral {
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    _child: Child,
    _script: PathBuf,
}

/// The service and characteristics a simulated BLE device offers, as the helper takes them.
fn gatt(kind: Format) -> (u16, Vec<String>) {
    let battery = format!("{:04X}:read+notify", uuid::BATTERY_LEVEL);
    match kind {
        Format::BleHeartRate => (
            uuid::HEART_RATE_SERVICE,
            vec![
                format!("{:04X}:notify", uuid::HEART_RATE_MEASUREMENT),
                battery,
            ],
        ),
        Format::BleBloodPressure => (
            uuid::BLOOD_PRESSURE_SERVICE,
            vec![
                format!("{:04X}:indicate", uuid::BLOOD_PRESSURE_MEASUREMENT),
                format!("{:04X}:notify", uuid::INTERMEDIATE_CUFF_PRESSURE),
                battery,
            ],
        ),
        _ => (
            uuid::PULSE_OXIMETER_SERVICE,
            vec![format!("{:04X}:notify", uuid::PLX_CONTINUOUS), battery],
        ),
    }
}

impl EmulatedPeripheral {
    /// Adds a peripheral for a simulated BLE device to the emulated BlueZ at `bus`.
    pub async fn start(
        bus: &str,
        kind: Format,
        address: &str,
        name: &str,
    ) -> std::io::Result<EmulatedPeripheral> {
        let script = std::env::temp_dir().join(format!(
            "vigil-peripheral-{}-{}.py",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::write(&script, HELPER)?;
        let (service, chars) = gatt(kind);
        let mut child = Command::new(PYTHON)
            .arg(&script)
            .args([address, name, &format!("{service:04X}")])
            .args(chars)
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let mut p = EmulatedPeripheral {
            stdin,
            stdout: BufReader::new(stdout).lines(),
            _child: child,
            _script: script,
        };
        let ready = tokio::time::timeout(Duration::from_secs(20), p.stdout.next_line())
            .await
            .map_err(|_| {
                std::io::Error::other("the emulated peripheral did not start in 20 s")
            })??;
        if ready.as_deref() != Some("ready") {
            return Err(std::io::Error::other(format!(
                "the emulated peripheral said {ready:?}"
            )));
        }
        Ok(p)
    }

    async fn say(&mut self, command: &str) -> std::io::Result<()> {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await?;
        match self.stdout.next_line().await? {
            Some(ok) if ok == "ok" => Ok(()),
            other => Err(std::io::Error::other(format!(
                "the emulated peripheral said {other:?}"
            ))),
        }
    }

    /// Notifies (or indicates) a characteristic value.
    pub async fn notify(&mut self, characteristic: u16, value: &[u8]) -> std::io::Result<()> {
        let hex: String = value.iter().map(|b| format!("{b:02X}")).collect();
        self.say(&format!("notify {characteristic:04X} {hex}"))
            .await
    }

    /// Drops the link (the central may reconnect at once).
    pub async fn disconnect(&mut self) -> std::io::Result<()> {
        self.say("disconnect").await
    }

    /// Out of range (`false`: the link drops and connecting fails) or back in range.
    pub async fn set_in_range(&mut self, in_range: bool) -> std::io::Result<()> {
        self.say(if in_range { "back" } else { "away" }).await
    }
}

impl Drop for EmulatedPeripheral {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self._script);
    }
}
