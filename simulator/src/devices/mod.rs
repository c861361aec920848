//! Simulated devices: each turns the patient into the real wire bytes of its format (through the
//! protocol crate's encoders) and answers the commands the real device answers. Sans-IO: time
//! in, bytes out; `run` moves the bytes. The serial devices' bytes are in `serial`, the BLE
//! devices' in `ble`.

mod ble;
mod serial;

use crate::intellivue::SimIntelliVue;
use crate::patient::{measured, Noise, Vitals};
use crate::scenario::{FaultKind, Role, Scenario};
use std::sync::Arc;
use vigil_protocol::serial::{contec, nonin, suntech};
use vigil_protocol::stream::Deframer;
use vigil_protocol::{DeviceTime, Format};

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
            Format::Nonin8 => self.nonin8(v, probe_off, motion, low_battery),
            Format::Contec => self.contec(t, v, probe_off),
            Format::ContecLegacy => self.contec_legacy(t, v, probe_off),
            Format::Suntech | Format::Intellivue => vec![],
            Format::BleHeartRate => self.ble_heart_rate(v, probe_off),
            Format::BlePlxContinuous => self.ble_plx(t, v, probe_off, motion, low_battery),
            Format::BleBloodPressure => self.ble_cuff(t),
            // Not a format this tick plays (`SIMULATED`): it sends nothing.
            // The HL7 monitor is played by `hl7.rs`, over TCP, not by this tick.
            Format::BleCuffPressure | Format::BlePlxSpot | Format::BlePlxFeatures | Format::Hl7 => {
                vec![]
            }
        }
    }

    /// Bytes from the host at `t`; returns the device's answers.
    pub fn host_bytes(&mut self, t: f64, bytes: &[u8]) -> Vec<Output> {
        match self.kind {
            Format::Contec => self.contec_host(t, bytes),
            Format::Nonin2 | Format::Nonin7 | Format::Nonin8 => {
                // The 9560 acknowledges a format selection.
                if nonin::parse_select_format(bytes).is_some() {
                    vec![Output::Serial(vec![0x06])]
                } else {
                    vec![]
                }
            }
            Format::Suntech => self.suntech_host(t, bytes),
            Format::Intellivue => self.intellivue_host(t, bytes),
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests;
