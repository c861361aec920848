//! One room's reading flood must not delay every other room's alarms at the central (X7). The
//! site has one ordered stream and the central one reader: whatever one room publishes, the
//! central reads before the next room's alarm step. A room publishes each of its vitals at most
//! once a second, and the central keeps at most [`MAX_VITALS`] device-vitals of a room (X3), so
//! more readings than that within one second of the stream's own time are a flood (a buggy
//! room, or its credentials in other hands): the rest of that second's readings are counted and
//! dropped before they are parsed. The stream's time, not the central's, so that a central
//! catching up on hours of backlog drops nothing. Alarm steps, link and session changes and
//! snapshots are never dropped. Sans-IO: the caller gives the publication time.

use super::rooms::{MAX_ROOMS, MAX_VITALS};
use std::collections::HashMap;

/// The most readings a room may publish within one second of the stream's time.
pub const READINGS_PER_SECOND: u32 = MAX_VITALS as u32;

/// Each room's readings in the second of the stream being read.
#[derive(Debug, Default)]
pub struct ReadingBudget {
    rooms: HashMap<String, (i64, u32)>,
}

impl ReadingBudget {
    /// Whether a reading `room_id` published at `published_s` (unix seconds, by the stream) is
    /// within its budget.
    pub fn admit(&mut self, room_id: &str, published_s: i64) -> bool {
        let full = self.rooms.len() >= MAX_ROOMS;
        match self.rooms.get_mut(room_id) {
            Some((second, count)) if *second == published_s => {
                *count = count.saturating_add(1);
                *count <= READINGS_PER_SECOND
            }
            Some(entry) => {
                *entry = (published_s, 1);
                true
            }
            // Full: a room not heard this second or the last gives way (rooms come and go
            // over a central's life); else the room is beyond the central's bound anyway.
            None if full => {
                let stale = self
                    .rooms
                    .iter()
                    .find(|(_, (second, _))| *second < published_s - 1)
                    .map(|(id, _)| id.clone());
                if let Some(stale) = stale {
                    self.rooms.remove(&stale);
                    self.rooms.insert(room_id.to_string(), (published_s, 1));
                }
                true
            }
            None => {
                self.rooms.insert(room_id.to_string(), (published_s, 1));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rooms_flood_is_cut_at_its_budget_each_second_and_other_rooms_pass() {
        let mut budget = ReadingBudget::default();
        let admitted = (0..10_000).filter(|_| budget.admit("room-1", 100)).count();
        assert_eq!(admitted, READINGS_PER_SECOND as usize);
        // Another room in the same second is not touched by the first one's flood.
        assert!((0..READINGS_PER_SECOND).all(|_| budget.admit("room-2", 100)));
        // The next second of the stream: a fresh budget.
        assert!(budget.admit("room-1", 101));
    }

    #[test]
    fn rooms_that_came_and_went_give_way_to_a_new_one() {
        let mut budget = ReadingBudget::default();
        for r in 0..MAX_ROOMS {
            assert!(budget.admit(&format!("old-{r}"), 100));
        }
        let admitted = (0..10_000).filter(|_| budget.admit("new", 200)).count();
        assert_eq!(admitted, READINGS_PER_SECOND as usize);
    }

    #[test]
    fn a_backlog_read_fast_is_judged_by_its_publication_times() {
        let mut budget = ReadingBudget::default();
        // An hour of one room's readings (7 a second), read in one go after a central restart.
        let all = (0..3600)
            .flat_map(|s| std::iter::repeat_n(1_000 + s, 7))
            .all(|s| budget.admit("room-1", s));
        assert!(all);
    }
}
