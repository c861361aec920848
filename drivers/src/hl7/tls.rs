//! Optional TLS on an HL7 link: a `listen` device presents a certificate (and may require the
//! monitor's), a `connect` device checks the monitor's against a CA. The handshake is bounded
//! like the display's, so a peer that never finishes it holds only its own connection.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Longest a TLS handshake may take (the display's bound).
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// A device's `tls` settings, as loaded from its PEM files.
#[derive(Clone)]
pub struct Hl7Tls {
    side: Side,
    /// The files it was read from (paths only), for `Debug` and logs.
    source: String,
    /// Identifies the files' contents: settings read from renewed files are other settings
    /// (a reload restarts the device with them).
    digest: u64,
}

#[derive(Clone)]
enum Side {
    Server(tokio_rustls::TlsAcceptor),
    Client(tokio_rustls::TlsConnector),
}

impl Hl7Tls {
    /// For a `listen` device: `tls = { cert, key }` (and `client_ca`), read into `config`.
    pub fn server(config: Arc<rustls::ServerConfig>, source: String, digest: u64) -> Hl7Tls {
        Hl7Tls {
            side: Side::Server(config.into()),
            source,
            digest,
        }
    }

    /// For a `connect` device: `tls = { ca }`, read into `config`.
    pub fn client(config: Arc<rustls::ClientConfig>, source: String, digest: u64) -> Hl7Tls {
        Hl7Tls {
            side: Side::Client(config.into()),
            source,
            digest,
        }
    }

    /// It presents a certificate (a `listen` device's).
    pub fn is_server(&self) -> bool {
        matches!(self.side, Side::Server(_))
    }

    /// Runs the server side of the handshake on an accepted connection.
    pub(super) async fn accept(&self, tcp: TcpStream) -> Result<Box<dyn Stream>, String> {
        let Side::Server(acceptor) = &self.side else {
            return Err("these TLS settings are for dialling, not listening".into());
        };
        match timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await {
            Err(_) => Err(no_handshake()),
            Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
            Ok(Ok(tls)) => Ok(Box::new(tls)),
        }
    }

    /// Runs the client side of the handshake, checking the certificate is `host`'s.
    pub(super) async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> Result<Box<dyn Stream>, String> {
        let Side::Client(connector) = &self.side else {
            return Err("these TLS settings are for listening, not dialling".into());
        };
        let name = server_name(host)?;
        match timeout(HANDSHAKE_DEADLINE, connector.connect(name, tcp)).await {
            Err(_) => Err(no_handshake()),
            Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
            Ok(Ok(tls)) => Ok(Box::new(tls)),
        }
    }
}

/// Why a handshake that never finished was refused (the listener tallies these apart).
pub(super) fn no_handshake() -> String {
    format!("no TLS handshake within {}s", HANDSHAKE_DEADLINE.as_secs())
}

/// The name a monitor's certificate must carry: the host of `connect = "HOST:PORT"` (a DNS
/// name or an IP address, brackets of an IPv6 address removed).
pub fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, String> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    rustls::pki_types::ServerName::try_from(bare.to_string()).map_err(|_| {
        format!("{host:?} is not a name or address a certificate can be checked against")
    })
}

impl PartialEq for Hl7Tls {
    fn eq(&self, other: &Self) -> bool {
        self.is_server() == other.is_server()
            && self.source == other.source
            && self.digest == other.digest
    }
}

impl fmt::Debug for Hl7Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key: only where it came from.
        f.debug_struct("Hl7Tls")
            .field("server", &self.is_server())
            .field("source", &self.source)
            .finish()
    }
}

/// A connection's byte stream, plain or TLS.
pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
