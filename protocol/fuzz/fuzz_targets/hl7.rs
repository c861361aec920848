#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_protocol::Format;

// MLLP-framed or plain HL7: any split gives the same output, and nothing panics.
fuzz_target!(|data: &[u8]| {
    vigil_protocol_fuzz::stream(Format::Hl7, data);
});
