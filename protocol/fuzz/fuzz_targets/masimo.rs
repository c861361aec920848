#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_protocol::Format;

fuzz_target!(|data: &[u8]| {
    vigil_protocol_fuzz::stream(Format::Masimo, data);
});
