//! A real `nats-server -js` for the tests: on a free loopback port with a temporary store, that
//! a test can kill and start again (same port, same store) to play an outage.
//!
//! Where `nats-server` is not installed the NATS tests cannot run. With `VIGIL_REQUIRE_NATS=1`
//! (CI sets it after installing it) that is a failure; without it, they print NOT RUN and pass.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running (or, after [`NatsServer::kill`], stopped) `nats-server` with JetStream.
pub struct NatsServer {
    exe: PathBuf,
    port: u16,
    store: PathBuf,
    child: Option<Child>,
    /// The server's authorization: its configuration file and the login the harness uses.
    auth: Option<(PathBuf, String, String)>,
}

/// Where `nats-server` is: on PATH, or Debian's /usr/sbin (not on a user's PATH).
pub fn find_nats_server() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("nats-server"))
        .find(|exe| exe.is_file())
}

/// A loopback port that is free now, outside the kernel's ephemeral range (32768-60999), so that
/// no client socket of any test takes it while a server is down for an outage.
fn free_port() -> u16 {
    loop {
        let port = 20_000 + (crate::fastrand_u64() % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl NatsServer {
    /// Starts a server, or explains why the NATS tests cannot run here (`None`: return early).
    pub async fn start() -> Option<NatsServer> {
        Self::start_inner(None).await
    }

    /// Starts a server whose configuration is `config` (an `authorization { ... }` block, as
    /// in docs/nats/single.conf); the harness signs in as `user` with `password`.
    pub async fn start_with_config(config: &str, user: &str, password: &str) -> Option<NatsServer> {
        Self::start_inner(Some((config, user, password))).await
    }

    async fn start_inner(config: Option<(&str, &str, &str)>) -> Option<NatsServer> {
        let Some(exe) = find_nats_server() else {
            if std::env::var("VIGIL_REQUIRE_NATS").is_ok_and(|v| v == "1") {
                panic!("nats-server is required for the NATS tests: apt-get install nats-server");
            }
            eprintln!("NOT RUN: nats-server not installed (apt-get install nats-server)");
            return None;
        };
        let store = std::env::temp_dir().join(format!(
            "vigil-nats-{}-{}",
            std::process::id(),
            crate::fastrand_u64()
        ));
        std::fs::create_dir_all(&store).expect("store dir");
        let mut server = NatsServer {
            exe,
            port: 0,
            auth: config.map(|(text, user, password)| {
                let file = store.join("server.conf");
                std::fs::write(&file, text).expect("server.conf");
                (file, user.to_string(), password.to_string())
            }),
            store,
            child: None,
        };
        // A port another test's server took meanwhile makes ours exit at once: try another.
        for _ in 0..20 {
            server.port = free_port();
            if server.try_start().await {
                return Some(server);
            }
        }
        panic!("nats-server did not start on any of 20 ports");
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server process's id while it runs (for the benchmark's CPU count).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server at once (SIGKILL), as a crash or a cut cable would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store, and waits until it takes
    /// connections (at most 20 s).
    pub async fn restart(&mut self) {
        assert!(
            self.try_start().await,
            "nats-server could not start again on port {}: another program took it",
            self.port
        );
    }

    /// Starts the server on `self.port`; false if it exited (the port is taken) or another
    /// server answers there. Every test's server has its own name, which the check reads back, so
    /// a test never talks to another test's server by mistake.
    async fn try_start(&mut self) -> bool {
        self.kill();
        let mut command = Command::new(&self.exe);
        if let Some((file, ..)) = &self.auth {
            command.arg("-c").arg(file);
        }
        let mut child = command
            .args(["-js", "-a", "127.0.0.1", "-n"])
            .arg(self.name())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        for _ in 0..200 {
            if child.try_wait().ok().flatten().is_some() {
                return false;
            }
            if let Ok(Ok(client)) =
                tokio::time::timeout(Duration::from_secs(2), self.connect_harness()).await
            {
                let ours = client.server_info().server_name == self.name();
                if ours {
                    self.child = Some(child);
                    return true;
                }
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("nats-server did not take connections on port {}", self.port);
    }

    /// This server's name: its store's folder name, unique per test.
    fn name(&self) -> String {
        self.store
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    async fn connect_harness(&self) -> Result<async_nats::Client, async_nats::ConnectError> {
        match &self.auth {
            None => async_nats::connect(self.url()).await,
            Some((_, user, password)) => self.client_as(user, password).await,
        }
    }

    /// A client of this server signed in as `user` (for a server started with a configuration).
    pub async fn client_as(
        &self,
        user: &str,
        password: &str,
    ) -> Result<async_nats::Client, async_nats::ConnectError> {
        async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
            .connect(self.url())
            .await
    }

    /// A client of this server (signed in as the harness's login where the server has one).
    pub async fn client(&self) -> async_nats::Client {
        self.connect_harness().await.expect("connect")
    }

    /// Every message the stream `stream` holds on `subject`, in order, as JSON.
    pub async fn stored(&self, stream: &str, subject: &str) -> Vec<serde_json::Value> {
        stored_messages(&self.client().await, stream, subject)
            .await
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }
}

/// Every message `stream` holds on `subject`, in order: its `Nats-Msg-Id` and its JSON.
pub async fn stored_messages(
    client: &async_nats::Client,
    stream: &str,
    subject: &str,
) -> Vec<(String, serde_json::Value)> {
    let js = async_nats::jetstream::new(client.clone());
    let mut stream = js.get_stream(stream).await.expect("stream exists");
    let last = stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let Ok(m) = stream.get_raw_message(seq).await else {
            continue; // deleted or aged out
        };
        if m.subject.as_str() != subject {
            continue;
        }
        let id = m
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str().to_string())
            .unwrap_or_default();
        out.push((
            id,
            serde_json::from_slice(&m.payload).expect("JSON payload"),
        ));
    }
    out
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
