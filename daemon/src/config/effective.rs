//! The effective alarm profile as `vigil check-config --profile` prints it: every value written
//! in the profile or an override, each with the layer it came from.

use std::fmt::Write as _;
use vigil_alarm::{Profile, Source};

/// Where a value came from, in the words of the issue and the README: default, clinic, patient.
fn source(source: &Source) -> String {
    match source {
        Source::Default => "default".into(),
        Source::Clinic(file) => format!("clinic {file}"),
        Source::Patient(file) => format!("patient {file}"),
    }
}

/// The profile, grouped by behaviour and rule (in the profile's order), one value a line.
pub fn effective_profile(profile: &Profile) -> String {
    let mut out = format!(
        "alarm profile {:?}: {} rule(s), each value with its source (default, clinic, patient)\n",
        profile.name,
        profile.rules.len()
    );
    let mut scope = "";
    for s in profile.settings.iter().filter(|s| s.key != "id") {
        if s.scope != scope {
            scope = &s.scope;
            if scope == "behaviour" {
                out.push_str("[behaviour]\n");
            } else {
                let _ = writeln!(out, "[rule {scope}]");
            }
        }
        let line = format!("{} = {}", s.key, s.value);
        let _ = writeln!(out, "  {line:<56} {}", source(&s.source));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_alarm::profile::KAP_DEFAULT;
    use vigil_alarm::Layer;

    #[test]
    fn each_value_is_printed_with_the_layer_that_set_it() {
        let profile = Profile::load(
            Layer {
                source: Source::Default,
                text: KAP_DEFAULT,
            },
            &[
                Layer {
                    source: Source::Clinic("clinic.toml".into()),
                    text: "[rules.spo2-low]\ndelay = \"10s\"\n",
                },
                Layer {
                    source: Source::Patient("p-17.toml".into()),
                    text: "[rules.spo2-low]\nbelow = 88\n",
                },
            ],
        )
        .expect("a valid override");
        let text = effective_profile(&profile);
        let line = |needle: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(needle))
                .unwrap_or_else(|| panic!("no {needle:?} in\n{text}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        let spo2_low = &text[text.find("[rule spo2-low]").expect("the rule")..];
        let in_spo2_low = |needle: &str| {
            spo2_low
                .lines()
                .find(|l| l.trim_start().starts_with(needle))
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        };
        assert_eq!(in_spo2_low("below"), "below = 88 patient p-17.toml");
        assert_eq!(in_spo2_low("delay"), "delay = \"10s\" clinic clinic.toml");
        assert_eq!(in_spo2_low("priority"), "priority = \"medium\" default");
        assert_eq!(line("audio_pause_max"), "audio_pause_max = \"2m\" default");
    }
}
