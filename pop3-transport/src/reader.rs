//! [`MessageReader`]: a message body streamed out of a [`Connection`].

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::task::{ready, Context, Poll};

use pop3_proto::{Event, Handle, MsgNum};

use crate::connection::outcome;
use crate::runtime::{IoStream, Runtime, WriteTo};
use crate::{Connection, Error, Result};

/// For the body of `handle`: passes a chunk to `chunk` and returns
/// `Some(false)`, or `Some(true)` at its end; an error for a refusal or an
/// unusable reply; `None` for other events.
pub(crate) fn body_event(
    event: Event<'_>,
    handle: Handle,
    chunk: impl FnOnce(&[u8]),
) -> Result<Option<bool>> {
    match event {
        Event::Body { handle: h, data } if h == handle => {
            chunk(data);
            Ok(Some(false))
        }
        other => match outcome(other) {
            Some((h, result)) if h == handle => result.map(|_| Some(true)),
            _ => Ok(None),
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Reading,
    Ended,
    Failed,
}

/// A message being received (`RETR` or `TOP`): dot-unstuffed, line endings
/// exactly as sent.
///
/// Each read asks the core for at most the free space of the caller's buffer
/// ([`pop3_proto::Client::poll_body_limited`]), so the bytes are copied once,
/// from the receive buffer into the caller's.
///
/// It borrows the connection and implements the runtime's read trait
/// (`std::io::Read`, tokio's or futures-io's `AsyncRead`). Dropping it before
/// the end is safe: the core reads and drops the rest of the message. A read
/// error is an [`io::Error`] wrapping an [`Error`]; `Error::from` gets it
/// back.
pub struct MessageReader<'c, S, R> {
    conn: &'c mut Connection<S, R>,
    handle: Handle,
    msg: MsgNum,
    state: ReadState,
}

impl<S, R> fmt::Debug for MessageReader<'_, S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageReader")
            .field("msg", &self.msg)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<'c, S, R> MessageReader<'c, S, R> {
    pub(crate) fn new(conn: &'c mut Connection<S, R>, handle: Handle, msg: MsgNum) -> Self {
        MessageReader {
            conn,
            handle,
            msg,
            state: ReadState::Reading,
        }
    }

    /// The message being read.
    pub fn msg(&self) -> MsgNum {
        self.msg
    }

    /// Every byte of the message has been read. `false` after a failed
    /// read.
    pub fn is_finished(&self) -> bool {
        self.state == ReadState::Ended
    }
}

impl<S, R> Drop for MessageReader<'_, S, R> {
    fn drop(&mut self) {
        if self.state == ReadState::Reading {
            self.conn.discard(self.handle);
        }
    }
}

impl<S: IoStream, R: Runtime> MessageReader<'_, S, R> {
    /// Reads into `buf`, as the runtimes' `AsyncRead::poll_read` do: the
    /// number of bytes, `0` at the end of the message (or for an empty
    /// `buf`).
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.state {
            ReadState::Reading => {}
            ReadState::Ended => return Poll::Ready(Ok(0)),
            ReadState::Failed => {
                return Poll::Ready(Err(io::Error::other(
                    "an earlier read of this message failed",
                )))
            }
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let handle = self.handle;
        let mut filled = 0;
        let result = loop {
            let result = ready!(self.conn.poll_drive(cx, buf.len(), |event| {
                body_event(event, handle, |data| {
                    // `poll_drive` asks the core for at most `buf.len()` octets
                    // (`poll_body_limited`), so `data` always fits.
                    filled = data.len().min(buf.len());
                    buf[..filled].copy_from_slice(&data[..filled]);
                })
            }));
            // An empty chunk must not look like the end of the message.
            if !matches!(result, Ok(Some(false))) || filled > 0 {
                break result;
            }
        };
        match result {
            Ok(Some(false)) => Poll::Ready(Ok(filled)),
            Ok(Some(true)) => {
                self.state = ReadState::Ended;
                Poll::Ready(Ok(0))
            }
            Ok(None) => {
                self.state = ReadState::Failed;
                self.conn.poisoned = true;
                Poll::Ready(Err(Error::Closed.into()))
            }
            Err(error) => {
                self.state = ReadState::Failed;
                Poll::Ready(Err(error.into()))
            }
        }
    }

    /// Reads the next piece of the message into `buf`; returns the number of
    /// bytes, `0` at the end. Errors are this crate's [`Error`].
    ///
    /// It is not named `read` so that `reader.read(&mut buf)` always means
    /// the runtime's trait (`std::io::Read::read`, or `read` of tokio's
    /// `AsyncReadExt` / futures' `AsyncReadExt`), as it does for any reader.
    ///
    /// Cancel-safety: may be dropped at any time without losing data.
    pub async fn read_chunk(&mut self, buf: &mut [u8]) -> Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf))
            .await
            .map_err(Error::from)
    }

    /// Copies the rest of the message into `writer` (of the runtime's kind)
    /// and flushes it; returns the byte count. A failing writer is
    /// [`Error::Sink`]: the core drops the rest and the connection stays
    /// usable.
    pub async fn copy_to<W: ?Sized>(mut self, writer: &mut W) -> Result<u64>
    where
        R: WriteTo<W>,
    {
        let mut buf = vec![0u8; crate::connection::COPY_BUFFER];
        let mut total = 0u64;
        loop {
            let n = self.read_chunk(&mut buf).await?;
            if n == 0 {
                break;
            }
            let mut written = 0;
            poll_fn(|cx| R::poll_write_all(writer, cx, &buf[..n], &mut written))
                .await
                .map_err(Error::Sink)?;
            total += n as u64;
        }
        poll_fn(|cx| R::poll_flush(writer, cx))
            .await
            .map_err(Error::Sink)?;
        Ok(total)
    }
}
