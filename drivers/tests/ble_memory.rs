//! The BLE driver through the transport trait, with recorded characteristic values.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::expect;

use std::collections::HashMap;
use std::time::Duration;

use vigil_drivers::ble::memory::{MemoryCentral, PeripheralSpec, SimPeripheral};
use vigil_drivers::ble::{CharacteristicInfo, Subscription};
use vigil_drivers::{BleTarget, DeviceSpec, DriverEventKind, Link, Transport};
use vigil_protocol::ble::uuid;
use vigil_protocol::{DeviceEvent, Format, Vital};

fn ch(uuid: u16, notify: bool, indicate: bool, read: bool) -> CharacteristicInfo {
    CharacteristicInfo {
        uuid,
        notify,
        indicate,
        read,
    }
}

fn cuff(central: &MemoryCentral) -> SimPeripheral {
    central.add(PeripheralSpec {
        address: "C0:FF:EE:00:00:01".into(),
        name: "Vigil Sim Cuff".into(),
        services: vec![uuid::BLOOD_PRESSURE_SERVICE, uuid::BATTERY_SERVICE],
        characteristics: vec![
            ch(uuid::BLOOD_PRESSURE_MEASUREMENT, false, true, false),
            ch(uuid::INTERMEDIATE_CUFF_PRESSURE, true, false, false),
            ch(uuid::BATTERY_LEVEL, false, false, true),
        ],
        readable: HashMap::from([(uuid::BATTERY_LEVEL, vec![15])]),
    })
}

fn oximeter(central: &MemoryCentral) -> SimPeripheral {
    central.add(PeripheralSpec {
        address: "C0:FF:EE:00:00:02".into(),
        name: "Vigil Sim Oximeter".into(),
        services: vec![uuid::PULSE_OXIMETER_SERVICE],
        characteristics: vec![
            ch(uuid::PLX_CONTINUOUS, true, false, false),
            ch(uuid::PLX_FEATURES, false, false, true),
        ],
        readable: HashMap::from([(uuid::PLX_FEATURES, vec![0x00, 0x00])]),
    })
}

fn start(central: MemoryCentral, format: Format, target: BleTarget) -> common::Started {
    let spec = DeviceSpec {
        id: "ble-1".into(),
        format,
        transport: Transport::Ble(target),
    };
    common::spawn(spec, central)
}

fn connected(k: &DriverEventKind) -> Option<()> {
    matches!(k, DriverEventKind::Link(Link::Connected)).then_some(())
}

fn value_of(vital: Vital) -> impl FnMut(&DriverEventKind) -> Option<f64> {
    move |k| match k {
        DriverEventKind::Readings(rs) => rs.iter().find(|r| r.vital == vital)?.value.number(),
        _ => None,
    }
}

/// Waits until the driver has subscribed (it does so right after connecting).
async fn subscribed(p: &SimPeripheral) -> Vec<(u16, Subscription)> {
    for _ in 0..100 {
        let s = p.subscriptions();
        if !s.is_empty() {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never subscribed");
}

#[tokio::test]
async fn blood_pressure_is_indicated_and_cuff_pressure_notified() {
    let central = MemoryCentral::new();
    let p = cuff(&central);
    let (mut rx, handle, cancel) = start(
        central,
        Format::BleBloodPressure,
        BleTarget::AnyHealthDevice,
    );
    expect(&mut rx, Duration::from_secs(2), connected).await;
    let subs = subscribed(&p).await;
    assert!(
        subs.contains(&(uuid::BLOOD_PRESSURE_MEASUREMENT, Subscription::Indicate)),
        "{subs:?}"
    );
    assert!(
        subs.contains(&(uuid::INTERMEDIATE_CUFF_PRESSURE, Subscription::Notify)),
        "{subs:?}"
    );
    // Battery read at connect: 15 % is low.
    expect(&mut rx, Duration::from_secs(2), |k| {
        matches!(
            k,
            DriverEventKind::Device(DeviceEvent::BatteryLevel { percent: 15 })
        )
        .then_some(())
    })
    .await;
    expect(&mut rx, Duration::from_secs(2), |k| {
        matches!(k, DriverEventKind::Device(DeviceEvent::LowBattery)).then_some(())
    })
    .await;

    assert!(p.notify(
        uuid::INTERMEDIATE_CUFF_PRESSURE,
        &[0x00, 0x96, 0x00, 0, 0, 0, 0]
    ));
    assert_eq!(
        expect(
            &mut rx,
            Duration::from_secs(2),
            value_of(Vital::CuffPressure)
        )
        .await,
        150.0
    );
    assert!(p.notify(
        uuid::BLOOD_PRESSURE_MEASUREMENT,
        &[0x04, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00, 0x48, 0x00]
    ));
    let bp = expect(&mut rx, Duration::from_secs(2), |k| match k {
        DriverEventKind::Readings(rs) if rs.len() == 4 => Some(
            rs.iter()
                .map(|r| (r.vital, r.value.number()))
                .collect::<Vec<_>>(),
        ),
        _ => None,
    })
    .await;
    assert_eq!(bp[0], (Vital::NibpSystolic, Some(120.0)));
    assert_eq!(
        bp[1],
        (Vital::NibpDiastolic, Some(80.0)),
        "one value's readings arrive together"
    );
    assert_eq!(
        handle.start_nibp().await,
        Err(vigil_drivers::CommandError::NotSupported)
    );
    cancel.cancel();
}

#[tokio::test]
async fn out_of_range_and_back_reconnects_and_resubscribes() {
    let central = MemoryCentral::new();
    let p = oximeter(&central);
    let (mut rx, _h, cancel) = start(
        central,
        Format::BlePlxContinuous,
        BleTarget::Name("Oximeter".into()),
    );
    expect(&mut rx, Duration::from_secs(2), connected).await;
    subscribed(&p).await;
    p.notify(uuid::PLX_CONTINUOUS, &[0x00, 0x62, 0x00, 0x40, 0x00]);
    assert_eq!(
        expect(&mut rx, Duration::from_secs(2), value_of(Vital::Spo2)).await,
        98.0
    );

    p.set_in_range(false);
    let reason = expect(&mut rx, Duration::from_secs(2), |k| match k {
        DriverEventKind::Link(Link::Disconnected { reason }) => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(reason.contains("out of range"), "{reason}");
    assert!(
        !p.notify(uuid::PLX_CONTINUOUS, &[0x00, 0x61, 0x00, 0x40, 0x00]),
        "nobody listening"
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    p.set_in_range(true);
    expect(&mut rx, Duration::from_secs(15), connected).await;
    let subs = subscribed(&p).await;
    assert_eq!(
        subs,
        vec![(uuid::PLX_CONTINUOUS, Subscription::Notify)],
        "CCCD rewritten after reconnect"
    );
    assert!(p.connections() >= 2);
    p.notify(uuid::PLX_CONTINUOUS, &[0x00, 0x5F, 0x00, 0x40, 0x00]);
    assert_eq!(
        expect(&mut rx, Duration::from_secs(2), value_of(Vital::Spo2)).await,
        95.0
    );
    cancel.cancel();
}

#[tokio::test]
async fn no_adapter_is_a_clear_link_state() {
    let (mut rx, _h, cancel) = start(
        MemoryCentral::without_adapter(),
        Format::BleHeartRate,
        BleTarget::AnyHealthDevice,
    );
    let reason = expect(&mut rx, Duration::from_secs(2), |k| match k {
        DriverEventKind::Link(Link::Disconnected { reason }) => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(reason.starts_with("no Bluetooth adapter"), "{reason}");
    cancel.cancel();
}

#[tokio::test]
async fn a_peripheral_without_the_required_characteristic_is_explained() {
    let central = MemoryCentral::new();
    let _p = oximeter(&central);
    let (mut rx, _h, cancel) = start(
        central,
        Format::BleHeartRate,
        BleTarget::Address("c0:ff:ee:00:00:02".into()),
    );
    let reason = expect(&mut rx, Duration::from_secs(2), |k| match k {
        DriverEventKind::Link(Link::Disconnected { reason }) => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(reason.contains("0x2A37"), "{reason}");
    cancel.cancel();
}

#[tokio::test]
async fn malformed_values_are_counted_not_fatal() {
    let central = MemoryCentral::new();
    let p = oximeter(&central);
    let (mut rx, _h, cancel) = start(
        central,
        Format::BlePlxContinuous,
        BleTarget::AnyHealthDevice,
    );
    expect(&mut rx, Duration::from_secs(2), connected).await;
    subscribed(&p).await;
    p.notify(uuid::PLX_CONTINUOUS, &[0x01, 0x62]); // flags promise more than is there
    p.notify(uuid::PLX_CONTINUOUS, &[0x00, 0x60, 0x00, 0x40, 0x00]);
    let mut errors = 0;
    let spo2 = expect(&mut rx, Duration::from_secs(2), |k| {
        if let DriverEventKind::DecodeErrors { count, .. } = k {
            errors += count;
        }
        value_of(Vital::Spo2)(k)
    })
    .await;
    assert_eq!(spo2, 96.0);
    if errors == 0 {
        expect(&mut rx, Duration::from_secs(3), |k| {
            matches!(k, DriverEventKind::DecodeErrors { count: 1, .. }).then_some(())
        })
        .await;
    }
    cancel.cancel();
}
