//! The one list of kinds, and the promises the engine's fast paths rely on.

use super::*;
use crate::engine::Bp as Pressure;
use crate::profile::{Layer, Profile, Source, KAP_DEFAULT};

fn default_profile() -> Profile {
    Profile::kap_default().expect("the shipped profile loads")
}

#[test]
fn every_kind_is_found_by_its_own_name_once() {
    for kind in KINDS {
        assert_eq!(by_name(kind.name()), Some(*kind));
        assert_eq!(
            KINDS.iter().filter(|k| k.name() == kind.name()).count(),
            1,
            "{} is listed twice",
            kind.name()
        );
    }
    assert_eq!(by_name("warp"), None);
}

/// The message a profile author sees is word for word the one before the kinds had modules.
#[test]
fn unknown_type_message_names_every_kind_in_the_documented_order() {
    let text = KAP_DEFAULT.replacen("type = \"limit\"", "type = \"warp\"", 1);
    let errors = Profile::load(
        Layer {
            source: Source::Clinic("c.toml".into()),
            text: &text,
        },
        &[],
    )
    .expect_err("an unknown type is refused");
    assert!(
        errors.0.iter().any(|e| {
            e.message
            == "unknown rule type \"warp\"; expected limit, apnea, bp, baseline_rise, not_current, \
                nibp_overdue, nibp_repeat_overdue, disconnected, sensor_off, low_battery, \
                no_baseline, recording_failed, record_unreadable or discharge_ready"
        }),
        "{errors}"
    );
}

/// Each rule of the shipped profile is owned by the kind its `type` names (the list wires
/// each variant to its own module, and each module's parser builds its own variant).
#[test]
fn each_default_rule_belongs_to_the_kind_its_type_names() {
    let doc: toml::Table = KAP_DEFAULT.parse().unwrap();
    let profile = default_profile();
    let tables = doc["rule"].as_array().unwrap();
    assert_eq!(tables.len(), profile.rules.len());
    let mut seen = Vec::new();
    for t in tables {
        let id = t["id"].as_str().unwrap();
        let ty = t["type"].as_str().unwrap();
        let rule = profile.rule(id).unwrap();
        assert_eq!(rule.spec.kind().name(), ty, "rule {id}");
        seen.push(ty);
    }
    for kind in KINDS {
        assert!(
            seen.contains(&kind.name()),
            "the default profile has no {} rule: add one, so it is protected and tested",
            kind.name()
        );
    }
}

fn busy_session(now: Instant) -> SessionFacts {
    let bp = Pressure {
        systolic: 120.0,
        diastolic: 80.0,
    };
    SessionFacts {
        now: Some(now + 24 * HOUR),
        dose: Some(now),
        baseline: Some(bp),
        last_bp: Some((now, bp)),
        repeat_due: Some(now + MINUTE),
    }
}

/// The engine skips kinds that say they have no deadlines of their own: they must have none.
#[test]
fn a_kind_without_own_deadlines_offers_none() {
    let now = Instant::now();
    let session = busy_session(now);
    for rule in default_profile().rules {
        let kind = rule.spec.kind();
        if kind.own_deadlines() {
            continue;
        }
        let last_valid = || Some(now);
        assert_eq!(
            kind.idle_deadline(&rule.spec, &session, &last_valid),
            None,
            "{}",
            rule.id
        );
        assert_eq!(
            kind.clear_deadline(&rule.spec, Some(now), Some(now)),
            None,
            "{}",
            rule.id
        );
    }
}

/// Samples reach only the rules that judge that vital: no rule may answer a sample of a vital
/// it does not declare.
#[test]
fn a_rule_answers_samples_only_of_the_vitals_it_judges() {
    let session = busy_session(Instant::now());
    for rule in default_profile().rules {
        let kind = rule.spec.kind();
        for vital in Vital::ALL {
            if kind.judges_samples_of(&rule.spec, vital) {
                continue;
            }
            for value in [0.0, 50.0, 95.0, 300.0, 70_000.0] {
                for continuous in [false, true] {
                    for complete_bp in [false, true] {
                        for spot in [false, true] {
                            let sample = Signal::Sample {
                                vital,
                                value,
                                continuous,
                                complete_bp,
                                spot,
                            };
                            assert_eq!(
                                kind.on(&rule.spec, &sample, &session),
                                None,
                                "{} answered a sample of {vital:?}",
                                rule.id
                            );
                        }
                    }
                }
            }
        }
    }
}
