//! The IntelliVue LAN variant: the driver talks to a fake monitor on a local UDP socket, one
//! message per datagram, unframed.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::expect;

use std::time::Duration;
use tokio::net::UdpSocket;
use vigil_drivers::ble::memory::MemoryCentral;
use vigil_drivers::udp::UdpSpec;
use vigil_drivers::{DeviceSpec, DriverEventKind, Transport};
use vigil_protocol::intellivue::message::{mds_create_event, spdu, PollReply};
use vigil_protocol::intellivue::numeric::{physio, unit, NuObsValue};
use vigil_protocol::intellivue::Message;
use vigil_protocol::{Format, Vital};

/// Answers association and extended polls (SpO2 93) until the test ends.
async fn monitor(socket: UdpSocket) {
    let mut buf = [0u8; 2048];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let answers = match Message::decode(&buf[..n]) {
            Ok(Message::AssociationRequest) => {
                vec![vec![spdu::AC, 0x00], mds_create_event(1, None)]
            }
            Ok(Message::PollRequest {
                invoke_id,
                extended: true,
                ..
            }) => vec![PollReply {
                invoke_id,
                time: None,
                numerics: vec![(
                    NuObsValue {
                        physio_id: physio::PULS_OXIM_SAT_O2,
                        state: 0,
                        unit_code: unit::PERCENT,
                        value: 93,
                    },
                    None,
                )],
            }
            .encode()],
            _ => vec![],
        };
        for a in answers {
            socket.send_to(&a, from).await.unwrap();
        }
    }
}

#[tokio::test]
async fn numerics_arrive_over_udp_one_message_per_datagram() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(monitor(socket));
    let (mut rx, _handle, cancel) = common::spawn(
        DeviceSpec {
            id: "monitor-lan".into(),
            format: Format::Intellivue,
            transport: Transport::Udp(UdpSpec {
                host: "127.0.0.1".into(),
                port,
            }),
        },
        MemoryCentral::new(),
    );
    let spo2 = expect(&mut rx, Duration::from_secs(5), |k| match k {
        DriverEventKind::Readings(rs) => rs.iter().find(|r| r.vital == Vital::Spo2)?.value.number(),
        _ => None,
    })
    .await;
    assert_eq!(spo2, 93.0);
    cancel.cancel();
}
