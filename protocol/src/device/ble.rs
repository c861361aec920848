//! The Bluetooth LE health profiles: each format decodes one GATT characteristic, one value at a
//! time. The peripheral notifies or indicates on its own; the host only subscribes and reads
//! (the Blood Pressure service has no standard way to start a measurement).

use super::{BlePlan, DeviceTransport, FormatFacts, Listener, CONTINUOUS_SILENCE};
use crate::ble::uuid;
use crate::model::Vital::{HeartRate, PulseRate, Spo2};
use crate::Format;

/// `ble-heart-rate`: Heart Rate Measurement 0x2A37.
pub static HEART_RATE: FormatFacts = FormatFacts {
    name: "ble-heart-rate",
    transport: DeviceTransport::Ble(BlePlan {
        characteristic: uuid::HEART_RATE_MEASUREMENT,
        subscribe: &[(uuid::HEART_RATE_MEASUREMENT, true)],
        read: &[],
    }),
    continuous_vitals: &[HeartRate],
    silence_limit: Some(CONTINUOUS_SILENCE),
    commands: &[],
    session: || Box::new(Listener::new(Format::BleHeartRate)),
};

/// `ble-blood-pressure`: Blood Pressure Measurement 0x2A35 (and the cuff pressure while it
/// inflates, where the cuff offers it).
pub static BLOOD_PRESSURE: FormatFacts = FormatFacts {
    name: "ble-blood-pressure",
    transport: DeviceTransport::Ble(BlePlan {
        characteristic: uuid::BLOOD_PRESSURE_MEASUREMENT,
        subscribe: &[
            (uuid::BLOOD_PRESSURE_MEASUREMENT, true),
            (uuid::INTERMEDIATE_CUFF_PRESSURE, false),
        ],
        read: &[],
    }),
    continuous_vitals: &[],
    silence_limit: None,
    commands: &[],
    session: || Box::new(Listener::new(Format::BleBloodPressure)),
};

/// `ble-cuff-pressure`: Intermediate Cuff Pressure 0x2A36.
pub static CUFF_PRESSURE: FormatFacts = FormatFacts {
    name: "ble-cuff-pressure",
    transport: DeviceTransport::Ble(BlePlan {
        characteristic: uuid::INTERMEDIATE_CUFF_PRESSURE,
        subscribe: &[(uuid::INTERMEDIATE_CUFF_PRESSURE, true)],
        read: &[],
    }),
    continuous_vitals: &[],
    silence_limit: None,
    commands: &[],
    session: || Box::new(Listener::new(Format::BleCuffPressure)),
};

/// `ble-plx-spot`: PLX Spot-check Measurement 0x2A5E.
pub static PLX_SPOT: FormatFacts = FormatFacts {
    name: "ble-plx-spot",
    transport: DeviceTransport::Ble(BlePlan {
        characteristic: uuid::PLX_SPOT_CHECK,
        subscribe: &[(uuid::PLX_SPOT_CHECK, true)],
        read: &[uuid::PLX_FEATURES],
    }),
    continuous_vitals: &[],
    silence_limit: None,
    commands: &[],
    session: || Box::new(Listener::new(Format::BlePlxSpot)),
};

/// `ble-plx-continuous`: PLX Continuous Measurement 0x2A5F (and spot checks where offered).
pub static PLX_CONTINUOUS: FormatFacts = FormatFacts {
    name: "ble-plx-continuous",
    transport: DeviceTransport::Ble(BlePlan {
        characteristic: uuid::PLX_CONTINUOUS,
        subscribe: &[(uuid::PLX_CONTINUOUS, true), (uuid::PLX_SPOT_CHECK, false)],
        read: &[uuid::PLX_FEATURES],
    }),
    continuous_vitals: &[Spo2, PulseRate],
    silence_limit: Some(CONTINUOUS_SILENCE),
    commands: &[],
    session: || Box::new(Listener::new(Format::BlePlxContinuous)),
};

/// `ble-plx-features`: PLX Features 0x2A60, read once.
pub static PLX_FEATURES: FormatFacts = FormatFacts {
    name: "ble-plx-features",
    transport: DeviceTransport::Ble(BlePlan {
        characteristic: uuid::PLX_FEATURES,
        subscribe: &[],
        read: &[uuid::PLX_FEATURES],
    }),
    continuous_vitals: &[],
    silence_limit: None,
    commands: &[],
    session: || Box::new(Listener::new(Format::BlePlxFeatures)),
};
