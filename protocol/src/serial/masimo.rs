//! Masimo Radical-7 / Radical-5 / Rad-8 / Rad-87 "ASCII 1" serial output, and the trend
//! (printer) line. 9600 8N1; one line per second ending CR LF; fields are parsed by key because
//! models differ in which fields they print and how wide.

use crate::error::DecodeError;
use crate::model::{
    DeviceAlarm, DeviceEvent, DeviceTime, Flag, Flags, Observation, Reading, Unavailable, Unit,
    Value, Vital,
};
use crate::serial::LineSettings;
use crate::stream::{FrameDecoder, Step};
use serde::Serialize;
use std::fmt::Write as _;

/// 9600 8N1, no handshake.
pub const LINE: LineSettings = LineSettings::n81(9600);

/// The longest line accepted; a real one is about 150 bytes.
pub const MAX_LINE: usize = 512;

/// Keys Vigil knows and deliberately does not use (rainbow parameters, serial number).
const IGNORED_KEYS: [&str; 13] = [
    "SN", "SPCO", "SPMET", "DESAT", "PIDELTA", "PVI", "SPHB", "SPOC", "SpCO", "SpMet", "SpHb",
    "PVi", "SpOC",
];

/// EXC bits after which the numbers on the line are not a valid reading.
const EXC_INVALID: u32 = 0x01 | 0x02 | 0x08 | 0x20 | 0x80 | 0x100;

/// Which of the two line grammars a line uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineStyle {
    /// Live "ASCII 1": `SPO2=098% BPM=097 PI=03.60%`, dashes when unavailable.
    Ascii1,
    /// Trend download: `SpO2=098 PR=097 PI=03.60`, zeros when unavailable; stored, not live.
    Trend,
}

/// One decoded line.
#[derive(Debug, Clone, PartialEq)]
pub struct MasimoLine {
    /// Which grammar the line used.
    pub style: LineStyle,
    /// Device clock (MM/DD/YY HH:MM:SS, no time zone).
    pub time: Option<DeviceTime>,
    /// SpO2, %.
    pub spo2: Option<Value>,
    /// Pulse rate, bpm.
    pub pulse_rate: Option<Value>,
    /// Perfusion index, %.
    pub perfusion_index: Option<Value>,
    /// ALARM word.
    pub alarm: Option<u16>,
    /// EXC (exception) word.
    pub exc: Option<u32>,
    /// Keys Vigil does not know, in line order.
    pub unknown_keys: Vec<String>,
}

/// Frames Masimo lines.
#[derive(Debug, Default, Clone, Copy)]
pub struct MasimoDecoder;

impl FrameDecoder for MasimoDecoder {
    type Frame = MasimoLine;

    fn step(&self, buf: &[u8]) -> Step<MasimoLine> {
        // Decide from the first MAX_LINE + 1 bytes only, so that the outcome does not depend on
        // how the stream was chunked. The rest of an over-long line is then read as a line of
        // its own, and fails to parse unless it is one.
        let window = &buf[..buf.len().min(MAX_LINE + 1)];
        let Some(end) = window.iter().position(|&b| b == b'\n') else {
            return if buf.len() > MAX_LINE {
                Step::Skip {
                    len: MAX_LINE + 1,
                    error: DecodeError::TooLong { max: MAX_LINE },
                }
            } else {
                Step::NeedMore
            };
        };
        let len = end + 1;
        let line = &buf[..end];
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            return Step::Skip {
                len,
                error: DecodeError::Garbage { skipped: len },
            };
        }
        match parse_line(line) {
            Ok(frame) => Step::Frame { frame, len },
            Err(error) => Step::Skip { len, error },
        }
    }
}

fn malformed(msg: impl Into<String>) -> DecodeError {
    DecodeError::Malformed(msg.into())
}

fn parse_line(line: &[u8]) -> Result<MasimoLine, DecodeError> {
    let text = std::str::from_utf8(line)
        .ok()
        .filter(|t| t.is_ascii())
        .ok_or_else(|| malformed("line is not ASCII"))?;
    let mut tokens = text.split_ascii_whitespace().peekable();
    let mut time = None;
    if let Some(date) = tokens.peek().filter(|t| t.contains('/')).copied() {
        tokens.next();
        let clock = tokens
            .next()
            .ok_or_else(|| malformed("date without a time"))?;
        time = Some(parse_time(date, clock)?);
    }
    let mut out = MasimoLine {
        style: LineStyle::Ascii1,
        time,
        spo2: None,
        pulse_rate: None,
        perfusion_index: None,
        alarm: None,
        exc: None,
        unknown_keys: Vec::new(),
    };
    let mut known = 0usize;
    for token in tokens {
        let Some((key, value)) = token.split_once('=') else {
            // Trend lines may carry free-text labels; they hold no values.
            continue;
        };
        known += 1;
        match key {
            "SPO2" => out.spo2 = Some(number(key, value, 3)?),
            "BPM" => out.pulse_rate = Some(number(key, value, 3)?),
            "SpO2" => {
                out.style = LineStyle::Trend;
                out.spo2 = Some(trend_number(key, value)?);
            }
            "PR" => {
                out.style = LineStyle::Trend;
                out.pulse_rate = Some(trend_number(key, value)?);
            }
            "PI" => out.perfusion_index = Some(number(key, value, 5)?),
            "ALARM" => out.alarm = Some(hex(key, value)? as u16),
            "EXC" => {
                // The trend format may append ":label,label".
                let code = value.split(':').next().unwrap_or(value);
                out.exc = Some(hex(key, code)?);
            }
            k if IGNORED_KEYS.contains(&k) => {}
            k => {
                known -= 1;
                out.unknown_keys.push(k.to_string());
            }
        }
    }
    if out.style == LineStyle::Trend {
        // Trend lines mark "no value" with zeros, PI included.
        if let Some(Value::Number(v)) = out.perfusion_index {
            if v == 0.0 {
                out.perfusion_index = Some(Value::Unavailable(Unavailable::Missing));
            }
        }
    }
    if known == 0 {
        return Err(malformed("no Masimo fields on the line"));
    }
    Ok(out)
}

fn parse_time(date: &str, clock: &str) -> Result<DeviceTime, DecodeError> {
    let bad = || malformed(format!("bad timestamp {date} {clock}"));
    let fields = |s: &str, sep: char| -> Option<[u8; 3]> {
        let mut it = s.split(sep).map(|p| p.parse::<u8>().ok());
        let v = [it.next()??, it.next()??, it.next()??];
        it.next().is_none().then_some(v)
    };
    let [month, day, year] = fields(date, '/').ok_or_else(bad)?;
    let [hour, minute, second] = fields(clock, ':').ok_or_else(bad)?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    Ok(DeviceTime {
        year: Some(2000 + year as u16),
        month: Some(month),
        day: Some(day),
        hour,
        minute,
        second,
    })
}

/// An ASCII 1 value: digits and at most one '.', an optional trailing '%'; any '-' in the digit
/// positions means unavailable.
fn number(key: &str, raw: &str, max_len: usize) -> Result<Value, DecodeError> {
    let digits = raw.strip_suffix('%').unwrap_or(raw);
    if digits.is_empty() || digits.len() > max_len {
        return Err(malformed(format!("{key}={raw}: bad width")));
    }
    if digits.contains('-') {
        if digits.chars().all(|c| c == '-' || c == '.') {
            return Ok(Value::Unavailable(Unavailable::Missing));
        }
        return Err(malformed(format!("{key}={raw}: not a number")));
    }
    if !digits.chars().all(|c| c.is_ascii_digit() || c == '.') || digits.matches('.').count() > 1 {
        return Err(malformed(format!("{key}={raw}: not a number")));
    }
    digits
        .parse::<f64>()
        .map(Value::Number)
        .map_err(|_| malformed(format!("{key}={raw}: not a number")))
}

/// A trend value: as ASCII 1, but zero means "no value".
fn trend_number(key: &str, raw: &str) -> Result<Value, DecodeError> {
    match number(key, raw, 5)? {
        Value::Number(0.0) => Ok(Value::Unavailable(Unavailable::Missing)),
        other => Ok(other),
    }
}

fn hex(key: &str, raw: &str) -> Result<u32, DecodeError> {
    if raw.is_empty() || raw.len() > 6 {
        return Err(malformed(format!("{key}={raw}: bad width")));
    }
    u32::from_str_radix(raw, 16).map_err(|_| malformed(format!("{key}={raw}: not hex")))
}

/// Quality flags from the EXC word.
pub fn exc_flags(exc: u32) -> Flags {
    let mut f = Flags::EMPTY;
    f.set_if(exc & (0x01 | 0x20 | 0x1000) != 0, Flag::SensorOff);
    f.set_if(
        exc & (0x02
            | 0x80
            | 0x100
            | 0x2000
            | 0x4000
            | 0x8000
            | 0x1_0000
            | 0x4_0000
            | 0x8_0000
            | 0x10_0000)
            != 0,
        Flag::SensorDefective,
    );
    f.set_if(exc & 0x04 != 0, Flag::LowPerfusion);
    f.set_if(exc & 0x08 != 0, Flag::PulseSearch);
    f.set_if(exc & (0x10 | 0x40) != 0, Flag::Interference);
    f.set_if(exc & 0x400 != 0, Flag::Questionable);
    f.set_if(exc & 0x2_0000 != 0, Flag::Calibrating);
    f.set_if(exc & EXC_INVALID != 0, Flag::Invalid);
    // 0x000800 ("Masimo SET") is the normal operating mode, not an exception.
    f
}

/// The named bits of an ALARM word.
pub fn device_alarms(alarm: u16) -> Vec<DeviceAlarm> {
    const BITS: [(u16, DeviceAlarm); 13] = [
        (0x0001, DeviceAlarm::Spo2High),
        (0x0002, DeviceAlarm::Spo2Low),
        (0x0004, DeviceAlarm::PulseRateHigh),
        (0x0008, DeviceAlarm::PulseRateLow),
        (0x0010, DeviceAlarm::AlarmActive),
        (0x0020, DeviceAlarm::AlarmSilenced),
        (0x0040, DeviceAlarm::LowBattery),
        (0x0100, DeviceAlarm::SpcoHigh),
        (0x0200, DeviceAlarm::SpcoLow),
        (0x0400, DeviceAlarm::SpmetHigh),
        (0x0800, DeviceAlarm::SpmetLow),
        (0x1000, DeviceAlarm::DesaturationIndex),
        (0x2000, DeviceAlarm::PiDelta),
    ];
    BITS.iter()
        .filter(|(bit, _)| alarm & bit != 0)
        .map(|(_, a)| *a)
        .collect()
}

impl MasimoLine {
    /// Readings, device alarms, sensor events and unknown keys of the line.
    pub fn observations(&self) -> Vec<Observation> {
        let mut flags = self.exc.map(exc_flags).unwrap_or_default();
        flags.set_if(self.style == LineStyle::Trend, Flag::Stored);
        let mut out: Vec<Observation> = [
            (Vital::Spo2, self.spo2, Unit::Percent),
            (Vital::PulseRate, self.pulse_rate, Unit::BeatsPerMinute),
            (Vital::PerfusionIndex, self.perfusion_index, Unit::Percent),
        ]
        .into_iter()
        .filter_map(|(vital, value, unit)| {
            let value = value?;
            Some(
                Reading::from_value(vital, value, unit)
                    .with_device_time(self.time)
                    .with_flags(flags)
                    .into(),
            )
        })
        .collect();
        out.extend(DeviceEvent::from_sensor_flags(flags).map(Observation::Event));
        if let Some(alarm) = self.alarm.filter(|a| *a != 0) {
            if alarm & 0x40 != 0 {
                out.push(DeviceEvent::LowBattery.into());
            }
            out.push(
                DeviceEvent::DeviceAlarms {
                    bits: alarm as u32,
                    alarms: device_alarms(alarm),
                }
                .into(),
            );
        }
        for key in &self.unknown_keys {
            out.push(DeviceEvent::UnknownParameter { code: key.clone() }.into());
        }
        out
    }

    /// Encodes the line as a Radical-7 prints it in ASCII 1 (or as a trend line), CR LF
    /// included. Unknown keys are not written.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = String::new();
        if let Some(t) = &self.time {
            let _ = write!(
                s,
                "{:02}/{:02}/{:02} {:02}:{:02}:{:02} ",
                t.month.unwrap_or(1),
                t.day.unwrap_or(1),
                t.year.unwrap_or(2000) % 100,
                t.hour,
                t.minute,
                t.second
            );
        }
        let trend = self.style == LineStyle::Trend;
        let int3 = |v: Value, pct: bool| match (v, trend) {
            (Value::Number(n), _) => format!("{:03.0}{}", n, if pct { "%" } else { "" }),
            (Value::Unavailable(_), true) => "000".to_string(),
            (Value::Unavailable(_), false) => format!("---{}", if pct { "%" } else { "" }),
        };
        let pi = |v: Value| match (v, trend) {
            (Value::Number(n), true) => format!("{n:05.2}"),
            (Value::Number(n), false) => format!("{n:05.2}%"),
            (Value::Unavailable(_), true) => "00.00".to_string(),
            (Value::Unavailable(_), false) => "--.--%".to_string(),
        };
        let mut fields = Vec::new();
        if let Some(v) = self.spo2 {
            fields.push(if trend {
                format!("SpO2={}", int3(v, false))
            } else {
                format!("SPO2={}", int3(v, true))
            });
        }
        if let Some(v) = self.pulse_rate {
            fields.push(if trend {
                format!("PR={}", int3(v, false))
            } else {
                format!("BPM={}", int3(v, false))
            });
        }
        if let Some(v) = self.perfusion_index {
            fields.push(format!("PI={}", pi(v)));
        }
        if let Some(a) = self.alarm {
            fields.push(format!("ALARM={a:04X}"));
        }
        if let Some(e) = self.exc {
            fields.push(format!("EXC={e:06X}"));
        }
        s.push_str(&fields.join(" "));
        s.push_str("\r\n");
        s.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::decode_all;
    use proptest::prelude::*;

    const RAD8: &str = "02/22/16 22:47:45 SN=0000056661 SPO2=098% BPM=097 PI=03.60% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800\r\n";

    fn one(bytes: &[u8]) -> MasimoLine {
        let mut frames = decode_all(MasimoDecoder, bytes);
        assert_eq!(frames.len(), 1, "{frames:?}");
        frames.remove(0).unwrap()
    }

    #[test]
    fn rad8_capture_decodes_field_by_field() {
        let mut bytes = RAD8.as_bytes().to_vec();
        bytes.push(b'0'); // a trailing byte: exactly one line is consumed
        let mut d = crate::stream::Deframer::new(MasimoDecoder);
        d.push(&bytes);
        let line = d.next_frame().unwrap().unwrap();
        assert_eq!(d.pending(), 1);
        assert_eq!(line.style, LineStyle::Ascii1);
        let t = line.time.unwrap();
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (Some(2016), Some(2), Some(22), 22, 47, 45)
        );
        assert_eq!(line.spo2, Some(Value::Number(98.0)));
        assert_eq!(line.pulse_rate, Some(Value::Number(97.0)));
        assert_eq!(line.perfusion_index, Some(Value::Number(3.6)));
        assert_eq!(line.alarm, Some(0));
        assert_eq!(line.exc, Some(0x800), "SET only: normal");
        assert!(line.unknown_keys.is_empty(), "rainbow keys are known");
        let obs = line.observations();
        assert_eq!(obs.len(), 3, "three readings, no events: {obs:?}");
        for o in &obs {
            let Observation::Reading(r) = o else { panic!() };
            assert!(r.flags.is_empty());
            assert!(r.clinical_value().is_some());
        }
    }

    #[test]
    fn radical5_short_line_with_narrow_words() {
        let line = one(b"11/23/26 10:00:00 SPO2=---% BPM=--- PI=--.--% ALARM=10 EXC=21\r\n");
        assert_eq!(line.spo2, Some(Value::Unavailable(Unavailable::Missing)));
        assert_eq!(
            line.pulse_rate,
            Some(Value::Unavailable(Unavailable::Missing))
        );
        assert_eq!(line.alarm, Some(0x10));
        let obs = line.observations();
        assert!(obs.contains(&Observation::Event(DeviceEvent::SensorOff)));
        assert!(obs.contains(&Observation::Event(DeviceEvent::DeviceAlarms {
            bits: 0x10,
            alarms: vec![DeviceAlarm::AlarmActive]
        })));
    }

    #[test]
    fn exception_bits_invalidate_numbers() {
        let line = one(b"SPO2=097% BPM=080 EXC=000020\r\n");
        let Observation::Reading(r) = &line.observations()[0] else {
            panic!()
        };
        assert_eq!(r.value, Value::Unavailable(Unavailable::FlaggedInvalid));
        assert!(r.flags.contains(Flag::SensorOff));
        let line = one(b"SPO2=097% BPM=080 EXC=000004\r\n");
        let Observation::Reading(r) = &line.observations()[0] else {
            panic!()
        };
        assert_eq!(
            r.value,
            Value::Number(97.0),
            "low perfusion alone is a flag"
        );
        assert!(r.flags.contains(Flag::LowPerfusion));
    }

    #[test]
    fn an_spo2_above_100_decodes_as_implausible_never_as_a_number() {
        let line = one(b"11/23/26 10:00:00 SPO2=186% BPM=080 PI=02.10% EXC=000000\r\n");
        let Observation::Reading(r) = &line.observations()[0] else {
            panic!()
        };
        assert_eq!(r.vital, Vital::Spo2);
        assert_eq!(r.value, Value::Unavailable(Unavailable::Implausible));
        assert!(!r.is_evidence());
        let Observation::Reading(pr) = &line.observations()[1] else {
            panic!()
        };
        assert_eq!(pr.value, Value::Number(80.0), "the rest of the line stands");
    }

    #[test]
    fn trend_line_zeros_are_missing_and_stored() {
        let line = one(b"02/22/16 22:47:45 SpO2=000 PR=072 PI=00.00 EXC=000800:SET\r\n");
        assert_eq!(line.style, LineStyle::Trend);
        assert_eq!(line.spo2, Some(Value::Unavailable(Unavailable::Missing)));
        assert_eq!(line.pulse_rate, Some(Value::Number(72.0)));
        assert_eq!(
            line.perfusion_index,
            Some(Value::Unavailable(Unavailable::Missing))
        );
        let Observation::Reading(pr) = &line.observations()[1] else {
            panic!()
        };
        assert!(pr.flags.contains(Flag::Stored));
        assert_eq!(pr.clinical_value(), None, "stored data is never live");
    }

    #[test]
    fn low_battery_and_unknown_keys_are_events() {
        let line = one(b"SPO2=097% BPM=080 ALARM=0040 FOO=12\r\n");
        let obs = line.observations();
        assert!(obs.contains(&Observation::Event(DeviceEvent::LowBattery)));
        assert!(
            obs.contains(&Observation::Event(DeviceEvent::UnknownParameter {
                code: "FOO".into()
            }))
        );
    }

    #[test]
    fn bad_lines_are_typed_errors_and_the_stream_continues() {
        let input = b"SPO2=9x8% BPM=097\r\n\xff\xfe\r\nhello\r\nSPO2=098% BPM=097\r\n";
        let out = decode_all(MasimoDecoder, input);
        assert_eq!(out.len(), 4, "{out:?}");
        assert!(matches!(&out[0], Err(DecodeError::Malformed(_))));
        assert!(matches!(&out[1], Err(DecodeError::Malformed(_))));
        assert!(matches!(&out[2], Err(DecodeError::Malformed(_))));
        assert_eq!(out[3].as_ref().unwrap().spo2, Some(Value::Number(98.0)));
    }

    #[test]
    fn overlong_line_is_dropped() {
        let mut input = vec![b'A'; MAX_LINE + 10];
        input.extend_from_slice(b"\r\nSPO2=098% BPM=097\r\n");
        let out = decode_all(MasimoDecoder, &input);
        assert!(matches!(out[0], Err(DecodeError::TooLong { .. })));
        assert!(out.last().unwrap().is_ok());
    }

    #[test]
    fn encoder_reproduces_the_capture_fields() {
        let line = one(RAD8.as_bytes());
        let encoded = String::from_utf8(line.encode()).unwrap();
        assert_eq!(
            encoded,
            "02/22/16 22:47:45 SPO2=098% BPM=097 PI=03.60% ALARM=0000 EXC=000800\r\n"
        );
    }

    fn arb_value(max: u32, decimals: bool) -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Unavailable(Unavailable::Missing)),
            (1..=max).prop_map(move |n| {
                if decimals {
                    Value::Number(n as f64 / 100.0)
                } else {
                    Value::Number(n as f64)
                }
            }),
        ]
    }

    pub(crate) fn arb_line() -> impl Strategy<Value = MasimoLine> {
        (
            any::<bool>(),
            proptest::option::of((0u16..100, 1u8..13, 1u8..29, 0u8..24, 0u8..60, 0u8..60)),
            proptest::option::of(arb_value(100, false)),
            proptest::option::of(arb_value(300, false)),
            proptest::option::of(arb_value(2000, true)),
            proptest::option::of(any::<u16>()),
            proptest::option::of(0u32..0x100_0000),
        )
            .prop_map(|(trend, t, spo2, pr, pi, alarm, exc)| MasimoLine {
                style: if trend {
                    LineStyle::Trend
                } else {
                    LineStyle::Ascii1
                },
                time: t.map(|(y, mo, d, h, mi, s)| DeviceTime {
                    year: Some(2000 + y),
                    month: Some(mo),
                    day: Some(d),
                    hour: h,
                    minute: mi,
                    second: s,
                }),
                // A trend line is only recognisable by its SpO2 or PR key.
                spo2: if trend {
                    Some(spo2.unwrap_or(Value::Number(97.0)))
                } else {
                    spo2
                },
                pulse_rate: pr,
                perfusion_index: pi,
                alarm,
                exc: exc.or(Some(0x800)),
                unknown_keys: vec![],
            })
    }

    proptest! {
        #[test]
        fn round_trip(line in arb_line()) {
            prop_assert_eq!(one(&line.encode()), line);
        }
    }
}
