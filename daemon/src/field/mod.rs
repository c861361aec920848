//! Field tools: what a technician runs with a capture or a cable in hand.

pub mod decode;
pub mod probe;
