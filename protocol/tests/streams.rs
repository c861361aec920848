//! Properties every serial format's decoder must hold, through the public [`Decoder`]:
//! the same frames whatever the chunking, resynchronisation after garbage, and no panic on any
//! bytes. BLE formats get the no-panic property too.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use proptest::prelude::*;
use vigil_protocol::serial::{contec, masimo, nonin, suntech};
use vigil_protocol::stream::merge_garbage;
use vigil_protocol::{format::Decoded, DeviceTime, Format, Observation, Value};

fn decode(format: Format, chunks: &[&[u8]]) -> Vec<Decoded> {
    let mut d = format.decoder();
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c, &mut out);
    }
    d.finish(&mut out);
    out
}

fn observations(out: &[Decoded]) -> Vec<Observation> {
    out.iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect()
}

/// A valid stream of 1–6 frames of `format`, built with the public encoders.
fn stream(format: Format) -> BoxedStrategy<Vec<u8>> {
    let n = 1..6usize;
    match format {
        Format::Masimo => proptest::collection::vec((50u8..=100, 30u16..250, 1u16..2000), n)
            .prop_map(|lines| {
                lines
                    .into_iter()
                    .flat_map(|(spo2, pr, pi)| {
                        masimo::MasimoLine {
                            style: masimo::LineStyle::Ascii1,
                            time: Some(DeviceTime {
                                year: Some(2026),
                                month: Some(11),
                                day: Some(23),
                                hour: 10,
                                minute: 0,
                                second: 0,
                            }),
                            spo2: Some(Value::Number(spo2 as f64)),
                            pulse_rate: Some(Value::Number(pr as f64)),
                            perfusion_index: Some(Value::Number(pi as f64 / 100.0)),
                            alarm: Some(0),
                            exc: Some(0x800),
                            unknown_keys: vec![],
                        }
                        .encode()
                    })
                    .collect()
            })
            .boxed(),
        Format::Nonin2 | Format::Nonin7 => {
            let nf = if format == Format::Nonin2 {
                nonin::NoninFormat::Two
            } else {
                nonin::NoninFormat::Seven
            };
            proptest::collection::vec((0u16..512, 0u8..128, any::<u16>()), 1..3)
                .prop_map(move |packets| {
                    packets
                        .into_iter()
                        .flat_map(|(hr, spo2, pleth)| {
                            let p = nonin::Packet {
                                status: 0,
                                heart_rate: hr,
                                spo2,
                                firmware: 3,
                                stat2: 0,
                            };
                            p.encode(nf, &[pleth; nonin::FRAMES_PER_PACKET])
                        })
                        .collect()
                })
                .boxed()
        }
        Format::Nonin8 => proptest::collection::vec((0u16..=321, 0u8..=100), n)
            .prop_map(|frames| {
                frames
                    .into_iter()
                    .flat_map(|(hr, spo2)| {
                        nonin::Frame8 {
                            status: 0,
                            heart_rate: hr,
                            spo2,
                            stat2: 0,
                        }
                        .encode()
                    })
                    .collect()
            })
            .boxed(),
        Format::Contec => {
            proptest::collection::vec((1u8..=254, 1u8..=100, 0u16..2200, any::<u8>()), n)
                .prop_map(|packets| {
                    packets
                        .into_iter()
                        .flat_map(|(pr, spo2, pi, pleth)| {
                            contec::Packet::RealTime(contec::RealTime {
                                status: 6,
                                pleth,
                                bar: 5,
                                pulse_rate: pr,
                                spo2,
                                pi,
                            })
                            .encode()
                        })
                        .collect()
                })
                .boxed()
        }
        Format::ContecLegacy => proptest::collection::vec((1u8..=254, 1u8..=100), n)
            .prop_map(|packets| {
                packets
                    .into_iter()
                    .flat_map(|(pr, spo2)| {
                        contec::LegacyPacket {
                            signal_strength: 4,
                            finger_out: false,
                            dropping_spo2: false,
                            beep: false,
                            pleth: 60,
                            bar: 3,
                            probe_error: false,
                            searching: false,
                            pulse_rate: pr,
                            spo2,
                        }
                        .encode()
                    })
                    .collect()
            })
            .boxed(),
        Format::Suntech => proptest::collection::vec(
            prop_oneof![
                any::<u16>().prop_map(suntech::Response::CuffPressure),
                Just(suntech::Response::Status(suntech::STATUS_COMPLETE)),
                (60u16..250, 40u16..150).prop_map(|(s, d)| suntech::Response::BpData(
                    suntech::BpRecord {
                        systolic: s,
                        diastolic: d,
                        beats: 20,
                        status: 0,
                        test_codes: [0; 8],
                        heart_rate: 70,
                        mean: (s + 2 * d) / 3,
                        error: 0,
                    }
                )),
            ],
            n,
        )
        .prop_map(|rs| rs.iter().flat_map(|r| r.encode()).collect())
        .boxed(),
        ble => unreachable!("{ble} is not a stream format"),
    }
}

/// Bytes that cannot start a frame of `format`, so that resynchronisation is deterministic.
fn garbage(format: Format) -> BoxedStrategy<Vec<u8>> {
    let bytes = |s: BoxedStrategy<u8>| proptest::collection::vec(s, 1..40).boxed();
    match format {
        // A line format resynchronises at the next end of line.
        Format::Masimo => bytes(
            any::<u8>()
                .prop_filter("no newline", |b| *b != b'\n')
                .boxed(),
        )
        .prop_map(|mut g| {
            g.extend_from_slice(b"\r\n");
            g
        })
        .boxed(),
        Format::Nonin2 => bytes(
            any::<u8>()
                .prop_filter("no start byte", |b| *b != 0x01)
                .boxed(),
        ),
        Format::Suntech => bytes(any::<u8>().prop_filter("no '>'", |b| *b != 0x3E).boxed()),
        // Type bytes are the only ones with bit 7 clear.
        Format::Contec => bytes((0x80u8..=0xFF).boxed()),
        // Sync bytes are the only ones with bit 7 set.
        Format::Nonin7 | Format::Nonin8 | Format::ContecLegacy => bytes((0u8..0x80).boxed()),
        ble => unreachable!("{ble} is not a stream format"),
    }
}

const STREAMS: [Format; 7] = [
    Format::Masimo,
    Format::Nonin2,
    Format::Nonin7,
    Format::Nonin8,
    Format::Contec,
    Format::ContecLegacy,
    Format::Suntech,
];

fn stream_case() -> impl Strategy<Value = (Format, Vec<u8>, Vec<u8>, Vec<usize>)> {
    proptest::sample::select(STREAMS.to_vec()).prop_flat_map(|f| {
        (
            Just(f),
            stream(f),
            garbage(f),
            proptest::collection::vec(any::<usize>(), 0..8),
        )
    })
}

/// Splits `bytes` at the given (wrapped) points.
fn chunks<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for p in points {
        out.push(&bytes[start..p]);
        start = p;
    }
    out.push(&bytes[start..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_clean_stream_decodes_without_errors((format, bytes, _, _) in stream_case()) {
        let out = decode(format, &[&bytes]);
        prop_assert!(out.iter().all(|r| r.is_ok()), "{format}: {out:?}");
        prop_assert!(!out.is_empty());
    }

    #[test]
    fn chunking_does_not_change_the_output((format, bytes, _, cuts) in stream_case()) {
        let whole = decode(format, &[&bytes]);
        let split = decode(format, &chunks(&bytes, &cuts));
        prop_assert_eq!(whole, split, "{}", format);
    }

    #[test]
    fn garbage_prefix_is_reported_then_skipped((format, bytes, junk, cuts) in stream_case()) {
        let clean = decode(format, &[&bytes]);
        let mut dirty = junk.clone();
        dirty.extend_from_slice(&bytes);
        let out = decode(format, &chunks(&dirty, &cuts));
        prop_assert!(out.first().is_some_and(|r| r.is_err()), "{format}: garbage not reported: {out:?}");
        prop_assert_eq!(observations(&out), observations(&clean), "{}", format);
    }

    #[test]
    fn chunking_does_not_change_the_output_of_arbitrary_bytes(
        format in proptest::sample::select(STREAMS.to_vec()),
        bytes in proptest::collection::vec(prop_oneof![any::<u8>(), Just(b'\n'), Just(0x01), Just(0x3E)], 0..700),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = merge_garbage(decode(format, &[&bytes]));
        let split = merge_garbage(decode(format, &chunks(&bytes, &cuts)));
        prop_assert_eq!(whole, split, "{}", format);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        format in proptest::sample::select(Format::ALL.to_vec()),
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let _ = decode(format, &chunks(&bytes, &cuts));
    }

    #[test]
    fn a_stream_resumes_after_arbitrary_garbage(
        (format, bytes, _, _) in stream_case(),
        junk in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        // Arbitrary garbage may fake the start of a frame (even pass a checksum) and swallow
        // real bytes, but never more than one frame's worth: after a guard run of real frames
        // longer than the longest frame, the stream must decode intact.
        const LONGEST_FRAME: usize = 0x43;
        let clean = observations(&decode(format, &[&bytes]));
        let mut dirty = junk;
        if format == Format::Masimo {
            dirty.extend_from_slice(b"\r\n");
        }
        let guard_end = dirty.len() + LONGEST_FRAME;
        while dirty.len() < guard_end {
            dirty.extend_from_slice(&bytes);
        }
        dirty.extend_from_slice(&bytes);
        let got = observations(&decode(format, &[&dirty]));
        prop_assert!(got.len() >= clean.len());
        prop_assert_eq!(&got[got.len() - clean.len()..], &clean[..], "{}", format);
    }
}
