//! The domain types every other part of Vigil speaks: readings, their quality, and device events.
//!
//! A decoder turns device bytes into [`Observation`]s. A reading's value is either a number with
//! its unit or [`Unavailable`] with the reason: sentinels and IEEE 11073 special values never
//! become numbers.

use serde::{Deserialize, Serialize};

mod event;
mod flags;
mod plausible;
mod reading_json;
#[cfg(test)]
mod tests;
mod vital;

pub use event::{DeviceAlarm, DeviceEvent, Observation, UnknownParameter};
pub use flags::{Flag, Flags};
pub use vital::{kpa_to_mmhg, mdc, Unit, Vital, MMHG_PER_KPA};

/// Why a reading carries no number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unavailable {
    /// IEEE 11073 NaN: the device has no value.
    NotANumber,
    /// IEEE 11073 NRes: the value cannot be expressed at this resolution.
    NotAtThisResolution,
    /// IEEE 11073 +INFINITY: above the measurable range.
    AboveRange,
    /// IEEE 11073 -INFINITY: below the measurable range.
    BelowRange,
    /// IEEE 11073 reserved value (a failed cuff may send one).
    Reserved,
    /// The format's own "no value" marker (Nonin 511/127, Contec 0xFF/0x7F/0xFFFF, Masimo dashes,
    /// the trend format's zeros).
    Missing,
    /// A number was sent, but the device's status bits say it is not a valid measurement.
    FlaggedInvalid,
    /// A number was sent that the vital cannot have (SpO2 above 100 %, a negative pressure, NaN):
    /// outside [`Vital::plausible_range`].
    Implausible,
}

/// What a reading's value is: a number in `unit`, or nothing, with the reason.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A measured number.
    Number(f64),
    /// No number, and why.
    Unavailable(Unavailable),
}

impl Value {
    /// The number, if there is one.
    pub fn number(self) -> Option<f64> {
        match self {
            Value::Number(v) => Some(v),
            Value::Unavailable(_) => None,
        }
    }
}

/// A date and time from a device clock. Fields the device leaves unknown (BLE year 0, month 0,
/// day 0) are `None`. It has no time zone and may be wrong: keep it beside the receive time,
/// never in place of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceTime {
    /// Full year, e.g. 2016.
    pub year: Option<u16>,
    /// 1–12.
    pub month: Option<u8>,
    /// 1–31.
    pub day: Option<u8>,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59.
    pub second: u8,
}

/// One measured value of one vital, as decoded from a device.
///
/// In JSON the value is flattened for readers: `"value"` is a number or `null`, and an
/// unavailable value carries `"unavailable"` with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    into = "reading_json::ReadingJson",
    try_from = "reading_json::ReadingJson"
)]
pub struct Reading {
    /// What was measured.
    pub vital: Vital,
    /// The number in `unit`, or why there is none.
    pub value: Value,
    /// The unit the device used; kPa stays kPa here, see [`Reading::in_canonical_unit`].
    pub unit: Unit,
    /// IEEE 11073-10101 code, when Vigil has a verified one.
    pub mdc: Option<u32>,
    /// The device's own timestamp, when the format carries one.
    pub device_time: Option<DeviceTime>,
    /// Quality flags from the device's status bits.
    pub flags: Flags,
}

impl Reading {
    /// A reading with a number, the vital's default MDC code and no flags.
    /// A number outside what the vital can be becomes [`Unavailable::Implausible`].
    pub fn number(vital: Vital, value: f64, unit: Unit) -> Reading {
        Reading {
            vital,
            value: Value::Number(value),
            unit,
            mdc: vital.default_mdc(),
            device_time: None,
            flags: Flags::EMPTY,
        }
        .checked()
    }

    /// The plausibility gate: every constructor passes through it, so no decoder can hand on a
    /// number the vital cannot have.
    fn checked(mut self) -> Reading {
        if let Some(v) = self.in_canonical_unit() {
            if !v.is_finite() || !self.vital.plausible_range().contains(&v) {
                self.value = Value::Unavailable(Unavailable::Implausible);
            }
        }
        self
    }

    /// A reading whose value is unavailable, in the vital's canonical unit.
    pub fn unavailable(vital: Vital, reason: Unavailable) -> Reading {
        Reading {
            value: Value::Unavailable(reason),
            ..Reading::number(vital, 0.0, vital.canonical_unit())
        }
    }

    /// A reading from a value that may be a device sentinel (or implausible, see
    /// [`Reading::number`]).
    pub fn from_value(vital: Vital, value: Value, unit: Unit) -> Reading {
        Reading {
            value,
            ..Reading::number(vital, 0.0, unit)
        }
        .checked()
    }

    /// Sets the flags. A number the flags mark invalid (sensor off, defective, invalid, no
    /// contact) becomes [`Unavailable::FlaggedInvalid`]: it must never reach the display as a
    /// current value.
    pub fn with_flags(mut self, flags: Flags) -> Reading {
        self.flags = flags;
        if flags.marks_invalid() && matches!(self.value, Value::Number(_)) {
            self.value = Value::Unavailable(Unavailable::FlaggedInvalid);
        }
        self
    }

    /// Replaces the MDC code (e.g. a cuff's pulse rate).
    pub fn with_mdc(mut self, mdc: u32) -> Reading {
        self.mdc = Some(mdc);
        self
    }

    /// Sets the device timestamp.
    pub fn with_device_time(mut self, time: Option<DeviceTime>) -> Reading {
        self.device_time = time;
        self
    }

    /// The value converted to the vital's canonical unit (kPa to mmHg), if it has a number.
    pub fn in_canonical_unit(&self) -> Option<f64> {
        let v = self.value.number()?;
        match (self.unit, self.vital.canonical_unit()) {
            (Unit::KPa, Unit::MmHg) => Some(kpa_to_mmhg(v)),
            _ => Some(v),
        }
    }

    /// The number the display may show as the patient's current value: present, plausible, in
    /// the canonical unit, and not flagged invalid, demo, test or stored. It may still be
    /// questioned (artefact, low perfusion, ...): only [`Reading::evidence`] counts for alarms.
    pub fn clinical_value(&self) -> Option<f64> {
        if self.flags.marks_invalid() || self.flags.marks_not_live() {
            return None;
        }
        self.in_canonical_unit()
    }

    /// The evidence gate: the number an alarm condition may act on, for or against it. Only a
    /// valid reading counts: a plausible number, live, with no flag that voids or questions it.
    /// Anything else may be shown, but never clears a condition nor restarts a delay.
    pub fn evidence(&self) -> Option<f64> {
        if self.flags.questions_value() {
            return None;
        }
        self.clinical_value()
    }

    /// Is this reading evidence (see [`Reading::evidence`])?
    pub fn is_evidence(&self) -> bool {
        self.evidence().is_some()
    }
}
