//! The `[[device]]` tables: each device's format and transport, and no two on one port.

use super::check::{tables, Check};
use std::collections::HashSet;
use vigil_drivers::udp::UdpSpec;
use vigil_drivers::usb::UsbId;
use vigil_drivers::{BleTarget, DeviceSpec, PortSelector, SerialSpec, Transport};
use vigil_protocol::intellivue::session::UDP_DATA_EXPORT_PORT;
use vigil_protocol::serial::LineSettings;
use vigil_protocol::Format;

pub(super) fn devices(
    doc: &toml::Table,
    base: &std::path::Path,
    c: &mut Check<'_>,
) -> Vec<DeviceSpec> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    let listed = tables(doc, "device", c);
    // (A `device` that is not a list of tables is already reported by `tables`.)
    if listed.is_empty() && doc.get("device").is_none_or(|v| v.is_array()) {
        c.error(
            "device",
            "is required: at least one [[device]]; with none, nothing is monitored and nothing alarms",
        );
    }
    // Which device first took each port (or BLE address), to name it in a refusal.
    let mut ports: Vec<(Transport, String)> = Vec::new();
    let mut listens = Vec::new();
    for (n, t) in listed {
        let id = t.get("id").and_then(|v| v.as_str()).unwrap_or("");
        let at = if id.is_empty() {
            format!("device #{n}.")
        } else {
            format!("device #{n} \"{id}\".")
        };
        c.enter("device", n, &at);
        let mut keys = vec![
            "id",
            "format",
            "port",
            "usb",
            "udp",
            "ble",
            "baud",
            "data_bits",
            "parity",
            "stop_bits",
        ];
        keys.extend(super::hl7::KEYS);
        c.unknown_keys(t, &keys, &at);
        if id.is_empty()
            || !id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            c.error(
                format!("{at}id"),
                "is required: letters, digits, '-' and '_' only",
            );
        } else if !ids.insert(id.to_string()) {
            c.error(format!("{at}id"), "is used by another device");
        }
        let format = c.required_choice::<Format>(t, "format", &at, None);
        let Some(format) = format else { continue };
        if format != Format::Hl7 {
            for key in super::hl7::KEYS {
                if t.contains_key(key) {
                    c.error(
                        format!("{at}{key}"),
                        format!("applies only to format hl7, not {format}"),
                    );
                }
            }
        }
        let transport = if format == Format::Hl7 {
            let transport = super::hl7::transport(t, &at, base, c);
            if let Some(tr) = &transport {
                super::hl7::shared_listen(
                    &mut listens,
                    tr,
                    &at,
                    &format!("device #{n} \"{id}\""),
                    c,
                );
            }
            transport
        } else if format.is_ble() {
            for key in [
                "port",
                "usb",
                "udp",
                "baud",
                "data_bits",
                "parity",
                "stop_bits",
            ] {
                if t.contains_key(key) {
                    c.error(
                        format!("{at}{key}"),
                        format!("does not apply to the BLE format {format}"),
                    );
                }
            }
            match t.get("ble") {
                Some(toml::Value::Table(b)) => {
                    c.unknown_keys(b, &["address", "name", "any"], &format!("{at}ble."));
                    let address = c.string(b, "address", &format!("{at}ble."));
                    let name = c.string(b, "name", &format!("{at}ble."));
                    let any = b.get("any").and_then(|v| v.as_bool()).unwrap_or(false);
                    match (address, name, any) {
                        (Some(a), None, false) => Some(Transport::Ble(BleTarget::Address(a))),
                        (None, Some(nm), false) => Some(Transport::Ble(BleTarget::Name(nm))),
                        (None, None, true) => Some(Transport::Ble(BleTarget::AnyHealthDevice)),
                        _ => {
                            c.error(
                                format!("{at}ble"),
                                "give exactly one of address, name or any = true",
                            );
                            None
                        }
                    }
                }
                _ => {
                    c.error(format!("{at}ble"), "a BLE device needs a ble table: { address = \"…\" }, { name = \"…\" } or { any = true }");
                    None
                }
            }
        } else {
            if t.contains_key("ble") {
                c.error(
                    format!("{at}ble"),
                    format!("does not apply to the serial format {format}"),
                );
            }
            // Only a format with a LAN variant (IntelliVue) may give `udp`.
            let lan = format.udp_session().is_some();
            let udp = if lan {
                c.string(t, "udp", &at)
            } else {
                if t.contains_key("udp") {
                    c.error(
                        format!("{at}udp"),
                        format!("does not apply to {format}: it has no LAN variant"),
                    );
                }
                None
            };
            let port = match (c.string(t, "port", &at), c.string(t, "usb", &at), udp) {
                (Some(p), None, None) => Some(Reach::Port(PortSelector::Path(p.into()))),
                (None, Some(u), None) => match u.parse::<UsbId>() {
                    Ok(id) => Some(Reach::Port(PortSelector::Usb(id))),
                    Err(e) => {
                        c.error(format!("{at}usb"), e.to_string());
                        None
                    }
                },
                (None, None, Some(host)) if !host.trim().is_empty() => Some(Reach::Lan(UdpSpec {
                    host: host.trim().to_string(),
                    port: UDP_DATA_EXPORT_PORT,
                })),
                _ if lan => {
                    c.error(
                        format!("{at}port"),
                        "give exactly one of port = \"/dev/…\", usb = \"VID:PID\" or udp = \"HOST\"",
                    );
                    None
                }
                _ => {
                    c.error(
                        format!("{at}port"),
                        "give exactly one of port = \"/dev/…\" or usb = \"VID:PID\"",
                    );
                    None
                }
            };
            let mut line = format.line_settings().unwrap_or(LineSettings::n81(9600));
            if let Some(b) = c.integer(t, "baud", &at, 300..=4_000_000) {
                line.baud = b as u32;
            }
            if let Some(d) = c.integer(t, "data_bits", &at, 5..=8) {
                line.data_bits = d as u8;
            }
            if let Some(s) = c.integer(t, "stop_bits", &at, 1..=2) {
                line.stop_bits = s as u8;
            }
            if let Some(parity) = c.choice(t, "parity", &at, Some("none, odd, even")) {
                line.parity = parity;
            }
            port.map(|port| match port {
                Reach::Port(port) => Transport::Serial(SerialSpec { port, line }),
                Reach::Lan(lan) => Transport::Udp(lan),
            })
        };
        if let Some(transport) = transport {
            if let Some(first) = shared_port(&ports, &transport) {
                let key = match &transport {
                    Transport::Ble(_) => "ble",
                    Transport::Udp(_) => "udp",
                    Transport::Serial(SerialSpec {
                        port: PortSelector::Usb(_),
                        ..
                    }) => "usb",
                    Transport::Serial(_) => "port",
                    Transport::Hl7(_) => "listen",
                };
                c.error(
                    format!("{at}{key}"),
                    format!("is the same port as {first}'s: two devices cannot share a port"),
                );
            } else {
                ports.push((transport.clone(), format!("device #{n} \"{id}\"")));
            }
            out.push(DeviceSpec {
                id: id.to_string(),
                format,
                transport,
            });
        }
    }
    c.entry = None;
    out
}

/// Where a non-BLE device is: a serial port, or a monitor on the LAN.
enum Reach {
    Port(PortSelector),
    Lan(UdpSpec),
}

/// The device already on the port (or BLE address) `transport` would use.
fn shared_port<'a>(ports: &'a [(Transport, String)], transport: &Transport) -> Option<&'a str> {
    ports
        .iter()
        .find(|(other, _)| match (other, transport) {
            (Transport::Serial(a), Transport::Serial(b)) => a.port == b.port,
            (Transport::Udp(a), Transport::Udp(b)) => a.host.eq_ignore_ascii_case(&b.host),
            (Transport::Ble(BleTarget::Address(a)), Transport::Ble(BleTarget::Address(b))) => {
                a.eq_ignore_ascii_case(b)
            }
            _ => false,
        })
        .map(|(_, first)| first.as_str())
}
