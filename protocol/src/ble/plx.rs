//! Pulse Oximeter service 0x1822: Spot-check 0x2A5E, Continuous 0x2A5F and Features 0x2A60.

use super::{put_date_time, Fields};
use crate::error::DecodeError;
use crate::model::{DeviceEvent, DeviceTime, Flag, Flags, Observation, Reading, Unit, Vital};
use crate::sfloat::Sfloat;
use serde::Serialize;

/// Quality flags from the PLX measurement-status (u16) and device-and-sensor-status (u24) words.
pub fn status_flags(measurement: Option<u16>, device: Option<u32>) -> Flags {
    let m = measurement.unwrap_or(0);
    let d = device.unwrap_or(0);
    let mut flags = Flags::EMPTY;
    flags.set_if(m & (1 << 6) != 0, Flag::EarlyEstimate);
    flags.set_if(m & (1 << 9) != 0, Flag::Stored);
    flags.set_if(m & (1 << 10) != 0, Flag::Demo);
    flags.set_if(m & (1 << 11) != 0, Flag::Test);
    flags.set_if(m & (1 << 12) != 0, Flag::Calibrating);
    flags.set_if(m & (1 << 13) != 0, Flag::Invalid); // measurement unavailable
    flags.set_if(m & (1 << 14) != 0, Flag::Questionable);
    flags.set_if(m & (1 << 15) != 0, Flag::Invalid);
    // Equipment malfunction, unknown sensor, sensor malfunctioning.
    flags.set_if(d & (1 << 1 | 1 << 12 | 1 << 14) != 0, Flag::SensorDefective);
    // Signal-processing irregularity, inadequate/poor signal, non-pulsatile, questionable pulse.
    flags.set_if(
        d & (1 << 2 | 1 << 3 | 1 << 4 | 1 << 7 | 1 << 8) != 0,
        Flag::Questionable,
    );
    flags.set_if(d & (1 << 5) != 0, Flag::LowPerfusion);
    flags.set_if(d & (1 << 6) != 0, Flag::Artefact);
    flags.set_if(d & (1 << 10) != 0, Flag::Interference);
    // Unconnected to user, displaced, disconnected.
    flags.set_if(d & (1 << 11 | 1 << 13 | 1 << 15) != 0, Flag::SensorOff);
    flags
}

fn readings(
    spo2: Sfloat,
    pulse_rate: Sfloat,
    pai: Option<Sfloat>,
    time: Option<DeviceTime>,
    flags: Flags,
) -> Vec<Observation> {
    let mut out: Vec<Observation> = vec![
        Reading::from_value(Vital::Spo2, spo2.value(), Unit::Percent),
        Reading::from_value(Vital::PulseRate, pulse_rate.value(), Unit::BeatsPerMinute),
    ]
    .into_iter()
    .chain(pai.map(|p| Reading::from_value(Vital::PerfusionIndex, p.value(), Unit::Percent)))
    .map(|r| r.with_device_time(time).with_flags(flags).into())
    .collect();
    out.extend(DeviceEvent::from_sensor_flags(flags).map(Observation::Event));
    out
}

/// One PLX Spot-check Measurement value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlxSpotCheck {
    /// SpO2, %.
    pub spo2: Sfloat,
    /// Pulse rate, bpm.
    pub pulse_rate: Sfloat,
    /// Device clock time.
    pub timestamp: Option<DeviceTime>,
    /// Measurement status word.
    pub measurement_status: Option<u16>,
    /// Device and sensor status word (24 bits).
    pub device_status: Option<u32>,
    /// Pulse amplitude index, %.
    pub pulse_amplitude_index: Option<Sfloat>,
    /// The timestamp comes from a clock that was never set (flags bit 4).
    pub clock_not_set: bool,
}

impl PlxSpotCheck {
    /// Decodes one characteristic value.
    pub fn decode(value: &[u8]) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value);
        let flags = f.u8()?;
        let spo2 = Sfloat(f.u16()?);
        let pulse_rate = Sfloat(f.u16()?);
        let timestamp = if flags & 0x01 != 0 {
            Some(f.date_time()?)
        } else {
            None
        };
        let measurement_status = if flags & 0x02 != 0 {
            Some(f.u16()?)
        } else {
            None
        };
        let device_status = if flags & 0x04 != 0 {
            Some(f.u24()?)
        } else {
            None
        };
        let pulse_amplitude_index = if flags & 0x08 != 0 {
            Some(Sfloat(f.u16()?))
        } else {
            None
        };
        Ok(PlxSpotCheck {
            spo2,
            pulse_rate,
            timestamp,
            measurement_status,
            device_status,
            pulse_amplitude_index,
            clock_not_set: flags & 0x10 != 0,
        })
    }

    /// Encodes the value as an oximeter sends it.
    pub fn encode(&self) -> Vec<u8> {
        let mut flags = 0u8;
        flags |= u8::from(self.timestamp.is_some());
        flags |= u8::from(self.measurement_status.is_some()) << 1;
        flags |= u8::from(self.device_status.is_some()) << 2;
        flags |= u8::from(self.pulse_amplitude_index.is_some()) << 3;
        flags |= u8::from(self.clock_not_set) << 4;
        let mut out = vec![flags];
        out.extend_from_slice(&self.spo2.0.to_le_bytes());
        out.extend_from_slice(&self.pulse_rate.0.to_le_bytes());
        if let Some(t) = &self.timestamp {
            put_date_time(&mut out, t);
        }
        if let Some(s) = self.measurement_status {
            out.extend_from_slice(&s.to_le_bytes());
        }
        if let Some(d) = self.device_status {
            out.extend_from_slice(&d.to_le_bytes()[..3]);
        }
        if let Some(p) = self.pulse_amplitude_index {
            out.extend_from_slice(&p.0.to_le_bytes());
        }
        out
    }

    /// SpO2, pulse rate and PAI readings, flagged as spot-checks, plus sensor events.
    pub fn observations(&self) -> Vec<Observation> {
        let mut flags = status_flags(self.measurement_status, self.device_status);
        flags.insert(Flag::SpotCheck);
        flags.set_if(self.clock_not_set, Flag::ClockNotSet);
        readings(
            self.spo2,
            self.pulse_rate,
            self.pulse_amplitude_index,
            self.timestamp,
            flags,
        )
    }
}

/// One PLX Continuous Measurement value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlxContinuous {
    /// SpO2PR-Normal: SpO2, %.
    pub spo2: Sfloat,
    /// SpO2PR-Normal: pulse rate, bpm.
    pub pulse_rate: Sfloat,
    /// SpO2PR-Fast (SpO2, PR).
    pub fast: Option<(Sfloat, Sfloat)>,
    /// SpO2PR-Slow (SpO2, PR).
    pub slow: Option<(Sfloat, Sfloat)>,
    /// Measurement status word.
    pub measurement_status: Option<u16>,
    /// Device and sensor status word (24 bits).
    pub device_status: Option<u32>,
    /// Pulse amplitude index, %.
    pub pulse_amplitude_index: Option<Sfloat>,
}

impl PlxContinuous {
    /// Decodes one characteristic value.
    pub fn decode(value: &[u8]) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value);
        let flags = f.u8()?;
        let spo2 = Sfloat(f.u16()?);
        let pulse_rate = Sfloat(f.u16()?);
        let mut pair = |bit: u8| -> Result<Option<(Sfloat, Sfloat)>, DecodeError> {
            Ok(if flags & bit != 0 {
                Some((Sfloat(f.u16()?), Sfloat(f.u16()?)))
            } else {
                None
            })
        };
        let fast = pair(0x01)?;
        let slow = pair(0x02)?;
        let measurement_status = if flags & 0x04 != 0 {
            Some(f.u16()?)
        } else {
            None
        };
        let device_status = if flags & 0x08 != 0 {
            Some(f.u24()?)
        } else {
            None
        };
        let pulse_amplitude_index = if flags & 0x10 != 0 {
            Some(Sfloat(f.u16()?))
        } else {
            None
        };
        Ok(PlxContinuous {
            spo2,
            pulse_rate,
            fast,
            slow,
            measurement_status,
            device_status,
            pulse_amplitude_index,
        })
    }

    /// Encodes the value as an oximeter sends it.
    pub fn encode(&self) -> Vec<u8> {
        let mut flags = 0u8;
        flags |= u8::from(self.fast.is_some());
        flags |= u8::from(self.slow.is_some()) << 1;
        flags |= u8::from(self.measurement_status.is_some()) << 2;
        flags |= u8::from(self.device_status.is_some()) << 3;
        flags |= u8::from(self.pulse_amplitude_index.is_some()) << 4;
        let mut out = vec![flags];
        out.extend_from_slice(&self.spo2.0.to_le_bytes());
        out.extend_from_slice(&self.pulse_rate.0.to_le_bytes());
        for (s, p) in [self.fast, self.slow].into_iter().flatten() {
            out.extend_from_slice(&s.0.to_le_bytes());
            out.extend_from_slice(&p.0.to_le_bytes());
        }
        if let Some(s) = self.measurement_status {
            out.extend_from_slice(&s.to_le_bytes());
        }
        if let Some(d) = self.device_status {
            out.extend_from_slice(&d.to_le_bytes()[..3]);
        }
        if let Some(p) = self.pulse_amplitude_index {
            out.extend_from_slice(&p.0.to_le_bytes());
        }
        out
    }

    /// The normal-averaged SpO2 and pulse rate, PAI, and sensor events. The fast and slow
    /// averages stay in the decoded value; alarms and the display use the normal one.
    pub fn observations(&self) -> Vec<Observation> {
        readings(
            self.spo2,
            self.pulse_rate,
            self.pulse_amplitude_index,
            None,
            status_flags(self.measurement_status, self.device_status),
        )
    }
}

/// PLX Features 0x2A60: which optional fields and status bits the oximeter supports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlxFeatures {
    /// Supported-features word.
    pub supported: u16,
    /// Which measurement-status bits are supported (present when `supported` bit 0 is set).
    pub measurement_status_support: Option<u16>,
    /// Which device-status bits are supported (present when `supported` bit 1 is set).
    pub device_status_support: Option<u32>,
}

impl PlxFeatures {
    /// Decodes the value read from the characteristic.
    pub fn decode(value: &[u8]) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value);
        let supported = f.u16()?;
        let measurement_status_support = if supported & 0x01 != 0 {
            Some(f.u16()?)
        } else {
            None
        };
        let device_status_support = if supported & 0x02 != 0 {
            Some(f.u24()?)
        } else {
            None
        };
        Ok(PlxFeatures {
            supported,
            measurement_status_support,
            device_status_support,
        })
    }

    /// Encodes the value; the masks are written when their `supported` bits say so.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.supported.to_le_bytes().to_vec();
        if self.supported & 0x01 != 0 {
            out.extend_from_slice(&self.measurement_status_support.unwrap_or(0).to_le_bytes());
        }
        if self.supported & 0x02 != 0 {
            out.extend_from_slice(&self.device_status_support.unwrap_or(0).to_le_bytes()[..3]);
        }
        out
    }

    /// Names of the supported features.
    pub fn feature_names(&self) -> Vec<&'static str> {
        const NAMES: [&str; 8] = [
            "measurement_status",
            "device_and_sensor_status",
            "spot_check_storage",
            "spot_check_timestamp",
            "spo2pr_fast",
            "spo2pr_slow",
            "pulse_amplitude_index",
            "multiple_bonds",
        ];
        NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.supported & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect()
    }

    /// The features as one device event.
    pub fn observations(&self) -> Vec<Observation> {
        vec![Observation::Event(DeviceEvent::Features {
            features: self.feature_names().into_iter().map(String::from).collect(),
            measurement_status_support: self.measurement_status_support,
            device_status_support: self.device_status_support,
        })]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Value;
    use proptest::prelude::*;

    fn values(obs: &[Observation]) -> Vec<(Vital, Option<f64>)> {
        obs.iter()
            .filter_map(|o| match o {
                Observation::Reading(r) => Some((r.vital, r.value.number())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn spezi_continuous_with_decimal_exponents() {
        // 00: no optional fields; E8 F3: 0xF3E8 = 1000 × 10⁻¹ = 100.0 %; 84 F3: 900 × 10⁻¹ = 90.0.
        let c = PlxContinuous::decode(&[0x00, 0xE8, 0xF3, 0x84, 0xF3]).unwrap();
        assert_eq!(
            values(&c.observations()),
            vec![(Vital::Spo2, Some(100.0)), (Vital::PulseRate, Some(90.0))]
        );
        let same = PlxContinuous::decode(&[0x00, 0x64, 0x00, 0x5A, 0x00]).unwrap();
        assert_eq!(values(&same.observations()), values(&c.observations()));
    }

    #[test]
    fn spezi_continuous_with_status_and_pai() {
        let bytes = [
            0x1C, // measurement status, device status, PAI
            0x5F, 0x00, // SpO2 95
            0x5A, 0x00, // PR 90
            0x20, 0x00, // measurement status: ongoing
            0x00, 0x00, 0x00, // device status: none
            0x57, 0xF0, // PAI 0xF057 = 87 × 10⁻¹ = 8.7 %
        ];
        let c = PlxContinuous::decode(&bytes).unwrap();
        assert_eq!(c.measurement_status, Some(0x0020));
        assert_eq!(c.device_status, Some(0));
        assert_eq!(
            values(&c.observations()),
            vec![
                (Vital::Spo2, Some(95.0)),
                (Vital::PulseRate, Some(90.0)),
                (Vital::PerfusionIndex, Some(8.7)),
            ]
        );
        assert_eq!(c.encode(), bytes);
    }

    #[test]
    fn pub_dev_continuous() {
        let c = PlxContinuous::decode(&[0x00, 0x62, 0x00, 0x40, 0x00]).unwrap();
        assert_eq!(
            values(&c.observations()),
            vec![(Vital::Spo2, Some(98.0)), (Vital::PulseRate, Some(64.0))]
        );
    }

    #[test]
    fn biased_exponent_counter_example_is_not_98() {
        let c = PlxContinuous::decode(&[0x00, 0x62, 0x80, 0x48, 0x80]).unwrap();
        assert_eq!(c.spo2.value(), Value::Number(98.0 / 1e8));
    }

    #[test]
    fn fast_and_slow_pairs_are_decoded() {
        let bytes = [
            0x03, 0x61, 0x00, 0x48, 0x00, // normal 97 / 72
            0x60, 0x00, 0x49, 0x00, // fast 96 / 73
            0x62, 0x00, 0x47, 0x00, // slow 98 / 71
        ];
        let c = PlxContinuous::decode(&bytes).unwrap();
        assert_eq!(
            c.fast.map(|(s, p)| (s.value(), p.value())),
            Some((Value::Number(96.0), Value::Number(73.0)))
        );
        assert_eq!(c.slow.map(|(s, _)| s.value()), Some(Value::Number(98.0)));
    }

    #[test]
    fn sensor_off_and_demo_bits_become_flags_and_events() {
        // device status bit 15: sensor disconnected; measurement status bit 10: demo data.
        let bytes = [0x0C, 0x62, 0x00, 0x48, 0x00, 0x00, 0x04, 0x00, 0x80, 0x00];
        let c = PlxContinuous::decode(&bytes).unwrap();
        let obs = c.observations();
        let Observation::Reading(spo2) = &obs[0] else {
            panic!()
        };
        assert!(spo2.flags.contains(Flag::SensorOff));
        assert!(spo2.flags.contains(Flag::Demo));
        assert_eq!(spo2.clinical_value(), None);
        assert!(obs.contains(&Observation::Event(DeviceEvent::SensorOff)));
    }

    #[test]
    fn spot_check_with_every_field() {
        let bytes = [
            0x1F, // timestamp, measurement status, device status, PAI, clock not set
            0x61, 0x00, 0x48, 0x00, // 97 %, 72 bpm
            0xEA, 0x07, 0x0B, 0x17, 0x0A, 0x1E, 0x00, // 2026-11-23 10:30:00
            0x80, 0x00, // validated
            0x20, 0x00, 0x00, // low perfusion
            0x0C, 0x00, // PAI 12 %
        ];
        assert_eq!(
            bytes.len(),
            19,
            "the longest spot-check fits a default-MTU value"
        );
        let s = PlxSpotCheck::decode(&bytes).unwrap();
        assert!(s.clock_not_set);
        assert_eq!(s.timestamp.unwrap().year, Some(2026));
        let obs = s.observations();
        let Observation::Reading(r) = &obs[0] else {
            panic!()
        };
        for f in [Flag::SpotCheck, Flag::ClockNotSet, Flag::LowPerfusion] {
            assert!(r.flags.contains(f), "{f:?}");
        }
        assert_eq!(s.encode(), bytes);
    }

    #[test]
    fn truncated_values_are_rejected_whole() {
        assert!(PlxContinuous::decode(&[0x01, 0x62, 0x00, 0x48, 0x00, 0x60]).is_err());
        assert!(PlxContinuous::decode(&[0x08, 0x62, 0x00, 0x48, 0x00, 0, 0]).is_err());
        assert!(PlxSpotCheck::decode(&[0x01, 0x62, 0x00, 0x48, 0x00]).is_err());
        assert!(PlxFeatures::decode(&[0x03, 0x00, 0xFF, 0xFF]).is_err());
    }

    #[test]
    fn features_with_both_masks() {
        let f = PlxFeatures::decode(&[0x43, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0x00]).unwrap();
        assert_eq!(f.measurement_status_support, Some(0xFFE0));
        assert_eq!(f.device_status_support, Some(0x00FFFF));
        assert_eq!(
            f.feature_names(),
            vec![
                "measurement_status",
                "device_and_sensor_status",
                "pulse_amplitude_index"
            ]
        );
    }

    fn sf() -> impl Strategy<Value = Sfloat> {
        any::<u16>().prop_map(Sfloat)
    }

    proptest! {
        #[test]
        fn continuous_round_trip(
            spo2 in sf(), pr in sf(),
            fast in proptest::option::of((sf(), sf())), slow in proptest::option::of((sf(), sf())),
            ms in proptest::option::of(any::<u16>()), ds in proptest::option::of(0u32..0x100_0000),
            pai in proptest::option::of(sf()),
        ) {
            let c = PlxContinuous { spo2, pulse_rate: pr, fast, slow, measurement_status: ms, device_status: ds, pulse_amplitude_index: pai };
            let bytes = c.encode();
            prop_assert!(bytes.len() <= 20, "fits the default MTU");
            prop_assert_eq!(PlxContinuous::decode(&bytes).unwrap(), c);
        }

        #[test]
        fn spot_check_round_trip(
            spo2 in sf(), pr in sf(),
            ms in proptest::option::of(any::<u16>()), ds in proptest::option::of(0u32..0x100_0000),
            pai in proptest::option::of(sf()), clock_not_set: bool, with_time: bool,
        ) {
            let timestamp = with_time.then_some(DeviceTime { year: Some(2026), month: Some(11), day: Some(23), hour: 1, minute: 2, second: 3 });
            let s = PlxSpotCheck { spo2, pulse_rate: pr, timestamp, measurement_status: ms, device_status: ds, pulse_amplitude_index: pai, clock_not_set };
            prop_assert_eq!(PlxSpotCheck::decode(&s.encode()).unwrap(), s);
        }

        #[test]
        fn features_round_trip(supported: u16, ms: u16, ds in 0u32..0x100_0000) {
            let f = PlxFeatures {
                supported,
                measurement_status_support: (supported & 1 != 0).then_some(ms),
                device_status_support: (supported & 2 != 0).then_some(ds),
            };
            prop_assert_eq!(PlxFeatures::decode(&f.encode()).unwrap(), f);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            if let Ok(v) = PlxContinuous::decode(&bytes) { let _ = v.observations(); }
            if let Ok(v) = PlxSpotCheck::decode(&bytes) { let _ = v.observations(); }
            if let Ok(v) = PlxFeatures::decode(&bytes) { let _ = v.observations(); }
        }
    }
}
