//! SunTech Advantage OEM NIBP module. 9600 baud (8N1 assumed). The host starts every
//! measurement and fetches every result.
//!
//! Host → module: `:` (0x3A), command bytes, checksum. Module → host: `>` (0x3E), total length,
//! data, checksum. In both directions all bytes of a packet sum to 0 mod 256.

use crate::error::DecodeError;
use crate::model::{mdc, DeviceEvent, Observation, Reading, Unit, Vital};
use crate::serial::LineSettings;
use crate::stream::{FrameDecoder, Step};
use serde::Serialize;

/// 9600 baud; the other settings are unconfirmed, 8N1 assumed.
pub const LINE: LineSettings = LineSettings::n81(9600);

const FROM_MODULE: u8 = 0x3E;
const FROM_HOST: u8 = 0x3A;
/// The longest module packet.
const MAX_LEN: usize = 0x43;
/// Length of the BP data record.
const BP_RECORD_LEN: usize = 24;

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

/// Appends the byte that makes the packet sum to zero.
fn seal(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.push(sum(&bytes).wrapping_neg());
    bytes
}

/// Host commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Start a BP measurement: `3A 20 A6`.
    StartMeasurement,
    /// Get the BP data record: `3A 79 03 00 4A`.
    GetBpData,
    /// Get the current cuff pressure: `3A 79 05 00 48`.
    GetCuffPressure,
    /// Close all pneumatics: `3A 0C 00 01 01 B8`.
    ClosePneumatics,
    /// Abort the measurement in progress (the module deflates the cuff): `3A 79 01 00 4C`.
    /// Not in the project's reference notes (wire-formats §3.5): the command bytes `79 01 00`
    /// are what the `SuntechProvider` NIBP drivers of an open-source patient-monitor firmware
    /// send to stop a measurement (`SUNTECH_CMD_ABORT_BP` 0x01 under the `0x79` send prefix), in
    /// two separate versions of that file; framed and checksummed like every host command.
    /// Unconfirmed against SunTech's own Advantage OEM guide.
    AbortMeasurement,
}

impl Command {
    fn body(self) -> &'static [u8] {
        match self {
            Command::StartMeasurement => &[0x20],
            Command::GetBpData => &[0x79, 0x03, 0x00],
            Command::GetCuffPressure => &[0x79, 0x05, 0x00],
            Command::ClosePneumatics => &[0x0C, 0x00, 0x01, 0x01],
            Command::AbortMeasurement => &[0x79, 0x01, 0x00],
        }
    }

    /// The bytes on the wire.
    pub fn encode(self) -> Vec<u8> {
        let mut out = vec![FROM_HOST];
        out.extend_from_slice(self.body());
        seal(out)
    }
}

/// Frames host commands; the simulated module uses it.
#[derive(Debug, Default, Clone, Copy)]
pub struct CommandDecoder;

impl FrameDecoder for CommandDecoder {
    type Frame = Command;

    fn step(&self, buf: &[u8]) -> Step<Command> {
        let garbage = Step::Skip {
            len: 1,
            error: DecodeError::Garbage { skipped: 1 },
        };
        if buf[0] != FROM_HOST {
            return garbage;
        }
        let Some(&first) = buf.get(1) else {
            return Step::NeedMore;
        };
        let candidates: &[Command] = match first {
            0x20 => &[Command::StartMeasurement],
            0x79 => &[
                Command::GetBpData,
                Command::GetCuffPressure,
                Command::AbortMeasurement,
            ],
            0x0C => &[Command::ClosePneumatics],
            _ => return garbage,
        };
        for &cmd in candidates {
            let wire = cmd.encode();
            let n = wire.len().min(buf.len());
            if buf[..n] == wire[..n] {
                return if buf.len() < wire.len() {
                    Step::NeedMore
                } else {
                    Step::Frame {
                        frame: cmd,
                        len: wire.len(),
                    }
                };
            }
        }
        garbage
    }
}

/// The BP data record (module packet of length 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BpRecord {
    /// Systolic, mmHg.
    pub systolic: u16,
    /// Diastolic, mmHg.
    pub diastolic: u16,
    /// Heart beats counted.
    pub beats: u8,
    /// BP status byte (meanings unconfirmed).
    pub status: u8,
    /// Test codes.
    pub test_codes: [u8; 8],
    /// Heart rate, bpm.
    pub heart_rate: u8,
    /// Mean arterial pressure, mmHg.
    pub mean: u16,
    /// Error code; 0 means no error, anything else means no valid reading.
    pub error: u8,
}

/// One packet from the module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Current cuff pressure, mmHg (length 5).
    CuffPressure(u16),
    /// One status character (length 4); `K` means the measurement is complete.
    Status(u8),
    /// The BP data record (length 24).
    BpData(BpRecord),
    /// Any other length: kept raw and reported as unknown.
    Other(Vec<u8>),
}

/// The status character that means "measurement complete".
pub const STATUS_COMPLETE: u8 = b'K';

impl Response {
    /// The bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let data: Vec<u8> = match self {
            Response::CuffPressure(p) => p.to_le_bytes().to_vec(),
            Response::Status(c) => vec![*c],
            Response::BpData(r) => {
                let mut d = Vec::with_capacity(BP_RECORD_LEN - 3);
                d.extend_from_slice(&r.systolic.to_le_bytes());
                d.extend_from_slice(&r.diastolic.to_le_bytes());
                d.push(r.beats);
                d.push(r.status);
                d.extend_from_slice(&r.test_codes);
                d.push(r.heart_rate);
                d.push(0); // spare
                d.extend_from_slice(&r.mean.to_le_bytes());
                d.push(r.error);
                d.extend_from_slice(&[0, 0]); // spare
                d
            }
            Response::Other(d) => d.clone(),
        };
        let mut out = vec![FROM_MODULE, (data.len() + 3) as u8];
        out.extend(data);
        seal(out)
    }

    /// Readings and events of the packet.
    pub fn observations(&self) -> Vec<Observation> {
        match self {
            Response::CuffPressure(p) => {
                vec![Reading::number(Vital::CuffPressure, *p as f64, Unit::MmHg).into()]
            }
            Response::Status(STATUS_COMPLETE) => vec![DeviceEvent::MeasurementComplete.into()],
            Response::Status(c) => vec![DeviceEvent::CuffStatus { code: *c }.into()],
            Response::BpData(r) if r.error != 0 => {
                vec![DeviceEvent::MeasurementFailed { code: r.error }.into()]
            }
            Response::BpData(r) => vec![
                Reading::number(Vital::NibpSystolic, r.systolic as f64, Unit::MmHg).into(),
                Reading::number(Vital::NibpDiastolic, r.diastolic as f64, Unit::MmHg).into(),
                Reading::number(Vital::NibpMean, r.mean as f64, Unit::MmHg).into(),
                Reading::number(Vital::PulseRate, r.heart_rate as f64, Unit::BeatsPerMinute)
                    .with_mdc(mdc::PULS_RATE_NON_INV)
                    .into(),
            ],
            Response::Other(d) => vec![DeviceEvent::UnknownParameter {
                code: format!("suntech packet of length {}", d.len() + 3),
            }
            .into()],
        }
    }
}

/// Frames module packets.
#[derive(Debug, Default, Clone, Copy)]
pub struct SuntechDecoder;

impl FrameDecoder for SuntechDecoder {
    type Frame = Response;

    fn step(&self, buf: &[u8]) -> Step<Response> {
        let garbage = Step::Skip {
            len: 1,
            error: DecodeError::Garbage { skipped: 1 },
        };
        if buf[0] != FROM_MODULE {
            return garbage;
        }
        let Some(&len) = buf.get(1) else {
            return Step::NeedMore;
        };
        let len = len as usize;
        if !(4..=MAX_LEN).contains(&len) {
            return garbage;
        }
        let Some(packet) = buf.get(..len) else {
            return Step::NeedMore;
        };
        let total = sum(packet);
        if total != 0 {
            return Step::Skip {
                len: 1,
                error: DecodeError::Checksum {
                    expected: packet[len - 1],
                    actual: packet[len - 1].wrapping_sub(total),
                },
            };
        }
        let d = &packet[2..len - 1];
        let frame = match len {
            5 => Response::CuffPressure(u16::from_le_bytes([d[0], d[1]])),
            4 => Response::Status(d[0]),
            BP_RECORD_LEN => {
                let mut test_codes = [0u8; 8];
                test_codes.copy_from_slice(&d[6..14]);
                Response::BpData(BpRecord {
                    systolic: u16::from_le_bytes([d[0], d[1]]),
                    diastolic: u16::from_le_bytes([d[2], d[3]]),
                    beats: d[4],
                    status: d[5],
                    test_codes,
                    heart_rate: d[14],
                    mean: u16::from_le_bytes([d[16], d[17]]),
                    error: d[18],
                })
            }
            _ => Response::Other(d.to_vec()),
        };
        Step::Frame { frame, len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Value;
    use crate::stream::{decode_all, Deframer};
    use proptest::prelude::*;

    #[test]
    fn host_commands_are_the_documented_bytes() {
        assert_eq!(Command::StartMeasurement.encode(), [0x3A, 0x20, 0xA6]);
        assert_eq!(Command::GetBpData.encode(), [0x3A, 0x79, 0x03, 0x00, 0x4A]);
        assert_eq!(
            Command::GetCuffPressure.encode(),
            [0x3A, 0x79, 0x05, 0x00, 0x48]
        );
        assert_eq!(
            Command::ClosePneumatics.encode(),
            [0x3A, 0x0C, 0x00, 0x01, 0x01, 0xB8]
        );
        assert_eq!(
            Command::AbortMeasurement.encode(),
            [0x3A, 0x79, 0x01, 0x00, 0x4C]
        );
        let mut stream = vec![0x55];
        for c in [
            Command::GetCuffPressure,
            Command::StartMeasurement,
            Command::GetBpData,
            Command::AbortMeasurement,
        ] {
            stream.extend(c.encode());
        }
        assert_eq!(
            decode_all(CommandDecoder, &stream),
            vec![
                Err(DecodeError::Garbage { skipped: 1 }),
                Ok(Command::GetCuffPressure),
                Ok(Command::StartMeasurement),
                Ok(Command::GetBpData),
                Ok(Command::AbortMeasurement),
            ]
        );
    }

    #[test]
    fn cuff_pressure_vector() {
        // 3E '>', 05 length, 02 01 = 258 mmHg LE, BA checksum; one trailing byte.
        let mut d = Deframer::new(SuntechDecoder);
        d.push(&[0x3E, 0x05, 0x02, 0x01, 0xBA, 0x3E]);
        assert_eq!(d.next_frame(), Some(Ok(Response::CuffPressure(258))));
        assert_eq!(d.pending(), 1);
    }

    #[test]
    fn status_complete_vector() {
        let out = decode_all(SuntechDecoder, &[0x3E, 0x04, 0x4B, 0x73]);
        let r = out[0].as_ref().unwrap();
        assert_eq!(r, &Response::Status(b'K'));
        assert_eq!(
            r.observations(),
            vec![Observation::Event(DeviceEvent::MeasurementComplete)]
        );
    }

    #[test]
    fn bp_record_decodes_with_cuff_pulse_code() {
        let rec = BpRecord {
            systolic: 185,
            diastolic: 112,
            beats: 20,
            status: 0,
            test_codes: [0; 8],
            heart_rate: 88,
            mean: 136,
            error: 0,
        };
        let bytes = Response::BpData(rec).encode();
        assert_eq!(bytes.len(), 24);
        assert_eq!(bytes[..6], [0x3E, 0x18, 185, 0, 112, 0]);
        assert_eq!(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
        let out = decode_all(SuntechDecoder, &bytes);
        let obs = out[0].as_ref().unwrap().observations();
        let got: Vec<_> = obs
            .iter()
            .map(|o| match o {
                Observation::Reading(r) => (r.vital, r.value, r.mdc),
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    Vital::NibpSystolic,
                    Value::Number(185.0),
                    Some(mdc::PRESS_BLD_NONINV_SYS)
                ),
                (
                    Vital::NibpDiastolic,
                    Value::Number(112.0),
                    Some(mdc::PRESS_BLD_NONINV_DIA)
                ),
                (
                    Vital::NibpMean,
                    Value::Number(136.0),
                    Some(mdc::PRESS_BLD_NONINV_MEAN)
                ),
                (
                    Vital::PulseRate,
                    Value::Number(88.0),
                    Some(mdc::PULS_RATE_NON_INV)
                ),
            ]
        );
    }

    #[test]
    fn error_code_means_no_reading() {
        let rec = BpRecord {
            systolic: 0,
            diastolic: 0,
            beats: 0,
            status: 0,
            test_codes: [0; 8],
            heart_rate: 0,
            mean: 0,
            error: 3,
        };
        let out = decode_all(SuntechDecoder, &Response::BpData(rec).encode());
        assert_eq!(
            out[0].as_ref().unwrap().observations(),
            vec![Observation::Event(DeviceEvent::MeasurementFailed {
                code: 3
            })]
        );
    }

    #[test]
    fn bad_checksum_resyncs() {
        let mut bytes = vec![0x3E, 0x05, 0x02, 0x01, 0xBB];
        bytes.extend([0x3E, 0x05, 0x02, 0x01, 0xBA]);
        let out = decode_all(SuntechDecoder, &bytes);
        assert!(matches!(
            out[0],
            Err(DecodeError::Checksum {
                expected: 0xBB,
                actual: 0xBA
            })
        ));
        assert_eq!(out.last(), Some(&Ok(Response::CuffPressure(258))));
    }

    pub(crate) fn arb_response() -> impl Strategy<Value = Response> {
        prop_oneof![
            any::<u16>().prop_map(Response::CuffPressure),
            any::<u8>().prop_map(Response::Status),
            (
                any::<u16>(),
                any::<u16>(),
                any::<u8>(),
                any::<u8>(),
                any::<[u8; 8]>(),
                any::<u8>(),
                any::<u16>(),
                any::<u8>()
            )
                .prop_map(|(s, d, b, st, tc, hr, m, e)| Response::BpData(BpRecord {
                    systolic: s,
                    diastolic: d,
                    beats: b,
                    status: st,
                    test_codes: tc,
                    heart_rate: hr,
                    mean: m,
                    error: e
                })),
            // Data of 3..20 bytes: total lengths 6..23, clear of the known 4, 5 and 24.
            proptest::collection::vec(any::<u8>(), 3..20).prop_map(Response::Other),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(responses in proptest::collection::vec(arb_response(), 1..5)) {
            let bytes: Vec<u8> = responses.iter().flat_map(|r| r.encode()).collect();
            let got: Vec<_> = decode_all(SuntechDecoder, &bytes).into_iter().map(|r| r.unwrap()).collect();
            prop_assert_eq!(got, responses);
        }
    }
}
