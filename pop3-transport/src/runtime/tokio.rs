//! The tokio runtime: its timer, its `AsyncWrite` writers for `retr_to`, and
//! `AsyncRead` for [`MessageReader`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::{poll_write_all_with, IoStream, Runtime, StartTls, WriteTo};
use crate::maybe_tls::{broken, MaybeTls, TlsStream};
use crate::MessageReader;

/// tokio-rustls' TLS stream over a socket `S`.
pub type Tls<S> = tokio_rustls::client::TlsStream<S>;

impl<S> TlsStream<S> for Tls<S> {
    fn connection(&self) -> &ClientConnection {
        self.get_ref().1
    }

    fn socket(&self) -> &S {
        self.get_ref().0
    }

    fn socket_mut(&mut self) -> &mut S {
        self.get_mut().0
    }
}

/// The TLS handshake over `stream`, verifying the certificate for `name`.
pub fn tls_connect<S: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    stream: S,
) -> tokio_rustls::Connect<S> {
    tokio_rustls::TlsConnector::from(config).connect(name, stream)
}

impl<S: AsyncRead + AsyncWrite + Unpin> IoStream for MaybeTls<S, Tls<S>> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        match self {
            MaybeTls::Plain(s) => ready!(Pin::new(s).poll_read(cx, &mut buf))?,
            MaybeTls::Tls(s) => ready!(Pin::new(s.as_mut()).poll_read(cx, &mut buf))?,
            MaybeTls::Broken => return Poll::Ready(Err(broken())),
        }
        Poll::Ready(Ok(buf.filled().len()))
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
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MaybeTls::Broken => Poll::Ready(Err(broken())),
        }
    }

    fn channel_binding(&self) -> Option<pop3_proto::sasl::ChannelBinding> {
        self.binding()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> StartTls for MaybeTls<S, Tls<S>> {
    fn start_tls(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        _limit: Option<Duration>,
    ) -> impl Future<Output = io::Result<()>> + Send {
        let plain = self.take_plain();
        async move {
            let tls = tls_connect(config, name, plain?).await?;
            *self = MaybeTls::Tls(Box::new(tls));
            Ok(())
        }
    }
}

/// The tokio runtime. Its timer is a [`tokio::time::Sleep`], allocated when
/// first armed; it needs a tokio runtime with time enabled.
#[derive(Debug)]
pub struct Tokio(Option<Pin<Box<tokio::time::Sleep>>>);

impl Runtime for Tokio {
    fn never() -> Tokio {
        Tokio(None)
    }

    fn reset(&mut self, after: Duration) {
        match (Instant::now().checked_add(after), &mut self.0) {
            (Some(at), Some(sleep)) => sleep.as_mut().reset(at),
            (Some(at), None) => self.0 = Some(Box::pin(tokio::time::sleep_until(at))),
            (None, _) => self.0 = None,
        }
    }

    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.0 {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

impl<W: AsyncWrite + Unpin + ?Sized> WriteTo<W> for Tokio {
    fn poll_write_all(
        writer: &mut W,
        cx: &mut Context<'_>,
        buf: &[u8],
        written: &mut usize,
    ) -> Poll<io::Result<()>> {
        poll_write_all_with(buf, written, |rest| {
            Pin::new(&mut *writer).poll_write(cx, rest)
        })
    }

    fn poll_flush(writer: &mut W, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(writer).poll_flush(cx)
    }
}

impl<S: IoStream> AsyncRead for MessageReader<'_, S, Tokio> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(self.get_mut().poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}
