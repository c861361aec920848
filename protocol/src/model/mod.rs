//! The domain types every other part of Vigil speaks: readings, their quality, and device events.
//!
//! A decoder turns device bytes into [`Observation`]s. A reading's value is either a number with
//! its unit or [`Unavailable`] with the reason: sentinels and IEEE 11073 special values never
//! become numbers.

use serde::{Deserialize, Serialize};
use std::fmt;

mod flags;
mod plausible;
#[cfg(test)]
mod tests;

pub use flags::{Flag, Flags};

/// A physiological quantity, named the same way in JSON, config files and the display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vital {
    /// Peripheral oxygen saturation, %.
    Spo2,
    /// Pulse rate from an oximeter or a cuff, bpm.
    PulseRate,
    /// Heart rate from an ECG or chest strap, bpm.
    HeartRate,
    /// Non-invasive blood pressure, systolic.
    NibpSystolic,
    /// Non-invasive blood pressure, diastolic.
    NibpDiastolic,
    /// Non-invasive blood pressure, mean arterial.
    NibpMean,
    /// Intermediate cuff pressure while a measurement runs, mmHg.
    CuffPressure,
    /// Perfusion index, %.
    PerfusionIndex,
    /// One beat-to-beat (RR) interval, seconds.
    RrInterval,
    /// Cumulative energy expended, kJ.
    EnergyExpended,
    /// End-tidal CO2 (capnography), mmHg; a value in kPa is converted for alarms, as NIBP is.
    Etco2,
    /// Respiratory rate, breaths/min.
    RespiratoryRate,
}

impl Vital {
    /// Every vital, in display order.
    pub const ALL: [Vital; 12] = [
        Vital::HeartRate,
        Vital::PulseRate,
        Vital::Spo2,
        Vital::RespiratoryRate,
        Vital::Etco2,
        Vital::NibpSystolic,
        Vital::NibpDiastolic,
        Vital::NibpMean,
        Vital::CuffPressure,
        Vital::PerfusionIndex,
        Vital::RrInterval,
        Vital::EnergyExpended,
    ];

    /// The name used in JSON and config files (`spo2`, `pulse_rate`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Vital::Spo2 => "spo2",
            Vital::PulseRate => "pulse_rate",
            Vital::HeartRate => "heart_rate",
            Vital::NibpSystolic => "nibp_systolic",
            Vital::NibpDiastolic => "nibp_diastolic",
            Vital::NibpMean => "nibp_mean",
            Vital::CuffPressure => "cuff_pressure",
            Vital::PerfusionIndex => "perfusion_index",
            Vital::RrInterval => "rr_interval",
            Vital::EnergyExpended => "energy_expended",
            Vital::Etco2 => "etco2",
            Vital::RespiratoryRate => "respiratory_rate",
        }
    }

    /// Looks a vital up by its JSON/config name.
    pub fn from_name(name: &str) -> Option<Vital> {
        Vital::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The unit alarms and the display use for this vital.
    pub fn canonical_unit(self) -> Unit {
        match self {
            Vital::Spo2 | Vital::PerfusionIndex => Unit::Percent,
            Vital::PulseRate | Vital::HeartRate => Unit::BeatsPerMinute,
            Vital::NibpSystolic
            | Vital::NibpDiastolic
            | Vital::NibpMean
            | Vital::CuffPressure
            | Vital::Etco2 => Unit::MmHg,
            Vital::RespiratoryRate => Unit::BreathsPerMinute,
            Vital::RrInterval => Unit::Second,
            Vital::EnergyExpended => Unit::KiloJoule,
        }
    }

    /// Is this one of the three blood-pressure values of a completed cuff measurement?
    pub fn is_nibp(self) -> bool {
        matches!(
            self,
            Vital::NibpSystolic | Vital::NibpDiastolic | Vital::NibpMean
        )
    }
}

impl fmt::Display for Vital {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A unit of measure as devices report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Unit {
    /// Percent.
    #[serde(rename = "%")]
    Percent,
    /// Beats per minute.
    #[serde(rename = "bpm")]
    BeatsPerMinute,
    /// Millimetres of mercury.
    #[serde(rename = "mmHg")]
    MmHg,
    /// Kilopascal (some BLE cuffs); normalised to mmHg before alarms see it.
    #[serde(rename = "kPa")]
    KPa,
    /// Seconds.
    #[serde(rename = "s")]
    Second,
    /// Kilojoules.
    #[serde(rename = "kJ")]
    KiloJoule,
    /// Breaths per minute (UCUM `/min`, MDC_DIM_RESP_PER_MIN).
    #[serde(rename = "/min")]
    BreathsPerMinute,
}

/// mmHg per kPa.
pub const MMHG_PER_KPA: f64 = 7.500_62;

/// A pressure in kPa as mmHg: the one conversion for cuff pressures and EtCO2 sent in kPa.
pub fn kpa_to_mmhg(kpa: f64) -> f64 {
    kpa * MMHG_PER_KPA
}

/// IEEE 11073-10101 nomenclature codes (partition × 2¹⁶ + term) for the vitals Vigil carries.
pub mod mdc {
    /// MDC_PULS_OXIM_SAT_O2.
    pub const PULS_OXIM_SAT_O2: u32 = 150_456;
    /// MDC_PULS_OXIM_PULS_RATE (pulse rate from an oximeter).
    pub const PULS_OXIM_PULS_RATE: u32 = 149_530;
    /// MDC_PULS_RATE_NON_INV (pulse rate from a cuff).
    pub const PULS_RATE_NON_INV: u32 = 149_546;
    /// MDC_ECG_HEART_RATE.
    pub const ECG_HEART_RATE: u32 = 147_842;
    /// MDC_PRESS_BLD_NONINV_SYS.
    pub const PRESS_BLD_NONINV_SYS: u32 = 150_021;
    /// MDC_PRESS_BLD_NONINV_DIA.
    pub const PRESS_BLD_NONINV_DIA: u32 = 150_022;
    /// MDC_PRESS_BLD_NONINV_MEAN.
    pub const PRESS_BLD_NONINV_MEAN: u32 = 150_023;
    /// MDC_PRESS_CUFF (term 19228).
    pub const PRESS_CUFF: u32 = 150_300;
    /// MDC_PULS_OXIM_PERF_REL (term 19376).
    pub const PULS_OXIM_PERF_REL: u32 = 150_448;
    /// MDC_ECG_TIME_PD_RR_GL (term 16168).
    pub const ECG_TIME_PD_RR_GL: u32 = 147_240;
    /// MDC_AWAY_CO2_ET (term 20636): end-tidal CO2 at the airway.
    pub const AWAY_CO2_ET: u32 = 151_708;
    /// MDC_RESP_RATE (term 20490): respiratory rate, whatever the method.
    pub const RESP_RATE: u32 = 151_562;
    /// MDC_EVT_APNEA (partition 3, term 3072): the device detects no breath.
    pub const EVT_APNEA: u32 = 199_680;
    /// MDC_EVT_HI: a high-limit alarm.
    pub const EVT_HI: u32 = 196_648;
    /// MDC_EVT_LO: a low-limit alarm.
    pub const EVT_LO: u32 = 196_670;
    /// MDC_EVT_ALARM: an alarm of no more specific kind.
    pub const EVT_ALARM: u32 = 196_616;

    /// The reference id of a code Vigil uses (the one vetted table for names).
    pub fn name(code: u32) -> Option<&'static str> {
        Some(match code {
            PULS_OXIM_SAT_O2 => "MDC_PULS_OXIM_SAT_O2",
            PULS_OXIM_PULS_RATE => "MDC_PULS_OXIM_PULS_RATE",
            PULS_RATE_NON_INV => "MDC_PULS_RATE_NON_INV",
            ECG_HEART_RATE => "MDC_ECG_HEART_RATE",
            PRESS_BLD_NONINV_SYS => "MDC_PRESS_BLD_NONINV_SYS",
            PRESS_BLD_NONINV_DIA => "MDC_PRESS_BLD_NONINV_DIA",
            PRESS_BLD_NONINV_MEAN => "MDC_PRESS_BLD_NONINV_MEAN",
            PRESS_CUFF => "MDC_PRESS_CUFF",
            PULS_OXIM_PERF_REL => "MDC_PULS_OXIM_PERF_REL",
            ECG_TIME_PD_RR_GL => "MDC_ECG_TIME_PD_RR_GL",
            AWAY_CO2_ET => "MDC_AWAY_CO2_ET",
            RESP_RATE => "MDC_RESP_RATE",
            EVT_APNEA => "MDC_EVT_APNEA",
            EVT_HI => "MDC_EVT_HI",
            EVT_LO => "MDC_EVT_LO",
            EVT_ALARM => "MDC_EVT_ALARM",
            _ => return None,
        })
    }
}

impl Unit {
    /// The MDC dimension code and reference id, where Vigil has a verified one.
    pub fn mdc(self) -> Option<(u32, &'static str)> {
        match self {
            Unit::Percent => Some((262_688, "MDC_DIM_PERCENT")),
            Unit::BeatsPerMinute => Some((264_864, "MDC_DIM_BEAT_PER_MIN")),
            Unit::MmHg => Some((266_016, "MDC_DIM_MMHG")),
            Unit::BreathsPerMinute => Some((264_928, "MDC_DIM_RESP_PER_MIN")),
            Unit::KPa | Unit::Second | Unit::KiloJoule => None,
        }
    }

    /// The unit as written in JSON and reports.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Percent => "%",
            Unit::BeatsPerMinute => "bpm",
            Unit::MmHg => "mmHg",
            Unit::KPa => "kPa",
            Unit::Second => "s",
            Unit::KiloJoule => "kJ",
            Unit::BreathsPerMinute => "/min",
        }
    }

    /// The unit from its symbol.
    pub fn from_symbol(symbol: &str) -> Option<Unit> {
        [
            Unit::Percent,
            Unit::BeatsPerMinute,
            Unit::MmHg,
            Unit::KPa,
            Unit::Second,
            Unit::KiloJoule,
            Unit::BreathsPerMinute,
        ]
        .into_iter()
        .find(|u| u.symbol() == symbol)
    }
}

impl Vital {
    /// The MDC code for this vital when the source gives no more context. Pulse rate defaults to
    /// the oximeter code; cuffs use [`mdc::PULS_RATE_NON_INV`]. Energy expended has no code Vigil
    /// has verified, so it carries none rather than a guess.
    pub fn default_mdc(self) -> Option<u32> {
        Some(match self {
            Vital::Spo2 => mdc::PULS_OXIM_SAT_O2,
            Vital::PulseRate => mdc::PULS_OXIM_PULS_RATE,
            Vital::HeartRate => mdc::ECG_HEART_RATE,
            Vital::NibpSystolic => mdc::PRESS_BLD_NONINV_SYS,
            Vital::NibpDiastolic => mdc::PRESS_BLD_NONINV_DIA,
            Vital::NibpMean => mdc::PRESS_BLD_NONINV_MEAN,
            Vital::CuffPressure => mdc::PRESS_CUFF,
            Vital::PerfusionIndex => mdc::PULS_OXIM_PERF_REL,
            Vital::RrInterval => mdc::ECG_TIME_PD_RR_GL,
            Vital::Etco2 => mdc::AWAY_CO2_ET,
            Vital::RespiratoryRate => mdc::RESP_RATE,
            Vital::EnergyExpended => return None,
        })
    }
}

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
#[serde(into = "ReadingJson", try_from = "ReadingJson")]
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

/// The JSON shape of a [`Reading`].
#[derive(Serialize, Deserialize)]
struct ReadingJson {
    vital: Vital,
    value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unavailable: Option<Unavailable>,
    unit: Unit,
    mdc: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_time: Option<DeviceTime>,
    #[serde(default)]
    flags: Flags,
}

impl From<Reading> for ReadingJson {
    fn from(r: Reading) -> Self {
        let (value, unavailable) = match r.value {
            Value::Number(v) => (Some(v), None),
            Value::Unavailable(why) => (None, Some(why)),
        };
        ReadingJson {
            vital: r.vital,
            value,
            unavailable,
            unit: r.unit,
            mdc: r.mdc,
            device_time: r.device_time,
            flags: r.flags,
        }
    }
}

impl TryFrom<ReadingJson> for Reading {
    type Error = &'static str;
    fn try_from(j: ReadingJson) -> Result<Self, Self::Error> {
        let value = match (j.value, j.unavailable) {
            (Some(v), None) => Value::Number(v),
            (None, Some(why)) => Value::Unavailable(why),
            (None, None) => return Err("a reading needs a value or an unavailable reason"),
            (Some(_), Some(_)) => return Err("a reading cannot have both a value and a reason"),
        };
        Ok(Reading {
            vital: j.vital,
            value,
            unit: j.unit,
            mdc: j.mdc,
            device_time: j.device_time,
            flags: j.flags,
        }
        .checked())
    }
}

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

/// A measured parameter Vigil has no [`Vital`] for (an HL7 OBX with an unmapped code, say):
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
