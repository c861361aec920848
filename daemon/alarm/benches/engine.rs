//! Time per reading through the engine with the default KAP profile.
//! Run: `cargo bench -p vigil-alarm`. Target: at most 5 µs per reading on a 2-core machine.

use std::hint::black_box;
use std::time::{Duration, Instant};
use vigil_alarm::{Engine, Profile};
use vigil_protocol::{Reading, Unit, Vital};

fn main() {
    let profile = Profile::kap_default().expect("the shipped profile is valid");
    let t0 = Instant::now();
    let mut engine = Engine::new(profile);
    for id in ["oximeter-1", "oximeter-2", "strap"] {
        let vitals: &[Vital] = if id == "strap" {
            &[Vital::HeartRate]
        } else {
            &[Vital::Spo2, Vital::PulseRate]
        };
        engine.add_device(t0, id, vitals);
        engine.handle_link(t0, id, true);
    }
    engine.add_device(t0, "cuff-1", &[]);
    engine.handle_link(t0, "cuff-1", true);

    // A 75 Hz oximeter stream (Nonin #2 rate) with a slow desaturation and recovery, so that
    // pending, active, hysteresis and clearing paths all run; a cuff reading every 10 minutes.
    let frames = 500_000u64;
    let mut readings = 0u64;
    let mut samples = Vec::with_capacity(frames as usize);
    let start = Instant::now();
    for i in 0..frames {
        let now = t0 + Duration::from_micros(i * 13_333);
        let phase = (i / 7_500) % 4; // 100 s per phase
        let spo2 = [98.0, 88.0, 83.0, 91.0][phase as usize];
        let batch = [
            Reading::number(Vital::Spo2, spo2, Unit::Percent),
            Reading::number(
                Vital::PulseRate,
                70.0 + (i % 60) as f64,
                Unit::BeatsPerMinute,
            ),
        ];
        let call = Instant::now();
        engine.handle_readings(now, black_box("oximeter-1"), black_box(&batch));
        while let Some(e) = engine.poll_event() {
            black_box(e);
        }
        if let Some(deadline) = engine.poll_timeout().filter(|d| *d <= now) {
            engine.handle_timeout(deadline);
        }
        samples.push(call.elapsed());
        readings += 2;
        if i % 45_000 == 0 {
            engine.handle_readings(
                now,
                "cuff-1",
                &[
                    Reading::number(Vital::NibpSystolic, 150.0, Unit::MmHg),
                    Reading::number(Vital::NibpDiastolic, 95.0, Unit::MmHg),
                ],
            );
            readings += 2;
        }
    }
    let total = start.elapsed();
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize];
    let per_reading = total.as_nanos() as f64 / readings as f64;
    println!("engine: {readings} readings in {total:.2?}");
    println!("  mean per reading: {per_reading:.0} ns (target ≤ 5000 ns)");
    println!(
        "  per call (2 readings + events + timer): p50 {:?}, p99 {:?}, max {:?}",
        pct(0.5),
        pct(0.99),
        samples[samples.len() - 1]
    );
    println!(
        "  alarms at the end: {}",
        engine.snapshot(t0 + Duration::from_secs(6667)).alarms.len()
    );
}
