//! HL7 v2 from multiparameter monitors, sans-IO: MLLP framing, the message parser, ORU^R01 to
//! observations, code tables, and ACKs.
//!
//! [`Hl7Receiver`] is one connection: MLLP bytes in, [`Received`] messages out, an ACK queued for
//! every message (AA taken, AE refused, MSA-2 = its MSH-10). [`Hl7Session`] is one device on top
//! of it: the messages its [`Match`] picks, as observations.

pub mod ack;
pub mod codes;
pub mod message;
pub mod mllp;
pub mod oru;
pub mod replay;
mod session;
pub mod time;

pub use codes::{CodeEntry, CodeTable, CodeTableError, CodeTableFile};
pub use message::{Hl7Error, Message};
pub use oru::Header;
pub use replay::{ReplayGuard, SentAt};
pub use session::{Hl7Receiver, Hl7Session, Match, PlainSplitter, Received};
