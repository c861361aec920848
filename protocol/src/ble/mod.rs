//! BLE GATT characteristic values of the standard health profiles. Each decoder takes one
//! complete characteristic value; a value whose flags promise fields it does not hold is
//! rejected whole, never decoded in part.

pub mod blood_pressure;
pub mod heart_rate;
pub mod plx;

use crate::error::DecodeError;
use crate::model::DeviceTime;

/// 16-bit UUIDs of the services and characteristics Vigil uses.
pub mod uuid {
    /// Heart Rate service.
    pub const HEART_RATE_SERVICE: u16 = 0x180D;
    /// Blood Pressure service.
    pub const BLOOD_PRESSURE_SERVICE: u16 = 0x1810;
    /// Pulse Oximeter service.
    pub const PULSE_OXIMETER_SERVICE: u16 = 0x1822;
    /// Battery service.
    pub const BATTERY_SERVICE: u16 = 0x180F;
    /// Heart Rate Measurement (notify).
    pub const HEART_RATE_MEASUREMENT: u16 = 0x2A37;
    /// Blood Pressure Measurement (indicate only).
    pub const BLOOD_PRESSURE_MEASUREMENT: u16 = 0x2A35;
    /// Intermediate Cuff Pressure (notify).
    pub const INTERMEDIATE_CUFF_PRESSURE: u16 = 0x2A36;
    /// PLX Spot-check Measurement (indicate).
    pub const PLX_SPOT_CHECK: u16 = 0x2A5E;
    /// PLX Continuous Measurement (notify).
    pub const PLX_CONTINUOUS: u16 = 0x2A5F;
    /// PLX Features (read).
    pub const PLX_FEATURES: u16 = 0x2A60;
    /// Battery Level (read, notify optional).
    pub const BATTERY_LEVEL: u16 = 0x2A19;
}

/// Reads little-endian fields from one characteristic value, failing with
/// [`DecodeError::Truncated`] when the value runs out.
pub(crate) struct Fields<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Fields { bytes, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos + n;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated {
                needed: end,
                got: self.bytes.len(),
            })?;
        self.pos = end;
        Ok(slice)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(crate) fn u24(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(3)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], 0]))
    }

    /// The 7-byte Date Time characteristic; zero year, month or day mean "not known".
    pub(crate) fn date_time(&mut self) -> Result<DeviceTime, DecodeError> {
        let year = self.u16()?;
        let month = self.u8()?;
        let day = self.u8()?;
        let (hour, minute, second) = (self.u8()?, self.u8()?, self.u8()?);
        Ok(DeviceTime {
            year: (year != 0).then_some(year),
            month: (month != 0).then_some(month),
            day: (day != 0).then_some(day),
            hour,
            minute,
            second,
        })
    }

    pub(crate) fn remaining(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }
}

/// Appends the 7-byte Date Time characteristic.
pub(crate) fn put_date_time(out: &mut Vec<u8>, t: &DeviceTime) {
    out.extend_from_slice(&t.year.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&[
        t.month.unwrap_or(0),
        t.day.unwrap_or(0),
        t.hour,
        t.minute,
        t.second,
    ]);
}
