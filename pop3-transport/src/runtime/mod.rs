//! The runtimes a [`Connection`](crate::Connection) runs on, one file each,
//! and the traits they implement.
//!
//! A runtime is three small things: an [`IoStream`] (a byte stream with
//! `poll_read`, `poll_write`, `poll_flush`, `poll_shutdown`; streams that can
//! become TLS in place also implement [`StartTls`]), a [`Runtime`] (a timer
//! that can be re-armed) and [`WriteTo`] (how message bodies go into the
//! runtime's writers), plus the runtime's read trait for
//! [`MessageReader`](crate::MessageReader). To add one, copy `tokio.rs`: it is
//! the whole tokio integration. The transport crates then add sockets and
//! TLS sessions (their `MaybeTls` stream) and their connect functions.
//!
//! The blocking runtime is the same code driven by [`block_on`]: its streams
//! never return `Pending`, so every operation completes in one poll.

pub mod blocking;
#[cfg(feature = "smol")]
pub mod smol;
#[cfg(feature = "tokio")]
pub mod tokio;

use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pop3_proto::MsgNum;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use std::sync::Arc;

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

    /// Applies read and write time limits that the stream keeps itself
    /// (blocking sockets: socket options). Async streams keep time with the
    /// runtime's timer and do nothing here.
    fn set_timeouts(&mut self, read: Option<Duration>, write: Option<Duration>) -> io::Result<()> {
        let _ = (read, write);
        Ok(())
    }

    /// The TLS channel's binding data for SCRAM-PLUS, when the stream is TLS
    /// (see [`channel_binding`](crate::channel_binding)).
    fn channel_binding(&self) -> Option<pop3_proto::sasl::ChannelBinding> {
        None
    }
}

/// A runtime: its timer (a sleep that can be re-armed, one per connection),
/// and how message bodies are written to its writers ([`WriteTo`]).
///
/// The type is also the marker that selects the runtime's trait
/// implementations of [`MessageReader`](crate::MessageReader) (`AsyncRead`
/// for tokio and futures-io, `std::io::Read` for blocking).
pub trait Runtime {
    /// A timer that does not fire until [`Runtime::reset`]. It is created for
    /// every connection, so it must be cheap and must not need a running
    /// runtime yet.
    fn never() -> Self;

    /// Arms the timer to fire `after` from now, or never if that instant
    /// cannot be represented.
    fn reset(&mut self, after: Duration);

    /// `Ready` once the time set by the last [`Runtime::reset`] has passed;
    /// `Pending` (with a wake-up registered) before.
    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// Runs `future` with an optional time limit kept by a timer of type `T`:
/// [`Error::Timeout`] with `phase` once `limit` has passed. I/O errors are
/// converted with `Error::from` (so TLS errors become [`Error::Tls`]).
///
/// Cancel-safety: dropping it drops `future`.
pub async fn with_timeout<T: Runtime, R>(
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

/// A stream that can be upgraded to TLS in place, for `STLS`.
pub trait StartTls: IoStream {
    /// Runs the TLS handshake over the plaintext stream, verifying the
    /// certificate for `name`; afterwards reads and writes go through TLS.
    /// Fails if the stream is TLS already.
    /// `limit` is the whole handshake's time limit, for streams that keep
    /// time themselves and so must bound every read and write of it (the
    /// caller also bounds the whole future with the runtime's timer).
    fn start_tls(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        limit: Option<Duration>,
    ) -> impl Future<Output = io::Result<()>> + Send;
}

/// Copies message bytes into a writer of the runtime `Self`'s kind (tokio's
/// `AsyncWrite`, futures-io's `AsyncWrite`, or `std::io::Write`).
pub trait WriteTo<W: ?Sized> {
    /// Writes all of `buf` to `writer`.
    fn poll_write_all(
        writer: &mut W,
        cx: &mut Context<'_>,
        buf: &[u8],
        written: &mut usize,
    ) -> Poll<io::Result<()>>;

    /// Flushes `writer`.
    fn poll_flush(writer: &mut W, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// Writes `buf[*written..]` with `poll_write` until all of it is out; for the
/// async runtimes' [`WriteTo`].
#[cfg(any(feature = "tokio", feature = "smol"))]
pub(crate) fn poll_write_all_with(
    buf: &[u8],
    written: &mut usize,
    mut poll_write: impl FnMut(&[u8]) -> Poll<io::Result<usize>>,
) -> Poll<io::Result<()>> {
    while *written < buf.len() {
        match poll_write(&buf[*written..]) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => *written += n,
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => return Poll::Pending,
        }
    }
    Poll::Ready(Ok(()))
}

/// Receives the messages of [`Connection::retr_many`](crate::Connection::retr_many) as they arrive.
///
/// Any `FnMut(MsgNum, &[u8])` closure is a sink that ignores the ends, but
/// Rust cannot infer that signature from this trait: write the chunk's type
/// (`&mut |msg, chunk: &[u8]| ...`), or the compiler reports that the closure
/// "is not general enough". Most programs are simpler with
/// [`Connection::retr_many_to`](crate::Connection::retr_many_to), which takes
/// a closure opening a writer per message and needs no annotation.
///
/// ```
/// use pop3_transport::runtime::{blocking::Blocking, IoStream};
/// use pop3_proto::MsgNum;
/// use pop3_transport::{Connection, Result};
///
/// /// The total size of the messages, none of them kept.
/// async fn measure<S: IoStream>(pop3: &mut Connection<S, Blocking>, msgs: &[MsgNum]) -> Result<u64> {
///     let mut total = 0;
///     pop3.retr_many(msgs, &mut |_msg, chunk: &[u8]| total += chunk.len() as u64).await?;
///     Ok(total)
/// }
/// ```
///
/// A sink that fails (a full disk, say) returns `Err`: the retrieval stops
/// cleanly — the messages already asked for are read and dropped, so the
/// connection stays usable — and `retr_many` returns that error.
pub trait MessageSink {
    /// The next piece of message `msg`. Returns an [`IoResult`] (the
    /// standard `std::io::Result`, as a writer's), not this crate's `Result`.
    fn on_chunk(&mut self, msg: MsgNum, chunk: &[u8]) -> IoResult<()>;

    /// Message `msg` is complete (`Ok` with its size), or failed: then the
    /// chunks given for it must be discarded. Returns an [`IoResult`].
    fn on_end(&mut self, msg: MsgNum, result: Result<u64, &Error>) -> IoResult<()> {
        let _ = (msg, result);
        Ok(())
    }
}

impl<F: FnMut(MsgNum, &[u8])> MessageSink for F {
    fn on_chunk(&mut self, msg: MsgNum, chunk: &[u8]) -> IoResult<()> {
        self(msg, chunk);
        Ok(())
    }
}

/// What the caller's own code returns to the transports: a [`MessageSink`]'s
/// methods and the closure that opens a writer for
/// [`Connection::retr_many_to`](crate::Connection::retr_many_to). It is the
/// standard [`std::io::Result`], named apart from this crate's
/// [`Result`] so that the two are told apart where they
/// meet: your I/O error comes back to you as [`Error::Sink`].
pub type IoResult<T> = io::Result<T>;

/// Runs a future to completion on the current thread, parking it while the
/// future waits. The blocking transport's executor: its streams never wait,
/// so a blocking operation completes in one poll.
pub fn block_on<F: Future>(future: F) -> F::Output {
    use std::task::Wake;
    use std::thread::{self, Thread};

    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}
