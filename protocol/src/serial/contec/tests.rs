use super::*;
use crate::stream::{decode_all, Deframer};
use proptest::prelude::*;

#[test]
fn pulox_high_byte_vector() {
    assert_eq!(
        restore_high_bits(0b1000_1010, &[0x80, 0xFF, 0x80, 0xFF]),
        vec![0x00, 0xFF, 0x00, 0xFF]
    );
}

#[test]
fn worked_example_140_bpm() {
    // 01 type; A8 high byte (bits 3 and 5: D3 and D5 have bit 7 set);
    // 86 D0 = 0x06 signal 6; C0 D1 = pleth 64; 87 D2 = bar 7; 8C D3 = 0x8C = 140 bpm;
    // E0 D4 = 96 %; C8 D5 = 0xC8; 80 D6 = 0x00 → PI 200 = 2.00 %. Trailing byte 01.
    let mut d = Deframer::new(ContecDecoder);
    d.push(&[0x01, 0xA8, 0x86, 0xC0, 0x87, 0x8C, 0xE0, 0xC8, 0x80, 0x01]);
    let Packet::RealTime(r) = d.next_frame().unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(d.pending(), 1);
    assert_eq!(
        r,
        RealTime {
            status: 0x06,
            pleth: 64,
            bar: 7,
            pulse_rate: 140,
            spo2: 96,
            pi: 200
        }
    );
    let values: Vec<_> = r
        .observations()
        .iter()
        .map(|o| match o {
            Observation::Reading(r) => r.value,
            _ => panic!(),
        })
        .collect();
    assert_eq!(
        values,
        vec![
            Value::Number(96.0),
            Value::Number(140.0),
            Value::Number(2.0)
        ],
        "a 0x7F mask would report 12 bpm"
    );
}

#[test]
fn sentinels_are_missing() {
    let r = RealTime {
        status: 0x80,
        pleth: 0x40,
        bar: 0x10,
        pulse_rate: 0xFF,
        spo2: 0x7F,
        pi: 0xFFFF,
    };
    let bytes = Packet::RealTime(r).encode();
    let out = decode_all(ContecDecoder, &bytes);
    let obs = out[0].as_ref().unwrap().observations();
    for o in &obs[..3] {
        let Observation::Reading(r) = o else { panic!() };
        assert_eq!(
            r.value,
            Value::Unavailable(Unavailable::Missing),
            "{:?}",
            r.vital
        );
        assert!(r.flags.contains(Flag::SensorOff));
    }
    assert_eq!(obs[3], Observation::Event(DeviceEvent::SensorOff));
}

#[test]
fn host_commands_match_the_spec_bytes() {
    assert_eq!(
        Command::StartRealTime.encode(),
        [0x7D, 0x81, 0xA1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]
    );
    assert_eq!(
        Command::StopRealTime.encode(),
        [0x7D, 0x81, 0xA2, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]
    );
    assert_eq!(
        Command::KeepAlive.encode(),
        [0x7D, 0x81, 0xAF, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]
    );
    let mut bytes = vec![0x00];
    bytes.extend(Command::KeepAlive.encode());
    bytes.extend(Command::StartRealTime.encode());
    let out = decode_all(CommandDecoder, &bytes);
    assert_eq!(
        out,
        vec![
            Err(DecodeError::Garbage { skipped: 1 }),
            Ok(Command::KeepAlive),
            Ok(Command::StartRealTime),
        ]
    );
}

#[test]
fn feedback_and_unknown_types() {
    let out = decode_all(
        ContecDecoder,
        &[0x0B, 0x81, 0xA1, 0x85, 0x7F, 0x0D, 0x80, 0x81],
    );
    assert_eq!(
        out[0],
        Ok(Packet::CommandFeedback {
            command: 0xA1,
            code: 5
        })
    );
    assert_eq!(
        out[1],
        Err(DecodeError::Garbage { skipped: 1 }),
        "0x7F is no packet type"
    );
    assert_eq!(out[2], Ok(Packet::DisconnectNotice { reason: 1 }));
}

#[test]
fn packet_cut_short_by_a_new_type_byte() {
    let mut bytes = vec![0x01, 0x80, 0x86, 0xC0];
    bytes.extend(
        Packet::RealTime(RealTime {
            status: 6,
            pleth: 1,
            bar: 2,
            pulse_rate: 70,
            spo2: 97,
            pi: 300,
        })
        .encode(),
    );
    let out = decode_all(ContecDecoder, &bytes);
    assert_eq!(out[0], Err(DecodeError::Garbage { skipped: 4 }));
    assert!(matches!(
        out[1],
        Ok(Packet::RealTime(RealTime { pulse_rate: 70, .. }))
    ));
}

#[test]
fn legacy_pr_bit7_from_b3() {
    let p = LegacyPacket {
        signal_strength: 5,
        finger_out: false,
        dropping_spo2: false,
        beep: true,
        pleth: 50,
        bar: 3,
        probe_error: false,
        searching: false,
        pulse_rate: 150,
        spo2: 95,
    };
    let bytes = p.encode();
    assert_eq!(bytes, [0xC5, 0x32, 0x43, 0x16, 0x5F]);
    assert_eq!(decode_all(LegacyDecoder, &bytes), vec![Ok(p)]);
}

fn arb_realtime() -> impl Strategy<Value = RealTime> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        prop_oneof![0u8..=100, Just(0x7F)],
        any::<u16>(),
    )
        .prop_map(|(status, pleth, bar, pulse_rate, spo2, pi)| RealTime {
            status,
            pleth,
            bar,
            pulse_rate,
            spo2,
            pi,
        })
}

pub(crate) fn arb_packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        arb_realtime().prop_map(Packet::RealTime),
        (any::<u8>(), any::<u8>())
            .prop_map(|(command, code)| Packet::CommandFeedback { command, code }),
        any::<u8>().prop_map(|reason| Packet::DisconnectNotice { reason }),
        proptest::collection::vec(any::<u8>(), 7).prop_map(|data| Packet::Other {
            packet_type: 0x04,
            data
        }),
    ]
}

proptest! {
    #[test]
    fn v7_round_trip(packets in proptest::collection::vec(arb_packet(), 1..5)) {
        let bytes: Vec<u8> = packets.iter().flat_map(|p| p.encode()).collect();
        let got: Vec<_> = decode_all(ContecDecoder, &bytes).into_iter().map(|r| r.unwrap()).collect();
        prop_assert_eq!(got, packets);
    }

    #[test]
    fn legacy_round_trip(
        ss in 0u8..16, fo: bool, ds: bool, beep: bool, pleth in 0u8..128, bar in 0u8..16,
        pe: bool, se: bool, pr: u8, spo2 in prop_oneof![0u8..=100, Just(0x7F)],
    ) {
        let p = LegacyPacket { signal_strength: ss, finger_out: fo, dropping_spo2: ds, beep, pleth, bar, probe_error: pe, searching: se, pulse_rate: pr, spo2 };
        prop_assert_eq!(decode_all(LegacyDecoder, &p.encode()), vec![Ok(p)]);
    }
}
