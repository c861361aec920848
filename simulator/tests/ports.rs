//! `vigil-sim run` as a program that uses its serial devices sees it: the printed paths open at
//! once onto the ports that carry the data, a device does not spin while a host has its port
//! open, and a stale link at a path is replaced, never followed. Every wait is bounded.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio_serial::{SerialPort, SerialPortBuilderExt, SerialStream};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `vigil-sim run` with `devices` at speed 1, links in `dir`.
fn simulator(dir: &Path, devices: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil-sim"));
    cmd.args(["run", "--link-dir"]).arg(dir);
    for d in devices {
        cmd.args(["--device", d]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

async fn next_path(lines: &mut Lines<BufReader<ChildStdout>>) -> PathBuf {
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("vigil-sim prints each port's path")
        .unwrap()
        .expect("vigil-sim is running");
    PathBuf::from(line.trim())
}

/// Opens a port as Vigil's serial driver does. The driver takes an exclusive `flock`, and a
/// sibling test that spawns a process at that moment holds a copy of the descriptor (and so the
/// lock) until its child execs: a port just closed may be busy for a few milliseconds, and is
/// asked again (at most 5 s), as the driver's reconnect does.
fn open(path: &Path) -> SerialStream {
    let give_up = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio_serial::new(path.to_string_lossy(), 9600).open_native_async() {
            Ok(port) => return port,
            Err(e)
                if e.kind == tokio_serial::ErrorKind::NoDevice
                    && std::time::Instant::now() < give_up =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("cannot open {}: {e}", path.display()),
        }
    }
}

/// Reads until `want` bytes came (at most 10 s).
async fn read_some(port: &mut SerialStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while got.len() < want {
        let n = tokio::time::timeout(Duration::from_secs(10), port.read(&mut buf))
            .await
            .expect("the port carries the device's data")
            .unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// Read system calls the process has made so far (`syscr` in `/proc/PID/io`).
fn read_syscalls(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("syscr:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn each_printed_path_opens_at_once_onto_the_port_that_carries_the_data() {
    let dir = temp_dir("printed");
    let devices = ["masimo", "nonin-2", "masimo"];
    let (_child, mut lines) = simulator(&dir, &devices);
    let mut ports = Vec::new();
    for _ in devices {
        // Opened the moment its path is printed, before the next path comes.
        let path = next_path(&mut lines).await;
        let terminal = std::fs::read_link(&path).unwrap();
        ports.push((open(&path), path, terminal));
    }
    for (port, path, terminal) in &mut ports {
        let data = read_some(port, 20).await;
        assert!(!data.is_empty());
        assert_eq!(
            &std::fs::read_link(&*path).unwrap(),
            terminal,
            "{} still points at the terminal it pointed at when printed",
            path.display()
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_device_waits_for_its_port_instead_of_polling_it() {
    let dir = temp_dir("spin");
    let (child, mut lines) = simulator(&dir, &["masimo", "nonin-2"]);
    let pid = child.id().unwrap();
    let masimo = next_path(&mut lines).await;
    let nonin = next_path(&mut lines).await;
    // A host opens, closes and opens again (as Vigil does when it reconnects), then listens.
    drop(open(&masimo));
    let mut hosts = [open(&masimo), open(&nonin)];
    for host in &mut hosts {
        read_some(host, 20).await;
    }
    let before = read_syscalls(pid);
    for host in &mut hosts {
        read_some(host, 200).await;
    }
    let reads = read_syscalls(pid) - before;
    // The hosts send nothing, so a device that waits for them has nothing to read. One that
    // polled its port made about 36,000 read calls a second.
    assert!(
        reads < 100,
        "{reads} read calls while two devices sent 200 bytes each"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_stale_link_is_replaced_never_followed() {
    let dir = temp_dir("stale");
    // A killed simulator's link to a terminal that is gone, and one to a terminal that now
    // belongs to another program (this test).
    let dangling = dir.join("masimo-0");
    std::os::unix::fs::symlink("/dev/pts/999999", &dangling).unwrap();
    let (mut others_master, others_terminal) = SerialStream::pair().unwrap();
    let others_terminal_path = PathBuf::from(others_terminal.name().unwrap());
    let taken = dir.join("nonin-2-1");
    std::os::unix::fs::symlink(&others_terminal_path, &taken).unwrap();

    let (_child, mut lines) = simulator(&dir, &["masimo", "nonin-2"]);
    for (stale_target, expected_path) in [
        (PathBuf::from("/dev/pts/999999"), &dangling),
        (others_terminal_path.clone(), &taken),
    ] {
        let path = next_path(&mut lines).await;
        assert_eq!(&path, expected_path);
        let terminal = std::fs::read_link(&path).unwrap();
        assert_ne!(terminal, stale_target, "{} was replaced", path.display());
        assert!(terminal.starts_with("/dev/pts/"), "{}", terminal.display());
        let mut port = open(&path);
        assert!(!read_some(&mut port, 20).await.is_empty());
    }
    // Nothing was written into the other program's terminal.
    let mut buf = [0u8; 64];
    let heard = others_master.try_read(&mut buf);
    assert!(
        matches!(&heard, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the other terminal's program heard nothing: {heard:?}"
    );
    drop(others_terminal);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_path_that_is_not_a_link_is_refused_and_left_alone() {
    let dir = temp_dir("file");
    let file = dir.join("masimo-0");
    std::fs::write(&file, "someone's notes").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_vigil-sim"))
        .args(["run", "--device", "masimo", "--link-dir"])
        .arg(&dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("vigil-sim refuses at once")
        .unwrap();
    assert!(!out.status.success());
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("not a link"), "{message}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "someone's notes");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn stopping_the_simulator_removes_its_links() {
    let dir = temp_dir("stop");
    let (mut child, mut lines) = simulator(&dir, &["masimo"]);
    let path = next_path(&mut lines).await;
    assert!(std::fs::symlink_metadata(&path).is_ok());
    let pid = child.id().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        std::fs::symlink_metadata(&path).is_err(),
        "{} is gone",
        path.display()
    );
    let _ = std::fs::remove_dir_all(dir);
}
