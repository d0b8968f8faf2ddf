//! Streaming message bodies: [`MessageReader`] and [`MessageSink`].

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pop3_proto::{Event, Handle, MsgNum};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::connection::outcome;
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

/// A message being received (`RETR` or `TOP`), read with
/// [`tokio::io::AsyncRead`]: dot-unstuffed, line endings exactly as sent.
///
/// Each read asks the core for at most the free space of the caller's buffer
/// ([`pop3_proto::Client::poll_body_limited`]), so the bytes are copied once,
/// from the receive buffer into the caller's.
///
/// It borrows the connection. **Dropping it before the end is safe** (and is
/// how to abandon a message): the connection stays usable and its next
/// operation first reads and discards the rest of this message. A read error
/// is an [`io::Error`] wrapping this crate's [`Error`]; `Error::from` gets it
/// back (for example [`Error::Protocol`] when the server's reply was
/// unusable, in which case the bytes already read must be discarded).
///
/// Cancel-safety: a `read` future may be dropped at any time without losing
/// data.
pub struct MessageReader<'c, S> {
    conn: &'c mut Connection<S>,
    handle: Handle,
    msg: MsgNum,
    /// Bytes read while waiting for the `+OK`, handed out first.
    head: Vec<u8>,
    head_pos: usize,
    state: ReadState,
}

impl<S> fmt::Debug for MessageReader<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageReader")
            .field("msg", &self.msg)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<'c, S> MessageReader<'c, S> {
    pub(crate) fn new(
        conn: &'c mut Connection<S>,
        handle: Handle,
        msg: MsgNum,
        head: Vec<u8>,
        ended: bool,
    ) -> MessageReader<'c, S> {
        let state = if ended {
            ReadState::Ended
        } else {
            ReadState::Reading
        };
        MessageReader {
            conn,
            handle,
            msg,
            head,
            head_pos: 0,
            state,
        }
    }

    /// The message being read.
    pub fn msg(&self) -> MsgNum {
        self.msg
    }

    /// Every byte of the message has been read.
    pub fn is_finished(&self) -> bool {
        self.state == ReadState::Ended && self.head_pos == self.head.len()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> MessageReader<'_, S> {
    /// Like `read` of the `AsyncRead` trait, with this crate's error type.
    ///
    /// Cancel-safety: may be dropped at any time without losing data.
    pub async fn read_message(&mut self, buf: &mut [u8]) -> Result<usize> {
        tokio::io::AsyncReadExt::read(self, buf)
            .await
            .map_err(Error::from)
    }

    /// Reads the rest of the message into `out` and flushes it; returns the
    /// number of bytes.
    ///
    /// Cancel-safety: may be dropped; bytes already read from the connection
    /// may not have reached `out`.
    pub async fn read_to_writer<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        out: &mut W,
    ) -> Result<u64> {
        tokio::io::copy(self, out).await.map_err(Error::from)
    }
}

impl<S> Drop for MessageReader<'_, S> {
    fn drop(&mut self) {
        if self.state == ReadState::Reading {
            self.conn.draining = Some(self.handle);
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MessageReader<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.head_pos < this.head.len() {
            let n = buf.remaining().min(this.head.len() - this.head_pos);
            buf.put_slice(&this.head[this.head_pos..this.head_pos + n]);
            this.head_pos += n;
            return Poll::Ready(Ok(()));
        }
        match this.state {
            ReadState::Reading => {}
            ReadState::Ended => return Poll::Ready(Ok(())),
            ReadState::Failed => {
                return Poll::Ready(Err(io::Error::other(
                    "an earlier read of this message failed",
                )))
            }
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let handle = this.handle;
        this.head.clear();
        this.head_pos = 0;
        let head = &mut this.head;
        let before = buf.filled().len();
        let result = loop {
            let result = ready!(this.conn.poll_drive(cx, buf.remaining(), |event| {
                body_event(event, handle, |data| {
                    // The core never hands out more than asked; keep any excess anyway.
                    let n = data.len().min(buf.remaining());
                    buf.put_slice(&data[..n]);
                    head.extend_from_slice(&data[n..]);
                })
            }));
            // An empty chunk must not look like the end of the message.
            if !matches!(result, Ok(Some(false))) || buf.filled().len() > before {
                break result;
            }
        };
        match result {
            Ok(Some(false)) => Poll::Ready(Ok(())),
            Ok(Some(true)) => {
                this.state = ReadState::Ended;
                Poll::Ready(Ok(()))
            }
            Ok(None) => {
                this.state = ReadState::Failed;
                this.conn.poisoned = true;
                Poll::Ready(Err(Error::Closed.into()))
            }
            Err(error) => {
                this.state = ReadState::Failed;
                Poll::Ready(Err(error.into()))
            }
        }
    }
}

/// Receives the messages of [`Connection::retr_many`] as they arrive.
///
/// Any `FnMut(MsgNum, &[u8])` closure is a sink that ignores the ends.
pub trait MessageSink {
    /// The next piece of message `msg`.
    fn on_chunk(&mut self, msg: MsgNum, chunk: &[u8]);

    /// Message `msg` is complete (`Ok` with its size), or failed: then the
    /// chunks given for it must be discarded.
    fn on_end(&mut self, msg: MsgNum, result: Result<u64, &Error>) {
        let _ = (msg, result);
    }
}

impl<F: FnMut(MsgNum, &[u8])> MessageSink for F {
    fn on_chunk(&mut self, msg: MsgNum, chunk: &[u8]) {
        self(msg, chunk)
    }
}
