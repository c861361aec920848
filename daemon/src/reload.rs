//! SIGHUP (`systemctl reload vigil`): re-read the configuration and apply what can change live.
//!
//! A configuration that does not pass the same checks as `vigil check-config` changes nothing:
//! the daemon keeps running on the one it has and logs every problem. One that passes applies
//! at once:
//! - users and their tokens (a display that connects next is checked against the new list; a
//!   display already connected with a token that was removed is closed);
//! - the alarm profile and its overrides, and devices added or removed: the core rebuilds its
//!   engine under the new profile and restores the running session into it, as a restart does
//!   (see `core::reconfigure`), so alarms the new profile still defines keep their ids and
//!   acknowledgements and nothing is re-announced; a device removed on purpose leaves the
//!   room without a disconnect alarm, and one whose settings changed is removed and added.
//!
//! Everything else (the address, TLS, the record, the room, the log format) is read at start
//! only: a change there is logged as waiting for a restart, and the running settings stay in
//! force.

use crate::config::{Config, User};
use crate::core::{CoreHandle, Reconfigure};
use crate::device_set::DeviceSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;

/// The users the display server checks tokens against, swappable while it runs.
#[derive(Clone)]
pub struct Users {
    list: Arc<RwLock<Arc<Vec<User>>>>,
    changed: watch::Sender<u64>,
}

impl Users {
    /// The users of the configuration the daemon starts with.
    pub fn new(users: Vec<User>) -> Users {
        Users {
            list: Arc::new(RwLock::new(Arc::new(users))),
            changed: watch::Sender::new(0),
        }
    }

    /// The person a token belongs to, in the current list.
    pub fn find(&self, token: &str) -> Option<User> {
        crate::config::find_user(&self.current(), token).cloned()
    }

    /// Whether `user` (name, role and token) is still in the current list.
    pub fn still_valid(&self, user: &User) -> bool {
        self.current().iter().any(|u| u == user)
    }

    /// Fires after each replacement, so that open sessions can check they are still allowed.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn current(&self) -> Arc<Vec<User>> {
        match self.list.read() {
            Ok(list) => list.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, users: Vec<User>) {
        match self.list.write() {
            Ok(mut list) => *list = Arc::new(users),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(users),
        }
        self.changed.send_modify(|n| *n += 1);
    }
}

/// What a reload can change in a running daemon (see `Daemon::live`).
#[derive(Clone)]
pub struct Live {
    /// The users the display server checks tokens against.
    pub users: Users,
    /// The core, which takes a new profile and devices.
    pub core: CoreHandle,
    /// The running drivers.
    pub devices: Arc<Mutex<DeviceSet>>,
}

/// What one reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The file passed; users, profile and devices are in force, and the named settings wait
    /// for a restart.
    Applied {
        /// Users now in force.
        users: usize,
        /// Settings that changed and are in force now, besides users (`devices`, `alarm
        /// profile and overrides`).
        live: Vec<&'static str>,
        /// Settings that changed but apply only at a restart.
        need_restart: Vec<&'static str>,
    },
    /// The file did not pass; nothing changed.
    Refused(String),
}

/// Re-reads one configuration file into a running daemon.
pub struct Reloader {
    path: PathBuf,
    running: Config,
    live: Live,
}

impl Reloader {
    /// For the daemon started with `running` (read from `path`).
    pub fn new(path: PathBuf, running: Config, live: Live) -> Reloader {
        Reloader {
            path,
            running,
            live,
        }
    }

    /// Reads the file again and applies what it can; logs what it did and why.
    pub async fn reload(&mut self) -> Outcome {
        let path = self.path.clone();
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .map_err(|e| e.to_string())
            .and_then(|loaded| loaded.map_err(|e| e.to_string()));
        let new = match loaded {
            Ok(new) => new,
            Err(e) => {
                tracing::error!(file = %self.path.display(), problems = %e, "configuration reload refused: the running configuration stays in force");
                return Outcome::Refused(e);
            }
        };
        let need_restart = restart_only_changes(&self.running, &new);
        if new.users != self.running.users {
            self.live.users.replace(new.users.clone());
            self.running.users = new.users.clone();
        }
        let live = self.apply_profile_and_devices(&new).await;
        let users = self.running.users.len();
        if need_restart.is_empty() {
            tracing::info!(
                users,
                ?live,
                "configuration reloaded: users, tokens, profile and devices in force"
            );
        } else {
            tracing::warn!(users, ?live, waiting_for_restart = ?need_restart, "configuration reloaded: users, tokens, profile and devices in force; these settings apply at the next restart (systemctl restart vigil), the running ones stay until then");
        }
        Outcome::Applied {
            users,
            live,
            need_restart,
        }
    }

    /// Hands a changed profile and the devices added or removed to the core; returns what
    /// changed.
    async fn apply_profile_and_devices(&mut self, new: &Config) -> Vec<&'static str> {
        let (old, next) = (&self.running.devices, &new.devices);
        // A device whose settings changed (port, format, ...) is removed and added.
        let removed: Vec<String> = old
            .iter()
            .filter(|d| !next.contains(d))
            .map(|d| d.id.clone())
            .collect();
        let added: Vec<_> = next.iter().filter(|d| !old.contains(d)).collect();
        let profile_changed = new.profile != self.running.profile;
        let mut live = Vec::new();
        if !removed.is_empty() || !added.is_empty() {
            live.push("devices");
        }
        if profile_changed {
            live.push("alarm profile and overrides");
        }
        if live.is_empty() {
            return live;
        }
        let added = {
            let mut devices = match self.live.devices.lock() {
                Ok(devices) => devices,
                Err(poisoned) => poisoned.into_inner(),
            };
            for id in &removed {
                devices.stop(id);
            }
            added
                .into_iter()
                .map(|spec| {
                    let (handle, format) = devices.start(spec);
                    (spec.id.clone(), handle, format)
                })
                .collect()
        };
        let change = Reconfigure {
            profile: new.profile.clone(),
            profile_record: crate::daemon::profile_record(&new.profile),
            removed,
            added,
        };
        if !self.live.core.reconfigure(change).await {
            tracing::error!("the core has stopped: the new profile and devices were not applied");
        }
        self.running.profile = new.profile.clone();
        self.running.devices = new.devices.clone();
        live
    }
}

/// The settings that differ and are read only at start.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |differs: bool, what| {
        if differs {
            changed.push(what)
        }
    };
    check(old.listen != new.listen, "listen");
    check(old.room != new.room, "room");
    check(old.storage_path != new.storage_path, "storage path");
    check(old.retention_days != new.retention_days, "retention_days");
    check(old.log_format != new.log_format, "log_format");
    check(old.tls.is_some() != new.tls.is_some(), "tls");
    check(old.central != new.central, "central");
    changed
}

/// Listens for SIGHUP from now on: install it before the daemon starts, so that a reload
/// during start-up is kept instead of SIGHUP's default action ending the process.
#[cfg(unix)]
pub fn listen() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}

/// Reloads on every SIGHUP until the runtime stops.
#[cfg(unix)]
pub fn serve(
    mut hangups: tokio::signal::unix::Signal,
    mut reloader: Reloader,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let _ = reloader.reload().await;
        }
    })
}
