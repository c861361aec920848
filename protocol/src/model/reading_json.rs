//! The JSON shape of a reading: the value flattened for readers, and the plausibility gate on
//! the way back in.

use super::{DeviceTime, Flags, Reading, Unavailable, Unit, Value, Vital};
use serde::{Deserialize, Serialize};

/// The JSON shape of a [`Reading`].
#[derive(Serialize, Deserialize)]
pub(super) struct ReadingJson {
    vital: Vital,
    value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unavailable: Option<Unavailable>,
    unit: Unit,
    mdc: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_time: Option<DeviceTime>,
    #[serde(default)]
    flags: Flags,
}

impl From<Reading> for ReadingJson {
    fn from(r: Reading) -> Self {
        let (value, unavailable) = match r.value {
            Value::Number(v) => (Some(v), None),
            Value::Unavailable(why) => (None, Some(why)),
        };
        ReadingJson {
            vital: r.vital,
            value,
            unavailable,
            unit: r.unit,
            mdc: r.mdc,
            device_time: r.device_time,
            flags: r.flags,
        }
    }
}

impl TryFrom<ReadingJson> for Reading {
    type Error = &'static str;
    fn try_from(j: ReadingJson) -> Result<Self, Self::Error> {
        let value = match (j.value, j.unavailable) {
            (Some(v), None) => Value::Number(v),
            (None, Some(why)) => Value::Unavailable(why),
            (None, None) => return Err("a reading needs a value or an unavailable reason"),
            (Some(_), Some(_)) => return Err("a reading cannot have both a value and a reason"),
        };
        Ok(Reading {
            vital: j.vital,
            value,
            unit: j.unit,
            mdc: j.mdc,
            device_time: j.device_time,
            flags: j.flags,
        }
        .checked())
    }
}
