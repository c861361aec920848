//! Bringing back what a crashed run left open.

use super::*;

impl Core {
    /// Brings back the session, alarms and trends a crashed run left open.
    pub fn restore(&mut self, resumed: &crate::storage::Resumed) {
        for s in &resumed.trend {
            self.room_state.restore_trend(&s.device, s.vital, &s.points);
        }
        // Nothing stored is dropped or lowered silently: what cannot be read is named, logged,
        // and raises `record-unreadable`.
        let (restored, mut unreadable) = resumed.engine_session(&self.clock);
        let now = restored.now;
        for id in self.engine.restore(restored) {
            tracing::error!(alarm = %id, "not restored: its rule is no longer in the profile");
            unreadable.push(format!("alarm {id} (its rule is no longer in the profile)"));
        }
        // Restored alarms are not new events: drain them without publishing.
        while self.engine.poll_event().is_some() {}
        // What could not be read back is new, and must be heard.
        self.engine.record_unreadable(now, unreadable);
        self.publish_engine_events();
    }
}
