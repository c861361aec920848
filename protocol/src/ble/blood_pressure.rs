//! Blood Pressure Measurement 0x2A35 and Intermediate Cuff Pressure 0x2A36 (service 0x1810).
//!
//! Both share one layout: flags, three SFLOATs (systolic, diastolic, MAP; for ICP the current
//! cuff pressure and two unused fields), then optional timestamp, pulse rate, user id and
//! measurement status.

use super::{put_date_time, Fields};
use crate::error::DecodeError;
use crate::model::{mdc, DeviceTime, Flag, Flags, Observation, Reading, Unit, Vital};
use crate::sfloat::Sfloat;
use serde::Serialize;

const FLAG_KPA: u8 = 0x01;
const FLAG_TIMESTAMP: u8 = 0x02;
const FLAG_PULSE_RATE: u8 = 0x04;
const FLAG_USER_ID: u8 = 0x08;
const FLAG_STATUS: u8 = 0x10;

/// The minimum length: flags and three SFLOATs.
const MIN_LEN: usize = 7;

/// One decoded BPM or ICP value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BloodPressureMeasurement {
    /// Pressures are in kPa rather than mmHg.
    pub kpa: bool,
    /// Systolic (ICP: the current cuff pressure).
    pub systolic: Sfloat,
    /// Diastolic (ICP: unused, ignored whatever it holds).
    pub diastolic: Sfloat,
    /// Mean arterial pressure (ICP: unused, ignored).
    pub mean: Sfloat,
    /// Device clock time of the measurement.
    pub timestamp: Option<DeviceTime>,
    /// Pulse rate, bpm.
    pub pulse_rate: Option<Sfloat>,
    /// The cuff's user index; 0xFF is "unknown user".
    pub user_id: Option<u8>,
    /// Measurement status bits.
    pub status: Option<u16>,
}

impl BloodPressureMeasurement {
    /// Decodes one characteristic value.
    pub fn decode(value: &[u8]) -> Result<Self, DecodeError> {
        if value.len() < MIN_LEN {
            return Err(DecodeError::Truncated {
                needed: MIN_LEN,
                got: value.len(),
            });
        }
        let mut f = Fields::new(value);
        let flags = f.u8()?;
        let systolic = Sfloat(f.u16()?);
        let diastolic = Sfloat(f.u16()?);
        let mean = Sfloat(f.u16()?);
        let timestamp = if flags & FLAG_TIMESTAMP != 0 {
            Some(f.date_time()?)
        } else {
            None
        };
        let pulse_rate = if flags & FLAG_PULSE_RATE != 0 {
            Some(Sfloat(f.u16()?))
        } else {
            None
        };
        let user_id = if flags & FLAG_USER_ID != 0 {
            Some(f.u8()?)
        } else {
            None
        };
        let status = if flags & FLAG_STATUS != 0 {
            Some(f.u16()?)
        } else {
            None
        };
        Ok(BloodPressureMeasurement {
            kpa: flags & FLAG_KPA != 0,
            systolic,
            diastolic,
            mean,
            timestamp,
            pulse_rate,
            user_id,
            status,
        })
    }

    /// Encodes the value as a cuff sends it.
    pub fn encode(&self) -> Vec<u8> {
        let mut flags = 0;
        for (present, bit) in [
            (self.kpa, FLAG_KPA),
            (self.timestamp.is_some(), FLAG_TIMESTAMP),
            (self.pulse_rate.is_some(), FLAG_PULSE_RATE),
            (self.user_id.is_some(), FLAG_USER_ID),
            (self.status.is_some(), FLAG_STATUS),
        ] {
            if present {
                flags |= bit;
            }
        }
        let mut out = vec![flags];
        for v in [self.systolic, self.diastolic, self.mean] {
            out.extend_from_slice(&v.0.to_le_bytes());
        }
        if let Some(t) = &self.timestamp {
            put_date_time(&mut out, t);
        }
        if let Some(pr) = self.pulse_rate {
            out.extend_from_slice(&pr.0.to_le_bytes());
        }
        if let Some(u) = self.user_id {
            out.push(u);
        }
        if let Some(s) = self.status {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    fn unit(&self) -> Unit {
        if self.kpa {
            Unit::KPa
        } else {
            Unit::MmHg
        }
    }

    /// Quality flags from the measurement status word.
    pub fn flags(&self) -> Flags {
        let s = self.status.unwrap_or(0);
        let mut flags = Flags::EMPTY;
        flags.set_if(s & 0x0001 != 0, Flag::BodyMovement);
        flags.set_if(s & 0x0002 != 0, Flag::CuffLoose);
        flags.set_if(s & 0x0004 != 0, Flag::IrregularPulse);
        flags.set_if(s & 0x0020 != 0, Flag::ImproperPosition);
        flags
    }

    /// Readings of a completed measurement (BPM 0x2A35).
    pub fn measurement_observations(&self) -> Vec<Observation> {
        let flags = self.flags();
        let unit = self.unit();
        let reading = |vital, v: Sfloat| {
            Reading::from_value(vital, v.value(), unit)
                .with_device_time(self.timestamp)
                .with_flags(flags)
                .into()
        };
        let mut out = vec![
            reading(Vital::NibpSystolic, self.systolic),
            reading(Vital::NibpDiastolic, self.diastolic),
            reading(Vital::NibpMean, self.mean),
        ];
        if let Some(pr) = self.pulse_rate {
            out.push(
                Reading::from_value(Vital::PulseRate, pr.value(), Unit::BeatsPerMinute)
                    .with_mdc(mdc::PULS_RATE_NON_INV)
                    .with_device_time(self.timestamp)
                    .with_flags(flags)
                    .into(),
            );
        }
        out
    }

    /// The reading of an intermediate cuff pressure value (ICP 0x2A36): the cuff pressure only.
    pub fn cuff_observations(&self) -> Vec<Observation> {
        vec![
            Reading::from_value(Vital::CuffPressure, self.systolic.value(), self.unit())
                .with_device_time(self.timestamp)
                .into(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Unavailable, Value};
    use crate::sfloat;
    use proptest::prelude::*;

    fn numbers(obs: &[Observation]) -> Vec<(Vital, Option<f64>)> {
        obs.iter()
            .map(|o| match o {
                Observation::Reading(r) => (r.vital, r.value.number()),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn nordic_full_bpm_vector() {
        let bytes = [
            0x1E, // flags: mmHg, timestamp, pulse rate, user id, status
            0x8A, 0x00, // systolic 138
            0x58, 0x00, // diastolic 88
            0x78, 0x00, // MAP 120
            0x00, 0x00, 0x04, 0x11, 0x14, 0x29, 0x3B, // year 0 (unknown), April 17, 20:41:59
            0x3C, 0x00, // pulse rate 60
            0x01, // user 1
            0x27, 0x00, // status: movement, cuff loose, irregular pulse, improper position
        ];
        let m = BloodPressureMeasurement::decode(&bytes).unwrap();
        assert!(!m.kpa);
        assert_eq!(m.user_id, Some(1));
        assert_eq!(m.status, Some(0x0027));
        let t = m.timestamp.unwrap();
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (None, Some(4), Some(17), 20, 41, 59)
        );
        let obs = m.measurement_observations();
        assert_eq!(
            numbers(&obs),
            vec![
                (Vital::NibpSystolic, Some(138.0)),
                (Vital::NibpDiastolic, Some(88.0)),
                (Vital::NibpMean, Some(120.0)),
                (Vital::PulseRate, Some(60.0)),
            ]
        );
        let Observation::Reading(pr) = &obs[3] else {
            panic!()
        };
        assert_eq!(pr.mdc, Some(mdc::PULS_RATE_NON_INV));
        for f in [
            Flag::BodyMovement,
            Flag::CuffLoose,
            Flag::IrregularPulse,
            Flag::ImproperPosition,
        ] {
            assert!(pr.flags.contains(f), "{f:?}");
        }
        assert_eq!(m.encode(), bytes);
    }

    #[test]
    fn minimal_bpm_with_decimal_exponent() {
        // 00: mmHg only; E9 F4: 0xF4E9 = 1257 × 10⁻¹; 52 00: 82; C6 F3: 0xF3C6 = 966 × 10⁻¹.
        let m =
            BloodPressureMeasurement::decode(&[0x00, 0xE9, 0xF4, 0x52, 0x00, 0xC6, 0xF3]).unwrap();
        assert_eq!(
            numbers(&m.measurement_observations()),
            vec![
                (Vital::NibpSystolic, Some(125.7)),
                (Vital::NibpDiastolic, Some(82.0)),
                (Vital::NibpMean, Some(96.6)),
            ]
        );
    }

    #[test]
    fn too_short_is_rejected() {
        assert_eq!(
            BloodPressureMeasurement::decode(&[0x01, 0x02, 0x03, 0x04, 0x05, 0x06]),
            Err(DecodeError::Truncated { needed: 7, got: 6 })
        );
    }

    #[test]
    fn pub_dev_vector_with_pulse_rate() {
        let m = BloodPressureMeasurement::decode(&[
            0x04, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00, 0x48, 0x00,
        ])
        .unwrap();
        assert_eq!(
            numbers(&m.measurement_observations()),
            vec![
                (Vital::NibpSystolic, Some(120.0)),
                (Vital::NibpDiastolic, Some(80.0)),
                (Vital::NibpMean, Some(93.0)),
                (Vital::PulseRate, Some(72.0)),
            ]
        );
    }

    #[test]
    fn icp_vectors() {
        let full = [
            0x1E, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x11, 0x14, 0x29, 0x3B,
            0x3C, 0x00, 0x01, 0x27, 0x00,
        ];
        let m = BloodPressureMeasurement::decode(&full).unwrap();
        assert_eq!(
            numbers(&m.cuff_observations()),
            vec![(Vital::CuffPressure, Some(4.0))]
        );
        let m = BloodPressureMeasurement::decode(&[0x00, 0xD7, 0xF0, 0, 0, 0, 0]).unwrap();
        assert_eq!(
            numbers(&m.cuff_observations()),
            vec![(Vital::CuffPressure, Some(21.5))]
        );
    }

    #[test]
    fn kpa_keeps_its_unit() {
        // 01: kPa; 0xF0A0 = 160 × 10⁻¹ = 16.0 kPa.
        let m =
            BloodPressureMeasurement::decode(&[0x01, 0xA0, 0xF0, 0x6A, 0xF0, 0x7E, 0xF0]).unwrap();
        let Observation::Reading(sys) = &m.measurement_observations()[0] else {
            panic!()
        };
        assert_eq!(sys.unit, Unit::KPa);
        assert_eq!(sys.value, Value::Number(16.0));
        assert!((sys.in_canonical_unit().unwrap() - 120.0).abs() < 0.01);
    }

    #[test]
    fn failed_cuff_reserved_values_are_absent() {
        let m =
            BloodPressureMeasurement::decode(&[0x00, 0xFF, 0x07, 0x01, 0x08, 0x00, 0x08]).unwrap();
        let obs = m.measurement_observations();
        let reasons: Vec<_> = obs
            .iter()
            .map(|o| match o {
                Observation::Reading(r) => r.value,
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            reasons,
            vec![
                Value::Unavailable(Unavailable::NotANumber),
                Value::Unavailable(Unavailable::Reserved),
                Value::Unavailable(Unavailable::NotAtThisResolution),
            ]
        );
    }

    #[test]
    fn flags_promising_missing_fields_reject_the_value() {
        for flags in [FLAG_TIMESTAMP, FLAG_PULSE_RATE, FLAG_USER_ID, FLAG_STATUS] {
            let value = [flags, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00];
            assert!(
                matches!(
                    BloodPressureMeasurement::decode(&value),
                    Err(DecodeError::Truncated { .. })
                ),
                "flags {flags:#04x}"
            );
        }
    }

    fn arb_sfloat() -> impl Strategy<Value = Sfloat> {
        any::<u16>().prop_map(Sfloat)
    }

    fn arb_time() -> impl Strategy<Value = DeviceTime> {
        (0u16..3000, 0u8..13, 0u8..32, 0u8..24, 0u8..60, 0u8..60).prop_map(
            |(y, mo, d, h, mi, s)| DeviceTime {
                year: (y != 0).then_some(y),
                month: (mo != 0).then_some(mo),
                day: (d != 0).then_some(d),
                hour: h,
                minute: mi,
                second: s,
            },
        )
    }

    proptest! {
        #[test]
        fn round_trip(
            kpa: bool,
            sys in arb_sfloat(), dia in arb_sfloat(), mean in arb_sfloat(),
            timestamp in proptest::option::of(arb_time()),
            pulse_rate in proptest::option::of(arb_sfloat()),
            user_id in proptest::option::of(any::<u8>()),
            status in proptest::option::of(any::<u16>()),
        ) {
            let m = BloodPressureMeasurement { kpa, systolic: sys, diastolic: dia, mean, timestamp, pulse_rate, user_id, status };
            prop_assert_eq!(BloodPressureMeasurement::decode(&m.encode()).unwrap(), m);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            if let Ok(m) = BloodPressureMeasurement::decode(&bytes) {
                let _ = m.measurement_observations();
                let _ = m.cuff_observations();
            }
        }
    }

    #[test]
    fn sfloat_helper_builds_values() {
        assert_eq!(Sfloat::from_number(125.7, -1), Some(Sfloat(0xF4E9)));
        assert_eq!(
            Sfloat(sfloat::NAN).value(),
            Value::Unavailable(Unavailable::NotANumber)
        );
    }
}
