//! The client's public types: its configuration, the handles that name
//! commands, and what `poll` returns (actions, events, replies).

use alloc::vec::Vec;
use core::fmt;

#[cfg(doc)]
use super::{AuthMethod, Client};
use crate::types::{Capabilities, Greeting, Language, ListEntry, ServerError, Stat, UidlEntry};
use crate::{ProtocolError, Text, UsageError};

/// Limits on what the server may make the client hold. Every one has a safe
/// default; raise them only for servers you trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest status or listing line, CRLF excluded. RFC 2449 allows 512 octets;
    /// the default, 8 KiB, leaves room for servers that exceed it.
    pub max_line_len: usize,
    /// Most lines in a `LIST`, `UIDL` or `LANG` listing (default 100 000:
    /// a mailbox of 100 000 messages, whose `UIDL` is about 4 MB; raise it
    /// for a larger mailbox you trust).
    pub max_listing_lines: usize,
    /// Most octets in the lines of one listing (`LIST`, `UIDL`, `LANG`,
    /// `CAPA`), CRLFs excluded (default 8 MiB: 100 000 `UIDL` lines of
    /// the longest unique id fit). The line count alone lets long lines add
    /// up (a `LANG` description may fill a whole line), so this bounds what
    /// one listing may make the client hold, whatever its lines.
    pub max_listing_bytes: usize,
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
            max_listing_lines: 100_000,
            max_listing_bytes: 8 * 1024 * 1024,
            max_capa_lines: 1_000,
            max_body_line_len: None,
        }
    }
}

/// The most command bytes the client has sent and not yet seen answered,
/// whatever [`Config::pipeline_window`] allows (one command may pass it):
/// about 800 `RETR` commands.
pub const MAX_WRITE_AHEAD: usize = 8 * 1024;

/// The most free space [`Client::input_buffer`] offers, whatever
/// [`Config::read_size`] asks (16 MiB): a read size of `usize::MAX` is taken
/// as "as much as is sensible", never as an allocation that cannot succeed.
pub const MAX_READ_SIZE: usize = 16 * 1024 * 1024;

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
    /// Free space asked of [`Client::input_buffer`] (default 64 KiB; held
    /// to 1..=[`MAX_READ_SIZE`]).
    pub read_size: usize,
    /// Report every line sent and every status line received as
    /// [`Event::Trace`], secrets already replaced by `<redacted>`. Off by
    /// default.
    pub trace: bool,
    /// Refuse a command the session's state does not allow (`STAT` before
    /// login, `PASS` without `USER`, `USER` after login) before sending it.
    /// On by default. Off, such a command is sent and the server decides,
    /// as the standard Python `poplib` lets it: for drop-in replacements of
    /// modules that did. Argument checks, credentials over plaintext and
    /// the TLS rules are kept either way.
    pub state_checks: bool,
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
            state_checks: true,
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

    /// Sets [`Config::state_checks`].
    pub fn state_checks(mut self, check: bool) -> Config {
        self.state_checks = check;
        self
    }
}

/// Names one submitted command; its reply carries the same handle.
///
/// Handles are unique per client and never equal to a handle of another client.
/// [`Handle::id`] gives the same identity as an integer, for bindings and
/// maps; [`Client::pending_handle`] turns it back into a handle.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle {
    pub(super) client: u32,
    pub(super) seq: u32,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({}:{})", self.client, self.seq)
    }
}

impl Handle {
    /// This handle as an integer: never 0, the same for the handle's whole
    /// life, and — like the handle — unique among the handles of every client
    /// in the process (on targets without 32-bit atomics, among the handles
    /// of one client). A binding can use it as the command's name without
    /// keeping a map of its own.
    ///
    /// ```
    /// use pop3_proto::{Client, Command, Config};
    /// let mut client = Client::new(Config::default());
    /// let capa = client.submit(Command::Capa)?;
    /// assert_ne!(capa.id(), 0);
    /// assert_eq!(client.pending_handle(capa.id()), Some(capa));
    /// # Ok::<(), pop3_proto::UsageError>(())
    /// ```
    pub fn id(self) -> u64 {
        (u64::from(self.client) << 32) | u64::from(self.seq)
    }

    /// The handle whose [`Handle::id`] is `id` (of whichever client).
    pub(super) fn from_id(id: u64) -> Handle {
        Handle {
            client: (id >> 32) as u32,
            seq: id as u32,
        }
    }
}

pub(super) fn next_client_id() -> u32 {
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
