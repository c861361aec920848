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

#[test]
fn breathing_vitals_have_their_wire_names_units_and_mdc_codes() {
    assert_eq!(Vital::from_name("etco2"), Some(Vital::Etco2));
    assert_eq!(
        Vital::from_name("respiratory_rate"),
        Some(Vital::RespiratoryRate)
    );
    let etco2 = Reading::number(Vital::Etco2, 38.0, Unit::MmHg);
    assert_eq!(
        serde_json::to_value(&etco2).unwrap(),
        serde_json::json!({"vital":"etco2","value":38.0,"unit":"mmHg","mdc":151708,"flags":[]})
    );
    let rr = Reading::number(Vital::RespiratoryRate, 14.0, Unit::BreathsPerMinute);
    assert_eq!(
        serde_json::to_value(&rr).unwrap(),
        serde_json::json!({"vital":"respiratory_rate","value":14.0,"unit":"/min","mdc":151562,"flags":[]})
    );
    assert_eq!(mdc::name(mdc::AWAY_CO2_ET), Some("MDC_AWAY_CO2_ET"));
    assert_eq!(mdc::name(mdc::RESP_RATE), Some("MDC_RESP_RATE"));
    assert_eq!(mdc::name(mdc::EVT_APNEA), Some("MDC_EVT_APNEA"));
    assert_eq!(
        Unit::BreathsPerMinute.mdc(),
        Some((264_928, "MDC_DIM_RESP_PER_MIN"))
    );
    assert_eq!(Unit::from_symbol("/min"), Some(Unit::BreathsPerMinute));
    let apnea = serde_json::to_value(DeviceEvent::Apnea).unwrap();
    assert_eq!(apnea, serde_json::json!({"event":"apnea"}));
}

#[test]
fn etco2_in_kpa_is_compared_in_mmhg() {
    assert!((kpa_to_mmhg(5.0) - 37.503).abs() < 0.001);
    // 6.7 kPa is just over the 50 mmHg hypercapnia limit.
    let r = Reading::number(Vital::Etco2, 6.7, Unit::KPa);
    assert_eq!(r.value, Value::Number(6.7), "the device's unit is kept");
    let mmhg = r.evidence().unwrap();
    assert!((mmhg - 50.254).abs() < 0.001, "{mmhg}");
    // 21 kPa is 157.5 mmHg: past what a capnograph measures.
    let r = Reading::number(Vital::Etco2, 21.0, Unit::KPa);
    assert_eq!(r.value, Value::Unavailable(Unavailable::Implausible));
}

#[test]
fn breathing_values_outside_the_plausibility_table_are_never_evidence() {
    let implausible = Value::Unavailable(Unavailable::Implausible);
    for (vital, value) in [
        (Vital::Etco2, -1.0),
        (Vital::Etco2, 150.5),
        (Vital::Etco2, f64::NAN),
        (Vital::RespiratoryRate, -0.5),
        (Vital::RespiratoryRate, 151.0),
        (Vital::RespiratoryRate, f64::INFINITY),
    ] {
        let r = Reading::number(vital, value, vital.canonical_unit());
        assert_eq!(r.value, implausible, "{vital} {value}");
        assert_eq!(r.evidence(), None, "{vital} {value}");
    }
    // No breath is a measurement, not a fault: RR 0 and EtCO2 0 stay numbers.
    for (vital, value) in [
        (Vital::Etco2, 0.0),
        (Vital::Etco2, 150.0),
        (Vital::RespiratoryRate, 0.0),
        (Vital::RespiratoryRate, 150.0),
    ] {
        let r = Reading::number(vital, value, vital.canonical_unit());
        assert_eq!(r.evidence(), Some(value), "{vital} {value}");
    }
}

#[test]
fn an_unknown_parameter_keeps_its_code_value_and_unit_in_json() {
    let p = Observation::from(UnknownParameter {
        code: "151780^MDC_VOL_AWAY_TIDAL^MDC".into(),
        value: Some(480.0),
        unit: Some("mL".into()),
    });
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"kind":"unknown_parameter","code":"151780^MDC_VOL_AWAY_TIDAL^MDC","value":480.0,"unit":"mL"})
    );
    let back: Observation = serde_json::from_value(json).unwrap();
    assert_eq!(back, p);
    let bare = Observation::from(UnknownParameter {
        code: "X1".into(),
        value: None,
        unit: None,
    });
    assert_eq!(
        serde_json::to_value(&bare).unwrap(),
        serde_json::json!({"kind":"unknown_parameter","code":"X1","value":null,"unit":null})
    );
}
