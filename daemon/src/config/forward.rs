//! The `[[forward]]` tables: the clinic's interface engines Vigil forwards readings and alarm
//! steps to over HL7 (MLLP), and how they are checked.

use super::check::{tables, Check};
use std::path::Path;
use std::sync::Arc;

/// One validated `[[forward]]`.
#[derive(Debug, Clone)]
pub struct ForwardSpec {
    /// `name`: names it in `/metrics`, on the display and in the logs (default `hl7-N`).
    pub name: String,
    /// `hl7`: the interface engine's `HOST:PORT`.
    pub host: String,
    /// The port of `hl7`.
    pub port: u16,
    /// `tls = { ca = PATH }`: TLS, trusting the CA certificates in that PEM file.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Splits `HOST:PORT` (a name, an IPv4 address, or a bracketed IPv6 address).
fn host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let valid = !host.is_empty()
        && host.contains(':') == s.starts_with('[')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    valid.then(|| (host.to_string(), port))
}

/// A TLS client configuration trusting only the certificates in the PEM file `ca` (a
/// `[[forward]]`'s, and an HL7 `connect` device's).
pub(super) fn client_tls(ca: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(ca_roots(ca)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The CA certificates in the PEM file `ca`: at least one, each usable as a trust anchor.
pub(super) fn ca_roots(ca: &Path) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{} is not a PEM certificate: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{} holds an unusable certificate: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{} holds no certificate", ca.display()));
    }
    Ok(roots)
}

pub(super) fn forwards(doc: &toml::Table, base: &Path, c: &mut Check<'_>) -> Vec<ForwardSpec> {
    let mut out: Vec<ForwardSpec> = Vec::new();
    for (n, t) in tables(doc, "forward", c) {
        let name = t.get("name").and_then(|v| v.as_str());
        let at = match name {
            Some(name) => format!("forward #{n} \"{name}\"."),
            None => format!("forward #{n}."),
        };
        c.enter("forward", n, &at);
        c.unknown_keys(t, &["name", "hl7", "tls"], &at);
        let name = match c.string(t, "name", &at) {
            None => format!("hl7-{n}"),
            Some(name) => {
                let ok = !name.is_empty()
                    && name.len() <= 64
                    && name
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
                if !ok {
                    c.error(
                        format!("{at}name"),
                        "must be 1 to 64 letters, digits, '-' or '_': it names the forward in /metrics",
                    );
                }
                name
            }
        };
        if out.iter().any(|f| f.name == name) {
            c.error(
                format!("{at}name"),
                format!("{name:?} names another [[forward]] too: each needs its own name"),
            );
        }
        let target = match c.string(t, "hl7", &at) {
            None => {
                c.error(
                    format!("{at}hl7"),
                    "is required: the interface engine's HOST:PORT (MLLP)",
                );
                None
            }
            Some(s) => {
                let parsed = host_port(&s);
                if parsed.is_none() {
                    c.error(
                        format!("{at}hl7"),
                        format!("{s:?} is not HOST:PORT like 10.0.0.5:2575 or hl7.clinic.lan:2575"),
                    );
                }
                parsed
            }
        };
        let tls = match t.get("tls") {
            None => None,
            Some(toml::Value::Table(tls)) => {
                let at_tls = format!("{at}tls.");
                c.unknown_keys(tls, &["ca"], &at_tls);
                match c.string(tls, "ca", &at_tls) {
                    None => {
                        c.error(
                            format!("{at}tls.ca"),
                            "is required: a PEM file with the CA certificate(s) the interface engine's certificate is checked against",
                        );
                        None
                    }
                    Some(ca) => match client_tls(&base.join(ca)) {
                        Ok(config) => Some(config),
                        Err(e) => {
                            c.error(format!("{at}tls.ca"), e);
                            None
                        }
                    },
                }
            }
            Some(_) => {
                c.error(
                    format!("{at}tls"),
                    "must be a table like { ca = \"ca.pem\" }",
                );
                None
            }
        };
        if let Some((host, port)) = target {
            out.push(ForwardSpec {
                name,
                host,
                port,
                tls,
            });
        }
    }
    c.entry = None;
    out
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;

    fn config(forward: &str) -> Result<Config, String> {
        let text = format!(
            "room = \"Room 1\"\n{forward}[storage]\npath = \"v.db\"\n[[device]]\nid = \"ox-1\"\nformat = \"masimo\"\nport = \"/dev/ttyUSB0\"\n"
        );
        Config::parse(&text, "vigil.toml", Path::new("/tmp")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_forward_is_read_with_its_defaults() {
        let c = config("[[forward]]\nhl7 = \"10.0.0.5:2575\"\n[[forward]]\nname = \"ris\"\nhl7 = \"[::1]:2576\"\n").unwrap();
        assert_eq!(c.forwards.len(), 2);
        assert_eq!(
            (
                c.forwards[0].name.as_str(),
                c.forwards[0].host.as_str(),
                c.forwards[0].port
            ),
            ("hl7-1", "10.0.0.5", 2575)
        );
        assert_eq!(
            (
                c.forwards[1].name.as_str(),
                c.forwards[1].host.as_str(),
                c.forwards[1].port
            ),
            ("ris", "::1", 2576)
        );
        assert!(c.forwards[0].tls.is_none());
    }

    #[test]
    fn every_forward_problem_is_named_with_its_location() {
        let e = config(
            "[[forward]]\nhl7 = \"engine\"\nport = 1\n[[forward]]\nname = \"a b\"\n[[forward]]\nhl7 = \"h:1\"\ntls = { ca = \"/nonexistent/ca.pem\" }\n",
        )
        .unwrap_err();
        assert!(
            e.contains("vigil.toml: forward #1.hl7: \"engine\" is not HOST:PORT"),
            "{e}"
        );
        assert!(
            e.contains("vigil.toml: forward #1.port: unknown key; expected one of name, hl7, tls"),
            "{e}"
        );
        assert!(
            e.contains("vigil.toml: forward #2 \"a b\".name: must be 1 to 64 letters"),
            "{e}"
        );
        assert!(
            e.contains("vigil.toml: forward #2 \"a b\".hl7: is required"),
            "{e}"
        );
        assert!(
            e.contains("vigil.toml: forward #3.tls.ca: cannot read /nonexistent/ca.pem"),
            "{e}"
        );
        let e =
            config("[[forward]]\nhl7 = \"h:1\"\n[[forward]]\nhl7 = \"h:2\"\nname = \"hl7-1\"\n")
                .unwrap_err();
        assert!(e.contains("names another [[forward]] too"), "{e}");
        let e = config("forward = \"h:1\"\n").unwrap_err();
        assert!(
            e.contains("forward: write entries as [[forward]] tables"),
            "{e}"
        );
    }
}
