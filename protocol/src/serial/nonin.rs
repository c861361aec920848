//! Nonin serial data formats #2, #7 and #8 (OEM III, 9560 Onyx II, WristOx2 3150). 9600 8N1.
//!
//! Formats #2 and #7 send 75 five-byte frames a second, grouped in packets of 25; each frame
//! carries one "float" byte whose meaning depends on its position in the packet, so values are
//! assembled per packet by [`PacketAssembler`]. Format #8 sends one 4-byte frame a second.

use crate::error::DecodeError;
use crate::model::{
    DeviceEvent, Flag, Flags, Observation, Reading, Unavailable, Unit, Value, Vital,
};
use crate::serial::LineSettings;
use crate::stream::{FrameDecoder, Step};
use serde::Serialize;

/// 9600 8N1, no flow control.
pub const LINE: LineSettings = LineSettings::n81(9600);

/// Frames in a #2 / #7 packet.
pub const FRAMES_PER_PACKET: usize = 25;

/// "No value" for heart rate.
pub const HR_MISSING: u16 = 511;
/// "No value" for SpO2.
pub const SPO2_MISSING: u8 = 127;

/// STATUS bits of formats #2 and #7.
pub mod status {
    /// Always set: the sync marker.
    pub const ALWAYS: u8 = 0x80;
    /// Sensor disconnect (OEM III; reserved on the 9560).
    pub const SNSD: u8 = 0x40;
    /// Artifact.
    pub const ARTF: u8 = 0x20;
    /// Out of track.
    pub const OOT: u8 = 0x10;
    /// Sensor alarm: finger out or unusable signal.
    pub const SNSA: u8 = 0x08;
    /// Red perfusion.
    pub const RPRF: u8 = 0x04;
    /// Green perfusion.
    pub const GPRF: u8 = 0x02;
    /// Set on the first frame of a packet.
    pub const SYNC: u8 = 0x01;
}

/// Which Nonin format a stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NoninFormat {
    /// #2: start byte 0x01, 8-bit pleth.
    Two,
    /// #7: no start byte, 16-bit pleth.
    Seven,
}

impl NoninFormat {
    /// The format number used by the select-format command.
    pub fn number(self) -> u8 {
        match self {
            NoninFormat::Two => 2,
            NoninFormat::Seven => 7,
        }
    }
}

/// The "select data format" command of the 9560 (answered by ACK 0x06 or NAK 0x15). It must
/// arrive within 5 s of connecting; the choice persists in the device.
pub fn select_format_command(format: u8) -> [u8; 6] {
    [0x02, 0x70, 0x02, 0x02, format, 0x03]
}

/// The format a select-format command asks for, if `bytes` is one.
pub fn parse_select_format(bytes: &[u8]) -> Option<u8> {
    match bytes {
        [0x02, 0x70, 0x02, 0x02, format, 0x03] => Some(*format),
        _ => None,
    }
}

/// One #2 or #7 frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Frame {
    /// STATUS byte (bit 7 always set).
    pub status: u8,
    /// Plethysmogram sample (8-bit for #2, 16-bit for #7).
    pub pleth: u16,
    /// The float byte (0–127); its meaning depends on the frame's index in its packet.
    pub float: u8,
}

impl Frame {
    /// Encodes the frame with its checksum.
    pub fn encode(&self, format: NoninFormat) -> Vec<u8> {
        let mut out = match format {
            NoninFormat::Two => vec![0x01, self.status, self.pleth as u8, self.float],
            NoninFormat::Seven => vec![
                self.status,
                (self.pleth >> 8) as u8,
                self.pleth as u8,
                self.float,
            ],
        };
        out.push(checksum(&out));
        out
    }
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

/// Frames a #2 or #7 stream.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder27(pub NoninFormat);

impl FrameDecoder for FrameDecoder27 {
    type Frame = Frame;

    fn step(&self, buf: &[u8]) -> Step<Frame> {
        let garbage = Step::Skip {
            len: 1,
            error: DecodeError::Garbage { skipped: 1 },
        };
        let status_at = match self.0 {
            NoninFormat::Two => {
                if buf[0] != 0x01 {
                    return garbage;
                }
                1
            }
            NoninFormat::Seven => 0,
        };
        match buf.get(status_at) {
            None => return Step::NeedMore,
            Some(s) if s & status::ALWAYS == 0 => return garbage,
            Some(_) => {}
        }
        let Some(frame) = buf.get(..5) else {
            return Step::NeedMore;
        };
        let actual = checksum(&frame[..4]);
        if actual != frame[4] {
            // Misaligned or corrupted: drop one byte and look for the next start.
            return Step::Skip {
                len: 1,
                error: DecodeError::Checksum {
                    expected: frame[4],
                    actual,
                },
            };
        }
        let (status, pleth) = match self.0 {
            NoninFormat::Two => (frame[1], frame[2] as u16),
            NoninFormat::Seven => (frame[0], u16::from_be_bytes([frame[1], frame[2]])),
        };
        Step::Frame {
            frame: Frame {
                status,
                pleth,
                float: frame[3],
            },
            len: 5,
        }
    }
}

/// The values one complete #2 / #7 packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Packet {
    /// OR of the STATUS bytes of the packet's frames (SYNC excluded).
    pub status: u8,
    /// Pulse rate, 4-beat average ("recording"); 511 = missing.
    pub heart_rate: u16,
    /// SpO2, 4-beat average ("recording"); 127 = missing.
    pub spo2: u8,
    /// Firmware revision.
    pub firmware: u8,
    /// STAT2: bit 0 low battery, bit 5 SmartPoint.
    pub stat2: u8,
}

impl Packet {
    /// The 25 float bytes of this packet, by frame index.
    pub fn float_bytes(&self) -> [u8; FRAMES_PER_PACKET] {
        let mut f = [0u8; FRAMES_PER_PACKET];
        f[0] = ((self.heart_rate >> 7) & 0x03) as u8;
        f[1] = (self.heart_rate & 0x7F) as u8;
        f[2] = self.spo2 & 0x7F;
        f[3] = self.firmware & 0x7F;
        f[7] = self.stat2 & 0x7F;
        // Display and extended values mirror the recording ones in what the simulator sends.
        f[8] = self.spo2 & 0x7F;
        f[13] = f[0];
        f[14] = f[1];
        f[15] = f[2];
        f[16] = f[2];
        f[19] = f[0];
        f[20] = f[1];
        f[21] = f[0];
        f[22] = f[1];
        f
    }

    /// Encodes the packet's 25 frames with the given pleth samples.
    pub fn encode(&self, format: NoninFormat, pleth: &[u16; FRAMES_PER_PACKET]) -> Vec<u8> {
        let floats = self.float_bytes();
        let mut out = Vec::with_capacity(FRAMES_PER_PACKET * 5);
        for (i, (float, pleth)) in floats.iter().zip(pleth).enumerate() {
            let sync = if i == 0 { status::SYNC } else { 0 };
            let frame = Frame {
                status: status::ALWAYS | (self.status & !status::SYNC) | sync,
                pleth: *pleth,
                float: *float,
            };
            out.extend(frame.encode(format));
        }
        out
    }

    /// Readings and events of the packet.
    pub fn observations(&self) -> Vec<Observation> {
        let s = self.status;
        let mut flags = Flags::EMPTY;
        flags.set_if(s & (status::SNSA | status::SNSD) != 0, Flag::SensorOff);
        flags.set_if(s & status::ARTF != 0, Flag::Artefact);
        flags.set_if(s & status::OOT != 0, Flag::OutOfTrack);
        // Red perfusion without green at any point of the packet.
        flags.set_if(
            s & status::RPRF != 0 && s & status::GPRF == 0,
            Flag::LowPerfusion,
        );
        let mut out = pulse_ox_readings(self.heart_rate, self.spo2, flags);
        if s & status::SNSD != 0 {
            out.push(DeviceEvent::SensorDisconnected.into());
        }
        if self.stat2 & 0x01 != 0 {
            out.push(DeviceEvent::LowBattery.into());
        }
        out
    }
}

/// Pulse rate and SpO2 readings with Nonin's sentinels mapped to "missing", and sensor events.
fn pulse_ox_readings(hr: u16, spo2: u8, flags: Flags) -> Vec<Observation> {
    let hr_value = if hr == HR_MISSING {
        Value::Unavailable(Unavailable::Missing)
    } else {
        Value::Number(hr as f64)
    };
    let spo2_value = if spo2 == SPO2_MISSING {
        Value::Unavailable(Unavailable::Missing)
    } else {
        Value::Number(spo2 as f64)
    };
    let mut out: Vec<Observation> = vec![
        Reading::from_value(Vital::Spo2, spo2_value, Unit::Percent)
            .with_flags(flags)
            .into(),
        Reading::from_value(Vital::PulseRate, hr_value, Unit::BeatsPerMinute)
            .with_flags(flags)
            .into(),
    ];
    out.extend(DeviceEvent::from_sensor_flags(flags).map(Observation::Event));
    out
}

/// Groups #2 / #7 frames into packets by their SYNC bit.
#[derive(Debug, Default, Clone)]
pub struct PacketAssembler {
    /// Float bytes of the packet so far; `None` until a SYNC frame is seen.
    floats: Option<Vec<u8>>,
    status: u8,
}

impl PacketAssembler {
    /// Takes one frame; returns the packet when its 25th frame arrives, or an error when a
    /// packet is cut short by the next SYNC.
    pub fn push(&mut self, frame: Frame) -> Option<Result<Packet, DecodeError>> {
        let mut interrupted = None;
        if frame.status & status::SYNC != 0 {
            if let Some(partial) = self.floats.take() {
                interrupted = Some(partial.len());
            }
            self.floats = Some(Vec::with_capacity(FRAMES_PER_PACKET));
            self.status = 0;
        }
        let floats = self.floats.as_mut()?;
        floats.push(frame.float & 0x7F);
        self.status |= frame.status & !(status::SYNC | status::ALWAYS);
        if let Some(n) = interrupted {
            return Some(Err(DecodeError::Malformed(format!(
                "packet cut short after {n} of {FRAMES_PER_PACKET} frames"
            ))));
        }
        if floats.len() < FRAMES_PER_PACKET {
            return None;
        }
        let f = self.floats.take()?;
        Some(Ok(Packet {
            status: self.status,
            heart_rate: ((f[0] as u16 & 0x03) << 7) | (f[1] as u16 & 0x7F),
            spo2: f[2] & 0x7F,
            firmware: f[3],
            stat2: f[7],
        }))
    }

    /// Frames of the packet in progress, if one has started.
    pub fn pending_frames(&self) -> Option<usize> {
        self.floats.as_ref().map(Vec::len)
    }

    /// Forgets the packet in progress (after a dropped frame its indices are unknown).
    pub fn reset(&mut self) {
        self.floats = None;
        self.status = 0;
    }
}

/// One format #8 frame (once a second, no checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Frame8 {
    /// STATUS: bit 5 OOT, bit 4 low perfusion, bit 3 marginal perfusion, bit 2 artifact.
    pub status: u8,
    /// Pulse rate (9 bits); 511 = missing.
    pub heart_rate: u16,
    /// SpO2; 127 = missing.
    pub spo2: u8,
    /// STAT2: bit 3 SNSA (sensor alarm), bit 0 low battery.
    pub stat2: u8,
}

impl Frame8 {
    /// Encodes the 4 bytes.
    pub fn encode(&self) -> [u8; 4] {
        [
            0x80 | (self.status & 0x7C) | ((self.heart_rate >> 7) as u8 & 0x03),
            (self.heart_rate & 0x7F) as u8,
            self.spo2 & 0x7F,
            self.stat2 & 0x7F,
        ]
    }

    /// Readings and events of the frame.
    pub fn observations(&self) -> Vec<Observation> {
        let mut flags = Flags::EMPTY;
        flags.set_if(self.status & 0x20 != 0, Flag::OutOfTrack);
        flags.set_if(self.status & 0x10 != 0, Flag::LowPerfusion);
        flags.set_if(self.status & 0x04 != 0, Flag::Artefact);
        // The display values are held for 10 s after the finger is removed, with SNSA set:
        // they must not be shown as current.
        flags.set_if(self.stat2 & 0x08 != 0, Flag::SensorOff);
        let mut out = pulse_ox_readings(self.heart_rate, self.spo2, flags);
        if self.stat2 & 0x01 != 0 {
            out.push(DeviceEvent::LowBattery.into());
        }
        out
    }
}

/// Frames a #8 stream: a byte with bit 7 set followed by three with bit 7 clear.
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameDecoder8;

impl FrameDecoder for FrameDecoder8 {
    type Frame = Frame8;

    fn step(&self, buf: &[u8]) -> Step<Frame8> {
        if buf[0] & 0x80 == 0 {
            return Step::Skip {
                len: 1,
                error: DecodeError::Garbage { skipped: 1 },
            };
        }
        // A byte with bit 7 set inside the frame means the frame started there instead.
        if let Some(i) = buf.iter().take(4).skip(1).position(|b| b & 0x80 != 0) {
            return Step::Skip {
                len: i + 1,
                error: DecodeError::Garbage { skipped: i + 1 },
            };
        }
        let Some(f) = buf.get(..4) else {
            return Step::NeedMore;
        };
        let heart_rate = ((f[0] as u16 & 0x03) << 7) | f[1] as u16;
        let spo2 = f[2];
        // No checksum: range checks are the only defence against a misaligned frame.
        if spo2 > 100 && spo2 != SPO2_MISSING {
            return Step::Skip {
                len: 4,
                error: DecodeError::OutOfRange {
                    field: "SpO2",
                    value: spo2 as u32,
                },
            };
        }
        if heart_rate > 321 && heart_rate != HR_MISSING {
            return Step::Skip {
                len: 4,
                error: DecodeError::OutOfRange {
                    field: "pulse rate",
                    value: heart_rate as u32,
                },
            };
        }
        Step::Frame {
            frame: Frame8 {
                status: f[0] & 0x7C,
                heart_rate,
                spo2,
                stat2: f[3],
            },
            len: 4,
        }
    }
}

#[cfg(test)]
mod tests;
