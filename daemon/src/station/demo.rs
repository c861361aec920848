//! `vigil demo --rooms N`: N simulated rooms publishing to a private `nats-server`, and a central
//! showing them, on one command. Everything is simulated data, never a patient.

use super::natsd::NatsServer;
use super::Central;
use crate::config::{toml_string, CentralConfig, CentralFile};
use crate::demo::{Demo, DemoArgs, DemoRoom, Tokens};
use crate::nats::NatsSettings;
use anyhow::{Context, Result};
use std::net::SocketAddr;

/// The demo's site.
pub const SITE: &str = "demo";

/// A running site demo.
pub struct SiteDemo {
    /// The rooms, in order.
    pub rooms: Vec<Demo>,
    /// The central.
    pub central: Central,
    /// The people (the same tokens in every room and at the central).
    pub tokens: Tokens,
    /// The NATS server's URL.
    pub nats_url: String,
    nats: NatsServer,
}

impl SiteDemo {
    /// Starts `nats-server -js`, `rooms` simulated rooms (their displays on free ports) and the
    /// central (at `args.listen`).
    pub async fn start(args: &DemoArgs, rooms: usize) -> Result<SiteDemo> {
        if !(1..=16).contains(&rooms) {
            anyhow::bail!("--rooms takes 1 to 16");
        }
        if args.db.is_some() {
            anyhow::bail!("--db keeps one room's record; it does not go with --rooms");
        }
        let nats = tokio::task::spawn_blocking(NatsServer::start).await??;
        let token = || crate::config::new_token().context("no random source for the demo's tokens");
        let tokens = Tokens {
            nurse: token()?,
            viewer: token()?,
            provider: token()?,
        };
        // The site's key the central signs its requests to the rooms with, fresh each run.
        let action_key = token()?;
        let mut started = Vec::new();
        for n in 1..=rooms {
            let room = DemoRoom {
                name: format!("Room {n} (simulated)"),
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                seed: args.seed.wrapping_add(n as u64),
                central: Some(CentralFile {
                    connection: NatsSettings {
                        action_key: Some(action_key.clone()),
                        ..NatsSettings::url(nats.url.clone())
                    },
                    site: Some(SITE.into()),
                    room_id: Some(format!("room-{n}")),
                }),
            };
            started.push(Demo::start_room(args, room, tokens.clone()).await?);
        }
        let config = central_config(args.listen, (&nats.url, &action_key), &tokens)?;
        let central = Central::start(config).await?;
        Ok(SiteDemo {
            rooms: started,
            central,
            tokens,
            nats_url: nats.url.clone(),
            nats,
        })
    }

    /// Stops the central, the rooms, then the NATS server.
    pub async fn stop(self) {
        self.central.stop().await;
        for room in self.rooms {
            room.stop().await;
        }
        drop(self.nats);
    }
}

/// The central's configuration: the demo's three people, the private server.
fn central_config(
    listen: SocketAddr,
    (nats, action_key): (&str, &str),
    tokens: &Tokens,
) -> Result<CentralConfig> {
    let text = format!(
        "listen = {}\nsite = {}\n# Simulated data only.\nallow_plaintext = true\n\
         [nats]\nnats = {}\naction_key = {}\n\
         [[user]]\nname = \"Demo nurse\"\nrole = \"nurse\"\ntoken = {}\n\
         [[user]]\nname = \"Demo provider\"\nrole = \"provider\"\ntoken = {}\n\
         [[user]]\nname = \"Demo viewer\"\nrole = \"viewer\"\ntoken = {}\n",
        toml_string(&listen.to_string()),
        toml_string(SITE),
        toml_string(nats),
        toml_string(action_key),
        toml_string(&tokens.nurse),
        toml_string(&tokens.provider),
        toml_string(&tokens.viewer),
    );
    CentralConfig::parse(&text, "demo central", std::path::Path::new("."))
        .map_err(|e| anyhow::anyhow!("{e}"))
}
