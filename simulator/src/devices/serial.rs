//! The serial (and LAN) devices' bytes: what each sends on its own, and its answers to the
//! host's commands (the Contec keep-alive, the SunTech NIBP cycle, the IntelliVue association).

use super::{cuff_pressure, Device, Output, CONTEC_SILENT_AFTER, CUFF_CYCLE};
use crate::intellivue::Measurement;
use crate::patient::{measured, measured_breathing, Vitals};
use crate::scenario::FaultKind;
use vigil_protocol::serial::{contec, masimo, nonin, suntech};
use vigil_protocol::{Format, Unavailable, Value};

impl Device {
    pub(super) fn nonin8(
        &self,
        v: Vitals,
        probe_off: bool,
        motion: bool,
        low_battery: bool,
    ) -> Vec<Output> {
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

    pub(super) fn contec(&self, t: f64, v: Vitals, probe_off: bool) -> Vec<Output> {
        match self.contec {
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
        }
    }

    pub(super) fn contec_legacy(&self, t: f64, v: Vitals, probe_off: bool) -> Vec<Output> {
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

    /// Contec: start, keep-alive and stop commands.
    pub(super) fn contec_host(&mut self, t: f64, bytes: &[u8]) -> Vec<Output> {
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

    /// SunTech: the NIBP module's commands.
    pub(super) fn suntech_host(&mut self, t: f64, bytes: &[u8]) -> Vec<Output> {
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

    /// IntelliVue: the monitor's side of the association and its polls.
    pub(super) fn intellivue_host(&mut self, t: f64, bytes: &[u8]) -> Vec<Output> {
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
        let (scenario, noise, nibp) = (&self.scenario, &mut self.noise, self.intellivue_nibp);
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

    pub(super) fn masimo(
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

    pub(super) fn nonin27(
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
}
