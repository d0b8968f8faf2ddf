//! A stream that is plaintext now and may become TLS in place (`STLS`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::client::TlsStream;

/// A stream that is either plaintext or TLS, so that `STLS` can upgrade a
/// connection in place. The connect functions return connections over
/// `MaybeTls<TcpStream>`.
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTls<S> {
    /// Not encrypted.
    Plain(S),
    /// TLS over the inner stream.
    Tls(Box<TlsStream<S>>),
    /// The inner stream was handed to a TLS handshake that failed; every read
    /// and write fails with `NotConnected`.
    Broken,
}

impl<S> MaybeTls<S> {
    /// Whether TLS is active.
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }

    /// The rustls session (peer certificates, negotiated version, ...) when TLS
    /// is active.
    pub fn tls_connection(&self) -> Option<&rustls::ClientConnection> {
        match self {
            MaybeTls::Tls(tls) => Some(tls.get_ref().1),
            _ => None,
        }
    }

    /// The underlying transport stream.
    pub fn get_ref(&self) -> Option<&S> {
        match self {
            MaybeTls::Plain(s) => Some(s),
            MaybeTls::Tls(tls) => Some(tls.get_ref().0),
            MaybeTls::Broken => None,
        }
    }

    /// The underlying transport stream, mutably. Reading or writing it
    /// directly bypasses TLS and breaks the session.
    pub fn get_mut(&mut self) -> Option<&mut S> {
        match self {
            MaybeTls::Plain(s) => Some(s),
            MaybeTls::Tls(tls) => Some(tls.get_mut().0),
            MaybeTls::Broken => None,
        }
    }

    /// The underlying transport stream, dropping any TLS state (no
    /// `close_notify` is sent).
    pub fn into_inner(self) -> Option<S> {
        match self {
            MaybeTls::Plain(s) => Some(s),
            MaybeTls::Tls(tls) => Some(tls.into_inner().0),
            MaybeTls::Broken => None,
        }
    }
}

fn broken() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the stream was lost in a failed TLS handshake",
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MaybeTls::Broken => Poll::Ready(Err(broken())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MaybeTls::Broken => Poll::Ready(Err(broken())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MaybeTls::Broken => Poll::Ready(Err(broken())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MaybeTls::Broken => Poll::Ready(Err(broken())),
        }
    }
}
