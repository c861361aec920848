//! The vitals Vigil carries, their units, and their IEEE 11073 codes.

use serde::{Deserialize, Serialize};
use std::fmt;

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
            // 4::3843: pascal (3840) with the kilo prefix (3).
            Unit::KPa => Some((265_987, "MDC_DIM_KILO_PASCAL")),
            Unit::Second | Unit::KiloJoule => None,
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
