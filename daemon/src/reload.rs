//! SIGHUP (`systemctl reload vigil`): re-read the configuration and apply what can change live.
//!
//! A configuration that does not pass the same checks as `vigil check-config` changes nothing:
//! the daemon keeps running on the one it has and logs every problem. One that passes replaces
//! the users and their tokens at once (a display that connects next is checked against the new
//! list; a display already connected with a token that was removed is closed). Everything else
//! (devices, the alarm profile and its overrides, the address, TLS, the record) is read at start
//! only: a change there is logged as waiting for a restart, and the running settings stay in
//! force. Swapping a live engine's profile would re-evaluate alarms that are active or waiting on
//! their delay under rules they were not raised by, and removing a device mid-session would look
//! to the core like a lost link (an alarm); both are done by a restart, which the session record
//! survives.

use crate::config::{Config, User};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
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

/// What one reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The file passed; users are in force, and the named settings wait for a restart.
    Applied {
        /// Users now in force.
        users: usize,
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
    users: Users,
}

impl Reloader {
    /// For the daemon started with `running` (read from `path`), whose server checks `users`.
    pub fn new(path: PathBuf, running: Config, users: Users) -> Reloader {
        Reloader {
            path,
            running,
            users,
        }
    }

    /// Reads the file again and applies what it can; logs what it did and why.
    pub fn reload(&mut self) -> Outcome {
        let new = match Config::load(&self.path) {
            Ok(new) => new,
            Err(e) => {
                tracing::error!(file = %self.path.display(), problems = %e, "configuration reload refused: the running configuration stays in force");
                return Outcome::Refused(e.to_string());
            }
        };
        let need_restart = restart_only_changes(&self.running, &new);
        if new.users != self.running.users {
            self.users.replace(new.users.clone());
            self.running.users = new.users;
        }
        let users = self.running.users.len();
        if need_restart.is_empty() {
            tracing::info!(users, "configuration reloaded: users and tokens in force");
        } else {
            tracing::warn!(users, waiting_for_restart = ?need_restart, "configuration reloaded: users and tokens in force; these settings apply at the next restart (systemctl restart vigil), the running ones stay until then");
        }
        Outcome::Applied {
            users,
            need_restart,
        }
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
    check(old.devices != new.devices, "devices");
    check(old.profile != new.profile, "alarm profile and overrides");
    check(old.listen != new.listen, "listen");
    check(old.room != new.room, "room");
    check(old.storage_path != new.storage_path, "storage path");
    check(old.retention_days != new.retention_days, "retention_days");
    check(old.log_format != new.log_format, "log_format");
    check(old.tls.is_some() != new.tls.is_some(), "tls");
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
            let _ = tokio::task::block_in_place(|| reloader.reload());
        }
    })
}
