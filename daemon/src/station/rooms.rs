//! The central's picture of the site, sans-IO: each room's state (its last `snapshot`, then the
//! changes it published, by `seq`) and the central's own alarm per room, "room link lost". The
//! caller gives the time (monotonic `Instant` for the heartbeat timeout, UTC text for
//! timestamps) and sends what each call returns to the displays.

mod link;

use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::time::Instant;
use vigil_protocol::display::{AlarmInfo, ServerMessage, SessionInfo, Snapshot, Trend, UserInfo};

/// No heartbeat from a room for this long raises "room link lost" for it.
pub const LINK_TIMEOUT: Duration = Duration::from_secs(5);
/// Rooms a central keeps at most: whoever can publish on the site's subjects cannot make it
/// grow without bound.
pub const MAX_ROOMS: usize = 256;
/// The most a central keeps of one room: whoever can publish on a room's subjects cannot make
/// its state, every display's `rooms` message and the work per reading grow without bound
/// (X3). A real room has a few devices and alarms; these are far above that.
pub const MAX_DEVICES: usize = 64;
/// Device and vital pairs with a latest reading, per room (see [`MAX_DEVICES`]).
pub const MAX_VITALS: usize = 256;
/// Alarms not cleared, per room (see [`MAX_DEVICES`]).
pub const MAX_ALARMS: usize = 256;
/// The largest snapshot from a room the central takes, in bytes (a room's snapshot, without
/// its trend, is a few KiB).
pub const MAX_MESSAGE: usize = 256 * 1024;
/// The largest other message from a room (a reading, an alarm step, a heartbeat: under 1 KiB),
/// so that the alarms, devices and vitals kept stay small too.
pub const MAX_STEP: usize = 4 * 1024;
/// The longest room name and `boot` a heartbeat may carry, in bytes.
pub const MAX_NAME: usize = 128;
/// The rule id of the central's own alarm; its alarm ids start with it.
pub const LINK_RULE: &str = "room-link-lost";

/// Why a room's message was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Not a display message at all.
    #[error("not a display protocol message: {0}")]
    NotJson(String),
    /// A display message that rooms do not publish to the central.
    #[error("a {0} message is not one a room publishes")]
    Unexpected(&'static str),
    /// An alarm whose kind, priority or state is not one the display protocol has: the pages
    /// build their style names from them, and one they cannot use stops their rendering (V9).
    #[error("an alarm's {0}")]
    Alarm(String),
    /// A room id that is not a slug, or a new room beyond [`MAX_ROOMS`].
    #[error("room {0:?} refused: not a room id, or more than 256 rooms")]
    Room(String),
    /// A message beyond what the central keeps of a room ([`MAX_MESSAGE`], [`MAX_DEVICES`],
    /// [`MAX_VITALS`], [`MAX_ALARMS`]).
    #[error("beyond what the central keeps of a room: {0}")]
    TooMuch(String),
    /// Readings beyond a room's budget for one second (see [`super::budget`]).
    #[error("more than 256 readings in one second from one room (a flood): dropped")]
    Flood,
}

/// Whether the central hears a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// Heartbeats arrive.
    Up,
    /// No heartbeat for [`LINK_TIMEOUT`].
    Lost,
}

/// One room as the central knows it.
#[derive(Debug, Clone)]
pub struct Room {
    /// The room's display name (from its snapshot or heartbeat).
    pub name: String,
    /// The room process's start (from the message ids), to tell a restart from a replay.
    boot: Option<String>,
    /// The last `seq` applied for `boot`, readings aside.
    seq: u64,
    /// The `seq` of the last snapshot applied for `boot`: readings numbered before it are in it.
    snapshot_seq: u64,
    /// The `seq` of the last reading applied for each device and vital, for `boot`. Readings
    /// are judged apart from the room's other messages: a room publishes each vital's latest
    /// reading up to a second after it happened, so a reading arrives after alarm steps and link
    /// changes numbered after it, and is still the newest value of its vital.
    reading_seqs: HashMap<String, HashMap<vigil_protocol::Vital, u64>>,
    /// Whether any message was applied (`seq` means something).
    applied: bool,
    /// The room's state; an empty one until its first snapshot.
    state: Snapshot,
    /// Whether a snapshot has arrived (the central asks for one until it has).
    pub has_snapshot: bool,
    last_heartbeat: Instant,
    /// The heartbeat link.
    pub link: Link,
    link_alarm: Option<AlarmInfo>,
    link_alarms_raised: u64,
    /// The boot of the last heartbeat, and the other boot heard before it with when (V7).
    beat_boot: Option<String>,
    other_boot: Option<(String, Instant)>,
    /// Until when two room processes are heard with this room id: its heartbeats then say
    /// nothing about either, so they do not keep the link up.
    conflict_until: Option<Instant>,
}

/// Every room of the site.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: BTreeMap<String, Room>,
}

/// What a display action on the central's own alarm came to.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkAction {
    /// Done; send this to the displays.
    Done(String),
    /// Refused with this code and reason.
    Refused(&'static str, String),
}

fn empty_state(name: &str) -> Snapshot {
    Snapshot {
        room: name.to_string(),
        user: UserInfo {
            name: String::new(),
            role: String::new(),
        },
        server_time: String::new(),
        seq: 0,
        session: SessionInfo {
            phase: "pre_dose".into(),
            dose_at: None,
            dose_by: None,
            minutes_since_dose: None,
            baseline: None,
            baseline_taken_at: None,
            baseline_set_by: None,
            baseline_missing: None,
        },
        devices: Vec::new(),
        vitals: Vec::new(),
        alarms: Vec::new(),
        audio_pause_remaining_s: None,
        trend: Trend {
            minutes: 0,
            resolution_s: 0,
            series: Vec::new(),
        },
        limits: Vec::new(),
        forwards: Vec::new(),
        central: None,
    }
}

/// `message`'s JSON with `"room": room_id` added: the central's frame for the displays. A
/// snapshot's own `room` (the room's display name) moves to `room_name`.
pub fn with_room(message: &ServerMessage, room_id: &str) -> String {
    #[derive(serde::Serialize)]
    struct InRoom<'a> {
        v: u32,
        room: &'a str,
        #[serde(flatten)]
        message: &'a ServerMessage,
    }
    // Every message but a snapshot has no `room` of its own: written in one pass, as this
    // runs for every message of every room.
    if !matches!(message, ServerMessage::Snapshot(_)) {
        let in_room = InRoom {
            v: vigil_protocol::display::VERSION,
            room: room_id,
            message,
        };
        if let Ok(text) = serde_json::to_string(&in_room) {
            return text;
        }
    }
    let mut value = serde_json::from_str::<Value>(&message.to_json()).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        if let Some(name) = map.insert("room".into(), Value::String(room_id.to_string())) {
            map.insert("room_name".into(), name);
        }
    }
    value.to_string()
}

/// A room's message: a snapshot of at most [`MAX_MESSAGE`] bytes, any other of at most
/// [`MAX_STEP`].
fn parse(payload: &[u8]) -> Result<ServerMessage, Malformed> {
    if payload.len() > MAX_MESSAGE {
        return Err(Malformed::TooMuch(format!(
            "a message of {} bytes (at most {MAX_MESSAGE})",
            payload.len()
        )));
    }
    let message: ServerMessage =
        serde_json::from_slice(payload).map_err(|e| Malformed::NotJson(e.to_string()))?;
    if payload.len() > MAX_STEP && !matches!(message, ServerMessage::Snapshot(_)) {
        return Err(Malformed::TooMuch(format!(
            "a message of {} bytes (at most {MAX_STEP} but a snapshot)",
            payload.len()
        )));
    }
    Ok(message)
}

/// The alarm's words the pages act on are the display protocol's (V9).
fn check_alarm(alarm: &AlarmInfo) -> Result<(), Malformed> {
    // Only the central raises "room link lost": a room's step posing as it (its rule or id)
    // would end the central's alarm at the pages, which go by rule and id (X8).
    if alarm.rule == LINK_RULE || Rooms::is_link_alarm(&alarm.id) {
        return Err(Malformed::Alarm(format!(
            "the rule {LINK_RULE:?} is the central's own"
        )));
    }
    let fields: [(&str, &str, &[&str]); 3] = [
        ("kind", &alarm.kind, &["physiological", "technical"]),
        (
            "priority",
            &alarm.priority,
            &["high", "medium", "low", "info"],
        ),
        (
            "state",
            &alarm.state,
            &["pending", "active", "acknowledged", "latched", "cleared"],
        ),
    ];
    for (name, value, known) in fields {
        if !known.contains(&value) {
            let shown: String = value.chars().take(20).collect();
            return Err(Malformed::Alarm(format!(
                "{name} {shown:?} is not one of {known:?}"
            )));
        }
    }
    Ok(())
}

/// A snapshot within what the central keeps of a room.
fn check_size(snapshot: &Snapshot) -> Result<(), Malformed> {
    let lists = [
        ("devices", snapshot.devices.len(), MAX_DEVICES),
        ("vitals", snapshot.vitals.len(), MAX_VITALS),
        ("alarms", snapshot.alarms.len(), MAX_ALARMS),
    ];
    match lists.iter().find(|(_, len, max)| len > max) {
        Some((name, len, max)) => Err(Malformed::TooMuch(format!(
            "a snapshot with {len} {name} (at most {max})"
        ))),
        None => Ok(()),
    }
}

impl Room {
    /// Whether `message` would grow the room's state beyond what the central keeps of it.
    fn check_growth(&self, message: &ServerMessage) -> Result<(), Malformed> {
        let state = &self.state;
        let (grows, name, max) = match message {
            ServerMessage::Reading { reading, .. } => (
                state.vitals.len() >= MAX_VITALS
                    && !state.vitals.iter().any(|v| {
                        v.reading.device == reading.device && v.reading.vital == reading.vital
                    }),
                "device vitals",
                MAX_VITALS,
            ),
            ServerMessage::Device { device, .. } => (
                state.devices.len() >= MAX_DEVICES
                    && !state.devices.iter().any(|d| &d.device == device),
                "devices",
                MAX_DEVICES,
            ),
            ServerMessage::Alarm { alarm, .. } => (
                alarm.state != "cleared"
                    && state.alarms.len() >= MAX_ALARMS
                    && !state.alarms.iter().any(|a| a.id == alarm.id),
                "alarms",
                MAX_ALARMS,
            ),
            _ => (false, "", 0),
        };
        if grows {
            return Err(Malformed::TooMuch(format!("more than {max} {name}")));
        }
        Ok(())
    }

    /// The `seq` of the last reading applied for `device`'s `vital` (looked up without
    /// allocating: this runs for every reading of every room).
    fn reading_seq(&self, device: &str, vital: vigil_protocol::Vital) -> Option<u64> {
        self.reading_seqs.get(device)?.get(&vital).copied()
    }

    fn new(id: &str, now: Instant) -> Room {
        Room {
            name: id.to_string(),
            boot: None,
            seq: 0,
            snapshot_seq: 0,
            reading_seqs: HashMap::new(),
            applied: false,
            state: empty_state(id),
            has_snapshot: false,
            // A room first heard of now gets the full timeout to send its heartbeat.
            last_heartbeat: now,
            link: Link::Up,
            link_alarm: None,
            link_alarms_raised: 0,
            beat_boot: None,
            other_boot: None,
            conflict_until: None,
        }
    }

    /// How many device vitals the central keeps a reading position for (bounded, X3).
    pub fn reading_positions(&self) -> usize {
        self.reading_seqs.values().map(HashMap::len).sum()
    }

    /// The room's state as the displays get it: the room's snapshot with the central's own
    /// alarm first, while there is one.
    pub fn display_state(&self) -> Snapshot {
        let mut state = self.state.clone();
        if let Some(alarm) = &self.link_alarm {
            state.alarms.insert(0, alarm.clone());
        }
        state
    }

    /// The room's own seq, for the central's alarm messages about it.
    fn alarm_message(&self, event: &str, alarm: AlarmInfo) -> ServerMessage {
        ServerMessage::Alarm {
            seq: self.seq,
            event: event.into(),
            alarm,
        }
    }
}

impl Rooms {
    /// The room, created on first mention (a slug, within [`MAX_ROOMS`]).
    fn room(&mut self, id: &str, now: Instant) -> Result<&mut Room, Malformed> {
        if !self.rooms.contains_key(id)
            && (self.rooms.len() >= MAX_ROOMS || !crate::nats::valid_slug(id))
        {
            return Err(Malformed::Room(id.chars().take(64).collect()));
        }
        Ok(self
            .rooms
            .entry(id.to_string())
            .or_insert_with(|| Room::new(id, now)))
    }

    /// The rooms, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Room)> {
        self.rooms.iter()
    }

    /// A room by id.
    pub fn get(&self, id: &str) -> Option<&Room> {
        self.rooms.get(id)
    }

    /// Applies one message a room published (`payload`, the display JSON), with the `boot` its
    /// message id names when it has one. `Ok(Some(frame))`: the frame for the displays;
    /// `Ok(None)`: already applied (a replay or a duplicate).
    pub fn apply(
        &mut self,
        room_id: &str,
        boot: Option<&str>,
        payload: &[u8],
        now: Instant,
    ) -> Result<Option<String>, Malformed> {
        let message = parse(payload)?;
        let seq = match &message {
            ServerMessage::Snapshot(s) => s.seq,
            ServerMessage::Reading { seq, .. }
            | ServerMessage::Alarm { seq, .. }
            | ServerMessage::Device { seq, .. }
            | ServerMessage::Session { seq, .. }
            | ServerMessage::AudioPause { seq, .. } => *seq,
            ServerMessage::Heartbeat { .. } => return Err(Malformed::Unexpected("heartbeat")),
            ServerMessage::Trend { .. } => return Err(Malformed::Unexpected("trend")),
            ServerMessage::Result { .. } => return Err(Malformed::Unexpected("result")),
            ServerMessage::Error { .. } => return Err(Malformed::Unexpected("error")),
            ServerMessage::Central { .. } => return Err(Malformed::Unexpected("central")),
            ServerMessage::Forward { .. } => return Err(Malformed::Unexpected("forward")),
        };
        match &message {
            ServerMessage::Alarm { alarm, .. } => check_alarm(alarm)?,
            ServerMessage::Snapshot(s) => {
                check_size(s)?;
                s.alarms.iter().try_for_each(check_alarm)?
            }
            _ => {}
        }
        let room = self.room(room_id, now)?;
        // A room that restarted numbers its messages from the start again.
        let restarted = boot.is_some() && room.boot.is_some() && room.boot.as_deref() != boot;
        if restarted || !room.applied {
            room.snapshot_seq = 0;
            room.reading_seqs.clear();
        }
        // A replay of what is already applied (or in the snapshot applied) changes nothing.
        // A reading is judged against the last snapshot and its own vital's last reading only.
        let already = match &message {
            ServerMessage::Reading { reading, .. } => {
                seq <= room.snapshot_seq
                    || room.reading_seq(&reading.device, reading.vital) >= Some(seq)
            }
            _ => seq <= room.seq,
        };
        if room.applied && !restarted && already {
            return Ok(None);
        }
        room.check_growth(&message)?;
        room.applied = true;
        if let Some(boot) = boot {
            room.boot = Some(boot.to_string());
        }
        match &message {
            ServerMessage::Reading { reading, .. } => {
                match room.reading_seqs.get_mut(&reading.device) {
                    Some(vitals) => {
                        vitals.insert(reading.vital, seq);
                    }
                    None => {
                        let vitals = HashMap::from([(reading.vital, seq)]);
                        room.reading_seqs.insert(reading.device.clone(), vitals);
                    }
                }
            }
            _ => room.seq = seq,
        }
        match &message {
            ServerMessage::Snapshot(s) => {
                room.name = s.room.clone();
                room.snapshot_seq = seq;
                // Readings applied that are newer than the snapshot stay.
                let newer: Vec<_> = room
                    .state
                    .vitals
                    .iter()
                    .filter(|v| room.reading_seq(&v.reading.device, v.reading.vital) > Some(seq))
                    .cloned()
                    .collect();
                room.state = (**s).clone();
                for kept in newer {
                    let vitals = &mut room.state.vitals;
                    vitals.retain(|v| {
                        v.reading.device != kept.reading.device
                            || v.reading.vital != kept.reading.vital
                    });
                    vitals.push(kept);
                }
                room.has_snapshot = true;
                // Readings numbered up to the snapshot are judged by it: their own positions
                // go, so ever-new device ids between snapshots cannot grow them (X3).
                room.reading_seqs.retain(|_, vitals| {
                    vitals.retain(|_, at| *at > seq);
                    !vitals.is_empty()
                });
                // The central's alarm goes with the room's state to the displays.
                let state = room.display_state();
                return Ok(Some(with_room(
                    &ServerMessage::Snapshot(Box::new(state)),
                    room_id,
                )));
            }
            ServerMessage::Reading { reading, .. } => {
                let vitals = &mut room.state.vitals;
                let latest = vigil_protocol::display::LatestVital {
                    reading: reading.clone(),
                    age_s: 0.0,
                };
                match vitals.iter_mut().find(|v| {
                    v.reading.device == reading.device && v.reading.vital == reading.vital
                }) {
                    Some(v) => *v = latest,
                    None => vitals.push(latest),
                }
            }
            ServerMessage::Alarm { alarm, .. } => {
                let alarms = &mut room.state.alarms;
                alarms.retain(|a| a.id != alarm.id);
                if alarm.state != "cleared" {
                    alarms.push(alarm.clone());
                }
            }
            ServerMessage::Device {
                device,
                link,
                reason,
                ..
            } => match room.state.devices.iter_mut().find(|d| &d.device == device) {
                Some(d) => {
                    d.link = *link;
                    d.reason = reason.clone();
                }
                None => room
                    .state
                    .devices
                    .push(vigil_protocol::display::DeviceInfo {
                        device: device.clone(),
                        format: String::new(),
                        link: *link,
                        reason: reason.clone(),
                        battery: None,
                        commands: Vec::new(),
                    }),
            },
            ServerMessage::Session { session, .. } => room.state.session = session.clone(),
            ServerMessage::AudioPause { remaining_s, .. } => {
                room.state.audio_pause_remaining_s = *remaining_s
            }
            _ => {}
        }
        Ok(Some(with_room(&message, room_id)))
    }

    /// A room's answer to the central's snapshot request (`payload`, its display `snapshot`):
    /// the room's state for a room the stream has given no snapshot of yet (none stored, or
    /// aged out), and ignored otherwise. It never moves the stream's position: a live snapshot
    /// is newer than what the durable consumer may still deliver, and taking its `seq` would
    /// make the central drop those stored alarm steps as already applied (a step raised and
    /// ended meanwhile would never reach a display). Stored messages after it apply in the
    /// stream's order.
    pub fn apply_live_snapshot(
        &mut self,
        room_id: &str,
        payload: &[u8],
        now: Instant,
    ) -> Result<Option<String>, Malformed> {
        let ServerMessage::Snapshot(snapshot) = parse(payload)? else {
            return Err(Malformed::NotJson(
                "the answer to a snapshot request is not a snapshot".into(),
            ));
        };
        check_size(&snapshot)?;
        snapshot.alarms.iter().try_for_each(check_alarm)?;
        let room = self.room(room_id, now)?;
        if room.has_snapshot {
            return Ok(None);
        }
        room.name = snapshot.room.clone();
        room.state = *snapshot;
        room.has_snapshot = true;
        let state = room.display_state();
        Ok(Some(with_room(
            &ServerMessage::Snapshot(Box::new(state)),
            room_id,
        )))
    }

    /// The `rooms` message a display starts from: every room with its link and state.
    pub fn rooms_message(&self, user: &UserInfo, utc: &str) -> String {
        let rooms: Vec<Value> = self
            .rooms
            .iter()
            .map(|(id, room)| {
                let mut entry = Map::new();
                entry.insert("room".into(), Value::String(id.clone()));
                entry.insert("name".into(), Value::String(room.name.clone()));
                entry.insert(
                    "link".into(),
                    serde_json::to_value(room.link).unwrap_or(Value::Null),
                );
                entry.insert(
                    "state".into(),
                    serde_json::to_value(room.display_state()).unwrap_or(Value::Null),
                );
                Value::Object(entry)
            })
            .collect();
        serde_json::json!({
            "v": vigil_protocol::display::VERSION,
            "type": "rooms",
            "user": user,
            "server_time": utc,
            "rooms": rooms,
        })
        .to_string()
    }
}
