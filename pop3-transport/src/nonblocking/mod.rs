//! The async transports' connection logic, written once: a [`Connection`]
//! and a [`MessageReader`] generic over two small traits, [`IoStream`] (a byte
//! stream) and [`Timer`] (a resettable sleep).
//!
//! `pop3-tokio` and `pop3-smol` only implement those traits for their
//! runtime's streams and timers, wrap these types in newtypes (generated with
//! the hidden `async_api!` macro, which also carries the user documentation)
//! that implement their runtime's `AsyncRead`, and open sockets and TLS
//! sessions. Everything else is here: the run loop around
//! [`pop3_proto::Client::poll`], the read and write time limits, poisoning on
//! cancellation, draining an abandoned message, `STLS`, and every POP3
//! operation. No runtime is needed: only `core::task` and `std::io`.
//!
//! The module is named `nonblocking` rather than `async_io` so that it never
//! clashes with the `async-io` crate that `pop3-smol` uses.

mod api;
mod connection;
mod reader;

use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pop3_proto::MsgNum;

pub use connection::Connection;
pub use reader::MessageReader;

use crate::{Error, Phase, Result};

/// A byte stream as the async runtimes provide it, with `&mut self` instead
/// of `Pin<&mut Self>` (the streams are `Unpin`).
///
/// The methods behave like those of the runtimes' `AsyncRead` and
/// `AsyncWrite`: `Pending` registers a wake-up, a read of `Ok(0)` into a
/// non-empty buffer is the end of the stream.
pub trait IoStream {
    /// Reads into `buf`; returns how many bytes were read.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;

    /// Writes from `buf`; returns how many bytes were written.
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;

    /// Flushes what was written.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Shuts the stream down (for TLS: sends `close_notify`).
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// A runtime's timer: a sleep that can be re-armed.
pub trait Timer {
    /// A timer that does not fire until [`Timer::reset`]. It is created for
    /// every connection, so it must be cheap and must not need a running
    /// runtime yet.
    fn never() -> Self;

    /// Arms the timer to fire `after` from now, or never if that instant
    /// cannot be represented.
    fn reset(&mut self, after: Duration);

    /// `Ready` once the time set by the last [`Timer::reset`] has passed;
    /// `Pending` (with a wake-up registered) before.
    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// Runs `future` with an optional time limit kept by a timer of type `T`:
/// [`Error::Timeout`] with `phase` once `limit` has passed. I/O errors are
/// converted with `Error::from` (so TLS errors become [`Error::Tls`]).
///
/// Cancel-safety: dropping it drops `future`.
pub async fn with_timeout<T: Timer, R>(
    limit: Option<Duration>,
    phase: Phase,
    future: impl Future<Output = io::Result<R>>,
) -> Result<R> {
    let Some(limit) = limit else {
        return future.await.map_err(Error::from);
    };
    let mut future = pin!(future);
    let mut timer = T::never();
    timer.reset(limit);
    poll_fn(|cx| {
        if let Poll::Ready(result) = future.as_mut().poll(cx) {
            return Poll::Ready(result.map_err(Error::from));
        }
        timer.poll_elapsed(cx).map(|()| Err(Error::Timeout(phase)))
    })
    .await
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

/// The error of a read or write on a stream that a failed TLS handshake took
/// away (`MaybeTls::Broken`).
pub fn broken_stream() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the stream was lost in a failed TLS handshake",
    )
}

#[cfg(test)]
mod tests;
