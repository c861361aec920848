//! Message vectors, the stream decoder and the session with a fake clock.

use super::frame::{encode, BOF};
use super::message::*;
use super::numeric::{float_raw, physio, state, unit, NuObsValue, FLOAT_NAN};
use super::session::*;
use super::*;
use crate::device::{CommandRefusal, DeviceCommand, DeviceSession};
use crate::model::{DeviceEvent, DeviceTime, Observation, Unavailable, Value, Vital};
use crate::stream::merge_garbage;
use proptest::prelude::*;
use std::time::{Duration, Instant};

/// The extended numerics poll, as the open implementation sends it (VSCaptureMP
/// `ext_poll_request_msg`: poll number 1, NOM_MOC_VMO_METRIC_NU, all groups, no attributes).
const EXT_POLL_1: [u8; 40] = [
    0xE1, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x20, 0x00, 0x01, 0x00, 0x07, 0x00, 0x1A, 0x00, 0x21,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xF1, 0x3B, 0x00, 0x0C, 0x00, 0x01, 0x00, 0x01,
    0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// The MDS single poll used as keep-alive (VSCaptureMP `keep_alive_msg`).
const KEEP_ALIVE_1: [u8; 36] = [
    0xE1, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x1C, 0x00, 0x01, 0x00, 0x07, 0x00, 0x16, 0x00, 0x21,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x16, 0x00, 0x08, 0x00, 0x01, 0x00, 0x01,
    0x00, 0x21, 0x08, 0x0C,
];

/// The MDS Create Event Result for invoke id 1 (VSCaptureMP `mds_create_resp_msg`, whose
/// current-time field `00 0A BD 00` Vigil sends as zero: the monitor does not read it).
const MDS_CREATE_RESULT_1: [u8; 28] = [
    0xE1, 0x00, 0x00, 0x02, 0x00, 0x02, 0x00, 0x14, 0x00, 0x01, 0x00, 0x01, 0x00, 0x0E, 0x00, 0x21,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0D, 0x06, 0x00, 0x00,
];

#[test]
fn host_messages_are_the_documented_bytes() {
    assert_eq!(numerics_poll(1), EXT_POLL_1);
    assert_eq!(keep_alive_poll(1), KEEP_ALIVE_1);
    assert_eq!(mds_create_result(1), MDS_CREATE_RESULT_1);
    assert_eq!(
        Message::decode(&ASSOCIATION_REQUEST),
        Ok(Message::AssociationRequest)
    );
    assert_eq!(
        Message::decode(&RELEASE_REQUEST),
        Ok(Message::ReleaseRequest)
    );
    assert_eq!(Message::decode(&RELEASE_RESULT), Ok(Message::ReleaseResult));
    assert_eq!(
        Message::decode(&EXT_POLL_1),
        Ok(Message::PollRequest {
            invoke_id: 1,
            extended: true,
            object_class: 6
        })
    );
    assert_eq!(
        Message::decode(&MDS_CREATE_RESULT_1),
        Ok(Message::MdsCreateResult { invoke_id: 1 })
    );
    // The frame of the association request: BOF 11 01 00 EE ... FCS EOF.
    let wire = encode(&ASSOCIATION_REQUEST);
    assert_eq!(wire[..5], [BOF, 0x11, 0x01, 0x00, 0xEE]);
}

fn clock() -> DeviceTime {
    DeviceTime {
        year: Some(2026),
        month: Some(11),
        day: Some(29),
        hour: 18,
        minute: 30,
        second: 5,
    }
}

fn nu(physio_id: u16, unit_code: u16, value: u32) -> NuObsValue {
    NuObsValue {
        physio_id,
        state: 0,
        unit_code,
        value,
    }
}

fn reply(invoke_id: u16) -> PollReply {
    PollReply {
        invoke_id,
        time: Some(clock()),
        numerics: vec![
            (nu(physio::PULS_OXIM_SAT_O2, unit::PERCENT, 97), None),
            (nu(physio::PLETH_PULS_RATE, unit::BEAT_PER_MIN, 64), None),
            (
                nu(physio::PRESS_BLD_NONINV_SYS, unit::MMHG, 121),
                Some(DeviceTime {
                    minute: 10,
                    ..clock()
                }),
            ),
        ],
    }
}

#[test]
fn poll_reply_decodes_with_the_monitors_clock() {
    let bytes = reply(7).encode();
    let Ok(Message::PollReply(got)) = Message::decode(&bytes) else {
        panic!("not a poll reply")
    };
    assert_eq!(got, reply(7));
    let obs = got.observations();
    let readings: Vec<_> = obs
        .iter()
        .map(|o| match o {
            Observation::Reading(r) => (r.vital, r.value, r.device_time),
            o => panic!("{o:?}"),
        })
        .collect();
    assert_eq!(
        readings,
        vec![
            (Vital::Spo2, Value::Number(97.0), Some(clock())),
            (Vital::PulseRate, Value::Number(64.0), Some(clock())),
            // The NIBP object's own time stamp wins over the reply's.
            (
                Vital::NibpSystolic,
                Value::Number(121.0),
                Some(DeviceTime {
                    minute: 10,
                    ..clock()
                })
            ),
        ]
    );
}

#[test]
fn compound_nibp_decodes_all_three() {
    // A hand-built reply with one object carrying NOM_ATTR_NU_CMPD_VAL_OBS (0x094B).
    let mut cmpd = vec![0x00, 0x03, 0x00, 30];
    for (id, v) in [
        (physio::PRESS_BLD_NONINV_SYS, 120),
        (physio::PRESS_BLD_NONINV_DIA, 80),
        (physio::PRESS_BLD_NONINV_MEAN, 93),
    ] {
        nu(id, unit::MMHG, v).write(&mut cmpd);
    }
    let mut avas = vec![0x09, 0x4B, 0x00, cmpd.len() as u8];
    avas.extend_from_slice(&cmpd);
    let bytes = poll_reply_bytes(3, None, &[(1, avas)]);
    let Ok(Message::PollReply(got)) = Message::decode(&bytes) else {
        panic!("{:?}", Message::decode(&bytes))
    };
    let vitals: Vec<_> = got
        .observations()
        .into_iter()
        .map(|o| match o {
            Observation::Reading(r) => (r.vital, r.value.number()),
            o => panic!("{o:?}"),
        })
        .collect();
    assert_eq!(
        vitals,
        vec![
            (Vital::NibpSystolic, Some(120.0)),
            (Vital::NibpDiastolic, Some(80.0)),
            (Vital::NibpMean, Some(93.0)),
        ]
    );
}

#[test]
fn truncated_messages_are_errors_not_panics() {
    let bytes = reply(1).encode();
    for n in 0..bytes.len() {
        let _ = Message::decode(&bytes[..n]);
    }
    assert!(Message::decode(&bytes[..bytes.len() - 3]).is_err());
}

#[test]
fn stream_decoder_reports_a_bad_fcs_and_keeps_going() {
    let mut bad = encode(&reply(1).encode());
    let n = bad.len();
    bad[n - 3] ^= 0x01;
    let mut stream = bad;
    stream.extend(encode(&reply(2).encode()));
    let mut d = StreamDecoder::default();
    let mut out = Vec::new();
    d.feed(&stream, &mut out);
    d.finish(&mut out);
    assert!(matches!(out[0], Err(crate::DecodeError::FrameCheck { .. })));
    assert_eq!(out.len(), 4, "{out:?}");
    assert!(out[1..].iter().all(|o| o.is_ok()));
}

proptest! {
    #[test]
    fn stream_any_split_and_garbage_resync(
        values in proptest::collection::vec((any::<u16>(), any::<u16>(), any::<u32>()), 1..6),
        garbage in proptest::collection::vec(any::<u8>(), 0..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let r = PollReply {
            invoke_id: 1,
            time: None,
            numerics: values
                .iter()
                .map(|&(id, st, v)| (NuObsValue { physio_id: id, state: st, unit_code: unit::PERCENT, value: v }, None))
                .collect(),
        };
        let mut wire = garbage.clone();
        wire.extend(encode(&r.encode()));
        let decode = |chunks: &[&[u8]]| {
            let mut d = StreamDecoder::default();
            let mut out = Vec::new();
            for c in chunks {
                d.feed(c, &mut out);
            }
            d.finish(&mut out);
            merge_garbage(out)
        };
        let whole = decode(&[&wire]);
        let at = cut.index(wire.len() + 1);
        prop_assert_eq!(decode(&[&wire[..at], &wire[at..]]), whole.clone());
        // Whatever the garbage did, the last frame's readings come out in full.
        let readings = whole.iter().filter(|o| o.is_ok()).count();
        prop_assert!(readings >= values.len());
    }
}

// ---- the session, with a fake clock ----

fn frames(s: &mut IntelliVueSession) -> Vec<Message> {
    let mut d = crate::stream::Deframer::new(frame::FrameReader);
    while let Some(bytes) = s.poll_transmit() {
        d.push(&bytes);
    }
    std::iter::from_fn(|| d.next_frame())
        .map(|f| Message::decode(&f.unwrap()).unwrap())
        .collect()
}

fn outputs(s: &mut IntelliVueSession) -> Vec<crate::format::Decoded> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

fn monitor_says(s: &mut IntelliVueSession, user_data: &[u8], now: Instant) {
    s.handle_input(&encode(user_data), now);
}

/// A session that has associated and seen the MDS create event at `t0`.
fn associated(t0: Instant) -> IntelliVueSession {
    let mut s = IntelliVueSession::new();
    s.handle_connected(t0);
    assert_eq!(frames(&mut s), vec![Message::AssociationRequest]);
    monitor_says(&mut s, &[spdu::AC, 0x00], t0);
    monitor_says(&mut s, &mds_create_event(9, Some(clock())), t0);
    assert!(s.is_associated());
    s
}

#[test]
fn session_associates_confirms_the_mds_and_polls_each_second() {
    let t0 = Instant::now();
    let mut s = associated(t0);
    let sent = frames(&mut s);
    assert_eq!(sent[0], Message::MdsCreateResult { invoke_id: 9 });
    assert!(matches!(
        sent[1],
        Message::PollRequest {
            extended: true,
            object_class: 6,
            ..
        }
    ));
    assert_eq!(s.poll_timeout(), Some(t0 + POLL_INTERVAL));
    // The monitor answers; a second later the next poll goes out.
    monitor_says(&mut s, &reply(1).encode(), t0 + Duration::from_millis(200));
    assert_eq!(outputs(&mut s).len(), 3);
    s.handle_timeout(t0 + POLL_INTERVAL);
    assert!(matches!(
        frames(&mut s)[..],
        [Message::PollRequest { extended: true, .. }]
    ));
}

#[test]
fn session_sends_keep_alive_polls() {
    let t0 = Instant::now();
    let mut s = associated(t0);
    frames(&mut s);
    let mut keep_alives = 0;
    for tick in 1..=10 {
        let now = t0 + POLL_INTERVAL * tick;
        monitor_says(&mut s, &reply(1).encode(), now);
        s.handle_timeout(now);
        keep_alives += frames(&mut s)
            .iter()
            .filter(|m| {
                matches!(
                    m,
                    Message::PollRequest {
                        extended: false,
                        object_class: 0x21,
                        ..
                    }
                )
            })
            .count();
    }
    assert_eq!(
        keep_alives, 2,
        "one every {KEEP_ALIVE_INTERVAL:?} over 10 s"
    );
}

fn not_responding(out: &[crate::format::Decoded]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Ok(Observation::Event(DeviceEvent::NotResponding { reason })) => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn silent_monitor_is_reported_and_reassociated_with_backoff() {
    let t0 = Instant::now();
    let mut s = associated(t0);
    frames(&mut s);
    // No replies: the polls go on until the silence limit, then the loss is reported.
    let mut now = t0;
    for _ in 0..20 {
        if !not_responding(&outputs(&mut s)).is_empty() {
            break;
        }
        now = s.poll_timeout().unwrap();
        assert!(
            now <= t0 + SILENCE_LIMIT,
            "not reported at the silence limit"
        );
        s.handle_timeout(now);
    }
    assert_eq!(now, t0 + SILENCE_LIMIT);
    assert!(!s.is_associated());
    frames(&mut s);
    // After the first backoff it associates again; no answer, so the backoff doubles.
    assert_eq!(s.poll_timeout(), Some(now + FIRST_BACKOFF));
    now += FIRST_BACKOFF;
    s.handle_timeout(now);
    assert_eq!(frames(&mut s), vec![Message::AssociationRequest]);
    now += ASSOCIATION_TIMEOUT;
    s.handle_timeout(now);
    let reasons = not_responding(&outputs(&mut s));
    assert!(
        reasons[0].contains("no answer to the association request"),
        "{reasons:?}"
    );
    assert_eq!(s.poll_timeout(), Some(now + FIRST_BACKOFF * 2));
}

#[test]
fn refused_association_is_reported_and_retried() {
    let t0 = Instant::now();
    let mut s = IntelliVueSession::new();
    s.handle_connected(t0);
    frames(&mut s);
    monitor_says(&mut s, &[spdu::RF, 0x00], t0);
    let reasons = not_responding(&outputs(&mut s));
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("refused"));
    assert_eq!(s.poll_timeout(), Some(t0 + FIRST_BACKOFF));
    s.handle_timeout(t0 + FIRST_BACKOFF);
    assert_eq!(frames(&mut s), vec![Message::AssociationRequest]);
    // Accepted this time: the backoff starts over after the MDS create event.
    monitor_says(&mut s, &[spdu::AC], t0 + FIRST_BACKOFF);
    monitor_says(&mut s, &mds_create_event(1, None), t0 + FIRST_BACKOFF);
    assert!(s.is_associated());
}

#[test]
fn aborted_association_reconnects() {
    let t0 = Instant::now();
    let mut s = associated(t0);
    frames(&mut s);
    monitor_says(&mut s, &[spdu::AB, 0x00], t0 + Duration::from_secs(2));
    assert!(not_responding(&outputs(&mut s))[0].contains("aborted"));
    s.handle_timeout(t0 + Duration::from_secs(2) + FIRST_BACKOFF);
    assert_eq!(frames(&mut s), vec![Message::AssociationRequest]);
}

#[test]
fn bad_fcs_is_a_counted_error_never_a_reading() {
    let t0 = Instant::now();
    let mut s = associated(t0);
    frames(&mut s);
    let mut wire = encode(&reply(1).encode());
    let n = wire.len();
    wire[n - 3] ^= 0x40;
    s.handle_input(&wire, t0);
    let out = outputs(&mut s);
    assert_eq!(out.len(), 1);
    assert!(out[0].is_err());
}

#[test]
fn nan_and_invalid_numerics_arrive_unavailable() {
    let t0 = Instant::now();
    let mut s = associated(t0);
    frames(&mut s);
    let r = PollReply {
        invoke_id: 1,
        time: None,
        numerics: vec![
            (nu(physio::PULS_OXIM_SAT_O2, unit::PERCENT, FLOAT_NAN), None),
            (
                NuObsValue {
                    state: state::INVALID,
                    ..nu(
                        physio::PLETH_PULS_RATE,
                        unit::BEAT_PER_MIN,
                        float_raw(80, 0),
                    )
                },
                None,
            ),
        ],
    };
    monitor_says(&mut s, &r.encode(), t0);
    let values: Vec<_> = outputs(&mut s)
        .into_iter()
        .map(|o| match o {
            Ok(Observation::Reading(r)) => r.value,
            o => panic!("{o:?}"),
        })
        .collect();
    assert_eq!(
        values,
        vec![
            Value::Unavailable(Unavailable::NotANumber),
            Value::Unavailable(Unavailable::FlaggedInvalid)
        ]
    );
}

#[test]
fn cuff_commands_are_refused_read_only() {
    let t0 = Instant::now();
    let mut s = associated(t0);
    frames(&mut s);
    for c in [DeviceCommand::StartNibp, DeviceCommand::CancelNibp] {
        assert_eq!(s.handle_command(c, t0), Err(CommandRefusal::NotSupported));
    }
    assert!(
        s.poll_transmit().is_none(),
        "a refused command sends nothing"
    );
}

#[test]
fn release_sends_the_release_request() {
    let t0 = Instant::now();
    let mut s = associated(t0);
    frames(&mut s);
    s.release();
    assert_eq!(frames(&mut s), vec![Message::ReleaseRequest]);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn monitor_release_is_answered() {
    let t0 = Instant::now();
    let mut s = associated(t0);
    frames(&mut s);
    monitor_says(&mut s, &RELEASE_REQUEST, t0);
    assert_eq!(frames(&mut s), vec![Message::ReleaseResult]);
    assert!(!s.is_associated());
}

/// The fuzz seeds are built from the vectors above (first byte: where the target splits).
/// `VIGIL_WRITE_SEEDS=1 cargo test -p vigil-protocol intellivue::tests::fuzz_seeds` rewrites them.
#[test]
fn fuzz_seeds_are_the_vectors() {
    let session = {
        let mut b = vec![0x80];
        b.extend(encode(&[spdu::AC, 0x00]));
        b.extend(encode(&mds_create_event(9, Some(clock()))));
        b.extend(encode(&reply(1).encode()));
        b
    };
    let bad_fcs = {
        let mut frame = encode(&reply(2).encode());
        let n = frame.len();
        frame[n - 3] ^= 0x01;
        let mut b = vec![0x40, 0x55];
        b.extend(frame);
        b.extend(encode(&reply(3).encode()));
        b
    };
    let refused = {
        let mut b = vec![0x10];
        b.extend(encode(&[spdu::RF, 0x00]));
        b.extend(encode(&[spdu::AB, 0x00]));
        b
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/intellivue");
    for (name, bytes) in [
        ("session", session),
        ("bad_fcs", bad_fcs),
        ("refused", refused),
    ] {
        let path = dir.join(name);
        if std::env::var_os("VIGIL_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(std::fs::read(&path).ok(), Some(bytes), "{}", path.display());
    }
}

#[test]
fn lan_session_sends_and_reads_unframed_datagrams() {
    let t0 = Instant::now();
    let mut s = IntelliVueSession::over(Link::Udp);
    s.handle_connected(t0);
    assert_eq!(s.poll_transmit(), Some(ASSOCIATION_REQUEST.to_vec()));
    s.handle_input(&[spdu::AC, 0x00], t0);
    s.handle_input(&mds_create_event(4, None), t0);
    assert_eq!(s.poll_transmit(), Some(mds_create_result(4)));
    assert!(matches!(
        Message::decode(&s.poll_transmit().unwrap()),
        Ok(Message::PollRequest { extended: true, .. })
    ));
    s.handle_input(&reply(1).encode(), t0);
    assert_eq!(outputs(&mut s).len(), 3);
}

#[test]
fn format_facts_agree_with_the_session() {
    let mut s = super::session();
    s.handle_connected(Instant::now());
    for c in [DeviceCommand::StartNibp, DeviceCommand::CancelNibp] {
        assert_eq!(
            COMMANDS.contains(&c),
            s.handle_command(c, Instant::now()).is_ok()
        );
    }
    assert_eq!(LINE.baud, 115_200);
    assert_eq!(NAME, "intellivue");
}

/// The monitor repeats its last NIBP in every reply: each determination reaches Vigil once, or
/// its own echo would confirm a high BP and keep an old BP looking current.
#[test]
fn each_nibp_determination_is_delivered_once_not_with_every_poll() {
    let t0 = Instant::now();
    let mut s = associated(t0);
    frames(&mut s);
    let taken = |minute| DeviceTime { minute, ..clock() };
    let with_nibp = |id, minute, systolic| PollReply {
        invoke_id: id,
        time: Some(clock()),
        numerics: vec![
            (nu(physio::PULS_OXIM_SAT_O2, unit::PERCENT, 97), None),
            (
                nu(physio::PRESS_BLD_NONINV_SYS, unit::MMHG, systolic),
                Some(taken(minute)),
            ),
            (
                nu(physio::PRESS_BLD_NONINV_DIA, unit::MMHG, 112),
                Some(taken(minute)),
            ),
        ],
    };
    let vitals = |s: &mut IntelliVueSession| -> Vec<Vital> {
        outputs(s)
            .into_iter()
            .filter_map(|o| match o {
                Ok(Observation::Reading(r)) => Some(r.vital),
                _ => None,
            })
            .collect()
    };
    // The determination of minute 10, then its echo: SpO2 each time, the BP once.
    monitor_says(&mut s, &with_nibp(1, 10, 185).encode(), t0);
    let both = [Vital::Spo2, Vital::NibpSystolic, Vital::NibpDiastolic];
    assert_eq!(vitals(&mut s), both);
    monitor_says(&mut s, &with_nibp(2, 10, 185).encode(), t0);
    assert_eq!(vitals(&mut s), [Vital::Spo2]);
    // A new determination, even with the same values, is delivered.
    monitor_says(&mut s, &with_nibp(3, 14, 185).encode(), t0);
    assert_eq!(vitals(&mut s), both);
}
