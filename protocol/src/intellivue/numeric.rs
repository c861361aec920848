//! Numeric values: the 32-bit FLOAT-Type, the MeasurementState bits, the monitor's absolute time,
//! and the physiological ids Vigil maps to its vitals.

use crate::model::{
    mdc, DeviceTime, Flag, Flags, Observation, Reading, Unavailable, Unit, UnknownParameter, Value,
    Vital,
};

/// FLOAT-Type mantissa specials (24-bit), as in IEEE 11073-20601.
const NAN: u32 = 0x7F_FFFF;
const NRES: u32 = 0x80_0000;
const POS_INFINITY: u32 = 0x7F_FFFE;
const NEG_INFINITY: u32 = 0x80_0002;
const RESERVED: u32 = 0x80_0001;

/// Decodes a FLOAT-Type (8-bit signed exponent, 24-bit signed mantissa, big-endian on the wire).
/// The special mantissas are never numbers.
pub fn float_value(raw: u32) -> Value {
    let mantissa = raw & 0x00FF_FFFF;
    let special = match mantissa {
        NAN => Some(Unavailable::NotANumber),
        NRES => Some(Unavailable::NotAtThisResolution),
        POS_INFINITY => Some(Unavailable::AboveRange),
        NEG_INFINITY => Some(Unavailable::BelowRange),
        RESERVED => Some(Unavailable::Reserved),
        _ => None,
    };
    if let Some(why) = special {
        return Value::Unavailable(why);
    }
    let exponent = (raw >> 24) as u8 as i8;
    // Sign-extend the 24-bit mantissa.
    let m = ((mantissa << 8) as i32) >> 8;
    Value::Number(m as f64 * 10f64.powi(exponent as i32))
}

/// Encodes `mantissa × 10^exponent` as a FLOAT-Type (the simulator and tests use it).
pub fn float_raw(mantissa: i32, exponent: i8) -> u32 {
    ((exponent as u8 as u32) << 24) | (mantissa as u32 & 0x00FF_FFFF)
}

/// The FLOAT-Type NaN (no value).
pub const FLOAT_NAN: u32 = NAN;

/// MeasurementState bits (guide, "MeasurementState").
pub mod state {
    /// The value is invalid.
    pub const INVALID: u16 = 0x8000;
    /// The value is questionable.
    pub const QUESTIONABLE: u16 = 0x4000;
    /// The value is not available.
    pub const UNAVAILABLE: u16 = 0x2000;
    /// Calibration is ongoing.
    pub const CALIBRATION_ONGOING: u16 = 0x1000;
    /// Test data.
    pub const TEST_DATA: u16 = 0x0800;
    /// Demonstration data.
    pub const DEMO_DATA: u16 = 0x0400;
    /// The value is validated.
    pub const VALIDATED_DATA: u16 = 0x0080;
    /// An early indication (e.g. NIBP systolic before diastolic and mean).
    pub const EARLY_INDICATION: u16 = 0x0040;
    /// The measurement is ongoing.
    pub const MSMT_ONGOING: u16 = 0x0020;
    /// The value is in alarm on the monitor.
    pub const MSMT_STATE_IN_ALARM: u16 = 0x0002;
    /// The monitor's alarm for it is inhibited.
    pub const MSMT_STATE_AL_INHIBITED: u16 = 0x0001;
}

/// The flags a MeasurementState gives a reading. Invalid voids the number (see
/// [`Reading::with_flags`]); questionable, calibrating and early indication question it; demo
/// and test mark it not patient data.
pub fn state_flags(bits: u16) -> Flags {
    let mut flags = Flags::EMPTY;
    flags.set_if(bits & state::INVALID != 0, Flag::Invalid);
    flags.set_if(bits & state::QUESTIONABLE != 0, Flag::Questionable);
    flags.set_if(bits & state::CALIBRATION_ONGOING != 0, Flag::Calibrating);
    flags.set_if(bits & state::TEST_DATA != 0, Flag::Test);
    flags.set_if(bits & state::DEMO_DATA != 0, Flag::Demo);
    flags.set_if(bits & state::EARLY_INDICATION != 0, Flag::EarlyEstimate);
    flags
}

/// Physiological ids (16-bit MDC terms of partition SCADA) Vigil maps.
pub mod physio {
    /// NOM_ECG_CARD_BEAT_RATE: heart rate from the ECG.
    pub const ECG_CARD_BEAT_RATE: u16 = 0x4182;
    /// NOM_PLETH_PULS_RATE: pulse rate from the pleth.
    pub const PLETH_PULS_RATE: u16 = 0x4822;
    /// NOM_PRESS_BLD_NONINV: the NIBP compound.
    pub const PRESS_BLD_NONINV: u16 = 0x4A04;
    /// NOM_PRESS_BLD_NONINV_SYS.
    pub const PRESS_BLD_NONINV_SYS: u16 = 0x4A05;
    /// NOM_PRESS_BLD_NONINV_DIA.
    pub const PRESS_BLD_NONINV_DIA: u16 = 0x4A06;
    /// NOM_PRESS_BLD_NONINV_MEAN.
    pub const PRESS_BLD_NONINV_MEAN: u16 = 0x4A07;
    /// NOM_PULS_OXIM_PERF_REL: perfusion indicator.
    pub const PULS_OXIM_PERF_REL: u16 = 0x4BB0;
    /// NOM_PULS_OXIM_SAT_O2: SpO2.
    pub const PULS_OXIM_SAT_O2: u16 = 0x4BB8;
    /// NOM_RESP_RATE.
    pub const RESP_RATE: u16 = 0x500A;
    /// NOM_AWAY_RESP_RATE: respiratory rate from the airway (capnography).
    pub const AWAY_RESP_RATE: u16 = 0x5012;
    /// NOM_AWAY_CO2_ET: end-tidal CO2.
    pub const AWAY_CO2_ET: u16 = 0x50B0;
    /// NOM_PRESS_BLD_NONINV_PULS_RATE: pulse rate from the cuff (kept as an unknown parameter:
    /// Vigil takes pulse from the pleth).
    pub const PRESS_BLD_NONINV_PULS_RATE: u16 = 0xF0E5;
}

/// Unit codes (16-bit MDC dimension terms).
pub mod unit {
    /// NOM_DIM_PERCENT.
    pub const PERCENT: u16 = 0x0220;
    /// NOM_DIM_BEAT_PER_MIN.
    pub const BEAT_PER_MIN: u16 = 0x0AA0;
    /// NOM_DIM_RESP_PER_MIN.
    pub const RESP_PER_MIN: u16 = 0x0AE0;
    /// NOM_DIM_KILO_PASCAL.
    pub const KILO_PASCAL: u16 = 0x0F03;
    /// NOM_DIM_MMHG.
    pub const MMHG: u16 = 0x0F20;
}

/// One NuObsValue: {physio_id, MeasurementState, unit_code, FLOAT-Type value}, 10 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NuObsValue {
    /// Physiological id.
    pub physio_id: u16,
    /// MeasurementState bits.
    pub state: u16,
    /// Unit code.
    pub unit_code: u16,
    /// FLOAT-Type value.
    pub value: u32,
}

impl NuObsValue {
    /// Wire length.
    pub const LEN: usize = 10;

    /// Reads one from exactly 10 bytes.
    pub fn read(b: &[u8]) -> Option<NuObsValue> {
        let b: &[u8; 10] = b.get(..Self::LEN)?.try_into().ok()?;
        Some(NuObsValue {
            physio_id: u16::from_be_bytes([b[0], b[1]]),
            state: u16::from_be_bytes([b[2], b[3]]),
            unit_code: u16::from_be_bytes([b[4], b[5]]),
            value: u32::from_be_bytes([b[6], b[7], b[8], b[9]]),
        })
    }

    /// The 10 wire bytes.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.physio_id.to_be_bytes());
        out.extend_from_slice(&self.state.to_be_bytes());
        out.extend_from_slice(&self.unit_code.to_be_bytes());
        out.extend_from_slice(&self.value.to_be_bytes());
    }

    /// The observation Vigil makes of it: a reading of a mapped vital in a unit it expects, or
    /// an unknown parameter with the physio id (never dropped, never guessed).
    pub fn observation(&self, device_time: Option<DeviceTime>) -> Observation {
        let value = if self.state & state::UNAVAILABLE != 0 {
            Value::Unavailable(Unavailable::Missing)
        } else {
            float_value(self.value)
        };
        let Some((vital, unit, code)) = mapped(self.physio_id, self.unit_code) else {
            return UnknownParameter {
                code: format!("intellivue 0x{:04X}", self.physio_id),
                value: value.number(),
                unit: Some(format!("0x{:04X}", self.unit_code)),
            }
            .into();
        };
        let mut reading = Reading::from_value(vital, value, unit)
            .with_flags(state_flags(self.state))
            .with_device_time(device_time);
        if let Some(code) = code {
            reading = reading.with_mdc(code);
        }
        reading.into()
    }
}

/// The vital, unit and MDC code (when not the vital's default) of a physio id in a unit code.
fn mapped(physio_id: u16, unit_code: u16) -> Option<(Vital, Unit, Option<u32>)> {
    use physio as p;
    let pressure = match unit_code {
        unit::MMHG => Some(Unit::MmHg),
        unit::KILO_PASCAL => Some(Unit::KPa),
        _ => None,
    };
    let want = |expected: u16, u: Unit| (unit_code == expected).then_some(u);
    Some(match physio_id {
        p::PULS_OXIM_SAT_O2 => (Vital::Spo2, want(unit::PERCENT, Unit::Percent)?, None),
        p::PLETH_PULS_RATE => (
            Vital::PulseRate,
            want(unit::BEAT_PER_MIN, Unit::BeatsPerMinute)?,
            Some(mdc::PULS_OXIM_PULS_RATE),
        ),
        p::ECG_CARD_BEAT_RATE => (
            Vital::HeartRate,
            want(unit::BEAT_PER_MIN, Unit::BeatsPerMinute)?,
            None,
        ),
        p::PRESS_BLD_NONINV_SYS => (Vital::NibpSystolic, pressure?, None),
        p::PRESS_BLD_NONINV_DIA => (Vital::NibpDiastolic, pressure?, None),
        p::PRESS_BLD_NONINV_MEAN => (Vital::NibpMean, pressure?, None),
        p::AWAY_CO2_ET => (Vital::Etco2, pressure?, None),
        p::RESP_RATE | p::AWAY_RESP_RATE => (
            Vital::RespiratoryRate,
            want(unit::RESP_PER_MIN, Unit::BreathsPerMinute)?,
            None,
        ),
        p::PULS_OXIM_PERF_REL => (
            Vital::PerfusionIndex,
            want(unit::PERCENT, Unit::Percent)?,
            None,
        ),
        _ => return None,
    })
}

/// The monitor's AbsoluteTime: 8 BCD bytes century, year, month, day, hour, minute, second,
/// fraction. All 0xFF (or any byte that is not BCD) means the monitor does not give it.
pub fn absolute_time(b: &[u8]) -> Option<DeviceTime> {
    let b: &[u8; 8] = b.get(..8)?.try_into().ok()?;
    let bcd = |x: u8| (x >> 4 < 10 && x & 0x0F < 10).then(|| (x >> 4) * 10 + (x & 0x0F));
    let century = bcd(b[0])? as u16;
    let year = century * 100 + bcd(b[1])? as u16;
    let (month, day) = (bcd(b[2])?, bcd(b[3])?);
    let (hour, minute, second) = (bcd(b[4])?, bcd(b[5])?, bcd(b[6])?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    Some(DeviceTime {
        year: Some(year),
        month: Some(month),
        day: Some(day),
        hour,
        minute,
        second: second.min(59),
    })
}

/// Encodes a device time as AbsoluteTime (fraction 0); `None` as the monitor's "no time".
pub fn absolute_time_bytes(t: Option<DeviceTime>) -> [u8; 8] {
    let Some(t) = t else {
        return [0xFF; 8];
    };
    let bcd = |x: u8| ((x / 10) << 4) | (x % 10);
    let year = t.year.unwrap_or(0);
    [
        bcd((year / 100) as u8),
        bcd((year % 100) as u8),
        bcd(t.month.unwrap_or(0)),
        bcd(t.day.unwrap_or(0)),
        bcd(t.hour),
        bcd(t.minute),
        bcd(t.second),
        0,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn float_vectors() {
        // 0x00000062 = 98 × 10^0; 0xFF0003DE = 990 × 10^-1 = 99.0; 0xFE000C0D = 3085 × 10^-2.
        assert_eq!(float_value(0x0000_0062), Value::Number(98.0));
        assert_eq!(float_value(0xFF00_03DE), Value::Number(99.0));
        assert_eq!(float_value(0xFE00_0C0D), Value::Number(30.85));
        // Negative mantissa: 0x00FFFFFF = -1.
        assert_eq!(float_value(0x00FF_FFFF), Value::Number(-1.0));
    }

    #[test]
    fn float_specials_are_never_numbers() {
        use Unavailable::*;
        for (raw, why) in [
            (0x007F_FFFF, NotANumber),
            (0x0080_0000, NotAtThisResolution),
            (0x007F_FFFE, AboveRange),
            (0x0080_0002, BelowRange),
            (0x0080_0001, Reserved),
        ] {
            assert_eq!(float_value(raw), Value::Unavailable(why), "{raw:#010x}");
        }
    }

    fn spo2(state: u16, value: u32) -> Observation {
        NuObsValue {
            physio_id: physio::PULS_OXIM_SAT_O2,
            state,
            unit_code: unit::PERCENT,
            value,
        }
        .observation(None)
    }

    fn reading(o: Observation) -> Reading {
        match o {
            Observation::Reading(r) => r,
            other => panic!("expected a reading, got {other:?}"),
        }
    }

    #[test]
    fn state_bits_become_unavailable_values_and_flags() {
        let ok = reading(spo2(0, 97));
        assert_eq!(ok.evidence(), Some(97.0));
        let invalid = reading(spo2(state::INVALID, 97));
        assert_eq!(
            invalid.value,
            Value::Unavailable(Unavailable::FlaggedInvalid)
        );
        let unavailable = reading(spo2(state::UNAVAILABLE, 97));
        assert_eq!(unavailable.value, Value::Unavailable(Unavailable::Missing));
        let demo = reading(spo2(state::DEMO_DATA, 97));
        assert!(demo.flags.contains(Flag::Demo));
        assert_eq!(demo.clinical_value(), None);
        let test = reading(spo2(state::TEST_DATA, 97));
        assert_eq!(test.clinical_value(), None);
        let questionable = reading(spo2(state::QUESTIONABLE, 97));
        assert_eq!(questionable.clinical_value(), Some(97.0));
        assert_eq!(questionable.evidence(), None);
        let calibrating = reading(spo2(state::CALIBRATION_ONGOING, 97));
        assert_eq!(calibrating.evidence(), None);
        let nan = reading(spo2(0, FLOAT_NAN));
        assert_eq!(nan.value, Value::Unavailable(Unavailable::NotANumber));
    }

    #[test]
    fn physio_ids_map_to_vitals_with_units() {
        let nu = |physio_id, unit_code, value| NuObsValue {
            physio_id,
            state: 0,
            unit_code,
            value,
        };
        let pulse = reading(nu(physio::PLETH_PULS_RATE, unit::BEAT_PER_MIN, 72).observation(None));
        assert_eq!(
            (pulse.vital, pulse.mdc),
            (Vital::PulseRate, Some(mdc::PULS_OXIM_PULS_RATE))
        );
        let hr = reading(nu(physio::ECG_CARD_BEAT_RATE, unit::BEAT_PER_MIN, 70).observation(None));
        assert_eq!(hr.vital, Vital::HeartRate);
        // 16.0 kPa systolic = 120 mmHg.
        let sys = reading(
            nu(
                physio::PRESS_BLD_NONINV_SYS,
                unit::KILO_PASCAL,
                float_raw(160, -1),
            )
            .observation(None),
        );
        assert_eq!((sys.vital, sys.unit), (Vital::NibpSystolic, Unit::KPa));
        assert!((sys.in_canonical_unit().unwrap() - 120.0).abs() < 0.01);
        let mean = reading(nu(physio::PRESS_BLD_NONINV_MEAN, unit::MMHG, 90).observation(None));
        assert_eq!((mean.vital, mean.unit), (Vital::NibpMean, Unit::MmHg));
        let pi = reading(
            nu(physio::PULS_OXIM_PERF_REL, unit::PERCENT, float_raw(25, -1)).observation(None),
        );
        assert_eq!(pi.vital, Vital::PerfusionIndex);
        // EtCO2 in kPa (5.3 kPa ≈ 39.8 mmHg) and in mmHg; respiratory rate from either source.
        let etco2 = reading(
            nu(physio::AWAY_CO2_ET, unit::KILO_PASCAL, float_raw(53, -1)).observation(None),
        );
        assert_eq!((etco2.vital, etco2.unit), (Vital::Etco2, Unit::KPa));
        assert!((etco2.in_canonical_unit().unwrap() - 39.75).abs() < 0.01);
        let etco2 = reading(nu(physio::AWAY_CO2_ET, unit::MMHG, 38).observation(None));
        assert_eq!(etco2.evidence(), Some(38.0));
        for id in [physio::RESP_RATE, physio::AWAY_RESP_RATE] {
            let rr = reading(nu(id, unit::RESP_PER_MIN, 14).observation(None));
            assert_eq!(
                (rr.vital, rr.unit),
                (Vital::RespiratoryRate, Unit::BreathsPerMinute)
            );
        }
    }

    #[test]
    fn unmapped_ids_and_unexpected_units_are_unknown_parameters() {
        let nibp_pulse = NuObsValue {
            physio_id: physio::PRESS_BLD_NONINV_PULS_RATE,
            state: 0,
            unit_code: unit::BEAT_PER_MIN,
            value: 70,
        };
        assert_eq!(
            nibp_pulse.observation(None),
            Observation::UnknownParameter(UnknownParameter {
                code: "intellivue 0xF0E5".into(),
                value: Some(70.0),
                unit: Some("0x0AA0".into()),
            })
        );
        // SpO2 in mmHg is not SpO2 Vigil can judge.
        let odd = NuObsValue {
            physio_id: physio::PULS_OXIM_SAT_O2,
            state: 0,
            unit_code: unit::MMHG,
            value: 97,
        };
        assert!(matches!(
            odd.observation(None),
            Observation::UnknownParameter(_)
        ));
    }

    #[test]
    fn absolute_time_is_bcd_and_ff_means_none() {
        let t = absolute_time(&[0x20, 0x26, 0x11, 0x29, 0x18, 0x05, 0x42, 0x00]).unwrap();
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (Some(2026), Some(11), Some(29), 18, 5, 42)
        );
        assert_eq!(absolute_time(&[0xFF; 8]), None);
        assert_eq!(
            absolute_time_bytes(Some(t)),
            [0x20, 0x26, 0x11, 0x29, 0x18, 0x05, 0x42, 0]
        );
    }

    proptest! {
        #[test]
        fn float_round_trip(m in -0x7F_FFF0i32..0x7F_FFF0, e in -6i8..6) {
            let Value::Number(v) = float_value(float_raw(m, e)) else { panic!() };
            let want = m as f64 * 10f64.powi(e as i32);
            prop_assert!((v - want).abs() <= want.abs() * 1e-12);
        }

        #[test]
        fn any_numeric_gives_an_observation(b in proptest::collection::vec(any::<u8>(), 10)) {
            let nu = NuObsValue::read(&b).unwrap();
            let _ = nu.observation(absolute_time(&b[..8]));
        }
    }
}
