//! ORU^R01 (HL7 v2.3 to v2.6, IHE PCD-01 style) to observations.

use super::codes::{unit_for, CodeTable};
use super::message::{Hl7Error, Message, Segment};
use super::time::{has_offset, parse_ts, to_unix};
use crate::model::{
    mdc, DeviceEvent, DeviceTime, Flag, Flags, Observation, Reading, Unavailable, UnknownParameter,
    Value,
};
use std::time::Duration;

/// A continuous vital's value whose OBX-14 is older than this when its message was sent (MSH-7)
/// is a repeat of an old measurement, not the patient now: shown as stored, never evidence (V5).
/// The same as `not-current`'s limit. A cuff determination keeps its own time.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// The HL7 versions (MSH-12) Vigil reads.
pub const VERSIONS: [&str; 6] = ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6"];

/// What identifies a message's sender, for acknowledgement and for picking the device.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// MSH-3, sending application (first component).
    pub sending_application: String,
    /// MSH-4, sending facility (first component).
    pub sending_facility: String,
    /// MSH-10, the message control id the ACK's MSA-2 echoes.
    pub control_id: String,
    /// MSH-11, processing id (`P`, `T`, `D`).
    pub processing_id: String,
    /// MSH-12, version id.
    pub version: String,
    /// Every distinct OBX-18 entity identifier (the equipment) in the message.
    pub equipment: Vec<String>,
    /// MSH-7, when the message was sent (to tell a replay, W3).
    pub sent: Option<super::replay::SentAt>,
}

impl Header {
    /// The header fields of a parsed message.
    pub fn of(msg: &Message) -> Header {
        let msh = msg.msh();
        let mut equipment: Vec<String> = Vec::new();
        for obx in msg.all("OBX") {
            let id = msg.component(obx, 18, 1);
            if !id.is_empty() && !equipment.contains(&id) {
                equipment.push(id);
            }
        }
        Header {
            sending_application: msg.component(msh, 3, 1),
            sending_facility: msg.component(msh, 4, 1),
            control_id: msg.component(msh, 10, 1),
            processing_id: msg.component(msh, 11, 1),
            version: msg.component(msh, 12, 1),
            equipment,
            sent: super::replay::SentAt::parse(&msg.component(msh, 7, 1)),
        }
    }
}

/// Reads an ORU^R01: every OBX with a value of a known code becomes a reading with its own time
/// (OBX-14, else the OBR-7 above it, else MSH-7), unit (OBX-6) and status (OBX-11); a value of an
/// unknown code becomes `unknown_parameter` with the code. OBX without a value (the PCD-01
/// device and channel headers) carry nothing to read.
pub fn read_oru(msg: &Message, table: &CodeTable) -> Result<Vec<Observation>, Hl7Error> {
    Ok(read_oru_per_equipment(msg, table)?
        .into_iter()
        .flat_map(|(_, observations)| observations)
        .collect())
}

/// [`read_oru`], the observations grouped by the OBX-18 equipment they come from (in order of
/// first appearance; `""` for OBX without one). A gateway may send several beds in one message
/// (a PID group each): each device must take only its own (V4).
pub fn read_oru_per_equipment(
    msg: &Message,
    table: &CodeTable,
) -> Result<Vec<(String, Vec<Observation>)>, Hl7Error> {
    let msh = msg.msh();
    let version = msg.component(msh, 12, 1);
    if !VERSIONS.contains(&version.as_str()) {
        return Err(Hl7Error::UnsupportedVersion(shown(&version)));
    }
    let kind = format!("{}^{}", msg.component(msh, 9, 1), msg.component(msh, 9, 2));
    if kind != "ORU^R01" {
        return Err(Hl7Error::UnsupportedMessageType(shown(&kind)));
    }
    if msg.all("OBX").next().is_none() {
        return Err(Hl7Error::NoObservations);
    }
    // Test and debug messages are never patient data.
    let mut base_flags = Flags::EMPTY;
    base_flags.set_if(
        matches!(msg.component(msh, 11, 1).as_str(), "T" | "D"),
        Flag::Test,
    );
    let msh_text = msg.component(msh, 7, 1);
    let msh_time = parse_ts(&msh_text);
    let mut obr_time = None;
    let mut out: Vec<(String, Vec<Observation>)> = Vec::new();
    for seg in &msg.segments {
        match seg.id.as_str() {
            "OBR" => obr_time = parse_ts(&msg.component(seg, 7, 1)),
            "OBX" => {
                let obx_text = msg.component(seg, 14, 1);
                let obx_time = parse_ts(&obx_text);
                // Only times in one frame of reference (both with an offset, or both local).
                let stale = has_offset(&obx_text) == has_offset(&msh_text)
                    && obx_time
                        .zip(msh_time)
                        .and_then(|(o, m)| Some(to_unix(&m)? - to_unix(&o)?))
                        .is_some_and(|age| age > STALE_AFTER.as_secs() as i64);
                let time = obx_time.or(obr_time).or(msh_time);
                let equipment = msg.component(seg, 18, 1);
                let Some(observation) = read_obx(msg, seg, table, time, base_flags, stale) else {
                    continue;
                };
                match out.iter_mut().find(|(e, _)| *e == equipment) {
                    Some((_, group)) => group.push(observation),
                    None => out.push((equipment, vec![observation])),
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A header value as repeated in an AE and the log: at most 20 characters.
fn shown(text: &str) -> String {
    text.chars().take(20).collect()
}

fn read_obx(
    msg: &Message,
    obx: &Segment,
    table: &CodeTable,
    time: Option<DeviceTime>,
    base_flags: Flags,
    stale: bool,
) -> Option<Observation> {
    let value_type = msg.component(obx, 2, 1);
    let code = msg.component(obx, 3, 1);
    let system = msg.component(obx, 3, 3);
    let raw_value = obx.raw(5);
    let status = msg.component(obx, 11, 1);
    let number = numeric(msg, obx, &value_type);
    if system.eq_ignore_ascii_case("MDC") && code == mdc::EVT_APNEA.to_string() {
        // The monitor's own apnea detection (an event, not a value).
        return (status != "X").then_some(DeviceEvent::Apnea.into());
    }
    let Some(mapping) = table.lookup(&code, &system) else {
        // Headers and text carry no value; an unmapped value is kept, never dropped.
        let has_value = number.is_some() || (!raw_value.is_empty() && !value_type.is_empty());
        let unit = msg.field_text(obx, 6);
        return has_value.then(|| {
            UnknownParameter {
                code: msg.field_text(obx, 3),
                value: number,
                unit: (!unit.is_empty()).then_some(unit),
            }
            .into()
        });
    };
    let unit_text = [msg.component(obx, 6, 1), msg.component(obx, 6, 2)];
    let unit = if unit_text.iter().all(String::is_empty) {
        mapping.unit
    } else {
        unit_text.iter().find_map(|u| unit_for(mapping.vital, u))
    };
    let Some(unit) = unit else {
        // A number in a unit Vigil does not know, or a pressure without its unit, is not a
        // number it may alarm on.
        return Some(
            Reading::unavailable(mapping.vital, Unavailable::Implausible)
                .with_device_time(time)
                .into(),
        );
    };
    let value = match (status.as_str(), number) {
        // X: the result cannot be obtained; N, I, O: there is none (yet).
        ("X" | "N" | "I" | "O", _) => Value::Unavailable(Unavailable::Missing),
        (_, Some(v)) => Value::Number(v * mapping.scale),
        (_, None) => Value::Unavailable(Unavailable::Missing),
    };
    let mut flags = base_flags;
    // A cuff determination is sent with the time it was taken, minutes before: not stale.
    flags.set_if(stale && !mapping.vital.is_nibp(), Flag::Stored);
    // D: deleted, W: wrong. Never numbers.
    flags.set_if(matches!(status.as_str(), "D" | "W"), Flag::Invalid);
    // P: preliminary, S: partial. Shown, never evidence.
    flags.set_if(matches!(status.as_str(), "P" | "S"), Flag::EarlyEstimate);
    let mut reading = Reading::from_value(mapping.vital, value, unit)
        .with_flags(flags)
        .with_device_time(time);
    if system.eq_ignore_ascii_case("MDC") {
        if let Ok(code) = code.parse() {
            reading = reading.with_mdc(code);
        }
    }
    Some(reading.into())
}

/// The number of an OBX value: NM, an SN without a comparator or range, or an ST/NM text that
/// is exactly a number.
fn numeric(msg: &Message, obx: &Segment, value_type: &str) -> Option<f64> {
    let parse = |s: &str| -> Option<f64> {
        let s = s.trim();
        let ok = !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+'));
        ok.then(|| s.parse::<f64>().ok())
            .flatten()
            .filter(|v| v.is_finite())
    };
    match value_type {
        "NM" | "ST" | "" => parse(&msg.component(obx, 5, 1)),
        "SN" => {
            let comparator = msg.component(obx, 5, 1);
            let separator = msg.component(obx, 5, 3);
            let exact = matches!(comparator.as_str(), "" | "=") && separator.is_empty();
            exact.then(|| parse(&msg.component(obx, 5, 2))).flatten()
        }
        _ => None,
    }
}
