//! Contec CMS50D+ / CMS50E / CMS50EW pulse oximeters (and OEM clones).
//!
//! Two incompatible generations:
//! - **V7.0** (CMS50D+ firmware ≥ 4.6, CMS50EW): 115200 8N1; typed packets whose data bytes are
//!   sent with bit 7 forced to 1 and restored from a "high byte"; the host must send the start
//!   command and then the keep-alive every 5 s or the device stops after about 30 s.
//! - **Legacy** (firmware ≤ 4.5, CMS50E): 19200 8O1; 5-byte packets, 60 per second, sync on bit
//!   7 of the first byte; streams without a command.
//!
//! Neither has a checksum: packet types, bit-7 rules, lengths and ranges are the only checks.

use crate::error::DecodeError;
use crate::model::{
    DeviceEvent, Flag, Flags, Observation, Reading, Unavailable, Unit, Value, Vital,
};
use crate::serial::{LineSettings, Parity};
use crate::stream::{FrameDecoder, Step};
use serde::Serialize;

/// V7.0 line settings: 115200 8N1.
pub const LINE: LineSettings = LineSettings::n81(115_200);
/// Legacy line settings: 19200 8O1.
pub const LEGACY_LINE: LineSettings = LineSettings {
    baud: 19_200,
    data_bits: 8,
    parity: Parity::Odd,
    stop_bits: 1,
};

/// How often the host must send [`Command::KeepAlive`].
pub const KEEP_ALIVE_SECS: u64 = 5;

/// Restores the real bit 7 of data byte `i` from bit `i` of the high byte.
pub fn restore_high_bits(high: u8, raw: &[u8]) -> Vec<u8> {
    raw.iter()
        .enumerate()
        .map(|(i, b)| (b & 0x7F) | (((high >> i) & 1) << 7))
        .collect()
}

/// Splits data bytes into the high byte and the bytes with bit 7 forced to 1.
pub fn split_high_bits(data: &[u8]) -> (u8, Vec<u8>) {
    let high = data
        .iter()
        .enumerate()
        .fold(0x80u8, |h, (i, b)| h | ((b >> 7) << i));
    (high, data.iter().map(|b| b | 0x80).collect())
}

/// Data length (after the type and high bytes) of each V7.0 packet type the device sends.
fn data_len(packet_type: u8) -> Option<usize> {
    Some(match packet_type {
        0x01 | 0x04 | 0x05 | 0x11 | 0x15 => 7,
        0x07 | 0x08 | 0x0F | 0x12 => 6,
        0x09 => 4,
        0x0A | 0x0B => 2,
        0x0C => 0,
        0x0D | 0x0E | 0x10 => 1,
        _ => return None,
    })
}

/// Host commands (9 bytes: 0x7D, high byte, command, six parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// 0xA1: start sending real-time data.
    StartRealTime,
    /// 0xA2: stop real-time data.
    StopRealTime,
    /// 0xAF: "inform device being connected"; the keep-alive, every 5 s.
    KeepAlive,
    /// Any other command byte.
    Other(u8),
}

impl Command {
    fn code(self) -> u8 {
        match self {
            Command::StartRealTime => 0xA1,
            Command::StopRealTime => 0xA2,
            Command::KeepAlive => 0xAF,
            Command::Other(c) => c,
        }
    }

    fn from_code(code: u8) -> Command {
        match code {
            0xA1 => Command::StartRealTime,
            0xA2 => Command::StopRealTime,
            0xAF => Command::KeepAlive,
            c => Command::Other(c),
        }
    }

    /// The 9 bytes on the wire, parameters zero.
    pub fn encode(self) -> [u8; 9] {
        let (high, bytes) = split_high_bits(&[self.code(), 0, 0, 0, 0, 0, 0]);
        let mut out = [0u8; 9];
        out[0] = 0x7D;
        out[1] = high;
        out[2..].copy_from_slice(&bytes);
        out
    }
}

/// Frames host commands; the simulated device uses it.
#[derive(Debug, Default, Clone, Copy)]
pub struct CommandDecoder;

impl FrameDecoder for CommandDecoder {
    type Frame = Command;

    fn step(&self, buf: &[u8]) -> Step<Command> {
        if buf[0] != 0x7D {
            return Step::Skip {
                len: 1,
                error: DecodeError::Garbage { skipped: 1 },
            };
        }
        if let Some(i) = buf.iter().take(9).skip(1).position(|b| b & 0x80 == 0) {
            return Step::Skip {
                len: i + 1,
                error: DecodeError::Garbage { skipped: i + 1 },
            };
        }
        let Some(cmd) = buf.get(..9) else {
            return Step::NeedMore;
        };
        let data = restore_high_bits(cmd[1], &cmd[2..]);
        Step::Frame {
            frame: Command::from_code(data[0]),
            len: 9,
        }
    }
}

/// The real-time packet (type 0x01), after bit-7 restoration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RealTime {
    /// D0: bits 3–0 signal strength; bit 4 searching too long; bit 5 low SpO2; bit 6 pulse beep;
    /// bit 7 probe error / finger out.
    pub status: u8,
    /// D1: bits 6–0 pleth; bit 7 searching for pulse.
    pub pleth: u8,
    /// D2: bits 3–0 bar graph; bit 4 PI invalid.
    pub bar: u8,
    /// D3: pulse rate 1–254; 0xFF invalid.
    pub pulse_rate: u8,
    /// D4: SpO2 1–100; 0x7F invalid.
    pub spo2: u8,
    /// D5–D6: PI × 100; 0xFFFF invalid.
    pub pi: u16,
}

/// One V7.0 packet from the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Packet {
    /// Real-time data.
    RealTime(RealTime),
    /// Answer to a command: 0 ok, 1 shutdown, 2 user change, 3 recording, 4 delete failed,
    /// 5 unsupported.
    CommandFeedback {
        /// The command answered.
        command: u8,
        /// The reason code.
        code: u8,
    },
    /// The device is about to disconnect.
    DisconnectNotice {
        /// Its reason code.
        reason: u8,
    },
    /// A known packet type Vigil does not use (storage, user info, device id, ...).
    Other {
        /// The packet type.
        packet_type: u8,
        /// The restored data bytes.
        data: Vec<u8>,
    },
}

impl Packet {
    /// Encodes the packet with its high byte.
    pub fn encode(&self) -> Vec<u8> {
        let (t, data) = match self {
            Packet::RealTime(r) => {
                let pi = r.pi.to_le_bytes();
                (
                    0x01,
                    vec![r.status, r.pleth, r.bar, r.pulse_rate, r.spo2, pi[0], pi[1]],
                )
            }
            Packet::CommandFeedback { command, code } => (0x0B, vec![*command, *code]),
            Packet::DisconnectNotice { reason } => (0x0D, vec![*reason]),
            Packet::Other { packet_type, data } => (*packet_type, data.clone()),
        };
        let (high, bytes) = split_high_bits(&data);
        let mut out = vec![t & 0x7F, high];
        out.extend(bytes);
        out
    }

    /// Readings and events of the packet.
    pub fn observations(&self) -> Vec<Observation> {
        match self {
            Packet::RealTime(r) => r.observations(),
            Packet::CommandFeedback { command, code } => vec![DeviceEvent::CommandFeedback {
                command: Some(*command),
                code: *code,
            }
            .into()],
            Packet::DisconnectNotice { .. } => vec![DeviceEvent::DisconnectNotice.into()],
            Packet::Other { .. } => vec![],
        }
    }
}

impl RealTime {
    /// SpO2, pulse rate and PI readings, with the sentinels as "missing".
    pub fn observations(&self) -> Vec<Observation> {
        let mut flags = Flags::EMPTY;
        flags.set_if(self.status & 0x80 != 0, Flag::SensorOff);
        flags.set_if(
            self.status & 0x10 != 0 || self.pleth & 0x80 != 0,
            Flag::PulseSearch,
        );
        let spo2 = match self.spo2 {
            0x7F | 0 => Value::Unavailable(Unavailable::Missing),
            v => Value::Number(v as f64),
        };
        let pr = match self.pulse_rate {
            0xFF | 0 => Value::Unavailable(Unavailable::Missing),
            v => Value::Number(v as f64),
        };
        let pi = if self.pi == 0xFFFF || self.bar & 0x10 != 0 {
            Value::Unavailable(Unavailable::Missing)
        } else {
            Value::Number(self.pi as f64 / 100.0)
        };
        let mut out: Vec<Observation> = [
            (Vital::Spo2, spo2, Unit::Percent),
            (Vital::PulseRate, pr, Unit::BeatsPerMinute),
            (Vital::PerfusionIndex, pi, Unit::Percent),
        ]
        .into_iter()
        .map(|(v, val, u)| Reading::from_value(v, val, u).with_flags(flags).into())
        .collect();
        out.extend(DeviceEvent::from_sensor_flags(flags).map(Observation::Event));
        out
    }
}

/// Frames V7.0 packets from the device.
#[derive(Debug, Default, Clone, Copy)]
pub struct ContecDecoder;

impl FrameDecoder for ContecDecoder {
    type Frame = Packet;

    fn step(&self, buf: &[u8]) -> Step<Packet> {
        let t = buf[0];
        let Some(n) = data_len(t).filter(|_| t & 0x80 == 0) else {
            return Step::Skip {
                len: 1,
                error: DecodeError::Garbage { skipped: 1 },
            };
        };
        // Only a type byte has bit 7 clear: one inside the packet means this one was cut short.
        if let Some(i) = buf.iter().take(n + 2).skip(1).position(|b| b & 0x80 == 0) {
            return Step::Skip {
                len: i + 1,
                error: DecodeError::Garbage { skipped: i + 1 },
            };
        }
        let Some(bytes) = buf.get(..n + 2) else {
            return Step::NeedMore;
        };
        let d = restore_high_bits(bytes[1], &bytes[2..]);
        let frame = match t {
            0x01 => {
                let r = RealTime {
                    status: d[0],
                    pleth: d[1],
                    bar: d[2],
                    pulse_rate: d[3],
                    spo2: d[4],
                    pi: u16::from_le_bytes([d[5], d[6]]),
                };
                if r.spo2 > 100 && r.spo2 != 0x7F {
                    return Step::Skip {
                        len: n + 2,
                        error: DecodeError::OutOfRange {
                            field: "SpO2",
                            value: r.spo2 as u32,
                        },
                    };
                }
                Packet::RealTime(r)
            }
            0x0B => Packet::CommandFeedback {
                command: d[0],
                code: d[1],
            },
            0x0D => Packet::DisconnectNotice { reason: d[0] },
            _ => Packet::Other {
                packet_type: t,
                data: d,
            },
        };
        Step::Frame { frame, len: n + 2 }
    }
}

/// One legacy 5-byte packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LegacyPacket {
    /// B1 bits 3–0.
    pub signal_strength: u8,
    /// B1 bit 4.
    pub finger_out: bool,
    /// B1 bit 5.
    pub dropping_spo2: bool,
    /// B1 bit 6.
    pub beep: bool,
    /// B2: pleth 0–127.
    pub pleth: u8,
    /// B3 bits 3–0.
    pub bar: u8,
    /// B3 bit 4.
    pub probe_error: bool,
    /// B3 bit 5.
    pub searching: bool,
    /// Pulse rate: B3 bit 6 is bit 7, B4 bits 6–0 the rest.
    pub pulse_rate: u8,
    /// B5: SpO2 0–127.
    pub spo2: u8,
}

impl LegacyPacket {
    /// Encodes the 5 bytes.
    pub fn encode(&self) -> [u8; 5] {
        [
            0x80 | (self.signal_strength & 0x0F)
                | (u8::from(self.finger_out) << 4)
                | (u8::from(self.dropping_spo2) << 5)
                | (u8::from(self.beep) << 6),
            self.pleth & 0x7F,
            (self.bar & 0x0F)
                | (u8::from(self.probe_error) << 4)
                | (u8::from(self.searching) << 5)
                | ((self.pulse_rate >> 7) << 6),
            self.pulse_rate & 0x7F,
            self.spo2 & 0x7F,
        ]
    }

    /// SpO2 and pulse rate readings. The legacy sentinels are unconfirmed; Vigil treats the
    /// V7.0 ones (PR 0xFF, SpO2 0x7F) and zero as "missing", as a finger-out device sends.
    pub fn observations(&self) -> Vec<Observation> {
        let mut flags = Flags::EMPTY;
        flags.set_if(self.finger_out, Flag::SensorOff);
        flags.set_if(self.probe_error, Flag::SensorDefective);
        flags.set_if(self.searching, Flag::PulseSearch);
        let spo2 = match self.spo2 {
            0x7F | 0 => Value::Unavailable(Unavailable::Missing),
            v => Value::Number(v as f64),
        };
        let pr = match self.pulse_rate {
            0xFF | 0 => Value::Unavailable(Unavailable::Missing),
            v => Value::Number(v as f64),
        };
        let mut out: Vec<Observation> = vec![
            Reading::from_value(Vital::Spo2, spo2, Unit::Percent)
                .with_flags(flags)
                .into(),
            Reading::from_value(Vital::PulseRate, pr, Unit::BeatsPerMinute)
                .with_flags(flags)
                .into(),
        ];
        out.extend(DeviceEvent::from_sensor_flags(flags).map(Observation::Event));
        out
    }
}

/// Frames legacy packets: one byte with bit 7 set, four with it clear.
#[derive(Debug, Default, Clone, Copy)]
pub struct LegacyDecoder;

impl FrameDecoder for LegacyDecoder {
    type Frame = LegacyPacket;

    fn step(&self, buf: &[u8]) -> Step<LegacyPacket> {
        if buf[0] & 0x80 == 0 {
            return Step::Skip {
                len: 1,
                error: DecodeError::Garbage { skipped: 1 },
            };
        }
        if let Some(i) = buf.iter().take(5).skip(1).position(|b| b & 0x80 != 0) {
            return Step::Skip {
                len: i + 1,
                error: DecodeError::Garbage { skipped: i + 1 },
            };
        }
        let Some(b) = buf.get(..5) else {
            return Step::NeedMore;
        };
        let packet = LegacyPacket {
            signal_strength: b[0] & 0x0F,
            finger_out: b[0] & 0x10 != 0,
            dropping_spo2: b[0] & 0x20 != 0,
            beep: b[0] & 0x40 != 0,
            pleth: b[1],
            bar: b[2] & 0x0F,
            probe_error: b[2] & 0x10 != 0,
            searching: b[2] & 0x20 != 0,
            pulse_rate: (((b[2] >> 6) & 1) << 7) | b[3],
            spo2: b[4],
        };
        if packet.spo2 > 100 && packet.spo2 != 0x7F {
            return Step::Skip {
                len: 5,
                error: DecodeError::OutOfRange {
                    field: "SpO2",
                    value: packet.spo2 as u32,
                },
            };
        }
        Step::Frame {
            frame: packet,
            len: 5,
        }
    }
}

#[cfg(test)]
mod tests;
