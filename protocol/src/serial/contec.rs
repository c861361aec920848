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
mod tests {
    use super::*;
    use crate::stream::{decode_all, Deframer};
    use proptest::prelude::*;

    #[test]
    fn pulox_high_byte_vector() {
        assert_eq!(
            restore_high_bits(0b1000_1010, &[0x80, 0xFF, 0x80, 0xFF]),
            vec![0x00, 0xFF, 0x00, 0xFF]
        );
    }

    #[test]
    fn worked_example_140_bpm() {
        // 01 type; A8 high byte (bits 3 and 5: D3 and D5 have bit 7 set);
        // 86 D0 = 0x06 signal 6; C0 D1 = pleth 64; 87 D2 = bar 7; 8C D3 = 0x8C = 140 bpm;
        // E0 D4 = 96 %; C8 D5 = 0xC8; 80 D6 = 0x00 → PI 200 = 2.00 %. Trailing byte 01.
        let mut d = Deframer::new(ContecDecoder);
        d.push(&[0x01, 0xA8, 0x86, 0xC0, 0x87, 0x8C, 0xE0, 0xC8, 0x80, 0x01]);
        let Packet::RealTime(r) = d.next_frame().unwrap().unwrap() else {
            panic!()
        };
        assert_eq!(d.pending(), 1);
        assert_eq!(
            r,
            RealTime {
                status: 0x06,
                pleth: 64,
                bar: 7,
                pulse_rate: 140,
                spo2: 96,
                pi: 200
            }
        );
        let values: Vec<_> = r
            .observations()
            .iter()
            .map(|o| match o {
                Observation::Reading(r) => r.value,
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            values,
            vec![
                Value::Number(96.0),
                Value::Number(140.0),
                Value::Number(2.0)
            ],
            "a 0x7F mask would report 12 bpm"
        );
    }

    #[test]
    fn sentinels_are_missing() {
        let r = RealTime {
            status: 0x80,
            pleth: 0x40,
            bar: 0x10,
            pulse_rate: 0xFF,
            spo2: 0x7F,
            pi: 0xFFFF,
        };
        let bytes = Packet::RealTime(r).encode();
        let out = decode_all(ContecDecoder, &bytes);
        let obs = out[0].as_ref().unwrap().observations();
        for o in &obs[..3] {
            let Observation::Reading(r) = o else { panic!() };
            assert_eq!(
                r.value,
                Value::Unavailable(Unavailable::Missing),
                "{:?}",
                r.vital
            );
            assert!(r.flags.contains(Flag::SensorOff));
        }
        assert_eq!(obs[3], Observation::Event(DeviceEvent::SensorOff));
    }

    #[test]
    fn host_commands_match_the_spec_bytes() {
        assert_eq!(
            Command::StartRealTime.encode(),
            [0x7D, 0x81, 0xA1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]
        );
        assert_eq!(
            Command::StopRealTime.encode(),
            [0x7D, 0x81, 0xA2, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]
        );
        assert_eq!(
            Command::KeepAlive.encode(),
            [0x7D, 0x81, 0xAF, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]
        );
        let mut bytes = vec![0x00];
        bytes.extend(Command::KeepAlive.encode());
        bytes.extend(Command::StartRealTime.encode());
        let out = decode_all(CommandDecoder, &bytes);
        assert_eq!(
            out,
            vec![
                Err(DecodeError::Garbage { skipped: 1 }),
                Ok(Command::KeepAlive),
                Ok(Command::StartRealTime),
            ]
        );
    }

    #[test]
    fn feedback_and_unknown_types() {
        let out = decode_all(
            ContecDecoder,
            &[0x0B, 0x81, 0xA1, 0x85, 0x7F, 0x0D, 0x80, 0x81],
        );
        assert_eq!(
            out[0],
            Ok(Packet::CommandFeedback {
                command: 0xA1,
                code: 5
            })
        );
        assert_eq!(
            out[1],
            Err(DecodeError::Garbage { skipped: 1 }),
            "0x7F is no packet type"
        );
        assert_eq!(out[2], Ok(Packet::DisconnectNotice { reason: 1 }));
    }

    #[test]
    fn packet_cut_short_by_a_new_type_byte() {
        let mut bytes = vec![0x01, 0x80, 0x86, 0xC0];
        bytes.extend(
            Packet::RealTime(RealTime {
                status: 6,
                pleth: 1,
                bar: 2,
                pulse_rate: 70,
                spo2: 97,
                pi: 300,
            })
            .encode(),
        );
        let out = decode_all(ContecDecoder, &bytes);
        assert_eq!(out[0], Err(DecodeError::Garbage { skipped: 4 }));
        assert!(matches!(
            out[1],
            Ok(Packet::RealTime(RealTime { pulse_rate: 70, .. }))
        ));
    }

    #[test]
    fn legacy_pr_bit7_from_b3() {
        let p = LegacyPacket {
            signal_strength: 5,
            finger_out: false,
            dropping_spo2: false,
            beep: true,
            pleth: 50,
            bar: 3,
            probe_error: false,
            searching: false,
            pulse_rate: 150,
            spo2: 95,
        };
        let bytes = p.encode();
        assert_eq!(bytes, [0xC5, 0x32, 0x43, 0x16, 0x5F]);
        assert_eq!(decode_all(LegacyDecoder, &bytes), vec![Ok(p)]);
    }

    fn arb_realtime() -> impl Strategy<Value = RealTime> {
        (
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            prop_oneof![0u8..=100, Just(0x7F)],
            any::<u16>(),
        )
            .prop_map(|(status, pleth, bar, pulse_rate, spo2, pi)| RealTime {
                status,
                pleth,
                bar,
                pulse_rate,
                spo2,
                pi,
            })
    }

    pub(crate) fn arb_packet() -> impl Strategy<Value = Packet> {
        prop_oneof![
            arb_realtime().prop_map(Packet::RealTime),
            (any::<u8>(), any::<u8>())
                .prop_map(|(command, code)| Packet::CommandFeedback { command, code }),
            any::<u8>().prop_map(|reason| Packet::DisconnectNotice { reason }),
            proptest::collection::vec(any::<u8>(), 7).prop_map(|data| Packet::Other {
                packet_type: 0x04,
                data
            }),
        ]
    }

    proptest! {
        #[test]
        fn v7_round_trip(packets in proptest::collection::vec(arb_packet(), 1..5)) {
            let bytes: Vec<u8> = packets.iter().flat_map(|p| p.encode()).collect();
            let got: Vec<_> = decode_all(ContecDecoder, &bytes).into_iter().map(|r| r.unwrap()).collect();
            prop_assert_eq!(got, packets);
        }

        #[test]
        fn legacy_round_trip(
            ss in 0u8..16, fo: bool, ds: bool, beep: bool, pleth in 0u8..128, bar in 0u8..16,
            pe: bool, se: bool, pr: u8, spo2 in prop_oneof![0u8..=100, Just(0x7F)],
        ) {
            let p = LegacyPacket { signal_strength: ss, finger_out: fo, dropping_spo2: ds, beep, pleth, bar, probe_error: pe, searching: se, pulse_rate: pr, spo2 };
            prop_assert_eq!(decode_all(LegacyDecoder, &p.encode()), vec![Ok(p)]);
        }
    }
}
