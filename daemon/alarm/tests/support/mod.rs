//! A test harness around the engine: seconds instead of instants, and the events seen so far.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
#![allow(dead_code)]

use std::time::{Duration, Instant};
use vigil_alarm::{
    AlarmChange, AlarmState, AlarmView, Engine, EngineEvent, Priority, Profile, RestoredAlarm,
    RestoredSession,
};
use vigil_protocol::{DeviceEvent, Flag, Reading, Unit, Vital};

pub const OXIMETER: &str = "oximeter-1";
pub const CUFF: &str = "cuff-1";

pub struct Harness {
    pub engine: Engine,
    pub t0: Instant,
    pub events: Vec<(f64, EngineEvent)>,
}

impl Harness {
    /// The default KAP profile, an oximeter and a cuff, both connected at t = 0.
    pub fn kap() -> Harness {
        Harness::with_profile(Profile::kap_default().expect("the shipped profile is valid"))
    }

    pub fn with_profile(profile: Profile) -> Harness {
        Harness::with_devices(profile, true)
    }

    /// Only the cuff: for BP scenarios, where a silent oximeter would add "not current" alarms.
    pub fn cuff_only() -> Harness {
        Harness::with_devices(Profile::kap_default().expect("valid"), false)
    }

    fn with_devices(profile: Profile, oximeter: bool) -> Harness {
        let t0 = Instant::now();
        let mut h = Harness {
            engine: Engine::new(profile),
            t0,
            events: Vec::new(),
        };
        if oximeter {
            h.engine
                .add_device(t0, OXIMETER, &[Vital::Spo2, Vital::PulseRate]);
            h.engine.handle_link(t0, OXIMETER, true);
        }
        h.engine.add_device(t0, CUFF, &[]);
        h.engine.handle_link(t0, CUFF, true);
        h.drain();
        h
    }

    pub fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    pub fn secs(&self, t: Instant) -> f64 {
        (t - self.t0).as_secs_f64()
    }

    fn drain(&mut self) {
        while let Some(e) = self.engine.poll_event() {
            let at = match &e {
                EngineEvent::Alarm { at, .. }
                | EngineEvent::AudioPaused { at, .. }
                | EngineEvent::AudioPauseEnded { at, .. }
                | EngineEvent::DoseMarked { at, .. }
                | EngineEvent::BaselineSet { at, .. }
                | EngineEvent::NibpRequested { at, .. } => *at,
            };
            let secs = self.secs(at);
            self.events.push((secs, e));
        }
    }

    /// Runs the clock to `secs` the way the daemon's task does: wake at each deadline.
    pub fn run_to(&mut self, secs: f64) {
        let target = self.at(secs);
        while let Some(deadline) = self.engine.poll_timeout().filter(|d| *d <= target) {
            self.engine.handle_timeout(deadline);
        }
        self.engine.handle_timeout(target);
        self.drain();
    }

    pub fn reading(&mut self, secs: f64, device: &str, vital: Vital, value: f64) {
        self.run_to(secs);
        let unit = vital.canonical_unit();
        let t = self.at(secs);
        self.engine
            .handle_readings(t, device, &[Reading::number(vital, value, unit)]);
        self.drain();
    }

    /// Readings of one frame, as decoded (flags, partial frames, implausible values).
    pub fn frame(&mut self, secs: f64, device: &str, readings: &[Reading]) {
        self.run_to(secs);
        let t = self.at(secs);
        self.engine.handle_readings(t, device, readings);
        self.drain();
    }

    /// One SpO2 and pulse-rate sample a second from `from` to `to` (exclusive).
    pub fn oximeter(&mut self, from: f64, to: f64, spo2: f64, pulse: f64) {
        let mut t = from;
        while t < to {
            self.run_to(t);
            let at = self.at(t);
            self.engine.handle_readings(
                at,
                OXIMETER,
                &[
                    Reading::number(Vital::Spo2, spo2, Unit::Percent),
                    Reading::number(Vital::PulseRate, pulse, Unit::BeatsPerMinute),
                ],
            );
            self.drain();
            t += 1.0;
        }
    }

    pub fn bp(&mut self, secs: f64, systolic: f64, diastolic: f64) {
        self.run_to(secs);
        let t = self.at(secs);
        self.engine.handle_readings(
            t,
            CUFF,
            &[
                Reading::number(Vital::NibpSystolic, systolic, Unit::MmHg),
                Reading::number(Vital::NibpDiastolic, diastolic, Unit::MmHg),
                Reading::number(
                    Vital::NibpMean,
                    (systolic + 2.0 * diastolic) / 3.0,
                    Unit::MmHg,
                ),
            ],
        );
        self.drain();
    }

    pub fn sensor_off(&mut self, secs: f64) {
        self.run_to(secs);
        let t = self.at(secs);
        let off = Reading::number(Vital::Spo2, 0.0, Unit::Percent)
            .with_flags([Flag::SensorOff].into_iter().collect());
        self.engine.handle_readings(t, OXIMETER, &[off]);
        self.engine
            .handle_device_event(t, OXIMETER, &DeviceEvent::SensorOff);
        self.drain();
    }

    pub fn link(&mut self, secs: f64, device: &str, up: bool) {
        self.run_to(secs);
        let t = self.at(secs);
        self.engine.handle_link(t, device, up);
        self.drain();
    }

    pub fn dose(&mut self, secs: f64) {
        self.run_to(secs);
        let t = self.at(secs);
        self.engine
            .mark_dose(t, "Dr Rivera")
            .expect("first dose mark");
        self.drain();
    }

    pub fn ack(&mut self, secs: f64, id: &str) -> Result<(), vigil_alarm::ActionError> {
        self.run_to(secs);
        let t = self.at(secs);
        let r = self.engine.acknowledge(t, id, "Nurse Okafor");
        self.drain();
        r
    }

    pub fn reset(&mut self, secs: f64, id: &str) -> Result<(), vigil_alarm::ActionError> {
        self.run_to(secs);
        let t = self.at(secs);
        let r = self.engine.reset(t, id, "Nurse Okafor");
        self.drain();
        r
    }

    /// (time, change, rule, priority) of every alarm event so far.
    pub fn alarm_log(&self) -> Vec<(f64, AlarmChange, String, Priority)> {
        self.events
            .iter()
            .filter_map(|(t, e)| match e {
                EngineEvent::Alarm { change, alarm, .. } => {
                    Some((*t, *change, alarm.rule.clone(), alarm.priority))
                }
                _ => None,
            })
            .collect()
    }

    /// (time, rule, priority) of every `raised` event so far.
    pub fn raised(&self) -> Vec<(f64, String, Priority)> {
        self.alarm_log()
            .into_iter()
            .filter(|(_, c, _, _)| *c == AlarmChange::Raised)
            .map(|(t, _, r, p)| (t, r, p))
            .collect()
    }

    pub fn alarms_now(&self, secs: f64) -> Vec<AlarmView> {
        self.engine.snapshot(self.at(secs)).alarms
    }

    pub fn alarm(&self, secs: f64, rule: &str) -> Option<AlarmView> {
        self.alarms_now(secs).into_iter().find(|a| a.rule == rule)
    }

    pub fn state_of(&self, secs: f64, rule: &str) -> Option<AlarmState> {
        self.alarm(secs, rule).map(|a| a.state)
    }

    /// The daemon restarts at `secs`: a new engine with the same profile gets back what the
    /// session record keeps (alarms raised and not ended, the dose, the baseline, the last BP),
    /// with the oximeter and the cuff connected again.
    pub fn restart(&mut self, secs: f64) {
        self.restart_with(secs, &[]);
    }

    /// [`Harness::restart`] with more devices configured again (id, continuous vitals).
    pub fn restart_with(&mut self, secs: f64, more: &[(&str, &[Vital])]) {
        self.run_to(secs);
        let now = self.at(secs);
        let old = self.engine.snapshot(now);
        let alarms = old
            .alarms
            .iter()
            .filter(|a| a.state != AlarmState::Pending)
            .map(|a| RestoredAlarm {
                rule: a.rule.clone(),
                seq: a.id.rsplit('#').next().unwrap().parse().unwrap(),
                device: a.device.clone(),
                vital: a.vital,
                priority: a.priority,
                onset: a.onset,
                since: a.since,
                acknowledged: a.acknowledged.clone(),
                latched: a.state == AlarmState::Latched,
                value: a.value,
                awaiting_confirmation: a.awaiting_confirmation,
            })
            .collect();
        let s = old.session;
        let mut engine = Engine::new(self.engine.profile().clone());
        engine.add_device(now, OXIMETER, &[Vital::Spo2, Vital::PulseRate]);
        engine.handle_link(now, OXIMETER, true);
        engine.add_device(now, CUFF, &[]);
        engine.handle_link(now, CUFF, true);
        for (id, continuous) in more {
            engine.add_device(now, id, continuous);
            engine.handle_link(now, id, true);
        }
        engine.restore(RestoredSession {
            now,
            dose: s.dose,
            baseline: s
                .baseline
                .zip(s.baseline_taken)
                .map(|(bp, t)| (bp, t, s.baseline_set_by)),
            bp_measurements: s.last_bp.into_iter().collect(),
            alarms,
            next_seq: self
                .events
                .iter()
                .filter_map(|(_, e)| match e {
                    EngineEvent::Alarm { alarm, .. } => alarm.id.rsplit('#').next()?.parse().ok(),
                    _ => None,
                })
                .max()
                .map_or(1, |m: u64| m + 1),
        });
        // Restored alarms are not new events.
        while engine.poll_event().is_some() {}
        self.engine = engine;
        self.run_to(secs);
    }
}
