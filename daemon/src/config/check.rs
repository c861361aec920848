//! The checker the validation pass reports through: typed reads of the document's values, each
//! problem with its location (and its span in the text, when there is one).

use super::spans::Spans;
use super::ConfigError;

/// Collects every problem of one validation pass.
pub(super) struct Check<'a> {
    /// The file's name in messages.
    pub(super) file: String,
    /// The problems so far.
    pub(super) errors: &'a mut Vec<ConfigError>,
    /// Where each key is in the text (empty for a configuration built in code).
    pub(super) spans: &'a Spans,
    /// Inside a `[[user]]` or `[[device]]`: its prefix in messages (`user #2 "A".`) and in
    /// [`Spans`] (`user #2.`).
    pub(super) entry: Option<(String, String)>,
}

impl Check<'_> {
    pub(super) fn error(&mut self, at: impl AsRef<str>, message: impl Into<String>) {
        let at = at.as_ref();
        let key = match &self.entry {
            Some((shown, key)) => at
                .strip_prefix(shown.as_str())
                .map(|rest| format!("{key}{rest}")),
            None => None,
        };
        let span = self.spans.get(key.as_deref().unwrap_or(at));
        self.errors.push(ConfigError {
            location: format!("{}: {at}", self.file),
            message: message.into(),
            span,
        });
    }

    /// Messages from here on are about entry `n` of `[[key]]`, shown with the prefix `shown`.
    pub(super) fn enter(&mut self, key: &str, n: usize, shown: &str) {
        self.entry = Some((shown.to_string(), format!("{key} #{n}.")));
    }

    pub(super) fn string(&mut self, table: &toml::Table, key: &str, at: &str) -> Option<String> {
        match table.get(key)? {
            toml::Value::String(s) => Some(s.clone()),
            other => {
                self.error(
                    format!("{at}{key}"),
                    format!("must be a string, not {}", other.type_str()),
                );
                None
            }
        }
    }

    pub(super) fn integer(
        &mut self,
        table: &toml::Table,
        key: &str,
        at: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        match table.get(key)? {
            toml::Value::Integer(i) if range.contains(i) => Some(*i),
            toml::Value::Integer(i) => {
                self.error(
                    format!("{at}{key}"),
                    format!("{i} is outside {}..={}", range.start(), range.end()),
                );
                None
            }
            other => {
                self.error(
                    format!("{at}{key}"),
                    format!("must be an integer, not {}", other.type_str()),
                );
                None
            }
        }
    }

    /// A string value read as `T` through `T`'s own `Deserialize`. A string that is not one of
    /// `T`'s names is reported as "\"x\" is not one of {expected}", or with `T`'s own message
    /// when `expected` is `None`.
    pub(super) fn choice<T: serde::de::DeserializeOwned>(
        &mut self,
        table: &toml::Table,
        key: &str,
        at: &str,
        expected: Option<&str>,
    ) -> Option<T> {
        let text = self.string(table, key, at)?;
        let read = serde::de::value::StrDeserializer::<serde::de::value::Error>::new(&text);
        match T::deserialize(read) {
            Ok(value) => Some(value),
            Err(e) => {
                let message = match expected {
                    Some(names) => format!("{text:?} is not one of {names}"),
                    None => e.to_string(),
                };
                self.error(format!("{at}{key}"), message);
                None
            }
        }
    }

    /// As [`Check::choice`], and "is required" when the key is missing or not a string.
    pub(super) fn required_choice<T: serde::de::DeserializeOwned>(
        &mut self,
        table: &toml::Table,
        key: &str,
        at: &str,
        expected: Option<&str>,
    ) -> Option<T> {
        if let Some(toml::Value::String(_)) = table.get(key) {
            self.choice(table, key, at, expected)
        } else {
            // A value of another type is reported first, then as missing.
            self.string(table, key, at);
            self.error(format!("{at}{key}"), "is required");
            None
        }
    }

    pub(super) fn unknown_keys(&mut self, table: &toml::Table, allowed: &[&str], at: &str) {
        for key in table.keys() {
            if !allowed.contains(&key.as_str()) {
                self.error(
                    format!("{at}{key}"),
                    format!("unknown key; expected one of {}", allowed.join(", ")),
                );
            }
        }
    }
}

pub(super) fn tables<'a>(
    doc: &'a toml::Table,
    key: &str,
    c: &mut Check<'_>,
) -> Vec<(usize, &'a toml::Table)> {
    match doc.get(key) {
        None => Vec::new(),
        Some(toml::Value::Array(a)) => a
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v.as_table() {
                Some(t) => Some((i + 1, t)),
                None => {
                    c.error(format!("{key} #{}", i + 1), "must be a table");
                    None
                }
            })
            .collect(),
        Some(_) => {
            c.error(key, format!("write entries as [[{key}]] tables"));
            Vec::new()
        }
    }
}
