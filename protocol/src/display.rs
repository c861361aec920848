//! The display protocol: JSON text frames over the WebSocket `/ws`, each with a `"type"` and the
//! protocol version `"v"`. Documented with an example of every message in
//! `docs/display-protocol.md`.

use crate::model::{Flags, Unavailable, Unit, Vital};
use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// A person as the display shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Display name.
    pub name: String,
    /// `viewer`, `nurse`, `provider` or `admin`.
    pub role: String,
}

/// A device's link as the display shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Opening or searching.
    Connecting,
    /// Data flowing.
    Connected,
    /// Lost.
    Disconnected,
    /// Connected but silent.
    Stale,
    /// The device reports its sensor off the patient.
    SensorOff,
}

/// One device in the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Device id.
    pub device: String,
    /// Wire format name.
    pub format: String,
    /// Link state.
    pub link: LinkState,
    /// Why, for disconnected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Last battery level, %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery: Option<u8>,
}

/// One reading as the display receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadingInfo {
    /// Device id.
    pub device: String,
    /// Vital.
    pub vital: Vital,
    /// Value in `unit`, or null.
    pub value: Option<f64>,
    /// Why the value is null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<Unavailable>,
    /// Unit.
    pub unit: Unit,
    /// IEEE 11073 code.
    pub mdc: Option<u32>,
    /// When the daemon received it (UTC, RFC 3339).
    pub at: String,
    /// Quality flags.
    #[serde(default)]
    pub flags: Flags,
}

/// The latest reading of one vital with its age.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestVital {
    /// The reading.
    #[serde(flatten)]
    pub reading: ReadingInfo,
    /// Seconds since it was received, at snapshot time.
    pub age_s: f64,
}

/// One alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmInfo {
    /// Unique per occurrence.
    pub id: String,
    /// The profile rule.
    pub rule: String,
    /// `physiological` or `technical`.
    pub kind: String,
    /// The vital concerned.
    pub vital: Option<Vital>,
    /// The device concerned.
    pub device: Option<String>,
    /// `high`, `medium`, `low`, or `info` (informational: never sounded).
    pub priority: String,
    /// What to show.
    pub message: String,
    /// `pending`, `active`, `acknowledged`, `latched` or `cleared`.
    pub state: String,
    /// When it was raised (UTC, RFC 3339).
    pub since: String,
    /// Who acknowledged this occurrence.
    pub acknowledged_by: Option<String>,
    /// When (UTC, RFC 3339).
    pub acknowledged_at: Option<String>,
    /// Holds after its condition ends until reset.
    pub latching: bool,
    /// A high BP waits for a confirming repeat.
    #[serde(default)]
    pub awaiting_confirmation: bool,
    /// The latest value that bore on it.
    pub value: Option<f64>,
}

/// The session as the display shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// `pre_dose` or `post_dose`.
    pub phase: String,
    /// When the dose was marked (UTC, RFC 3339).
    pub dose_at: Option<String>,
    /// Who marked it.
    pub dose_by: Option<String>,
    /// Whole minutes since the dose.
    pub minutes_since_dose: Option<u64>,
    /// The session's baseline BP.
    pub baseline: Option<BpInfo>,
    /// When the baseline measurement was taken (UTC, RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_taken_at: Option<String>,
    /// Who set the baseline with `set_baseline`; absent when the dose mark fixed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_set_by: Option<String>,
    /// Why there is no baseline, once the dose was marked without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_missing: Option<String>,
}

/// A BP pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BpInfo {
    /// Systolic, mmHg.
    pub systolic: f64,
    /// Diastolic, mmHg.
    pub diastolic: f64,
}

/// One vital's trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendSeries {
    /// Device id.
    pub device: String,
    /// Vital.
    pub vital: Vital,
    /// `[unix milliseconds, value]` pairs, oldest first.
    pub points: Vec<(i64, f64)>,
}

/// The trend section of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Minutes covered.
    pub minutes: u32,
    /// Seconds between points.
    pub resolution_s: u32,
    /// One series per device and vital.
    pub series: Vec<TrendSeries>,
}

/// An alarm limit, for drawing on the trend chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitLine {
    /// The rule.
    pub rule: String,
    /// The vital it watches.
    pub vital: Vital,
    /// `below` or `above`.
    pub side: String,
    /// The limit, in the vital's unit.
    pub value: f64,
    /// The rule's priority.
    pub priority: String,
}

/// Everything a display needs to draw the room from nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Room name.
    pub room: String,
    /// Who this display is signed in as.
    pub user: UserInfo,
    /// The daemon's clock (UTC, RFC 3339), for computing ages.
    pub server_time: String,
    /// The last broadcast sequence number included; later messages have higher numbers.
    pub seq: u64,
    /// Session state.
    pub session: SessionInfo,
    /// Devices and their links.
    pub devices: Vec<DeviceInfo>,
    /// Latest value of each vital of each device.
    pub vitals: Vec<LatestVital>,
    /// Every alarm, highest priority first.
    pub alarms: Vec<AlarmInfo>,
    /// Seconds of audio pause left, if paused.
    pub audio_pause_remaining_s: Option<f64>,
    /// Recent trend.
    pub trend: Trend,
    /// The alarm limits in force, for the trend chart.
    #[serde(default)]
    pub limits: Vec<LimitLine>,
    /// The room's link to the central station (`connected` or `disconnected`); absent when the
    /// room has no `[central]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub central: Option<String>,
}

/// A message from the daemon to a display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First message of every connection, and after a display fell behind.
    Snapshot(Box<Snapshot>),
    /// A new reading.
    Reading {
        /// Broadcast sequence number.
        seq: u64,
        /// The reading.
        #[serde(flatten)]
        reading: ReadingInfo,
    },
    /// An alarm changed.
    Alarm {
        /// Broadcast sequence number.
        seq: u64,
        /// `raised`, `escalated`, `acknowledged`, `cleared` or `reset`.
        event: String,
        /// The alarm after the change.
        alarm: AlarmInfo,
    },
    /// A device's link changed.
    Device {
        /// Broadcast sequence number.
        seq: u64,
        /// Device id.
        device: String,
        /// New state.
        link: LinkState,
        /// Why, for disconnected.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The session changed (dose marked) or asks for something (a repeat NIBP).
    Session {
        /// Broadcast sequence number.
        seq: u64,
        /// `dose_marked` or `nibp_requested`.
        event: String,
        /// Session state after it.
        session: SessionInfo,
        /// Who did it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        /// Words for the display.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Audio pause started or ended.
    AudioPause {
        /// Broadcast sequence number.
        seq: u64,
        /// Whether audio is paused now.
        paused: bool,
        /// Seconds left.
        remaining_s: Option<f64>,
        /// Who paused it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        /// Why it ended: `expired` or `new_condition`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The room's link to the central station changed.
    Central {
        /// Broadcast sequence number.
        seq: u64,
        /// `connected` or `disconnected`.
        link: String,
    },
    /// At least once a second: the daemon is alive.
    Heartbeat {
        /// Broadcast sequence number.
        seq: u64,
        /// The daemon's clock (UTC, RFC 3339).
        at: String,
    },
    /// A longer trend, answering a `trend` request.
    Trend {
        /// The request's id, if it had one.
        request_id: Option<String>,
        /// The trend.
        trend: Trend,
    },
    /// A request succeeded.
    Result {
        /// The request's id, if it had one.
        request_id: Option<String>,
        /// What was done, e.g. `ack`.
        action: String,
    },
    /// A request failed or a message was not understood.
    Error {
        /// The request's id, if known.
        request_id: Option<String>,
        /// Machine-readable: `bad_message`, `forbidden`, `rate_limited`, `refused`, ...
        code: String,
        /// For a person.
        reason: String,
    },
}

impl ServerMessage {
    /// The frame's text: the message with the protocol version `"v"` beside its `"type"`.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Envelope<'a> {
            v: u32,
            #[serde(flatten)]
            message: &'a ServerMessage,
        }
        serde_json::to_string(&Envelope {
            v: VERSION,
            message: self,
        })
        // These types have only string keys and finite-or-null numbers; a failure here would be
        // a bug, and an error frame is the safe thing to send.
        .unwrap_or_else(|e| {
            format!(r#"{{"v":{VERSION},"type":"error","request_id":null,"code":"internal","reason":"{e}"}}"#)
        })
    }
}

/// A message from a display to the daemon. Every one may carry a `request_id`, echoed in the
/// `result` or `error` that answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Acknowledge an alarm's current occurrence.
    Ack {
        /// The alarm.
        alarm_id: String,
        /// Echoed in the answer.
        #[serde(default)]
        request_id: Option<String>,
    },
    /// Pause audio (at most the profile's maximum, 2 minutes by default).
    PauseAudio {
        /// Requested seconds; the maximum when absent.
        #[serde(default)]
        seconds: Option<f64>,
        /// Echoed in the answer.
        #[serde(default)]
        request_id: Option<String>,
    },
    /// Reset a latched alarm.
    Reset {
        /// The alarm.
        alarm_id: String,
        /// Echoed in the answer.
        #[serde(default)]
        request_id: Option<String>,
    },
    /// Mark the dose: fixes the baseline and starts the session clock.
    MarkDose {
        /// Echoed in the answer.
        #[serde(default)]
        request_id: Option<String>,
    },
    /// Set the session's baseline from a later complete valid BP measurement, when the dose was
    /// marked without one (a provider or nurse).
    SetBaseline {
        /// When the measurement was taken, as the display received it (UTC, RFC 3339).
        reading_time: String,
        /// Echoed in the answer.
        #[serde(default)]
        request_id: Option<String>,
    },
    /// Start an NIBP measurement on a device.
    StartNibp {
        /// The device.
        device: String,
        /// Echoed in the answer.
        #[serde(default)]
        request_id: Option<String>,
    },
    /// Ask for a longer trend (any role may).
    Trend {
        /// Minutes, 1 to 480.
        minutes: u32,
        /// Echoed in the answer.
        #[serde(default)]
        request_id: Option<String>,
    },
}

impl ClientMessage {
    /// The request id, if any.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            ClientMessage::Ack { request_id, .. }
            | ClientMessage::PauseAudio { request_id, .. }
            | ClientMessage::Reset { request_id, .. }
            | ClientMessage::MarkDose { request_id }
            | ClientMessage::SetBaseline { request_id, .. }
            | ClientMessage::StartNibp { request_id, .. }
            | ClientMessage::Trend { request_id, .. } => request_id.as_deref(),
        }
    }

    /// The action name used in `result` messages.
    pub fn action(&self) -> &'static str {
        match self {
            ClientMessage::Ack { .. } => "ack",
            ClientMessage::PauseAudio { .. } => "pause_audio",
            ClientMessage::Reset { .. } => "reset",
            ClientMessage::MarkDose { .. } => "mark_dose",
            ClientMessage::SetBaseline { .. } => "set_baseline",
            ClientMessage::StartNibp { .. } => "start_nibp",
            ClientMessage::Trend { .. } => "trend",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_and_reject_unknowns() {
        let ack: ClientMessage =
            serde_json::from_str(r#"{"type":"ack","alarm_id":"spo2-low#3","request_id":"r1"}"#)
                .unwrap();
        assert_eq!(ack.request_id(), Some("r1"));
        assert_eq!(ack.action(), "ack");
        let pause: ClientMessage = serde_json::from_str(r#"{"type":"pause_audio"}"#).unwrap();
        assert_eq!(
            pause,
            ClientMessage::PauseAudio {
                seconds: None,
                request_id: None
            }
        );
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"launch"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"ack"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(
            r#"{"type":"ack","alarm_id":"x","extra":1}"#
        )
        .is_err());
    }

    #[test]
    fn server_messages_carry_their_type() {
        let hb = ServerMessage::Heartbeat {
            seq: 7,
            at: "2026-11-23T10:00:00.000Z".into(),
        };
        let json: serde_json::Value = serde_json::from_str(&hb.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"v":1,"type":"heartbeat","seq":7,"at":"2026-11-23T10:00:00.000Z"})
        );
        let back: ServerMessage = serde_json::from_value(json).unwrap();
        assert_eq!(back, hb);
    }
}
