//! The accept loop through the gate, and what request handlers learn about their connection.

use super::gate::{Gate, Guarded, Slot};
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Accepts TCP connections, each through the gate; those the gate refuses are closed at once.
pub struct GatedListener {
    tcp: TcpListener,
    gate: Arc<Gate>,
    tune: fn(&TcpStream),
}

impl GatedListener {
    /// Accepts on `tcp`; `tune` adjusts each socket.
    pub fn new(tcp: TcpListener, gate: Arc<Gate>, tune: fn(&TcpStream)) -> GatedListener {
        GatedListener { tcp, gate, tune }
    }
}

/// Accepts the next connection the gate admits (also used by the TLS listener).
pub async fn accept(
    tcp: &TcpListener,
    gate: &Arc<Gate>,
    tune: fn(&TcpStream),
) -> (Guarded<TcpStream>, SocketAddr) {
    loop {
        match tcp.accept().await {
            Ok((stream, addr)) => {
                if let Some(slot) = gate.admit(addr) {
                    tune(&stream);
                    return (Guarded::new(stream, slot), addr);
                }
            }
            Err(e) => {
                // Out of file descriptors, mostly: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl axum::serve::Listener for GatedListener {
    type Io = Guarded<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        accept(&self.tcp, &self.gate, self.tune).await
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// The connection a request came on (`ConnectInfo<Conn>`).
#[derive(Clone)]
pub struct Conn(Arc<Slot>);

impl Conn {
    /// The client's address.
    pub fn ip(&self) -> IpAddr {
        self.0.address().ip()
    }

    /// See [`Slot::authenticate`].
    pub fn authenticate(&self) -> bool {
        self.0.authenticate()
    }
}

impl Connected<IncomingStream<'_, GatedListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, GatedListener>) -> Self {
        Conn(stream.io().slot().clone())
    }
}

impl Connected<IncomingStream<'_, crate::tls::TlsListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, crate::tls::TlsListener>) -> Self {
        Conn(stream.io().get_ref().0.slot().clone())
    }
}
