//! ACK encoding: `MSA-1` `AA` when a message is taken, `AE` with the reason in MSA-3 and an ERR
//! segment when it cannot be; MSA-2 is always the message's MSH-10.

use super::message::{escape, Delimiters, Hl7Error};
use super::oru::{Header, VERSIONS};

/// An ACK message (unframed; wrap with [`super::mllp::frame`]).
pub fn ack(header: &Header, error: Option<&Hl7Error>) -> Vec<u8> {
    let d = Delimiters::default();
    let e = |s: &str| escape(s, &d);
    // Answer in the sender's version when Vigil reads it, else in the newest it reads.
    let version = if VERSIONS.contains(&header.version.as_str()) {
        header.version.as_str()
    } else {
        VERSIONS[VERSIONS.len() - 1]
    };
    let processing = if header.processing_id.is_empty() {
        "P"
    } else {
        header.processing_id.as_str()
    };
    let mut text = format!(
        "MSH|^~\\&|VIGIL|VIGIL|{}|{}||ACK^R01^ACK|{}|{}|{}\r",
        e(&header.sending_application),
        e(&header.sending_facility),
        e(&format!("ACK{}", header.control_id)),
        e(processing),
        version,
    );
    match error {
        None => text.push_str(&format!("MSA|AA|{}\r", e(&header.control_id))),
        Some(err) => {
            let reason = e(&err.to_string());
            let (code, code_text) = err.hl7_code();
            text.push_str(&format!(
                "MSA|AE|{}|{reason}\rERR|||{code}^{code_text}^HL70357|E||||{reason}\r",
                e(&header.control_id)
            ));
        }
    }
    text.into_bytes()
}
