//! The simulated patient: the scenario's keyframes, interpolated, with seeded noise.

use crate::scenario::{Scenario, SimVital};
use vigil_protocol::model::MMHG_PER_KPA;
use vigil_protocol::{Reading, Unit, Vital};

/// One moment's vitals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vitals {
    /// mmHg.
    pub systolic: f64,
    /// mmHg.
    pub diastolic: f64,
    /// bpm; also the pulse rate.
    pub heart_rate: f64,
    /// %.
    pub spo2: f64,
}

fn keyframed(s: &Scenario, vital: SimVital, start: f64, t: f64) -> f64 {
    let mut prev = (0.0, start);
    for c in s.change.iter().filter(|c| c.vital == vital) {
        if t < c.at {
            let span = c.at - prev.0;
            if span <= 0.0 {
                return c.to;
            }
            return prev.1 + (c.to - prev.1) * (t - prev.0) / span;
        }
        prev = (c.at, c.to);
    }
    prev.1
}

/// The noise-free course of the vitals at `t` seconds. Heart rate follows systolic BP, as it
/// does under ketamine.
pub fn course(s: &Scenario, t: f64) -> Vitals {
    let systolic = keyframed(s, SimVital::Systolic, s.baseline.systolic, t);
    let heart_rate = keyframed(s, SimVital::HeartRate, s.baseline.heart_rate, t)
        + s.hr_follows_bp * (systolic - s.baseline.systolic);
    Vitals {
        systolic,
        diastolic: keyframed(s, SimVital::Diastolic, s.baseline.diastolic, t),
        heart_rate,
        spo2: keyframed(s, SimVital::Spo2, s.baseline.spo2, t),
    }
}

/// One moment's breathing, for devices that can carry it (a capnograph or multiparameter
/// monitor: the HL7 monitor, and tests). Kept apart from [`Vitals`] so that the oximeter's and
/// the cuff's seeded values, and so their bytes, stay what they were.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breathing {
    /// Breaths/min; 0 is no breath.
    pub respiratory_rate: f64,
    /// End-tidal CO2, mmHg.
    pub etco2: f64,
}

/// The noise-free course of the breathing at `t` seconds.
pub fn breathing_course(s: &Scenario, t: f64) -> Breathing {
    Breathing {
        respiratory_rate: keyframed(s, SimVital::RespiratoryRate, s.baseline.respiratory_rate, t),
        etco2: keyframed(s, SimVital::Etco2, s.baseline.etco2, t),
    }
}

/// The breathing a device measures at `t`: the course plus noise, whole numbers as monitors
/// show them. No breath stays exactly 0: a monitor counts no breaths, it does not estimate.
pub fn measured_breathing(s: &Scenario, t: f64, noise: &mut Noise) -> Breathing {
    let b = breathing_course(s, t);
    let rate = if b.respiratory_rate < 0.5 {
        0.0
    } else {
        (b.respiratory_rate + noise.jitter(0.8)).round().max(1.0)
    };
    Breathing {
        respiratory_rate: rate,
        etco2: (b.etco2 + noise.jitter(1.0)).round().max(0.0),
    }
}

impl Breathing {
    /// The readings a monitor sends for it (EtCO2 in mmHg, or in kPa as many European monitors
    /// do), with their MDC codes.
    pub fn readings(&self, etco2_in_kpa: bool) -> [Reading; 2] {
        let etco2 = if etco2_in_kpa {
            Reading::number(Vital::Etco2, self.etco2 / MMHG_PER_KPA, Unit::KPa)
        } else {
            Reading::number(Vital::Etco2, self.etco2, Unit::MmHg)
        };
        [
            Reading::number(
                Vital::RespiratoryRate,
                self.respiratory_rate,
                Unit::BreathsPerMinute,
            ),
            etco2,
        ]
    }
}

/// Seeded, deterministic noise: the same seed gives the same values, and so the same bytes.
#[derive(Debug, Clone)]
pub struct Noise {
    rng: fastrand::Rng,
}

impl Noise {
    /// Noise for one device: `stream` keeps devices independent of each other.
    pub fn new(seed: u64, stream: u64) -> Noise {
        Noise {
            rng: fastrand::Rng::with_seed(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        }
    }

    /// A value in (−amplitude, amplitude), centre-weighted.
    pub fn jitter(&mut self, amplitude: f64) -> f64 {
        (self.rng.f64() + self.rng.f64() + self.rng.f64() - 1.5) / 1.5 * amplitude
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.rng.f64()
    }
}

/// The vitals a device measures at `t`: the course plus noise, SpO2 quantised as devices report
/// it. `motion` adds the large, fast errors of a moving finger.
pub fn measured(s: &Scenario, t: f64, noise: &mut Noise, motion: bool) -> Vitals {
    let v = course(s, t);
    let (spo2_amp, hr_amp) = if motion { (2.5, 8.0) } else { (0.4, 1.2) };
    Vitals {
        systolic: (v.systolic + noise.jitter(2.0)).round(),
        diastolic: (v.diastolic + noise.jitter(1.5)).round(),
        heart_rate: (v.heart_rate + noise.jitter(hr_amp)).round().max(0.0),
        spo2: (v.spo2 + noise.jitter(spo2_amp)).round().clamp(0.0, 100.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframes_interpolate_and_hold() {
        let s = Scenario::load("kap-typical").unwrap();
        assert_eq!(course(&s, 0.0).systolic, 120.0);
        assert_eq!(course(&s, 45.0 * 60.0).systolic, 136.0);
        assert!((course(&s, 25.0 * 60.0).systolic - 128.0).abs() < 1e-9);
        assert_eq!(course(&s, 99.0 * 60.0).systolic, 120.0);
        let hr_peak = course(&s, 45.0 * 60.0).heart_rate;
        assert!(
            (hr_peak - (72.0 + 0.3 * 16.0)).abs() < 1e-9,
            "HR follows BP: {hr_peak}"
        );
    }

    #[test]
    fn breathing_follows_its_keyframes_and_no_breath_stays_zero() {
        let s = Scenario::load("respiratory-depression").unwrap();
        assert_eq!(
            breathing_course(&s, 0.0),
            Breathing {
                respiratory_rate: 14.0,
                etco2: 38.0
            }
        );
        assert!((breathing_course(&s, 570.0).respiratory_rate - 8.0).abs() < 1e-9);
        assert_eq!(breathing_course(&s, 12.0 * 60.0).etco2, 58.0);
        let mut n = Noise::new(7, 2);
        for t in 840..=880 {
            let b = measured_breathing(&s, t as f64, &mut n);
            assert_eq!(b.respiratory_rate, 0.0, "no breath at {t} s");
        }
        for t in 0..100 {
            let b = measured_breathing(&s, t as f64, &mut n);
            assert!((13.0..=15.0).contains(&b.respiratory_rate), "{b:?}");
        }
        // A scenario written before breathing existed breathes normally.
        let old = Scenario::load("desaturation").unwrap();
        assert_eq!(breathing_course(&old, 600.0).respiratory_rate, 14.0);
        let [rr, etco2] = Breathing {
            respiratory_rate: 12.0,
            etco2: 45.0,
        }
        .readings(true);
        assert_eq!(rr.evidence(), Some(12.0));
        assert_eq!(etco2.unit, Unit::KPa);
        assert!((etco2.evidence().unwrap() - 45.0).abs() < 1e-9);
    }

    #[test]
    fn the_same_seed_gives_the_same_values() {
        let s = Scenario::load("kap-typical").unwrap();
        let run = |seed| {
            let mut n = Noise::new(seed, 1);
            (0..100)
                .map(|i| measured(&s, i as f64, &mut n, false))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
