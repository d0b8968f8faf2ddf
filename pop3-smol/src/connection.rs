//! [`Connection`]: the protocol core driven over a futures-io stream.

use std::collections::HashMap;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_io::Timer;
use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::AsyncWriteExt;
use pop3_proto::sasl::{self, Mechanism, SaslError};
use pop3_proto::{
    Action, Capabilities, Client, Command, Event, Greeting, Handle, Language, ListEntry, MsgNum,
    ProtocolError, Reply, Secret, Stat, State, Text, UidlEntry, UsageError,
};

use crate::reader::{body_event, MessageReader, MessageSink};
use crate::{Error, Options, Phase, Result, Timeouts};

/// How many bytes of a message [`Connection::retr`] may read ahead while it
/// waits for the server's `+OK` (they are handed out by the first read).
const HEAD_MAX: usize = 256;

/// A POP3 session over an async stream: the [`pop3_proto::Client`] core, the
/// stream, and the time limits.
///
/// Every method returns when its reply has arrived; commands are checked by the
/// core before anything is sent ([`Error::Usage`]), and `-ERR` replies come back
/// as [`Error::Server`] with the connection still usable.
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
/// ([`Connection::is_poisoned`]). This holds for every `async fn` here
/// ([`Connection::retr_to`] and [`Connection::top_to`]: until the `+OK`), and is
/// what happens when such a future loses a race (`futures_lite::future::or`,
/// `select!`) or a timeout. The one exception is the [`MessageReader`] returned
/// by [`Connection::retr`] and [`Connection::top`]: it may be dropped at any
/// time, and the next operation first drains the rest of the message.
/// Prefer [`Options::timeouts`] (which keep time per read and write) to
/// wrapping calls in a timeout.
pub struct Connection<S> {
    pub(crate) client: Client,
    pub(crate) stream: S,
    pub(crate) options: Options,
    greeting: Greeting,
    /// Bytes from the core not yet written; wiped once written and flushed.
    out: Vec<u8>,
    out_pos: usize,
    deadline: Deadline,
    /// The body of a dropped [`MessageReader`], still being discarded.
    pub(crate) draining: Option<Handle>,
    /// An operation is in progress (set while its future runs).
    pub(crate) busy: bool,
    /// A fatal error happened, or an operation was cancelled.
    pub(crate) poisoned: bool,
}

impl<S> fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("client", &self.client)
            .field("draining", &self.draining)
            .field("poisoned", &(self.poisoned || self.busy))
            .finish_non_exhaustive()
    }
}

/// The timer of the I/O step in progress: armed when a read or write has to
/// wait, disarmed whenever one makes progress.
struct Deadline {
    timer: Timer,
    armed: Option<Phase>,
}

impl Default for Deadline {
    fn default() -> Self {
        Deadline {
            timer: Timer::never(),
            armed: None,
        }
    }
}

impl Deadline {
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
            self.timer.set_after(limit);
            self.armed = Some(phase);
        }
        if Pin::new(&mut self.timer).poll(cx).is_ready() {
            self.armed = None;
            return Poll::Ready(Err(Error::Timeout(phase)));
        }
        Poll::Pending
    }

    fn progress(&mut self) {
        self.armed = None;
    }
}

/// Runs `future` with a time limit (an [`async_io::Timer`] raced with
/// [`futures_lite::future::or`]).
pub(crate) async fn with_timeout<T>(
    limit: Option<Duration>,
    phase: Phase,
    future: impl Future<Output = io::Result<T>>,
) -> Result<T> {
    let future = async { future.await.map_err(Error::from) };
    match limit {
        Some(limit) => {
            let expire = async {
                Timer::after(limit).await;
                Err(Error::Timeout(phase))
            };
            futures_lite::future::or(future, expire).await
        }
        None => future.await,
    }
}

/// The handle and outcome of an event that completes a command.
pub(crate) fn outcome(event: Event<'_>) -> Option<(Handle, Result<Reply>)> {
    match event {
        Event::Ok { handle, reply } => Some((handle, Ok(reply))),
        Event::Err { handle, error } => Some((handle, Err(Error::Server(error)))),
        Event::Failed { handle, error } => Some((handle, Err(Error::Protocol(error)))),
        Event::Cancelled { handle, reason } => Some((handle, Err(Error::Usage(reason)))),
        _ => None,
    }
}

/// The command an event belongs to, and whether it completes it.
fn event_handle(event: &Event<'_>) -> Option<(Handle, bool)> {
    match event {
        Event::Body { handle, .. } => Some((*handle, false)),
        Event::Ok { handle, .. }
        | Event::Err { handle, .. }
        | Event::Failed { handle, .. }
        | Event::Cancelled { handle, .. } => Some((*handle, true)),
        _ => None,
    }
}

fn unexpected(_reply: Reply) -> Error {
    Error::Protocol(ProtocolError::Malformed(
        "the core returned an unexpected reply",
    ))
}

fn sasl_error(error: SaslError) -> Error {
    Error::Usage(UsageError::Sasl(error))
}

fn wipe(buf: &mut Vec<u8>) {
    buf.iter_mut().for_each(|b| *b = 0);
    buf.clear();
}

impl<S> Connection<S> {
    /// The server's greeting.
    pub fn greeting(&self) -> &Greeting {
        &self.greeting
    }

    /// The capabilities from the latest `CAPA` valid in the current state, if
    /// known (the core forgets them after `STLS` and login, and re-reads them
    /// itself when the server answered `CAPA` before).
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

    /// Changes the time limits for the following reads and writes.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.options.timeouts = timeouts;
    }

    /// The connection cannot be used any more: a fatal error happened, the
    /// server closed it, or an operation was cancelled (see the type's docs).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned || self.busy
    }

    /// Gives the stream back, without sending anything (no `QUIT`).
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Starts an operation: refused when the connection is poisoned or a
    /// previous operation's future was dropped half-way.
    pub(crate) fn begin(&mut self) -> Result<()> {
        if self.busy {
            self.poisoned = true;
        }
        if self.poisoned {
            return Err(Error::Closed);
        }
        self.busy = true;
        Ok(())
    }

    fn fail<T>(&mut self, error: Error) -> Poll<Result<T>> {
        self.poisoned = true;
        wipe(&mut self.out);
        self.out_pos = 0;
        Poll::Ready(Err(error))
    }

    /// The reply never came: the core has nothing in flight any more.
    fn lost(&mut self) -> Error {
        self.poisoned = true;
        Error::Closed
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Reads the greeting from a connected stream and returns the session.
    ///
    /// Use this for streams you opened yourself (an in-memory pipe, a child
    /// process's stdio, an SSH channel). [`Options::encrypted`] says whether the
    /// stream is already encrypted, which allows credentials to be sent. The
    /// greeting read is bounded by the read timeout.
    ///
    /// Cancel-safety: the stream is dropped with the future.
    pub async fn new(stream: S, options: &Options) -> Result<Connection<S>> {
        Connection::start(stream, options, options.encrypted).await
    }

    pub(crate) async fn start(
        stream: S,
        options: &Options,
        encrypted: bool,
    ) -> Result<Connection<S>> {
        let mut conn = Connection {
            client: Client::new(options.core_config(encrypted)),
            stream,
            options: options.clone(),
            greeting: Greeting {
                text: Text::default(),
                apop_timestamp: None,
            },
            out: Vec::new(),
            out_pos: 0,
            deadline: Deadline::default(),
            draining: None,
            busy: false,
            poisoned: false,
        };
        let greeting = conn
            .drive(usize::MAX, |event| match event {
                Event::Greeting(greeting) => Ok(Some(greeting)),
                _ => Ok(None),
            })
            .await?;
        conn.greeting = greeting.ok_or(Error::Closed)?;
        Ok(conn)
    }

    /// Drives the core: writes what it sends, reads when it needs input, and
    /// hands each event to `on_event` until that returns `Some`. Events of the
    /// body being drained are discarded first. `Ok(None)`: nothing is in
    /// flight any more, so nothing will come.
    ///
    /// Body events carry at most `max_body` octets.
    pub(crate) fn poll_drive<T>(
        &mut self,
        cx: &mut Context<'_>,
        max_body: usize,
        mut on_event: impl FnMut(Event<'_>) -> Result<Option<T>>,
    ) -> Poll<Result<Option<T>>> {
        if self.poisoned {
            return Poll::Ready(Err(Error::Closed));
        }
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
                Action::Event(event) => {
                    if let (Some(draining), Some((handle, end))) =
                        (self.draining, event_handle(&event))
                    {
                        if handle == draining {
                            if end {
                                self.draining = None;
                            }
                            continue;
                        }
                    }
                    match on_event(event) {
                        Ok(Some(value)) => return Poll::Ready(Ok(Some(value))),
                        Ok(None) => {}
                        Err(error) => return Poll::Ready(Err(error)),
                    }
                }
                Action::NeedInput => {
                    let idle = self.client.state() != State::Greeting
                        && self.client.in_flight() == 0
                        && self.client.queued() == 0;
                    if idle {
                        return Poll::Ready(Ok(None));
                    }
                    match self.poll_receive(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(error)) => return self.fail(error),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                // Only reachable when the future of `stls` was dropped between
                // the +OK and the handshake; the connection is then poisoned.
                Action::StartTls | Action::Closed => return self.fail(Error::Closed),
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
            match Pin::new(&mut self.stream).poll_write(cx, &self.out[self.out_pos..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(Error::Io(io::ErrorKind::WriteZero.into())))
                }
                Poll::Ready(Ok(n)) => {
                    self.out_pos += n;
                    self.deadline.progress();
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
                Poll::Pending => return self.deadline.poll(cx, Phase::Write, limit),
            }
        }
        match Pin::new(&mut self.stream).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.deadline.progress();
                wipe(&mut self.out);
                self.out_pos = 0;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error.into())),
            Poll::Pending => self.deadline.poll(cx, Phase::Write, limit),
        }
    }

    /// Reads once into the core's input buffer.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match Pin::new(&mut self.stream).poll_read(cx, self.client.input_buffer()) {
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
            Poll::Ready(Err(error)) => Poll::Ready(Err(error.into())),
            Poll::Pending => self
                .deadline
                .poll(cx, Phase::Read, self.options.timeouts.read),
        }
    }

    pub(crate) async fn drive<T>(
        &mut self,
        max_body: usize,
        mut on_event: impl FnMut(Event<'_>) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        poll_fn(|cx| self.poll_drive(cx, max_body, &mut on_event)).await
    }

    /// Waits for the reply to one command.
    async fn reply(&mut self, handle: Handle) -> Result<Reply> {
        let reply = self
            .drive(usize::MAX, |event| match outcome(event) {
                Some((h, result)) if h == handle => result.map(Some),
                _ => Ok(None),
            })
            .await?;
        reply.ok_or_else(|| self.lost())
    }

    /// Waits for the replies to several commands, in the order given.
    async fn replies(&mut self, handles: &[Handle]) -> Result<Vec<Result<Reply>>> {
        let index: HashMap<Handle, usize> =
            handles.iter().enumerate().map(|(i, h)| (*h, i)).collect();
        let mut results: Vec<Option<Result<Reply>>> = handles.iter().map(|_| None).collect();
        let mut left = handles.len();
        if left > 0 {
            let done = self
                .drive(usize::MAX, |event| {
                    if let Some((handle, result)) = outcome(event) {
                        if let Some(slot) = index.get(&handle).and_then(|&i| results.get_mut(i)) {
                            if slot.is_none() {
                                *slot = Some(result);
                                left -= 1;
                            }
                        }
                    }
                    Ok((left == 0).then_some(()))
                })
                .await?;
            if done.is_none() {
                return Err(self.lost());
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Err(Error::Closed)))
            .collect())
    }

    /// Runs one command to its reply.
    async fn command(&mut self, command: Command) -> Result<Reply> {
        self.begin()?;
        let result = match self.client.submit(command) {
            Ok(handle) => self.reply(handle).await,
            Err(error) => Err(Error::Usage(error)),
        };
        self.busy = false;
        result
    }

    /// Waits until the `CAPA` the core re-issues by itself (after TLS or login)
    /// is answered, so that [`Connection::capabilities`] is current.
    pub(crate) async fn settle(&mut self) -> Result<()> {
        self.drive(usize::MAX, |event| {
            Ok(matches!(event, Event::Capabilities(_)).then_some(()))
        })
        .await
        .map(drop)
    }

    /// `CAPA`: asks for the server's capabilities (also cached, see
    /// [`Connection::capabilities`]). A `-ERR` (server without `CAPA`) is
    /// [`Error::Server`].
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    pub async fn capa(&mut self) -> Result<Capabilities> {
        match self.command(Command::Capa).await? {
            Reply::Capabilities(capabilities) => Ok(capabilities),
            other => Err(unexpected(other)),
        }
    }

    /// `USER` then `PASS` (pipelined by the core when the server allows).
    /// Refused with [`UsageError::PlaintextCredentials`] (nothing sent) on an
    /// unencrypted connection unless [`Options::allow_plaintext_auth`]. After
    /// success, waits for the `CAPA` the core re-issues (if the server answered
    /// `CAPA` before), so [`Connection::capabilities`] is current.
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    pub async fn login(&mut self, user: &str, password: impl Into<Secret<String>>) -> Result<()> {
        self.begin()?;
        let result = self.login_steps(user, password.into()).await;
        self.busy = false;
        result
    }

    async fn login_steps(&mut self, user: &str, password: Secret<String>) -> Result<()> {
        let user_handle = self.client.user(user)?;
        let pass = self.client.pass(password);
        let mut handles = vec![user_handle];
        if let Ok(pass_handle) = &pass {
            handles.push(*pass_handle);
        }
        let mut results = self.replies(&handles).await?.into_iter();
        if let Some(Err(error)) = results.next() {
            return Err(error);
        }
        pass?;
        match results.next() {
            Some(Ok(Reply::Authenticated(_))) => self.settle().await,
            Some(Ok(other)) => Err(unexpected(other)),
            Some(Err(error)) => Err(error),
            None => Err(self.lost()),
        }
    }

    /// Logs in with an authenticated command (APOP, AUTH) and settles.
    async fn authenticate(&mut self, command: Command) -> Result<()> {
        match self.command(command).await? {
            Reply::Authenticated(_) => {
                self.begin()?;
                let settled = self.settle().await;
                self.busy = false;
                settled
            }
            other => Err(unexpected(other)),
        }
    }

    /// `APOP`: login with the MD5 digest of the greeting's timestamp and the
    /// password ([`UsageError::NoApopTimestamp`] if the greeting has none).
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    pub async fn apop(&mut self, user: &str, password: impl Into<Secret<String>>) -> Result<()> {
        self.authenticate(Command::Apop {
            user: user.to_owned(),
            password: password.into(),
        })
        .await
    }

    /// `AUTH` with any SASL mechanism (RFC 5034).
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    pub async fn auth(&mut self, mechanism: Box<dyn Mechanism>) -> Result<()> {
        self.authenticate(Command::Auth(mechanism)).await
    }

    /// `AUTH SCRAM-SHA-256` with a fresh random nonce; verifies the server too.
    ///
    /// Cancel-safety: as [`Connection::auth`].
    pub async fn auth_scram_sha256(
        &mut self,
        user: &str,
        password: impl Into<Secret<String>>,
    ) -> Result<()> {
        let mechanism = sasl::Scram::sha256(
            user.to_owned(),
            password.into(),
            pop3_transport::scram_nonce()?,
        )
        .map_err(sasl_error)?;
        self.auth(Box::new(mechanism)).await
    }

    /// `AUTH SCRAM-SHA-1` with a fresh random nonce; verifies the server too.
    ///
    /// Cancel-safety: as [`Connection::auth`].
    pub async fn auth_scram_sha1(
        &mut self,
        user: &str,
        password: impl Into<Secret<String>>,
    ) -> Result<()> {
        let mechanism = sasl::Scram::sha1(
            user.to_owned(),
            password.into(),
            pop3_transport::scram_nonce()?,
        )
        .map_err(sasl_error)?;
        self.auth(Box::new(mechanism)).await
    }

    /// `AUTH CRAM-MD5`.
    ///
    /// Cancel-safety: as [`Connection::auth`].
    pub async fn auth_cram_md5(
        &mut self,
        user: &str,
        password: impl Into<Secret<String>>,
    ) -> Result<()> {
        self.auth(Box::new(sasl::CramMd5::new(
            user.to_owned(),
            password.into(),
        )))
        .await
    }

    /// `AUTH PLAIN` (the password travels base64-encoded: TLS needed unless
    /// [`Options::allow_plaintext_auth`]).
    ///
    /// Cancel-safety: as [`Connection::auth`].
    pub async fn auth_plain(
        &mut self,
        user: &str,
        password: impl Into<Secret<String>>,
    ) -> Result<()> {
        let mechanism =
            sasl::Plain::new(None, user.to_owned(), password.into()).map_err(sasl_error)?;
        self.auth(Box::new(mechanism)).await
    }

    /// `AUTH LOGIN` (same exposure as `PLAIN`).
    ///
    /// Cancel-safety: as [`Connection::auth`].
    pub async fn auth_login(
        &mut self,
        user: &str,
        password: impl Into<Secret<String>>,
    ) -> Result<()> {
        self.auth(Box::new(sasl::Login::new(user.to_owned(), password.into())))
            .await
    }

    /// `AUTH XOAUTH2` with an OAuth 2.0 access token.
    ///
    /// Cancel-safety: as [`Connection::auth`].
    pub async fn auth_xoauth2(
        &mut self,
        user: &str,
        token: impl Into<Secret<String>>,
    ) -> Result<()> {
        let mechanism = sasl::XOauth2::new(user.to_owned(), token.into()).map_err(sasl_error)?;
        self.auth(Box::new(mechanism)).await
    }

    /// `AUTH OAUTHBEARER` (RFC 7628) with an OAuth 2.0 access token.
    ///
    /// Cancel-safety: as [`Connection::auth`].
    pub async fn auth_oauthbearer(
        &mut self,
        user: &str,
        token: impl Into<Secret<String>>,
    ) -> Result<()> {
        let mechanism =
            sasl::OAuthBearer::new(user.to_owned(), token.into()).map_err(sasl_error)?;
        self.auth(Box::new(mechanism)).await
    }

    /// `STAT`: message count and maildrop size.
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    pub async fn stat(&mut self) -> Result<Stat> {
        match self.command(Command::Stat).await? {
            Reply::Stat(stat) => Ok(stat),
            other => Err(unexpected(other)),
        }
    }

    /// `LIST`: every message's size.
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    pub async fn list(&mut self) -> Result<Vec<ListEntry>> {
        match self.command(Command::List(None)).await? {
            Reply::List(entries) => Ok(entries),
            other => Err(unexpected(other)),
        }
    }

    /// `LIST n`: one message's size.
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    pub async fn list_one(&mut self, msg: MsgNum) -> Result<ListEntry> {
        match self.command(Command::List(Some(msg))).await? {
            Reply::ListOne(entry) => Ok(entry),
            other => Err(unexpected(other)),
        }
    }

    /// `UIDL`: every message's unique id.
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    pub async fn uidl(&mut self) -> Result<Vec<UidlEntry>> {
        match self.command(Command::Uidl(None)).await? {
            Reply::Uidl(entries) => Ok(entries),
            other => Err(unexpected(other)),
        }
    }

    /// `UIDL n`: one message's unique id.
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    pub async fn uidl_one(&mut self, msg: MsgNum) -> Result<UidlEntry> {
        match self.command(Command::Uidl(Some(msg))).await? {
            Reply::UidlOne(entry) => Ok(entry),
            other => Err(unexpected(other)),
        }
    }

    /// `DELE n`: marks a message for deletion, committed only by
    /// [`Connection::quit`].
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    pub async fn dele(&mut self, msg: MsgNum) -> Result<()> {
        self.command(Command::Dele(msg)).await.map(drop)
    }

    /// `RSET`: unmarks every message marked for deletion.
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    pub async fn rset(&mut self) -> Result<()> {
        self.command(Command::Rset).await.map(drop)
    }

    /// `NOOP`.
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    pub async fn noop(&mut self) -> Result<()> {
        self.command(Command::Noop).await.map(drop)
    }

    /// `UTF8` (RFC 6856): user names, passwords and replies in UTF-8.
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    pub async fn utf8(&mut self) -> Result<()> {
        self.command(Command::Utf8).await.map(drop)
    }

    /// `LANG` (RFC 6856): with `None`, lists the server's languages; with a
    /// tag, chooses that language (and returns an empty list).
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    pub async fn lang(&mut self, tag: Option<&str>) -> Result<Vec<Language>> {
        match self.command(Command::Lang(tag.map(str::to_owned))).await? {
            Reply::Languages(languages) => Ok(languages),
            Reply::Ok(_) => Ok(Vec::new()),
            other => Err(unexpected(other)),
        }
    }

    /// `RETR n`: waits for the `+OK` (a `-ERR` is [`Error::Server`]) and
    /// returns a reader for the message, dot-unstuffed, line endings as sent.
    ///
    /// Cancel-safety: dropping this future after its first poll poisons the
    /// connection; the returned [`MessageReader`] may be dropped at any time.
    pub async fn retr(&mut self, msg: MsgNum) -> Result<MessageReader<'_, S>> {
        self.open_body(Command::Retr(msg), msg).await
    }

    /// `TOP n lines`: the headers, the blank line and the first `lines` lines
    /// of the body, as a reader (see [`Connection::retr`]).
    ///
    /// Cancel-safety: as [`Connection::retr`].
    pub async fn top(&mut self, msg: MsgNum, lines: u32) -> Result<MessageReader<'_, S>> {
        self.open_body(Command::Top(msg, lines), msg).await
    }

    async fn open_body(&mut self, command: Command, msg: MsgNum) -> Result<MessageReader<'_, S>> {
        self.begin()?;
        let opened = self.open_body_steps(command).await;
        self.busy = false;
        let (handle, head, ended) = opened?;
        Ok(MessageReader::new(self, handle, msg, head, ended))
    }

    async fn open_body_steps(&mut self, command: Command) -> Result<(Handle, Vec<u8>, bool)> {
        let handle = self.client.submit(command)?;
        let mut head = Vec::new();
        let ended = self
            .drive(HEAD_MAX, |event| {
                body_event(event, handle, |data| head.extend_from_slice(data))
            })
            .await?;
        match ended {
            Some(ended) => Ok((handle, head, ended)),
            None => Err(self.lost()),
        }
    }

    /// `RETR n` into a writer (flushed at the end); returns the byte count.
    ///
    /// Cancel-safety: dropping the future before the `+OK` poisons the
    /// connection; after it, the rest of the message is drained by the next
    /// operation. The same holds when the writer fails: [`Error::Io`], and the
    /// connection stays usable.
    pub async fn retr_to<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        msg: MsgNum,
        writer: &mut W,
    ) -> Result<u64> {
        self.retr(msg).await?.read_to_writer(writer).await
    }

    /// `TOP n lines` into a writer; returns the byte count.
    ///
    /// Cancel-safety: as [`Connection::retr_to`].
    pub async fn top_to<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        msg: MsgNum,
        lines: u32,
        writer: &mut W,
    ) -> Result<u64> {
        self.top(msg, lines).await?.read_to_writer(writer).await
    }

    /// Retrieves several messages, pipelined when the server offers
    /// `PIPELINING` (after login, the core re-reads `CAPA` by itself if the
    /// server answered it before; otherwise call [`Connection::capa`] once).
    /// Chunks go to `sink` as they arrive. Returns one result per message: its
    /// size, or why it failed (`-ERR`, an unusable reply, or cancelled). An
    /// outer `Err` is fatal.
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    pub async fn retr_many(
        &mut self,
        msgs: &[MsgNum],
        sink: &mut impl MessageSink,
    ) -> Result<Vec<Result<u64>>> {
        self.begin()?;
        let result = self.retr_many_steps(msgs, sink).await;
        self.busy = false;
        result
    }

    async fn retr_many_steps(
        &mut self,
        msgs: &[MsgNum],
        sink: &mut impl MessageSink,
    ) -> Result<Vec<Result<u64>>> {
        // Every command is handed to the core at once. The core keeps at most
        // `pipeline_window` of them in flight (one without PIPELINING), so what
        // is written before the replies are read is a few bytes per command and
        // can never fill both sides' socket buffers: writing everything
        // pending, then reading, cannot deadlock.
        let mut results: Vec<Option<Result<u64>>> = Vec::with_capacity(msgs.len());
        let mut index = HashMap::new();
        for (i, &msg) in msgs.iter().enumerate() {
            match self.client.submit(Command::Retr(msg)) {
                Ok(handle) => {
                    index.insert(handle, i);
                    results.push(None);
                }
                Err(error) => results.push(Some(Err(Error::Usage(error)))),
            }
        }
        let mut sizes = vec![0u64; msgs.len()];
        let mut left = index.len();
        if left > 0 {
            let done = self
                .drive(usize::MAX, |event| {
                    if let Event::Body { handle, data } = event {
                        if let Some(&i) = index.get(&handle) {
                            sizes[i] += data.len() as u64;
                            sink.on_chunk(msgs[i], data);
                        }
                    } else if let Some((handle, result)) = outcome(event) {
                        if let Some(&i) = index.get(&handle) {
                            let result = result.map(|_| sizes[i]);
                            sink.on_end(msgs[i], result.as_ref().copied());
                            results[i] = Some(result);
                            left -= 1;
                        }
                    }
                    Ok((left == 0).then_some(()))
                })
                .await?;
            if done.is_none() {
                return Err(self.lost());
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Err(Error::Closed)))
            .collect())
    }

    /// Marks several messages for deletion, pipelined like
    /// [`Connection::retr_many`]. Returns one result per message.
    ///
    /// Cancel-safety: dropping the future after its first poll poisons the
    /// connection.
    pub async fn dele_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<()>>> {
        self.begin()?;
        let result = self.dele_many_steps(msgs).await;
        self.busy = false;
        result
    }

    async fn dele_many_steps(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<()>>> {
        // As in `retr_many`: the core's bounded window keeps this deadlock-free.
        let mut handles = Vec::with_capacity(msgs.len());
        let mut refused = Vec::new();
        for &msg in msgs {
            match self.client.submit(Command::Dele(msg)) {
                Ok(handle) => handles.push(handle),
                Err(error) => refused.push((handles.len() + refused.len(), error)),
            }
        }
        let mut replies = self.replies(&handles).await?.into_iter();
        let mut refused = refused.into_iter().peekable();
        let mut results = Vec::with_capacity(msgs.len());
        for i in 0..msgs.len() {
            match refused.next_if(|(at, _)| *at == i) {
                Some((_, error)) => results.push(Err(Error::Usage(error))),
                None => results.push(replies.next().unwrap_or(Err(Error::Closed)).map(drop)),
            }
        }
        Ok(results)
    }

    /// `QUIT`: ends the session; the server commits the deletions. Then closes
    /// the stream (TLS `close_notify`), ignoring errors there.
    ///
    /// Cancel-safety: consumes the connection; dropping the future drops it
    /// (whether deletions were committed is then unknown).
    pub async fn quit(mut self) -> Result<()> {
        let reply = self.command(Command::Quit).await?;
        let limit = self.options.timeouts.write;
        let _ = with_timeout(limit, Phase::Write, self.stream.close()).await;
        match reply {
            Reply::Ok(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}
