//! Simulated devices: each turns the patient into the real wire bytes of its format (through the
//! protocol crate's encoders) and answers the commands the real device answers. Sans-IO: time
//! in, bytes out; `run` moves the bytes.

use crate::intellivue::{Measurement, SimIntelliVue};
use crate::patient::{measured, measured_breathing, Noise, Vitals};
use crate::scenario::{FaultKind, Role, Scenario};
use std::collections::HashMap;
use std::sync::Arc;
use vigil_drivers::ble::memory::PeripheralSpec;
use vigil_drivers::ble::CharacteristicInfo;
use vigil_protocol::ble::blood_pressure::BloodPressureMeasurement;
use vigil_protocol::ble::heart_rate::{HeartRateMeasurement, SensorContact};
use vigil_protocol::ble::plx::PlxContinuous;
use vigil_protocol::ble::uuid;
use vigil_protocol::serial::{contec, masimo, nonin, suntech};
use vigil_protocol::sfloat::{self, Sfloat};
use vigil_protocol::stream::Deframer;
use vigil_protocol::{DeviceTime, Format, Unavailable, Value};

/// The formats the simulator plays, in `vigil-sim --device` order: a subset of the one format
/// list ([`Format::ALL`]), so a simulated device is always a format the daemon reads.
pub const SIMULATED: [Format; 11] = [
    Format::Masimo,
    Format::Nonin2,
    Format::Nonin7,
    Format::Nonin8,
    Format::Contec,
    Format::ContecLegacy,
    Format::Suntech,
    Format::Intellivue,
    Format::BleHeartRate,
    Format::BleBloodPressure,
    Format::BlePlxContinuous,
];

/// The `vigil-sim --device` name of a simulated format: the format's own name, except that the
/// three BLE devices keep their short names (`ble-hr`, `ble-bp`, `ble-plx`), which scripts and
/// the simulated peripherals' advertised names use.
pub fn device_name(format: Format) -> &'static str {
    match format {
        Format::BleHeartRate => "ble-hr",
        Format::BleBloodPressure => "ble-bp",
        Format::BlePlxContinuous => "ble-plx",
        other => other.name(),
    }
}

/// The simulated format a `--device` name means (its short name or its format name).
pub fn from_device_name(name: &str) -> Option<Format> {
    SIMULATED
        .into_iter()
        .find(|f| device_name(*f) == name || f.name() == name)
}

/// What a simulated format measures, for faults aimed at one kind of device.
pub fn role(format: Format) -> Role {
    match format {
        Format::Suntech | Format::BleBloodPressure => Role::Cuff,
        Format::BleHeartRate => Role::HeartRate,
        _ => Role::Oximeter,
    }
}

/// Seconds of scenario time between a simulated device's ticks.
pub fn period(format: Format) -> f64 {
    match format {
        Format::Nonin2 | Format::Nonin7 => 1.0 / 3.0,
        Format::Contec | Format::ContecLegacy => 1.0 / 60.0,
        _ => 1.0,
    }
}

/// What a device sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Serial bytes.
    Serial(Vec<u8>),
    /// A notified or indicated characteristic value.
    Ble {
        /// Characteristic.
        uuid: u16,
        /// Value.
        value: Vec<u8>,
    },
}

/// A Contec stops streaming after this long without the keep-alive (wire-formats §3.3).
pub const CONTEC_SILENT_AFTER: f64 = 30.0;
/// A simulated cuff cycle: inflate and deflate.
const CUFF_CYCLE: f64 = 30.0;

/// One simulated device.
#[derive(Debug)]
pub struct Device {
    /// Its kind.
    pub kind: Format,
    scenario: Arc<Scenario>,
    noise: Noise,
    /// Contec: started, and when the last keep-alive came.
    contec: Option<f64>,
    contec_commands: Deframer<contec::CommandDecoder>,
    suntech_commands: Deframer<suntech::CommandDecoder>,
    /// SunTech: a measurement running since.
    measuring_since: Option<f64>,
    /// SunTech: the result of the last completed measurement.
    result: Option<suntech::BpRecord>,
    nibp_times: Vec<f64>,
    next_nibp: usize,
    /// IntelliVue: the monitor's side of the conversation.
    intellivue: SimIntelliVue,
    /// IntelliVue: the last NIBP determination (when, values), kept as the monitor keeps it.
    intellivue_nibp: Option<(f64, Vitals)>,
    battery_low: bool,
    last_battery_note: f64,
    ticks: u64,
}

fn cuff_pressure(elapsed: f64) -> f64 {
    // Inflate to 170 in 8 s, then deflate step by step to 40.
    if elapsed < 8.0 {
        170.0 * elapsed / 8.0
    } else {
        170.0 - 130.0 * (elapsed - 8.0) / (CUFF_CYCLE - 8.0)
    }
}

impl Device {
    /// A device on `scenario`; `seed` and `stream` make its noise deterministic and its own.
    pub fn new(kind: Format, scenario: Arc<Scenario>, seed: u64, stream: u64) -> Device {
        Device {
            kind,
            nibp_times: scenario.nibp_times(),
            scenario,
            noise: Noise::new(seed, stream),
            contec: None,
            contec_commands: Deframer::new(contec::CommandDecoder),
            suntech_commands: Deframer::new(suntech::CommandDecoder),
            measuring_since: None,
            result: None,
            next_nibp: 0,
            intellivue: SimIntelliVue::default(),
            intellivue_nibp: None,
            battery_low: false,
            last_battery_note: f64::NEG_INFINITY,
            ticks: 0,
        }
    }

    fn fault(&self, kind: FaultKind, t: f64) -> bool {
        self.scenario.fault_at(kind, role(self.kind), t)
    }

    /// Is the device unplugged (serial) or out of range (BLE) at `t`?
    pub fn unplugged(&self, t: f64) -> bool {
        self.fault(FaultKind::Unplug, t)
    }

    pub(crate) fn device_time(t: f64) -> DeviceTime {
        let secs = t as u64;
        DeviceTime {
            year: Some(2026),
            month: Some(11),
            day: Some(23),
            hour: (10 + secs / 3600 % 24) as u8,
            minute: (secs / 60 % 60) as u8,
            second: (secs % 60) as u8,
        }
    }

    fn pleth(&self, t: f64, hr: f64) -> f64 {
        // A pulse-shaped wave at the heart rate, 0..1.
        let phase = (t * hr.max(30.0) / 60.0).fract();
        (1.0 - phase).powi(3)
    }

    /// What the device sends on its own at `t` (one tick).
    pub fn tick(&mut self, t: f64) -> Vec<Output> {
        self.ticks += 1;
        let probe_off = self.fault(FaultKind::ProbeOff, t);
        let motion = self.fault(FaultKind::Motion, t);
        let low_battery = self.fault(FaultKind::LowBattery, t);
        let v = measured(&self.scenario, t, &mut self.noise, motion);
        match self.kind {
            Format::Masimo => self.masimo(t, v, probe_off, motion, low_battery),
            Format::Nonin2 | Format::Nonin7 => self.nonin27(t, v, probe_off, motion, low_battery),
            Format::Nonin8 => {
                let (hr, spo2) = if probe_off {
                    (nonin::HR_MISSING, nonin::SPO2_MISSING)
                } else {
                    (v.heart_rate as u16, v.spo2 as u8)
                };
                let frame = nonin::Frame8 {
                    status: if motion { 0x04 } else { 0 },
                    heart_rate: hr,
                    spo2,
                    stat2: u8::from(probe_off) << 3 | u8::from(low_battery),
                };
                vec![Output::Serial(frame.encode().to_vec())]
            }
            Format::Contec => match self.contec {
                Some(last) if t - last <= CONTEC_SILENT_AFTER => {
                    let r = contec::RealTime {
                        status: if probe_off { 0x80 } else { 0x06 },
                        pleth: if probe_off {
                            0x40
                        } else {
                            (self.pleth(t, v.heart_rate) * 100.0) as u8
                        },
                        bar: 5,
                        pulse_rate: if probe_off {
                            0xFF
                        } else {
                            v.heart_rate.min(254.0) as u8
                        },
                        spo2: if probe_off { 0x7F } else { v.spo2 as u8 },
                        pi: if probe_off { 0xFFFF } else { 250 },
                    };
                    vec![Output::Serial(contec::Packet::RealTime(r).encode())]
                }
                _ => vec![],
            },
            Format::ContecLegacy => {
                let p = contec::LegacyPacket {
                    signal_strength: 6,
                    finger_out: probe_off,
                    dropping_spo2: false,
                    beep: false,
                    pleth: (self.pleth(t, v.heart_rate) * 100.0) as u8,
                    bar: 5,
                    probe_error: false,
                    searching: false,
                    pulse_rate: if probe_off {
                        0xFF
                    } else {
                        v.heart_rate.min(254.0) as u8
                    },
                    spo2: if probe_off { 0x7F } else { v.spo2 as u8 },
                };
                vec![Output::Serial(p.encode().to_vec())]
            }
            Format::Suntech | Format::Intellivue => vec![],
            Format::BleHeartRate => {
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
            Format::BlePlxContinuous => {
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
            Format::BleBloodPressure => self.ble_cuff(t),
            // Not a format this tick plays (`SIMULATED`): it sends nothing.
            // The HL7 monitor is played by `hl7.rs`, over TCP, not by this tick.
            Format::BleCuffPressure | Format::BlePlxSpot | Format::BlePlxFeatures | Format::Hl7 => {
                vec![]
            }
        }
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

    fn masimo(
        &mut self,
        t: f64,
        v: Vitals,
        probe_off: bool,
        motion: bool,
        low_battery: bool,
    ) -> Vec<Output> {
        let dash = Value::Unavailable(Unavailable::Missing);
        let line = masimo::MasimoLine {
            style: masimo::LineStyle::Ascii1,
            time: Some(Self::device_time(t)),
            spo2: Some(if probe_off {
                dash
            } else {
                Value::Number(v.spo2)
            }),
            pulse_rate: Some(if probe_off {
                dash
            } else {
                Value::Number(v.heart_rate)
            }),
            perfusion_index: Some(if probe_off { dash } else { Value::Number(2.5) }),
            alarm: Some(if low_battery { 0x0040 } else { 0 }),
            exc: Some(0x000800 | if probe_off { 0x20 } else { 0 } | if motion { 0x10 } else { 0 }),
            unknown_keys: vec![],
        };
        vec![Output::Serial(line.encode())]
    }

    fn nonin27(
        &mut self,
        t: f64,
        v: Vitals,
        probe_off: bool,
        motion: bool,
        low_battery: bool,
    ) -> Vec<Output> {
        let format = if self.kind == Format::Nonin2 {
            nonin::NoninFormat::Two
        } else {
            nonin::NoninFormat::Seven
        };
        let mut status = if probe_off {
            nonin::status::SNSA
        } else {
            nonin::status::GPRF
        };
        if motion {
            status |= nonin::status::ARTF;
        }
        let packet = nonin::Packet {
            status,
            heart_rate: if probe_off {
                nonin::HR_MISSING
            } else {
                v.heart_rate.min(510.0) as u16
            },
            spo2: if probe_off {
                nonin::SPO2_MISSING
            } else {
                v.spo2 as u8
            },
            firmware: 1,
            stat2: u8::from(low_battery),
        };
        let scale = if format == nonin::NoninFormat::Two {
            250.0
        } else {
            60_000.0
        };
        let mut pleth = [0u16; nonin::FRAMES_PER_PACKET];
        for (i, p) in pleth.iter_mut().enumerate() {
            *p = (self.pleth(t + i as f64 / 75.0, v.heart_rate) * scale) as u16;
        }
        vec![Output::Serial(packet.encode(format, &pleth))]
    }

    fn ble_cuff(&mut self, t: f64) -> Vec<Output> {
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

    /// Bytes from the host at `t`; returns the device's answers.
    pub fn host_bytes(&mut self, t: f64, bytes: &[u8]) -> Vec<Output> {
        match self.kind {
            Format::Contec => {
                self.contec_commands.push(bytes);
                while let Some(cmd) = self.contec_commands.next_frame() {
                    match cmd {
                        Ok(contec::Command::StartRealTime) => self.contec = Some(t),
                        // A keep-alive extends a live stream; once stopped, only start restarts.
                        Ok(contec::Command::KeepAlive)
                            if self
                                .contec
                                .is_some_and(|last| t - last <= CONTEC_SILENT_AFTER) =>
                        {
                            self.contec = Some(t);
                        }
                        Ok(contec::Command::StopRealTime) => self.contec = None,
                        _ => {}
                    }
                }
                vec![]
            }
            Format::Nonin2 | Format::Nonin7 | Format::Nonin8 => {
                // The 9560 acknowledges a format selection.
                if nonin::parse_select_format(bytes).is_some() {
                    vec![Output::Serial(vec![0x06])]
                } else {
                    vec![]
                }
            }
            Format::Suntech => {
                self.suntech_commands.push(bytes);
                let mut out = Vec::new();
                while let Some(cmd) = self.suntech_commands.next_frame() {
                    let Ok(cmd) = cmd else { continue };
                    out.extend(
                        self.suntech_command(t, cmd)
                            .map(|r| Output::Serial(r.encode())),
                    );
                }
                out
            }
            Format::Intellivue => {
                let refuse = self.fault(FaultKind::AssociationRefused, t);
                let probe_off = self.fault(FaultKind::ProbeOff, t);
                let motion = self.fault(FaultKind::Motion, t);
                // The newest determination is measured once and then kept, as the monitor
                // keeps its NIBP numeric until the next one.
                let taken = self.nibp_times.iter().rev().find(|at| **at <= t).copied();
                if taken.is_some() && taken != self.intellivue_nibp.map(|(at, _)| at) {
                    self.intellivue_nibp =
                        taken.map(|at| (at, measured(&self.scenario, at, &mut self.noise, false)));
                }
                let (scenario, noise, nibp) =
                    (&self.scenario, &mut self.noise, self.intellivue_nibp);
                let bytes = self.intellivue.host_bytes(bytes, refuse, || Measurement {
                    vitals: measured(scenario, t, noise, motion),
                    breathing: measured_breathing(scenario, t, noise),
                    probe_off,
                    clock: Device::device_time(t),
                    nibp: nibp.map(|(at, v)| (v, Device::device_time(at))),
                });
                if bytes.is_empty() {
                    vec![]
                } else {
                    vec![Output::Serial(bytes)]
                }
            }
            _ => vec![],
        }
    }

    fn suntech_command(&mut self, t: f64, cmd: suntech::Command) -> Option<suntech::Response> {
        match cmd {
            suntech::Command::StartMeasurement => {
                self.measuring_since.get_or_insert(t);
                None
            }
            suntech::Command::GetCuffPressure => {
                let since = self.measuring_since?;
                let elapsed = t - since;
                if elapsed < CUFF_CYCLE {
                    return Some(suntech::Response::CuffPressure(
                        cuff_pressure(elapsed) as u16
                    ));
                }
                self.measuring_since = None;
                let v = measured(&self.scenario, t, &mut self.noise, false);
                let mean = ((v.systolic + 2.0 * v.diastolic) / 3.0).round();
                self.result = Some(suntech::BpRecord {
                    systolic: v.systolic as u16,
                    diastolic: v.diastolic as u16,
                    beats: 20,
                    status: 0,
                    test_codes: [0; 8],
                    heart_rate: v.heart_rate.min(255.0) as u8,
                    mean: mean as u16,
                    error: 0,
                });
                Some(suntech::Response::Status(suntech::STATUS_COMPLETE))
            }
            suntech::Command::GetBpData => Some(suntech::Response::BpData(self.result.unwrap_or(
                suntech::BpRecord {
                    systolic: 0,
                    diastolic: 0,
                    beats: 0,
                    status: 0,
                    test_codes: [0; 8],
                    heart_rate: 0,
                    mean: 0,
                    // No measurement has completed: the module reports an error, not numbers.
                    error: 1,
                },
            ))),
            // Both stop the measurement and deflate the cuff.
            suntech::Command::ClosePneumatics | suntech::Command::AbortMeasurement => {
                self.measuring_since = None;
                None
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_protocol::Observation;

    fn run(kind: Format, seed: u64, seconds: f64) -> Vec<Output> {
        let s = Arc::new(Scenario::load("kap-typical").unwrap());
        let mut d = Device::new(kind, s, seed, 0);
        let mut out = Vec::new();
        let mut t = 0.0;
        if kind == Format::Contec {
            d.host_bytes(0.0, &contec::Command::StartRealTime.encode());
        }
        while t < seconds {
            out.extend(d.tick(t));
            t += period(kind);
        }
        out
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        for kind in SIMULATED {
            assert_eq!(
                run(kind, 42, 5.0),
                run(kind, 42, 5.0),
                "{}",
                device_name(kind)
            );
        }
        assert_ne!(run(Format::Masimo, 42, 5.0), run(Format::Masimo, 43, 5.0));
    }

    #[test]
    fn every_serial_kind_decodes_with_its_format() {
        for kind in SIMULATED
            .into_iter()
            // The SunTech and the IntelliVue speak only when polled (their own tests).
            .filter(|k| !k.is_ble() && !matches!(k, Format::Suntech | Format::Intellivue))
        {
            let bytes: Vec<u8> = run(kind, 1, 3.0)
                .into_iter()
                .flat_map(|o| match o {
                    Output::Serial(b) => b,
                    Output::Ble { .. } => panic!("serial device sent BLE"),
                })
                .collect();
            let mut dec = kind.decoder();
            let mut out = Vec::new();
            dec.feed(&bytes, &mut out);
            assert!(
                out.iter().all(|r| r.is_ok()),
                "{}: {out:?}",
                device_name(kind)
            );
            let spo2 = out.iter().find_map(|r| match r {
                Ok(Observation::Reading(r)) if r.vital == vigil_protocol::Vital::Spo2 => {
                    r.value.number()
                }
                _ => None,
            });
            assert!(
                spo2.is_some_and(|v| (96.0..=100.0).contains(&v)),
                "{}: {spo2:?}",
                device_name(kind)
            );
        }
    }

    #[test]
    fn a_contec_without_keep_alive_stops_streaming() {
        let s = Arc::new(Scenario::load("kap-typical").unwrap());
        let mut d = Device::new(Format::Contec, s, 1, 0);
        assert!(d.tick(0.0).is_empty(), "silent until started");
        d.host_bytes(0.0, &contec::Command::StartRealTime.encode());
        assert!(!d.tick(10.0).is_empty());
        assert!(!d.tick(29.9).is_empty());
        assert!(
            d.tick(30.5).is_empty(),
            "silent 30 s after the last keep-alive"
        );
        d.host_bytes(31.0, &contec::Command::KeepAlive.encode());
        assert!(
            d.tick(31.1).is_empty(),
            "a keep-alive after it stopped does not restart it"
        );
        d.host_bytes(32.0, &contec::Command::StartRealTime.encode());
        assert!(!d.tick(32.1).is_empty());
    }

    #[test]
    fn the_suntech_answers_a_whole_cycle() {
        let s = Arc::new(Scenario::load("kap-typical").unwrap());
        let mut d = Device::new(Format::Suntech, s, 1, 0);
        let ask = |d: &mut Device, t, c: suntech::Command| -> Vec<suntech::Response> {
            d.host_bytes(t, &c.encode())
                .into_iter()
                .flat_map(|o| match o {
                    Output::Serial(b) => {
                        vigil_protocol::stream::decode_all(suntech::SuntechDecoder, &b)
                    }
                    _ => vec![],
                })
                .map(|r| r.unwrap())
                .collect()
        };
        let before = ask(&mut d, 0.0, suntech::Command::GetBpData);
        assert!(matches!(
            before[0],
            suntech::Response::BpData(suntech::BpRecord { error: 1, .. })
        ));
        ask(&mut d, 1.0, suntech::Command::StartMeasurement);
        assert!(
            matches!(ask(&mut d, 5.0, suntech::Command::GetCuffPressure)[0], suntech::Response::CuffPressure(p) if p > 50)
        );
        assert_eq!(
            ask(&mut d, 32.0, suntech::Command::GetCuffPressure),
            vec![suntech::Response::Status(b'K')]
        );
        let suntech::Response::BpData(r) = ask(&mut d, 33.0, suntech::Command::GetBpData)[0] else {
            panic!()
        };
        assert_eq!(r.error, 0);
        assert!((115..=126).contains(&r.systolic), "{r:?}");
    }
}
