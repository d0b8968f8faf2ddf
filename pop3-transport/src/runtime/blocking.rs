//! The blocking runtime: streams that never return `Pending`, driven by
//! [`block_on`](super::block_on).
//!
//! Blocking sockets keep time themselves (read and write time-outs are socket
//! options, which `pop3-blocking` sets), so this runtime's timer never fires.

use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::task::{Context, Poll};
use std::time::Duration;

use super::{block_on, IoStream, Runtime, WriteTo};
use crate::MessageReader;

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
