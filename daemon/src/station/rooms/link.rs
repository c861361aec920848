//! The room link: heartbeats keep a room's link up; none for [`LINK_TIMEOUT`] raises the
//! central's own "room link lost" alarm for it, latched until a person resets it.

use super::*;

impl Rooms {
    /// A room's heartbeat arrived: its link is up. Returns the frame for the displays when that
    /// ends a "room link lost" (the alarm then holds, latched, until reset).
    pub fn heartbeat(
        &mut self,
        room_id: &str,
        name: &str,
        now: Instant,
    ) -> Result<Option<String>, Malformed> {
        self.heartbeat_from(room_id, name, None, now)
    }

    /// [`Rooms::heartbeat`] with the `boot` of the room process that sent it. Heartbeats that
    /// switch back to a boot heard less than [`LINK_TIMEOUT`] before come from two processes
    /// with one room id (V7): while that lasts they do not keep the link up, so "room link
    /// lost" is raised, saying why. A restart switches once and is one room.
    pub fn heartbeat_from(
        &mut self,
        room_id: &str,
        name: &str,
        boot: Option<&str>,
        now: Instant,
    ) -> Result<Option<String>, Malformed> {
        // The name and boot are kept: a heartbeat cannot make them large (X3).
        if name.len() > MAX_NAME || boot.is_some_and(|b| b.len() > MAX_NAME) {
            return Err(Malformed::TooMuch(format!(
                "a heartbeat whose room name or boot is longer than {MAX_NAME} bytes"
            )));
        }
        let room = self.room(room_id, now)?;
        if let Some(boot) = boot {
            if let Some(current) = room.beat_boot.as_deref().filter(|b| *b != boot) {
                let back = room.other_boot.as_ref().is_some_and(|(other, at)| {
                    other == boot && now.saturating_duration_since(*at) < LINK_TIMEOUT
                });
                if back {
                    if room.conflict_until.is_none_or(|until| now >= until) {
                        tracing::warn!(room = %room_id, "two room processes publish with this room id");
                    }
                    room.conflict_until = Some(now + LINK_TIMEOUT);
                }
                room.other_boot = Some((current.to_string(), now));
                room.beat_boot = Some(boot.to_string());
            } else if room.beat_boot.is_none() {
                room.beat_boot = Some(boot.to_string());
            }
        }
        if room.conflict_until.is_some_and(|until| now < until) {
            return Ok(None);
        }
        room.last_heartbeat = now;
        if !room.has_snapshot && !name.is_empty() {
            room.name = name.to_string();
        }
        if room.link == Link::Up {
            return Ok(None);
        }
        room.link = Link::Up;
        tracing::info!(room = %room_id, "room link back");
        let Some(alarm) = room.link_alarm.as_mut() else {
            return Ok(None);
        };
        alarm.state = "latched".into();
        let alarm = alarm.clone();
        Ok(Some(with_room(
            &room.alarm_message("cleared", alarm),
            room_id,
        )))
    }

    /// Checks every room's heartbeat age at `now` (`utc` is now as RFC 3339): the frames of the
    /// "room link lost" alarms this raises.
    pub fn tick(&mut self, now: Instant, utc: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (id, room) in &mut self.rooms {
            if room.link == Link::Lost
                || now.saturating_duration_since(room.last_heartbeat) < LINK_TIMEOUT
            {
                continue;
            }
            room.link = Link::Lost;
            tracing::warn!(room = %id, "room link lost: no heartbeat for 5 s");
            let alarm = match room.link_alarm.take() {
                // Not yet reset from the last outage: it sounds again.
                Some(mut alarm) => {
                    alarm.state = "active".into();
                    alarm.acknowledged_by = None;
                    alarm.acknowledged_at = None;
                    alarm
                }
                None => {
                    room.link_alarms_raised += 1;
                    AlarmInfo {
                        id: format!("{LINK_RULE}#{}", room.link_alarms_raised),
                        rule: LINK_RULE.into(),
                        kind: "technical".into(),
                        vital: None,
                        device: None,
                        priority: "high".into(),
                        message: if room.conflict_until.is_some_and(|until| now < until) {
                            format!(
                                "Two rooms publish as {id}: the central cannot tell them apart; give each its own room_id and watch them there"
                            )
                        } else {
                            format!(
                                "Link to {} lost: the central hears nothing from the room; watch it there",
                                room.name
                            )
                        },
                        state: "active".into(),
                        since: utc.to_string(),
                        acknowledged_by: None,
                        acknowledged_at: None,
                        latching: true,
                        awaiting_confirmation: false,
                        value: None,
                    }
                }
            };
            room.link_alarm = Some(alarm.clone());
            out.push(with_room(&room.alarm_message("raised", alarm), id));
        }
        out
    }

    /// Is `alarm_id` the central's own alarm (handled here, not sent to the room)?
    pub fn is_link_alarm(alarm_id: &str) -> bool {
        alarm_id
            .strip_prefix(LINK_RULE)
            .is_some_and(|rest| rest.starts_with('#'))
    }

    /// `ack` of the central's own alarm by `person`.
    pub fn ack_link(
        &mut self,
        room_id: &str,
        alarm_id: &str,
        person: &str,
        utc: &str,
    ) -> LinkAction {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return LinkAction::Refused(
                "unknown_room",
                format!("no room {room_id:?} at this central"),
            );
        };
        let Some(alarm) = room.link_alarm.as_mut().filter(|a| a.id == alarm_id) else {
            return LinkAction::Refused(
                "unknown_alarm",
                format!("no alarm {alarm_id:?} in room {room_id:?}"),
            );
        };
        if alarm.state != "active" {
            return LinkAction::Refused(
                "refused",
                "only an active alarm can be acknowledged".into(),
            );
        }
        alarm.state = "acknowledged".into();
        alarm.acknowledged_by = Some(person.to_string());
        alarm.acknowledged_at = Some(utc.to_string());
        let alarm = alarm.clone();
        tracing::info!(room = %room_id, alarm = %alarm_id, %person, "room link lost acknowledged");
        LinkAction::Done(with_room(
            &room.alarm_message("acknowledged", alarm),
            room_id,
        ))
    }

    /// `reset` of the central's own alarm by `person`: only once the link is back.
    pub fn reset_link(&mut self, room_id: &str, alarm_id: &str, person: &str) -> LinkAction {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return LinkAction::Refused(
                "unknown_room",
                format!("no room {room_id:?} at this central"),
            );
        };
        if room.link_alarm.as_ref().is_none_or(|a| a.id != alarm_id) {
            return LinkAction::Refused(
                "unknown_alarm",
                format!("no alarm {alarm_id:?} in room {room_id:?}"),
            );
        }
        if room.link == Link::Lost {
            return LinkAction::Refused(
                "refused",
                format!(
                    "the link to {} is still lost: it can be reset once the room is heard again",
                    room.name
                ),
            );
        }
        let Some(mut alarm) = room.link_alarm.take() else {
            return LinkAction::Refused("unknown_alarm", format!("no alarm {alarm_id:?}"));
        };
        alarm.state = "cleared".into();
        tracing::info!(room = %room_id, alarm = %alarm_id, %person, "room link lost reset");
        LinkAction::Done(with_room(&room.alarm_message("reset", alarm), room_id))
    }
}
