//! Where each key is in a configuration's text, so that every problem carries the byte range it
//! is about ([`super::ConfigError::span`]) for editors and tools. `vigil check-config` prints
//! key paths, as it always has; the spans are beside them.

use std::collections::HashMap;
use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Byte ranges in the text by key path, spelt as the messages spell them without entry names:
/// `storage.path`, `user #2`, `user #2.role`, `device #1.ble.name`, `allowed_origins #3`.
#[derive(Debug, Default)]
pub(super) struct Spans(HashMap<String, Range<usize>>);

impl Spans {
    /// The spans of `text`; none when it is not TOML (that problem has no key).
    pub(super) fn of(text: &str) -> Spans {
        let mut spans = Spans::default();
        if let Ok(doc) = DeTable::parse(text) {
            spans.table("", doc.get_ref());
        }
        spans
    }

    /// The range of the key path `key`, if the text has it.
    pub(super) fn get(&self, key: &str) -> Option<Range<usize>> {
        self.0.get(key).cloned()
    }

    fn table(&mut self, prefix: &str, table: &DeTable<'_>) {
        for (key, value) in table {
            let path = format!("{prefix}{}", key.get_ref());
            // `key = value`, or a whole `[table]` / `[[table]]` entry.
            let (k, v) = (key.span(), value.span());
            let whole = k.start.min(v.start)..k.end.max(v.end);
            self.0.insert(path.clone(), whole);
            self.value(&path, value);
        }
    }

    fn value(&mut self, path: &str, value: &Spanned<DeValue<'_>>) {
        match value.get_ref() {
            DeValue::Table(t) => self.table(&format!("{path}."), t),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let entry = format!("{path} #{}", i + 1);
                    self.0.insert(entry.clone(), item.span());
                    self.value(&entry, item);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    /// Each problem about a key the file has points at that key's text; one about a missing
    /// key has no span.
    #[test]
    fn every_problem_points_at_its_text() {
        let text = "listen = \"localhost\"\n\
            [storage]\n\
            path = \"vigil.db\"\n\
            retention_days = 0\n\
            [[user]]\n\
            name = \"A\"\n\
            role = \"janitor\"\n\
            token = \"user-token-0123456789\"\n\
            [[device]]\n\
            id = \"cuff-1\"\n\
            format = \"suntech\"\n\
            port = \"/dev/ttyUSB0\"\n\
            ble = { colour = \"blue\" }\n\
            [[device]]\n\
            id = \"ox\"\n\
            format = \"philips\"\n\
            allowed_origins = [\"https://ok.example\", 3]\n";
        let errors = Config::parse(text, "vigil.toml", &std::env::temp_dir())
            .unwrap_err()
            .0;
        let at = |location: &str| {
            let e = errors
                .iter()
                .find(|e| e.location == format!("vigil.toml: {location}"))
                .unwrap_or_else(|| panic!("no {location:?} in {errors:#?}"));
            e.span.clone().map(|s| &text[s])
        };
        assert_eq!(at("listen"), Some("listen = \"localhost\""));
        assert_eq!(at("storage.retention_days"), Some("retention_days = 0"));
        assert_eq!(at("user #1 \"A\".role"), Some("role = \"janitor\""));
        assert_eq!(
            at("device #1 \"cuff-1\".ble"),
            Some("ble = { colour = \"blue\" }")
        );
        assert_eq!(at("device #2 \"ox\".format"), Some("format = \"philips\""));
        assert_eq!(
            at("device #2 \"ox\".allowed_origins"),
            Some("allowed_origins = [\"https://ok.example\", 3]")
        );
        assert_eq!(at("room"), None);
    }
}
