//! Which OBX-3 codes are which vitals: data, not code. The IEEE 11073-10101 (MDC) codes of IHE
//! PCD-01 are built in; a vendor's own codes come from a table (a TOML file the daemon loads,
//! see `docs/hl7/`), so a clinic adds a monitor without a rebuild.

use crate::model::{mdc, Unit, Vital};
use serde::Deserialize;

/// One row of a code table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeEntry {
    /// The identifier in OBX-3 component 1, e.g. `150456`.
    pub code: String,
    /// The coding system in OBX-3 component 3, e.g. `MDC` or a vendor's name; matched
    /// case-insensitively. Empty matches an OBX-3 without a coding system.
    pub coding_system: String,
    /// The vital's name (`spo2`, `pulse_rate`, `etco2`, ...).
    pub vital: String,
    /// The unit the value is in when OBX-6 is empty (`%`, `bpm`, `mmHg`, `kPa`, ...).
    pub unit: String,
    /// A factor the value is multiplied by (for a vendor that sends tenths, say).
    #[serde(default)]
    pub scale: Option<f64>,
}

/// A vendor table file: `[[code]]` rows.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeTableFile {
    /// The rows.
    pub code: Vec<CodeEntry>,
}

/// Why a code table row cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeTableError {
    /// The vital name is not one Vigil has.
    #[error("row {row} (code {code:?}): unknown vital {vital:?}")]
    UnknownVital {
        /// 1-based row.
        row: usize,
        /// The row's code.
        code: String,
        /// The name given.
        vital: String,
    },
    /// The unit is not one Vigil reads.
    #[error("row {row} (code {code:?}): unknown unit {unit:?}")]
    UnknownUnit {
        /// 1-based row.
        row: usize,
        /// The row's code.
        code: String,
        /// The unit given.
        unit: String,
    },
    /// The scale is not a finite positive number.
    #[error("row {row} (code {code:?}): scale must be a positive number")]
    BadScale {
        /// 1-based row.
        row: usize,
        /// The row's code.
        code: String,
    },
    /// The code is empty.
    #[error("row {row}: code is empty")]
    EmptyCode {
        /// 1-based row.
        row: usize,
    },
}

/// What a code maps to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mapping {
    /// The vital.
    pub vital: Vital,
    /// The unit when OBX-6 gives none. None for a built-in pressure code: a pressure may be in
    /// mmHg or kPa, and 6.5 kPa of EtCO2 taken as 6.5 mmHg would never alarm (V2), so without
    /// its unit it is no number to alarm on. A vendor row says its unit.
    pub unit: Option<Unit>,
    /// Multiplier.
    pub scale: f64,
}

/// The codes a device's messages are read with: the built-in MDC rows, then its vendor rows.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeTable {
    rows: Vec<(String, String, Mapping)>,
}

/// The built-in MDC rows (IHE PCD-01): code, vital name, unit. Every code was checked against
/// the IEEE 11073-10101 nomenclature (partition 2 × 65536 + term code).
const MDC_ROWS: &[(u32, &str, &str)] = &[
    (mdc::PULS_OXIM_SAT_O2, "spo2", "%"),
    (mdc::PULS_OXIM_PULS_RATE, "pulse_rate", "bpm"),
    (mdc::PULS_RATE_NON_INV, "pulse_rate", "bpm"),
    (mdc::ECG_HEART_RATE, "heart_rate", "bpm"),
    // NIBP is 150021/150022/150023 (MDC_PRESS_BLD_NONINV_*). 150033..150035 are the arterial
    // line (MDC_PRESS_BLD_ART_ABP_*), an invasive pressure Vigil does not alarm on.
    (mdc::PRESS_BLD_NONINV_SYS, "nibp_systolic", "mmHg"),
    (mdc::PRESS_BLD_NONINV_DIA, "nibp_diastolic", "mmHg"),
    (mdc::PRESS_BLD_NONINV_MEAN, "nibp_mean", "mmHg"),
    (mdc::PULS_OXIM_PERF_REL, "perfusion_index", "%"),
    (mdc::AWAY_CO2_ET, "etco2", "mmHg"),
    // MDC_RESP_RATE (term 20490) and MDC_AWAY_RESP_RATE (term 20522, from the airway/CO2).
    (mdc::RESP_RATE, "respiratory_rate", "/min"),
    (151_594, "respiratory_rate", "/min"),
];

impl Default for CodeTable {
    fn default() -> Self {
        let rows = MDC_ROWS
            .iter()
            .filter_map(|(code, vital, unit)| {
                let vital = Vital::from_name(vital)?;
                let unit = unit_for(vital, unit)?;
                let unit = (vital.canonical_unit() != Unit::MmHg).then_some(unit);
                Some((
                    code.to_string(),
                    "MDC".to_string(),
                    Mapping {
                        vital,
                        unit,
                        scale: 1.0,
                    },
                ))
            })
            .collect();
        CodeTable { rows }
    }
}

impl CodeTable {
    /// The built-in MDC table plus a vendor's rows (checked; the first bad row is the error).
    pub fn with_vendor(entries: &[CodeEntry]) -> Result<CodeTable, CodeTableError> {
        let mut table = CodeTable::default();
        for (i, e) in entries.iter().enumerate() {
            let row = i + 1;
            if e.code.trim().is_empty() {
                return Err(CodeTableError::EmptyCode { row });
            }
            let vital = Vital::from_name(&e.vital).ok_or_else(|| CodeTableError::UnknownVital {
                row,
                code: e.code.clone(),
                vital: e.vital.clone(),
            })?;
            let unit = unit_for(vital, &e.unit).ok_or_else(|| CodeTableError::UnknownUnit {
                row,
                code: e.code.clone(),
                unit: e.unit.clone(),
            })?;
            let scale = e.scale.unwrap_or(1.0);
            if !scale.is_finite() || scale <= 0.0 {
                return Err(CodeTableError::BadScale {
                    row,
                    code: e.code.clone(),
                });
            }
            // Vendor rows come first, so a vendor may refine a built-in code.
            table.rows.insert(
                i,
                (
                    e.code.trim().to_string(),
                    e.coding_system.trim().to_string(),
                    Mapping {
                        vital,
                        unit: Some(unit),
                        scale,
                    },
                ),
            );
        }
        Ok(table)
    }

    /// The mapping of an OBX-3 identifier and coding system, if any.
    pub fn lookup(&self, code: &str, coding_system: &str) -> Option<Mapping> {
        self.rows
            .iter()
            .find(|(c, s, _)| c == code && s.eq_ignore_ascii_case(coding_system))
            .map(|(_, _, m)| *m)
    }
}

/// The [`Unit`] a unit text (OBX-6 identifier or text, or a table's `unit`) means for a vital,
/// or None when it is not a unit of that vital. "Per minute" spellings mean the vital's own
/// rate unit.
pub fn unit_for(vital: Vital, text: &str) -> Option<Unit> {
    // Monitors write units in any case ("MMHG", "kpa", "/MIN"); none of these spellings
    // means something else in another case (V2).
    let lower = text.trim().to_ascii_lowercase();
    let text = lower.as_str();
    let canonical = vital.canonical_unit();
    let per_minute = matches!(
        text,
        "/min"
            | "1/min"
            | "min-1"
            | "bpm"
            | "{beats}/min"
            | "{beat}/min"
            | "{breaths}/min"
            | "{breath}/min"
            | "{resp}/min"
            | "rpm"
            | "brpm"
            | "264864"
            | "264928"
            | "mdc_dim_beat_per_min"
            | "mdc_dim_resp_per_min"
    );
    let unit = match text {
        "%" | "262688" | "mdc_dim_percent" => Unit::Percent,
        "mmhg" | "mm[hg]" | "266016" | "mdc_dim_mmhg" => Unit::MmHg,
        "kpa" | "mdc_dim_kilo_pascal" => Unit::KPa,
        _ if per_minute => match canonical {
            Unit::Percent | Unit::MmHg | Unit::KPa | Unit::Second | Unit::KiloJoule => return None,
            rate => rate,
        },
        "s" => Unit::Second,
        "kj" => Unit::KiloJoule,
        _ => return None,
    };
    let fits = unit == canonical || (unit == Unit::KPa && canonical == Unit::MmHg);
    fits.then_some(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_codes_map_to_their_vitals() {
        let t = CodeTable::default();
        assert_eq!(t.lookup("150456", "MDC").unwrap().vital, Vital::Spo2);
        assert_eq!(
            t.lookup("150021", "mdc").unwrap().vital,
            Vital::NibpSystolic
        );
        // The arterial line is not NIBP.
        assert_eq!(t.lookup("150033", "MDC"), None);
        assert_eq!(t.lookup("150456", "LN"), None);
    }

    #[test]
    fn vendor_rows_are_checked() {
        let row = |vital: &str, unit: &str, scale| CodeEntry {
            code: "101".into(),
            coding_system: "ACME".into(),
            vital: vital.into(),
            unit: unit.into(),
            scale,
        };
        let t = CodeTable::with_vendor(&[row("spo2", "%", None)]).unwrap();
        assert_eq!(t.lookup("101", "acme").unwrap().vital, Vital::Spo2);
        assert!(matches!(
            CodeTable::with_vendor(&[row("spO2", "%", None)]),
            Err(CodeTableError::UnknownVital { row: 1, .. })
        ));
        assert!(matches!(
            CodeTable::with_vendor(&[row("spo2", "mmHg", None)]),
            Err(CodeTableError::UnknownUnit { .. })
        ));
        assert!(matches!(
            CodeTable::with_vendor(&[row("spo2", "%", Some(0.0))]),
            Err(CodeTableError::BadScale { .. })
        ));
    }

    #[test]
    fn units_must_fit_the_vital() {
        assert_eq!(unit_for(Vital::NibpMean, "kPa"), Some(Unit::KPa));
        assert_eq!(
            unit_for(Vital::PulseRate, "/min"),
            Some(Unit::BeatsPerMinute)
        );
        assert_eq!(unit_for(Vital::Spo2, "/min"), None);
        assert_eq!(unit_for(Vital::Spo2, "furlongs"), None);
        assert_eq!(
            unit_for(Vital::RespiratoryRate, "264928"),
            Some(Unit::BreathsPerMinute)
        );
        assert_eq!(unit_for(Vital::Etco2, "kPa"), Some(Unit::KPa));
    }
}
