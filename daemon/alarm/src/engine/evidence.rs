//! What devices send: readings through the evidence gate, device events and links.

use super::*;
use vigil_protocol::{Unavailable, Value};

impl Engine {
    /// Readings decoded from one frame of one device (a cuff's systolic, diastolic and mean
    /// arrive together and count as one measurement).
    ///
    /// Only evidence ([`Reading::evidence`]: valid, plausible, unquestioned) counts for or
    /// against a condition. Anything else is shown by the display but here it only interrupts
    /// the in-range evidence that would clear a condition.
    pub fn handle_readings(&mut self, now: Instant, device: &str, readings: &[Reading]) {
        let now = self.advance(now);
        let d = self.device_or_add(now, device);
        let repeated;
        let readings = if self.repeats_last_determination(d, readings) {
            // The same cuff determination again: shown, but no new measurement, so it neither
            // confirms, nor counts as the requested repeat, nor ends a BP condition.
            repeated = readings
                .iter()
                .filter(|r| !is_nibp(r.vital))
                .cloned()
                .collect::<Vec<_>>();
            &repeated[..]
        } else {
            readings
        };
        let evidence_of = |vital: Vital| {
            readings
                .iter()
                .find(|r| r.vital == vital)
                .and_then(Reading::evidence)
        };
        // A measurement without both its systolic and diastolic is partial: it may show that a
        // limit is met, but it never ends a BP condition.
        let bp = (
            evidence_of(Vital::NibpSystolic),
            evidence_of(Vital::NibpDiastolic),
        );
        let complete_bp = bp.0.is_some() && bp.1.is_some();
        if readings.iter().any(|r| r.flags.sensor_off()) {
            self.sensor(now, d, Truth::Violating);
        } else if readings.iter().any(Reading::is_evidence) {
            // A valid sample: the sensor is on the patient.
            self.sensor(now, d, Truth::ClearNow);
        }
        // A cuff determination's pulse rate is one value per measurement, never a stream.
        let determination = readings.iter().any(|r| is_nibp(r.vital));
        for reading in readings {
            let vital = reading.vital;
            // A number sent, even one that is no evidence (a pressure without its unit, V2),
            // shows the device streams the vital: then `not-current` says it is unusable.
            let sent = matches!(
                reading.value,
                Value::Number(_)
                    | Value::Unavailable(Unavailable::Implausible | Unavailable::FlaggedInvalid)
            );
            if sent && !determination && !reading.flags.contains(Flag::SpotCheck) {
                self.note_stream(now, d, vital);
            }
            let Some(value) = reading.evidence() else {
                self.not_evidence(now, d, vital);
                continue;
            };
            if let Some(slot) = self.devices[d]
                .last_valid
                .iter_mut()
                .find(|(v, _)| *v == vital)
            {
                slot.1 = now;
                self.signal_existing(now, Some((d, vital)), &Signal::Current { value });
            }
            let continuous = self.devices[d].last_valid.iter().any(|(v, _)| *v == vital);
            // A spot-check (F12): the device marks it so (`ble-plx-spot`), or it is an SpO2 that
            // no stream keeps current: only spot-check oximeters send SpO2 that way. A cuff's
            // pulse rate is neither and stays held to instantaneous limits.
            let spot =
                !continuous && (reading.flags.contains(Flag::SpotCheck) || vital == Vital::Spo2);
            let sample = Signal::Sample {
                vital,
                value,
                continuous,
                complete_bp,
                spot,
            };
            self.signal_device(now, d, Some(vital), &sample);
        }
        if bp.0.is_some() || bp.1.is_some() {
            self.handle_bp(now, bp.0, bp.1);
        }
    }

    /// Notes a number of `vital` from device `d`: a second one within [`STREAM_GAP`] of a
    /// vital the device was not held to keep current makes it one of its streams (V1). SpO2
    /// is left alone: an oximeter's format declares it, and without a stream it is a
    /// spot-check (F12).
    fn note_stream(&mut self, now: Instant, d: usize, vital: Vital) {
        let device = &mut self.devices[d];
        if vital == Vital::Spo2
            || is_nibp(vital)
            || device.last_valid.iter().any(|(v, _)| *v == vital)
        {
            return;
        }
        let earlier = device.last_sample.iter().position(|(v, _)| *v == vital);
        match earlier {
            Some(i) if now.saturating_duration_since(device.last_sample[i].1) <= STREAM_GAP => {
                device.last_sample.swap_remove(i);
                device.last_valid.push((vital, now));
                for rule in 0..self.profile.rules.len() {
                    let spec = &self.profile.rules[rule].spec;
                    for v in spec
                        .kind()
                        .watched_vitals(spec, &[vital], &self.profile.rules)
                    {
                        self.condition(rule, Some(d), Some(v));
                    }
                }
            }
            Some(i) => device.last_sample[i].1 = now,
            None => device.last_sample.push((vital, now)),
        }
    }

    /// Does this frame hold the cuff determination device `d` last sent (the same device
    /// time)? Notes the determination's time when it is new. Frames without a device time
    /// cannot be told apart and count as new.
    fn repeats_last_determination(&mut self, d: usize, readings: &[Reading]) -> bool {
        let Some(time) = readings
            .iter()
            .find(|r| is_nibp(r.vital))
            .and_then(|r| r.device_time)
        else {
            return false;
        };
        let last = &mut self.devices[d].last_nibp_time;
        if *last == Some(time) {
            return true;
        }
        *last = Some(time);
        false
    }

    /// A reading of `vital` from device `d` that is not evidence: the limit conditions on it
    /// keep their state, but their clearing starts over.
    fn not_evidence(&mut self, now: Instant, d: usize, vital: Vital) {
        self.signal_existing(now, Some((d, vital)), &Signal::NotEvidence);
    }

    /// Something the device reported that is not a value.
    pub fn handle_device_event(&mut self, now: Instant, device: &str, event: &DeviceEvent) {
        let now = self.advance(now);
        let d = self.device_or_add(now, device);
        match event {
            DeviceEvent::SensorOff
            | DeviceEvent::SensorDefective
            | DeviceEvent::SensorDisconnected => self.sensor(now, d, Truth::Violating),
            DeviceEvent::LowBattery => {
                self.devices[d].low_battery_at = Some(now);
                self.signal_device(now, d, None, &Signal::LowBattery);
            }
            // No breath is about the respiratory rate: it meets the same condition as a rate
            // of 0, so the rate's samples end it.
            DeviceEvent::Apnea => {
                self.signal_device(now, d, Some(Vital::RespiratoryRate), &Signal::Apnea)
            }
            _ => {}
        }
    }

    pub(super) fn sensor(&mut self, now: Instant, d: usize, truth: Truth) {
        let off = truth == Truth::Violating;
        self.signal_device(now, d, None, &Signal::SensorOff(off));
    }

    /// The device's link came up (`true`) or went down (`false`).
    pub fn handle_link(&mut self, now: Instant, device: &str, up: bool) {
        let now = self.advance(now);
        let d = match self.device_index(device) {
            Some(d) => d,
            None => {
                self.add_device(now, device, &[]);
                self.devices.len() - 1
            }
        };
        self.set_link(now, d, up);
    }

    pub(super) fn set_link(&mut self, now: Instant, d: usize, up: bool) {
        self.signal_device(now, d, None, &Signal::Link { up });
    }

    /// The session record is failing (`true`) or writing again (`false`).
    pub fn set_recording_failed(&mut self, now: Instant, failing: bool) {
        let now = self.advance(now);
        self.signal_existing(now, None, &Signal::Recording { failing });
    }
}

/// A vital of a cuff determination.
fn is_nibp(vital: Vital) -> bool {
    matches!(
        vital,
        Vital::NibpSystolic | Vital::NibpDiastolic | Vital::NibpMean
    )
}
