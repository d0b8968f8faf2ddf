//! The futures-io runtimes (smol, async-std, any executor with an `async-io`
//! reactor): the `async-io` timer, futures-io `AsyncWrite` writers for
//! `retr_to`, and futures-io `AsyncRead` for [`MessageReader`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::sync::Arc;

use futures_io::{AsyncRead, AsyncWrite};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use super::{poll_write_all_with, IoStream, Runtime, StartTls, WriteTo};
use crate::maybe_tls::{broken, MaybeTls, TlsStream};
use crate::MessageReader;

/// futures-rustls' TLS stream over a socket `S`.
pub type Tls<S> = futures_rustls::client::TlsStream<S>;

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
) -> futures_rustls::Connect<S> {
    futures_rustls::TlsConnector::from(config).connect(name, stream)
}

impl<S: AsyncRead + AsyncWrite + Unpin> IoStream for MaybeTls<S, Tls<S>> {
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

/// The futures-io runtime, keeping time with [`async_io::Timer`].
#[derive(Debug)]
pub struct Smol(async_io::Timer);

impl Runtime for Smol {
    fn never() -> Smol {
        Smol(async_io::Timer::never())
    }

    fn reset(&mut self, after: Duration) {
        self.0.set_after(after);
    }

    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

impl<W: AsyncWrite + Unpin + ?Sized> WriteTo<W> for Smol {
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

impl<S: IoStream> AsyncRead for MessageReader<'_, S, Smol> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_read(cx, buf)
    }
}
