//! Serial and BLE transports (issue: drivers). Not built yet: this crate is a placeholder in the workspace layout.
