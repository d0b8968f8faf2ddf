//! A stream that is plaintext now and may become TLS in place (`STLS`).

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::error::from_io;
use crate::{Error, Phase, Result};

/// A stream that is either plaintext or rustls' TLS over the same inner
/// stream `S` (usually a [`TcpStream`](std::net::TcpStream)).
///
/// It implements [`Read`] and [`Write`] by forwarding to whichever it is, so a
/// [`Connection`](crate::Connection) can upgrade it in place after `STLS`.
/// The TLS side is rustls' own [`StreamOwned`] over a [`ClientConnection`].
#[non_exhaustive]
pub enum MaybeTls<S: Read + Write> {
    /// Not encrypted.
    Plain(S),
    /// TLS over the inner stream.
    Tls(Box<StreamOwned<ClientConnection, S>>),
    /// No stream: only seen if a TLS upgrade was interrupted (it cannot fail
    /// half way, so in practice never). Reads and writes fail with
    /// `NotConnected`.
    Broken,
}

impl<S: Read + Write> fmt::Debug for MaybeTls<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MaybeTls::Plain(_) => "MaybeTls::Plain(..)",
            MaybeTls::Tls(_) => "MaybeTls::Tls(..)",
            MaybeTls::Broken => "MaybeTls::Broken",
        })
    }
}

fn broken() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the stream was lost in a TLS upgrade",
    )
}

impl<S: Read + Write> MaybeTls<S> {
    /// Whether TLS is on.
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }

    /// The inner stream (the socket).
    pub fn get_ref(&self) -> Option<&S> {
        match self {
            MaybeTls::Plain(s) => Some(s),
            MaybeTls::Tls(t) => Some(t.get_ref()),
            MaybeTls::Broken => None,
        }
    }

    /// The inner stream (the socket), mutably. Reading or writing it directly
    /// bypasses TLS and breaks the session.
    pub fn get_mut(&mut self) -> Option<&mut S> {
        match self {
            MaybeTls::Plain(s) => Some(s),
            MaybeTls::Tls(t) => Some(t.get_mut()),
            MaybeTls::Broken => None,
        }
    }

    /// The rustls connection (negotiated version, cipher suite, peer
    /// certificates, ALPN), when TLS is on.
    pub fn tls_connection(&self) -> Option<&ClientConnection> {
        match self {
            MaybeTls::Tls(t) => Some(&t.conn),
            _ => None,
        }
    }

    /// The inner stream, dropping any TLS state (no `close_notify` is sent).
    pub fn into_inner(self) -> Option<S> {
        match self {
            MaybeTls::Plain(s) => Some(s),
            MaybeTls::Tls(t) => Some(t.into_parts().1),
            MaybeTls::Broken => None,
        }
    }

    /// Switches a plaintext stream to TLS and runs the handshake. `hook` is
    /// called with `true` on the socket before the handshake and with `false`
    /// after it succeeds (to change time limits). Errors are classified with
    /// [`Phase::TlsHandshake`].
    pub(crate) fn start_tls(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        hook: &mut dyn FnMut(&S, bool) -> io::Result<()>,
    ) -> Result<()> {
        if !matches!(self, MaybeTls::Plain(_)) {
            return Err(Error::Usage(pop3_proto::UsageError::WrongState {
                command: "STLS",
                reason: "TLS is already active",
            }));
        }
        let connection = ClientConnection::new(config, name).map_err(Error::Tls)?;
        if let MaybeTls::Plain(socket) = std::mem::replace(self, MaybeTls::Broken) {
            *self = MaybeTls::Tls(Box::new(StreamOwned::new(connection, socket)));
        }
        let MaybeTls::Tls(tls) = self else {
            return Err(Error::Closed);
        };
        hook(&tls.sock, true).map_err(Error::Io)?;
        let StreamOwned { conn, sock } = &mut **tls;
        while conn.is_handshaking() {
            match conn.complete_io(sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(from_io(e, Phase::TlsHandshake)),
            }
        }
        hook(sock, false).map_err(Error::Io)?;
        Ok(())
    }
}

impl<S: Read + Write> Read for MaybeTls<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MaybeTls::Plain(s) => s.read(buf),
            MaybeTls::Tls(t) => t.read(buf),
            MaybeTls::Broken => Err(broken()),
        }
    }
}

impl<S: Read + Write> Write for MaybeTls<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MaybeTls::Plain(s) => s.write(buf),
            MaybeTls::Tls(t) => t.write(buf),
            MaybeTls::Broken => Err(broken()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.flush(),
            MaybeTls::Tls(t) => t.flush(),
            MaybeTls::Broken => Err(broken()),
        }
    }
}
