//! The BLE driver, behind the project's own small transport trait so that every BLE path is
//! testable without an adapter. [`bluez::BluezCentral`] is the real transport (btleplug over
//! BlueZ); [`memory::MemoryCentral`] is an in-process one for tests and simulated devices.

pub mod bluez;
pub mod memory;

use crate::backoff::Backoff;
use crate::events::{Command, CommandError, DriverEvent, Link};
use crate::report::{now, report, Reporter};
use crate::{BleTarget, DeviceSpec, Transport};
use futures::future::BoxFuture;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{interval, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use vigil_protocol::ble::uuid;
use vigil_protocol::{DeviceEvent, DeviceSession, Format};

/// One GATT characteristic and what it supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CharacteristicInfo {
    /// 16-bit UUID.
    pub uuid: u16,
    /// Supports notifications.
    pub notify: bool,
    /// Supports indications.
    pub indicate: bool,
    /// Can be read.
    pub read: bool,
}

/// How to subscribe: the CCCD value written (0x0001 notify, 0x0002 indicate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Subscription {
    /// Notifications.
    Notify,
    /// Indications (Blood Pressure Measurement accepts nothing else).
    Indicate,
}

impl CharacteristicInfo {
    /// The subscription its properties allow, preferring notify; `None` if neither.
    pub fn subscription(&self) -> Option<Subscription> {
        if self.notify {
            Some(Subscription::Notify)
        } else if self.indicate {
            Some(Subscription::Indicate)
        } else {
            None
        }
    }
}

/// What a connected peripheral sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BleEvent {
    /// A notified or indicated value.
    Value {
        /// Characteristic.
        uuid: u16,
        /// The complete value.
        value: Vec<u8>,
    },
    /// The link is gone.
    Disconnected {
        /// Why.
        reason: String,
    },
}

/// A peripheral seen while scanning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Advertisement {
    /// Its address.
    pub address: String,
    /// Its advertised name.
    pub name: Option<String>,
    /// Advertised 16-bit service UUIDs.
    pub services: Vec<u16>,
    /// Signal strength, dBm.
    pub rssi: Option<i16>,
}

/// Why a BLE operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BleError {
    /// There is no usable adapter (no hardware, no BlueZ, no D-Bus).
    #[error("no Bluetooth adapter: {0}")]
    NoAdapter(String),
    /// Nothing matching the target was found.
    #[error("no matching peripheral found: {0}")]
    NotFound(String),
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

/// A BLE central: finds and connects to peripherals.
pub trait Central: Send + Sync + 'static {
    /// Lists peripherals advertising during `duration`.
    fn scan(&self, duration: Duration) -> BoxFuture<'_, Result<Vec<Advertisement>, BleError>>;
    /// Finds the target, connects and discovers its characteristics.
    fn connect<'a>(
        &'a self,
        target: &'a BleTarget,
    ) -> BoxFuture<'a, Result<Box<dyn Peripheral>, BleError>>;
}

/// A connected peripheral.
pub trait Peripheral: Send {
    /// Its address.
    fn address(&self) -> String;
    /// Its characteristics.
    fn characteristics(&self) -> Vec<CharacteristicInfo>;
    /// Writes the CCCD for one characteristic.
    fn subscribe(&mut self, uuid: u16, mode: Subscription) -> BoxFuture<'_, Result<(), BleError>>;
    /// Reads a value.
    fn read(&mut self, uuid: u16) -> BoxFuture<'_, Result<Vec<u8>, BleError>>;
    /// The next value or the disconnect.
    fn next_event(&mut self) -> BoxFuture<'_, BleEvent>;
    /// Disconnects.
    fn disconnect(&mut self) -> BoxFuture<'_, ()>;
}

/// Is this one of the health services Vigil reads?
pub fn is_health_service(service: u16) -> bool {
    [
        uuid::HEART_RATE_SERVICE,
        uuid::BLOOD_PRESSURE_SERVICE,
        uuid::PULSE_OXIMETER_SERVICE,
    ]
    .contains(&service)
}

/// Does an advertisement match a target?
pub fn matches(target: &BleTarget, ad: &Advertisement) -> bool {
    match target {
        BleTarget::Address(a) => ad.address.eq_ignore_ascii_case(a),
        BleTarget::Name(n) => ad
            .name
            .as_deref()
            .is_some_and(|name| name.contains(n.as_str())),
        BleTarget::AnyHealthDevice => ad.services.iter().any(|s| is_health_service(*s)),
    }
}

/// Battery at or below this is reported as low.
const LOW_BATTERY_PERCENT: u8 = 20;
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Retry less often when there is no adapter at all.
const NO_ADAPTER_RETRY: Duration = Duration::from_secs(30);

/// Runs a BLE device until `cancel` fires or the core goes away.
pub async fn run(
    spec: DeviceSpec,
    central: Arc<dyn Central>,
    events: mpsc::Sender<DriverEvent>,
    mut commands: mpsc::Receiver<Command>,
    cancel: CancellationToken,
) {
    let Transport::Ble(target) = &spec.transport else {
        tracing::error!(device = %spec.id, "BLE driver given a serial device");
        return;
    };
    let mut reporter = Reporter::new(Arc::from(spec.id.as_str()), events);
    let mut backoff = Backoff::new(MAX_BACKOFF);
    while !cancel.is_cancelled() {
        if reporter.link(Link::Connecting).await.is_err() {
            return;
        }
        let connected = tokio::select! {
            _ = cancel.cancelled() => return,
            c = central.connect(target) => c,
        };
        let (reason, delay) = match connected {
            Err(e @ BleError::NoAdapter(_)) => (e.to_string(), NO_ADAPTER_RETRY),
            Err(e) => (e.to_string(), backoff.next_delay()),
            Ok(mut peripheral) => {
                if reporter.link(Link::Connected).await.is_err() {
                    return;
                }
                backoff.reset();
                let ended = pump(
                    spec.format,
                    peripheral.as_mut(),
                    &mut reporter,
                    &mut commands,
                    &cancel,
                )
                .await;
                match ended {
                    Ok(reason) => (reason, backoff.next_delay()),
                    Err(Stop) => {
                        peripheral.disconnect().await;
                        return;
                    }
                }
            }
        };
        if reporter.link(Link::Disconnected { reason }).await.is_err() {
            return;
        }
        if crate::events::wait_refusing_commands(delay, &mut commands, &cancel)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Cancelled, or the core is gone.
struct Stop;

/// Reports a Battery Level value, and a low battery at or below [`LOW_BATTERY_PERCENT`].
async fn battery(reporter: &mut Reporter, value: &[u8]) -> Result<(), Stop> {
    let Some(&percent) = value.first() else {
        return Ok(());
    };
    let percent = percent.min(100);
    reporter
        .event(DeviceEvent::BatteryLevel { percent })
        .await
        .map_err(|_| Stop)?;
    if percent <= LOW_BATTERY_PERCENT {
        reporter
            .event(DeviceEvent::LowBattery)
            .await
            .map_err(|_| Stop)?;
    }
    Ok(())
}

/// One connection's pump: subscribe, read, decode until the link drops. Returns why it dropped.
async fn pump(
    format: Format,
    p: &mut dyn Peripheral,
    reporter: &mut Reporter,
    commands: &mut mpsc::Receiver<Command>,
    cancel: &CancellationToken,
) -> Result<String, Stop> {
    let chars = p.characteristics();
    let Some(plan) = format.ble_plan() else {
        return Ok(format!("{format} is a serial format, not a BLE one"));
    };
    // One device session per characteristic decoded: each decodes its own values.
    let mut sessions: HashMap<u16, Box<dyn DeviceSession>> = HashMap::new();
    // The format's own device session answers the room's commands.
    let mut device = format.session();
    device.handle_connected(now());
    // Battery Level, where the peripheral notifies it, keeps the battery state current.
    let battery_notifies = chars
        .iter()
        .any(|c| c.uuid == uuid::BATTERY_LEVEL && c.notify);
    let subscribe = plan
        .subscribe
        .iter()
        .copied()
        .chain(battery_notifies.then_some((uuid::BATTERY_LEVEL, false)));
    for (id, required) in subscribe {
        let Some(info) = chars.iter().find(|c| c.uuid == id) else {
            if required {
                return Ok(format!(
                    "the peripheral has no characteristic 0x{id:04X} for {format}"
                ));
            }
            continue;
        };
        let Some(mode) = info.subscription() else {
            return Ok(format!(
                "characteristic 0x{id:04X} supports neither notify nor indicate"
            ));
        };
        // CCCDs are written again on every connection: peripherals forget them unless bonded.
        if let Err(e) = p.subscribe(id, mode).await {
            return Ok(format!("cannot subscribe to 0x{id:04X}: {e}"));
        }
        if let Some(f) = Format::for_characteristic(id) {
            let mut session = f.session();
            session.handle_connected(now());
            sessions.insert(id, session);
        }
    }
    let mut decoded = Vec::new();
    for &id in std::iter::once(&uuid::BATTERY_LEVEL).chain(plan.read) {
        if !chars.iter().any(|c| c.uuid == id && c.read) {
            continue;
        }
        match p.read(id).await {
            Ok(value) if id == uuid::BATTERY_LEVEL => battery(reporter, &value).await?,
            Ok(value) => {
                if let Some(f) = Format::for_characteristic(id) {
                    let mut once = f.session();
                    once.handle_input(&value, now());
                    report(once.as_mut(), reporter, &mut decoded)
                        .await
                        .map_err(|_| Stop)?;
                }
            }
            Err(e) => tracing::warn!(characteristic = id, error = %e, "read failed"),
        }
    }
    let silence = format.silence_limit();
    let mut last_data = Instant::now();
    let mut silent = false;
    let mut second = interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Err(Stop),
            event = p.next_event() => match event {
                BleEvent::Disconnected { reason } => return Ok(reason),
                BleEvent::Value { uuid, value } => {
                    last_data = Instant::now();
                    if silent {
                        silent = false;
                        reporter.link(Link::Connected).await.map_err(|_| Stop)?;
                    }
                    if uuid == vigil_protocol::ble::uuid::BATTERY_LEVEL {
                        battery(reporter, &value).await?;
                    } else if let Some(session) = sessions.get_mut(&uuid) {
                        session.handle_input(&value, now());
                        report(session.as_mut(), reporter, &mut decoded).await.map_err(|_| Stop)?;
                    }
                }
            },
            Some(command) = commands.recv() => {
                // The Blood Pressure service has no standard way to start a measurement: the
                // BLE formats' sessions refuse, as their facts say.
                let (command, reply) = command.into_parts();
                let answer = device
                    .handle_command(command, now())
                    .map_err(|refusal| CommandError::refused(command, refusal));
                let _ = reply.send(answer);
            }
            _ = second.tick() => {
                reporter.flush_errors(true).await.map_err(|_| Stop)?;
                if let Some(limit) = silence {
                    let quiet = last_data.elapsed();
                    if quiet >= limit && !silent {
                        silent = true;
                        reporter.link(Link::NoData { seconds: quiet.as_secs() }).await.map_err(|_| Stop)?;
                    }
                }
            }
        }
    }
}
