//! A reload that changes the alarm profile or the devices, applied while the session runs.
//!
//! The engine is rebuilt as a restart rebuilds it: a new engine with the new profile and the
//! configured devices, into which the running session is restored through the same path the
//! session record takes at a restart (dose, baseline, BP measurements, confirmation windows,
//! active, acknowledged and latched alarms with their ids, the next alarm number). Nothing the
//! new profile still defines is lost or re-announced, acknowledgements hold, and conditions
//! are judged under the new limits from the next samples on.

use super::*;
use crate::storage::Record;
use vigil_alarm::Profile;

/// Who the record names for what a reload changed.
const CONFIGURATION_FILE: &str = "configuration file";

/// What a reload changes in the running core.
#[derive(Debug)]
pub struct Reconfigure {
    /// The profile now in force (it passed the safety envelope when the file was loaded).
    pub profile: Profile,
    /// The profile as the session record keeps it (name, and each setting with its layer).
    pub profile_record: String,
    /// Devices removed from the file (or whose settings changed); their drivers are stopped.
    pub removed: Vec<String>,
    /// Devices added to the file (or whose settings changed), each with its new driver.
    pub added: Vec<(String, DeviceHandle, Format)>,
}

impl Core {
    /// Applies a reload: devices leave and join the room, and the engine is rebuilt under the
    /// new profile with the running session restored into it.
    pub(super) fn reconfigure(&mut self, change: Reconfigure) {
        let now = self.clock.now().into_std();
        let before = self.engine.snapshot(now);
        if before.audio_pause_remaining.is_some() {
            // The new engine starts unpaused: the safe side, every alarm is heard again.
            tracing::warn!("the audio pause ends with the configuration reload");
        }
        let mut carried = self.engine.carry_over(now);
        let at = self.clock.unix_ms(self.clock.now());
        let act = |storage: &crate::storage::Storage, action: &str, target: String| {
            storage.record(Record::Action {
                action: action.into(),
                person: CONFIGURATION_FILE.into(),
                target: Some(target),
                at,
                done: None,
            })
        };
        for id in &change.removed {
            // Removed on purpose: it leaves the room without a disconnect alarm.
            self.devices.remove(id);
            self.room_state.remove_device(id);
            act(&self.storage, "device_removed", id.clone());
            tracing::warn!(device = %id, "device removed by the configuration file: its driver is stopped and it leaves the room");
        }
        for (id, handle, format) in change.added {
            self.room_state.add_device(&id, format);
            act(&self.storage, "device_added", id.clone());
            tracing::info!(device = %id, format = format.name(), "device added by the configuration file");
            self.devices.insert(id, (handle, format));
        }
        let profile_changed = change.profile != *self.engine.profile();
        if profile_changed {
            act(&self.storage, "profile_changed", change.profile_record);
            tracing::warn!(profile = %change.profile.name, "alarm profile changed by the configuration file: its limits apply from now on");
        }
        // An alarm whose device left the room, or whose rule the new profile no longer has,
        // ends here, and the record says so.
        let rules: Vec<&str> = change.profile.rules.iter().map(|r| r.id.as_str()).collect();
        let (kept, ended): (Vec<_>, Vec<_>) = carried.alarms.into_iter().partition(|a| {
            rules.contains(&a.rule.as_str())
                && a.device
                    .as_ref()
                    .is_none_or(|d| self.devices.contains_key(d))
        });
        carried.alarms = kept;
        let mut engine = Engine::new(change.profile);
        let mut listed: Vec<(&String, Format)> =
            self.devices.iter().map(|(id, (_, f))| (id, *f)).collect();
        listed.sort_by(|a, b| a.0.cmp(b.0));
        for (id, format) in &listed {
            engine.add_device(now, id, format.continuous_vitals());
        }
        for id in engine.restore(carried) {
            tracing::error!(alarm = %id, "not carried over the reload");
        }
        for (id, _) in &listed {
            if matches!(
                self.room_state.link(id),
                Some(LinkState::Connected | LinkState::Stale | LinkState::SensorOff)
            ) {
                engine.handle_link(now, id, true);
            }
        }
        if self.pulse.record_failing() {
            engine.set_recording_failed(now, true);
        }
        // What was carried over is not new: drain it without publishing, as a restart does.
        while engine.poll_event().is_some() {}
        self.engine = engine;
        let ended: Vec<String> = ended
            .iter()
            .map(|a| format!("{}#{}", a.rule, a.seq))
            .collect();
        for alarm in before.alarms {
            if ended.contains(&alarm.id) {
                tracing::warn!(alarm = %alarm.id, "alarm ended by the configuration file");
                let alarm = AlarmView {
                    state: AlarmState::Cleared,
                    ..alarm
                };
                let change = vigil_alarm::AlarmChange::Cleared;
                self.emit(RoomEvent::Alarm { change, alarm }, None);
            }
        }
        // Every display starts again from a fresh snapshot: its devices and limit lines.
        self.seq += 1;
        self.pending.push(Outgoing {
            seq: self.seq,
            text: Utf8Bytes::default(),
            received: None,
            snapshot_due: true,
        });
        if let Some(feed) = &self.central {
            feed.snapshot_due();
        }
        self.publish_engine_events();
    }
}
