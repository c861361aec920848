//! The domain types' own tests.

use super::*;

#[test]
fn vital_names_round_trip_through_serde_and_from_name() {
    for v in Vital::ALL {
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, format!("\"{}\"", v.name()));
        assert_eq!(Vital::from_name(v.name()), Some(v));
    }
    assert_eq!(Vital::from_name("spO2"), None);
}

#[test]
fn flags_serialise_as_names_and_back() {
    let flags: Flags = [Flag::SensorOff, Flag::Demo].into_iter().collect();
    let json = serde_json::to_string(&flags).unwrap();
    assert_eq!(json, r#"["sensor_off","demo"]"#);
    let back: Flags = serde_json::from_str(&json).unwrap();
    assert_eq!(back, flags);
}

#[test]
fn reading_json_flattens_value_and_reason() {
    let r = Reading::number(Vital::Spo2, 98.0, Unit::Percent);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"vital":"spo2","value":98.0,"unit":"%","mdc":150456,"flags":[]})
    );
    let gone = Reading::unavailable(Vital::PulseRate, Unavailable::Missing);
    let json = serde_json::to_value(&gone).unwrap();
    assert_eq!(json["value"], serde_json::Value::Null);
    assert_eq!(json["unavailable"], "missing");
    assert_eq!(json["unit"], "bpm");
    let back: Reading = serde_json::from_value(json).unwrap();
    assert_eq!(back, gone);
    let neither = serde_json::json!({"vital":"spo2","value":null,"unit":"%","mdc":null});
    assert!(serde_json::from_value::<Reading>(neither).is_err());
}

#[test]
fn kpa_is_converted_only_when_asked() {
    let r = Reading::number(Vital::NibpSystolic, 16.0, Unit::KPa);
    assert_eq!(r.value.number(), Some(16.0));
    let mmhg = r.in_canonical_unit().unwrap();
    assert!((mmhg - 120.01).abs() < 0.01, "{mmhg}");
}

#[test]
fn flagged_or_demo_readings_have_no_clinical_value() {
    let r = Reading::number(Vital::Spo2, 97.0, Unit::Percent);
    assert_eq!(r.clinical_value(), Some(97.0));
    for f in [
        Flag::SensorOff,
        Flag::Demo,
        Flag::Test,
        Flag::Invalid,
        Flag::Stored,
    ] {
        let flagged = r.clone().with_flags([f].into_iter().collect());
        assert_eq!(flagged.clinical_value(), None, "{f:?}");
        let device_says_invalid = matches!(f, Flag::SensorOff | Flag::Invalid);
        assert_eq!(
            flagged.value == Value::Unavailable(Unavailable::FlaggedInvalid),
            device_says_invalid,
            "{f:?}"
        );
    }
    let questionable = r.with_flags([Flag::Questionable].into_iter().collect());
    assert_eq!(questionable.clinical_value(), Some(97.0));
}

#[test]
fn only_a_valid_plausible_reading_is_evidence() {
    let r = Reading::number(Vital::Spo2, 97.0, Unit::Percent);
    assert_eq!(r.evidence(), Some(97.0));
    for f in [
        Flag::Artefact,
        Flag::Questionable,
        Flag::PulseSearch,
        Flag::Interference,
        Flag::LowPerfusion,
        Flag::CuffLoose,
        Flag::BodyMovement,
        Flag::ImproperPosition,
        Flag::IrregularPulse,
        Flag::EarlyEstimate,
        Flag::SensorOff,
        Flag::NoContact,
        Flag::Demo,
    ] {
        let flagged = r.clone().with_flags([f].into_iter().collect());
        assert_eq!(flagged.evidence(), None, "{f:?}");
        assert!(!flagged.is_evidence(), "{f:?}");
    }
    // A clock or spot-check note says nothing about the value.
    let noted = r.with_flags([Flag::ClockNotSet, Flag::SpotCheck].into_iter().collect());
    assert_eq!(noted.evidence(), Some(97.0));
}

#[test]
fn a_number_the_vital_cannot_have_is_unavailable_as_implausible() {
    let implausible = Value::Unavailable(Unavailable::Implausible);
    for (vital, value, unit) in [
        (Vital::Spo2, 186.0, Unit::Percent),
        (Vital::Spo2, -1.0, Unit::Percent),
        (Vital::PulseRate, 351.0, Unit::BeatsPerMinute),
        (Vital::HeartRate, f64::NAN, Unit::BeatsPerMinute),
        (Vital::NibpSystolic, -5.0, Unit::MmHg),
        (Vital::NibpSystolic, 50.0, Unit::KPa), // 375 mmHg
        (Vital::NibpDiastolic, f64::INFINITY, Unit::MmHg),
    ] {
        let r = Reading::number(vital, value, unit);
        assert_eq!(r.value, implausible, "{vital} {value} {unit:?}");
        assert_eq!(r.evidence(), None);
        let r = Reading::from_value(vital, Value::Number(value), unit);
        assert_eq!(r.value, implausible, "{vital} {value}");
    }
    for (vital, value) in [
        (Vital::Spo2, 100.0),
        (Vital::Spo2, 0.0),
        (Vital::PulseRate, 350.0),
    ] {
        let r = Reading::number(vital, value, vital.canonical_unit());
        assert_eq!(r.value, Value::Number(value));
    }
    let json = serde_json::to_value(Reading::number(Vital::Spo2, 186.0, Unit::Percent)).unwrap();
    assert_eq!(json["unavailable"], "implausible");
    // A stored or relayed reading passes the same gate.
    let text = r#"{"vital":"spo2","value":186.0,"unit":"%","mdc":150456}"#;
    let back: Reading = serde_json::from_str(text).unwrap();
    assert_eq!(back.value, implausible);
}
