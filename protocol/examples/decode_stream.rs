//! Decodes a fixed Masimo or Nonin #2 byte stream, for instruction counts under callgrind:
//! `valgrind --tool=callgrind target/release/examples/decode_stream masimo session`.
//! The second argument is `decoder` (the format's `Decoder` alone) or `session` (through the
//! format's device session, as the drivers do); `none` only builds the stream (the baseline).

use std::time::Instant;
use vigil_protocol::format::Decoded;
use vigil_protocol::serial::nonin;
use vigil_protocol::Format;

/// A serial read's worth of bytes.
const CHUNK: usize = 64;

fn stream(format: Format) -> Vec<u8> {
    let mut bytes = Vec::new();
    match format {
        Format::Masimo => {
            for i in 0..2000u32 {
                let line = format!(
                    "11/23/26 10:00:00 SPO2={:03}% BPM={:03} PI=02.10% ALARM=0000 EXC=000000\r\n",
                    90 + i % 10,
                    60 + i % 40
                );
                bytes.extend(line.into_bytes());
            }
        }
        _ => {
            for i in 0..400u16 {
                let packet = nonin::Packet {
                    status: 0x02,
                    heart_rate: 60 + i % 40,
                    spo2: 97,
                    firmware: 48,
                    stat2: 0,
                };
                bytes.extend(packet.encode(nonin::NoninFormat::Two, &[64; 25]));
            }
        }
    }
    bytes
}

fn main() {
    let mut args = std::env::args().skip(1);
    let format: Format = args
        .next()
        .unwrap_or_else(|| "masimo".into())
        .parse()
        .unwrap_or(Format::Masimo);
    let through_session = args.next().as_deref() == Some("session");
    let bytes = stream(format);
    if std::env::args().nth(2).as_deref() == Some("none") {
        println!("{format}: {} bytes, not decoded", bytes.len());
        return;
    }
    let mut readings = 0usize;
    if through_session {
        let mut session = format.session();
        let now = Instant::now();
        for chunk in bytes.chunks(CHUNK) {
            session.handle_input(chunk, now);
            while let Some(d) = session.poll_output() {
                readings += usize::from(d.is_ok());
            }
        }
    } else {
        let mut decoder = format.decoder();
        let mut out: Vec<Decoded> = Vec::new();
        for chunk in bytes.chunks(CHUNK) {
            decoder.feed(chunk, &mut out);
            readings += out.drain(..).filter(Result::is_ok).count();
        }
    }
    println!("{format}: {} bytes, {readings} observations", bytes.len());
}
