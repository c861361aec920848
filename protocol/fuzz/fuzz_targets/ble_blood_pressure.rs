#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_protocol::Format;
use vigil_protocol_fuzz::ble_round_trip;

fuzz_target!(|data: &[u8]| {
    ble_round_trip!(vigil_protocol::ble::blood_pressure::BloodPressureMeasurement, data);
    vigil_protocol_fuzz::value(Format::BleBloodPressure, data);
    vigil_protocol_fuzz::value(Format::BleCuffPressure, data);
});
