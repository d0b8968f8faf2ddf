//! The futures-io runtimes (smol, async-std, any executor with an `async-io`
//! reactor): the `async-io` timer, futures-io `AsyncWrite` writers for
//! `retr_to`, and futures-io `AsyncRead` for [`MessageReader`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};

use super::{IoStream, Runtime, WriteTo};
use crate::MessageReader;

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
        while *written < buf.len() {
            let n = ready!(Pin::new(&mut *writer).poll_write(cx, &buf[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
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
