//! Quality flags from a device's status bits, and what each means for the evidence gate.

use serde::{Deserialize, Serialize};

/// One quality flag on a reading, from the device's own status bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Flag {
    /// The sensor is off the patient or disconnected (Masimo EXC, Nonin SNSA/SNSD, Contec finger
    /// out, PLX "sensor unconnected").
    SensorOff,
    /// The sensor or cable is defective, unrecognised or expired.
    SensorDefective,
    /// Motion or other artefact.
    Artefact,
    /// Low (or marginal) perfusion.
    LowPerfusion,
    /// The device lost track of the pulse (Nonin OOT).
    OutOfTrack,
    /// The device is searching for a pulse.
    PulseSearch,
    /// Signal interference or ambient light.
    Interference,
    /// The device marks the value questionable.
    Questionable,
    /// The device marks the value invalid.
    Invalid,
    /// Demonstration data: never patient data.
    Demo,
    /// Test data: never patient data.
    Test,
    /// Calibration in progress.
    Calibrating,
    /// The reading comes from device memory, not live.
    Stored,
    /// An early estimate, not yet validated.
    EarlyEstimate,
    /// HR sensor contact is supported but not detected.
    NoContact,
    /// Body movement during a cuff measurement.
    BodyMovement,
    /// Cuff fit too loose.
    CuffLoose,
    /// Irregular pulse detected.
    IrregularPulse,
    /// Improper measurement position.
    ImproperPosition,
    /// The device's clock was not set when it stamped the reading.
    ClockNotSet,
    /// The device marks this a spot-check rather than continuous data.
    SpotCheck,
}

impl Flag {
    /// Every flag, in bit order.
    pub const ALL: [Flag; 21] = [
        Flag::SensorOff,
        Flag::SensorDefective,
        Flag::Artefact,
        Flag::LowPerfusion,
        Flag::OutOfTrack,
        Flag::PulseSearch,
        Flag::Interference,
        Flag::Questionable,
        Flag::Invalid,
        Flag::Demo,
        Flag::Test,
        Flag::Calibrating,
        Flag::Stored,
        Flag::EarlyEstimate,
        Flag::NoContact,
        Flag::BodyMovement,
        Flag::CuffLoose,
        Flag::IrregularPulse,
        Flag::ImproperPosition,
        Flag::ClockNotSet,
        Flag::SpotCheck,
    ];

    fn bit(self) -> u32 {
        1 << (self as u8)
    }
}

/// A set of [`Flag`]s; serialised as a list of flag names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u32);

impl Flags {
    /// No flags.
    pub const EMPTY: Flags = Flags(0);

    /// Is `flag` set?
    pub fn contains(self, flag: Flag) -> bool {
        self.0 & flag.bit() != 0
    }

    /// Sets `flag`.
    pub fn insert(&mut self, flag: Flag) {
        self.0 |= flag.bit();
    }

    /// Sets `flag` when `condition` holds; convenient when mapping status bits.
    pub fn set_if(&mut self, condition: bool, flag: Flag) {
        if condition {
            self.insert(flag);
        }
    }

    /// The set flags, in bit order.
    pub fn iter(self) -> impl Iterator<Item = Flag> {
        Flag::ALL.into_iter().filter(move |f| self.contains(*f))
    }

    /// Is no flag set?
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Flags with which the device itself says a number it sent is not a valid measurement.
    pub fn marks_invalid(self) -> bool {
        [
            Flag::SensorOff,
            Flag::SensorDefective,
            Flag::Invalid,
            Flag::NoContact,
        ]
        .into_iter()
        .any(|f| self.contains(f))
    }

    /// Flags with which the device keeps the number but questions it: the value may be shown,
    /// but it is never evidence for or against an alarm condition.
    pub fn questions_value(self) -> bool {
        [
            Flag::Artefact,
            Flag::LowPerfusion,
            Flag::OutOfTrack,
            Flag::PulseSearch,
            Flag::Interference,
            Flag::Questionable,
            Flag::Calibrating,
            Flag::EarlyEstimate,
            Flag::BodyMovement,
            Flag::CuffLoose,
            Flag::IrregularPulse,
            Flag::ImproperPosition,
        ]
        .into_iter()
        .any(|f| self.contains(f))
    }

    /// Flags that mean the sensor is off the patient, disconnected or defective (a chest strap
    /// without skin contact included): the `sensor-off` condition.
    pub fn sensor_off(self) -> bool {
        [Flag::SensorOff, Flag::SensorDefective, Flag::NoContact]
            .into_iter()
            .any(|f| self.contains(f))
    }

    /// Flags that make a valid number unusable as the patient's current value: demonstration,
    /// test, or stored data.
    pub fn marks_not_live(self) -> bool {
        [Flag::Demo, Flag::Test, Flag::Stored]
            .into_iter()
            .any(|f| self.contains(f))
    }
}

impl FromIterator<Flag> for Flags {
    fn from_iter<I: IntoIterator<Item = Flag>>(iter: I) -> Self {
        let mut flags = Flags::EMPTY;
        for f in iter {
            flags.insert(f);
        }
        flags
    }
}

impl Serialize for Flags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Flags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Flag>::deserialize(d)?.into_iter().collect())
    }
}
