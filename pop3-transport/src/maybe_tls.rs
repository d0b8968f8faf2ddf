//! [`MaybeTls`]: a stream that is plaintext now and may become TLS in place
//! (`STLS`), for every runtime.

use std::fmt;
use std::io;

use rustls::ClientConnection;

/// A stream that is either plaintext or TLS over the same socket `S`; `T` is
/// the runtime's TLS stream over `S` (rustls' `StreamOwned`, tokio-rustls',
/// futures-rustls'). Each transport names it with its own TLS stream
/// (`pop3_tokio::MaybeTls<S>`, ...); the runtime files in
/// [`runtime`](crate::runtime) implement [`IoStream`](crate::runtime::IoStream)
/// and [`StartTls`](crate::runtime::StartTls) for it.
#[non_exhaustive]
pub enum MaybeTls<S, T> {
    /// Not encrypted.
    Plain(S),
    /// TLS over the socket.
    Tls(Box<T>),
    /// No stream: a TLS upgrade failed half way. Reads and writes fail.
    Broken,
}

/// A runtime's TLS stream over a socket `S`, as [`MaybeTls`] needs it.
pub trait TlsStream<S> {
    /// The rustls connection (version, cipher suite, peer certificates).
    fn connection(&self) -> &ClientConnection;
    /// The socket under TLS.
    fn socket(&self) -> &S;
    /// The socket under TLS, mutably. Reading or writing it bypasses TLS and
    /// breaks the session.
    fn socket_mut(&mut self) -> &mut S;
}

impl<S, T> fmt::Debug for MaybeTls<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MaybeTls::Plain(_) => "MaybeTls::Plain(..)",
            MaybeTls::Tls(_) => "MaybeTls::Tls(..)",
            MaybeTls::Broken => "MaybeTls::Broken",
        })
    }
}

impl<S, T: TlsStream<S>> MaybeTls<S, T> {
    /// Whether TLS is on.
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }

    /// The socket.
    pub fn get_ref(&self) -> Option<&S> {
        match self {
            MaybeTls::Plain(s) => Some(s),
            MaybeTls::Tls(t) => Some(t.socket()),
            MaybeTls::Broken => None,
        }
    }

    /// The socket, mutably. Reading or writing it directly bypasses TLS and
    /// breaks the session.
    pub fn get_mut(&mut self) -> Option<&mut S> {
        match self {
            MaybeTls::Plain(s) => Some(s),
            MaybeTls::Tls(t) => Some(t.socket_mut()),
            MaybeTls::Broken => None,
        }
    }

    /// The rustls connection (negotiated version, cipher suite, peer
    /// certificates, ALPN), when TLS is on.
    pub fn tls_connection(&self) -> Option<&ClientConnection> {
        match self {
            MaybeTls::Tls(t) => Some(t.connection()),
            _ => None,
        }
    }

    /// The TLS channel binding, for SCRAM-PLUS.
    pub(crate) fn binding(&self) -> Option<pop3_proto::sasl::ChannelBinding> {
        self.tls_connection().and_then(crate::channel_binding)
    }

    /// Takes the plaintext socket out for a TLS upgrade, leaving
    /// [`MaybeTls::Broken`] until the upgrade puts the TLS stream in.
    pub(crate) fn take_plain(&mut self) -> io::Result<S> {
        match std::mem::replace(self, MaybeTls::Broken) {
            MaybeTls::Plain(socket) => Ok(socket),
            other => {
                *self = other;
                Err(io::Error::other("the stream is already TLS"))
            }
        }
    }
}

/// The error of a stream that a failed TLS upgrade took away.
pub(crate) fn broken() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the stream was lost in a failed TLS handshake",
    )
}
