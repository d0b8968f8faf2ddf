//! The tokio runtime: its timer, its `AsyncWrite` writers for `retr_to`, and
//! `AsyncRead` for [`MessageReader`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::{IoStream, Runtime, WriteTo};
use crate::MessageReader;

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
