//! A simulated serial device's port: a pseudo-terminal whose host side is reachable at a link,
//! made to behave like a port on a real device.
//!
//! - The link is made (or a stale one replaced) before anyone is told its path, and it points at
//!   the terminal that carries the data for as long as the port is open.
//! - The device holds the host side open itself, as a real port exists whether or not a program
//!   has it open. Without that, the kernel reports a hang-up on the device side once the first
//!   host closes; tokio keeps a hang-up ready for good, so every read returned "try again" at
//!   once and each device spun (tens of thousands of empty reads a second, near a whole core).
//!   With it, the device's reads wait for a host's bytes.
//! - Bytes no host reads within [`UNREAD_LIMIT`] are dropped, as a cable drops them when nothing
//!   listens: a host that opens the port late reads current values, never a backlog of old ones.
//! - Closing the port removes its link (a device that is unplugged vanishes from `/dev`), so a
//!   host never opens a terminal number the kernel has since given to another program.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::{ClearBuffer, SerialPort, SerialStream};

/// Bytes a host leaves unread this long are dropped: nobody is listening. Real time, not
/// scenario or tokio time: it is about a real program reading a real terminal, and a test under
/// tokio's paused clock must not have bytes dropped before its host had a moment to read them.
pub const UNREAD_LIMIT: Duration = Duration::from_secs(1);

/// How long a write may wait for room in the terminal before its bytes are dropped: like a real
/// device, the simulator never waits for a listener.
const WRITE_WAIT: Duration = Duration::from_millis(50);

/// A simulated serial device's end of a pseudo-terminal, reachable by hosts at [`PtyPort::link`].
pub struct PtyPort {
    device_side: SerialStream,
    /// Held open so the device side never sees a hang-up; also where unread bytes wait.
    host_side: SerialStream,
    link: PathBuf,
    terminal: PathBuf,
    /// Bytes waiting for a host just after the last write.
    unread: u32,
    /// When a host was last seen reading (or nothing was waiting).
    read_seen: Instant,
}

impl PtyPort {
    /// Opens a new pseudo-terminal and points `link` at it. A link already there (a stale one
    /// from a killed simulator, or one to another terminal) is replaced, never followed; a file
    /// that is not a link is left alone and refused.
    pub fn open(link: &Path) -> io::Result<PtyPort> {
        let (device_side, host_side) = SerialStream::pair().map_err(io::Error::other)?;
        let terminal = PathBuf::from(
            host_side
                .name()
                .ok_or_else(|| io::Error::other("the pseudo-terminal has no name"))?,
        );
        relink(&terminal, link)?;
        Ok(PtyPort {
            device_side,
            host_side,
            link: link.to_path_buf(),
            terminal,
            unread: 0,
            read_seen: Instant::now(),
        })
    }

    /// Where hosts open the port.
    pub fn link(&self) -> &Path {
        &self.link
    }

    /// The terminal the link points at (`/dev/pts/N`).
    pub fn terminal(&self) -> &Path {
        &self.terminal
    }

    /// Waits for bytes from a host. Returns at once only when a host has written.
    pub async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.device_side.read(buf).await
    }

    /// Sends bytes towards the host, first dropping what no host has read for
    /// [`UNREAD_LIMIT`]. Bytes that do not fit within a short wait are dropped too.
    pub async fn send(&mut self, bytes: &[u8]) {
        let waiting = self.host_side.bytes_to_read().unwrap_or(0);
        let now = Instant::now();
        if waiting == 0 || waiting < self.unread {
            self.read_seen = now;
        } else if now.duration_since(self.read_seen) >= UNREAD_LIMIT {
            let _ = self.host_side.clear(ClearBuffer::Input);
            self.read_seen = now;
        }
        if !bytes.is_empty() {
            let _ = tokio::time::timeout(WRITE_WAIT, self.device_side.write_all(bytes)).await;
        }
        self.unread = self.host_side.bytes_to_read().unwrap_or(0);
    }
}

impl Drop for PtyPort {
    fn drop(&mut self) {
        // Only our own link: a newer simulator may have taken the path over.
        if std::fs::read_link(&self.link).is_ok_and(|t| t == self.terminal) {
            let _ = std::fs::remove_file(&self.link);
        }
    }
}

/// Points `link` at `target` atomically: a new symlink renamed over the old path, which replaces
/// a link itself and never what it points to.
fn relink(target: &Path, link: &Path) -> io::Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(link) {
        if !meta.file_type().is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a link: not replacing it",
                    link.display()
                ),
            ));
        }
    }
    let name = link
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} is not a file path", link.display())))?;
    let tmp = link.with_file_name(format!(
        ".{}.{}.new",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report
    use super::*;
    use tokio_serial::SerialPortBuilderExt;

    #[tokio::test]
    async fn a_host_that_opens_late_reads_current_bytes_not_a_backlog() {
        let dir = std::env::temp_dir().join(format!("vigil-pty-late-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("port");
        let mut port = PtyPort::open(&link).unwrap();
        // A device sends ten times a second for 1.5 s while no host has the port open.
        for i in 0..15 {
            port.send(format!("msg-{i:02}\n").as_bytes()).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Opened as Vigil's driver opens it (which does not flush what is waiting).
        let mut host = tokio_serial::new(link.to_string_lossy(), 9600)
            .open_native_async()
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = host.try_read(&mut buf).unwrap();
        let waiting = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(waiting.ends_with("msg-14\n"), "{waiting:?}");
        assert!(
            !waiting.contains("msg-00"),
            "bytes nobody read for 1.5 s were dropped: {waiting:?}"
        );
        drop(port);
        assert!(std::fs::symlink_metadata(&link).is_err(), "the link went");
        let _ = std::fs::remove_dir_all(dir);
    }
}
