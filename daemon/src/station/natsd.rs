//! A private `nats-server -js` for `vigil demo --rooms N`: found on the PATH or in /usr/sbin
//! (Debian's package puts it there), on a free loopback port, with its store in a temporary
//! folder removed when it stops.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How to install the server, for the message when it is missing.
pub const INSTALL_HINT: &str = "nats-server is not installed: `apt-get install nats-server` \
     (Debian, Ubuntu) or see https://docs.nats.io/running-a-nats-service/introduction/installation";

/// The `nats-server` binary: on the PATH, else in /usr/sbin.
pub fn find() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}

/// A running `nats-server -js`; stopped (and its store removed) when dropped.
pub struct NatsServer {
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
    store: PathBuf,
}

impl NatsServer {
    /// Starts one and waits until it accepts connections (at most 10 s).
    pub fn start() -> Result<NatsServer> {
        let binary = find().ok_or_else(|| anyhow::anyhow!(INSTALL_HINT))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let store = std::env::temp_dir().join(format!("vigil-nats-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&store)?;
        let child = Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let server = NatsServer {
            url: format!("nats://127.0.0.1:{port}"),
            child,
            store,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        anyhow::bail!(
            "{} did not start listening on port {port}",
            binary.display()
        )
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
