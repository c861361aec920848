//! The simulated patient: the scenario's keyframes, interpolated, with seeded noise.

use crate::scenario::{Scenario, SimVital};

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
