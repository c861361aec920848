//! `vigil decode`: shows what Vigil makes of a capture from a device, one JSON object per line
//! for every reading, device event or decoding error, in input order.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use vigil_protocol::format::Decoded;
use vigil_protocol::{Format, Observation};

/// Arguments of `vigil decode`.
#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// Wire format: ble-heart-rate, ble-blood-pressure, ble-cuff-pressure, ble-plx-spot,
    /// ble-plx-continuous, ble-plx-features, masimo, nonin-2, nonin-7, nonin-8, contec,
    /// contec-legacy, suntech or hl7 (MLLP-framed or plain messages; segments end in CR, LF or
    /// CRLF).
    #[arg(long, value_name = "FORMAT")]
    pub format: Format,
    /// Bytes in hex (spaces allowed inside). For a BLE format, each --hex is one characteristic
    /// value; for a serial format, all of them and FILE form one byte stream.
    #[arg(long = "hex", value_name = "HEX")]
    pub hex: Vec<String>,
    /// A capture: raw bytes for a serial format, one hex value per line for a BLE format.
    /// `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// Parses hex digits, ignoring white space, `:` and `-` separators and a `0x` prefix.
pub fn parse_hex(text: &str) -> Result<Vec<u8>> {
    let text = text.trim();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b':' && *b != b'-')
        .collect();
    if let Some(bad) = digits.iter().find(|b| !b.is_ascii_hexdigit()) {
        bail!("{:?} is not hex: unexpected {:?}", text, *bad as char);
    }
    if digits.len() % 2 != 0 {
        bail!("{text:?} has an odd number of hex digits");
    }
    Ok(digits
        .chunks_exact(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16).unwrap_or(0);
            let lo = (pair[1] as char).to_digit(16).unwrap_or(0);
            (hi * 16 + lo) as u8
        })
        .collect())
}

/// The JSON line for one decoder output, fields in the order the README documents.
pub fn to_json(item: &Decoded) -> String {
    #[derive(serde::Serialize)]
    struct ErrorLine {
        error: String,
        recovery: vigil_protocol::Recovery,
    }
    let line = match item {
        Ok(Observation::Reading(r)) => serde_json::to_string(r),
        Ok(Observation::Event(e)) => serde_json::to_string(e),
        Ok(Observation::UnknownParameter(p)) => serde_json::to_string(p),
        Err(e) => serde_json::to_string(&ErrorLine {
            error: e.to_string(),
            recovery: e.recovery(),
        }),
    };
    // These types always serialise; keep a line per item even if one ever did not.
    line.unwrap_or_else(|e| format!(r#"{{"error":"cannot serialise output: {e}"}}"#))
}

/// Runs `vigil decode`, writing JSON lines to `out`.
pub fn run(args: &DecodeArgs, out: &mut dyn Write) -> Result<()> {
    if args.hex.is_empty() && args.file.is_none() {
        bail!("nothing to decode: give --hex BYTES or a capture FILE (`-` for standard input)");
    }
    let mut decoder = args.format.decoder();
    let mut items = Vec::new();
    for hex in &args.hex {
        let bytes = parse_hex(hex).with_context(|| format!("bad --hex value {hex:?}"))?;
        decoder.feed(&bytes, &mut items);
        emit(&mut items, out)?;
    }
    if let Some(path) = &args.file {
        let input: Box<dyn Read> = if path.as_os_str() == "-" {
            Box::new(io::stdin().lock())
        } else {
            Box::new(File::open(path).with_context(|| format!("cannot read {}", path.display()))?)
        };
        if args.format.is_ble() {
            for (n, line) in BufReader::new(input).lines().enumerate() {
                let line = line.with_context(|| format!("cannot read {}", path.display()))?;
                if line.trim().is_empty() || line.trim_start().starts_with('#') {
                    continue;
                }
                let bytes = parse_hex(&line)
                    .with_context(|| format!("{} line {}", path.display(), n + 1))?;
                decoder.feed(&bytes, &mut items);
                emit(&mut items, out)?;
            }
        } else {
            let mut input = input;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot read {}", path.display()))
                    }
                };
                decoder.feed(&buf[..n], &mut items);
                emit(&mut items, out)?;
            }
        }
    }
    decoder.finish(&mut items);
    emit(&mut items, out)?;
    out.flush()?;
    Ok(())
}

fn emit(items: &mut Vec<Decoded>, out: &mut dyn Write) -> Result<()> {
    for item in items.drain(..) {
        writeln!(out, "{}", to_json(&item))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(format: &str, hex: &[&str]) -> Vec<serde_json::Value> {
        let args = DecodeArgs {
            format: format.parse().unwrap(),
            hex: hex.iter().map(|s| s.to_string()).collect(),
            file: None,
        };
        let mut out = Vec::new();
        run(&args, &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn hex_parsing() {
        assert_eq!(parse_hex("06 48").unwrap(), vec![0x06, 0x48]);
        assert_eq!(parse_hex("0x0648").unwrap(), vec![0x06, 0x48]);
        assert_eq!(parse_hex("06:48").unwrap(), vec![0x06, 0x48]);
        assert!(parse_hex("064").is_err());
        assert!(parse_hex("zz").is_err());
    }

    #[test]
    fn ble_values_are_decoded_one_per_hex() {
        let lines = decode("ble-heart-rate", &["06 48", "10 50", "04 FF"]);
        assert_eq!(lines[0]["vital"], "heart_rate");
        assert_eq!(lines[0]["value"], 72.0);
        assert_eq!(lines[0]["unit"], "bpm");
        assert_eq!(lines[0]["mdc"], 147842);
        assert!(lines[1]["error"].as_str().unwrap().contains("flags need"));
        assert_eq!(lines[2]["value"], serde_json::Value::Null);
        assert_eq!(lines[2]["unavailable"], "flagged_invalid");
        assert_eq!(lines[2]["flags"], json!(["no_contact"]));
    }

    #[test]
    fn an_implausible_masimo_spo2_is_shown_as_implausible() {
        // "11/23/26 10:00:00 SPO2=186% BPM=080 PI=02.10% EXC=000000\r\n"
        let lines = decode("masimo", &["31312f32332f32362031303a30303a30302053504f323d313836252042504d3d3038302050493d30322e313025204558433d3030303030300d0a"]);
        assert_eq!(lines[0]["vital"], "spo2");
        assert_eq!(lines[0]["value"], serde_json::Value::Null);
        assert_eq!(lines[0]["unavailable"], "implausible");
        assert_eq!(lines[1]["value"], 80.0);
    }

    #[test]
    fn serial_hex_values_form_one_stream() {
        // The Contec worked example split across two --hex values.
        let lines = decode("contec", &["01 A8 86 C0", "87 8C E0 C8 80"]);
        let vitals: Vec<_> = lines
            .iter()
            .map(|l| (l["vital"].clone(), l["value"].clone()))
            .collect();
        assert_eq!(
            vitals,
            vec![
                (json!("spo2"), json!(96.0)),
                (json!("pulse_rate"), json!(140.0)),
                (json!("perfusion_index"), json!(2.0)),
            ]
        );
    }

    #[test]
    fn unfinished_frame_at_the_end_is_reported() {
        let lines = decode("nonin-8", &["80 48 61 00 80 48"]);
        assert_eq!(lines.len(), 3);
        assert!(lines[2]["error"].as_str().unwrap().contains("input ended"));
    }

    #[test]
    fn an_unknown_parameter_is_a_json_line_with_its_kind() {
        let item: Decoded = Ok(vigil_protocol::UnknownParameter {
            code: "MDC_TEMP".into(),
            value: Some(36.6),
            unit: Some("Cel".into()),
        }
        .into());
        let line: serde_json::Value = serde_json::from_str(&to_json(&item)).unwrap();
        assert_eq!(
            line,
            json!({"kind":"unknown_parameter","code":"MDC_TEMP","value":36.6,"unit":"Cel"})
        );
    }

    #[test]
    fn nothing_to_decode_is_an_error() {
        let args = DecodeArgs {
            format: Format::Masimo,
            hex: vec![],
            file: None,
        };
        assert!(run(&args, &mut Vec::new()).is_err());
    }
}
