//! The blocking runtime: streams that never return `Pending`, driven by
//! [`block_on`].
//!
//! Blocking sockets keep time themselves (read and write time-outs are socket
//! options, which `pop3-blocking` sets), so this runtime's timer never fires.

use std::any::Any;
use std::future::{poll_fn, ready, Future};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::{block_on, IoStream, Runtime, StartTls, WriteTo};
use crate::maybe_tls::{broken, MaybeTls, TlsStream};
use crate::MessageReader;

/// rustls' own blocking TLS stream over a socket `S`.
pub type Tls<S> = StreamOwned<ClientConnection, S>;

impl<S: Read + Write> TlsStream<S> for Tls<S> {
    fn connection(&self) -> &ClientConnection {
        &self.conn
    }

    fn socket(&self) -> &S {
        &self.sock
    }

    fn socket_mut(&mut self) -> &mut S {
        &mut self.sock
    }
}

/// Sets read and write time-outs on `socket` if it is a [`TcpStream`]: the
/// blocking runtime's time limits are socket options.
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

/// The shortest time limit a socket accepts (zero means "never").
const SHORTEST_SOCKET_LIMIT: Duration = Duration::from_millis(1);

/// The socket while rustls runs the handshake: `complete_io` reads and
/// writes as often as the server makes it, so a per-read limit alone lets a
/// server that sends one byte at a time keep the handshake going for ever.
/// Before each read and write this checks the handshake's deadline and
/// shrinks the socket's limits to what remains of it.
struct Deadlined<'a, S> {
    socket: &'a mut S,
    /// `None`: no limit.
    ends: Option<Instant>,
}

impl<S: 'static> Deadlined<'_, S> {
    fn bound(&mut self) -> io::Result<()> {
        let Some(ends) = self.ends else {
            return Ok(());
        };
        let remaining = ends.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let limit = Some(remaining.max(SHORTEST_SOCKET_LIMIT));
        socket_timeouts(&*self.socket, limit, limit)
    }
}

impl<S: Read + 'static> Read for Deadlined<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.bound()?;
        self.socket.read(buf)
    }
}

impl<S: Write + 'static> Write for Deadlined<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bound()?;
        self.socket.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.bound()?;
        self.socket.flush()
    }
}

/// Switches a plaintext stream to TLS and runs the handshake, all of it
/// within `limit` when `S` is a [`TcpStream`].
fn handshake<S: Read + Write + 'static>(
    stream: &mut MaybeTls<S, Tls<S>>,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    limit: Option<Duration>,
) -> io::Result<()> {
    let mut connection = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut socket = stream.take_plain()?;
    // A limit too far away to represent is no limit.
    let ends = limit.and_then(|limit| Instant::now().checked_add(limit));
    let mut deadlined = Deadlined {
        socket: &mut socket,
        ends,
    };
    while connection.is_handshaking() {
        match connection.complete_io(&mut deadlined) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The stream stays `Broken`: the session cannot go on.
            Err(e) => return Err(e),
        }
    }
    *stream = MaybeTls::Tls(Box::new(StreamOwned::new(connection, socket)));
    Ok(())
}

impl<S: Read + Write> Read for MaybeTls<S, Tls<S>> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MaybeTls::Plain(s) => s.read(buf),
            MaybeTls::Tls(t) => t.read(buf),
            MaybeTls::Broken => Err(broken()),
        }
    }
}

impl<S: Read + Write> Write for MaybeTls<S, Tls<S>> {
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

/// Never `Pending`: every read and write blocks.
impl<S: Read + Write + 'static> IoStream for MaybeTls<S, Tls<S>> {
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
        self.binding()
    }
}

impl<S: Read + Write + Send + 'static> StartTls for MaybeTls<S, Tls<S>> {
    fn start_tls(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        limit: Option<Duration>,
    ) -> impl Future<Output = io::Result<()>> + Send {
        ready(handshake(self, config, name, limit))
    }
}

/// The blocking runtime (see the [module docs](self)).
#[derive(Debug)]
pub struct Blocking;

impl Runtime for Blocking {
    fn never() -> Blocking {
        Blocking
    }

    fn reset(&mut self, _after: Duration) {}

    fn poll_elapsed(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

impl<W: Write + ?Sized> WriteTo<W> for Blocking {
    fn poll_write_all(
        writer: &mut W,
        _cx: &mut Context<'_>,
        buf: &[u8],
        written: &mut usize,
    ) -> Poll<io::Result<()>> {
        let result = writer.write_all(&buf[*written..]);
        if result.is_ok() {
            *written = buf.len();
        }
        Poll::Ready(result)
    }

    fn poll_flush(writer: &mut W, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(writer.flush())
    }
}

impl<S: IoStream> Read for MessageReader<'_, S, Blocking> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        block_on(poll_fn(|cx| self.poll_read(cx, buf)))
    }
}
