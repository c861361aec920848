//! An in-process BLE central with simulated peripherals: what the tests, the simulator and the
//! demo use where there is no adapter. It behaves like a real link where it matters: values
//! reach the driver only on subscribed characteristics, a peripheral out of range cannot be
//! connected, and going out of range drops the link.

use super::{
    Advertisement, BleError, BleEvent, Central, CharacteristicInfo, Peripheral, Subscription,
};
use crate::BleTarget;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

/// What a simulated peripheral offers.
#[derive(Debug, Clone)]
pub struct PeripheralSpec {
    /// Address.
    pub address: String,
    /// Advertised name.
    pub name: String,
    /// Advertised services.
    pub services: Vec<u16>,
    /// Characteristics.
    pub characteristics: Vec<CharacteristicInfo>,
    /// Values returned by reads.
    pub readable: HashMap<u16, Vec<u8>>,
}

#[derive(Debug)]
struct State {
    spec: PeripheralSpec,
    in_range: bool,
    link: Option<mpsc::Sender<BleEvent>>,
    subscriptions: Vec<(u16, Subscription)>,
    connections: u32,
}

#[derive(Debug, Default)]
struct Inner {
    no_adapter: bool,
    peripherals: Vec<Arc<Mutex<State>>>,
}

/// An in-process central.
#[derive(Debug, Clone, Default)]
pub struct MemoryCentral {
    inner: Arc<Mutex<Inner>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these plain records inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryCentral {
    /// A central with an adapter and no peripherals.
    pub fn new() -> Self {
        MemoryCentral::default()
    }

    /// A central that behaves like a machine without an adapter.
    pub fn without_adapter() -> Self {
        let c = MemoryCentral::default();
        lock(&c.inner).no_adapter = true;
        c
    }

    /// Adds a peripheral, in range.
    pub fn add(&self, spec: PeripheralSpec) -> SimPeripheral {
        let state = Arc::new(Mutex::new(State {
            spec,
            in_range: true,
            link: None,
            subscriptions: Vec::new(),
            connections: 0,
        }));
        lock(&self.inner).peripherals.push(state.clone());
        SimPeripheral { state }
    }
}

/// The simulator's handle on one peripheral.
#[derive(Debug, Clone)]
pub struct SimPeripheral {
    state: Arc<Mutex<State>>,
}

impl SimPeripheral {
    /// Sends a value on a characteristic. Returns whether a connected central subscribed to it
    /// received it.
    pub fn notify(&self, uuid: u16, value: &[u8]) -> bool {
        let s = lock(&self.state);
        let subscribed = s.subscriptions.iter().any(|(u, _)| *u == uuid);
        match (&s.link, subscribed) {
            (Some(link), true) => link
                .try_send(BleEvent::Value {
                    uuid,
                    value: value.to_vec(),
                })
                .is_ok(),
            _ => false,
        }
    }

    /// Moves the peripheral into or out of range; out of range drops the link.
    pub fn set_in_range(&self, in_range: bool) {
        let mut s = lock(&self.state);
        s.in_range = in_range;
        if !in_range {
            if let Some(link) = s.link.take() {
                let _ = link.try_send(BleEvent::Disconnected {
                    reason: "peripheral out of range".into(),
                });
            }
            s.subscriptions.clear();
        }
    }

    /// The CCCD writes of the current connection.
    pub fn subscriptions(&self) -> Vec<(u16, Subscription)> {
        lock(&self.state).subscriptions.clone()
    }

    /// Is a central connected?
    pub fn is_connected(&self) -> bool {
        lock(&self.state)
            .link
            .as_ref()
            .is_some_and(|l| !l.is_closed())
    }

    /// How many times a central has connected.
    pub fn connections(&self) -> u32 {
        lock(&self.state).connections
    }
}

fn advertisement(s: &State) -> Advertisement {
    Advertisement {
        address: s.spec.address.clone(),
        name: Some(s.spec.name.clone()),
        services: s.spec.services.clone(),
        rssi: Some(-50),
    }
}

impl Central for MemoryCentral {
    fn scan(&self, _duration: Duration) -> BoxFuture<'_, Result<Vec<Advertisement>, BleError>> {
        Box::pin(async move {
            let inner = lock(&self.inner);
            if inner.no_adapter {
                return Err(BleError::NoAdapter("no adapter in this simulation".into()));
            }
            Ok(inner
                .peripherals
                .iter()
                .map(|p| lock(p))
                .filter(|s| s.in_range)
                .map(|s| advertisement(&s))
                .collect())
        })
    }

    fn connect<'a>(
        &'a self,
        target: &'a BleTarget,
    ) -> BoxFuture<'a, Result<Box<dyn Peripheral>, BleError>> {
        Box::pin(async move {
            let found = {
                let inner = lock(&self.inner);
                if inner.no_adapter {
                    return Err(BleError::NoAdapter("no adapter in this simulation".into()));
                }
                inner
                    .peripherals
                    .iter()
                    .find(|p| {
                        let s = lock(p);
                        s.in_range && super::matches(target, &advertisement(&s))
                    })
                    .cloned()
            };
            let Some(state) = found else {
                // A real scan takes a while before giving up.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Err(BleError::NotFound(format!("{target:?}")));
            };
            let (tx, rx) = mpsc::channel(1024);
            {
                let mut s = lock(&state);
                s.link = Some(tx);
                s.subscriptions.clear();
                s.connections += 1;
            }
            Ok(Box::new(MemoryPeripheral { state, events: rx }) as Box<dyn Peripheral>)
        })
    }
}

struct MemoryPeripheral {
    state: Arc<Mutex<State>>,
    events: mpsc::Receiver<BleEvent>,
}

impl Peripheral for MemoryPeripheral {
    fn address(&self) -> String {
        lock(&self.state).spec.address.clone()
    }

    fn characteristics(&self) -> Vec<CharacteristicInfo> {
        lock(&self.state).spec.characteristics.clone()
    }

    fn subscribe(&mut self, uuid: u16, mode: Subscription) -> BoxFuture<'_, Result<(), BleError>> {
        Box::pin(async move {
            let mut s = lock(&self.state);
            let Some(info) = s.spec.characteristics.iter().find(|c| c.uuid == uuid) else {
                return Err(BleError::Failed(format!("no characteristic 0x{uuid:04X}")));
            };
            // Like a real peripheral: a CCCD value the characteristic does not support is
            // accepted, and then nothing arrives (BPM with 0x0001).
            let supported = match mode {
                Subscription::Notify => info.notify,
                Subscription::Indicate => info.indicate,
            };
            s.subscriptions.push((uuid, mode));
            if !supported {
                s.subscriptions.retain(|(u, _)| *u != uuid);
            }
            Ok(())
        })
    }

    fn read(&mut self, uuid: u16) -> BoxFuture<'_, Result<Vec<u8>, BleError>> {
        Box::pin(async move {
            lock(&self.state)
                .spec
                .readable
                .get(&uuid)
                .cloned()
                .ok_or_else(|| BleError::Failed(format!("0x{uuid:04X} is not readable")))
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
            let mut s = lock(&self.state);
            s.link = None;
            s.subscriptions.clear();
        })
    }
}
