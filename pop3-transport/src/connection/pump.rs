//! The pump: drives the sans-IO core against the stream. It writes what the
//! core sends, reads when the core needs input, keeps each read's and write's
//! time limit, and hands the core's events to the operation waiting for them.
//! Nothing here knows any command; the operations are in `connection.rs`.

use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use pop3_proto::{Action, Direction, Event, Handle, Reply, TraceLine};

use super::Connection;
use crate::runtime::{IoStream, Runtime};
use crate::{Error, Phase, Result};

/// The timer of the I/O step in progress: armed when a read or write has to
/// wait, disarmed whenever one makes progress.
pub(super) struct Deadline<R> {
    timer: R,
    armed: Option<Phase>,
}

impl<R: Runtime> Deadline<R> {
    /// The I/O step `phase` has to wait: `Ready(Err(Timeout))` once it has
    /// waited `limit` without progress, else `Pending` (with a wake-up set).
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        phase: Phase,
        limit: Option<Duration>,
    ) -> Poll<Result<()>> {
        let Some(limit) = limit else {
            return Poll::Pending;
        };
        if self.armed != Some(phase) {
            self.timer.reset(limit);
            self.armed = Some(phase);
        }
        if self.timer.poll_elapsed(cx).is_ready() {
            self.armed = None;
            return Poll::Ready(Err(Error::Timeout(phase)));
        }
        Poll::Pending
    }

    fn progress(&mut self) {
        self.armed = None;
    }
}

impl<R: Runtime> Deadline<R> {
    /// A deadline that is not armed.
    pub(super) fn new() -> Self {
        Deadline {
            timer: R::never(),
            armed: None,
        }
    }
}

/// The handle and outcome of an event that completes a command.
pub(crate) fn outcome(event: Event<'_>) -> Option<(Handle, Result<Reply>)> {
    match event {
        Event::Ok { handle, reply } => Some((handle, Ok(reply))),
        Event::Err { handle, error } => Some((handle, Err(Error::Server(error)))),
        Event::Failed { handle, error } => Some((handle, Err(Error::BadReply(error)))),
        Event::Cancelled { handle, reason } => Some((handle, Err(Error::from(reason)))),
        _ => None,
    }
}

/// One line of the wire trace, at TRACE level with target `pop3::wire`.
fn trace_line(line: &TraceLine) {
    let side = match line.direction {
        Direction::Sent => "C",
        Direction::Received => "S",
    };
    tracing::trace!(target: "pop3::wire", "{side}: {}", line.line);
}

pub(crate) fn from_io(error: io::Error, phase: Phase) -> Error {
    Error::from_io(error, phase)
}

fn wipe(buf: &mut Vec<u8>) {
    buf.iter_mut().for_each(|b| *b = 0);
    buf.clear();
}

impl<S, R> Connection<S, R> {
    pub(super) fn fail<V>(&mut self, error: Error) -> Poll<Result<V>> {
        self.poisoned = true;
        wipe(&mut self.out);
        self.out_pos = 0;
        Poll::Ready(Err(error))
    }

    /// The reply never came: the core has nothing in flight any more.
    pub(super) fn lost(&mut self) -> Error {
        self.poisoned = true;
        Error::Closed
    }
}

impl<S: IoStream, R: Runtime> Connection<S, R> {
    /// Drives the core: writes what it sends, reads when it needs input, and
    /// hands each event to `on_event` until that returns `Some`.
    /// `Ok(None)`: nothing is in
    /// flight any more, so nothing will come.
    ///
    /// Body events carry at most `max_body` octets.
    pub(crate) fn poll_drive<V>(
        &mut self,
        cx: &mut Context<'_>,
        max_body: usize,
        mut on_event: impl FnMut(Event<'_>) -> Result<Option<V>>,
    ) -> Poll<Result<Option<V>>> {
        if self.poisoned {
            return Poll::Ready(Err(Error::Closed));
        }
        let _entered = self.span.clone().entered();
        loop {
            match self.poll_send(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return self.fail(error),
                Poll::Pending => return Poll::Pending,
            }
            let action = match self.client.poll_body_limited(max_body) {
                Ok(action) => action,
                Err(error) => return self.fail(Error::Protocol(error)),
            };
            match action {
                Action::Send(bytes) => self.out.extend_from_slice(bytes),
                Action::Event(Event::Trace(line)) => trace_line(&line),
                Action::Event(event) => match on_event(event) {
                    Ok(Some(value)) => return Poll::Ready(Ok(Some(value))),
                    Ok(None) => {}
                    Err(error) => return Poll::Ready(Err(error)),
                },
                Action::NeedInput => {
                    if self.client.is_idle() {
                        return Poll::Ready(Ok(None));
                    }
                    match self.poll_receive(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(error)) => return self.fail(error),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                // Nothing more comes before the TLS handshake, which only
                // `stls` runs (it expects this `Ok(None)`).
                Action::StartTls => return Poll::Ready(Ok(None)),
                Action::Closed => return self.fail(Error::Closed),
            }
        }
    }

    /// Writes and flushes the pending output.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.out.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let limit = self.options.timeouts.write;
        while self.out_pos < self.out.len() {
            match self.stream.poll_write(cx, &self.out[self.out_pos..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(Error::Io(io::ErrorKind::WriteZero.into())))
                }
                Poll::Ready(Ok(n)) => {
                    self.out_pos += n;
                    self.deadline.progress();
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(from_io(error, Phase::Write))),
                Poll::Pending => return self.deadline.poll(cx, Phase::Write, limit),
            }
        }
        match self.stream.poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.deadline.progress();
                wipe(&mut self.out);
                self.out_pos = 0;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(from_io(error, Phase::Write))),
            Poll::Pending => self.deadline.poll(cx, Phase::Write, limit),
        }
    }

    /// Reads once into the core's input buffer.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let phase = if self.client.state() == pop3_proto::State::Greeting {
            Phase::Greeting
        } else {
            Phase::Read
        };
        match self.stream.poll_read(cx, self.client.input_buffer()) {
            Poll::Ready(Ok(n)) => {
                self.deadline.progress();
                if n == 0 {
                    self.client.receive_eof();
                } else {
                    self.client.input_written(n);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(from_io(error, phase))),
            Poll::Pending => self.deadline.poll(cx, phase, self.options.timeouts.read),
        }
    }

    /// [`Connection::poll_drive`] as a future.
    pub(super) async fn drive<V>(
        &mut self,
        max_body: usize,
        mut on_event: impl FnMut(Event<'_>) -> Result<Option<V>>,
    ) -> Result<Option<V>> {
        poll_fn(|cx| self.poll_drive(cx, max_body, &mut on_event)).await
    }

    /// Waits for the reply to one command.
    pub(super) async fn reply(&mut self, handle: Handle) -> Result<Reply> {
        let reply = self
            .drive(usize::MAX, |event| match outcome(event) {
                Some((h, result)) if h == handle => result.map(Some),
                _ => Ok(None),
            })
            .await?;
        reply.ok_or_else(|| self.lost())
    }
}
