//! What a decoder produces besides readings: device alarms and events, parameters it does not
//! know, and the [`Observation`] that carries any of them.

use super::{Flag, Flags, Reading};
use serde::{Deserialize, Serialize};

/// A device-side alarm bit (Masimo ALARM word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceAlarm {
    /// SpO2 above the device's limit.
    Spo2High,
    /// SpO2 below the device's limit.
    Spo2Low,
    /// Pulse rate above the device's limit.
    PulseRateHigh,
    /// Pulse rate below the device's limit.
    PulseRateLow,
    /// The device's alarm is sounding.
    AlarmActive,
    /// The device's alarm is silenced.
    AlarmSilenced,
    /// The device's battery is low.
    LowBattery,
    /// SpCO above limit.
    SpcoHigh,
    /// SpCO below limit.
    SpcoLow,
    /// SpMet above limit.
    SpmetHigh,
    /// SpMet below limit.
    SpmetLow,
    /// Desaturation index alarm.
    DesaturationIndex,
    /// PI rate-of-change alarm.
    PiDelta,
}

/// Something a device reports that is not a measured value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DeviceEvent {
    /// The sensor is off the patient (finger out, probe off).
    SensorOff,
    /// The sensor or its cable is defective, unrecognised or expired.
    SensorDefective,
    /// The sensor is disconnected from the device.
    SensorDisconnected,
    /// The device's battery is low.
    LowBattery,
    /// Battery charge as the device reports it (BLE Battery Level 0x2A19).
    BatteryLevel {
        /// Percent, 0–100.
        percent: u8,
    },
    /// The device's own alarm word, with the raw bits and their meanings.
    DeviceAlarms {
        /// The raw word.
        bits: u32,
        /// The named bits that are set.
        alarms: Vec<DeviceAlarm>,
    },
    /// A cuff measurement has completed; its values follow or can be fetched.
    MeasurementComplete,
    /// A status or command answer from a cuff module that is not a value (SunTech status
    /// character other than `K`).
    CuffStatus {
        /// The raw status character.
        code: u8,
    },
    /// A cuff measurement ended with a device error code, so it has no valid values.
    MeasurementFailed {
        /// The module's error code.
        code: u8,
    },
    /// A parameter or packet the decoder does not know; counted, never silently dropped.
    UnknownParameter {
        /// The key, type byte or code as the device sent it.
        code: String,
    },
    /// The device answered a host command (Contec feedback packet, Nonin ACK/NAK).
    CommandFeedback {
        /// The command the device answered, when known.
        command: Option<u8>,
        /// The device's reason or answer code (0 means success).
        code: u8,
    },
    /// A polled device's session lost its conversation: the device answers nothing, answers
    /// only errors, or refuses the association. The transport pump shows the device disconnected
    /// with this reason until data flows again; the session keeps retrying meanwhile.
    NotResponding {
        /// Why, in words a nurse or technician can act on.
        reason: String,
    },
    /// The device says it is about to disconnect (Contec 0x0D).
    DisconnectNotice,
    /// The device itself reports that the patient is not breathing (a capnograph's or
    /// multiparameter monitor's apnea alarm, MDC_EVT_APNEA).
    Apnea,
    /// What the device supports (PLX Features 0x2A60).
    Features {
        /// Names of the supported optional features.
        features: Vec<String>,
        /// Supported measurement-status bits.
        measurement_status_support: Option<u16>,
        /// Supported device-and-sensor-status bits.
        device_status_support: Option<u32>,
    },
}

impl DeviceEvent {
    /// The sensor events implied by a reading's flags: sensor off and sensor defective.
    pub fn from_sensor_flags(flags: Flags) -> impl Iterator<Item = DeviceEvent> {
        [
            (Flag::SensorOff, DeviceEvent::SensorOff),
            (Flag::SensorDefective, DeviceEvent::SensorDefective),
        ]
        .into_iter()
        .filter(move |(f, _)| flags.contains(*f))
        .map(|(_, e)| e)
    }
}

/// A measured parameter Vigil has no [`Vital`](super::Vital) for (an HL7 OBX with an unmapped code, say):
/// kept with what the device sent, counted per device, never evidence for any alarm.
///
/// JSON: `{"kind":"unknown_parameter","code":...,"value":...,"unit":...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename = "unknown_parameter")]
pub struct UnknownParameter {
    /// The parameter's code or name as the device sent it.
    pub code: String,
    /// The number, when the device sent one.
    pub value: Option<f64>,
    /// The unit as the device wrote it, when it gave one.
    pub unit: Option<String>,
}

/// What one decoded frame or value contains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Observation {
    /// A measured value.
    Reading(Reading),
    /// An event that is not a value.
    Event(DeviceEvent),
    /// A measured parameter Vigil has no vital for.
    UnknownParameter(UnknownParameter),
}

impl From<Reading> for Observation {
    fn from(r: Reading) -> Self {
        Observation::Reading(r)
    }
}

impl From<UnknownParameter> for Observation {
    fn from(p: UnknownParameter) -> Self {
        Observation::UnknownParameter(p)
    }
}

impl From<DeviceEvent> for Observation {
    fn from(e: DeviceEvent) -> Self {
        Observation::Event(e)
    }
}
