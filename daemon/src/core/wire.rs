//! Wire names: the one way the daemon spells the engine's and the protocol's enums (priority,
//! state, change, kind, link state, unavailable reason, session phase, ...) as text, and reads
//! them back. The name is the enum's serde name (`#[serde(rename_all = "snake_case")]`), so the
//! display encoder, the record writer and the record's readers can never spell one differently.

use serde::de::IntoDeserializer;

/// A name read back (from the record) that is not one of the enum's: a typed error, never a
/// default.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`")]
pub struct UnknownName {
    /// What the name should have named (`priority`, `alarm state`, ...).
    pub what: &'static str,
    /// The name as it was stored.
    pub name: String,
}

/// The name a unit enum has on the wire (`high`, `acknowledged`, `sensor_off`): its serde name.
pub fn wire_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// The name an internally tagged enum (`#[serde(tag = "...")]`) writes in its `tag` field:
/// `post_dose` for `SessionPhase::PostDose { .. }`.
pub fn wire_tag<T: serde::Serialize>(value: &T, tag: &str) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(mut fields)) => match fields.remove(tag) {
            Some(serde_json::Value::String(name)) => name,
            _ => String::new(),
        },
        _ => String::new(),
    }
}

/// The unit enum value a wire name names; `what` says what it should be, for the error.
pub fn from_wire_name<T: serde::de::DeserializeOwned>(
    what: &'static str,
    name: &str,
) -> Result<T, UnknownName> {
    T::deserialize(IntoDeserializer::<serde::de::value::Error>::into_deserializer(name)).map_err(
        |_| UnknownName {
            what,
            name: name.to_string(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_alarm::{AlarmChange, AlarmKind, AlarmState, PauseEnd, Priority};
    use vigil_protocol::display::LinkState;
    use vigil_protocol::Unavailable;

    fn round_trip<T>(what: &'static str, all: &[T], names: &[&str])
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let spelled: Vec<String> = all.iter().map(wire_name).collect();
        assert_eq!(spelled, names);
        for (value, name) in all.iter().zip(names) {
            assert_eq!(&from_wire_name::<T>(what, name).unwrap(), value);
        }
    }

    /// Every name written is read back as the same value, for each enum the record stores.
    #[test]
    fn every_wire_name_reads_back_as_what_wrote_it() {
        use Priority::*;
        round_trip(
            "priority",
            &[Info, Low, Medium, High],
            &["info", "low", "medium", "high"],
        );
        use AlarmState::*;
        round_trip(
            "alarm state",
            &[Pending, Active, Acknowledged, Latched, Cleared],
            &["pending", "active", "acknowledged", "latched", "cleared"],
        );
        round_trip(
            "alarm change",
            &[
                AlarmChange::Raised,
                AlarmChange::Escalated,
                AlarmChange::Acknowledged,
                AlarmChange::Cleared,
                AlarmChange::Reset,
            ],
            &["raised", "escalated", "acknowledged", "cleared", "reset"],
        );
        round_trip(
            "alarm kind",
            &[AlarmKind::Physiological, AlarmKind::Technical],
            &["physiological", "technical"],
        );
        round_trip(
            "pause end",
            &[PauseEnd::Expired, PauseEnd::NewCondition],
            &["expired", "new_condition"],
        );
        round_trip(
            "link state",
            &[LinkState::Connecting, LinkState::SensorOff],
            &["connecting", "sensor_off"],
        );
        round_trip(
            "unavailable reason",
            &[Unavailable::NotANumber, Unavailable::FlaggedInvalid],
            &["not_a_number", "flagged_invalid"],
        );
    }

    /// A tagged enum is named by its tag, whatever else its variant carries.
    #[test]
    fn a_session_phase_is_named_by_its_tag() {
        use vigil_alarm::SessionPhase;
        assert_eq!(wire_tag(&SessionPhase::PreDose, "phase"), "pre_dose");
        let after = SessionPhase::PostDose {
            minutes_since_dose: 12,
        };
        assert_eq!(wire_tag(&after, "phase"), "post_dose");
    }

    /// A stored name that is none of the enum's is an error naming it: an unknown priority is
    /// never read as `info` (or anything else).
    #[test]
    fn an_unknown_name_is_a_typed_error_naming_it() {
        let e = from_wire_name::<Priority>("priority", "urgent").unwrap_err();
        assert_eq!(
            e,
            UnknownName {
                what: "priority",
                name: "urgent".into()
            }
        );
        assert_eq!(e.to_string(), "unknown priority `urgent`");
        assert!(from_wire_name::<Priority>("priority", "High").is_err());
        assert!(from_wire_name::<AlarmState>("alarm state", "").is_err());
    }
}
