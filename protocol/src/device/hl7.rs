//! HL7 v2 ORU^R01 from a multiparameter monitor or its gateway, over MLLP on TCP. The session
//! itself lives with the protocol (`crate::hl7::Hl7Session`); the drivers build one per connection
//! with the device's code table and match. This is the format's entry in the one list.

use super::{DeviceTransport, FormatFacts};
use crate::hl7::{CodeTable, Hl7Session, Match};
use crate::model::Vital::Spo2;
use std::time::Duration;

/// `hl7`.
pub static HL7: FormatFacts = FormatFacts {
    name: "hl7",
    transport: DeviceTransport::Tcp,
    // A monitor's SpO2 arrives every few seconds; its other parameters depend on what is plugged
    // in, so only SpO2 is assumed.
    continuous_vitals: &[Spo2],
    // Monitors send results every few seconds; some gateways batch up to 10 s.
    silence_limit: Some(Duration::from_secs(15)),
    commands: &[],
    session: || Box::new(Hl7Session::new(CodeTable::default(), Match::default())),
};
