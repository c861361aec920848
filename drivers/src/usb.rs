//! Finding a USB-serial cable by vendor, product and serial number, so that a cable that
//! re-enumerates as a different `/dev/ttyUSB*` is found again. Reads sysfs directly (no libudev).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A USB device identity: `VID:PID` or `VID:PID:SERIAL` (hex ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbId {
    /// Vendor id.
    pub vendor: u16,
    /// Product id.
    pub product: u16,
    /// Serial number, when several identical cables must be told apart.
    pub serial: Option<String>,
}

impl fmt::Display for UsbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor, self.product)?;
        if let Some(s) = &self.serial {
            write!(f, ":{s}")?;
        }
        Ok(())
    }
}

/// A malformed `VID:PID[:SERIAL]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a USB id like 0403:6001 or 0403:6001:A1B2C3")]
pub struct BadUsbId(pub String);

impl FromStr for UsbId {
    type Err = BadUsbId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadUsbId(s.to_string());
        let mut parts = s.splitn(3, ':');
        let hex = |p: Option<&str>| {
            p.filter(|p| p.len() == 4)
                .and_then(|p| u16::from_str_radix(p, 16).ok())
        };
        let vendor = hex(parts.next()).ok_or_else(bad)?;
        let product = hex(parts.next()).ok_or_else(bad)?;
        let serial = parts.next().map(str::to_string);
        if serial.as_deref() == Some("") {
            return Err(bad());
        }
        Ok(UsbId {
            vendor,
            product,
            serial,
        })
    }
}

/// The USB identity of each tty under `sysfs` (normally `/sys`), with its device path under
/// `dev` (normally `/dev`).
pub fn usb_ttys(sysfs: &Path, dev: &Path) -> Vec<(PathBuf, UsbId)> {
    let Ok(entries) = fs::read_dir(sysfs.join("class/tty")) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, UsbId)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|entry| {
            let device = fs::canonicalize(entry.path().join("device")).ok()?;
            // Walk up from the interface to the USB device that carries the ids.
            let usb = device.ancestors().find(|p| p.join("idVendor").is_file())?;
            let read = |name: &str| {
                fs::read_to_string(usb.join(name))
                    .ok()
                    .map(|s| s.trim().to_string())
            };
            let id = UsbId {
                vendor: u16::from_str_radix(&read("idVendor")?, 16).ok()?,
                product: u16::from_str_radix(&read("idProduct")?, 16).ok()?,
                serial: read("serial"),
            };
            Some((dev.join(entry.file_name()), id))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The tty of the first cable that matches `want` (a serial number, when given, must match too).
pub fn find_tty(want: &UsbId, sysfs: &Path, dev: &Path) -> Option<PathBuf> {
    usb_ttys(sysfs, dev)
        .into_iter()
        .find(|(_, id)| {
            id.vendor == want.vendor
                && id.product == want.product
                && (want.serial.is_none() || want.serial == id.serial)
        })
        .map(|(path, _)| path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn fake_sysfs() -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "vigil-sysfs-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let add = |tty: &str, bus: &str, vid: &str, pid: &str, serial: &str| {
            let usb = root.join(format!("devices/pci0000:00/usb1/{bus}"));
            let iface = usb.join(format!("{bus}:1.0/{tty}"));
            fs::create_dir_all(&iface).unwrap();
            fs::write(usb.join("idVendor"), format!("{vid}\n")).unwrap();
            fs::write(usb.join("idProduct"), format!("{pid}\n")).unwrap();
            fs::write(usb.join("serial"), format!("{serial}\n")).unwrap();
            let class = root.join("class/tty").join(tty);
            fs::create_dir_all(&class).unwrap();
            symlink(&iface, class.join("device")).unwrap();
        };
        add("ttyUSB0", "1-1", "10c4", "ea60", "CONTEC01");
        add("ttyUSB1", "1-2", "0403", "6001", "FTDI-A");
        add("ttyUSB2", "1-3", "0403", "6001", "FTDI-B");
        // A built-in UART with no USB parent.
        fs::create_dir_all(root.join("class/tty/ttyS0")).unwrap();
        root
    }

    #[test]
    fn parses_ids() {
        assert_eq!(
            "0403:6001".parse::<UsbId>().unwrap(),
            UsbId {
                vendor: 0x0403,
                product: 0x6001,
                serial: None
            }
        );
        assert_eq!(
            "0403:6001:FTDI-B"
                .parse::<UsbId>()
                .unwrap()
                .serial
                .as_deref(),
            Some("FTDI-B")
        );
        for bad in ["0403", "403:6001", "zzzz:6001", "0403:6001:", ""] {
            assert!(bad.parse::<UsbId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_the_tty_of_a_cable_by_ids_and_serial() {
        let root = fake_sysfs();
        let dev = Path::new("/dev");
        let all = usb_ttys(&root, dev);
        assert_eq!(all.len(), 3, "{all:?}");
        assert_eq!(
            find_tty(&"10c4:ea60".parse().unwrap(), &root, dev),
            Some(PathBuf::from("/dev/ttyUSB0"))
        );
        assert_eq!(
            find_tty(&"0403:6001:FTDI-B".parse().unwrap(), &root, dev),
            Some(PathBuf::from("/dev/ttyUSB2"))
        );
        assert_eq!(find_tty(&"0403:6010".parse().unwrap(), &root, dev), None);
        fs::remove_dir_all(root).unwrap();
    }
}
