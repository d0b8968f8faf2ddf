//! The client state machine.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use crate::command::{self, check_argument, check_raw_verb, encode_line, Command};
use crate::framing::{BodyDecoder, BodyRead, LineRead, Rx};
use crate::parse::{self, Status};
use crate::sasl::{Mechanism, SaslError, TokenRefusal};
use crate::types::{
    Capabilities, Capability, Greeting, Language, ListEntry, ServerError, Stat, UidlEntry,
};
use crate::{MsgNum, ProtocolError, Secret, Text, UsageError};

mod operation;

pub use operation::{AuthMethod, Credentials};
use operation::{Operation, Routed};

/// Limits on what the server may make the client hold. Every one has a safe
/// default; raise them only for servers you trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest status or listing line, CRLF excluded. RFC 2449 allows 512 octets;
    /// the default, 8 KiB, leaves room for servers that exceed it.
    pub max_line_len: usize,
    /// Most lines in a `LIST`, `UIDL` or `LANG` listing (default 1 000 000).
    pub max_listing_lines: usize,
    /// Most lines in a `CAPA` reply (default 1 000).
    pub max_capa_lines: usize,
    /// Longest line inside a message body, if limited. `None` (the default) lets
    /// long body lines through, since the body is streamed and costs no memory.
    pub max_body_line_len: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_len: 8 * 1024,
            max_listing_lines: 1_000_000,
            max_capa_lines: 1_000,
            max_body_line_len: None,
        }
    }
}

/// The most command bytes the client has sent and not yet seen answered,
/// whatever [`Config::pipeline_window`] allows (one command may pass it):
/// about 800 `RETR` commands.
pub const MAX_WRITE_AHEAD: usize = 8 * 1024;

/// How a [`Client`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Size limits on replies.
    pub limits: Limits,
    /// Most commands in flight when the server offers `PIPELINING` (default
    /// 1024: a whole mailbox of small messages in one round trip). Whatever
    /// the window, the client stops writing ahead once 8 KiB of commands
    /// are unanswered ([`MAX_WRITE_AHEAD`]), less than any socket buffer, so
    /// that a transport that writes everything before reading can never
    /// deadlock against the server.
    pub pipeline_window: usize,
    /// The connection is already encrypted (implicit TLS, port 995).
    pub encrypted: bool,
    /// Allow USER/PASS, APOP and credential-revealing SASL mechanisms on an
    /// unencrypted connection. Off by default.
    pub allow_plaintext_credentials: bool,
    /// Free space asked of [`Client::input_buffer`] (default 64 KiB).
    pub read_size: usize,
    /// Report every line sent and every status line received as
    /// [`Event::Trace`], secrets already replaced by `<redacted>`. Off by
    /// default.
    pub trace: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::default(),
            pipeline_window: 1024,
            encrypted: false,
            allow_plaintext_credentials: false,
            read_size: 64 * 1024,
            trace: false,
        }
    }
}

impl Config {
    /// The defaults, for a connection that is already TLS (port 995).
    pub fn encrypted() -> Config {
        Config {
            encrypted: true,
            ..Config::default()
        }
    }

    /// Sets [`Config::allow_plaintext_credentials`].
    pub fn allow_plaintext_credentials(mut self, allow: bool) -> Config {
        self.allow_plaintext_credentials = allow;
        self
    }

    /// Sets [`Config::limits`].
    pub fn limits(mut self, limits: Limits) -> Config {
        self.limits = limits;
        self
    }

    /// Sets [`Config::trace`].
    pub fn trace(mut self, trace: bool) -> Config {
        self.trace = trace;
        self
    }

    /// Sets [`Config::pipeline_window`] (at least 1).
    pub fn pipeline_window(mut self, window: usize) -> Config {
        self.pipeline_window = window.max(1);
        self
    }
}

/// Names one submitted command; its reply carries the same handle.
///
/// Handles are unique per client and never equal to a handle of another client.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle {
    client: u32,
    seq: u32,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({}:{})", self.client, self.seq)
    }
}

fn next_client_id() -> u32 {
    #[cfg(target_has_atomic = "32")]
    {
        use core::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }
    #[cfg(not(target_has_atomic = "32"))]
    {
        0
    }
}

/// The session's state (RFC 1939 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for the server's greeting.
    Greeting,
    /// Connected, not logged in.
    Authorization,
    /// Logged in.
    Transaction,
    /// QUIT was answered, or the connection closed.
    Closed,
}

/// What a command's `+OK` reply carried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// A one-line `+OK` with its text (USER, DELE, NOOP, RSET, QUIT, UTF8, LANG tag, raw).
    Ok(Text),
    /// Login succeeded (PASS, APOP, AUTH).
    Authenticated(Text),
    /// `STAT`.
    Stat(Stat),
    /// `LIST`.
    List(Vec<ListEntry>),
    /// `LIST n`.
    ListOne(ListEntry),
    /// `UIDL`.
    Uidl(Vec<UidlEntry>),
    /// `UIDL n`.
    UidlOne(UidlEntry),
    /// `CAPA`.
    Capabilities(Capabilities),
    /// `LANG` without an argument.
    Languages(Vec<Language>),
    /// The body of `RETR`, `TOP` or a multi-line raw command has ended; every
    /// chunk came before as [`Event::Body`].
    BodyEnd,
    /// `STLS` was accepted: the next action is [`Action::StartTls`].
    StartTls,
    /// [`Client::start_tls`] completed: TLS is up and the capabilities were
    /// asked again.
    TlsEstablished,
}

/// Which way a [`TraceLine`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A command line the client sent.
    Sent,
    /// A status line (`+OK`, `-ERR`, or a SASL `+` challenge) or the greeting
    /// the client received.
    Received,
}

/// One line of the wire trace ([`Config::trace`]), without its CRLF.
/// Passwords, APOP digests and SASL responses read `<redacted>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLine {
    /// Sent or received.
    pub direction: Direction,
    /// The line, sanitised.
    pub line: Text,
}

/// Something that happened, for the caller to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The server's `+OK` greeting.
    Greeting(Greeting),
    /// A command succeeded.
    Ok {
        /// The command.
        handle: Handle,
        /// What the reply carried.
        reply: Reply,
    },
    /// The server refused a command with `-ERR`. The session goes on.
    Err {
        /// The command.
        handle: Handle,
        /// The code and text.
        error: ServerError,
    },
    /// The server accepted a `RETR`, `TOP` or multi-line raw command: its body
    /// follows as [`Event::Body`] chunks, then [`Reply::BodyEnd`].
    BodyStart {
        /// The command.
        handle: Handle,
    },
    /// A piece of a message body, dot-unstuffed, line endings exactly as sent.
    /// Borrowed from the receive buffer: copy it before the next call.
    Body {
        /// The `RETR`, `TOP` or raw command.
        handle: Handle,
        /// The bytes.
        data: &'a [u8],
    },
    /// The reply to a command was unusable (malformed, too long, or a SASL
    /// exchange the client had to cancel). It was read to its end, so the
    /// session stays in step and goes on. Chunks already given as
    /// [`Event::Body`] for it must be discarded.
    Failed {
        /// The command.
        handle: Handle,
        /// What was wrong.
        error: ProtocolError,
    },
    /// The command was never sent, because a STLS or login command queued
    /// before it failed, or because APOP has no timestamp to use.
    Cancelled {
        /// The command.
        handle: Handle,
        /// Why.
        reason: UsageError,
    },
    /// The answer to a `CAPA` the core sent on its own. It does so:
    ///
    /// - right after [`Client::tls_established`], always (capabilities learnt
    ///   before TLS are forgotten: RFC 2595 section 4);
    /// - right after a successful login, if the server answered `CAPA` before
    ///   (a server may offer more once logged in: RFC 2449 section 5);
    /// - before a burst: when at least two commands wait in the transaction
    ///   state and the capabilities are unknown, once, so that the burst can
    ///   be pipelined if the server allows it;
    /// - and as part of the operations that need to know: STLS
    ///   ([`Client::start_tls`]) and [`AuthMethod::Auto`] ask first when the
    ///   capabilities are unknown.
    ///
    /// That `CAPA` goes before anything queued, under a [`Handle`] of the core's
    /// own that is never returned to the caller, so no event of it can be
    /// mistaken for a reply to one of yours; its answer comes as this event,
    /// not as [`Event::Ok`], and also updates [`Client::capabilities`]. A
    /// `-ERR` to it is not reported (no event) and the core never asks on its
    /// own again in that session. It is a command like any other on the wire
    /// (the [`Event::Trace`] shows `C: CAPA`), so a transport only pumps it.
    Capabilities(Capabilities),
    /// A line as it went over the wire, in wire order ([`Config::trace`]).
    Trace(TraceLine),
}

/// What the caller must do next. Returned by [`Client::poll`].
#[must_use = "the client cannot make progress unless the action is carried out"]
#[derive(Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Handle this event, then poll again.
    Event(Event<'a>),
    /// Write all of these bytes to the server, then poll again.
    Send(&'a [u8]),
    /// Read from the server and hand the bytes to [`Client::input_written`] or
    /// [`Client::receive`] (or call [`Client::receive_eof`]), then poll again.
    NeedInput,
    /// Start a TLS handshake on the connection now, then call
    /// [`Client::tls_established`]. Do not read any plaintext before.
    StartTls,
    /// The session is over; close the connection.
    Closed,
}

/// What a sent command's reply looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Simple,
    User,
    Login,
    Stat,
    ListAll,
    ListOne,
    UidlAll,
    UidlOne,
    Capa { internal: bool },
    Body,
    Languages,
    Auth,
    Stls,
    Quit,
    Utf8,
}

impl Expect {
    fn of(command: &Command) -> Expect {
        match command {
            Command::User(_) => Expect::User,
            Command::Pass(_) | Command::Apop { .. } => Expect::Login,
            Command::Auth(_) => Expect::Auth,
            Command::Stls => Expect::Stls,
            Command::Capa => Expect::Capa { internal: false },
            Command::Stat => Expect::Stat,
            Command::List(None) => Expect::ListAll,
            Command::List(Some(_)) => Expect::ListOne,
            Command::Uidl(None) => Expect::UidlAll,
            Command::Uidl(Some(_)) => Expect::UidlOne,
            Command::Retr(_) | Command::Top(..) => Expect::Body,
            Command::Raw {
                multiline: true, ..
            } => Expect::Body,
            Command::Lang(None) => Expect::Languages,
            Command::Quit => Expect::Quit,
            Command::Utf8 => Expect::Utf8,
            _ => Expect::Simple,
        }
    }

    /// Nothing is pipelined across these: their outcome changes what may follow.
    fn is_barrier(self) -> bool {
        matches!(self, Expect::Login | Expect::Auth | Expect::Stls)
    }

    fn is_multiline(self) -> bool {
        matches!(
            self,
            Expect::ListAll
                | Expect::UidlAll
                | Expect::Capa { .. }
                | Expect::Body
                | Expect::Languages
        )
    }
}

/// A submitted command not yet sent.
struct Queued {
    handle: Handle,
    command: Command,
    expect: Expect,
    /// AUTH only: the mechanism's initial response, computed at submission.
    initial: Option<Secret<Vec<u8>>>,
}

/// Submitted behind a composite operation that has not completed: waits,
/// because it assumes the operation succeeds.
enum Backlog {
    Command(Queued),
    Operation(Operation),
}

/// A SASL exchange in progress.
struct AuthExchange {
    mechanism: Box<dyn Mechanism>,
    /// An initial response too long for the AUTH line (RFC 5034: 255 octets),
    /// sent instead in answer to the server's first, empty challenge.
    deferred: Option<Secret<Vec<u8>>>,
    /// Set when the client cancelled the exchange with `*`.
    cancelled: Option<SaslError>,
    /// An OAuth mechanism's token was refused with a JSON report; the `-ERR`
    /// that follows carries it.
    refusal: Option<TokenRefusal>,
}

/// A sent command waiting for its reply.
struct InFlight {
    handle: Handle,
    expect: Expect,
    auth: Option<AuthExchange>,
    /// Length of the command line sent.
    bytes: usize,
}

/// A multi-line listing being read.
enum Items {
    List(Vec<ListEntry>),
    Uidl(Vec<UidlEntry>),
    Capa(Vec<Capability>),
    Languages(Vec<Language>),
    /// The +OK line was too long: the listing is only skipped.
    Skip,
}

/// Where the reply to the oldest command in flight stands.
enum Reading {
    Status,
    Listing {
        items: Items,
        lines: usize,
        error: Option<ProtocolError>,
    },
    Body {
        decoder: BodyDecoder,
        error: Option<ProtocolError>,
    },
}

/// What the session will look like once everything queued has succeeded;
/// commands are checked against this when submitted.
#[derive(Debug, Clone, Copy)]
struct Projection {
    state: State,
    encrypted: bool,
    tls_queued: bool,
    user_given: bool,
}

/// One step of reading input.
enum Step {
    Event(Event<'static>),
    Body(Handle, core::ops::Range<usize>),
    Progress,
    Idle,
}

/// The sans-IO POP3 client. See the [crate documentation](crate) for the run loop.
pub struct Client {
    config: Config,
    id: u32,
    next_seq: u32,
    rx: Rx,
    eof: bool,
    tx: Vec<u8>,
    /// `tx` was handed to the caller by the last poll and is cleared on the next call.
    tx_handed: bool,
    /// `tx` holds a secret: wipe it when clearing.
    tx_secret: bool,
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
    capabilities: Option<Capabilities>,
    /// The server answered CAPA once, so it is worth asking again after login.
    capa_answered: bool,
    /// CAPA was sent or queued in the current state (since TLS or login).
    capa_asked: bool,
    /// The server refused CAPA: it does not implement RFC 2449; never ask again.
    capa_refused: bool,
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
            ..config
        };
        Client {
            id: next_client_id(),
            next_seq: 0,
            rx: Rx::new(),
            eof: false,
            tx: Vec::new(),
            tx_handed: false,
            tx_secret: false,
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
            capabilities: None,
            capa_answered: false,
            capa_asked: false,
            capa_refused: false,
            stat_count: None,
            fatal: None,
            operation: None,
            backlog: VecDeque::new(),
            finished_subs: Vec::new(),
            login_attempts: Vec::new(),
            discarded: Vec::new(),
            trace: VecDeque::new(),
            deferred: None,
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

    /// The capabilities from the latest `CAPA` valid in the current state.
    /// Forgotten when TLS starts and after login, since a server may change them.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
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

    /// Commands sent and not yet answered.
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

    // ----- commands -----

    /// Submits a command. It is checked against the state the session will be
    /// in once everything submitted before has succeeded, and refused — with
    /// nothing sent — if it does not fit or an argument is unsafe.
    pub fn submit(&mut self, command: Command) -> Result<Handle, UsageError> {
        if let Some(error) = &self.fatal {
            return Err(UsageError::Failed(error.clone()));
        }
        if self.projection.state == State::Closed {
            return Err(UsageError::Closed);
        }
        self.check(&command)?;
        let command = match command {
            Command::Auth(mechanism) => return self.submit_auth(mechanism),
            other => other,
        };
        let expect = Expect::of(&command);
        let handle = self.new_handle();
        self.project(&command);
        self.enqueue(Queued {
            handle,
            command,
            expect,
            initial: None,
        });
        Ok(handle)
    }

    /// Queues a checked command, or holds it back while a composite
    /// operation before it has not completed.
    fn enqueue(&mut self, queued: Queued) {
        if self.operation.is_some() || !self.backlog.is_empty() {
            self.backlog.push_back(Backlog::Command(queued));
            return;
        }
        self.queue.push_back(queued);
        self.fill_window();
        self.learn_pipelining();
    }

    /// Starts a composite operation, or holds it back behind another.
    fn enqueue_operation(&mut self, operation: Operation) {
        if self.operation.is_some() || !self.backlog.is_empty() {
            self.backlog.push_back(Backlog::Operation(operation));
        } else {
            self.operation = Some(operation);
        }
    }

    /// The operation in progress has ended: what waited behind it moves on, up
    /// to the next operation.
    fn release_backlog(&mut self) {
        while let Some(item) = self.backlog.pop_front() {
            match item {
                Backlog::Command(queued) => self.queue.push_back(queued),
                Backlog::Operation(operation) => {
                    self.operation = Some(operation);
                    break;
                }
            }
        }
        self.fill_window();
        self.learn_pipelining();
    }

    /// Logs in as one operation: the whole sequence (`USER`/`PASS`, `APOP` or
    /// `AUTH`, with the method chosen by [`AuthMethod::Auto`] from the
    /// capabilities) behind one handle. The credentials are checked before
    /// anything is sent.
    ///
    /// Refused with [`UsageError::PlaintextCredentials`] on an unencrypted
    /// connection unless [`Config::allow_plaintext_credentials`], whatever
    /// the named method (an [`AuthMethod::Mechanism`] of your own is refused
    /// only if it says it exposes credentials).
    ///
    /// The handle completes with [`Event::Ok`] carrying
    /// [`Reply::Authenticated`] once the server accepted the login *and*
    /// answered the `CAPA` the core asks after login when the server
    /// answered `CAPA` before, so [`Client::capabilities`] is current; or
    /// with the [`Event::Err`] of the step the server refused (its response
    /// code tells `[AUTH]` from `[IN-USE]`), [`Event::Failed`] or
    /// [`Event::Cancelled`]. The events of the single commands are not
    /// reported. Commands submitted afterwards wait for it, and are
    /// cancelled if it fails.
    ///
    /// ```
    /// use pop3_proto::{Action, AuthMethod, Client, Config, Credentials, Event, Reply};
    ///
    /// let mut client = Client::new(Config::encrypted());
    /// client.receive(b"+OK ready\r\n");
    /// let login = client.login_with(Credentials::new("alice", "secret"), AuthMethod::Auto)?;
    /// let mut sent = Vec::new();
    /// let mut replies = [
    ///     &b"+OK\r\nUSER\r\n.\r\n"[..],     // CAPA
    ///     b"+OK\r\n",                        // USER
    ///     b"+OK in\r\n",                     // PASS
    ///     b"+OK\r\nUSER\r\nUIDL\r\n.\r\n",  // the CAPA the core asks after login
    /// ]
    /// .into_iter();
    /// loop {
    ///     match client.poll()? {
    ///         Action::Send(bytes) => sent.extend_from_slice(bytes),
    ///         Action::Event(Event::Ok { handle, reply: Reply::Authenticated(_) }) if handle == login => break,
    ///         Action::Event(_) => {}
    ///         Action::NeedInput => match replies.next() {
    ///             Some(reply) => client.receive(reply),
    ///             None => client.receive_eof(),
    ///         },
    ///         other => panic!("{other:?}"),
    ///     }
    /// }
    /// // Auto asked CAPA, saw only USER, and used USER/PASS.
    /// assert_eq!(sent, b"CAPA\r\nUSER alice\r\nPASS secret\r\nCAPA\r\n");
    /// assert!(client.capabilities().is_some_and(|c| c.uidl()));
    /// assert_eq!(client.login_mechanism(), Some("USER/PASS"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn login_with(
        &mut self,
        credentials: Credentials,
        method: AuthMethod,
    ) -> Result<Handle, UsageError> {
        if let Some(error) = &self.fatal {
            return Err(UsageError::Failed(error.clone()));
        }
        if self.projection.state == State::Closed {
            return Err(UsageError::Closed);
        }
        operation::check_login(self, &credentials, &method)?;
        let handle = self.new_handle();
        self.projection.state = State::Transaction;
        self.projection.user_given = false;
        self.enqueue_operation(Operation::login(handle, credentials, method));
        Ok(handle)
    }

    /// The method the latest [`Client::login_with`] used (`USER/PASS`,
    /// `APOP`, or the SASL mechanism name), once chosen.
    pub fn login_mechanism(&self) -> Option<&str> {
        self.login_attempts.last().map(String::as_str)
    }

    /// Every method the latest [`Client::login_with`] tried, in order: one,
    /// unless [`AuthMethod::Auto`] went on after a refusal (another
    /// challenge-response mechanism after "not supported", or plain SCRAM
    /// after its `-PLUS` variant was refused). When the login fails, each of
    /// them was refused.
    pub fn login_attempts(&self) -> &[String] {
        &self.login_attempts
    }

    /// `STLS` as one operation (RFC 2595): asks `CAPA` if the capabilities are
    /// not known, and sends `STLS` only if they list it — otherwise the
    /// handle completes with [`Event::Cancelled`] and
    /// [`UsageError::StlsUnavailable`], nothing but `CAPA` having been sent.
    /// After the `+OK`, [`Client::poll`] returns [`Action::StartTls`]; once
    /// [`Client::tls_established`] is called, the core asks `CAPA` again and
    /// the handle completes with [`Reply::TlsEstablished`].
    pub fn start_tls(&mut self) -> Result<Handle, UsageError> {
        if let Some(error) = &self.fatal {
            return Err(UsageError::Failed(error.clone()));
        }
        if self.projection.state == State::Closed {
            return Err(UsageError::Closed);
        }
        self.check(&Command::Stls)?;
        let handle = self.new_handle();
        self.project(&Command::Stls);
        self.enqueue_operation(Operation::start_tls(handle));
        Ok(handle)
    }

    /// `RETR` for each message, pipelined when the server allows it. All are
    /// checked before any is queued; one handle per message, in order, each
    /// completing as a single `RETR` does.
    pub fn retr_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Handle>, UsageError> {
        self.submit_many(msgs, Command::Retr)
    }

    /// `DELE` for each message, pipelined like [`Client::retr_many`].
    pub fn dele_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Handle>, UsageError> {
        self.submit_many(msgs, Command::Dele)
    }

    fn submit_many(
        &mut self,
        msgs: &[MsgNum],
        command: fn(MsgNum) -> Command,
    ) -> Result<Vec<Handle>, UsageError> {
        if let Some(&first) = msgs.first() {
            if let Some(error) = &self.fatal {
                return Err(UsageError::Failed(error.clone()));
            }
            if self.projection.state == State::Closed {
                return Err(UsageError::Closed);
            }
            // Every message number is valid by construction: one check
            // stands for all.
            self.check(&command(first))?;
        }
        // All are queued before any is sent, so that the core can ask CAPA
        // first when it does not know whether the burst may be pipelined.
        let hold = self.operation.is_some() || !self.backlog.is_empty();
        let mut handles = Vec::with_capacity(msgs.len());
        for &msg in msgs {
            let command = command(msg);
            let handle = self.new_handle();
            let queued = Queued {
                handle,
                expect: Expect::of(&command),
                command,
                initial: None,
            };
            if hold {
                self.backlog.push_back(Backlog::Command(queued));
            } else {
                self.queue.push_back(queued);
            }
            handles.push(handle);
        }
        self.learn_pipelining();
        self.fill_window();
        Ok(handles)
    }

    /// Stops reporting a command: the rest of its reply (a message body
    /// still arriving, say) is read and dropped, and no completion event
    /// comes for it. The session stays in step.
    pub fn discard(&mut self, handle: Handle) {
        let pending = self.queue.iter().any(|q| q.handle == handle)
            || self.in_flight.iter().any(|f| f.handle == handle)
            || self.backlog.iter().any(|b| match b {
                Backlog::Command(q) => q.handle == handle,
                Backlog::Operation(o) => o.handle == handle,
            });
        if pending && !self.discarded.contains(&handle) {
            self.discarded.push(handle);
        }
    }

    /// Several commands are waiting because nothing says the server
    /// pipelines: after login, ask once (RFC 2449), so that the burst can go
    /// out together. (One waiting command is not a burst: it is not worth a
    /// round trip.)
    fn learn_pipelining(&mut self) {
        if self.state == State::Transaction
            && self.capabilities.is_none()
            && !self.capa_asked
            && !self.capa_refused
            && self.queue.len() >= 2
        {
            self.queue_internal_capa();
        }
    }

    /// `USER name`.
    pub fn user(&mut self, name: &str) -> Result<Handle, UsageError> {
        self.submit(Command::User(String::from(name)))
    }

    /// `PASS password`. The password is anything that converts into a
    /// [`Secret`]: `&str`, `String`, `&String` or a `Secret` itself.
    pub fn pass(&mut self, password: impl Into<Secret<String>>) -> Result<Handle, UsageError> {
        self.submit(Command::Pass(password.into()))
    }

    /// `USER name` then `PASS password`, both checked before either is
    /// queued, so an unsafe password never lets the `USER` line go out alone.
    /// Returns the handles of the two commands. The password is anything that
    /// converts into a [`Secret`] (`&str`, `String`, `&String`, `Secret`).
    pub fn login(
        &mut self,
        user: &str,
        password: impl Into<Secret<String>>,
    ) -> Result<(Handle, Handle), UsageError> {
        let password = password.into();
        self.check(&Command::User(String::from(user)))?;
        check_argument(password.expose(), "empty password")?;
        let user = self.user(user)?;
        let pass = self.pass(password)?;
        Ok((user, pass))
    }

    /// `APOP name digest`, the digest made from the greeting's timestamp and
    /// `password` (anything that converts into a [`Secret`]).
    pub fn apop(
        &mut self,
        user: &str,
        password: impl Into<Secret<String>>,
    ) -> Result<Handle, UsageError> {
        self.submit(Command::Apop {
            user: String::from(user),
            password: password.into(),
        })
    }

    /// `AUTH` with a SASL mechanism.
    pub fn auth(&mut self, mechanism: Box<dyn Mechanism>) -> Result<Handle, UsageError> {
        self.submit(Command::Auth(mechanism))
    }

    fn new_handle(&mut self) -> Handle {
        self.next_seq = self.next_seq.wrapping_add(1);
        Handle {
            client: self.id,
            seq: self.next_seq,
        }
    }

    fn wrong_state(command: &Command, reason: &'static str) -> UsageError {
        let verb = match command {
            Command::Raw { .. } => "raw command",
            other => match other.verb() {
                "USER" => "USER",
                "PASS" => "PASS",
                "APOP" => "APOP",
                "AUTH" => "AUTH",
                "STLS" => "STLS",
                "UTF8" => "UTF8",
                "STAT" => "STAT",
                "LIST" => "LIST",
                "UIDL" => "UIDL",
                "RETR" => "RETR",
                "TOP" => "TOP",
                "DELE" => "DELE",
                "NOOP" => "NOOP",
                "RSET" => "RSET",
                _ => "command",
            },
        };
        UsageError::WrongState {
            command: verb,
            reason,
        }
    }

    /// State and argument checks; nothing is changed.
    fn check(&self, command: &Command) -> Result<(), UsageError> {
        let p = self.projection;
        let authorization = p.state == State::Authorization;
        let transaction = p.state == State::Transaction;
        let credentials_ok = p.encrypted || self.config.allow_plaintext_credentials;
        let need = |ok: bool, reason| {
            if ok {
                Ok(())
            } else {
                Err(Self::wrong_state(command, reason))
            }
        };
        match command {
            Command::User(name) => {
                need(authorization, "only before login")?;
                check_argument(name, "empty user name")?;
                if !credentials_ok {
                    return Err(UsageError::PlaintextCredentials);
                }
            }
            Command::Pass(password) => {
                need(authorization, "only before login")?;
                need(p.user_given, "needs an accepted USER first")?;
                check_argument(password.expose(), "empty password")?;
                if !credentials_ok {
                    return Err(UsageError::PlaintextCredentials);
                }
            }
            Command::Apop { user, password } => {
                need(authorization, "only before login")?;
                check_argument(user, "empty user name")?;
                check_argument(password.expose(), "empty password")?;
                if user.contains(' ') {
                    return Err(UsageError::InvalidArgument(
                        "APOP user name contains a space",
                    ));
                }
                // "APOP " + name + " " + 32 hex digits + CRLF.
                if user.len() + 40 > command::MAX_COMMAND_LINE {
                    return Err(UsageError::InvalidArgument(
                        "APOP user name longer than a command line allows",
                    ));
                }
                if let Some(greeting) = &self.greeting {
                    if greeting.apop_timestamp.is_none() {
                        return Err(UsageError::NoApopTimestamp);
                    }
                }
                if !credentials_ok {
                    return Err(UsageError::PlaintextCredentials);
                }
            }
            Command::Auth(mechanism) => {
                need(authorization, "only before login")?;
                let name = mechanism.name();
                let valid_name = !name.is_empty()
                    && name.len() <= 20
                    && name.bytes().all(|b| {
                        b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                    });
                if !valid_name {
                    return Err(UsageError::InvalidArgument("SASL mechanism name"));
                }
                if mechanism.exposes_credentials() && !credentials_ok {
                    return Err(UsageError::PlaintextCredentials);
                }
            }
            Command::Stls => {
                need(authorization, "only before login")?;
                need(
                    !p.encrypted && !p.tls_queued,
                    "TLS is already active or requested",
                )?;
            }
            Command::Utf8 => need(authorization, "only before login")?,
            Command::Stat
            | Command::List(_)
            | Command::Uidl(_)
            | Command::Retr(_)
            | Command::Top(..)
            | Command::Dele(_)
            | Command::Noop
            | Command::Rset => need(transaction, "only after login")?,
            Command::Capa | Command::Quit => {}
            Command::Lang(tag) => {
                if let Some(tag) = tag {
                    let valid = !tag.is_empty()
                        && tag.len() <= 64
                        && tag
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*');
                    if !valid {
                        return Err(UsageError::InvalidArgument("language tag"));
                    }
                }
            }
            Command::Raw { verb, args, .. } => {
                check_raw_verb(verb)?;
                for arg in args {
                    check_argument(arg, "empty raw argument")?;
                }
                let len = verb.len() + args.iter().map(|a| a.len() + 1).sum::<usize>() + 2;
                if len > command::MAX_COMMAND_LINE {
                    return Err(UsageError::InvalidArgument(
                        "command line longer than 255 octets",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Updates the projection for an accepted command.
    fn project(&mut self, command: &Command) {
        let p = &mut self.projection;
        match command {
            Command::User(_) => p.user_given = true,
            Command::Pass(_) | Command::Apop { .. } | Command::Auth(_) => {
                p.user_given = false;
                p.state = State::Transaction;
            }
            Command::Stls => {
                p.tls_queued = true;
                p.encrypted = true;
            }
            Command::Quit => p.state = State::Closed,
            _ => {}
        }
    }

    fn submit_auth(&mut self, mut mechanism: Box<dyn Mechanism>) -> Result<Handle, UsageError> {
        let initial = mechanism.initial_response().map_err(UsageError::Sasl)?;
        let handle = self.new_handle();
        self.projection.state = State::Transaction;
        self.projection.user_given = false;
        let command = Command::Auth(mechanism);
        self.enqueue(Queued {
            handle,
            command,
            expect: Expect::Auth,
            initial,
        });
        Ok(handle)
    }

    // ----- sending -----

    fn queue_internal_capa(&mut self) {
        self.capa_asked = true;
        let handle = self.new_handle();
        self.queue.push_front(Queued {
            handle,
            command: Command::Capa,
            expect: Expect::Capa { internal: true },
            initial: None,
        });
    }

    /// Moves queued commands onto the wire as far as the window allows: one at a
    /// time without PIPELINING, and never past a STLS or login command.
    fn fill_window(&mut self) {
        if self.state == State::Greeting || self.tls_pending || self.fatal.is_some() {
            return;
        }
        let window = if self.is_pipelining() {
            self.config.pipeline_window
        } else {
            1
        };
        while let Some(next) = self.queue.front() {
            if let Some(last) = self.in_flight.back() {
                if self.in_flight.len() >= window
                    || self.in_flight_bytes >= MAX_WRITE_AHEAD
                    || last.expect.is_barrier()
                    || next.expect.is_barrier()
                {
                    break;
                }
            }
            let Some(queued) = self.queue.pop_front() else {
                break;
            };
            self.send(queued);
        }
    }

    fn release_tx(&mut self) {
        if self.tx_handed {
            if self.tx_secret {
                self.tx.iter_mut().for_each(|b| *b = 0);
                self.tx_secret = false;
            }
            self.tx.clear();
            self.tx_handed = false;
        }
    }

    fn send(&mut self, queued: Queued) {
        self.release_tx();
        let Queued {
            handle,
            command,
            expect,
            initial,
        } = queued;
        let mut number = [0u8; 20];
        let mut number2 = [0u8; 20];
        let mut auth = None;
        let line_start = self.tx.len();
        // How many words of the line are shown in the trace; the rest is a secret.
        let mut shown_words = usize::MAX;
        let tx = &mut self.tx;
        match &command {
            Command::User(name) => encode_line(tx, "USER", &[name.as_bytes()]),
            Command::Pass(password) => {
                encode_line(tx, "PASS", &[password.expose().as_bytes()]);
                self.tx_secret = true;
                shown_words = 1;
            }
            Command::Apop { user, password } => {
                let timestamp = self
                    .greeting
                    .as_ref()
                    .and_then(|g| g.apop_timestamp.as_deref());
                let Some(timestamp) = timestamp else {
                    self.events.push_back(Event::Cancelled {
                        handle,
                        reason: UsageError::NoApopTimestamp,
                    });
                    return;
                };
                let digest = command::apop_digest(timestamp, password.expose());
                encode_line(tx, "APOP", &[user.as_bytes(), &digest]);
                self.tx_secret = true;
                shown_words = 2;
            }
            Command::Auth(_) => {}
            Command::Stls => encode_line(tx, "STLS", &[]),
            Command::Capa => {
                encode_line(tx, "CAPA", &[]);
                self.capa_asked = true;
            }
            Command::Stat => encode_line(tx, "STAT", &[]),
            Command::List(n) | Command::Uidl(n) => {
                let verb = command.verb();
                match n {
                    Some(n) => {
                        encode_line(tx, verb, &[command::decimal(n.get().into(), &mut number)])
                    }
                    None => encode_line(tx, verb, &[]),
                }
            }
            Command::Retr(n) | Command::Dele(n) => encode_line(
                tx,
                command.verb(),
                &[command::decimal(n.get().into(), &mut number)],
            ),
            Command::Top(n, lines) => encode_line(
                tx,
                "TOP",
                &[
                    command::decimal(n.get().into(), &mut number),
                    command::decimal((*lines).into(), &mut number2),
                ],
            ),
            Command::Noop => encode_line(tx, "NOOP", &[]),
            Command::Rset => encode_line(tx, "RSET", &[]),
            Command::Quit => encode_line(tx, "QUIT", &[]),
            Command::Utf8 => encode_line(tx, "UTF8", &[]),
            Command::Lang(tag) => match tag {
                Some(tag) => encode_line(tx, "LANG", &[tag.as_bytes()]),
                None => encode_line(tx, "LANG", &[]),
            },
            Command::Raw { verb, args, .. } => {
                let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
                encode_line(tx, verb, &args);
            }
        }
        if let Command::Auth(mechanism) = command {
            let name = String::from(mechanism.name());
            let mut deferred = None;
            match initial {
                Some(ir) => {
                    let encoded = if ir.expose().is_empty() {
                        String::from("=")
                    } else {
                        BASE64.encode(ir.expose())
                    };
                    // RFC 5034: an initial response that would make the line longer
                    // than 255 octets waits for the server's empty challenge.
                    if 5 + name.len() + 1 + encoded.len() + 2 <= command::MAX_COMMAND_LINE {
                        encode_line(&mut self.tx, "AUTH", &[name.as_bytes(), encoded.as_bytes()]);
                        self.tx_secret = true;
                        shown_words = 2;
                    } else {
                        encode_line(&mut self.tx, "AUTH", &[name.as_bytes()]);
                        deferred = Some(ir);
                    }
                }
                None => encode_line(&mut self.tx, "AUTH", &[name.as_bytes()]),
            }
            auth = Some(AuthExchange {
                mechanism,
                deferred,
                cancelled: None,
                refusal: None,
            });
        }
        if self.config.trace && self.tx.len() > line_start {
            let line = self.tx[line_start..self.tx.len() - 2].to_vec();
            self.trace_sent(&line, shown_words);
        }
        let bytes = self.tx.len() - line_start;
        self.in_flight_bytes += bytes;
        self.in_flight.push_back(InFlight {
            handle,
            expect,
            auth,
            bytes,
        });
    }

    /// Records a line sent, showing its first `shown_words` words and
    /// `<redacted>` for the rest.
    fn trace_sent(&mut self, line: &[u8], shown_words: usize) {
        let end = match shown_words.checked_sub(1) {
            None => 0,
            Some(skip) => {
                let mut spaces = line.iter().enumerate().filter(|(_, &b)| b == b' ');
                spaces.nth(skip).map_or(line.len(), |(i, _)| i)
            }
        };
        let mut text = String::from(Text::sanitize(&line[..end]).as_str());
        if end < line.len() || shown_words == 0 {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str("<redacted>");
        }
        self.trace.push_back(TraceLine {
            direction: Direction::Sent,
            line: Text::sanitize(text.as_bytes()),
        });
    }

    fn trace_received(&mut self, line: &[u8]) {
        if self.config.trace {
            self.trace.push_back(TraceLine {
                direction: Direction::Received,
                line: Text::sanitize(line),
            });
        }
    }

    /// Sends one SASL response line (RFC 5034: base64, or empty for an empty response).
    fn send_sasl_line(&mut self, data: &[u8]) {
        self.release_tx();
        if !data.is_empty() {
            let encoded = BASE64.encode(data);
            self.tx.extend_from_slice(encoded.as_bytes());
        }
        self.tx.extend_from_slice(b"\r\n");
        self.tx_secret = true;
        if self.config.trace {
            self.trace_sent(b"", 0);
        }
    }

    // ----- output -----

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
                self.tx_handed = true;
                return Ok(Action::Send(&self.tx));
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
            if self.tls_pending {
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
        self.operation = None;
        self.backlog.clear();
        self.state = State::Closed;
        self.projection.state = State::Closed;
        self.queue.clear();
        self.in_flight.clear();
        self.in_flight_bytes = 0;
        self.release_tx();
        self.tx.clear();
    }

    /// Nothing more can be read now: wait, or fail if the server hung up early.
    fn pending(&mut self) -> Result<Step, ProtocolError> {
        if !self.eof {
            return Ok(Step::Idle);
        }
        let expecting = self.state == State::Greeting
            || !self.in_flight.is_empty()
            || !matches!(self.reading, Reading::Status)
            || !self.rx.is_empty();
        if expecting && self.state != State::Closed {
            return Err(ProtocolError::UnexpectedEof);
        }
        if self.state != State::Closed {
            self.state = State::Closed;
            self.projection.state = State::Closed;
            self.cancel_all(UsageError::Closed);
            return Ok(Step::Progress);
        }
        Ok(Step::Idle)
    }

    fn step(&mut self, max_chunk: usize) -> Result<Step, ProtocolError> {
        if self.rx.is_empty() {
            return self.pending();
        }
        if self.state == State::Closed {
            // After QUIT the server has nothing more to say; ignore any noise.
            self.rx = Rx::new();
            return Ok(Step::Idle);
        }
        if self.state == State::Greeting {
            return self.read_greeting();
        }
        match self.reading {
            Reading::Status => self.read_status(),
            Reading::Listing { .. } => self.read_listing(),
            Reading::Body { .. } => self.read_body(max_chunk),
        }
    }

    fn read_greeting(&mut self) -> Result<Step, ProtocolError> {
        // A TLS record (handshake content type 22, version 3.x) where a
        // greeting belongs: this port speaks implicit TLS. Say so now rather
        // than wait for a line end that never comes.
        if let [0x16, 0x03, ..] = self.rx.unread() {
            return Err(ProtocolError::TlsInsteadOfGreeting);
        }
        let range = match self.rx.line(self.config.limits.max_line_len) {
            LineRead::Line(range) => range,
            LineRead::TooLong(_) => {
                return Err(ProtocolError::LineTooLong {
                    limit: self.config.limits.max_line_len,
                })
            }
            LineRead::Pending if self.rx.skipping().is_some() => {
                return Err(ProtocolError::LineTooLong {
                    limit: self.config.limits.max_line_len,
                })
            }
            LineRead::Pending => return self.pending(),
        };
        let line = self.rx.bytes(range.clone());
        if self.config.trace {
            let line = line.to_vec();
            self.trace_received(&line);
        }
        let line = self.rx.bytes(range);
        match parse::status(line) {
            Some(Status::Ok(text)) => {
                let greeting = Greeting {
                    text: Text::sanitize(text),
                    apop_timestamp: parse::apop_timestamp(text),
                };
                self.greeting = Some(greeting.clone());
                self.state = State::Authorization;
                self.check_unsolicited();
                self.fill_window();
                Ok(Step::Event(Event::Greeting(greeting)))
            }
            Some(Status::Err(text)) => {
                Err(ProtocolError::GreetingRejected(parse::server_error(text)))
            }
            _ => Err(ProtocolError::InvalidGreeting(Text::sanitize(truncate(
                line,
            )))),
        }
    }

    fn read_status(&mut self) -> Result<Step, ProtocolError> {
        let Some(front) = self.in_flight.front() else {
            return Err(ProtocolError::UnsolicitedData);
        };
        let expect = front.expect;
        let limit = self.config.limits.max_line_len;
        let range = match self.rx.line(limit) {
            LineRead::Line(range) => range,
            LineRead::TooLong(prefix) => return self.status_too_long(expect, prefix.as_bytes()),
            // A long line that is no reply at all cannot be skipped in step:
            // fail now rather than read garbage for ever.
            LineRead::Pending
                if self
                    .rx
                    .skipping()
                    .is_some_and(|p| parse::status_prefix(p.as_bytes()).is_none()) =>
            {
                return Err(ProtocolError::LineTooLong { limit })
            }
            LineRead::Pending => return self.pending(),
        };
        if self.config.trace {
            let line = self.rx.bytes(range.clone()).to_vec();
            self.trace_received(&line);
        }
        let line = self.rx.bytes(range.clone());
        let status = parse::status(line);
        let text_range = match &status {
            Some(Status::Ok(t) | Status::Err(t) | Status::Continuation(t)) => {
                range.end - t.len()..range.end
            }
            None => {
                return Err(ProtocolError::InvalidStatusLine(Text::sanitize(truncate(
                    line,
                ))))
            }
        };
        let text = self.rx.bytes(text_range);
        match status {
            Some(Status::Ok(_)) => self.on_ok(expect, text.to_vec()),
            Some(Status::Err(_)) => {
                let error = parse::server_error(text);
                self.on_err(error)
            }
            Some(Status::Continuation(_)) if expect == Expect::Auth => {
                let challenge = text.to_vec();
                self.on_challenge(&challenge)
            }
            _ => Err(ProtocolError::InvalidStatusLine(Text::sanitize(truncate(
                line,
            )))),
        }
    }

    /// An over-long status line was consumed. Where its first bytes still say
    /// whether it was `+OK` or `-ERR`, the stream stays in step: a multi-line
    /// reply is skipped to its end and the command reported as failed.
    fn status_too_long(&mut self, expect: Expect, prefix: &[u8]) -> Result<Step, ProtocolError> {
        let limit = self.config.limits.max_line_len;
        let error = ProtocolError::LineTooLong { limit };
        if matches!(
            expect,
            Expect::Auth | Expect::Stls | Expect::Login | Expect::Quit
        ) {
            return Err(error);
        }
        match parse::status_prefix(prefix) {
            Some(true) if expect.is_multiline() => {
                self.reading = if expect == Expect::Body {
                    Reading::Body {
                        decoder: BodyDecoder::new(),
                        error: Some(error),
                    }
                } else {
                    Reading::Listing {
                        items: Items::Skip,
                        lines: 0,
                        error: Some(error),
                    }
                };
                Ok(Step::Progress)
            }
            Some(_) => Ok(self.complete_failed(error)),
            None => Err(error),
        }
    }

    fn complete(&mut self, event: Event<'static>) -> Step {
        self.retire_front();
        Step::Event(event)
    }

    /// The reply to the oldest command in flight has been read in full.
    fn retire_front(&mut self) {
        if let Some(front) = self.in_flight.pop_front() {
            self.in_flight_bytes -= front.bytes;
        }
        self.reading = Reading::Status;
        self.check_unsolicited();
        self.fill_window();
        if self.in_flight.is_empty() && self.queue.is_empty() {
            // Idle: a logged-in session waiting for its next command keeps
            // no read buffer (thousands of them fit in little memory).
            self.rx.release();
        }
    }

    /// Bytes buffered while no command awaits a reply answer nothing. Left
    /// alone they would be taken as the reply to the next command sent.
    fn check_unsolicited(&mut self) {
        if self.in_flight.is_empty() && !self.rx.is_empty() && self.state != State::Closed {
            self.fail();
            self.fatal = Some(ProtocolError::UnsolicitedData);
        }
    }

    fn front_handle(&self) -> Handle {
        // Only called while a reply is being read, so a command is in flight.
        self.in_flight.front().map_or(
            Handle {
                client: self.id,
                seq: 0,
            },
            |f| f.handle,
        )
    }

    fn complete_ok(&mut self, reply: Reply) -> Step {
        let handle = self.front_handle();
        self.complete(Event::Ok { handle, reply })
    }

    fn complete_failed(&mut self, error: ProtocolError) -> Step {
        let handle = self.front_handle();
        if self
            .in_flight
            .front()
            .is_some_and(|f| matches!(f.expect, Expect::Capa { internal: true }))
        {
            self.retire_front();
            return Step::Progress;
        }
        self.complete(Event::Failed { handle, error })
    }

    fn on_ok(&mut self, expect: Expect, text: Vec<u8>) -> Result<Step, ProtocolError> {
        let parsed = |r: Result<Reply, parse::Invalid>| r.map_err(ProtocolError::Malformed);
        let reply = match expect {
            Expect::Simple => Ok(Reply::Ok(Text::sanitize(&text))),
            Expect::User => Ok(Reply::Ok(Text::sanitize(&text))),
            Expect::Utf8 => {
                self.utf8 = true;
                Ok(Reply::Ok(Text::sanitize(&text)))
            }
            Expect::Login => return Ok(self.authenticated(&text)),
            Expect::Stat => {
                let stat = parse::stat(&text);
                if let Ok(stat) = &stat {
                    self.stat_count = Some(stat.count);
                }
                parsed(stat.map(Reply::Stat))
            }
            Expect::ListOne => parsed(parse::list_entry(&text).map(Reply::ListOne)),
            Expect::UidlOne => parsed(parse::uidl_entry(&text).map(Reply::UidlOne)),
            Expect::ListAll | Expect::UidlAll | Expect::Capa { .. } | Expect::Languages => {
                let items = match expect {
                    Expect::ListAll => Items::List(Vec::new()),
                    Expect::UidlAll => Items::Uidl(Vec::new()),
                    Expect::Languages => Items::Languages(Vec::new()),
                    _ => Items::Capa(Vec::new()),
                };
                self.reading = Reading::Listing {
                    items,
                    lines: 0,
                    error: None,
                };
                return Ok(Step::Progress);
            }
            Expect::Body => {
                self.reading = Reading::Body {
                    decoder: BodyDecoder::new(),
                    error: None,
                };
                let handle = self.front_handle();
                return Ok(Step::Event(Event::BodyStart { handle }));
            }
            Expect::Auth => {
                let exchange = self.in_flight.front_mut().and_then(|f| f.auth.as_mut());
                if let Some(exchange) = exchange {
                    if exchange.cancelled.is_some() {
                        return Err(ProtocolError::AuthenticationAccepted);
                    }
                    exchange.mechanism.finish().map_err(ProtocolError::Sasl)?;
                }
                return Ok(self.authenticated(&text));
            }
            Expect::Stls => {
                // Anything already received after this line came before TLS:
                // injected by someone on the path. Never process it.
                if !self.rx.is_empty() {
                    return Err(ProtocolError::DataAfterStls);
                }
                self.tls_pending = true;
                Ok(Reply::StartTls)
            }
            Expect::Quit => {
                self.state = State::Closed;
                self.projection.state = State::Closed;
                Ok(Reply::Ok(Text::sanitize(&text)))
            }
        };
        Ok(match reply {
            Ok(reply) => self.complete_ok(reply),
            Err(error) => self.complete_failed(error),
        })
    }

    fn authenticated(&mut self, text: &[u8]) -> Step {
        self.state = State::Transaction;
        self.capabilities = None;
        // A server may offer more after login (RFC 2449 section 5): ask again,
        // before anything queued behind the login goes out.
        self.capa_asked = false;
        if self.capa_answered {
            self.queue_internal_capa();
        }
        self.complete_ok(Reply::Authenticated(Text::sanitize(text)))
    }

    fn on_err(&mut self, mut error: ServerError) -> Result<Step, ProtocolError> {
        let Some(front) = self.in_flight.front_mut() else {
            return Err(ProtocolError::UnsolicitedData);
        };
        let handle = front.handle;
        let expect = front.expect;
        let cancelled = front.auth.as_mut().and_then(|a| a.cancelled.take());
        error.token_refusal = front
            .auth
            .as_mut()
            .and_then(|a| a.refusal.take())
            .map(Box::new);
        if matches!(expect, Expect::Capa { .. }) {
            self.capa_refused = true;
        }
        if matches!(
            expect,
            Expect::User | Expect::Login | Expect::Auth | Expect::Stls
        ) {
            self.cancel_queue();
        }
        if let Some(sasl) = cancelled {
            return Ok(self.complete(Event::Failed {
                handle,
                error: ProtocolError::Sasl(sasl),
            }));
        }
        if matches!(expect, Expect::Capa { internal: true }) {
            self.retire_front();
            return Ok(Step::Progress);
        }
        Ok(self.complete(Event::Err { handle, error }))
    }

    /// A STLS or login step failed: what was queued behind it assumed success,
    /// so it is dropped, unsent, and the projection starts again from the facts.
    fn cancel_queue(&mut self) {
        self.cancel_all(UsageError::Cancelled);
        self.projection = Projection {
            state: self.state,
            encrypted: self.encrypted,
            tls_queued: false,
            user_given: false,
        };
    }

    /// Drops every queued command, telling the caller about its own ones.
    fn cancel_all(&mut self, reason: UsageError) {
        for queued in core::mem::take(&mut self.queue) {
            if queued.expect != (Expect::Capa { internal: true }) {
                let handle = queued.handle;
                self.events.push_back(Event::Cancelled {
                    handle,
                    reason: reason.clone(),
                });
            }
        }
    }

    fn on_challenge(&mut self, text: &[u8]) -> Result<Step, ProtocolError> {
        let Some(exchange) = self.in_flight.front_mut().and_then(|f| f.auth.as_mut()) else {
            return Err(ProtocolError::InvalidStatusLine(Text::sanitize(b"+")));
        };
        if exchange.cancelled.is_some() {
            return Err(ProtocolError::Malformed(
                "SASL challenge after the client cancelled",
            ));
        }
        let response = if let Some(initial) = exchange.deferred.take() {
            Ok(initial)
        } else {
            let trimmed = trim_spaces(text);
            match BASE64.decode(trimmed) {
                Ok(challenge) => {
                    if !challenge.is_empty()
                        && matches!(exchange.mechanism.name(), "XOAUTH2" | "OAUTHBEARER")
                    {
                        exchange.refusal = TokenRefusal::parse(&challenge);
                    }
                    exchange.mechanism.respond(&challenge)
                }
                Err(_) => Err(SaslError::MalformedChallenge(
                    "challenge is not valid base64",
                )),
            }
        };
        match response {
            Ok(data) => self.send_sasl_line(data.expose()),
            Err(error) => {
                // RFC 5034: "*" cancels; the server answers -ERR.
                exchange.cancelled = Some(error);
                self.release_tx();
                self.tx.extend_from_slice(b"*\r\n");
                if self.config.trace {
                    self.trace_sent(b"*", usize::MAX);
                }
            }
        }
        Ok(Step::Progress)
    }

    fn read_listing(&mut self) -> Result<Step, ProtocolError> {
        let limits = self.config.limits;
        let range = match self.rx.line(limits.max_line_len) {
            LineRead::Line(range) => range,
            LineRead::TooLong(_) => {
                if let Reading::Listing { error, lines, .. } = &mut self.reading {
                    *lines += 1;
                    error.get_or_insert(ProtocolError::LineTooLong {
                        limit: limits.max_line_len,
                    });
                }
                return Ok(Step::Progress);
            }
            LineRead::Pending => return self.pending(),
        };
        let mut line = self.rx.bytes(range);
        if line == b"." {
            return Ok(self.finish_listing());
        }
        if line.first() == Some(&b'.') {
            line = &line[1..];
        }
        let Reading::Listing {
            items,
            lines,
            error,
        } = &mut self.reading
        else {
            return Ok(Step::Progress);
        };
        *lines += 1;
        let max = if matches!(items, Items::Capa(_)) {
            limits.max_capa_lines
        } else {
            limits.max_listing_lines
        };
        if *lines > max {
            error.get_or_insert(ProtocolError::TooManyLines { limit: max });
            return Ok(Step::Progress);
        }
        if error.is_some() {
            return Ok(Step::Progress);
        }
        let result = match items {
            Items::List(v) => parse::list_entry(line).map(|e| v.push(e)),
            Items::Uidl(v) => parse::uidl_entry(line).map(|e| v.push(e)),
            Items::Languages(v) => parse::language(line).map(|e| v.push(e)),
            Items::Capa(v) => {
                v.push(parse::capability(line));
                Ok(())
            }
            Items::Skip => Ok(()),
        };
        if let Err(what) = result {
            *error = Some(ProtocolError::Malformed(what));
        }
        Ok(Step::Progress)
    }

    fn finish_listing(&mut self) -> Step {
        let reading = core::mem::replace(&mut self.reading, Reading::Status);
        let Reading::Listing { items, error, .. } = reading else {
            return Step::Progress;
        };
        if let Some(error) = error {
            return self.complete_failed(error);
        }
        let reply = match items {
            Items::List(entries) => {
                let numbers = entries.iter().map(|e| e.msg.get());
                if let Err(what) = self.check_numbers(numbers, "LIST") {
                    return self.complete_failed(ProtocolError::Malformed(what));
                }
                Reply::List(entries)
            }
            Items::Uidl(entries) => {
                let numbers = entries.iter().map(|e| e.msg.get());
                if let Err(what) = self.check_numbers(numbers, "UIDL") {
                    return self.complete_failed(ProtocolError::Malformed(what));
                }
                let mut uids: Vec<&str> = entries.iter().map(|e| e.uid.as_str()).collect();
                uids.sort_unstable();
                if uids.windows(2).any(|w| w[0] == w[1]) {
                    return self
                        .complete_failed(ProtocolError::Malformed("duplicate unique id in UIDL"));
                }
                Reply::Uidl(entries)
            }
            Items::Languages(languages) => Reply::Languages(languages),
            Items::Capa(list) => {
                let capabilities = Capabilities { list };
                self.capabilities = Some(capabilities.clone());
                self.capa_answered = true;
                let internal = self
                    .in_flight
                    .front()
                    .is_some_and(|f| matches!(f.expect, Expect::Capa { internal: true }));
                if internal {
                    return self.complete(Event::Capabilities(capabilities));
                }
                Reply::Capabilities(capabilities)
            }
            Items::Skip => return self.complete_failed(ProtocolError::Malformed("skipped reply")),
        };
        self.complete_ok(reply)
    }

    /// A listing names each message at most once, and none beyond the count of
    /// the latest STAT.
    fn check_numbers(
        &self,
        numbers: impl Iterator<Item = u32>,
        verb: &str,
    ) -> Result<(), &'static str> {
        let mut sorted: Vec<u32> = numbers.collect();
        sorted.sort_unstable();
        let list = verb == "LIST";
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(if list {
                "duplicate message number in LIST"
            } else {
                "duplicate message number in UIDL"
            });
        }
        let beyond = match (self.stat_count, sorted.last()) {
            (Some(count), Some(&last)) => last > count,
            _ => false,
        };
        if beyond {
            return Err(if list {
                "LIST names a message beyond the STAT count"
            } else {
                "UIDL names a message beyond the STAT count"
            });
        }
        Ok(())
    }

    fn read_body(&mut self, max_chunk: usize) -> Result<Step, ProtocolError> {
        let max_line = self.config.limits.max_body_line_len;
        let Reading::Body { decoder, error } = &mut self.reading else {
            return Ok(Step::Progress);
        };
        match self.rx.body(decoder, max_line, max_chunk) {
            BodyRead::Data(range) => {
                if error.is_some() {
                    return Ok(Step::Progress);
                }
                Ok(Step::Body(self.front_handle(), range))
            }
            BodyRead::LineTooLong => {
                error.get_or_insert(ProtocolError::BodyLineTooLong {
                    limit: max_line.unwrap_or(0),
                });
                Ok(Step::Progress)
            }
            BodyRead::End => {
                let error = error.take();
                Ok(match error {
                    Some(error) => self.complete_failed(error),
                    None => self.complete_ok(Reply::BodyEnd),
                })
            }
            BodyRead::Pending => self.pending(),
        }
    }
}

fn truncate(line: &[u8]) -> &[u8] {
    &line[..line.len().min(120)]
}

fn trim_spaces(mut text: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = text {
        text = rest;
    }
    while let [rest @ .., b' '] = text {
        text = rest;
    }
    text
}
