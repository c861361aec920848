//! Heart Rate Measurement 0x2A37 (Heart Rate service 0x180D).
//!
//! Layout: flags, HR (u8 or u16), [energy expended u16, kJ], [RR intervals u16, 1/1024 s…].

use super::Fields;
use crate::error::DecodeError;
use crate::model::{Flag, Flags, Observation, Reading, Unavailable, Unit, Value, Vital};
use serde::Serialize;

const FLAG_HR_U16: u8 = 0x01;
const FLAG_ENERGY: u8 = 0x08;
const FLAG_RR: u8 = 0x10;

/// What the sensor says about skin contact (flags bits 2–1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorContact {
    /// The sensor cannot tell (0b00 or 0b01).
    NotSupported,
    /// Supported, and the sensor is not touching the skin: the HR is not current.
    NotDetected,
    /// Supported and detected.
    Detected,
}

/// One decoded Heart Rate Measurement value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeartRateMeasurement {
    /// Heart rate, bpm.
    pub heart_rate: u16,
    /// Whether HR is sent as u16 (flags bit 0) rather than u8.
    pub wide_format: bool,
    /// Skin contact status.
    pub contact: SensorContact,
    /// Cumulative energy expended, kJ; 0xFFFF means saturated.
    pub energy_expended: Option<u16>,
    /// RR intervals in units of 1/1024 s, in the order sent.
    pub rr_intervals: Vec<u16>,
}

impl HeartRateMeasurement {
    /// Decodes one characteristic value.
    pub fn decode(value: &[u8]) -> Result<Self, DecodeError> {
        let mut f = Fields::new(value);
        let flags = f.u8()?;
        let wide_format = flags & FLAG_HR_U16 != 0;
        let heart_rate = if wide_format {
            f.u16()?
        } else {
            f.u8()? as u16
        };
        let contact = match (flags >> 1) & 0b11 {
            0b10 => SensorContact::NotDetected,
            0b11 => SensorContact::Detected,
            _ => SensorContact::NotSupported,
        };
        let energy_expended = if flags & FLAG_ENERGY != 0 {
            Some(f.u16()?)
        } else {
            None
        };
        let mut rr_intervals = Vec::new();
        if flags & FLAG_RR != 0 {
            let rest = f.remaining();
            if rest.is_empty() {
                return Err(DecodeError::Truncated {
                    needed: value.len() + 2,
                    got: value.len(),
                });
            }
            if rest.len() % 2 != 0 {
                return Err(DecodeError::Malformed(format!(
                    "RR interval field has an odd length ({} bytes)",
                    rest.len()
                )));
            }
            rr_intervals = rest
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
        }
        Ok(HeartRateMeasurement {
            heart_rate,
            wide_format,
            contact,
            energy_expended,
            rr_intervals,
        })
    }

    /// Encodes the value as a sensor sends it.
    pub fn encode(&self) -> Vec<u8> {
        let mut flags = match self.contact {
            SensorContact::NotSupported => 0,
            SensorContact::NotDetected => 0b100,
            SensorContact::Detected => 0b110,
        };
        if self.wide_format {
            flags |= FLAG_HR_U16;
        }
        if self.energy_expended.is_some() {
            flags |= FLAG_ENERGY;
        }
        if !self.rr_intervals.is_empty() {
            flags |= FLAG_RR;
        }
        let mut out = vec![flags];
        if self.wide_format {
            out.extend_from_slice(&self.heart_rate.to_le_bytes());
        } else {
            out.push(self.heart_rate as u8);
        }
        if let Some(e) = self.energy_expended {
            out.extend_from_slice(&e.to_le_bytes());
        }
        for rr in &self.rr_intervals {
            out.extend_from_slice(&rr.to_le_bytes());
        }
        out
    }

    /// Readings: heart rate (not current without skin contact), energy, each RR interval.
    pub fn observations(&self) -> Vec<Observation> {
        let mut flags = Flags::EMPTY;
        flags.set_if(self.contact == SensorContact::NotDetected, Flag::NoContact);
        let mut out = vec![Reading::number(
            Vital::HeartRate,
            self.heart_rate as f64,
            Unit::BeatsPerMinute,
        )
        .with_flags(flags)
        .into()];
        if let Some(e) = self.energy_expended {
            let value = if e == u16::MAX {
                Value::Unavailable(Unavailable::AboveRange)
            } else {
                Value::Number(e as f64)
            };
            out.push(Reading::from_value(Vital::EnergyExpended, value, Unit::KiloJoule).into());
        }
        for &rr in &self.rr_intervals {
            out.push(
                Reading::number(Vital::RrInterval, rr as f64 / 1024.0, Unit::Second)
                    .with_flags(flags)
                    .into(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hrm(hex: &[u8]) -> HeartRateMeasurement {
        HeartRateMeasurement::decode(hex).unwrap()
    }

    #[test]
    fn nordic_vector_uint8_no_contact_support() {
        // 00: uint8 HR, contact not supported, no energy, no RR; 55: 85 bpm.
        let m = hrm(&[0x00, 0x55]);
        assert_eq!(m.heart_rate, 85);
        assert_eq!(m.contact, SensorContact::NotSupported);
        assert_eq!(m.energy_expended, None);
        assert!(m.rr_intervals.is_empty());
    }

    #[test]
    fn nordic_vector_contact_not_detected_is_not_current() {
        // 04: contact supported (bit 2) but not detected (bit 1 clear); FF: 255 bpm.
        let m = hrm(&[0x04, 0xFF]);
        assert_eq!(m.heart_rate, 255);
        assert_eq!(m.contact, SensorContact::NotDetected);
        let Observation::Reading(r) = &m.observations()[0] else {
            panic!("expected a reading")
        };
        assert_eq!(r.value, Value::Unavailable(Unavailable::FlaggedInvalid));
        assert!(r.flags.contains(Flag::NoContact));
    }

    #[test]
    fn nordic_vector_energy_and_rr() {
        // 1E: contact detected, energy present, RR present; 55: 85 bpm; 32 00: 50 kJ;
        // 21 00: RR 33/1024 s = 32.2 ms.
        let m = hrm(&[0x1E, 0x55, 0x32, 0x00, 0x21, 0x00]);
        assert_eq!(m.heart_rate, 85);
        assert_eq!(m.contact, SensorContact::Detected);
        assert_eq!(m.energy_expended, Some(50));
        assert_eq!(m.rr_intervals, vec![33]);
        let obs = m.observations();
        assert_eq!(obs.len(), 3);
        let Observation::Reading(rr) = &obs[2] else {
            panic!()
        };
        assert_eq!(rr.vital, Vital::RrInterval);
        let ms = rr.value.number().unwrap() * 1000.0;
        assert!((ms - 32.2).abs() < 0.05, "{ms}");
    }

    #[test]
    fn pub_dev_vector_two_rr_intervals() {
        // 16: contact detected + RR; 50: 80 bpm; 00 04: 1024 (1000 ms); 80 03: 896 (875 ms).
        let m = hrm(&[0x16, 0x50, 0x00, 0x04, 0x80, 0x03]);
        assert_eq!(m.heart_rate, 80);
        assert_eq!(m.rr_intervals, vec![1024, 896]);
        let secs: Vec<f64> = m.observations()[1..]
            .iter()
            .map(|o| match o {
                Observation::Reading(r) => r.value.number().unwrap(),
                _ => panic!(),
            })
            .collect();
        assert_eq!(secs, vec![1.0, 0.875]);
    }

    #[test]
    fn simple_sensor_shape() {
        let m = hrm(&[0x06, 0x48]);
        assert_eq!((m.heart_rate, m.contact), (72, SensorContact::Detected));
    }

    #[test]
    fn uint16_heart_rate() {
        let m = hrm(&[0x01, 0x2C, 0x01]);
        assert_eq!(m.heart_rate, 300);
        assert!(m.wide_format);
    }

    #[test]
    fn flags_promising_missing_fields_reject_the_value() {
        assert!(matches!(
            HeartRateMeasurement::decode(&[0x10, 0x50]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            HeartRateMeasurement::decode(&[0x08, 0x50, 0x01]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            HeartRateMeasurement::decode(&[0x01, 0x50]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(HeartRateMeasurement::decode(&[]).is_err());
        assert!(matches!(
            HeartRateMeasurement::decode(&[0x10, 0x50, 0x00, 0x04, 0x80]),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn saturated_energy_is_not_a_number() {
        let m = hrm(&[0x08, 0x50, 0xFF, 0xFF]);
        let Observation::Reading(e) = &m.observations()[1] else {
            panic!()
        };
        assert_eq!(e.value, Value::Unavailable(Unavailable::AboveRange));
    }

    fn arb_hrm() -> impl Strategy<Value = HeartRateMeasurement> {
        (
            any::<bool>(),
            any::<u16>(),
            prop_oneof![
                Just(SensorContact::NotSupported),
                Just(SensorContact::NotDetected),
                Just(SensorContact::Detected)
            ],
            proptest::option::of(any::<u16>()),
            proptest::collection::vec(any::<u16>(), 0..9),
        )
            .prop_map(|(wide, hr, contact, energy, rr)| HeartRateMeasurement {
                heart_rate: if wide { hr } else { hr & 0xFF },
                wide_format: wide,
                contact,
                energy_expended: energy,
                rr_intervals: rr,
            })
    }

    proptest! {
        #[test]
        fn round_trip(m in arb_hrm()) {
            prop_assert_eq!(HeartRateMeasurement::decode(&m.encode()).unwrap(), m);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            if let Ok(m) = HeartRateMeasurement::decode(&bytes) {
                let _ = m.observations();
            }
        }
    }
}
