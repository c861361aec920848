use super::*;
use crate::stream::{decode_all, Deframer};
use proptest::prelude::*;

#[test]
fn pufferfish_format2_frames() {
    // Each frame: start 01, STATUS, PLETH, float, checksum; plus one trailing byte.
    let bytes = [
        0x01, 0x81, 0x01, 0x00, 0x83, // frame 1: SYNC, HR MSB 0
        0x01, 0x80, 0x01, 0x48, 0xCA, // frame 2: HR LSB 0x48 → HR 72
        0x01, 0x80, 0x01, 0x61, 0xE3, // frame 3: SpO2 97
        0x01, 0x80, 0x01, 0x30, 0xB2, // frame 4: firmware 48
        0x01,
    ];
    let mut d = Deframer::new(FrameDecoder27(NoninFormat::Two));
    d.push(&bytes);
    let frames: Vec<Frame> = std::iter::from_fn(|| d.next_frame())
        .map(|f| f.unwrap())
        .collect();
    assert_eq!(frames.len(), 4);
    assert_eq!(d.pending(), 1, "the trailing byte is not consumed");
    assert_eq!(frames[0].status & status::SYNC, status::SYNC);
    assert_eq!(
        frames.iter().map(|f| f.float).collect::<Vec<_>>(),
        vec![0x00, 0x48, 0x61, 0x30]
    );
}

fn packet_bytes(format: NoninFormat, packet: &Packet) -> Vec<u8> {
    packet.encode(format, &[0x40; FRAMES_PER_PACKET])
}

fn assemble(format: NoninFormat, bytes: &[u8]) -> Vec<Result<Packet, DecodeError>> {
    let mut asm = PacketAssembler::default();
    let mut out = vec![];
    for f in decode_all(FrameDecoder27(format), bytes) {
        match f {
            Ok(frame) => out.extend(asm.push(frame)),
            Err(e) => {
                asm.reset();
                out.push(Err(e));
            }
        }
    }
    out
}

#[test]
fn packet_of_the_pufferfish_values() {
    let p = Packet {
        status: 0,
        heart_rate: 72,
        spo2: 97,
        firmware: 48,
        stat2: 0,
    };
    let bytes = packet_bytes(NoninFormat::Two, &p);
    assert_eq!(
        &bytes[..20],
        &[
            0x01, 0x81, 0x40, 0x00, 0xC2, 0x01, 0x80, 0x40, 0x48, 0x09, 0x01, 0x80, 0x40, 0x61,
            0x22, 0x01, 0x80, 0x40, 0x30, 0xF1
        ]
    );
    assert_eq!(assemble(NoninFormat::Two, &bytes), vec![Ok(p)]);
}

#[test]
fn hr_above_127_uses_the_msb() {
    // The pufferfish mask bug ((msb << 7) & 0x18) would cap HR at 127.
    let p = Packet {
        status: 0,
        heart_rate: 300,
        spo2: 90,
        firmware: 1,
        stat2: 0,
    };
    let got = assemble(NoninFormat::Seven, &packet_bytes(NoninFormat::Seven, &p));
    assert_eq!(got[0].as_ref().unwrap().heart_rate, 300);
}

#[test]
fn sentinels_and_status_bits() {
    let p = Packet {
        status: status::SNSA | status::ARTF,
        heart_rate: HR_MISSING,
        spo2: SPO2_MISSING,
        firmware: 1,
        stat2: 0x01,
    };
    let obs = p.observations();
    let Observation::Reading(spo2) = &obs[0] else {
        panic!()
    };
    assert_eq!(spo2.value, Value::Unavailable(Unavailable::Missing));
    assert!(spo2.flags.contains(Flag::SensorOff) && spo2.flags.contains(Flag::Artefact));
    let Observation::Reading(hr) = &obs[1] else {
        panic!()
    };
    assert_eq!(hr.value, Value::Unavailable(Unavailable::Missing));
    assert!(obs.contains(&Observation::Event(DeviceEvent::SensorOff)));
    assert!(obs.contains(&Observation::Event(DeviceEvent::LowBattery)));
}

#[test]
fn status_byte_vectors() {
    for (status, flag) in [
        (0x84, Some(Flag::LowPerfusion)),
        (0x86, None), // yellow: green and red together is not low
        (0x88, Some(Flag::SensorOff)),
        (0x90, Some(Flag::OutOfTrack)),
        (0xA0, Some(Flag::Artefact)),
        (0xC0, Some(Flag::SensorOff)),
    ] {
        let p = Packet {
            status,
            heart_rate: 70,
            spo2: 97,
            firmware: 1,
            stat2: 0,
        };
        let Observation::Reading(r) = &p.observations()[0] else {
            panic!()
        };
        match flag {
            Some(f) => assert!(r.flags.contains(f), "{status:#x}"),
            None => assert!(r.flags.is_empty(), "{status:#x}"),
        }
    }
}

#[test]
fn bad_checksum_resyncs_and_drops_the_packet() {
    let p = Packet {
        status: 0,
        heart_rate: 72,
        spo2: 97,
        firmware: 1,
        stat2: 0,
    };
    let mut bytes = packet_bytes(NoninFormat::Two, &p);
    bytes[14] ^= 0xFF; // corrupt frame 3's checksum
    bytes.extend(packet_bytes(NoninFormat::Two, &p));
    let out = assemble(NoninFormat::Two, &bytes);
    assert!(
        matches!(out[0], Err(DecodeError::Checksum { .. })),
        "{out:?}"
    );
    assert_eq!(out.last(), Some(&Ok(p)), "the next packet decodes");
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 1);
}

#[test]
fn packet_cut_short_is_reported() {
    let p = Packet {
        status: 0,
        heart_rate: 72,
        spo2: 97,
        firmware: 1,
        stat2: 0,
    };
    let full = packet_bytes(NoninFormat::Two, &p);
    let mut bytes = full[..50].to_vec();
    bytes.extend(&full);
    let out = assemble(NoninFormat::Two, &bytes);
    assert!(matches!(out[0], Err(DecodeError::Malformed(_))));
    assert_eq!(out[1], Ok(p));
}

#[test]
fn format8_vector() {
    // 80: status, HR bits 8-7 = 0; 48: HR 72; 61: SpO2 97; 00: STAT2; then a trailing byte.
    let mut d = Deframer::new(FrameDecoder8);
    d.push(&[0x80, 0x48, 0x61, 0x00, 0x80]);
    let f = d.next_frame().unwrap().unwrap();
    assert_eq!(d.pending(), 1);
    assert_eq!((f.heart_rate, f.spo2, f.status, f.stat2), (72, 97, 0, 0));
    let obs = f.observations();
    let values: Vec<_> = obs
        .iter()
        .map(|o| match o {
            Observation::Reading(r) => (r.vital, r.value),
            _ => panic!(),
        })
        .collect();
    assert_eq!(
        values,
        vec![
            (Vital::Spo2, Value::Number(97.0)),
            (Vital::PulseRate, Value::Number(72.0))
        ]
    );
}

#[test]
fn format8_hr_bits_are_ored_not_anded() {
    let f = decode_all(FrameDecoder8, &[0x82, 0x2C, 0x5A, 0x00]);
    assert_eq!(f[0].as_ref().unwrap().heart_rate, 300);
}

#[test]
fn format8_held_display_value_with_snsa_is_not_current() {
    let f = decode_all(FrameDecoder8, &[0x80, 0x48, 0x61, 0x08]);
    let obs = f[0].as_ref().unwrap().observations();
    let Observation::Reading(r) = &obs[0] else {
        panic!()
    };
    assert_eq!(r.value, Value::Unavailable(Unavailable::FlaggedInvalid));
}

#[test]
fn format8_out_of_range_and_resync() {
    let out = decode_all(
        FrameDecoder8,
        &[
            0x00, 0x13, 0x80, 0x48, 0x70, 0x00, 0x81, 0x80, 0x48, 0x61, 0x00,
        ],
    );
    assert!(matches!(out[0], Err(DecodeError::Garbage { skipped: 2 })));
    assert!(matches!(
        out[1],
        Err(DecodeError::OutOfRange { field: "SpO2", .. })
    ));
    assert!(matches!(out[2], Err(DecodeError::Garbage { skipped: 1 })));
    assert_eq!(out[3].as_ref().unwrap().spo2, 97);
}

#[test]
fn select_format_round_trip() {
    assert_eq!(
        select_format_command(7),
        [0x02, 0x70, 0x02, 0x02, 0x07, 0x03]
    );
    assert_eq!(parse_select_format(&select_format_command(8)), Some(8));
}

fn arb_packet() -> impl Strategy<Value = Packet> {
    (0u8..0x80, 0u16..512, 0u8..128, 0u8..128, 0u8..128).prop_map(|(s, hr, spo2, fw, stat2)| {
        Packet {
            status: s & !(status::SYNC),
            heart_rate: hr,
            spo2,
            firmware: fw,
            stat2,
        }
    })
}

fn arb_format() -> impl Strategy<Value = NoninFormat> {
    prop_oneof![Just(NoninFormat::Two), Just(NoninFormat::Seven)]
}

proptest! {
    #[test]
    fn packet_round_trip(format in arb_format(), packets in proptest::collection::vec(arb_packet(), 1..4)) {
        let bytes: Vec<u8> = packets.iter().flat_map(|p| packet_bytes(format, p)).collect();
        let got: Vec<_> = assemble(format, &bytes).into_iter().map(|r| r.unwrap()).collect();
        prop_assert_eq!(got, packets);
    }

    #[test]
    fn frame8_round_trip(status in 0u8..0x20, hr in 0u16..=321, spo2 in 0u8..=100, stat2 in 0u8..0x80) {
        let f = Frame8 { status: status << 2, heart_rate: hr, spo2, stat2 };
        let got = decode_all(FrameDecoder8, &f.encode());
        prop_assert_eq!(got, vec![Ok(f)]);
    }
}
