//! The HL7 v2.6 messages Vigil sends, per IHE PCD: PCD-01 observations (ORU^R01) and PCD-04
//! alarm reports (ORU^R40). One encoder for both users: the export (`vigil export --format
//! hl7`) and the forwarder to the clinic's interface engine (`[[forward]]`).
//!
//! Vigil knows no patient identity: PID-3 names the session (`SESSION-<n>^^^VIGIL^PI`).
//! Segments are separated by CR; a message has no trailing separator (the export adds CR LF
//! between messages, the forwarder frames each in MLLP).

use crate::storage::query::{AlarmStep, StoredReading};
use crate::storage::rfc3339;
use vigil_alarm::{AlarmChange, AlarmKind, AlarmState, Priority};
use vigil_protocol::model::mdc;
use vigil_protocol::Unit;

/// MSH-21 of a PCD-01 message.
pub const PCD01_PROFILE: &str = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO";
/// MSH-21 of a PCD-04 message.
pub const PCD04_PROFILE: &str = "IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.4.4^ISO";

/// HL7 v2 timestamp (UTC) of unix ms: `YYYYMMDDHHMMSS.SSS+0000`.
pub fn hl7_time(ms: i64) -> String {
    let iso = rfc3339(ms); // 2026-11-23T10:00:00.123Z
    let digits: String = iso[..19].chars().filter(|c| c.is_ascii_digit()).collect();
    format!("{digits}.{}+0000", &iso[20..23])
}

/// HL7 escaping of the delimiters `|^~\&`; line breaks become spaces (they end segments).
pub fn hl7_text(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\E\\"),
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '~' => out.push_str("\\R\\"),
            '&' => out.push_str("\\T\\"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The header segment: sending application VIGIL, sending facility the room.
fn msh(room: &str, at: i64, kind: &str, control: &str, profile: &str) -> String {
    format!(
        "MSH|^~\\&|VIGIL^^|{}^^|||{}||{kind}|{control}|P|2.6|||AL|NE||UNICODE UTF-8|||{profile}",
        hl7_text(room),
        hl7_time(at)
    )
}

fn pid(session: i64) -> String {
    format!("PID|||SESSION-{session}^^^VIGIL^PI")
}

/// A PCD-01 ORU^R01 with one OBX per numeric reading of `readings` (a device's readings of one
/// second for the forwarder, one reading for the export), each with its own time (OBX-14)
/// and device (OBX-18). Readings without a value or an MDC code are left out; `None` when
/// none is left. `control` is MSH-10, the id the peer's ACK answers with.
pub fn pcd01(
    room: &str,
    session: i64,
    control: &str,
    readings: &[StoredReading],
) -> Option<String> {
    let numeric: Vec<(&StoredReading, f64, u32)> = readings
        .iter()
        .filter_map(|r| Some((r, r.value?, r.mdc?)))
        .collect();
    let first = numeric.first()?.0.received_at;
    let t = hl7_time(first);
    let mut segments = vec![
        msh(room, first, "ORU^R01^ORU_R01", control, PCD01_PROFILE),
        pid(session),
        format!(
            "OBR|1|{control}^VIGIL|{control}^VIGIL|182777000^monitoring of patient^SNOMED-CT|||{t}"
        ),
    ];
    for (i, (r, value, code)) in numeric.iter().enumerate() {
        let n = i + 1;
        let name = mdc::name(*code).unwrap_or("");
        let unit = Unit::from_symbol(&r.unit)
            .and_then(Unit::mdc)
            .map(|(c, n)| format!("{c}^{n}^MDC"))
            .unwrap_or_else(|| hl7_text(&r.unit));
        segments.push(format!(
            "OBX|{n}|NM|{code}^{name}^MDC|1.0.0.{n}|{value}|{unit}|||||R|||{}||||{}",
            hl7_time(r.received_at),
            hl7_text(&r.device)
        ));
    }
    Some(segments.join("\r"))
}

/// ACM event phase (OBX facet `MDC_ATTR_EVENT_PHASE`) of an alarm step: raised starts,
/// escalated escalates, acknowledged inactivates (the alert is acknowledged), cleared ends (or,
/// latched, updates: the alarm still holds), reset resets.
pub fn event_phase(change: AlarmChange, alarm_state: AlarmState) -> &'static str {
    match (change, alarm_state) {
        (AlarmChange::Raised, _) => "start",
        (AlarmChange::Escalated, _) => "escalate",
        (AlarmChange::Acknowledged, _) => "inactivate",
        (AlarmChange::Cleared, AlarmState::Latched) => "update",
        (AlarmChange::Cleared, _) => "end",
        (AlarmChange::Reset, _) => "reset",
    }
}

/// A PCD-04 ORU^R40 for one alarm step; `control` is MSH-10.
pub fn pcd04(room: &str, control: &str, step: &AlarmStep) -> String {
    let (a, at) = (&step.alarm, step.at);
    let t = hl7_time(at);
    let code = match (
        a.vital.is_some(),
        a.rule.contains("low") || a.rule.contains("below"),
    ) {
        // No breath is no limit crossed: PCD-04 has its own event for it.
        _ if a.rule == "apnea" => mdc::EVT_APNEA,
        (true, true) => mdc::EVT_LO,
        (true, false) => mdc::EVT_HI,
        _ => mdc::EVT_ALARM,
    };
    let limit = if code == mdc::EVT_LO {
        "L"
    } else if code == mdc::EVT_HI {
        "H"
    } else {
        ""
    };
    let priority = match a.priority {
        Priority::High => "PH",
        Priority::Medium => "PM",
        Priority::Low => "PL",
        Priority::Info => "PN",
    };
    let source = match a.kind {
        AlarmKind::Technical => "ST",
        AlarmKind::Physiological => "SP",
    };
    let phase = event_phase(step.change, a.state);
    // ACM alarm states: inactive, active, latched.
    let state = match a.state {
        AlarmState::Latched => "latched",
        AlarmState::Cleared => "inactive",
        AlarmState::Pending | AlarmState::Active | AlarmState::Acknowledged => "active",
    };
    // ACM inactivation states: `alert-acknowledged` once a person acknowledged, else `enabled`.
    let inactivation = if a.acknowledged_by.is_some() {
        "alert-acknowledged"
    } else {
        "enabled"
    };
    let name = mdc::name(code).unwrap_or("");
    [
        msh(room, at, "ORU^R40^ORU_R40", control, PCD04_PROFILE),
        pid(step.session),
        format!("OBR|1|{}^VIGIL||{code}^{name}^MDC|||{t}", hl7_text(&a.id)),
        format!(
            "OBX|1|ST|{code}^{name}^MDC|1.0.0.0.1|{}|||{}|||F|||{t}||||{}",
            hl7_text(&a.message),
            [limit, priority, source].join("~"),
            hl7_text(a.device.as_deref().unwrap_or(""))
        ),
        format!("OBX|2|ST|68481^MDC_ATTR_EVENT_PHASE^MDC|1.0.0.0.2|{phase}||||||F"),
        format!("OBX|3|ST|68482^MDC_ATTR_ALARM_STATE^MDC|1.0.0.0.3|{state}||||||F"),
        format!(
            "OBX|4|ST|68483^MDC_ATTR_ALARM_INACTIVATION_STATE^MDC|1.0.0.0.4|{inactivation}||||||F"
        ),
    ]
    .join("\r")
}
