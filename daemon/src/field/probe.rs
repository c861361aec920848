//! `vigil probe`: opens one device exactly as the daemon would and prints what it sends as JSON
//! lines (readings and device events as `vigil decode` prints them, link changes with `"link"`)
//! until Ctrl-C or `--duration`. The first thing to run when a monitor "isn't showing up".

use anyhow::{bail, Context, Result};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil_drivers::ble::bluez::BluezCentral;
use vigil_drivers::ble::Central;
use vigil_drivers::hl7::{Endpoint, Hl7Spec};
use vigil_drivers::usb::UsbId;
use vigil_drivers::{BleTarget, DeviceSpec, DriverEventKind, PortSelector, SerialSpec, Transport};
use vigil_protocol::hl7::{CodeTable, Match};
use vigil_protocol::{Format, Observation};

/// Arguments of `vigil probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Wire format (the names `vigil decode` uses). Not needed with `--scan`.
    #[arg(long, value_name = "FORMAT", required_unless_present = "scan")]
    pub format: Option<Format>,
    /// A serial port path, e.g. /dev/ttyUSB0.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["usb", "ble"])]
    pub port: Option<PathBuf>,
    /// A USB-serial cable by id: VID:PID or VID:PID:SERIAL (hex), e.g. 10c4:ea60.
    #[arg(long, value_name = "VID:PID", conflicts_with = "ble")]
    pub usb: Option<UsbId>,
    /// A BLE peripheral by address or name; alone, any peripheral advertising the Heart Rate,
    /// Blood Pressure or Pulse Oximeter service.
    #[arg(long, value_name = "ADDRESS|NAME", num_args = 0..=1, default_missing_value = "")]
    pub ble: Option<String>,
    /// For format hl7: accept MLLP connections from a monitor on ADDR:PORT, acknowledging
    /// every message.
    #[arg(long, value_name = "ADDR:PORT", conflicts_with_all = ["port", "usb", "ble", "connect"])]
    pub listen: Option<std::net::SocketAddr>,
    /// For format hl7: dial a monitor that serves MLLP on HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["port", "usb", "ble"])]
    pub connect: Option<String>,
    /// For format hl7: a vendor code table (TOML) beside the built-in MDC codes.
    #[arg(long, value_name = "FILE")]
    pub codes: Option<PathBuf>,
    /// With --ble: list nearby peripherals and their services instead.
    #[arg(long, requires = "ble")]
    pub scan: bool,
    /// Override the format's baud rate.
    #[arg(long, value_name = "N")]
    pub baud: Option<u32>,
    /// Stop after this many seconds (default: run until Ctrl-C; a scan lasts 10 s).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
}

/// A `--ble` value: an address like `C0:FF:EE:00:00:01`, a name, or empty for any.
pub fn ble_target(value: &str) -> BleTarget {
    let is_address = value.len() == 17
        && value
            .split(':')
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if value.is_empty() {
        BleTarget::AnyHealthDevice
    } else if is_address {
        BleTarget::Address(value.to_string())
    } else {
        BleTarget::Name(value.to_string())
    }
}

fn spec(args: &ProbeArgs, format: Format) -> Result<DeviceSpec> {
    let transport = if format == Format::Hl7 {
        let endpoint = match (&args.listen, &args.connect) {
            (Some(addr), _) => Endpoint::Listen(*addr),
            (None, Some(peer)) => Endpoint::Connect(peer.clone()),
            (None, None) => {
                bail!("say where the monitor is: --listen ADDR:PORT or --connect HOST:PORT")
            }
        };
        let table = match &args.codes {
            Some(path) => crate::config::hl7::load_code_table(path).map_err(anyhow::Error::msg)?,
            None => CodeTable::default(),
        };
        Transport::Hl7(Hl7Spec {
            endpoint,
            matcher: Match::default(),
            table,
            tls: None,
        })
    } else if args.listen.is_some() || args.connect.is_some() {
        bail!("--listen and --connect are for --format hl7");
    } else if let Some(ble) = &args.ble {
        if !format.is_ble() {
            bail!("{format} is a serial format: use --port or --usb");
        }
        Transport::Ble(ble_target(ble))
    } else {
        let Some(mut line) = format.line_settings() else {
            bail!("{format} is a BLE format: use --ble");
        };
        if let Some(baud) = args.baud {
            line.baud = baud;
        }
        let port = match (&args.port, &args.usb) {
            (Some(p), _) => PortSelector::Path(p.clone()),
            (None, Some(id)) => PortSelector::Usb(id.clone()),
            (None, None) => bail!("say where the device is: --port PATH, --usb VID:PID or --ble"),
        };
        Transport::Serial(SerialSpec { port, line })
    };
    Ok(DeviceSpec {
        id: "probe".into(),
        format,
        transport,
    })
}

/// Runs `vigil probe`. Returns whether any reading arrived.
pub async fn run(args: &ProbeArgs, central: Arc<dyn Central>, out: &mut dyn Write) -> Result<bool> {
    if args.scan {
        let secs = args.duration.unwrap_or(10.0).max(0.0);
        let found = central
            .scan(Duration::from_secs_f64(secs))
            .await
            .context("BLE scan failed")?;
        for ad in &found {
            let services: Vec<String> = ad.services.iter().map(|s| format!("0x{s:04X}")).collect();
            writeln!(
                out,
                "{}",
                json!({"address": ad.address, "name": ad.name, "services": services, "rssi": ad.rssi})
            )?;
        }
        return Ok(!found.is_empty());
    }
    let format = args.format.context("--format is required")?;
    let spec = spec(args, format)?;
    let (tx, mut rx) = mpsc::channel(1024);
    let cancel = CancellationToken::new();
    let (_handle, task) = vigil_drivers::spawn(spec, central, tx, cancel.clone());
    let stop = async {
        match args.duration {
            Some(s) => tokio::time::sleep(Duration::from_secs_f64(s.max(0.0))).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    let mut readings = 0u64;
    loop {
        let event = tokio::select! {
            _ = &mut stop => break,
            e = rx.recv() => match e { Some(e) => e, None => break },
        };
        let lines: Vec<String> = match &event.kind {
            DriverEventKind::Readings(rs) => {
                readings += rs.len() as u64;
                rs.iter()
                    .map(|r| super::decode::to_json(&Ok(Observation::Reading(r.clone()))))
                    .collect()
            }
            DriverEventKind::Device(e) => {
                vec![super::decode::to_json(&Ok(Observation::Event(e.clone())))]
            }
            DriverEventKind::Link(link) => vec![serde_json::to_string(link)?],
            DriverEventKind::DecodeErrors { count, last } => {
                vec![json!({"error": last, "count": count}).to_string()]
            }
        };
        for line in lines {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
    }
    cancel.cancel();
    let _ = task.await;
    Ok(readings > 0)
}

/// The BLE central the daemon and probe use.
pub fn system_central() -> Arc<dyn Central> {
    Arc::new(BluezCentral::new())
}
