//! The vendor code tables shipped in `docs/hl7/`: each loads as `vigil check-config` loads it,
//! and reads messages shaped as its source guide shows them (spec vectors).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use vigil_protocol::hl7::mllp::frame;
use vigil_protocol::hl7::{Hl7Receiver, Received};
use vigil_protocol::{Observation, Unavailable, Unit, Value, Vital};

fn table(name: &str) -> vigil_protocol::hl7::CodeTable {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/hl7")
        .join(name);
    vigil_daemon::config::hl7::load_code_table(&path).unwrap()
}

/// (vital, value, unit) of each reading one message gives.
fn readings(table: vigil_protocol::hl7::CodeTable, message: &str) -> Vec<(Vital, Value, Unit)> {
    let mut rx = Hl7Receiver::new(table);
    let received = rx.handle_input(&frame(message.as_bytes()));
    let Received::Message { observations, .. } = &received[0] else {
        panic!("not read: {received:?}")
    };
    observations
        .iter()
        .filter_map(|o| match o {
            Observation::Reading(r) => Some((r.vital, r.value, r.unit)),
            _ => None,
        })
        .collect()
}

#[test]
fn philips_efficia_cm_mdil_codes_read_as_their_vitals() {
    // OBX segments as page 3-18 of the Efficia CM Series Data Export Guide writes them
    // (`OBX||NM|0002-4182^HR^MDIL|||0004-0aa0^bpm^MDIL|||||X`), with values; the mmHg unit is
    // MDC_DIM_MMHG (266016 = 0x0004_0F20) in the same partition-term form.
    let message = "MSH|^~\\&|EFFICIA|WARD|||20261129120000||ORU^R01|E1|P|2.3\r\
        OBX||NM|0002-4bb8^SpO2^MDIL||97|0004-0220^%^MDIL|||||R\r\
        OBX||NM|0002-4182^HR^MDIL||80|0004-0aa0^bpm^MDIL|||||R\r\
        OBX||NM|0002-480a^Pulse^MDIL||79|0004-0aa0^bpm^MDIL|||||R\r\
        OBX||NM|0002-4a05^NBPs^MDIL||121|0004-0f20^mmHg^MDIL|||||R\r\
        OBX||NM|0002-4a06^NBPd^MDIL||78|0004-0f20^mmHg^MDIL|||||R\r\
        OBX||NM|0002-4a07^NBPm^MDIL||92|0004-0f20^mmHg^MDIL|||||R\r\
        OBX||NM|0002-50b0^etCO2^MDIL||5.1|^kPa^MDIL|||||R\r\
        OBX||NM|0002-4a15^ABPs^MDIL||130|0004-0f20^mmHg^MDIL|||||R\r";
    let got = readings(table("philips-efficia-cm.toml"), message);
    assert_eq!(
        got[..7],
        [
            (Vital::Spo2, Value::Number(97.0), Unit::Percent),
            (Vital::HeartRate, Value::Number(80.0), Unit::BeatsPerMinute),
            (Vital::PulseRate, Value::Number(79.0), Unit::BeatsPerMinute),
            (Vital::NibpSystolic, Value::Number(121.0), Unit::MmHg),
            (Vital::NibpDiastolic, Value::Number(78.0), Unit::MmHg),
            (Vital::NibpMean, Value::Number(92.0), Unit::MmHg),
            (Vital::Etco2, Value::Number(5.1), Unit::KPa),
        ]
    );
    // The arterial line is in the guide's table but is not NIBP: not a vital Vigil reads.
    assert_eq!(got.len(), 7, "{got:?}");
    // The guide's own invalid-measurement example: OBX-11 `X` with no value is no number.
    let invalid = "MSH|^~\\&|EFFICIA|WARD|||20261129120000||ORU^R01|E2|P|2.3\r\
        OBX||NM|0002-4bb8^SpO2^MDIL|||0004-0220^%^MDIL|||||X\r";
    let got = readings(table("philips-efficia-cm.toml"), invalid);
    assert!(
        matches!(
            got[..],
            [(Vital::Spo2, Value::Unavailable(Unavailable::Missing), _)]
        ),
        "{got:?}"
    );
}
