//! HL7 findings of the review after the monitors, HL7 and central issues (docs/hazards.md,
//! "Found in review after the monitors, HL7 and central issues").

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use vigil_protocol::hl7::mllp::frame;
use vigil_protocol::{format::Decoded, Format, Observation, Reading, Unit, Value, Vital};

/// One ORU^R01 with these OBX lines (`code|value|unit`, MDC codes).
fn message(obx: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut text = String::from(
        "MSH|^~\\&|Mon|WARD7|||20240520101500||ORU^R01^ORU_R01|MSG1|P|2.6\r\
         OBR|1|||182777000^monitoring of patient^SNOMED-CT|||20240520101455\r",
    );
    for (i, (code, value, unit)) in obx.iter().enumerate() {
        text.push_str(&format!(
            "OBX|{}|NM|{code}^^MDC|1.1.1.{}|{value}|{unit}|||||R\r",
            i + 1,
            i + 1
        ));
    }
    frame(text.as_bytes())
}

fn readings(bytes: &[u8]) -> Vec<Reading> {
    let mut d = Format::Hl7.decoder();
    let mut out: Vec<Decoded> = Vec::new();
    d.feed(bytes, &mut out);
    d.finish(&mut out);
    out.into_iter()
        .filter_map(|o| match o {
            Ok(Observation::Reading(r)) => Some(r),
            _ => None,
        })
        .collect()
}

const ETCO2: &str = "151708";
const NIBP_SYS: &str = "150021";
const RESP_RATE: &str = "151562";

/// V2: a capnograph set to kPa whose monitor leaves OBX-6 empty: 6.5 kPa (49 mmHg) must not be
/// taken as 6.5 mmHg, and a pressure without its unit is no number to alarm on either; a unit
/// written in another case is still read.
#[test]
fn a_pressure_without_its_unit_is_never_a_number_and_units_are_read_in_any_case() {
    let r = readings(&message(&[(ETCO2, "6.5", ""), (NIBP_SYS, "24", "")]));
    assert_eq!(r.len(), 2);
    for reading in &r {
        assert!(
            !matches!(reading.value, Value::Number(_)),
            "{:?} read as {:?} {:?}",
            reading.vital,
            reading.value,
            reading.unit
        );
        assert!(!reading.is_evidence());
    }
    let r = readings(&message(&[
        (ETCO2, "6.5", "KPA"),
        (ETCO2, "49", "MMHG"),
        (RESP_RATE, "14", "/MIN"),
    ]));
    let got: Vec<_> = r.iter().map(|r| (r.vital, r.value, r.unit)).collect();
    assert_eq!(
        got,
        vec![
            (Vital::Etco2, Value::Number(6.5), Unit::KPa),
            (Vital::Etco2, Value::Number(49.0), Unit::MmHg),
            (
                Vital::RespiratoryRate,
                Value::Number(14.0),
                Unit::BreathsPerMinute
            ),
        ]
    );
}

/// Values a gateway may write that are no measurement: never a number, never a panic.
#[test]
fn overflowing_or_non_numeric_values_are_never_numbers() {
    for value in [
        "1e309",
        "NaN",
        "inf",
        "-",
        "1.2.3",
        "99999999999999999999999999999999",
    ] {
        let r = readings(&message(&[(ETCO2, value, "mmHg")]));
        assert!(r.iter().all(|r| !r.is_evidence()), "{value}: {r:?}");
    }
}

/// V4: an ORU^R01 may carry several patients (a PID group each); a gateway sending two beds in
/// one message gave both beds' values to the device whose `match` names one of them, so a
/// bed's SpO2 of 80 % alarmed in the other room. Each device takes only its own equipment's
/// observations.
#[test]
fn a_message_with_two_beds_gives_each_device_only_its_own_observations() {
    use vigil_protocol::hl7::{Hl7Session, Match};
    use vigil_protocol::DeviceSession;
    let text = "MSH|^~\\&|GW|WARD7|||20240520101500||ORU^R01^ORU_R01|TWO|P|2.6\r\
        PID|||P1\r\
        OBR|1|||182777000^monitoring of patient^SNOMED-CT|||20240520101455\r\
        OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|%|||||R|||||||BED1\r\
        PID|||P2\r\
        OBR|1|||182777000^monitoring of patient^SNOMED-CT|||20240520101455\r\
        OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|80|%|||||R|||||||BED2\r";
    for (bed, want) in [("BED1", 97.0), ("BED2", 80.0)] {
        let mut session = Hl7Session::new(
            vigil_protocol::hl7::CodeTable::default(),
            Match {
                equipment: Some(bed.into()),
                sending_facility: None,
            },
        );
        session.feed(&frame(text.as_bytes()));
        let mut values = Vec::new();
        while let Some(out) = session.poll_output() {
            if let Ok(Observation::Reading(r)) = out {
                values.push(r.value);
            }
        }
        assert_eq!(values, vec![Value::Number(want)], "{bed}");
        // One message, one ACK.
        assert!(session.poll_transmit().is_some());
        assert!(session.poll_transmit().is_none());
    }
}

/// One ORU^R01 sent at 10:15:00 UTC with these OBX lines (`code|value|unit|OBX-14`).
fn timed_message(obx: &[(&str, &str, &str, &str)]) -> Vec<u8> {
    let mut text =
        String::from("MSH|^~\\&|Mon|WARD7|||20240520121500+0200||ORU^R01^ORU_R01|MSG1|P|2.6\r");
    for (i, (code, value, unit, at)) in obx.iter().enumerate() {
        text.push_str(&format!(
            "OBX|{}|NM|{code}^^MDC|1.1.1.{}|{value}|{unit}|||||R|||{at}\r",
            i + 1,
            i + 1
        ));
    }
    frame(text.as_bytes())
}

/// V5: a monitor or gateway that repeats a continuous vital's last value with the time it was
/// measured (the probe is off, the module unplugged): SpO2 97 % measured 10 minutes before the
/// message kept the vital current for ever, so neither `not-current` nor `spo2-low` could
/// sound. A value older than 30 s when the message was sent is shown as stored, never
/// evidence; a cuff determination keeps its own time.
#[test]
fn a_continuous_value_measured_long_before_its_message_is_not_current_evidence() {
    const SPO2: &str = "150456";
    let r = readings(&timed_message(&[
        (SPO2, "97", "%", "20240520100500+0000"),
        (RESP_RATE, "14", "/min", "20240520121450+0200"),
        (NIBP_SYS, "120", "mmHg", "20240520100930+0000"),
    ]));
    let evidence: Vec<_> = r.iter().map(|r| (r.vital, r.is_evidence())).collect();
    assert_eq!(
        evidence,
        vec![
            (Vital::Spo2, false),
            (Vital::RespiratoryRate, true),
            (Vital::NibpSystolic, true),
        ]
    );
    assert!(r[0].flags.contains(vigil_protocol::Flag::Stored));
    assert_eq!(r[0].value, Value::Number(97.0), "still shown");
}
