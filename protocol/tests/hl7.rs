//! HL7 v2 from monitors: a PCD-01-style vector read end to end, ACKs, bad input, and the stream
//! properties (any split gives the same output, garbage between frames is skipped).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use proptest::prelude::*;
use vigil_protocol::hl7::mllp::{frame, MAX_MESSAGE};
use vigil_protocol::hl7::{CodeEntry, CodeTable, Hl7Error, Hl7Receiver, Received};
use vigil_protocol::stream::merge_garbage;
use vigil_protocol::{
    format::Decoded, DeviceTime, Flag, Format, Observation, Unavailable, Unit, Value, Vital,
};

const PCD01: &[u8] = include_bytes!("data/hl7/pcd01_style.hl7");

fn decode(chunks: &[&[u8]]) -> Vec<Decoded> {
    let mut d = Format::Hl7.decoder();
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c, &mut out);
    }
    d.finish(&mut out);
    out
}

fn readings(out: &[Decoded]) -> Vec<vigil_protocol::Reading> {
    out.iter()
        .filter_map(|o| match o {
            Ok(Observation::Reading(r)) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn utc(h: u8, m: u8, s: u8) -> Option<DeviceTime> {
    Some(DeviceTime {
        year: Some(2024),
        month: Some(5),
        day: Some(20),
        hour: h,
        minute: m,
        second: s,
    })
}

fn ack_text(receiver: &mut Hl7Receiver) -> String {
    let bytes = receiver.poll_transmit().expect("an ACK");
    assert_eq!(bytes[0], 0x0B);
    assert_eq!(&bytes[bytes.len() - 2..], &[0x1C, 0x0D]);
    String::from_utf8(bytes[1..bytes.len() - 2].to_vec()).unwrap()
}

#[test]
fn pcd01_message_gives_each_reading_its_time_unit_and_status() {
    let out = decode(&[&frame(PCD01)]);
    let r = readings(&out);
    let spo2 = &r[0];
    assert_eq!((spo2.vital, spo2.value), (Vital::Spo2, Value::Number(97.0)));
    assert_eq!(spo2.mdc, Some(150_456));
    // OBX-14 with its +0200 offset, in UTC.
    assert_eq!(spo2.device_time, utc(8, 14, 54));
    // No OBX-14: the OBR-7 above it.
    assert_eq!(r[1].vital, Vital::PulseRate);
    assert_eq!(r[1].device_time, utc(8, 14, 55));
    assert_eq!(r[2].vital, Vital::HeartRate);
    // NIBP in kPa: kept in kPa, converted for alarms.
    assert_eq!((r[3].vital, r[3].unit), (Vital::NibpSystolic, Unit::KPa));
    assert!((r[3].in_canonical_unit().unwrap() - 120.0).abs() < 0.1);
    assert_eq!(r[3].device_time, utc(8, 10, 30));
    assert_eq!(r[4].vital, Vital::NibpDiastolic);
    assert_eq!(r[5].vital, Vital::NibpMean);
    // The arterial line (150033) is not NIBP: kept as an unknown parameter with its code.
    let unknown = out.iter().find_map(|o| match o {
        Ok(Observation::UnknownParameter(p)) => Some(p.clone()),
        _ => None,
    });
    let unknown = unknown.expect("the arterial pressure as unknown_parameter");
    assert_eq!(unknown.code, "150033^MDC_PRESS_BLD_ART_ABP_SYS^MDC");
    assert_eq!(unknown.value, Some(118.0));
    assert_eq!(unknown.unit.as_deref(), Some("266016^MDC_DIM_MMHG^MDC"));
    // Breathing: EtCO2 in mmHg and the respiratory rate per minute.
    assert_eq!(
        (r[6].vital, r[6].value),
        (Vital::Etco2, Value::Number(38.0))
    );
    assert_eq!(r[6].mdc, Some(151_708));
    assert_eq!(
        (r[7].vital, r[7].value, r[7].unit),
        (
            Vital::RespiratoryRate,
            Value::Number(14.0),
            Unit::BreathsPerMinute
        )
    );
    // Status X: no number; status W: never a number.
    let last_two = &r[r.len() - 2..];
    assert_eq!(last_two[0].vital, Vital::Spo2);
    assert_eq!(last_two[0].value, Value::Unavailable(Unavailable::Missing));
    assert_eq!(last_two[1].vital, Vital::PulseRate);
    assert_eq!(
        last_two[1].value,
        Value::Unavailable(Unavailable::FlaggedInvalid)
    );
    assert!(last_two[1].flags.contains(Flag::Invalid));
    // The MDS header OBX has no value and gives nothing; no errors at all.
    assert!(out.iter().all(Result::is_ok), "{out:?}");
}

#[test]
fn plain_captures_with_any_line_ending_give_the_same_readings() {
    let framed = readings(&decode(&[&frame(PCD01)]));
    let lf: Vec<u8> = PCD01
        .iter()
        .map(|b| if *b == b'\r' { b'\n' } else { *b })
        .collect();
    let crlf: Vec<u8> = PCD01
        .iter()
        .flat_map(|b| {
            if *b == b'\r' {
                vec![b'\r', b'\n']
            } else {
                vec![*b]
            }
        })
        .collect();
    for plain in [PCD01.to_vec(), lf, crlf] {
        let two = [plain.clone(), plain].concat();
        let got = readings(&decode(&[&two]));
        assert_eq!(got, [framed.clone(), framed.clone()].concat());
    }
}

#[test]
fn every_message_is_acknowledged_with_its_control_id() {
    let mut rx = Hl7Receiver::new(CodeTable::default());
    let got = rx.handle_input(&frame(PCD01));
    assert!(matches!(&got[0], Received::Message { header, .. } if header.control_id == "MSG0001"));
    let ack = ack_text(&mut rx);
    assert!(ack.contains("\rMSA|AA|MSG0001\r"), "{ack}");
    assert!(
        ack.starts_with("MSH|^~\\&|VIGIL|VIGIL|AcmeMon|WARD7||ACK^R01^ACK|"),
        "{ack}"
    );
}

#[test]
fn bad_messages_get_an_ae_with_the_reason_and_an_err_segment() {
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            b"MSH|^~\\&|M|F|||20240520||ORU^R01|V1|P|2.1\rOBX|1|NM|150456^^MDC||97".to_vec(),
            "V1",
            "203^Unsupported version id",
        ),
        (
            b"MSH|^~\\&|M|F|||20240520||ORU^R01|NOOBX|P|2.5\rOBR|1".to_vec(),
            "NOOBX",
            "101^Required field missing",
        ),
        (
            b"MSH|^~\\&|M|F|||20240520||ADT^A01|ADT1|P|2.5\rPID|1".to_vec(),
            "ADT1",
            "200^Unsupported message type",
        ),
        (
            [
                b"MSH|^~\\&|M|F|||20240520||ORU^R01|WIDE|P|2.5\rOBX".to_vec(),
                vec![b'|'; 10_000],
            ]
            .concat(),
            "WIDE",
            "207^Application internal error",
        ),
    ];
    for (payload, id, code) in cases {
        let mut rx = Hl7Receiver::new(CodeTable::default());
        let got = rx.handle_input(&frame(&payload));
        assert!(matches!(got[0], Received::Refused { .. }), "{got:?}");
        let ack = ack_text(&mut rx);
        assert!(ack.contains(&format!("\rMSA|AE|{id}|")), "{ack}");
        assert!(
            ack.contains(&format!("\rERR|||{code}^HL70357|E||||")),
            "{ack}"
        );
    }
}

#[test]
fn an_oversized_message_is_refused_and_the_next_one_read() {
    let mut rx = Hl7Receiver::new(CodeTable::default());
    let mut big = vec![0x0B];
    big.resize(MAX_MESSAGE + 10, b'A');
    let mut got = rx.handle_input(&big);
    got.extend(rx.handle_input(&frame(PCD01)));
    assert!(matches!(
        got[0],
        Received::Refused {
            error: Hl7Error::TooLarge { .. },
            ..
        }
    ));
    assert!(got.iter().any(|r| matches!(r, Received::Message { .. })));
    assert!(ack_text(&mut rx).contains("MSA|AE|"));
    assert!(ack_text(&mut rx).contains("MSA|AA|MSG0001"));
}

#[test]
fn a_vendor_table_maps_its_own_codes() {
    let table = CodeTable::with_vendor(&[CodeEntry {
        code: "1001".into(),
        coding_system: "ACME".into(),
        vital: "spo2".into(),
        unit: "%".into(),
        scale: Some(0.1),
    }])
    .unwrap();
    let mut rx = Hl7Receiver::new(table);
    let msg = b"MSH|^~\\&|M|F|||20240520||ORU^R01|V|T|2.3.1\rOBX|1|ST|1001^SpO2^ACME||965";
    let Received::Message { observations, .. } = &rx.handle_input(&frame(msg))[0] else {
        panic!("not read")
    };
    let Observation::Reading(r) = &observations[0] else {
        panic!("{observations:?}")
    };
    assert_eq!((r.vital, r.value), (Vital::Spo2, Value::Number(96.5)));
    // MSH-11 T: a test message is never patient data.
    assert!(r.flags.contains(Flag::Test));
    assert_eq!(r.clinical_value(), None);
}

proptest! {
    #[test]
    fn any_split_gives_the_same_output(cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let wire = [frame(PCD01), frame(PCD01)].concat();
        let whole = decode(&[&wire]);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len())).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&wire[last..p]);
            last = p;
        }
        chunks.push(&wire[last..]);
        prop_assert_eq!(merge_garbage(decode(&chunks)), merge_garbage(whole));
    }

    #[test]
    fn garbage_between_frames_is_skipped(garbage in proptest::collection::vec(any::<u8>().prop_filter("no start byte", |b| *b != 0x0B), 1..200)) {
        let clean = readings(&decode(&[&frame(PCD01)]));
        let wire = [frame(PCD01), garbage, frame(PCD01)].concat();
        let out = decode(&[&wire]);
        prop_assert_eq!(readings(&out), [clean.clone(), clean].concat());
        prop_assert!(out.iter().any(|o| o.is_err()));
    }

    #[test]
    fn no_bytes_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = decode(&[&bytes]);
        let mut rx = Hl7Receiver::new(CodeTable::default());
        let _ = rx.handle_input(&frame(&bytes));
        let _ = rx.handle_input(&frame(&[b"MSH|^~\\&|".as_slice(), &bytes].concat()));
    }
}
