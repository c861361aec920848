//! The BLE devices' notifications and indications, and the peripheral each appears as.

use super::{cuff_pressure, Device, Output, CUFF_CYCLE};
use crate::patient::{measured, Vitals};
use crate::scenario::FaultKind;
use std::collections::HashMap;
use vigil_drivers::ble::memory::PeripheralSpec;
use vigil_drivers::ble::CharacteristicInfo;
use vigil_protocol::ble::blood_pressure::BloodPressureMeasurement;
use vigil_protocol::ble::heart_rate::{HeartRateMeasurement, SensorContact};
use vigil_protocol::ble::plx::PlxContinuous;
use vigil_protocol::ble::uuid;
use vigil_protocol::sfloat::{self, Sfloat};
use vigil_protocol::{Format, Value};

impl Device {
    pub(super) fn ble_heart_rate(&self, v: Vitals, probe_off: bool) -> Vec<Output> {
        let hr = v.heart_rate.clamp(0.0, 255.0) as u16;
        let m = HeartRateMeasurement {
            heart_rate: hr,
            wide_format: false,
            contact: if probe_off {
                SensorContact::NotDetected
            } else {
                SensorContact::Detected
            },
            energy_expended: None,
            rr_intervals: if hr > 0 {
                vec![(60.0 / f64::from(hr) * 1024.0) as u16]
            } else {
                vec![]
            },
        };
        vec![Output::Ble {
            uuid: uuid::HEART_RATE_MEASUREMENT,
            value: m.encode(),
        }]
    }

    pub(super) fn ble_plx(
        &mut self,
        t: f64,
        v: Vitals,
        probe_off: bool,
        motion: bool,
        low_battery: bool,
    ) -> Vec<Output> {
        let nan = Sfloat(sfloat::NAN);
        let spike = self.fault(FaultKind::ArtefactSpike, t) && (t as u64) % 9 == 8;
        let spo2 = if spike {
            96.0
        } else if self.fault(FaultKind::Implausible, t) {
            186.0
        } else {
            v.spo2
        };
        let (spo2, pr) = if probe_off {
            (nan, nan)
        } else {
            (
                Sfloat::from_number(spo2, 0).unwrap_or(nan),
                Sfloat::from_number(v.heart_rate, 0).unwrap_or(nan),
            )
        };
        let device_status = if probe_off {
            1 << 15
        } else if motion || spike {
            1 << 6
        } else {
            0
        };
        let m = PlxContinuous {
            spo2,
            pulse_rate: pr,
            fast: None,
            slow: None,
            measurement_status: Some(0x0020),
            device_status: Some(device_status),
            pulse_amplitude_index: Sfloat::from_number(2.5, -1),
        };
        let mut out = vec![Output::Ble {
            uuid: uuid::PLX_CONTINUOUS,
            value: m.encode(),
        }];
        out.extend(self.battery(t, low_battery));
        out
    }

    /// Battery Level notifications: every 10 s while low, once when it recovers.
    fn battery(&mut self, t: f64, low: bool) -> Option<Output> {
        let note = if low && t - self.last_battery_note >= 10.0 {
            Some(10u8)
        } else if !low && self.battery_low {
            Some(80u8)
        } else {
            None
        };
        self.battery_low = low;
        let level = note?;
        self.last_battery_note = t;
        Some(Output::Ble {
            uuid: uuid::BATTERY_LEVEL,
            value: vec![level],
        })
    }

    pub(super) fn ble_cuff(&mut self, t: f64) -> Vec<Output> {
        let Some(&due) = self.nibp_times.get(self.next_nibp) else {
            return vec![];
        };
        if t >= due {
            self.next_nibp += 1;
            let v = measured(&self.scenario, due, &mut self.noise, false);
            let mean = ((v.systolic + 2.0 * v.diastolic) / 3.0).round();
            let diastolic = if self.fault(FaultKind::PartialBp, due) {
                Sfloat(sfloat::NAN)
            } else {
                Sfloat::from_value(Value::Number(v.diastolic), 0)
            };
            let m = BloodPressureMeasurement {
                kpa: false,
                systolic: Sfloat::from_value(Value::Number(v.systolic), 0),
                diastolic,
                mean: Sfloat::from_value(Value::Number(mean), 0),
                timestamp: Some(Self::device_time(due)),
                pulse_rate: Some(Sfloat::from_value(Value::Number(v.heart_rate), 0)),
                user_id: None,
                status: None,
            };
            return vec![Output::Ble {
                uuid: uuid::BLOOD_PRESSURE_MEASUREMENT,
                value: m.encode(),
            }];
        }
        let elapsed = t - (due - CUFF_CYCLE);
        if (0.0..CUFF_CYCLE).contains(&elapsed) && self.ticks % 2 == 0 {
            let p = BloodPressureMeasurement {
                kpa: false,
                systolic: Sfloat::from_value(Value::Number(cuff_pressure(elapsed).round()), 0),
                diastolic: Sfloat(0),
                mean: Sfloat(0),
                timestamp: None,
                pulse_rate: None,
                user_id: None,
                status: None,
            };
            return vec![Output::Ble {
                uuid: uuid::INTERMEDIATE_CUFF_PRESSURE,
                value: p.encode(),
            }];
        }
        vec![]
    }

    /// The peripheral a BLE device appears as in the in-process central.
    pub fn ble_spec(&self, address: &str, name: &str) -> PeripheralSpec {
        let ch = |uuid, notify, indicate, read| CharacteristicInfo {
            uuid,
            notify,
            indicate,
            read,
        };
        let battery = ch(uuid::BATTERY_LEVEL, true, false, true);
        type Readable = Vec<(u16, Vec<u8>)>;
        let (service, chars, extra): (u16, Vec<CharacteristicInfo>, Readable) = match self.kind {
            Format::BleHeartRate => (
                uuid::HEART_RATE_SERVICE,
                vec![ch(uuid::HEART_RATE_MEASUREMENT, true, false, false)],
                vec![],
            ),
            Format::BleBloodPressure => (
                uuid::BLOOD_PRESSURE_SERVICE,
                vec![
                    ch(uuid::BLOOD_PRESSURE_MEASUREMENT, false, true, false),
                    ch(uuid::INTERMEDIATE_CUFF_PRESSURE, true, false, false),
                ],
                vec![],
            ),
            _ => (
                uuid::PULSE_OXIMETER_SERVICE,
                vec![
                    ch(uuid::PLX_CONTINUOUS, true, false, false),
                    ch(uuid::PLX_FEATURES, false, false, true),
                ],
                vec![(
                    uuid::PLX_FEATURES,
                    vec![0x43, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0x00],
                )],
            ),
        };
        let mut readable: HashMap<u16, Vec<u8>> = extra.into_iter().collect();
        readable.insert(uuid::BATTERY_LEVEL, vec![85]);
        PeripheralSpec {
            address: address.into(),
            name: name.into(),
            services: vec![service, uuid::BATTERY_SERVICE],
            characteristics: chars.into_iter().chain([battery]).collect(),
            readable,
        }
    }
}
