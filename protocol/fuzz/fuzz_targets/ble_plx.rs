#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_protocol::Format;
use vigil_protocol_fuzz::ble_round_trip;

fuzz_target!(|data: &[u8]| {
    ble_round_trip!(vigil_protocol::ble::plx::PlxContinuous, data);
    ble_round_trip!(vigil_protocol::ble::plx::PlxSpotCheck, data);
    vigil_protocol_fuzz::value(Format::BlePlxContinuous, data);
    vigil_protocol_fuzz::value(Format::BlePlxSpot, data);
});
