//! The Vigil daemon: configuration, alarm engine task, room state, display server, and the field tools
//! behind the `vigil` binary.

pub mod backup;
pub mod central;
pub mod clock;
pub mod config;
pub mod core;
pub mod daemon;
pub mod demo;
pub mod device_set;
pub mod field;
pub mod forward;
pub mod manpages;
pub mod metrics;
pub mod nats;
pub mod net;
pub mod numbers;
pub mod page;
pub mod pcd;
pub mod reload;
pub mod review;
pub mod room_state;
pub mod server;
pub mod station;
pub mod storage;
pub mod supervise;
pub mod tls;
pub mod trend;
pub mod upgrade;
