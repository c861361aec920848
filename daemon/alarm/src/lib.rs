//! Vigil's alarm engine (IEC 60601-1-8 behaviour) and its profiles.
//!
//! The engine is pure: no tokio, no clock reads, no I/O. A thin async task in the daemon feeds
//! it and drives its timer. See [`Engine`] for the API and `profiles/kap-default.toml` for the
//! default KAP profile.

pub mod engine;
pub mod profile;
mod rules;

pub use engine::{
    Act, ActionError, AlarmChange, AlarmKind, AlarmState, AlarmView, Bp, Engine, EngineEvent,
    PauseEnd, RestoredAlarm, RestoredSession, SessionPhase, SessionView, Snapshot,
};
pub use profile::{Layer, Priority, Profile, ProfileError, ProfileErrors, Rule, RuleSpec, Source};
