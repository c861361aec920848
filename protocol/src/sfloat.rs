//! IEEE 11073-20601 16-bit SFLOAT ("medfloat16"), used by the BLE health profiles.
//!
//! Bits 15–12 are a 4-bit two's-complement exponent, bits 11–0 a 12-bit two's-complement
//! mantissa; value = mantissa × 10^exponent. Five raw values are special and must never be
//! read as numbers: a failed cuff sending 0x07FF would otherwise show 2047 mmHg.

use crate::model::{Unavailable, Value};

/// NaN: no value.
pub const NAN: u16 = 0x07FF;
/// NRes: not at this resolution.
pub const NRES: u16 = 0x0800;
/// +INFINITY.
pub const POSITIVE_INFINITY: u16 = 0x07FE;
/// -INFINITY.
pub const NEGATIVE_INFINITY: u16 = 0x0802;
/// Reserved for future use.
pub const RESERVED: u16 = 0x0801;

/// The largest mantissa magnitude an encoder may use without colliding with a special value.
pub const MAX_MANTISSA: i16 = 2045;

/// Decodes a raw SFLOAT, special values first.
pub fn decode(raw: u16) -> Value {
    let special = match raw {
        NAN => Some(Unavailable::NotANumber),
        NRES => Some(Unavailable::NotAtThisResolution),
        POSITIVE_INFINITY => Some(Unavailable::AboveRange),
        NEGATIVE_INFINITY => Some(Unavailable::BelowRange),
        RESERVED => Some(Unavailable::Reserved),
        _ => None,
    };
    if let Some(why) = special {
        return Value::Unavailable(why);
    }
    // Sign-extend the 4-bit exponent and 12-bit mantissa by shifting them to the top of an i16.
    let exponent = (raw as i16) >> 12;
    let mantissa = ((raw << 4) as i16) >> 4;
    Value::Number(scale(mantissa as f64, exponent as i32))
}

/// mantissa × 10^exponent, dividing for negative exponents so that 1257 × 10⁻¹ is exactly the
/// double nearest 125.7.
fn scale(mantissa: f64, exponent: i32) -> f64 {
    if exponent >= 0 {
        mantissa * 10f64.powi(exponent)
    } else {
        mantissa / 10f64.powi(-exponent)
    }
}

/// Encodes `value` with `exponent` (the precision: −1 means one decimal place). Returns `None`
/// when the value does not fit the 12-bit mantissa at that precision or is not finite.
pub fn encode(value: f64, exponent: i8) -> Option<u16> {
    if !(-8..=7).contains(&exponent) || !value.is_finite() {
        return None;
    }
    let mantissa = if exponent >= 0 {
        value / 10f64.powi(exponent as i32)
    } else {
        value * 10f64.powi(-exponent as i32)
    }
    .round();
    if mantissa.abs() > MAX_MANTISSA as f64 {
        return None;
    }
    let mantissa = mantissa as i16;
    Some((((exponent as i16) << 12) as u16) | ((mantissa as u16) & 0x0FFF))
}

/// Encodes a value or its unavailable reason; numbers that do not fit become NRes.
pub fn encode_value(value: Value, exponent: i8) -> u16 {
    match value {
        Value::Number(v) => encode(v, exponent).unwrap_or(NRES),
        Value::Unavailable(Unavailable::NotAtThisResolution) => NRES,
        Value::Unavailable(Unavailable::AboveRange) => POSITIVE_INFINITY,
        Value::Unavailable(Unavailable::BelowRange) => NEGATIVE_INFINITY,
        Value::Unavailable(Unavailable::Reserved) => RESERVED,
        Value::Unavailable(_) => NAN,
    }
}

/// A raw SFLOAT as it sits in a characteristic value; kept raw so that encoding gives back the
/// exact bytes (2, 2.0 and 2.00 are different encodings of one number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Sfloat(pub u16);

impl Sfloat {
    /// The decoded value.
    pub fn value(self) -> Value {
        decode(self.0)
    }

    /// `value` at the given precision, if it fits.
    pub fn from_number(value: f64, exponent: i8) -> Option<Sfloat> {
        encode(value, exponent).map(Sfloat)
    }

    /// A value or unavailable reason at the given precision (NRes when a number does not fit).
    pub fn from_value(value: Value, exponent: i8) -> Sfloat {
        Sfloat(encode_value(value, exponent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The vectors of wire-formats.md §2.1.
    #[test]
    fn reference_vectors() {
        let cases: [(u16, f64); 8] = [
            (0x0002, 2.0),
            (0xF014, 2.0),  // 20 × 10⁻¹
            (0xE0C8, 2.0),  // 200 × 10⁻²
            (0x1002, 20.0), // 2 × 10¹
            (0x2002, 200.0),
            (0x00C8, 200.0),
            (0x04D2, 1234.0),
            (0x0B2E, -1234.0), // mantissa 0xB2E is −1234 in 12-bit two's complement
        ];
        for (raw, expected) in cases {
            assert_eq!(decode(raw), Value::Number(expected), "raw {raw:#06x}");
        }
        assert_eq!(decode(0xF4E9), Value::Number(125.7));
    }

    #[test]
    fn special_values_are_never_numbers() {
        assert_eq!(decode(NAN), Value::Unavailable(Unavailable::NotANumber));
        assert_eq!(
            decode(NRES),
            Value::Unavailable(Unavailable::NotAtThisResolution)
        );
        assert_eq!(
            decode(POSITIVE_INFINITY),
            Value::Unavailable(Unavailable::AboveRange)
        );
        assert_eq!(
            decode(NEGATIVE_INFINITY),
            Value::Unavailable(Unavailable::BelowRange)
        );
        assert_eq!(decode(RESERVED), Value::Unavailable(Unavailable::Reserved));
    }

    #[test]
    fn exponent_is_twos_complement_not_biased() {
        // 0x8062: exponent −8, mantissa 98 — not "98 with a bias of 8".
        assert_eq!(decode(0x8062), Value::Number(98.0 / 1e8));
    }

    #[test]
    fn encode_refuses_what_does_not_fit() {
        assert_eq!(encode(3000.0, 0), None);
        assert_eq!(encode(3000.0, 1), Some(0x112C));
        assert_eq!(encode(f64::NAN, 0), None);
        assert_eq!(encode(1.0, 9), None);
    }

    proptest! {
        #[test]
        fn encode_then_decode_gives_the_value(mantissa in -2045i16..=2045, exponent in -8i8..=7) {
            let value = if exponent >= 0 {
                mantissa as f64 * 10f64.powi(exponent as i32)
            } else {
                mantissa as f64 / 10f64.powi(-(exponent as i32))
            };
            let raw = encode(value, exponent).unwrap();
            prop_assert_eq!(decode(raw), Value::Number(value));
        }

        #[test]
        fn decode_never_panics(raw: u16) {
            let _ = decode(raw);
        }
    }
}
