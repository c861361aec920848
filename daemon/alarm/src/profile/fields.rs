//! Reading a profile's values, each problem located in the layer that wrote the value.

use super::load::Origin;
use super::{Priority, ProfileError};
use std::time::Duration;
use vigil_protocol::Vital;

/// Reads one rule's or the behaviour table's fields, recording problems with their location.
pub(crate) struct Fields<'a> {
    /// The table, with every override applied.
    pub table: &'a toml::Table,
    /// `behaviour` or the rule id.
    pub scope: &'a str,
    /// Where the table is in the base profile.
    pub location: String,
    /// Which layer wrote each value.
    pub(crate) origin: &'a Origin<'a>,
    /// Problems found so far.
    pub errors: &'a mut Vec<ProfileError>,
}

impl Fields<'_> {
    /// A problem with `key`, located in the layer that wrote it (an override names its file and
    /// key, not the base profile's rule).
    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        let location = self
            .origin
            .locate(self.scope, key, || format!("{}.{key}", self.location));
        self.errors.push(ProfileError {
            location,
            message: message.into(),
        });
    }

    pub fn str(&mut self, key: &str) -> Option<String> {
        match self.table.get(key)? {
            toml::Value::String(s) => Some(s.clone()),
            other => {
                self.error(key, format!("must be a string, not {}", other.type_str()));
                None
            }
        }
    }

    pub fn number(&mut self, key: &str, range: std::ops::RangeInclusive<f64>) -> Option<f64> {
        let v = match self.table.get(key)? {
            toml::Value::Integer(i) => *i as f64,
            toml::Value::Float(f) => *f,
            other => {
                self.error(key, format!("must be a number, not {}", other.type_str()));
                return None;
            }
        };
        if !range.contains(&v) {
            self.error(
                key,
                format!(
                    "{v} is outside the allowed range {} to {}",
                    range.start(),
                    range.end()
                ),
            );
            return None;
        }
        Some(v)
    }

    /// A limit, whose allowed range depends on the rule's `vital`. When an override changed the
    /// vital but not the limit, the problem is that override's vital, and is reported there.
    pub fn limit(&mut self, key: &str, range: std::ops::RangeInclusive<f64>) -> Option<f64> {
        let v = self.number(key, f64::NEG_INFINITY..=f64::INFINITY)?;
        if range.contains(&v) {
            return Some(v);
        }
        let overridden = |f: &Self, k: &str| !f.origin.locate(f.scope, k, String::new).is_empty();
        let (at, message) = if overridden(self, "vital") && !overridden(self, key) {
            ("vital", format!("makes {key} = {v} outside the range"))
        } else {
            (key, format!("{v} is outside the allowed range"))
        };
        self.error(
            at,
            format!("{message} {} to {}", range.start(), range.end()),
        );
        None
    }

    pub fn required_number(
        &mut self,
        key: &str,
        range: std::ops::RangeInclusive<f64>,
    ) -> Option<f64> {
        if !self.table.contains_key(key) {
            self.error(key, "is required");
        }
        self.number(key, range)
    }

    /// A duration like "15s"; `off` gives `Some(None)` when allowed.
    pub fn duration_or_off(
        &mut self,
        key: &str,
        max: Duration,
        allow_off: bool,
    ) -> Option<Option<Duration>> {
        let text = self.str(key)?;
        if allow_off && text == "off" {
            return Some(None);
        }
        match humantime::parse_duration(&text) {
            Ok(d) if d <= max => Some(Some(d)),
            Ok(_) => {
                self.error(
                    key,
                    format!(
                        "{text} is longer than the maximum {}",
                        humantime::format_duration(max)
                    ),
                );
                None
            }
            Err(e) => {
                self.error(
                    key,
                    format!("{text:?} is not a duration like \"15s\" or \"5m\": {e}"),
                );
                None
            }
        }
    }

    pub fn duration(&mut self, key: &str, max: Duration) -> Option<Duration> {
        self.duration_or_off(key, max, false).flatten()
    }

    pub fn required_duration(&mut self, key: &str, max: Duration) -> Option<Duration> {
        if !self.table.contains_key(key) {
            self.error(key, "is required");
        }
        self.duration(key, max)
    }

    pub fn priority(&mut self, key: &str) -> Option<Priority> {
        let text = self.str(key)?;
        match text.as_str() {
            "high" => Some(Priority::High),
            "medium" => Some(Priority::Medium),
            "low" => Some(Priority::Low),
            "info" => Some(Priority::Info),
            _ => {
                self.error(
                    key,
                    format!("{text:?} is not one of high, medium, low, info"),
                );
                None
            }
        }
    }

    pub fn vitals(&mut self, key: &str) -> Option<Vec<Vital>> {
        let names: Vec<String> = match self.table.get(key) {
            None => {
                self.error(key, "is required");
                return None;
            }
            Some(toml::Value::String(s)) => vec![s.clone()],
            Some(toml::Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string).unwrap_or_default())
                .collect(),
            Some(other) => {
                self.error(
                    key,
                    format!("must be a vital name or a list, not {}", other.type_str()),
                );
                return None;
            }
        };
        let mut out = Vec::new();
        for n in names {
            match Vital::from_name(&n) {
                Some(v) => out.push(v),
                None => self.error(
                    key,
                    format!(
                        "unknown vital {n:?}; expected one of {}",
                        Vital::ALL.map(Vital::name).join(", ")
                    ),
                ),
            }
        }
        (!out.is_empty()).then_some(out)
    }
}
