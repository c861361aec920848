//! Scenarios: a patient's course through a session as data. Each declares the alarms it should
//! cause, so that tests can hold the alarm engine to them.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// The scenarios shipped in `simulator/scenarios/`.
pub const BUILT_IN: [(&str, &str); 18] = [
    ("demo", include_str!("../scenarios/demo.toml")),
    ("kap-typical", include_str!("../scenarios/kap-typical.toml")),
    (
        "kap-hypertensive",
        include_str!("../scenarios/kap-hypertensive.toml"),
    ),
    (
        "desaturation",
        include_str!("../scenarios/desaturation.toml"),
    ),
    ("brief-dip", include_str!("../scenarios/brief-dip.toml")),
    ("bradycardia", include_str!("../scenarios/bradycardia.toml")),
    ("tachycardia", include_str!("../scenarios/tachycardia.toml")),
    (
        "motion-artefact",
        include_str!("../scenarios/motion-artefact.toml"),
    ),
    ("probe-off", include_str!("../scenarios/probe-off.toml")),
    (
        "device-unplugged",
        include_str!("../scenarios/device-unplugged.toml"),
    ),
    ("low-battery", include_str!("../scenarios/low-battery.toml")),
    (
        "artefact-spikes",
        include_str!("../scenarios/artefact-spikes.toml"),
    ),
    (
        "implausible-spo2",
        include_str!("../scenarios/implausible-spo2.toml"),
    ),
    ("partial-bp", include_str!("../scenarios/partial-bp.toml")),
    ("late-repeat", include_str!("../scenarios/late-repeat.toml")),
    (
        "stale-baseline",
        include_str!("../scenarios/stale-baseline.toml"),
    ),
    (
        "strap-no-contact",
        include_str!("../scenarios/strap-no-contact.toml"),
    ),
    (
        "respiratory-depression",
        include_str!("../scenarios/respiratory-depression.toml"),
    ),
];

fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map(|d: Duration| d.as_secs_f64())
        .map_err(|e| {
            serde::de::Error::custom(format!("{text:?} is not a duration like \"90s\": {e}"))
        })
}

fn seconds_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|t| {
            humantime::parse_duration(t)
                .map(|d| d.as_secs_f64())
                .map_err(|e| serde::de::Error::custom(format!("{t:?}: {e}")))
        })
        .collect()
}

/// Starting values.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// mmHg.
    pub systolic: f64,
    /// mmHg.
    pub diastolic: f64,
    /// bpm.
    pub heart_rate: f64,
    /// %.
    pub spo2: f64,
    /// Breaths/min (default 14). Only a capnograph or multiparameter monitor carries it: the
    /// scenario layer and the HL7 monitor, not today's serial or BLE devices.
    #[serde(default = "normal_respiratory_rate")]
    pub respiratory_rate: f64,
    /// End-tidal CO2, mmHg (default 38); as `respiratory_rate`.
    #[serde(default = "normal_etco2")]
    pub etco2: f64,
}

fn normal_respiratory_rate() -> f64 {
    14.0
}

fn normal_etco2() -> f64 {
    38.0
}

/// A simulated vital a keyframe moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimVital {
    /// Systolic BP.
    Systolic,
    /// Diastolic BP.
    Diastolic,
    /// Heart (and pulse) rate, before its coupling to BP.
    HeartRate,
    /// SpO2.
    Spo2,
    /// Respiratory rate.
    RespiratoryRate,
    /// End-tidal CO2.
    Etco2,
}

/// The vital reaches `to` at `at`, linearly from the previous keyframe.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// Seconds from the start.
    #[serde(deserialize_with = "seconds")]
    pub at: f64,
    /// Which vital.
    pub vital: SimVital,
    /// Value reached.
    pub to: f64,
}

/// Something going wrong with the equipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The oximeter probe is off the finger.
    ProbeOff,
    /// The device is unplugged (serial) or out of range (BLE).
    Unplug,
    /// Movement: noisy values flagged as artefact.
    Motion,
    /// The device reports a low battery.
    LowBattery,
    /// Every ninth second the oximeter sends one SpO2 of 96 % flagged as motion artefact.
    ArtefactSpike,
    /// The oximeter sends an SpO2 the vital cannot have (186 %).
    Implausible,
    /// The cuff's measurement arrives without its diastolic.
    PartialBp,
    /// A multiparameter monitor (IntelliVue) refuses the host's association requests.
    AssociationRefused,
}

/// A fault and when it lasts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// What.
    pub kind: FaultKind,
    /// Which device role it hits (`oximeter`, `cuff`, `heart_rate`); all when absent.
    #[serde(default)]
    pub device: Option<Role>,
    /// Seconds from the start.
    #[serde(deserialize_with = "seconds")]
    pub at: f64,
    /// Seconds it lasts.
    #[serde(rename = "for", deserialize_with = "seconds")]
    pub duration: f64,
}

/// What a simulated device is, for faults that hit one kind of device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// SpO2 and pulse rate.
    Oximeter,
    /// Blood pressure.
    Cuff,
    /// Heart rate strap.
    HeartRate,
}

/// When the cuff completes measurements.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NibpSchedule {
    /// The first reading, seconds from the start (default 1 min: devices connect first).
    #[serde(default = "one_minute", deserialize_with = "seconds")]
    pub first_at: f64,
    /// Interval before the dose.
    #[serde(deserialize_with = "seconds")]
    pub before_dose_every: f64,
    /// Times after the dose.
    #[serde(deserialize_with = "seconds_list")]
    pub after_dose_at: Vec<f64>,
    /// Then every ...
    #[serde(deserialize_with = "seconds")]
    pub then_every: f64,
}

/// An alarm the scenario must cause: its rule raised near `at`, reaching `priority` at most.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Profile rule id.
    pub rule: String,
    /// Highest priority it reaches.
    pub priority: String,
    /// Seconds from the start when it is raised.
    #[serde(deserialize_with = "seconds")]
    pub at: f64,
    /// Tolerance, seconds.
    #[serde(deserialize_with = "seconds")]
    pub within: f64,
    /// How many occurrences (one per device and vital); default 1.
    #[serde(default = "one")]
    pub count: usize,
}

fn one() -> usize {
    1
}

fn one_minute() -> f64 {
    60.0
}

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// What happens, for `vigil-sim list`.
    pub description: String,
    /// Length, seconds.
    #[serde(deserialize_with = "seconds")]
    pub duration: f64,
    /// Starting values.
    pub baseline: Baseline,
    /// Heart rate follows systolic BP by this many bpm per mmHg (ketamine raises both).
    #[serde(default = "hr_coupling")]
    pub hr_follows_bp: f64,
    /// When the dose is given, seconds from the start.
    #[serde(default, deserialize_with = "optional_seconds")]
    pub dose_at: Option<f64>,
    /// Cuff schedule.
    pub nibp: NibpSchedule,
    /// Keyframes.
    #[serde(default)]
    pub change: Vec<Change>,
    /// Faults.
    #[serde(default)]
    pub fault: Vec<Fault>,
    /// Alarms it must cause (and no others).
    #[serde(default)]
    pub expect: Vec<Expect>,
    /// A BLE heart-rate chest strap joins the oximeter and the cuff.
    #[serde(default)]
    pub heart_rate_strap: bool,
}

fn hr_coupling() -> f64 {
    0.3
}

fn optional_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    seconds(d).map(Some)
}

/// A scenario that does not load.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// No such built-in and no such file.
    #[error("no scenario {0:?}: give a built-in name (vigil-sim list) or a TOML file")]
    Unknown(String),
    /// The file is not a valid scenario.
    #[error("scenario {name}: {message}")]
    Invalid {
        /// Which.
        name: String,
        /// Why.
        message: String,
    },
}

impl Scenario {
    /// Parses scenario text.
    pub fn parse(name: &str, text: &str) -> Result<Scenario, ScenarioError> {
        toml::from_str(text).map_err(|e| ScenarioError::Invalid {
            name: name.into(),
            message: e.to_string(),
        })
    }

    /// A built-in scenario by name, or a scenario file by path.
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        if let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            return Scenario::parse(name_or_path, text);
        }
        match std::fs::read_to_string(name_or_path) {
            Ok(text) => Scenario::parse(name_or_path, &text),
            Err(_) => Err(ScenarioError::Unknown(name_or_path.into())),
        }
    }

    /// The cuff's measurement times, seconds from the start.
    pub fn nibp_times(&self) -> Vec<f64> {
        let mut out = Vec::new();
        let dose = self.dose_at.unwrap_or(f64::INFINITY);
        let mut t = self.nibp.first_at;
        while t < dose.min(self.duration) {
            out.push(t);
            t += self.nibp.before_dose_every;
        }
        if dose.is_finite() {
            let mut last = None;
            for &after in &self.nibp.after_dose_at {
                out.push(dose + after);
                last = Some(dose + after);
            }
            if let Some(mut t) = last {
                t += self.nibp.then_every;
                while t <= self.duration {
                    out.push(t);
                    t += self.nibp.then_every;
                }
            }
        }
        out.retain(|t| *t <= self.duration);
        out
    }

    /// Is a fault of `kind` in force at `t` for a device of `role`?
    pub fn fault_at(&self, kind: FaultKind, role: Role, t: f64) -> bool {
        self.fault.iter().any(|f| {
            f.kind == kind
                && f.device.is_none_or(|d| d == role)
                && t >= f.at
                && t < f.at + f.duration
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_scenario_loads() {
        for (name, _) in BUILT_IN {
            let s = Scenario::load(name).unwrap();
            assert_eq!(s.name, name);
            assert!(s.duration > 0.0);
        }
        assert!(matches!(
            Scenario::load("nope"),
            Err(ScenarioError::Unknown(_))
        ));
    }

    #[test]
    fn typical_nibp_schedule() {
        let s = Scenario::load("kap-typical").unwrap();
        let minutes: Vec<f64> = s.nibp_times().iter().map(|t| t / 60.0).collect();
        assert_eq!(minutes, vec![1.0, 45.0, 55.0, 65.0, 75.0, 85.0, 95.0]);
    }
}
