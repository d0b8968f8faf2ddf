//! The pump: drives the sans-IO core against the stream. It writes what the
//! core sends, reads when the core needs input, keeps each read's and write's
//! time limit, and hands the core's events to the operation waiting for them.
//! Nothing here knows any command; the operations are in `connection.rs`.

use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pop3_proto::{Action, Direction, Event, Handle, Reply, TraceLine};

use super::Connection;
use crate::runtime::{IoStream, Runtime};
use crate::{Error, Phase, Result, Timeouts};

/// The session's overall deadline ([`Timeouts::session`](crate::Timeouts::session)):
/// when it started, and when it ends (`None`: never).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionDeadline {
    started: Instant,
    ends: Option<Instant>,
}

/// The shortest time limit a blocking socket accepts (zero means "never").
const SHORTEST_SOCKET_LIMIT: Duration = Duration::from_millis(1);
/// How much earlier than asked a socket's time limit may fire: the kernel
/// keeps it in timer ticks (up to 10 ms each), and a limit that starts
/// mid-tick ends up to a tick early.
const SOCKET_TIMER_SLACK: Duration = Duration::from_millis(20);

impl SessionDeadline {
    /// A session that starts now and may last `limit`.
    pub(crate) fn starting_now(limit: Option<Duration>) -> Self {
        SessionDeadline::since(Instant::now(), limit)
    }

    /// A session that started at `started` and may last `limit` (a limit
    /// too far away to represent is no limit).
    pub(crate) fn since(started: Instant, limit: Option<Duration>) -> Self {
        SessionDeadline {
            started,
            ends: limit.and_then(|limit| started.checked_add(limit)),
        }
    }

    /// The same start with another limit (the caller changed the time limits).
    pub(crate) fn with_limit(self, limit: Option<Duration>) -> Self {
        SessionDeadline::since(self.started, limit)
    }

    /// What remains of the session, `None` without a deadline.
    fn remaining(&self) -> Option<Duration> {
        self.ends
            .map(|ends| ends.saturating_duration_since(Instant::now()))
    }

    /// `Err(Timeout(Session))` once the deadline has passed.
    pub(crate) fn check(&self) -> Result<()> {
        match self.remaining() {
            Some(remaining) if remaining.is_zero() => Err(Error::Timeout(Phase::Session)),
            _ => Ok(()),
        }
    }

    /// The limit a step of `phase` with its own `limit` really has: the
    /// shorter of that and what remains of the session, with the phase to
    /// report when it runs out.
    pub(crate) fn bound(&self, phase: Phase, limit: Option<Duration>) -> (Phase, Option<Duration>) {
        match (self.remaining(), limit) {
            (Some(remaining), Some(limit)) if limit <= remaining => (phase, Some(limit)),
            (Some(remaining), _) => (Phase::Session, Some(remaining)),
            (None, limit) => (phase, limit),
        }
    }

    /// [`SessionDeadline::bound`] for a limit a blocking socket keeps itself,
    /// which must not be zero.
    pub(crate) fn bound_socket(&self, limit: Option<Duration>) -> Option<Duration> {
        let (_, limit) = self.bound(Phase::Read, limit);
        limit.map(|limit| limit.max(SHORTEST_SOCKET_LIMIT))
    }

    /// A time-out reported by a step of `phase` (a blocking socket's limit,
    /// or the runtime's timer): the session's when its deadline has passed,
    /// or is within [`SOCKET_TIMER_SLACK`] of passing, since a socket limit
    /// shrunk to what remained of the session may fire that much early.
    pub(crate) fn blame(&self, error: Error) -> Error {
        match error {
            Error::Timeout(_)
                if self
                    .remaining()
                    .is_some_and(|remaining| remaining <= SOCKET_TIMER_SLACK) =>
            {
                Error::Timeout(Phase::Session)
            }
            other => other,
        }
    }
}

/// The timer of the I/O step in progress: armed when a read or write has to
/// wait (for the step's idle limit or what remains of the session, whichever
/// is shorter), disarmed whenever one makes progress.
pub(super) struct Deadline<R> {
    timer: R,
    /// The step waiting, and the phase to report when the timer fires.
    armed: Option<(Phase, Phase)>,
}

impl<R: Runtime> Deadline<R> {
    /// The I/O step `phase` has to wait: `Ready(Err(Timeout))` once it has
    /// waited `limit` without progress or the session's deadline has come,
    /// else `Pending` (with a wake-up set).
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        phase: Phase,
        limit: Option<Duration>,
        session: &SessionDeadline,
    ) -> Poll<Result<()>> {
        let fires_as = match self.armed {
            Some((armed, fires_as)) if armed == phase => fires_as,
            _ => {
                let (fires_as, limit) = session.bound(phase, limit);
                let Some(limit) = limit else {
                    return Poll::Pending;
                };
                self.timer.reset(limit);
                self.armed = Some((phase, fires_as));
                fires_as
            }
        };
        if self.timer.poll_elapsed(cx).is_ready() {
            self.armed = None;
            return Poll::Ready(Err(Error::Timeout(fires_as)));
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
        if let Err(error) = self.before_io() {
            return Poll::Ready(Err(error));
        }
        while self.out_pos < self.out.len() {
            match self.stream.poll_write(cx, &self.out[self.out_pos..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(Error::Io(io::ErrorKind::WriteZero.into())))
                }
                Poll::Ready(Ok(n)) => {
                    self.out_pos += n;
                    self.deadline.progress();
                }
                Poll::Ready(Err(error)) => {
                    return Poll::Ready(Err(self.io_error(error, Phase::Write)))
                }
                Poll::Pending => return self.deadline.poll(cx, Phase::Write, limit, &self.session),
            }
        }
        match self.stream.poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.deadline.progress();
                wipe(&mut self.out);
                self.out_pos = 0;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(self.io_error(error, Phase::Write))),
            Poll::Pending => self.deadline.poll(cx, Phase::Write, limit, &self.session),
        }
    }

    /// Reads once into the core's input buffer.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let phase = match self.client.state() {
            pop3_proto::State::Greeting if self.client.is_encrypted() => Phase::GreetingOverTls,
            pop3_proto::State::Greeting => Phase::Greeting,
            _ => Phase::Read,
        };
        if let Err(error) = self.before_io() {
            return Poll::Ready(Err(error));
        }
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
            Poll::Ready(Err(error)) => Poll::Ready(Err(self.io_error(error, phase))),
            Poll::Pending => {
                let limit = self.options.timeouts.read;
                self.deadline.poll(cx, phase, limit, &self.session)
            }
        }
    }

    /// Before each read or write: the session's deadline has not passed
    /// (a server that never pauses never waits for a timer), and a blocking
    /// socket, which keeps time itself, waits no longer than what remains of
    /// the session. Its limits change only once that is shorter than
    /// its idle limits, in the session's last minute by default.
    fn before_io(&mut self) -> Result<()> {
        self.session.check()?;
        let Timeouts { read, write, .. } = self.options.timeouts;
        let (read_phase, _) = self.session.bound(Phase::Read, read);
        let (write_phase, _) = self.session.bound(Phase::Write, write);
        if read_phase == Phase::Session || write_phase == Phase::Session {
            let (read, write) = (
                self.session.bound_socket(read),
                self.session.bound_socket(write),
            );
            self.stream.set_timeouts(read, write).map_err(Error::Io)?;
        }
        Ok(())
    }

    /// An I/O error of a step of `phase`, as the error to return: a socket's
    /// time-out is the session's once its deadline has passed.
    fn io_error(&self, error: io::Error, phase: Phase) -> Error {
        self.session.blame(from_io(error, phase))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket limit shrunk to what remains of the session may fire a
    /// timer tick before the deadline: that time-out is still the session's.
    #[test]
    fn a_time_out_just_before_the_deadline_is_the_sessions() {
        let ending = SessionDeadline::starting_now(Some(Duration::from_millis(15)));
        assert!(matches!(
            ending.blame(Error::Timeout(Phase::Read)),
            Error::Timeout(Phase::Session)
        ));
        let far = SessionDeadline::starting_now(Some(Duration::from_secs(60)));
        assert!(matches!(
            far.blame(Error::Timeout(Phase::Read)),
            Error::Timeout(Phase::Read)
        ));
    }
}
