use super::*;
use vigil_protocol::Observation;

fn run(kind: Format, seed: u64, seconds: f64) -> Vec<Output> {
    let s = Arc::new(Scenario::load("kap-typical").unwrap());
    let mut d = Device::new(kind, s, seed, 0);
    let mut out = Vec::new();
    let mut t = 0.0;
    if kind == Format::Contec {
        d.host_bytes(0.0, &contec::Command::StartRealTime.encode());
    }
    while t < seconds {
        out.extend(d.tick(t));
        t += period(kind);
    }
    out
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    for kind in SIMULATED {
        assert_eq!(
            run(kind, 42, 5.0),
            run(kind, 42, 5.0),
            "{}",
            device_name(kind)
        );
    }
    assert_ne!(run(Format::Masimo, 42, 5.0), run(Format::Masimo, 43, 5.0));
}

#[test]
fn every_serial_kind_decodes_with_its_format() {
    for kind in SIMULATED
        .into_iter()
        // The SunTech and the IntelliVue speak only when polled (their own tests).
        .filter(|k| !k.is_ble() && !matches!(k, Format::Suntech | Format::Intellivue))
    {
        let bytes: Vec<u8> = run(kind, 1, 3.0)
            .into_iter()
            .flat_map(|o| match o {
                Output::Serial(b) => b,
                Output::Ble { .. } => panic!("serial device sent BLE"),
            })
            .collect();
        let mut dec = kind.decoder();
        let mut out = Vec::new();
        dec.feed(&bytes, &mut out);
        assert!(
            out.iter().all(|r| r.is_ok()),
            "{}: {out:?}",
            device_name(kind)
        );
        let spo2 = out.iter().find_map(|r| match r {
            Ok(Observation::Reading(r)) if r.vital == vigil_protocol::Vital::Spo2 => {
                r.value.number()
            }
            _ => None,
        });
        assert!(
            spo2.is_some_and(|v| (96.0..=100.0).contains(&v)),
            "{}: {spo2:?}",
            device_name(kind)
        );
    }
}

#[test]
fn a_contec_without_keep_alive_stops_streaming() {
    let s = Arc::new(Scenario::load("kap-typical").unwrap());
    let mut d = Device::new(Format::Contec, s, 1, 0);
    assert!(d.tick(0.0).is_empty(), "silent until started");
    d.host_bytes(0.0, &contec::Command::StartRealTime.encode());
    assert!(!d.tick(10.0).is_empty());
    assert!(!d.tick(29.9).is_empty());
    assert!(
        d.tick(30.5).is_empty(),
        "silent 30 s after the last keep-alive"
    );
    d.host_bytes(31.0, &contec::Command::KeepAlive.encode());
    assert!(
        d.tick(31.1).is_empty(),
        "a keep-alive after it stopped does not restart it"
    );
    d.host_bytes(32.0, &contec::Command::StartRealTime.encode());
    assert!(!d.tick(32.1).is_empty());
}

#[test]
fn the_suntech_answers_a_whole_cycle() {
    let s = Arc::new(Scenario::load("kap-typical").unwrap());
    let mut d = Device::new(Format::Suntech, s, 1, 0);
    let ask = |d: &mut Device, t, c: suntech::Command| -> Vec<suntech::Response> {
        d.host_bytes(t, &c.encode())
            .into_iter()
            .flat_map(|o| match o {
                Output::Serial(b) => {
                    vigil_protocol::stream::decode_all(suntech::SuntechDecoder, &b)
                }
                _ => vec![],
            })
            .map(|r| r.unwrap())
            .collect()
    };
    let before = ask(&mut d, 0.0, suntech::Command::GetBpData);
    assert!(matches!(
        before[0],
        suntech::Response::BpData(suntech::BpRecord { error: 1, .. })
    ));
    ask(&mut d, 1.0, suntech::Command::StartMeasurement);
    assert!(
        matches!(ask(&mut d, 5.0, suntech::Command::GetCuffPressure)[0], suntech::Response::CuffPressure(p) if p > 50)
    );
    assert_eq!(
        ask(&mut d, 32.0, suntech::Command::GetCuffPressure),
        vec![suntech::Response::Status(b'K')]
    );
    let suntech::Response::BpData(r) = ask(&mut d, 33.0, suntech::Command::GetBpData)[0] else {
        panic!()
    };
    assert_eq!(r.error, 0);
    assert!((115..=126).contains(&r.systolic), "{r:?}");
}
