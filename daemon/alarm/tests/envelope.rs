//! The profile's safety envelope: an override may tighten an alarm, never silence it. Each
//! refusal names the override file and key that caused it, and all are listed at once.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use vigil_alarm::profile::KAP_DEFAULT;
use vigil_alarm::{Layer, Priority, Profile, ProfileError, Source};

fn clinic() -> Source {
    Source::Clinic("clinic.toml".into())
}

fn patient() -> Source {
    Source::Patient("p-17.toml".into())
}

/// The default profile with override layers.
fn load(overrides: &[(Source, &str)]) -> Result<Profile, Vec<ProfileError>> {
    let layers: Vec<Layer> = overrides
        .iter()
        .map(|(source, text)| Layer {
            source: source.clone(),
            text,
        })
        .collect();
    Profile::load(
        Layer {
            source: Source::Default,
            text: KAP_DEFAULT,
        },
        &layers,
    )
    .map_err(|e| e.0)
}

/// The problems of a patient override, as `location: message` lines.
fn refused(patient_override: &str) -> Vec<String> {
    load(&[(patient(), patient_override)])
        .expect_err("the override must be refused")
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn assert_has(lines: &[String], location: &str, message: &str) {
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{location}: ")) && l.contains(message)),
        "no {location:?} with {message:?} in {lines:#?}"
    );
}

#[test]
fn the_shipped_profile_is_inside_its_envelope() {
    Profile::kap_default().unwrap();
}

#[test]
fn tightening_is_accepted() {
    let p = load(&[(
        patient(),
        r#"
        [rules.spo2-low]
        below = 92
        delay = "5s"
        priority = "high"
        [rules.not-current]
        vital = ["spo2", "pulse_rate", "heart_rate", "etco2", "respiratory_rate"]
        after = "20s"
        [rules.pr-high]
        above = 110
        delay = "3m"
        [rules.device-disconnected]
        delay = "2s"
        [rules.sensor-off]
        priority = "high"
        [behaviour]
        escalate_unacknowledged_after = "1m"
        "#,
    )])
    .unwrap();
    assert_eq!(p.rule("spo2-low").unwrap().priority, Priority::High);
}

#[test]
fn a_priority_below_its_floor_is_refused() {
    let lines = refused(
        "[rules.spo2-critical]\npriority = \"medium\"\n\
         [rules.bp-crisis]\npriority = \"medium\"\n\
         [rules.pr-critical-low]\npriority = \"medium\"\n\
         [rules.spo2-low]\npriority = \"low\"\n\
         [rules.bp-severe]\nunconfirmed_priority = \"info\"\n",
    );
    for id in ["spo2-critical", "bp-crisis", "pr-critical-low"] {
        assert_has(
            &lines,
            &format!("patient p-17.toml: rules.{id}.priority"),
            "medium is below this alarm's floor high",
        );
    }
    assert_has(
        &lines,
        "patient p-17.toml: rules.spo2-low.priority",
        "low is below this alarm's floor medium",
    );
    assert_has(
        &lines,
        "patient p-17.toml: rules.bp-severe.unconfirmed_priority",
        "cannot be info",
    );
    assert_eq!(lines.len(), 5, "{lines:#?}");
}

#[test]
fn no_alarm_rule_of_the_default_can_be_made_info_technical_ones_by_kind() {
    let default = Profile::kap_default().unwrap();
    let mut technical = 0;
    for rule in default.rules.iter().filter(|r| r.priority > Priority::Info) {
        technical += usize::from(!rule.spec.is_physiological());
        let lines = refused(&format!("[rules.{}]\npriority = \"info\"\n", rule.id));
        assert_has(
            &lines,
            &format!("patient p-17.toml: rules.{}.priority", rule.id),
            "info is below this alarm's floor",
        );
    }
    assert!(technical >= 5, "the default's technical rules are covered");
}

#[test]
fn a_delay_beyond_its_bound_is_refused() {
    let lines = refused(
        r#"
        [rules.spo2-critical]
        delay = "11s"
        [rules.spo2-low]
        delay = "31s"
        [rules.pr-very-high]
        delay = "31s"
        [rules.pr-low]
        delay = "31s"
        [rules.pr-critical-low]
        delay = "31s"
        [rules.pr-high]
        delay = "6m"
        [rules.not-current]
        after = "31s"
        [rules.device-disconnected]
        delay = "11s"
        [rules.sensor-off]
        delay = "16s"
        "#,
    );
    for (id, key, message) in [
        (
            "spo2-critical",
            "delay",
            "11s is longer than this alarm's bound 10s",
        ),
        (
            "spo2-low",
            "delay",
            "31s is longer than this alarm's bound 30s",
        ),
        ("pr-very-high", "delay", "bound 30s"),
        ("pr-low", "delay", "bound 30s"),
        ("pr-critical-low", "delay", "bound 30s"),
        (
            "pr-high",
            "delay",
            "6m is longer than this alarm's bound 5m",
        ),
        (
            "not-current",
            "after",
            "31s is longer than this alarm's bound 30s",
        ),
        ("device-disconnected", "delay", "bound 10s"),
        (
            "sensor-off",
            "delay",
            "16s is longer than this alarm's bound 15s",
        ),
    ] {
        assert_has(
            &lines,
            &format!("patient p-17.toml: rules.{id}.{key}"),
            message,
        );
    }
    assert_eq!(lines.len(), 9, "{lines:#?}");
}

#[test]
fn a_limit_outside_the_bounds_table_is_refused() {
    let lines = refused(
        "[rules.spo2-low]\nbelow = 79\n\
         [rules.spo2-critical]\nbelow = 79.5\n\
         [rules.pr-very-high]\nabove = 161\n\
         [rules.pr-critical-low]\nbelow = 34\n\
         [rules.sbp-low]\nbelow = 69\n\
         [rules.bp-crisis]\nsystolic = 221\ndiastolic = 131\n",
    );
    for (id, key, message) in [
        ("spo2-low", "below", "79 is under the bound 80"),
        ("spo2-critical", "below", "79.5 is under the bound 80"),
        ("pr-very-high", "above", "161 is over the bound 160"),
        ("pr-critical-low", "below", "34 is under the bound 35"),
        ("sbp-low", "below", "69 is under the bound 70"),
        ("bp-crisis", "systolic", "221 is over the bound 220"),
        ("bp-crisis", "diastolic", "131 is over the bound 130"),
    ] {
        assert_has(
            &lines,
            &format!("patient p-17.toml: rules.{id}.{key}"),
            message,
        );
    }
    // The pulse rules watch pulse rate and heart rate: one problem per vital.
    assert_eq!(lines.len(), 9, "{lines:#?}");
    // At the bounds is allowed.
    load(&[(
        patient(),
        "[rules.spo2-low]\nbelow = 80\n[rules.pr-very-high]\nabove = 160\n",
    )])
    .unwrap();
}

#[test]
fn a_rule_cannot_be_retargeted_or_turned_around() {
    let lines = refused(
        "[rules.not-current]\nvital = \"spo2\"\n\
         [rules.spo2-critical]\nvital = \"pulse_rate\"\n",
    );
    assert_has(
        &lines,
        "patient p-17.toml: rules.not-current.vital",
        "cannot stop watching pulse_rate",
    );
    assert_has(
        &lines,
        "patient p-17.toml: rules.spo2-critical.vital",
        "cannot stop watching spo2",
    );
    assert_eq!(lines.len(), 2, "{lines:#?}");

    // A clinic's full profile could flip a limit's side; the envelope refuses it.
    let flipped = KAP_DEFAULT.replacen(
        "id = \"pr-low\"\ntype = \"limit\"\nvital = [\"pulse_rate\", \"heart_rate\"]\nbelow = 50",
        "id = \"pr-low\"\ntype = \"limit\"\nvital = [\"pulse_rate\", \"heart_rate\"]\nabove = 150",
        1,
    );
    assert_ne!(flipped, KAP_DEFAULT);
    let errors = Profile::load(
        Layer {
            source: Source::Clinic("kap-clinic.toml".into()),
            text: &flipped,
        },
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        errors.contains("clinic kap-clinic.toml: rule \"pr-low\".above: cannot turn the limit"),
        "{errors}"
    );
}

#[test]
fn a_clinic_profile_cannot_remove_or_retype_an_alarm_rule() {
    let start = KAP_DEFAULT.find("[[rule]]\nid = \"sensor-off\"").unwrap();
    let end = start + KAP_DEFAULT[start..].find("\n\n").unwrap();
    let without_sensor_off = format!("{}{}", &KAP_DEFAULT[..start], &KAP_DEFAULT[end..]);
    let retyped = KAP_DEFAULT.replacen(
        "id = \"recording-failed\"\ntype = \"recording_failed\"",
        "id = \"recording-failed\"\ntype = \"no_baseline\"",
        1,
    );
    for (text, needle) in [
        (
            without_sensor_off.as_str(),
            "clinic kap-clinic.toml: rule \"sensor-off\": cannot be removed",
        ),
        (
            retyped.as_str(),
            "clinic kap-clinic.toml: rule \"recording-failed\".type: cannot change",
        ),
    ] {
        let errors = Profile::load(
            Layer {
                source: Source::Clinic("kap-clinic.toml".into()),
                text,
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(errors.contains(needle), "{errors}");
    }
}

#[test]
fn escalation_cannot_be_switched_off() {
    let lines = refused(
        "[behaviour]\nescalate_unacknowledged_after = \"off\"\n\
         [rules.nibp-overdue]\nescalate_after = \"off\"\n",
    );
    assert_has(
        &lines,
        "patient p-17.toml: behaviour.escalate_unacknowledged_after",
        "escalation cannot be switched off",
    );
    assert_has(
        &lines,
        "patient p-17.toml: rules.nibp-overdue.escalate_after",
        "escalation cannot be switched off",
    );
    // Reported once for the behaviour, not once per rule that inherits it.
    assert_eq!(lines.len(), 2, "{lines:#?}");
}

#[test]
fn every_violation_of_every_layer_is_listed_at_once_with_its_file_and_key() {
    let errors = load(&[
        (
            clinic(),
            "[rules.spo2-critical]\npriority = \"medium\"\n[rules.sensor-off]\ndelay = \"20s\"\n",
        ),
        (
            patient(),
            "[rules.spo2-low]\nbelow = 75\ndelay = \"45s\"\n[rules.pr-very-high]\nabove = 20\n",
        ),
    ])
    .unwrap_err();
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let mut locations: Vec<&str> = errors.iter().map(|e| e.location.as_str()).collect();
    locations.sort();
    locations.dedup();
    assert_eq!(
        locations,
        [
            "clinic clinic.toml: rules.sensor-off.delay",
            "clinic clinic.toml: rules.spo2-critical.priority",
            "patient p-17.toml: rules.pr-very-high.above",
            "patient p-17.toml: rules.spo2-low.below",
            "patient p-17.toml: rules.spo2-low.delay",
        ],
        "{lines:#?}"
    );
    // A value the validator refuses (not only the envelope) names the override too, not the
    // built-in default the override changed.
    assert!(
        lines.iter().any(|l| l.contains("rules.pr-very-high.above")
            && l.contains("low limit 50 is not below the high limit 20")),
        "{lines:#?}"
    );
}

#[test]
fn a_value_an_override_gets_wrong_is_reported_as_the_overrides() {
    // A limit that no longer fits the vital an override gave the rule: the override's vital.
    let lines = refused("[rules.spo2-critical]\nvital = \"perfusion_index\"\n");
    assert_has(
        &lines,
        "patient p-17.toml: rules.spo2-critical.vital",
        "makes below = 85 outside the range 0 to 20",
    );

    let lines = refused("[rules.spo2-low]\nbelow = 20\ndelay = \"soon\"\n");
    assert_has(
        &lines,
        "patient p-17.toml: rules.spo2-low.below",
        "20 is outside the allowed range 70 to 100",
    );
    assert_has(
        &lines,
        "patient p-17.toml: rules.spo2-low.delay",
        "\"soon\" is not a duration",
    );
    assert!(
        lines.iter().all(|l| !l.contains("built-in default")),
        "{lines:#?}"
    );
}

/// F4: a limit rule's clearing time was outside the envelope. `clear_after = "0s"` lets one
/// in-range sample end a pending or active alarm (issue 14 §1 says never on one sample): a
/// saturation alternating 85 % and 95 % each second never raised `spo2-low`. An override may
/// lengthen the clearing time, never shorten it below the default's.
#[test]
fn a_clearing_time_shorter_than_the_defaults_is_refused() {
    let lines = refused(
        r#"
        [rules.spo2-low]
        clear_after = "0s"
        [rules.pr-high]
        clear_after = "1s"
        [rules.device-disconnected]
        clear_after = "1s"
        "#,
    );
    assert_has(
        &lines,
        "patient p-17.toml: rules.spo2-low.clear_after",
        "shorter",
    );
    assert_has(
        &lines,
        "patient p-17.toml: rules.pr-high.clear_after",
        "shorter",
    );
    // F11: a reconnect shorter than the default's would end a disconnection again.
    assert_has(
        &lines,
        "patient p-17.toml: rules.device-disconnected.clear_after",
        "shorter",
    );
    // Longer is tighter: accepted.
    load(&[(patient(), "[rules.spo2-low]\nclear_after = \"30s\"\n")]).unwrap();
}

/// F5: latching was outside the envelope. `latching = false` on `spo2-critical` (High) or
/// `device-disconnected` (loss of communication) was accepted, so a critical desaturation or a
/// lost oximeter that recovered before anyone looked left no trace on the screen (alarms.md:
/// High and comm-loss alarms latch until reset).
#[test]
fn an_override_cannot_switch_latching_off() {
    let lines = refused(
        r#"
        [rules.spo2-critical]
        latching = false
        [rules.device-disconnected]
        latching = false
        "#,
    );
    assert_has(
        &lines,
        "patient p-17.toml: rules.spo2-critical.latching",
        "latch",
    );
    assert_has(
        &lines,
        "patient p-17.toml: rules.device-disconnected.latching",
        "latch",
    );
    // Latching more is tighter: accepted.
    load(&[(patient(), "[rules.spo2-low]\nlatching = true\n")]).unwrap();
}

/// F6: the NIBP schedule and the confirmation window were outside the envelope. An override
/// that moves the first post-dose check to 4 h (past a KAP session), checks every 2 h, counts
/// a reading an hour early, waits half an hour of grace, or gives a severe BP 30 min to be
/// confirmed was accepted: `nibp-overdue` and `nibp-repeat-overdue` never sounded in time. An
/// override may make the schedule denser, never sparser.
#[test]
fn an_override_cannot_stretch_the_nibp_schedule_or_the_confirmation_window() {
    let lines = refused(
        r#"
        [rules.nibp-overdue]
        first_after_dose = "4h"
        every = "2h"
        until = "4h"
        early_tolerance = "1h"
        grace = "30m"
        [rules.bp-severe]
        confirm_within = "30m"
        "#,
    );
    for key in ["first_after_dose", "every", "early_tolerance", "grace"] {
        assert_has(
            &lines,
            &format!("patient p-17.toml: rules.nibp-overdue.{key}"),
            "longer",
        );
    }
    assert_has(
        &lines,
        "patient p-17.toml: rules.bp-severe.confirm_within",
        "longer",
    );
    // Denser, and checked for longer: accepted.
    load(&[(
        patient(),
        "[rules.nibp-overdue]\nfirst_after_dose = \"30m\"\nevery = \"10m\"\nuntil = \"2h\"\n\
         [rules.bp-severe]\nconfirm_within = \"3m\"\n",
    )])
    .unwrap();
    // Checked for a shorter time: refused.
    let lines = refused("[rules.nibp-overdue]\nuntil = \"40m\"\n");
    assert_has(
        &lines,
        "patient p-17.toml: rules.nibp-overdue.until",
        "shorter",
    );
}

/// F7: escalation could not be switched off, but it could be made twenty times slower:
/// `escalate_unacknowledged_after = "1h"` (or a rule's `escalate_after = "1h"`) was accepted, so
/// an unacknowledged desaturation stayed Medium for an hour. Slower than the default is refused.
#[test]
fn escalation_cannot_be_made_slower_than_the_defaults() {
    let lines = refused(
        "[behaviour]\nescalate_unacknowledged_after = \"1h\"\n\
         [rules.nibp-overdue]\nescalate_after = \"30m\"\n",
    );
    assert_has(
        &lines,
        "patient p-17.toml: behaviour.escalate_unacknowledged_after",
        "longer than the default's 3m",
    );
    assert_has(
        &lines,
        "patient p-17.toml: rules.nibp-overdue.escalate_after",
        "longer than the default's 3m",
    );
    // Faster is tighter: accepted.
    load(&[(
        patient(),
        "[behaviour]\nescalate_unacknowledged_after = \"1m\"\n",
    )])
    .unwrap();
}
