//! [`Connection`]: a POP3 session, the one implementation of every operation
//! for every Rust runtime.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use pop3_proto::sasl::Mechanism;
use pop3_proto::{
    AuthMethod, Capabilities, Client, Command, Credentials, Event, Greeting, Handle, Language,
    ListEntry, MsgNum, ProtocolError, Reply, Secret, Stat, Text, UidlEntry,
};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

mod bulk;
mod pump;

use bulk::Bulk;
pub(crate) use pump::outcome;
pub(crate) use pump::SessionDeadline;
use pump::{from_io, Deadline};

use crate::reader::{body_event, MessageReader};
use crate::runtime::{with_timeout, IoResult, IoStream, MessageSink, Runtime, StartTls, WriteTo};
use crate::{parse_server_name, Error, Options, Phase, Result, Timeouts};

/// A POP3 session over a stream `S`, on the runtime `R`: the sans-IO
/// [`pop3_proto::Client`] core, the stream, and the time limits.
///
/// Every transport uses this one type: `pop3_blocking::Connection`,
/// `pop3_tokio::Connection` and `pop3_smol::Connection` are aliases of it
/// with their stream and runtime filled in, so every operation behaves the
/// same on each (the blocking one finishes each `async fn` in one poll:
/// `pop3_blocking` adds `.wait()`).
///
/// Every method returns when its reply has arrived; commands are checked by the
/// core before anything is sent ([`Error::Usage`]), and `-ERR` replies come back
/// as [`Error::Server`] with the connection still usable ([`Error::is_fatal`]
/// tells which errors end the session).
///
/// **Dropping a `Connection` without calling [`Connection::quit`] sends
/// nothing**: without `QUIT` the server never enters the UPDATE state, so
/// messages marked with [`Connection::dele`] are *not* deleted.
///
/// # Cancellation
///
/// All protocol state lives in the core, not in the futures, so dropping a
/// future never corrupts memory or the byte stream, but it may leave a command
/// sent whose reply nobody reads. The rule is therefore: **if the future of a
/// method is dropped after its first poll and before it completes, the
/// connection is poisoned** and every later call returns [`Error::Closed`]
/// ([`Connection::is_poisoned`]). This is what happens when such a future
/// loses a `select!` or a `timeout`; prefer [`Options::timeouts`], which keep
/// time per read and write. The one exception is the [`MessageReader`]
/// returned by [`Connection::retr`] and [`Connection::top`]: it may be dropped
/// at any time, and the core reads and drops the rest of the message.
///
/// # Tracing
///
/// Each connection logs through [`tracing`](https://docs.rs/tracing): a
/// `pop3` span, `connect`/TLS/login milestones at DEBUG, and every line on
/// the wire at TRACE with target `pop3::wire` (`C: ...` sent, `S: ...`
/// received; passwords and SASL responses read `<redacted>`). The lines come
/// from the core, so they are the real wire order on every runtime.
pub struct Connection<S, R> {
    client: Client,
    stream: S,
    options: Options,
    greeting: Greeting,
    /// Bytes from the core not yet written; wiped once written and flushed.
    out: Vec<u8>,
    out_pos: usize,
    deadline: Deadline<R>,
    /// The session's overall deadline ([`Timeouts::session`]).
    session: SessionDeadline,
    /// An operation is in progress (set while its future runs).
    busy: bool,
    /// A fatal error happened, or an operation was cancelled.
    pub(crate) poisoned: bool,
    /// The tracing span every step runs in.
    span: tracing::Span,
}

impl<S, R> fmt::Debug for Connection<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("client", &self.client)
            .field("poisoned", &(self.poisoned || self.busy))
            .finish_non_exhaustive()
    }
}

fn unexpected(_reply: Reply) -> Error {
    Error::Protocol(ProtocolError::Malformed(
        "the core returned an unexpected reply",
    ))
}

/// The plain `+OK` that `QUIT` gets.
fn plain_ok(reply: Reply) -> Result<()> {
    match reply {
        Reply::Ok(_) => Ok(()),
        other => Err(unexpected(other)),
    }
}

/// What [`Connection::retr_many_and_quit`] returns when the session ran to
/// its end: how each message went, and whether the server answered `QUIT`.
#[derive(Debug)]
pub struct BulkRetrieval {
    /// One result per message asked for, in the order asked: its size in
    /// octets, or why it failed (`-ERR`, an unusable reply, or cancelled).
    pub per_message: Vec<Result<u64>>,
    /// `QUIT`'s own result.
    pub quit: Result<()>,
}

/// What [`Connection::dele_many_and_quit`] returns when the session ran to
/// its end: how each `DELE` went, and whether the server committed them.
#[derive(Debug)]
pub struct BulkDeletion {
    /// One result per message asked for, in the order asked: `Ok` if the
    /// server marked it for deletion.
    pub per_message: Vec<Result<()>>,
    /// `QUIT`'s own result: only when it is `Ok` did the server commit the
    /// deletions.
    pub quit: Result<()>,
}

/// The buffer a message is copied through on its way to a writer.
pub(crate) const COPY_BUFFER: usize = 64 * 1024;

/// The writer of a message, opened with `open` on first use.
fn open_writer<'w, W>(
    slot: &'w mut Option<W>,
    open: &mut impl FnMut(MsgNum) -> IoResult<W>,
    msg: MsgNum,
) -> io::Result<&'w mut W> {
    if slot.is_none() {
        *slot = Some(open(msg)?);
    }
    slot.as_mut()
        .ok_or_else(|| io::Error::other("the writer could not be opened"))
}

impl<S, R> Connection<S, R> {
    /// The server's greeting.
    pub fn greeting(&self) -> &Greeting {
        &self.greeting
    }

    /// The capabilities from the latest `CAPA` valid in the current state, if
    /// known. The core forgets them after `STLS` and login and asks again by
    /// itself (when the server answered `CAPA` before); the operations that
    /// log in or start TLS return only once that answer is in, so this is
    /// current after them on every runtime.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.client.capabilities()
    }

    /// The protocol core, for inspection (state, encryption, pipelining).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The time limits in force.
    pub fn timeouts(&self) -> Timeouts {
        self.options.timeouts
    }

    /// The connection cannot be used any more: a fatal error happened, the
    /// server closed it, or an operation was cancelled (see the type's docs).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned || self.busy
    }

    /// Sets the tracing span every later step of this connection runs in.
    pub fn set_span(&mut self, span: tracing::Span) {
        self.span = span;
    }

    /// Runs `connect` (a transport's connect function) in a `pop3` span with
    /// the host and port, and keeps that span for every later step.
    pub(crate) async fn traced(
        host: &str,
        port: u16,
        connect: impl std::future::Future<Output = Result<Self>>,
    ) -> Result<Self> {
        use tracing::Instrument;
        let span = tracing::debug_span!("pop3", host, port);
        let mut conn = connect.instrument(span.clone()).await?;
        conn.set_span(span);
        Ok(conn)
    }

    /// Gives the stream back, without sending anything (no `QUIT`).
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Starts an operation: refused when the connection is poisoned or a
    /// previous operation's future was dropped half-way.
    fn begin(&mut self) -> Result<()> {
        if self.busy {
            self.poisoned = true;
        }
        if self.poisoned {
            return Err(Error::Closed);
        }
        self.busy = true;
        Ok(())
    }

    /// Runs `steps` as one operation: [`Connection::begin`] before, and not
    /// busy any more once it completes (a future dropped half-way leaves the
    /// connection busy, which poisons it).
    async fn operation<V>(&mut self, steps: impl AsyncFnOnce(&mut Self) -> Result<V>) -> Result<V> {
        self.begin()?;
        let result = steps(self).await;
        self.busy = false;
        if result.is_err() && self.client.error().is_some() {
            // The core failed (perhaps noticed only as this command was
            // submitted): the connection is unusable from now on.
            self.poisoned = true;
        }
        result
    }

    pub(crate) fn discard(&mut self, handle: Handle) {
        self.client.discard(handle);
    }
}

impl<S: IoStream, R: Runtime> Connection<S, R> {
    /// Reads the greeting from a connected stream and returns the session.
    ///
    /// Use this for streams you opened yourself (an in-memory pipe, a child
    /// process's stdio, an SSH channel). [`Options::encrypted`] says whether
    /// the stream is already encrypted, which allows credentials to be sent.
    /// The greeting read is bounded by the read timeout, and the session's
    /// overall limit ([`Timeouts::session`]) counts from this call.
    ///
    /// Cancel-safety: the stream is dropped with the future.
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn new(stream: S, options: &Options) -> Result<Self> {
        let session = SessionDeadline::starting_now(options.timeouts.session);
        Self::start(stream, options, options.encrypted, session).await
    }

    /// [`Connection::new`], saying whether the stream is encrypted and when
    /// the session started.
    pub(crate) async fn start(
        stream: S,
        options: &Options,
        encrypted: bool,
        session: SessionDeadline,
    ) -> Result<Self> {
        let greeting_wait = options.timeouts.read;
        Self::start_waiting(stream, options, encrypted, session, greeting_wait).await
    }

    /// [`Connection::start`], waiting `greeting_wait` for the greeting
    /// instead of the read limit: for [`connect`](crate::connect::connect).
    pub(crate) async fn start_waiting(
        mut stream: S,
        options: &Options,
        encrypted: bool,
        session: SessionDeadline,
        greeting_wait: Option<Duration>,
    ) -> Result<Self> {
        let mut config = options.core_config(encrypted);
        config.trace = tracing::enabled!(target: "pop3::wire", tracing::Level::TRACE);
        stream
            .set_timeouts(greeting_wait, options.timeouts.write)
            .map_err(Error::Io)?;
        let mut waiting = options.clone();
        waiting.timeouts.read = greeting_wait;
        let mut conn = Connection {
            client: Client::new(config),
            stream,
            options: waiting,
            greeting: Greeting {
                text: Text::default(),
                apop_timestamp: None,
            },
            out: Vec::new(),
            out_pos: 0,
            deadline: Deadline::new(),
            session,
            busy: false,
            poisoned: false,
            span: tracing::Span::current(),
        };
        let greeting = conn
            .drive(usize::MAX, |event| match event {
                Event::Greeting(greeting) => Ok(Some(greeting)),
                _ => Ok(None),
            })
            .await?;
        conn.greeting = greeting.ok_or(Error::Closed)?;
        if greeting_wait != options.timeouts.read {
            conn.set_timeouts(options.timeouts)?;
        }
        tracing::debug!(encrypted, "greeting received");
        Ok(conn)
    }

    /// Changes the time limits for the following reads and writes. Blocking
    /// sockets apply them as socket options at once; async runtimes keep time
    /// with their timers. A new [`Timeouts::session`] still counts from the
    /// start of the session.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) -> Result<()> {
        self.options.timeouts = timeouts;
        self.session = self.session.with_limit(timeouts.session);
        self.stream
            .set_timeouts(timeouts.read, timeouts.write)
            .map_err(Error::Io)
    }
    /// Waits for the replies to several commands, in the order given.
    async fn replies(&mut self, handles: &[Handle]) -> Result<Vec<Result<Reply>>> {
        let mut bulk = Bulk::new(handles);
        if !bulk.is_done() {
            let done = self
                .drive(usize::MAX, |event| {
                    if let Some((handle, result)) = outcome(event) {
                        if let Some(i) = bulk.index(handle) {
                            bulk.complete(i, result);
                        }
                    }
                    Ok(bulk.is_done().then_some(()))
                })
                .await?;
            if done.is_none() {
                return Err(self.lost());
            }
        }
        Ok(bulk.finish())
    }

    /// Runs one command to its reply.
    async fn command(&mut self, command: Command) -> Result<Reply> {
        self.operation(async |conn| match conn.client.submit(command) {
            Ok(handle) => conn.reply(handle).await,
            Err(error) => Err(Error::from(error)),
        })
        .await
    }

    /// `CAPA`: asks for the server's capabilities (also cached, see
    /// [`Connection::capabilities`]). A `-ERR` (server without `CAPA`) is
    /// [`Error::Server`].
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn capa(&mut self) -> Result<Capabilities> {
        match self.command(Command::Capa).await? {
            Reply::Capabilities(capabilities) => Ok(capabilities),
            other => Err(unexpected(other)),
        }
    }

    /// Logs in with `USER` and `PASS`. Refused with
    /// [`UsageError::PlaintextCredentials`] (nothing sent) on an unencrypted
    /// connection unless [`Options::allow_plaintext_credentials`]. Returns once the
    /// core's `CAPA` after login is answered, so
    /// [`Connection::capabilities`] is current.
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    ///
    /// [`UsageError::PlaintextCredentials`]: pop3_proto::UsageError::PlaintextCredentials
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn login(&mut self, user: &str, password: impl Into<Secret<String>>) -> Result<()> {
        self.login_with(user, password, AuthMethod::UserPass).await
    }

    /// Logs in with any method, or with [`AuthMethod::Auto`]: the strongest
    /// the server offers (SCRAM-SHA-256-PLUS over TLS, SCRAM-SHA-256,
    /// SCRAM-SHA-1, CRAM-MD5, APOP, PLAIN, LOGIN, USER/PASS; `CAPA` is asked
    /// first when needed). The core makes the choice and runs the sequence;
    /// this only supplies a fresh random SCRAM nonce and the TLS channel
    /// binding. [`Client::login_mechanism`] tells what was used. `-ERR`
    /// is [`Error::Server`] with its response code (`[AUTH]`, `[IN-USE]`,
    /// ...).
    ///
    /// Cancel-safety: as [`Connection::login`].
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn login_with(
        &mut self,
        user: &str,
        secret: impl Into<Secret<String>>,
        method: AuthMethod,
    ) -> Result<()> {
        let mut credentials = Credentials::new(user, secret).scram_nonce(crate::scram_nonce()?);
        if let Some(binding) = self.stream.channel_binding() {
            credentials = credentials.channel_binding(binding);
        }
        self.authenticate(credentials, method).await
    }

    /// `APOP`: login with the MD5 digest of the greeting's timestamp and the
    /// password ([`UsageError::NoApopTimestamp`] if the greeting has none).
    ///
    /// Cancel-safety: as [`Connection::login`].
    ///
    /// [`UsageError::NoApopTimestamp`]: pop3_proto::UsageError::NoApopTimestamp
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn apop(&mut self, user: &str, password: impl Into<Secret<String>>) -> Result<()> {
        self.login_with(user, password, AuthMethod::Apop).await
    }

    /// `AUTH` with your own SASL mechanism (RFC 5034).
    ///
    /// Cancel-safety: as [`Connection::login`].
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn auth(&mut self, mechanism: Box<dyn Mechanism>) -> Result<()> {
        let credentials = Credentials::new("", "");
        self.authenticate(credentials, AuthMethod::Mechanism(mechanism))
            .await
    }

    async fn authenticate(&mut self, credentials: Credentials, method: AuthMethod) -> Result<()> {
        let reply = self
            .operation(async |conn| {
                let handle = conn.client.login_with(credentials, method)?;
                conn.reply(handle).await
            })
            .await;
        let mechanism = self.client.login_mechanism().unwrap_or("?");
        match reply {
            Ok(Reply::Authenticated(_)) => {
                tracing::debug!(mechanism, "logged in");
                Ok(())
            }
            Ok(other) => Err(unexpected(other)),
            Err(error) => {
                tracing::debug!(mechanism, %error, "login failed");
                Err(error)
            }
        }
    }

    /// `STAT`: message count and maildrop size.
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn stat(&mut self) -> Result<Stat> {
        match self.command(Command::Stat).await? {
            Reply::Stat(stat) => Ok(stat),
            other => Err(unexpected(other)),
        }
    }

    /// `LIST`: every message's size.
    ///
    /// Cancel-safety: as [`Connection::stat`].
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn list(&mut self) -> Result<Vec<ListEntry>> {
        match self.command(Command::List(None)).await? {
            Reply::List(entries) => Ok(entries),
            other => Err(unexpected(other)),
        }
    }

    /// `LIST n`: one message's size.
    ///
    /// Cancel-safety: as [`Connection::stat`].
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn list_one(&mut self, msg: MsgNum) -> Result<ListEntry> {
        match self.command(Command::List(Some(msg))).await? {
            Reply::ListOne(entry) => Ok(entry),
            other => Err(unexpected(other)),
        }
    }

    /// `UIDL`: every message's unique id. A UID is server data: it may hold
    /// `/` or `..`, so never use it as a file name as it is.
    ///
    /// Cancel-safety: as [`Connection::stat`].
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn uidl(&mut self) -> Result<Vec<UidlEntry>> {
        match self.command(Command::Uidl(None)).await? {
            Reply::Uidl(entries) => Ok(entries),
            other => Err(unexpected(other)),
        }
    }

    /// `UIDL` and `LIST` together: pipelined when the server allows it (one
    /// round trip instead of two), each with its own result (a server
    /// without `UIDL` answers `-ERR`, which is not fatal). The outer `Err` is
    /// fatal.
    ///
    /// Cancel-safety: as [`Connection::stat`].
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn uidl_and_list(
        &mut self,
    ) -> Result<(Result<Vec<UidlEntry>>, Result<Vec<ListEntry>>)> {
        self.operation(async |conn| {
            let uidl = conn.client.submit(Command::Uidl(None))?;
            let list = conn.client.submit(Command::List(None))?;
            let mut replies = conn.replies(&[uidl, list]).await?.into_iter();
            let uidl = match replies.next() {
                Some(Ok(Reply::Uidl(entries))) => Ok(entries),
                Some(Ok(other)) => Err(unexpected(other)),
                Some(Err(error)) => Err(error),
                None => Err(Error::Closed),
            };
            let list = match replies.next() {
                Some(Ok(Reply::List(entries))) => Ok(entries),
                Some(Ok(other)) => Err(unexpected(other)),
                Some(Err(error)) => Err(error),
                None => Err(Error::Closed),
            };
            Ok((uidl, list))
        })
        .await
    }

    /// `UIDL n`: one message's unique id.
    ///
    /// Cancel-safety: as [`Connection::stat`].
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn uidl_one(&mut self, msg: MsgNum) -> Result<UidlEntry> {
        match self.command(Command::Uidl(Some(msg))).await? {
            Reply::UidlOne(entry) => Ok(entry),
            other => Err(unexpected(other)),
        }
    }

    /// `DELE n`: marks a message for deletion, committed only by
    /// [`Connection::quit`].
    ///
    /// Cancel-safety: as [`Connection::stat`].
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn dele(&mut self, msg: MsgNum) -> Result<()> {
        self.command(Command::Dele(msg)).await.map(drop)
    }

    /// `RSET`: unmarks every message marked for deletion.
    ///
    /// Cancel-safety: as [`Connection::stat`].
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn rset(&mut self) -> Result<()> {
        self.command(Command::Rset).await.map(drop)
    }

    /// `NOOP`.
    ///
    /// Cancel-safety: as [`Connection::stat`].
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn noop(&mut self) -> Result<()> {
        self.command(Command::Noop).await.map(drop)
    }

    /// `UTF8` (RFC 6856): user names, passwords and replies in UTF-8.
    ///
    /// Cancel-safety: as [`Connection::stat`].
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn utf8(&mut self) -> Result<()> {
        self.command(Command::Utf8).await.map(drop)
    }

    /// `LANG` (RFC 6856): with `None`, lists the server's languages; with a
    /// tag, chooses that language (and returns an empty list).
    ///
    /// Cancel-safety: as [`Connection::stat`].
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn lang(&mut self, tag: Option<&str>) -> Result<Vec<Language>> {
        match self.command(Command::Lang(tag.map(str::to_owned))).await? {
            Reply::Languages(languages) => Ok(languages),
            Reply::Ok(_) => Ok(Vec::new()),
            other => Err(unexpected(other)),
        }
    }

    /// `RETR n`: waits for the `+OK` (a `-ERR` is [`Error::Server`]) and
    /// returns a reader for the message, dot-unstuffed, line endings as sent.
    /// The reader implements the runtime's read trait.
    ///
    /// Cancel-safety: dropping this future after its first poll poisons the
    /// connection; the returned [`MessageReader`] may be dropped at any time.
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn retr(&mut self, msg: MsgNum) -> Result<MessageReader<'_, S, R>> {
        self.open_body(Command::Retr(msg), msg).await
    }

    /// `TOP n lines`: the headers, the blank line and the first `lines` lines
    /// of the body, as a reader (see [`Connection::retr`]).
    ///
    /// Cancel-safety: as [`Connection::retr`].
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn top(&mut self, msg: MsgNum, lines: u32) -> Result<MessageReader<'_, S, R>> {
        self.open_body(Command::Top(msg, lines), msg).await
    }

    /// `RETR n` into a writer of the runtime's kind (`std::io::Write`, tokio's
    /// or futures-io's `AsyncWrite`; `&mut dyn Write` works too), flushed at
    /// the end; returns the byte count.
    ///
    /// Cancel-safety: dropping the future before the `+OK` poisons the
    /// connection; after it, the core drops the rest of the message. The same
    /// holds when the writer fails: [`Error::Sink`], and the connection stays
    /// usable.
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn retr_to<W: ?Sized>(&mut self, msg: MsgNum, writer: &mut W) -> Result<u64>
    where
        R: WriteTo<W>,
    {
        self.retr(msg).await?.copy_to(writer).await
    }

    /// `TOP n lines` into a writer; returns the byte count.
    ///
    /// Cancel-safety: as [`Connection::retr_to`].
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn top_to<W: ?Sized>(
        &mut self,
        msg: MsgNum,
        lines: u32,
        writer: &mut W,
    ) -> Result<u64>
    where
        R: WriteTo<W>,
    {
        self.top(msg, lines).await?.copy_to(writer).await
    }

    async fn open_body(
        &mut self,
        command: Command,
        msg: MsgNum,
    ) -> Result<MessageReader<'_, S, R>> {
        let handle = self
            .operation(async |conn| conn.open_body_steps(command).await)
            .await?;
        Ok(MessageReader::new(self, handle, msg))
    }

    /// Sends the command and waits for the server's `+OK` (the core's
    /// `BodyStart`), reading nothing of the body yet.
    async fn open_body_steps(&mut self, command: Command) -> Result<Handle> {
        let handle = self.client.submit(command)?;
        let started = self
            .drive(1, |event| match event {
                Event::BodyStart { handle: h } if h == handle => Ok(Some(())),
                other => body_event(other, handle, |_| {}).map(|_| None),
            })
            .await?;
        match started {
            Some(()) => Ok(handle),
            None => Err(self.lost()),
        }
    }

    /// Retrieves several messages, pipelined when the server offers
    /// `PIPELINING` (the core decides, and asks `CAPA` first when it does
    /// not know). Chunks go to `sink` as they arrive. Returns one result per
    /// message: its size, or why it failed (`-ERR`, an unusable reply, or
    /// cancelled). An outer `Err` is fatal, or the sink's own error: then the
    /// messages not yet complete are dropped by the core as they arrive and
    /// the connection stays usable.
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn retr_many(
        &mut self,
        msgs: &[MsgNum],
        sink: &mut impl MessageSink,
    ) -> Result<Vec<Result<u64>>> {
        self.operation(async |conn| conn.retr_many_steps(msgs, sink).await)
            .await
    }

    async fn retr_many_steps(
        &mut self,
        msgs: &[MsgNum],
        sink: &mut impl MessageSink,
    ) -> Result<Vec<Result<u64>>> {
        let handles = self.client.retr_many(msgs)?;
        self.bodies(msgs, &handles, sink).await
    }

    /// [`Connection::retr_many`] with `QUIT` sent as soon as the last reply
    /// is in (the core never pipelines `QUIT`: a server may drop replies it
    /// has not yet sent when it reads it). Meant for a session that deletes nothing. Returns the
    /// per-message results, as `retr_many` does, and `QUIT`'s own result
    /// ([`BulkRetrieval`]);
    /// the stream is then shut down as by [`Connection::quit`]. An outer
    /// `Err` (fatal, or the sink's error) drops the connection without
    /// waiting for `QUIT`'s reply.
    ///
    /// Cancel-safety: consumes the connection.
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn retr_many_and_quit(
        mut self,
        msgs: &[MsgNum],
        sink: &mut impl MessageSink,
    ) -> Result<BulkRetrieval> {
        let retrieval = self
            .operation(async |conn| {
                let handles = conn.client.retr_many(msgs)?;
                let quit = conn.client.submit(Command::Quit)?;
                let per_message = conn.bodies(msgs, &handles, sink).await?;
                let quit = conn.reply(quit).await.and_then(plain_ok);
                Ok(BulkRetrieval { per_message, quit })
            })
            .await?;
        self.shut_down().await;
        Ok(retrieval)
    }

    /// Receives the bodies of the `RETR`s `handles` (for `msgs`) into `sink`.
    async fn bodies(
        &mut self,
        msgs: &[MsgNum],
        handles: &[Handle],
        sink: &mut impl MessageSink,
    ) -> Result<Vec<Result<u64>>> {
        let mut bulk = Bulk::new(handles);
        let mut sizes = vec![0u64; msgs.len()];
        let mut sink_failed = None;
        if !bulk.is_done() {
            let done = self
                .drive(usize::MAX, |event| {
                    let sunk = match event {
                        Event::Body { handle, data } => match bulk.index(handle) {
                            Some(i) => {
                                sizes[i] += data.len() as u64;
                                sink.on_chunk(msgs[i], data)
                            }
                            None => Ok(()),
                        },
                        other => match outcome(other)
                            .and_then(|(handle, result)| bulk.index(handle).map(|i| (i, result)))
                        {
                            Some((i, result)) => {
                                let result = result.map(|_| sizes[i]);
                                let sunk = sink.on_end(msgs[i], result.as_ref().copied());
                                bulk.complete(i, result);
                                sunk
                            }
                            None => Ok(()),
                        },
                    };
                    if let Err(error) = sunk {
                        sink_failed = Some(error);
                        return Ok(Some(()));
                    }
                    Ok(bulk.is_done().then_some(()))
                })
                .await?;
            if let Some(error) = sink_failed {
                return Err(bulk.sink_failed(&mut self.client, error));
            }
            if done.is_none() {
                return Err(self.lost());
            }
        }
        Ok(bulk.finish())
    }

    /// Retrieves several messages like [`Connection::retr_many`], each into a
    /// writer of its own: `open(msg)` is called when message `msg` starts
    /// (the server's `+OK`) and returns the writer, of the runtime's kind
    /// (`std::io::Write`, or tokio's or futures-io's `AsyncWrite`). The writer
    /// is flushed and dropped when its message is complete. Returns one
    /// result per message: its size, or why it failed; a writer whose message
    /// failed half-way is dropped holding part of it, so check the result
    /// before keeping what it wrote.
    ///
    /// `open` returns an [`IoResult`] (`std::io::Result`, as `File::create`
    /// does), not this crate's `Result`.
    ///
    /// If `open` or a writer fails, the retrieval stops cleanly: the core
    /// reads and drops the rest of the messages asked for, the connection
    /// stays usable, and the error comes back as [`Error::Sink`].
    ///
    /// The closure needs no type annotation. With `pop3_blocking`, whose
    /// `Connection` is this type on the [`Blocking`](crate::runtime::blocking::Blocking)
    /// runtime:
    ///
    /// ```
    /// use std::fs::File;
    /// use pop3_transport::runtime::{blocking::Blocking, IoStream};
    /// use pop3_transport::{Connection, Result};
    ///
    /// /// Saves every message as `message-N.eml`; returns how many were saved.
    /// async fn save_all<S: IoStream>(pop3: &mut Connection<S, Blocking>) -> Result<usize> {
    ///     let msgs: Vec<_> = pop3.list().await?.iter().map(|entry| entry.msg).collect();
    ///     let results = pop3
    ///         .retr_many_to(&msgs, |msg| File::create(format!("message-{msg}.eml")))
    ///         .await?;
    ///     for (msg, result) in msgs.iter().zip(&results) {
    ///         if let Err(error) = result {
    ///             eprintln!("message {msg}: {error}"); // its file holds a part at most
    ///         }
    ///     }
    ///     Ok(results.iter().filter(|result| result.is_ok()).count())
    /// }
    /// ```
    ///
    /// On tokio the writers are tokio's, made without waiting, for example
    /// `tokio::fs::File::from_std(std::fs::File::create(path)?)`.
    ///
    /// Cancel-safety: as [`Connection::retr_many`].
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn retr_many_to<W, F>(
        &mut self,
        msgs: &[MsgNum],
        mut open: F,
    ) -> Result<Vec<Result<u64>>>
    where
        F: FnMut(MsgNum) -> IoResult<W>,
        R: WriteTo<W>,
    {
        self.operation(async |conn| conn.retr_many_to_steps(msgs, &mut open).await)
            .await
    }

    async fn retr_many_to_steps<W, F>(
        &mut self,
        msgs: &[MsgNum],
        open: &mut F,
    ) -> Result<Vec<Result<u64>>>
    where
        F: FnMut(MsgNum) -> IoResult<W>,
        R: WriteTo<W>,
    {
        let handles = self.client.retr_many(msgs)?;
        self.bodies_to(msgs, &handles, open).await
    }

    /// [`Connection::retr_many_to`] with `QUIT` sent once the last reply is
    /// in, as [`Connection::retr_many_and_quit`] does for a sink: each
    /// message goes to a writer of its own, and the session ends with the
    /// last message. Meant for a session that deletes nothing: `QUIT` goes
    /// out as soon as the last reply has arrived, which may be before the
    /// last message is written, so deletions marked earlier in the session
    /// may be committed even if that write then fails. Returns the
    /// per-message results and `QUIT`'s own result
    /// ([`BulkRetrieval`]); the stream is then shut down as by
    /// [`Connection::quit`]. An outer `Err` (fatal, or `open`'s or a writer's
    /// error) drops the connection without waiting for `QUIT`'s reply.
    ///
    /// Cancel-safety: consumes the connection.
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn retr_many_to_and_quit<W, F>(
        mut self,
        msgs: &[MsgNum],
        mut open: F,
    ) -> Result<BulkRetrieval>
    where
        F: FnMut(MsgNum) -> IoResult<W>,
        R: WriteTo<W>,
    {
        let retrieval = self
            .operation(async |conn| {
                let handles = conn.client.retr_many(msgs)?;
                let quit = conn.client.submit(Command::Quit)?;
                let per_message = conn.bodies_to(msgs, &handles, &mut open).await?;
                let quit = conn.reply(quit).await.and_then(plain_ok);
                Ok(BulkRetrieval { per_message, quit })
            })
            .await?;
        self.shut_down().await;
        Ok(retrieval)
    }

    /// Receives the bodies of the `RETR`s `handles` (for `msgs`), each into
    /// the writer `open` gives for it.
    async fn bodies_to<W, F>(
        &mut self,
        msgs: &[MsgNum],
        handles: &[Handle],
        open: &mut F,
    ) -> Result<Vec<Result<u64>>>
    where
        F: FnMut(MsgNum) -> IoResult<W>,
        R: WriteTo<W>,
    {
        /// What `drive` stopped for.
        enum Step {
            Start(usize),
            /// Message `.0` has `.1` new bytes in the copy buffer.
            Chunk(usize, usize),
            End(usize, Result<()>),
        }
        let mut bulk = Bulk::new(handles);
        let mut writers: Vec<Option<W>> = msgs.iter().map(|_| None).collect();
        let mut sizes = vec![0u64; msgs.len()];
        // Writers of the async runtimes may make us wait, and the core's
        // body slices live only until its next poll: each chunk is copied
        // here once, then written.
        let mut buf = vec![0u8; COPY_BUFFER];
        while !bulk.is_done() {
            let index = |handle: Handle| bulk.index(handle);
            let step = self
                .drive(buf.len(), |event| {
                    Ok(match event {
                        Event::BodyStart { handle } => index(handle).map(Step::Start),
                        Event::Body { handle, data } => index(handle).map(|i| {
                            let n = data.len().min(buf.len());
                            buf[..n].copy_from_slice(&data[..n]);
                            Step::Chunk(i, n)
                        }),
                        other => outcome(other)
                            .and_then(|(h, result)| index(h).map(|i| (i, result)))
                            .map(|(i, result)| Step::End(i, result.map(drop))),
                    })
                })
                .await?;
            let Some(step) = step else {
                return Err(self.lost());
            };
            let sunk = match step {
                Step::Start(i) => open_writer(&mut writers[i], open, msgs[i]).map(drop),
                Step::Chunk(i, n) => {
                    sizes[i] += n as u64;
                    match open_writer(&mut writers[i], open, msgs[i]) {
                        Ok(writer) => {
                            let mut written = 0;
                            poll_fn(|cx| R::poll_write_all(writer, cx, &buf[..n], &mut written))
                                .await
                        }
                        Err(error) => Err(error),
                    }
                }
                Step::End(i, result) => match result {
                    Ok(()) => {
                        bulk.complete(i, Ok(sizes[i]));
                        match open_writer(&mut writers[i], open, msgs[i]) {
                            Ok(writer) => poll_fn(|cx| R::poll_flush(writer, cx)).await,
                            Err(error) => Err(error),
                        }
                    }
                    Err(error) => {
                        bulk.complete(i, Err(error));
                        Ok(())
                    }
                }
                .inspect(|()| writers[i] = None),
            };
            if let Err(error) = sunk {
                return Err(bulk.sink_failed(&mut self.client, error));
            }
        }
        Ok(bulk.finish())
    }

    /// `RETR n` into memory: the message's bytes, as long as they are at most
    /// `limit` octets. A longer message fails with
    /// [`Error::MessageTooLarge`] once `limit` is passed, having held no more
    /// than `limit` octets (plus one read); the core reads and drops the rest,
    /// and the connection stays usable.
    ///
    /// Cancel-safety: as [`Connection::retr`].
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn retr_vec(&mut self, msg: MsgNum, limit: usize) -> Result<Vec<u8>> {
        let mut reader = self.retr(msg).await?;
        let mut message = Vec::new();
        let mut buf = vec![0u8; COPY_BUFFER.min(limit.saturating_add(1))];
        loop {
            // One octet more than the limit allows tells "exactly at the
            // limit" from "over it".
            let room = limit.saturating_sub(message.len()).saturating_add(1);
            let want = buf.len().min(room);
            let n = reader.read_chunk(&mut buf[..want]).await?;
            if n == 0 {
                return Ok(message);
            }
            if message.len() + n > limit {
                // Dropping the reader has the core drop the rest.
                return Err(Error::MessageTooLarge { limit });
            }
            message.extend_from_slice(&buf[..n]);
        }
    }

    /// Marks several messages for deletion, pipelined like
    /// [`Connection::retr_many`]. Returns one result per message.
    ///
    /// Cancel-safety: as [`Connection::retr_many`].
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn dele_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<()>>> {
        self.operation(async |conn| {
            let handles = conn.client.dele_many(msgs)?;
            let replies = conn.replies(&handles).await?;
            Ok(replies.into_iter().map(|r| r.map(drop)).collect())
        })
        .await
    }

    /// [`Connection::dele_many`] with `QUIT` sent once the last `DELE` reply
    /// is in. Returns one result
    /// per `DELE` and `QUIT`'s own result ([`BulkDeletion`]): only when that
    /// is `Ok` did the server commit the deletions. The stream is then shut down as by
    /// [`Connection::quit`].
    ///
    /// Cancel-safety: consumes the connection; dropping the future drops
    /// it (whether deletions were committed is then unknown).
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn dele_many_and_quit(mut self, msgs: &[MsgNum]) -> Result<BulkDeletion> {
        let (replies, quit) = self
            .operation(async |conn| {
                let mut handles = conn.client.dele_many(msgs)?;
                handles.push(conn.client.submit(Command::Quit)?);
                let mut replies = conn.replies(&handles).await?;
                let quit = replies.pop().unwrap_or(Err(Error::Closed));
                Ok((replies, quit))
            })
            .await?;
        self.shut_down().await;
        Ok(BulkDeletion {
            per_message: replies.into_iter().map(|r| r.map(drop)).collect(),
            quit: quit.and_then(plain_ok),
        })
    }

    /// `QUIT`: ends the session; the server commits the deletions. Then shuts
    /// the stream down (TLS `close_notify`) within the write time limit,
    /// ignoring errors there.
    ///
    /// Cancel-safety: consumes the connection; dropping the future drops it
    /// (whether deletions were committed is then unknown).
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn quit(mut self) -> Result<()> {
        let reply = self.command(Command::Quit).await?;
        self.shut_down().await;
        plain_ok(reply)
    }

    /// Shuts the stream down (TLS `close_notify`) within the write time
    /// limit, ignoring errors: the session is over.
    async fn shut_down(&mut self) {
        let (phase, limit) = self
            .session
            .bound(Phase::Write, self.options.timeouts.write);
        let stream = &mut self.stream;
        let shutdown = poll_fn(|cx| stream.poll_shutdown(cx));
        let _ = with_timeout::<R, _>(limit, phase, shutdown).await;
    }
}

impl<S: StartTls, R: Runtime> Connection<S, R> {
    /// Upgrades a plaintext connection to TLS with `STLS` (RFC 2595),
    /// verifying the certificate against `server_name`.
    ///
    /// The core checks the capabilities (asking `CAPA` if needed); if `STLS`
    /// is not listed this fails with [`Error::StlsUnavailable`] and nothing
    /// else is sent. A `-ERR` to `STLS` is [`Error::Server`]. After the
    /// handshake it waits for the core's fresh `CAPA`, so
    /// [`Connection::capabilities`] describes the encrypted session.
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    ///
    /// The same name as the core's [`pop3_proto::Client::start_tls`], the C
    /// ABI's `pop3_client_start_tls` and Python's `start_tls`: the upgrade
    /// of an open connection. (`STLS` is the command it sends; "starttls" is
    /// the mode of [`crate::connect`]ing plain and upgrading.)
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn start_tls(&mut self, server_name: &str) -> Result<()> {
        let config = self.options.tls.client_config()?;
        let name = parse_server_name(server_name)?;
        self.start_tls_with(config, name).await
    }

    /// [`Connection::start_tls`] with the TLS configuration and server name
    /// made beforehand (by [`crate::connect`], before connecting).
    pub(crate) async fn start_tls_with(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<()> {
        self.operation(async |conn| {
            let handle = conn.client.start_tls()?;
            let started = conn
                .drive(usize::MAX, |event| match outcome(event) {
                    Some((h, result)) if h == handle => result.map(Some),
                    _ => Ok(None),
                })
                .await;
            // `Ok(None)`: the core wants the handshake now. A completion
            // before it is a refusal (no STLS offered, or `-ERR`).
            match started? {
                None if conn.client.error().is_none() => {}
                None => return Err(conn.lost()),
                Some(other) => return Err(unexpected(other)),
            }
            // Until the handshake succeeds the connection is unusable.
            conn.poisoned = true;
            conn.session.check()?;
            let (phase, limit) = conn
                .session
                .bound(Phase::TlsHandshake, conn.options.timeouts.tls_handshake);
            let socket_limit = conn.session.bound_socket(limit);
            let handshake = conn.stream.start_tls(config, name, socket_limit);
            let session = conn.session;
            let handshake = with_timeout::<R, _>(limit, phase, handshake)
                .await
                .map_err(|error| match error {
                    Error::Io(e) => session.blame(from_io(e, Phase::TlsHandshake)),
                    other => other,
                });
            if let Err(error) = handshake {
                // The core ends the session as every driver's does after a
                // failed upgrade (what waited for it is cancelled); the
                // caller gets the typed TLS error.
                let _ = conn.client.tls_failed();
                return Err(error);
            }
            conn.stream
                .set_timeouts(conn.options.timeouts.read, conn.options.timeouts.write)
                .map_err(Error::Io)?;
            conn.client.tls_established()?;
            conn.poisoned = false;
            tracing::debug!("TLS established with STLS");
            match conn.reply(handle).await? {
                Reply::TlsEstablished => Ok(()),
                other => Err(unexpected(other)),
            }
        })
        .await
    }

    /// The former name of [`Connection::start_tls`].
    #[deprecated(note = "renamed to `start_tls`, the name every surface uses")]
    #[must_use = "nothing is sent until this is awaited (`.await`, or `.wait()` with pop3-blocking)"]
    pub async fn stls(&mut self, server_name: &str) -> Result<()> {
        self.start_tls(server_name).await
    }
}
