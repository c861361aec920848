//! Loading a profile: parsing each layer, applying overrides, recording which layer set each
//! value, and attributing every problem to the layer and key that caused it.

use super::{envelope, validate, Behaviour, Rule, KAP_DEFAULT};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// Which layer set each `(scope, key)`: scope is `behaviour` or a rule id.
pub(crate) type Sources = BTreeMap<(String, String), Source>;

/// Where values came from: the base layer and the source of every setting.
pub(crate) struct Origin<'a> {
    /// The full profile the overrides apply to.
    pub base: &'a Source,
    /// The layer that set each value.
    pub sources: &'a Sources,
}

impl Origin<'_> {
    /// Where `scope.key` is written: in the override layer that set it (as `rules.<id>.<key>` or
    /// `behaviour.<key>`, the way the override file spells it), or else `in_base`, a place in
    /// the base profile. So a problem an override caused names that override's file and key.
    pub fn locate(&self, scope: &str, key: &str, in_base: impl FnOnce() -> String) -> String {
        match self.sources.get(&(scope.to_string(), key.to_string())) {
            Some(source) if source != self.base => {
                if scope == "behaviour" {
                    format!("{source}: behaviour.{key}")
                } else {
                    format!("{source}: rules.{scope}.{key}")
                }
            }
            _ => in_base(),
        }
    }
}

/// Where a layer of the profile came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "level", content = "name")]
pub enum Source {
    /// The profile shipped with Vigil.
    Default,
    /// A clinic's profile or override file.
    Clinic(String),
    /// A patient's override file.
    Patient(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("built-in default"),
            Source::Clinic(n) => write!(f, "clinic {n}"),
            Source::Patient(n) => write!(f, "patient {n}"),
        }
    }
}

/// One TOML document and where it came from.
#[derive(Debug, Clone)]
pub struct Layer<'a> {
    /// Its origin.
    pub source: Source,
    /// Its text.
    pub text: &'a str,
}

/// The effective value of one setting and which layer set it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    /// `behaviour` or a rule id.
    pub scope: String,
    /// The key.
    pub key: String,
    /// The value, as TOML.
    pub value: String,
    /// The layer that set it.
    pub source: Source,
}

/// A validated profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The profile's name.
    pub name: String,
    /// Profile-wide behaviour.
    pub behaviour: Behaviour,
    /// The rules, in file order.
    pub rules: Vec<Rule>,
    /// Every setting with its effective value and source, for display and audit.
    pub settings: Vec<Setting>,
}

/// One problem in a profile, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    /// Which layer, and where in it.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Every problem found in a profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ProfileErrors(pub Vec<ProfileError>);

impl fmt::Display for ProfileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the alarm profile:", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl Profile {
    /// The shipped KAP profile with no overrides.
    pub fn kap_default() -> Result<Profile, ProfileErrors> {
        Profile::load(
            Layer {
                source: Source::Default,
                text: KAP_DEFAULT,
            },
            &[],
        )
    }

    /// Loads a full profile, applies override layers in order, validates the result and holds
    /// it against the safety envelope. Every problem is reported, each naming the layer (file)
    /// and key that caused it.
    pub fn load(base: Layer<'_>, overrides: &[Layer<'_>]) -> Result<Profile, ProfileErrors> {
        let mut errors = Vec::new();
        let mut doc = match parse(&base) {
            Ok(t) => t,
            Err(e) => return Err(ProfileErrors(vec![e])),
        };
        let mut sources = Sources::new();
        record_sources(&doc, &base.source, &mut sources);
        for layer in overrides {
            match parse(layer) {
                Ok(t) => apply_override(&mut doc, &t, layer, &mut sources, &mut errors),
                Err(e) => errors.push(e),
            }
        }
        let origin = Origin {
            base: &base.source,
            sources: &sources,
        };
        let profile = validate(&doc, &origin, &mut errors);
        let written: Vec<&str> = rule_tables(&doc)
            .into_iter()
            .filter_map(|t| t.get("id").and_then(|v| v.as_str()))
            .collect();
        envelope::check(&profile, &written, &origin, &mut errors);
        if errors.is_empty() {
            Ok(profile)
        } else {
            Err(ProfileErrors(errors))
        }
    }

    /// The shipped default as written, validated but not held against the envelope: the
    /// envelope's own reference for which rules exist and what they watch.
    pub(super) fn kap_default_unchecked() -> Result<Profile, ProfileErrors> {
        let source = Source::Default;
        let doc = parse(&Layer {
            source: source.clone(),
            text: KAP_DEFAULT,
        })
        .map_err(|e| ProfileErrors(vec![e]))?;
        let mut sources = Sources::new();
        record_sources(&doc, &source, &mut sources);
        let mut errors = Vec::new();
        let profile = validate(
            &doc,
            &Origin {
                base: &source,
                sources: &sources,
            },
            &mut errors,
        );
        if errors.is_empty() {
            Ok(profile)
        } else {
            Err(ProfileErrors(errors))
        }
    }

    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}

fn parse(layer: &Layer<'_>) -> Result<toml::Table, ProfileError> {
    layer.text.parse::<toml::Table>().map_err(|e| ProfileError {
        location: layer.source.to_string(),
        message: format!("not valid TOML: {}", e.to_string().trim()),
    })
}

pub(super) fn rule_tables(doc: &toml::Table) -> Vec<&toml::Table> {
    doc.get("rule")
        .and_then(|r| r.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_table()).collect())
        .unwrap_or_default()
}

fn record_sources(doc: &toml::Table, source: &Source, sources: &mut Sources) {
    if let Some(b) = doc.get("behaviour").and_then(|b| b.as_table()) {
        for k in b.keys() {
            sources.insert(("behaviour".into(), k.clone()), source.clone());
        }
    }
    for t in rule_tables(doc) {
        if let Some(id) = t.get("id").and_then(|v| v.as_str()) {
            for k in t.keys() {
                sources.insert((id.to_string(), k.clone()), source.clone());
            }
        }
    }
}

/// Applies `[rules.<id>]` and `[behaviour]` tables of an override layer.
fn apply_override(
    doc: &mut toml::Table,
    layer_doc: &toml::Table,
    layer: &Layer<'_>,
    sources: &mut Sources,
    errors: &mut Vec<ProfileError>,
) {
    let at = |path: &str| format!("{}: {path}", layer.source);
    for (key, value) in layer_doc {
        match (key.as_str(), value) {
            ("behaviour", toml::Value::Table(changes)) => {
                let entry = doc
                    .entry("behaviour")
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let Some(behaviour) = entry.as_table_mut() {
                    for (k, v) in changes {
                        behaviour.insert(k.clone(), v.clone());
                        sources.insert(("behaviour".into(), k.clone()), layer.source.clone());
                    }
                }
            }
            ("rules", toml::Value::Table(rules)) => {
                for (id, changes) in rules {
                    let Some(changes) = changes.as_table() else {
                        errors.push(ProfileError {
                            location: at(&format!("rules.{id}")),
                            message: "must be a table of values to change".into(),
                        });
                        continue;
                    };
                    if changes.contains_key("id") || changes.contains_key("type") {
                        errors.push(ProfileError {
                            location: at(&format!("rules.{id}")),
                            message: "an override cannot change a rule's id or type".into(),
                        });
                        continue;
                    }
                    let target =
                        doc.get_mut("rule")
                            .and_then(|r| r.as_array_mut())
                            .and_then(|rules| {
                                rules.iter_mut().filter_map(|r| r.as_table_mut()).find(|r| {
                                    r.get("id").and_then(|v| v.as_str()) == Some(id.as_str())
                                })
                            });
                    match target {
                        Some(rule) => {
                            for (k, v) in changes {
                                rule.insert(k.clone(), v.clone());
                                sources.insert((id.clone(), k.clone()), layer.source.clone());
                            }
                        }
                        None => errors.push(ProfileError {
                            location: at(&format!("rules.{id}")),
                            message: "no rule with this id in the profile".into(),
                        }),
                    }
                }
            }
            (other, _) => errors.push(ProfileError {
                location: at(other),
                message: "an override file holds only [behaviour] and [rules.<id>] tables".into(),
            }),
        }
    }
}

/// Every setting written in the profile, with its effective value and the layer that set it:
/// behaviour first, then the rules in file order.
pub(super) fn settings(doc: &toml::Table, origin: &Origin<'_>) -> Vec<Setting> {
    let mut scopes: Vec<(String, &toml::Table)> = Vec::new();
    if let Some(b) = doc.get("behaviour").and_then(|b| b.as_table()) {
        scopes.push(("behaviour".into(), b));
    }
    for t in rule_tables(doc) {
        if let Some(id) = t.get("id").and_then(|v| v.as_str()) {
            scopes.push((id.to_string(), t));
        }
    }
    let mut out = Vec::new();
    for (scope, table) in scopes {
        for (key, value) in table {
            let source = origin
                .sources
                .get(&(scope.clone(), key.clone()))
                .unwrap_or(origin.base);
            out.push(Setting {
                scope: scope.clone(),
                key: key.clone(),
                value: toml_text(value),
                source: source.clone(),
            });
        }
    }
    out
}

/// A setting's value as it would be written in TOML (without the `display` feature's weight).
fn toml_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(a) => format!(
            "[{}]",
            a.iter().map(toml_text).collect::<Vec<_>>().join(", ")
        ),
        other => other.type_str().to_string(),
    }
}
