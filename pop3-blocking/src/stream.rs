//! A stream that is plaintext now and may become TLS in place (`STLS`).

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

use std::any::Any;
use std::future::{ready, Future};
use std::net::TcpStream;
use std::task::{Context, Poll};
use std::time::Duration;

use pop3_transport::runtime::{IoStream, StartTls};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// A stream that is either plaintext or rustls' TLS over the same inner
/// stream `S` (usually a [`TcpStream`](std::net::TcpStream)).
///
/// It implements [`Read`] and [`Write`] by forwarding to whichever it is, so a
/// [`Connection`](crate::Connection) can upgrade it in place after `STLS`.
/// The TLS side is rustls' own [`StreamOwned`] over a [`ClientConnection`].
///
/// As the connection's [`IoStream`] it never returns `Pending`: every read
/// and write blocks. When `S` is a [`TcpStream`], the read and write time
/// limits are set on the socket.
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

    /// Switches a plaintext stream to TLS and runs the handshake, within
    /// `limit` per socket operation when `S` is a [`TcpStream`].
    fn handshake(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        limit: Option<Duration>,
    ) -> io::Result<()>
    where
        S: 'static,
    {
        if !matches!(self, MaybeTls::Plain(_)) {
            return Err(io::Error::other("the stream is already TLS"));
        }
        let connection = ClientConnection::new(config, name).map_err(io::Error::other)?;
        if let MaybeTls::Plain(socket) = std::mem::replace(self, MaybeTls::Broken) {
            *self = MaybeTls::Tls(Box::new(StreamOwned::new(connection, socket)));
        }
        let MaybeTls::Tls(tls) = self else {
            return Err(broken());
        };
        socket_timeouts(&tls.sock, limit, limit)?;
        let StreamOwned { conn, sock } = &mut **tls;
        while conn.is_handshaking() {
            match conn.complete_io(sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Sets read and write time-outs on `socket` if it is a [`TcpStream`].
fn socket_timeouts<S: 'static>(
    socket: &S,
    read: Option<Duration>,
    write: Option<Duration>,
) -> io::Result<()> {
    if let Some(tcp) = (socket as &dyn Any).downcast_ref::<TcpStream>() {
        tcp.set_read_timeout(read)?;
        tcp.set_write_timeout(write)?;
    }
    Ok(())
}

impl<S: Read + Write + 'static> IoStream for MaybeTls<S> {
    fn poll_read(&mut self, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(self.read(buf))
    }

    fn poll_write(&mut self, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(self.write(buf))
    }

    fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.flush())
    }

    fn poll_shutdown(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let MaybeTls::Tls(tls) = self {
            tls.conn.send_close_notify();
            return Poll::Ready(tls.flush());
        }
        Poll::Ready(Ok(()))
    }

    fn set_timeouts(&mut self, read: Option<Duration>, write: Option<Duration>) -> io::Result<()> {
        match self.get_ref() {
            Some(socket) => socket_timeouts(socket, read, write),
            None => Ok(()),
        }
    }

    fn channel_binding(&self) -> Option<pop3_proto::sasl::ChannelBinding> {
        match self {
            MaybeTls::Tls(tls) => pop3_transport::channel_binding(&tls.conn),
            _ => None,
        }
    }
}

impl<S: Read + Write + Send + 'static> StartTls for MaybeTls<S> {
    fn start_tls(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        limit: Option<Duration>,
    ) -> impl Future<Output = io::Result<()>> + Send {
        ready(self.handshake(config, name, limit))
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
