//! The client state machine: [`Client`], the orchestrator between its
//! rooms. Each concern is a file of its own:
//!
//! - `types.rs`: the public types ([`Config`], [`Handle`], [`Action`], [`Event`], ...);
//! - `submit.rs`: submission checks and queueing, the projected state;
//! - `pipeline.rs`: the send queue, the pipelining window, commands in flight;
//! - `receive.rs`: reading replies and turning them into events;
//! - `capa.rs`: when the core asks `CAPA` on its own;
//! - `trace.rs`: the wire trace;
//! - `operation.rs`: composite operations (login with mechanism choice, STLS).
//!
//! This file holds the state they share, the input side and the `poll` loop.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::framing::Rx;
use crate::types::{Capabilities, Greeting};
use crate::Text;
use crate::{ProtocolError, UsageError};

mod capa;
mod operation;
mod pipeline;
mod receive;
mod submit;
mod trace;
mod types;

use capa::CapaState;
#[cfg(feature = "getrandom")]
pub use operation::RandomUnavailable;
pub use operation::{AuthMethod, Credentials};
use operation::{Operation, Routed};
use pipeline::{InFlight, Queued, SendBuffer};
use receive::{Reading, Step};
use submit::{Backlog, Projection};
use types::next_client_id;
pub use types::{
    Action, Config, Direction, Event, Handle, Limits, Reply, State, TraceLine, MAX_READ_SIZE,
    MAX_WRITE_AHEAD,
};

/// The sans-IO POP3 client. See the [crate documentation](crate) for the run loop.
pub struct Client {
    config: Config,
    id: u32,
    next_seq: u32,
    rx: Rx,
    eof: bool,
    tx: SendBuffer,
    queue: VecDeque<Queued>,
    in_flight: VecDeque<InFlight>,
    /// The bytes of the command lines in `in_flight`.
    in_flight_bytes: usize,
    reading: Reading,
    events: VecDeque<Event<'static>>,
    state: State,
    projection: Projection,
    encrypted: bool,
    tls_pending: bool,
    utf8: bool,
    greeting: Option<Greeting>,
    /// The latest status line received, sanitised ([`Client::status_line`]).
    status_line: Option<Text>,
    capabilities: Option<Capabilities>,
    /// What the session knows of the server's `CAPA`: when to ask on its own.
    capa: CapaState,
    /// The message count from the latest STAT: the maildrop is locked for the
    /// session, so no listing may name a message beyond it.
    stat_count: Option<u32>,
    fatal: Option<ProtocolError>,
    /// The composite operation in progress.
    operation: Option<Operation>,
    /// What was submitted behind it.
    backlog: VecDeque<Backlog>,
    /// Sub-commands of the operation that ended last, whose stray events
    /// (cancellations) must not reach the caller.
    finished_subs: Vec<Handle>,
    /// The methods the latest [`Client::login_with`] tried, in order.
    login_attempts: Vec<String>,
    /// Commands whose remaining events are read and dropped.
    discarded: Vec<Handle>,
    /// Trace lines not yet reported; they come before other events.
    trace: VecDeque<TraceLine>,
    /// An event read while trace lines were waiting.
    deferred: Option<Event<'static>>,
    /// The session ends with this error once the events queued before it
    /// (the cancellations of a failed TLS upgrade) have been reported.
    ending: Option<ProtocolError>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.state)
            .field("encrypted", &self.encrypted)
            .field("queued", &self.queue.len())
            .field("in_flight", &self.in_flight.len())
            .field("fatal", &self.fatal)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for a new connection, waiting for the greeting.
    pub fn new(config: Config) -> Client {
        let config = Config {
            pipeline_window: config.pipeline_window.max(1),
            read_size: config.read_size.clamp(1, MAX_READ_SIZE),
            ..config
        };
        Client {
            id: next_client_id(),
            next_seq: 0,
            rx: Rx::new(),
            eof: false,
            tx: SendBuffer::default(),
            queue: VecDeque::new(),
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            reading: Reading::Status,
            events: VecDeque::new(),
            state: State::Greeting,
            projection: Projection {
                state: State::Authorization,
                encrypted: config.encrypted,
                tls_queued: false,
                user_given: false,
            },
            encrypted: config.encrypted,
            tls_pending: false,
            utf8: false,
            greeting: None,
            status_line: None,
            capabilities: None,
            capa: CapaState::NotAsked,
            stat_count: None,
            fatal: None,
            operation: None,
            backlog: VecDeque::new(),
            finished_subs: Vec::new(),
            login_attempts: Vec::new(),
            discarded: Vec::new(),
            trace: VecDeque::new(),
            deferred: None,
            ending: None,
            config,
        }
    }

    // ----- state -----

    /// The session's state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The greeting, once received.
    pub fn greeting(&self) -> Option<&Greeting> {
        self.greeting.as_ref()
    }

    /// The latest status line received (`+OK ...`, `-ERR ...`, a SASL `+`
    /// challenge, or the greeting) without its CRLF, sanitised by the one
    /// text rule. Replies are read one at a time, each as [`Client::poll`]
    /// reaches it: read right after the event that answers a command, it is
    /// that reply's first line (for a body or a listing, the line that
    /// opened it; during [`Action::StartTls`], the `+OK` to `STLS`). For a
    /// caller that hands status lines on as they came, as Python's `poplib`
    /// does; the events carry what the lines mean.
    pub fn status_line(&self) -> Option<&Text> {
        self.status_line.as_ref()
    }

    /// The capabilities from the latest `CAPA` valid in the current state.
    /// Forgotten when TLS starts and after login, since a server may change them.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
    }

    /// The server refused `CAPA` in this session (it does not implement
    /// RFC 2449): asking again is pointless. `false` before it was asked.
    pub fn capa_refused(&self) -> bool {
        matches!(
            self.capa,
            CapaState::Refused | CapaState::AnsweredAndRefused
        )
    }

    /// The connection is encrypted (implicit TLS, or STLS completed).
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// `UTF8` was accepted.
    pub fn is_utf8(&self) -> bool {
        self.utf8
    }

    /// Commands may currently be pipelined.
    pub fn is_pipelining(&self) -> bool {
        self.capabilities
            .as_ref()
            .is_some_and(Capabilities::pipelining)
    }

    /// Commands handed out to be sent (in an [`Action::Send`], whether or not
    /// the caller's socket has written them yet) and not yet answered. Commands
    /// still queued behind the pipelining window are not counted.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Nothing is expected from the server: the greeting has come and no
    /// command is queued or waiting for its reply. A `NeedInput` now means
    /// waiting for the server to close, or for nothing at all.
    pub fn is_idle(&self) -> bool {
        self.state != State::Greeting
            && self.queue.is_empty()
            && self.in_flight.is_empty()
            && matches!(self.reading, Reading::Status)
    }

    /// Commands submitted and not yet sent.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The fatal error, once one has happened.
    pub fn error(&self) -> Option<&ProtocolError> {
        self.fatal.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    // ----- input -----

    /// Free space to read server bytes into, at least [`Config::read_size`]
    /// octets. Report how many were read with [`Client::input_written`].
    /// Reading straight into this buffer saves a copy of every message body.
    pub fn input_buffer(&mut self) -> &mut [u8] {
        self.rx.spare(self.config.read_size)
    }

    /// Received bytes not yet turned into events. After [`Client::poll`]
    /// has returned [`Action::NeedInput`] this is at most a partial line
    /// (up to [`Limits::max_line_len`] + 1 octets) or a few octets of a body.
    pub fn buffered_input(&self) -> usize {
        self.rx.unread().len()
    }

    /// The most unread input a driver should let the client hold before it
    /// polls again: one read ([`Config::read_size`]) on top of the partial
    /// line that polling to [`Action::NeedInput`] may leave. A driver that
    /// takes input without polling (C's `pop3_client_receive`, say) refuses
    /// more once [`Client::buffered_input`] reaches it, so that memory stays
    /// bounded when events are not drained; polling always brings the
    /// buffer below it again. Saturating, so that limits of `usize::MAX`
    /// mean "no bound" rather than a wrapped one.
    pub fn input_bound(&self) -> usize {
        self.config
            .read_size
            .saturating_add(self.config.limits.max_line_len)
            .saturating_add(2)
    }

    /// Records that `n` bytes were read into [`Client::input_buffer`].
    pub fn input_written(&mut self, n: usize) {
        if n == 0 || self.fatal.is_some() {
            return;
        }
        if self.tls_pending {
            self.fail();
            self.fatal = Some(ProtocolError::DataAfterStls);
            return;
        }
        self.rx.filled(n);
    }

    /// Hands bytes received from the server to the client (copies them).
    pub fn receive(&mut self, data: &[u8]) {
        if data.is_empty() || self.fatal.is_some() {
            return;
        }
        if self.tls_pending {
            self.fail();
            self.fatal = Some(ProtocolError::DataAfterStls);
            return;
        }
        self.rx.push(data);
    }

    /// The server closed its side of the connection.
    pub fn receive_eof(&mut self) {
        self.eof = true;
    }

    /// TLS is up after [`Action::StartTls`]. Capabilities learned before are
    /// forgotten and `CAPA` is issued again.
    pub fn tls_established(&mut self) -> Result<(), UsageError> {
        if let Some(error) = &self.fatal {
            return Err(UsageError::Failed(error.clone()));
        }
        if !self.tls_pending {
            return Err(UsageError::WrongState {
                command: "STLS",
                reason: "no TLS upgrade is pending",
            });
        }
        self.tls_pending = false;
        self.encrypted = true;
        self.capabilities = None;
        self.queue_internal_capa();
        self.fill_window();
        Ok(())
    }

    /// The TLS handshake after [`Action::StartTls`] failed (or the
    /// certificate was refused): the session cannot go on. The STLS
    /// operation ([`Client::start_tls`]) completes with [`Event::Failed`]
    /// ([`ProtocolError::TlsFailed`]), every command submitted behind it with
    /// [`Event::Cancelled`], and then [`Client::poll`] returns that error,
    /// fatal like any other. `Err` when no upgrade is pending.
    pub fn tls_failed(&mut self) -> Result<(), UsageError> {
        if let Some(error) = &self.fatal {
            return Err(UsageError::Failed(error.clone()));
        }
        if !self.tls_pending {
            return Err(UsageError::WrongState {
                command: "STLS",
                reason: "no TLS upgrade is pending",
            });
        }
        self.end_upgrade(ProtocolError::TlsFailed);
        Ok(())
    }

    /// Ends a TLS upgrade that will never complete: the operation fails, what
    /// waited for it is cancelled (events the caller still gets), and the
    /// session then ends with `error`.
    fn end_upgrade(&mut self, error: ProtocolError) {
        self.tls_pending = false;
        if self.operation.is_some() {
            self.fail_operation_with(error.clone());
        }
        self.cancel_all(UsageError::Cancelled);
        self.state = State::Closed;
        self.projection.state = State::Closed;
        self.ending = Some(error);
    }

    /// Returns the next thing to do. Call it in a loop until it returns
    /// [`Action::NeedInput`] (then read) or [`Action::Closed`].
    ///
    /// An `Err` is fatal and sticky: the server broke the protocol and the
    /// connection must be closed; every later call returns the same error.
    pub fn poll(&mut self) -> Result<Action<'_>, ProtocolError> {
        self.poll_body_limited(usize::MAX)
    }

    /// Like [`Client::poll`], but an [`Event::Body`] carries at most `max`
    /// octets (at least 1); the rest stays buffered for the next poll. A
    /// streaming reader uses this to fill exactly the caller's buffer.
    pub fn poll_body_limited(&mut self, max: usize) -> Result<Action<'_>, ProtocolError> {
        if let Some(error) = &self.fatal {
            return Err(error.clone());
        }
        self.release_tx();
        loop {
            if let Some(error) = &self.fatal {
                return Err(error.clone());
            }
            if !self.tx.is_empty() {
                return Ok(Action::Send(self.tx.hand_out()));
            }
            if let Some(line) = self.trace.pop_front() {
                return Ok(Action::Event(Event::Trace(line)));
            }
            let queued = self.deferred.take().or_else(|| self.events.pop_front());
            if let Some(event) = queued {
                match self.filter(event) {
                    Some(event) => return Ok(Action::Event(event)),
                    None => continue,
                }
            }
            if let Some(error) = self.ending.take() {
                self.fail();
                self.fatal = Some(error.clone());
                return Err(error);
            }
            if self.tls_pending {
                if self.eof {
                    // The server hung up before the handshake could finish:
                    // the upgrade ends like a failed handshake.
                    self.end_upgrade(ProtocolError::UnexpectedEof);
                    continue;
                }
                return Ok(Action::StartTls);
            }
            self.advance_operation();
            if !self.events.is_empty() || !self.tx.is_empty() {
                continue;
            }
            match self.step(max) {
                Ok(Step::Event(event)) if !self.trace.is_empty() => {
                    // The line it came from is traced first.
                    self.deferred = Some(event);
                }
                Ok(Step::Event(event)) => {
                    if let Some(event) = self.filter(event) {
                        return Ok(Action::Event(event));
                    }
                }
                Ok(Step::Body(handle, _)) if self.discarded.contains(&handle) => {}
                Ok(Step::Body(handle, range)) => {
                    return Ok(Action::Event(Event::Body {
                        handle,
                        data: self.rx.bytes(range),
                    }))
                }
                Ok(Step::Progress) => continue,
                Ok(Step::Idle) => break,
                Err(error) => {
                    self.fail();
                    self.fatal = Some(error.clone());
                    return Err(error);
                }
            }
        }
        if self.state == State::Closed {
            Ok(Action::Closed)
        } else {
            Ok(Action::NeedInput)
        }
    }

    /// Drops the events the caller did not ask for: those of discarded
    /// commands and of a composite operation's own commands.
    fn filter(&mut self, event: Event<'static>) -> Option<Event<'static>> {
        let handle = match &event {
            Event::Ok { handle, .. }
            | Event::Err { handle, .. }
            | Event::Failed { handle, .. }
            | Event::Cancelled { handle, .. } => Some((*handle, true)),
            Event::BodyStart { handle } => Some((*handle, false)),
            _ => None,
        };
        if let Some((handle, completes)) = handle {
            if let Some(at) = self.discarded.iter().position(|&h| h == handle) {
                if completes {
                    self.discarded.swap_remove(at);
                }
                return None;
            }
            if self.finished_subs.contains(&handle) {
                return None;
            }
        }
        match self.route(event) {
            Routed::Foreign(event) => Some(event),
            Routed::Consumed => None,
        }
    }

    fn fail(&mut self) {
        self.abandon_operation();
        self.backlog.clear();
        self.state = State::Closed;
        self.projection.state = State::Closed;
        self.queue.clear();
        self.in_flight.clear();
        self.in_flight_bytes = 0;
        self.release_tx();
        self.tx.bytes.clear();
    }
}
