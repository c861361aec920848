//! The real BLE transport: btleplug over BlueZ's D-Bus API.
//!
//! With no system D-Bus, no BlueZ, or no adapter, every call answers
//! [`BleError::NoAdapter`] with the reason, and the driver reports it as its link state.

use super::{
    Advertisement, BleError, BleEvent, Central, CharacteristicInfo, Peripheral, Subscription,
};
use crate::BleTarget;
use btleplug::api::bleuuid::{uuid_from_u16, BleUuid};
use btleplug::api::{
    Central as _, CentralEvent, CharPropFlags, Characteristic, Manager as _, Peripheral as _,
    ScanFilter,
};
use btleplug::platform::{Adapter, Manager, Peripheral as BtPeripheral};
use futures::future::BoxFuture;
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use vigil_protocol::ble::uuid;

/// How long `connect` scans for its target before giving up.
const FIND_TIMEOUT: Duration = Duration::from_secs(15);

/// btleplug's central on the first BlueZ adapter.
#[derive(Default)]
pub struct BluezCentral {
    adapter: Mutex<Option<Adapter>>,
}

impl BluezCentral {
    /// A central that looks for its adapter on first use (and again after a failure).
    pub fn new() -> Self {
        BluezCentral::default()
    }

    async fn adapter(&self) -> Result<Adapter, BleError> {
        let mut cached = self.adapter.lock().await;
        if let Some(a) = cached.as_ref() {
            return Ok(a.clone());
        }
        let manager = Manager::new()
            .await
            .map_err(|e| BleError::NoAdapter(format!("no system D-Bus ({e})")))?;
        let adapter = manager
            .adapters()
            .await
            .map_err(|e| BleError::NoAdapter(format!("BlueZ is not available ({e})")))?
            .into_iter()
            .next()
            .ok_or_else(|| BleError::NoAdapter("BlueZ reports no adapter".into()))?;
        *cached = Some(adapter.clone());
        Ok(adapter)
    }

    async fn forget_adapter(&self) {
        *self.adapter.lock().await = None;
    }
}

fn failed(e: btleplug::Error) -> BleError {
    BleError::Failed(e.to_string())
}

async fn advertisement(p: &BtPeripheral) -> Option<Advertisement> {
    let props = p.properties().await.ok()??;
    Some(Advertisement {
        address: props.address.to_string(),
        name: props.local_name.or(props.advertisement_name),
        services: props
            .services
            .iter()
            .filter_map(|u| u.to_ble_u16())
            .collect(),
        rssi: props.rssi,
    })
}

impl Central for BluezCentral {
    fn scan(&self, duration: Duration) -> BoxFuture<'_, Result<Vec<Advertisement>, BleError>> {
        Box::pin(async move {
            let adapter = self.adapter().await?;
            if let Err(e) = adapter.start_scan(ScanFilter::default()).await {
                self.forget_adapter().await;
                return Err(failed(e));
            }
            tokio::time::sleep(duration).await;
            let mut out = Vec::new();
            for p in adapter.peripherals().await.map_err(failed)? {
                out.extend(advertisement(&p).await);
            }
            let _ = adapter.stop_scan().await;
            Ok(out)
        })
    }

    fn connect<'a>(
        &'a self,
        target: &'a BleTarget,
    ) -> BoxFuture<'a, Result<Box<dyn Peripheral>, BleError>> {
        Box::pin(async move {
            let adapter = self.adapter().await?;
            let filter = match target {
                BleTarget::AnyHealthDevice => ScanFilter {
                    services: [
                        uuid::HEART_RATE_SERVICE,
                        uuid::BLOOD_PRESSURE_SERVICE,
                        uuid::PULSE_OXIMETER_SERVICE,
                    ]
                    .map(uuid_from_u16)
                    .to_vec(),
                },
                _ => ScanFilter::default(),
            };
            if let Err(e) = adapter.start_scan(filter).await {
                self.forget_adapter().await;
                return Err(failed(e));
            }
            let deadline = tokio::time::Instant::now() + FIND_TIMEOUT;
            let found = loop {
                let mut hit = None;
                for p in adapter.peripherals().await.map_err(failed)? {
                    if advertisement(&p)
                        .await
                        .is_some_and(|ad| super::matches(target, &ad))
                    {
                        hit = Some(p);
                        break;
                    }
                }
                if hit.is_some() || tokio::time::Instant::now() >= deadline {
                    break hit;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            };
            let _ = adapter.stop_scan().await;
            let p = found.ok_or_else(|| {
                BleError::NotFound(format!(
                    "{target:?} did not advertise within {FIND_TIMEOUT:?}"
                ))
            })?;
            p.connect().await.map_err(failed)?;
            p.discover_services().await.map_err(failed)?;
            let (tx, rx) = mpsc::channel(1024);
            let mut notifications = p.notifications().await.map_err(failed)?;
            let mut central_events = adapter.events().await.map_err(failed)?;
            let id = p.id();
            let forward = tokio::spawn(async move {
                let reason = loop {
                    tokio::select! {
                        n = notifications.next() => match n {
                            Some(n) => {
                                if let Some(uuid) = n.uuid.to_ble_u16() {
                                    if tx.send(BleEvent::Value { uuid, value: n.value }).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            None => break "notification stream ended".to_string(),
                        },
                        e = central_events.next() => match e {
                            Some(CentralEvent::DeviceDisconnected(gone)) if gone == id => {
                                break "peripheral disconnected".to_string();
                            }
                            Some(_) => {}
                            None => break "adapter event stream ended".to_string(),
                        },
                    }
                };
                let _ = tx.send(BleEvent::Disconnected { reason }).await;
            });
            Ok(Box::new(BluezPeripheral {
                chars: p.characteristics().into_iter().collect(),
                p,
                events: rx,
                forward,
            }) as Box<dyn Peripheral>)
        })
    }
}

struct BluezPeripheral {
    p: BtPeripheral,
    chars: Vec<Characteristic>,
    events: mpsc::Receiver<BleEvent>,
    forward: JoinHandle<()>,
}

impl Drop for BluezPeripheral {
    fn drop(&mut self) {
        self.forward.abort();
    }
}

impl BluezPeripheral {
    fn find(&self, id: u16) -> Result<&Characteristic, BleError> {
        self.chars
            .iter()
            .find(|c| c.uuid.to_ble_u16() == Some(id))
            .ok_or_else(|| BleError::Failed(format!("no characteristic 0x{id:04X}")))
    }
}

impl Peripheral for BluezPeripheral {
    fn address(&self) -> String {
        self.p.address().to_string()
    }

    fn characteristics(&self) -> Vec<CharacteristicInfo> {
        self.chars
            .iter()
            .filter_map(|c| {
                Some(CharacteristicInfo {
                    uuid: c.uuid.to_ble_u16()?,
                    notify: c.properties.contains(CharPropFlags::NOTIFY),
                    indicate: c.properties.contains(CharPropFlags::INDICATE),
                    read: c.properties.contains(CharPropFlags::READ),
                })
            })
            .collect()
    }

    fn subscribe(&mut self, id: u16, _mode: Subscription) -> BoxFuture<'_, Result<(), BleError>> {
        Box::pin(async move {
            // BlueZ's StartNotify writes the CCCD the characteristic's properties call for
            // (0x0002 for the indicate-only Blood Pressure Measurement).
            let c = self.find(id)?.clone();
            self.p.subscribe(&c).await.map_err(failed)
        })
    }

    fn read(&mut self, id: u16) -> BoxFuture<'_, Result<Vec<u8>, BleError>> {
        Box::pin(async move {
            let c = self.find(id)?.clone();
            self.p.read(&c).await.map_err(failed)
        })
    }

    fn next_event(&mut self) -> BoxFuture<'_, BleEvent> {
        Box::pin(async move {
            self.events.recv().await.unwrap_or(BleEvent::Disconnected {
                reason: "link closed".into(),
            })
        })
    }

    fn disconnect(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = self.p.disconnect().await;
        })
    }
}
