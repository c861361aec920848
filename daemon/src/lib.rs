//! The Vigil daemon: configuration, alarm engine, hub, display server, session record, and the
//! field tools behind the `vigil` binary.

pub mod field;
