//! `vigil decode` as a technician runs it: the real binary, real files, exit codes.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::Write;
use std::process::{Command, Output};

fn vigil(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the vigil binary runs");
    let mut input = child.stdin.take().expect("stdin is piped");
    if let Some(bytes) = stdin {
        input.write_all(bytes).expect("stdin accepts the capture");
    }
    drop(input);
    child.wait_with_output().expect("vigil finishes")
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
        .collect()
}

#[test]
fn a_raw_masimo_capture_file_decodes_in_order() {
    let dir = std::env::temp_dir().join(format!("vigil-decode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rad8.cap");
    std::fs::write(
        &path,
        b"02/22/16 22:47:45 SN=0000056661 SPO2=098% BPM=097 PI=03.60% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800\r\n\
          \x00\x00garbage\r\n\
          02/22/16 22:47:46 SN=0000056661 SPO2=---% BPM=--- PI=--.--% ALARM=0000 EXC=000820\r\n",
    )
    .unwrap();
    let out = vigil(
        &["decode", "--format", "masimo", path.to_str().unwrap()],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    let summary: Vec<String> = lines
        .iter()
        .map(|l| {
            if let Some(v) = l.get("vital") {
                format!("{}={}", v.as_str().unwrap(), l["value"])
            } else if let Some(e) = l.get("event") {
                format!("event:{}", e.as_str().unwrap())
            } else {
                "error".to_string()
            }
        })
        .collect();
    assert_eq!(
        summary,
        [
            "spo2=98.0",
            "pulse_rate=97.0",
            "perfusion_index=3.6",
            "error",
            "spo2=null",
            "pulse_rate=null",
            "perfusion_index=null",
            "event:sensor_off",
        ]
    );
    assert_eq!(lines[4]["unavailable"], "missing");
    assert_eq!(lines[0]["device_time"]["year"], 2016);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ble_hex_lines_from_standard_input() {
    let out = vigil(
        &["decode", "--format", "ble-plx-continuous", "-"],
        Some(b"# simulator output\n00 62 00 40 00\n\n1C 5F 00 5A 00 20 00 00 00 00 57 F0\n"),
    );
    assert!(out.status.success());
    let lines = json_lines(&out);
    let values: Vec<_> = lines.iter().map(|l| l["value"].as_f64().unwrap()).collect();
    assert_eq!(values, [98.0, 64.0, 95.0, 90.0, 8.7]);
}

#[test]
fn unknown_format_is_refused_with_the_list() {
    let out = vigil(&["decode", "--format", "philips", "--hex", "00"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown format \"philips\""), "{err}");
    assert!(err.contains("contec-legacy"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn unreadable_file_and_bad_hex_are_one_clear_line() {
    let out = vigil(&["decode", "--format", "suntech", "/no/such/capture"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("vigil: cannot read /no/such/capture"),
        "{err}"
    );

    let out = vigil(&["decode", "--format", "suntech", "--hex", "3E 0"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("odd number of hex digits"));
}

#[test]
fn an_hl7_capture_decodes_framed_or_plain_with_any_line_ending() {
    let vector = include_bytes!("../../protocol/tests/data/hl7/pcd01_style.hl7");
    let mut framed = vec![0x0B];
    framed.extend_from_slice(vector);
    framed.extend_from_slice(&[0x1C, 0x0D]);
    let lf: Vec<u8> = vector
        .iter()
        .map(|b| if *b == b'\r' { b'\n' } else { *b })
        .collect();
    for capture in [framed.repeat(2), [lf.clone(), lf].concat()] {
        let out = vigil(&["decode", "--format", "hl7", "-"], Some(&capture));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines = json_lines(&out);
        let vitals: Vec<&str> = lines.iter().filter_map(|l| l["vital"].as_str()).collect();
        assert_eq!(
            vitals.iter().filter(|v| **v == "spo2").count(),
            4,
            "{lines:#?}"
        );
        assert_eq!(vitals.iter().filter(|v| **v == "etco2").count(), 2);
        assert_eq!(
            vitals.iter().filter(|v| **v == "respiratory_rate").count(),
            2
        );
        let unknown: Vec<_> = lines
            .iter()
            .filter(|l| l["kind"] == "unknown_parameter")
            .collect();
        assert_eq!(unknown.len(), 2);
        assert_eq!(unknown[0]["code"], "150033^MDC_PRESS_BLD_ART_ABP_SYS^MDC");
        assert_eq!(unknown[0]["value"], 118.0);
        assert_eq!(
            lines[0]["device_time"]["hour"], 8,
            "OBX-14 +0200 read as UTC"
        );
    }
}

/// Space-separated hex, as `--hex` takes it.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn intellivue_bytes_from_the_monitor_decode_split_anywhere() {
    use vigil_protocol::intellivue::frame::encode;
    use vigil_protocol::intellivue::message::{mds_create_event, spdu, PollReply};
    use vigil_protocol::intellivue::numeric::{physio, unit, NuObsValue};
    let nu = |physio_id, unit_code, value| {
        let nu = NuObsValue {
            physio_id,
            state: 0,
            unit_code,
            value,
        };
        (nu, None)
    };
    let reply = encode(
        &PollReply {
            invoke_id: 1,
            time: None,
            numerics: vec![
                nu(physio::PULS_OXIM_SAT_O2, unit::PERCENT, 95),
                nu(physio::AWAY_CO2_ET, unit::MMHG, 38),
            ],
        }
        .encode(),
    );
    // Association accept and MDS create (no readings), a poll reply, then the same reply with
    // a corrupted FCS: an error line, never a reading.
    let mut stream = encode(&[spdu::AC, 0x00]);
    stream.extend(encode(&mds_create_event(1, None)));
    stream.extend(&reply);
    let mut bad = reply.clone();
    let fcs_at = bad.len() - 2;
    bad[fcs_at] ^= 0x01;
    stream.extend(&bad);
    let cut = stream.len() - reply.len() - bad.len() / 2 - 3; // inside the good reply
    let (a, b) = stream.split_at(cut);
    let out = vigil(
        &[
            "decode",
            "--format",
            "intellivue",
            "--hex",
            &hex(a),
            "--hex",
            &hex(b),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["vital"], "spo2");
    assert_eq!(lines[0]["value"], 95.0);
    assert_eq!(lines[1]["vital"], "etco2");
    assert_eq!(lines[1]["value"], 38.0);
    assert!(lines[2].get("error").is_some(), "{:?}", lines[2]);
}
