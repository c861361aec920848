//! The profile's loading and validation.

use super::*;
use vigil_protocol::Vital;

fn load_with(base: &str, overrides: &[(&str, Source)]) -> Result<Profile, ProfileErrors> {
    let layers: Vec<Layer> = overrides
        .iter()
        .map(|(text, source)| Layer {
            source: source.clone(),
            text,
        })
        .collect();
    Profile::load(
        Layer {
            source: Source::Clinic("clinic.toml".into()),
            text: base,
        },
        &layers,
    )
}

#[test]
fn shipped_profile_has_every_row_of_the_reference_table() {
    let p = Profile::kap_default().unwrap();
    let ids: Vec<&str> = p.rules.iter().map(|r| r.id.as_str()).collect();
    for id in [
        "predose-bp-review",
        "bp-rise",
        "bp-severe",
        "bp-crisis",
        "sbp-low",
        "spo2-low",
        "spo2-critical",
        "pr-high",
        "pr-very-high",
        "pr-low",
        "pr-critical-low",
        "not-current",
        "nibp-overdue",
        "device-disconnected",
        "discharge-ready",
    ] {
        assert!(ids.contains(&id), "missing {id}");
    }
    let spo2 = p.rule("spo2-low").unwrap();
    assert_eq!(spo2.priority, Priority::Medium);
    assert_eq!(
        spo2.spec,
        RuleSpec::Limit {
            vitals: vec![Vital::Spo2],
            bound: Bound::Below(90.0),
            delay: Duration::from_secs(15),
            clear_margin: 2.0,
            clear_after: Duration::from_secs(5),
        }
    );
    assert_eq!(p.behaviour.audio_pause_max, Duration::from_secs(120));
    assert_eq!(
        p.rule("nibp-overdue").unwrap().escalate_after,
        Some(Duration::from_secs(180))
    );
}

#[test]
fn overrides_change_values_and_record_their_source() {
    let p = Profile::load(
        Layer {
            source: Source::Default,
            text: KAP_DEFAULT,
        },
        &[
            Layer {
                source: Source::Clinic("clinic.toml".into()),
                text: "[rules.spo2-low]\nbelow = 88\ndelay = \"20s\"\n",
            },
            Layer {
                source: Source::Patient("p-17.toml".into()),
                text: "[rules.spo2-low]\nbelow = 87\n",
            },
        ],
    )
    .unwrap();
    let RuleSpec::Limit { bound, delay, .. } = &p.rule("spo2-low").unwrap().spec else {
        panic!()
    };
    assert_eq!(*bound, Bound::Below(87.0));
    assert_eq!(*delay, Duration::from_secs(20));
    let source_of = |key: &str| {
        p.settings
            .iter()
            .find(|s| s.scope == "spo2-low" && s.key == key)
            .map(|s| s.source.clone())
    };
    assert_eq!(
        source_of("below"),
        Some(Source::Patient("p-17.toml".into()))
    );
    assert_eq!(
        source_of("delay"),
        Some(Source::Clinic("clinic.toml".into()))
    );
    assert_eq!(source_of("priority"), Some(Source::Default));
}

#[test]
fn every_problem_is_listed_with_its_location() {
    let bad = r#"
        name = "bad"
        [behaviour]
        audio_pause_max = "10m"
        [[rule]]
        id = "a"
        type = "limit"
        vital = "spo3"
        below = 90
        priority = "urgent"
        [[rule]]
        id = "a"
        type = "limit"
        vital = "pulse_rate"
        below = 130
        delay = "-5s"
        priority = "medium"
        [[rule]]
        id = "b"
        type = "limit"
        vital = "pulse_rate"
        above = 120
        priority = "medium"
        [[rule]]
        id = "c"
        type = "bp"
        systolic = 100
        diastolic = 120
        below = 3
        priority = "high"
        [[rule]]
        id = "d"
        type = "warp"
        priority = "low"
    "#;
    let errors = load_with(bad, &[]).unwrap_err().0;
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let has = |needle: &str| text.iter().any(|t| t.contains(needle));
    assert!(
        has("behaviour.audio_pause_max: 10m is longer than the maximum 2m"),
        "{text:#?}"
    );
    assert!(
        has("rule #1 \"a\".vital: unknown vital \"spo3\""),
        "{text:#?}"
    );
    assert!(
        has("rule #1 \"a\".priority: \"urgent\" is not one of"),
        "{text:#?}"
    );
    assert!(has("rule #2 \"a\": duplicate rule id"), "{text:#?}");
    assert!(
        has("rule #2 \"a\".delay: \"-5s\" is not a duration"),
        "{text:#?}"
    );
    assert!(
        has("low limit 130 is not below the high limit 120"),
        "{text:#?}"
    );
    assert!(
        has("rule #4 \"c\".diastolic: 120 must be below systolic 100"),
        "{text:#?}"
    );
    assert!(
        has("rule #4 \"c\".below: does not apply to a bp rule"),
        "{text:#?}"
    );
    assert!(
        has("rule #5 \"d\".type: unknown rule type \"warp\""),
        "{text:#?}"
    );
    assert!(errors.len() >= 9, "{text:#?}");
}

#[test]
fn absurd_values_are_refused() {
    let errors = load_with(
        "[[rule]]\nid=\"x\"\ntype=\"limit\"\nvital=\"spo2\"\nbelow=20\ndelay=\"3h\"\npriority=\"high\"\n",
        &[],
    )
    .unwrap_err()
    .0;
    let text = ProfileErrors(errors).to_string();
    assert!(
        text.contains("20 is outside the allowed range 70 to 100"),
        "{text}"
    );
    assert!(text.contains("3h is longer than the maximum 15m"), "{text}");
}

#[test]
fn override_of_an_unknown_rule_or_bad_toml_is_reported() {
    let errors = load_with(
        KAP_DEFAULT,
        &[
            (
                "[rules.spo2-lo]\nbelow = 88\n",
                Source::Patient("p.toml".into()),
            ),
            (
                "[rules.spo2-low\nbelow = 88\n",
                Source::Patient("q.toml".into()),
            ),
        ],
    )
    .unwrap_err()
    .0;
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].location, "patient p.toml: rules.spo2-lo");
    assert!(
        errors[1].message.starts_with("not valid TOML"),
        "{errors:?}"
    );
}
