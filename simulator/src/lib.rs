//! Vigil's device simulator: seeded patient courses from scenario files, turned into the real
//! wire bytes of bedside monitors, served over pseudo-terminals and BLE.

pub mod bluez;
pub mod devices;
pub mod hl7;
pub mod intellivue;
pub mod patient;
pub mod pty;
pub mod run;
pub mod scenario;

pub use devices::{device_name, from_device_name, Device, Output, SIMULATED};
pub use scenario::Scenario;
