#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_protocol::Format;
use vigil_protocol_fuzz::ble_round_trip;

fuzz_target!(|data: &[u8]| {
    ble_round_trip!(vigil_protocol::ble::heart_rate::HeartRateMeasurement, data);
    vigil_protocol_fuzz::value(Format::BleHeartRate, data);
});
