//! An HL7 device's `tls` table, spelled like Vigil's other TLS keys: on a `listen` device
//! `{ cert = PATH, key = PATH }` as the display's `[tls]` (and `client_ca = PATH` to require
//! and check the monitor's or gateway's certificate), on a `connect` device `{ ca = PATH }` as
//! a `[[forward]]`'s. The files are read and checked here, at load.

use super::super::check::Check;
use super::super::forward::{ca_roots, client_tls};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use vigil_drivers::hl7::{server_name, Endpoint, Hl7Tls};

/// The `tls` table of a device at `at` whose endpoint is `endpoint` (None when it was refused),
/// loaded; `Ok(None)` without a `tls` key, `Err(())` after reporting what is wrong.
pub(super) fn tls(
    t: &toml::Table,
    at: &str,
    endpoint: Option<&Endpoint>,
    base: &Path,
    c: &mut Check<'_>,
) -> Result<Option<Hl7Tls>, ()> {
    let Some(value) = t.get("tls") else {
        return Ok(None);
    };
    let here = format!("{at}tls");
    let toml::Value::Table(tls) = value else {
        c.error(&here, "must be a table: { cert = \"hl7.pem\", key = \"hl7.key\" } on a listen device, { ca = \"ca.pem\" } on a connect device");
        return Err(());
    };
    let keys = format!("{here}.");
    c.unknown_keys(tls, &["cert", "key", "client_ca", "ca"], &keys);
    let mut file = |key: &'static str| c.string(tls, key, &keys).map(|p| (key, base.join(p)));
    let (cert, key, client_ca, ca) = (file("cert"), file("key"), file("client_ca"), file("ca"));
    match endpoint {
        None if !t.contains_key("listen") && !t.contains_key("connect") => {
            c.error(
                &here,
                "needs listen or connect: TLS secures the connection they open",
            );
            Err(())
        }
        None => Err(()),
        Some(Endpoint::Listen(_)) => {
            if ca.is_some() {
                c.error(format!("{here}.ca"), "is for a connect device (the monitor's certificate is checked against it); a listen device presents cert and key, and checks the monitor's with client_ca");
                return Err(());
            }
            let (Some((_, cert)), Some((_, key))) = (cert, key) else {
                c.error(
                    &here,
                    "a listen device needs both cert and key (PEM files) to present",
                );
                return Err(());
            };
            let files: Vec<(&str, &Path)> = [("cert", cert.as_path()), ("key", key.as_path())]
                .into_iter()
                .chain(client_ca.as_ref().map(|(k, p)| (*k, p.as_path())))
                .collect();
            match server(&cert, &key, client_ca.as_ref().map(|(_, p)| p.as_path())) {
                Ok(config) => Ok(Some(Hl7Tls::server(config, source(&files), digest(&files)))),
                Err((which, e)) => {
                    c.error(format!("{here}{which}"), e);
                    Err(())
                }
            }
        }
        Some(Endpoint::Connect(peer)) => {
            if let Some((k, _)) = cert.iter().chain(&key).chain(&client_ca).next() {
                c.error(
                    format!("{here}.{k}"),
                    "is for a listen device; a connect device checks the monitor's certificate with ca",
                );
                return Err(());
            }
            let Some((_, ca)) = ca else {
                c.error(format!("{here}.ca"), "is required on a connect device: a PEM file with the CA certificate(s) the monitor's certificate is checked against");
                return Err(());
            };
            let host = peer.rsplit_once(':').map_or(peer.as_str(), |(h, _)| h);
            if let Err(e) = server_name(host) {
                c.error(format!("{at}connect"), e);
                return Err(());
            }
            match client_tls(&ca) {
                Ok(config) => {
                    let files = [("ca", ca.as_path())];
                    Ok(Some(Hl7Tls::client(config, source(&files), digest(&files))))
                }
                Err(e) => {
                    c.error(format!("{here}.ca"), e);
                    Err(())
                }
            }
        }
    }
}

/// The server configuration: the display's loader for the pair, and with `client_ca` a client
/// certificate is required and checked against it. On error, which key (`""`, `.client_ca`).
fn server(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, (&'static str, String)> {
    let pair = crate::tls::load(cert, key).map_err(|e| ("", e))?;
    let Some(ca) = client_ca else {
        return Ok(pair);
    };
    let roots = ca_roots(ca).map_err(|e| (".client_ca", e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .map_err(|e| (".client_ca", format!("{}: {e}", ca.display())))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ("", e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(pair.cert_resolver.clone());
    Ok(Arc::new(config))
}

/// Where the settings came from, for logs (paths, never contents).
fn source(files: &[(&str, &Path)]) -> String {
    let named: Vec<String> = files
        .iter()
        .map(|(k, p)| format!("{k}={}", p.display()))
        .collect();
    named.join(" ")
}

/// Identifies the files' contents, so that renewed certificates are new settings on reload.
fn digest(files: &[(&str, &Path)]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (_, path) in files {
        std::fs::read(path).unwrap_or_default().hash(&mut h);
    }
    h.finish()
}
