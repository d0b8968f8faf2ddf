//! [`MaybeTls`]: a futures-io stream that is plaintext now and may become TLS in
//! place (`STLS`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use futures_rustls::client::TlsStream;
use futures_rustls::TlsConnector;
use pop3_transport::runtime::{IoStream, StartTls};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

/// A stream that is either plaintext or futures-rustls' TLS over the same inner
/// stream `S` (usually a [`TcpStream`](crate::TcpStream)).
#[non_exhaustive]
pub enum MaybeTls<S> {
    /// Not encrypted.
    Plain(S),
    /// TLS over the inner stream.
    Tls(Box<TlsStream<S>>),
    /// No stream: a TLS upgrade failed half way. Reads and writes fail.
    Broken,
}

impl<S> std::fmt::Debug for MaybeTls<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MaybeTls::Plain(_) => "MaybeTls::Plain(..)",
            MaybeTls::Tls(_) => "MaybeTls::Tls(..)",
            MaybeTls::Broken => "MaybeTls::Broken",
        })
    }
}

impl<S> MaybeTls<S> {
    /// The rustls connection (version, cipher suite, peer certificates), when
    /// TLS is on.
    pub fn tls_connection(&self) -> Option<&rustls::ClientConnection> {
        match self {
            MaybeTls::Tls(tls) => Some(tls.get_ref().1),
            _ => None,
        }
    }
}

fn broken() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the stream was lost in a failed TLS handshake",
    )
}

/// The TLS handshake over `stream`.
pub(crate) fn tls_connect<S: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    stream: S,
) -> futures_rustls::Connect<S> {
    TlsConnector::from(config).connect(name, stream)
}

impl<S: AsyncRead + AsyncWrite + Unpin> IoStream for MaybeTls<S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MaybeTls::Broken => Poll::Ready(Err(broken())),
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MaybeTls::Broken => Poll::Ready(Err(broken())),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MaybeTls::Broken => Poll::Ready(Err(broken())),
        }
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            MaybeTls::Plain(s) => Pin::new(s).poll_close(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
            MaybeTls::Broken => Poll::Ready(Err(broken())),
        }
    }

    fn channel_binding(&self) -> Option<pop3_proto::sasl::ChannelBinding> {
        match self {
            MaybeTls::Tls(tls) => pop3_transport::channel_binding(tls.get_ref().1),
            _ => None,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> StartTls for MaybeTls<S> {
    fn start_tls(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        _limit: Option<Duration>,
    ) -> impl Future<Output = io::Result<()>> + Send {
        let plain = match std::mem::replace(self, MaybeTls::Broken) {
            MaybeTls::Plain(stream) => Ok(stream),
            other => {
                *self = other;
                Err(io::Error::other("the stream is already TLS"))
            }
        };
        async move {
            let tls = tls_connect(config, name, plain?).await?;
            *self = MaybeTls::Tls(Box::new(tls));
            Ok(())
        }
    }
}
