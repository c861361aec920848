//! The plausibility table: what each vital can physically be.

use super::Vital;

/// What each vital can physically be, in its canonical unit: one table for every decoder and the
/// engine. A number outside it is a decoding or device fault, never a measurement.
const PLAUSIBLE: [(Vital, f64, f64); 12] = [
    (Vital::Spo2, 0.0, 100.0),
    (Vital::PulseRate, 0.0, 350.0),
    (Vital::HeartRate, 0.0, 350.0),
    (Vital::NibpSystolic, 0.0, 350.0),
    (Vital::NibpDiastolic, 0.0, 350.0),
    (Vital::NibpMean, 0.0, 350.0),
    (Vital::CuffPressure, 0.0, 350.0),
    (Vital::PerfusionIndex, 0.0, 100.0),
    // An RR interval of 60 s is far past asystole; BLE carries at most 64 s.
    (Vital::RrInterval, 0.0, 64.0),
    (Vital::EnergyExpended, 0.0, 65_535.0),
    // Capnographs measure 0–150 mmHg (0–20 kPa); more is a fault, not a patient.
    (Vital::Etco2, 0.0, 150.0),
    // Monitors count 0–150 breaths/min (neonates included); 0 is a real value: no breath.
    (Vital::RespiratoryRate, 0.0, 150.0),
];

impl Vital {
    /// The range a value of this vital can have, in its canonical unit, from the one plausibility table.
    pub fn plausible_range(self) -> std::ops::RangeInclusive<f64> {
        let (_, lo, hi) = PLAUSIBLE
            .iter()
            .find(|(v, _, _)| *v == self)
            .copied()
            .unwrap_or((self, f64::NEG_INFINITY, f64::INFINITY));
        lo..=hi
    }
}
