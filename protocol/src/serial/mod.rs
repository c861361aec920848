//! Serial byte-stream formats. Each module has a [`FrameDecoder`](crate::stream::FrameDecoder)
//! for the device-to-host direction, the encoders the simulator needs, and the host commands.

pub mod contec;
pub mod masimo;
pub mod nonin;
pub mod suntech;

/// Line settings a serial port needs for a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LineSettings {
    /// Baud rate.
    pub baud: u32,
    /// Data bits (5–8).
    pub data_bits: u8,
    /// Parity.
    pub parity: Parity,
    /// Stop bits (1 or 2).
    pub stop_bits: u8,
}

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    /// No parity bit.
    None,
    /// Odd parity.
    Odd,
    /// Even parity.
    Even,
}

impl LineSettings {
    /// 8 data bits, no parity, 1 stop bit at `baud`.
    pub const fn n81(baud: u32) -> Self {
        LineSettings {
            baud,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
        }
    }
}
