//! [`Connection`]: the protocol core driven over an [`IoStream`].

use std::collections::HashMap;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pop3_proto::sasl::{self, Mechanism, SaslError};
use pop3_proto::{
    Action, Capabilities, Client, Command, Event, Greeting, Handle, Language, ListEntry, MsgNum,
    ProtocolError, Reply, Secret, Stat, Text, UidlEntry, UsageError,
};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use super::reader::{body_event, MessageReader};
use super::{with_timeout, IoStream, MessageSink, Timer};
use crate::{parse_server_name, Error, Options, Phase, Result, Timeouts};

/// A POP3 session over an [`IoStream`] `S`, keeping time with timers of type
/// `T`: the [`pop3_proto::Client`] core, the stream, and the time limits.
///
/// The runtime crates wrap it; their `Connection` documents every method,
/// including its cancel-safety. In short: all protocol state lives in the
/// core, so dropping a future never corrupts the stream, but dropping one
/// after its first poll and before it completes poisons the connection
/// ([`Connection::is_poisoned`]); later calls return [`Error::Closed`]. A
/// [`MessageReader`] may be dropped at any time: the next operation drains
/// the rest of its message.
pub struct Connection<S, T> {
    client: Client,
    stream: S,
    options: Options,
    greeting: Greeting,
    /// Bytes from the core not yet written; wiped once written and flushed.
    out: Vec<u8>,
    out_pos: usize,
    deadline: Deadline<T>,
    /// The body of a dropped [`MessageReader`], still being discarded.
    pub(super) draining: Option<Handle>,
    /// An operation is in progress (set while its future runs).
    busy: bool,
    /// A fatal error happened, or an operation was cancelled.
    pub(super) poisoned: bool,
}

impl<S, T> fmt::Debug for Connection<S, T> {
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
struct Deadline<T> {
    timer: T,
    armed: Option<Phase>,
}

impl<T: Timer> Deadline<T> {
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

/// The handle and outcome of an event that completes a command.
pub(super) fn outcome(event: Event<'_>) -> Option<(Handle, Result<Reply>)> {
    match event {
        Event::Ok { handle, reply } => Some((handle, Ok(reply))),
        Event::Err { handle, error } => Some((handle, Err(Error::Server(error)))),
        Event::Failed { handle, error } => Some((handle, Err(Error::Protocol(error)))),
        Event::Cancelled { handle, reason } => Some((handle, Err(Error::from(reason)))),
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

impl<S, T> Connection<S, T> {
    /// The server's greeting.
    pub fn greeting(&self) -> &Greeting {
        &self.greeting
    }

    /// The capabilities from the latest `CAPA` valid in the current state, if
    /// known.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.client.capabilities()
    }

    /// The protocol core, for inspection.
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

    /// The connection cannot be used any more.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned || self.busy
    }

    /// Gives the stream back, without sending anything.
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
    async fn operation<R>(&mut self, steps: impl AsyncFnOnce(&mut Self) -> Result<R>) -> Result<R> {
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

    fn fail<R>(&mut self, error: Error) -> Poll<Result<R>> {
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

impl<S: IoStream, T: Timer> Connection<S, T> {
    /// Reads the greeting from a connected stream and returns the session;
    /// `encrypted` says whether the stream is already encrypted (which allows
    /// credentials to be sent). The greeting read is bounded by the read
    /// timeout.
    pub async fn start(stream: S, options: &Options, encrypted: bool) -> Result<Self> {
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
            deadline: Deadline {
                timer: T::never(),
                armed: None,
            },
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
    pub(super) fn poll_drive<R>(
        &mut self,
        cx: &mut Context<'_>,
        max_body: usize,
        mut on_event: impl FnMut(Event<'_>) -> Result<Option<R>>,
    ) -> Poll<Result<Option<R>>> {
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
                    if self.client.is_idle() {
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
            match self.stream.poll_write(cx, &self.out[self.out_pos..]) {
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
        match self.stream.poll_flush(cx) {
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
            Poll::Ready(Err(error)) => Poll::Ready(Err(error.into())),
            Poll::Pending => self
                .deadline
                .poll(cx, Phase::Read, self.options.timeouts.read),
        }
    }

    async fn drive<R>(
        &mut self,
        max_body: usize,
        mut on_event: impl FnMut(Event<'_>) -> Result<Option<R>>,
    ) -> Result<Option<R>> {
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
        self.operation(async |conn| match conn.client.submit(command) {
            Ok(handle) => conn.reply(handle).await,
            Err(error) => Err(Error::from(error)),
        })
        .await
    }

    /// Waits until the `CAPA` the core re-issues by itself (after TLS or login)
    /// is answered, so that [`Connection::capabilities`] is current.
    async fn settle(&mut self) -> Result<()> {
        self.drive(usize::MAX, |event| {
            Ok(matches!(event, Event::Capabilities(_)).then_some(()))
        })
        .await
        .map(drop)
    }

    /// `CAPA`.
    pub async fn capa(&mut self) -> Result<Capabilities> {
        match self.command(Command::Capa).await? {
            Reply::Capabilities(capabilities) => Ok(capabilities),
            other => Err(unexpected(other)),
        }
    }

    /// `USER` then `PASS`, then waits for the `CAPA` the core re-issues.
    pub async fn login(&mut self, user: &str, password: impl Into<Secret<String>>) -> Result<()> {
        let password = password.into();
        self.operation(async |conn| conn.login_steps(user, password).await)
            .await
    }

    async fn login_steps(&mut self, user: &str, password: Secret<String>) -> Result<()> {
        let (user_handle, pass_handle) = self.client.login(user, password)?;
        let mut results = self.replies(&[user_handle, pass_handle]).await?.into_iter();
        if let Some(Err(error)) = results.next() {
            return Err(error);
        }
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
            Reply::Authenticated(_) => self.operation(Self::settle).await,
            other => Err(unexpected(other)),
        }
    }

    /// `APOP`.
    pub async fn apop(&mut self, user: &str, password: impl Into<Secret<String>>) -> Result<()> {
        self.authenticate(Command::Apop {
            user: user.to_owned(),
            password: password.into(),
        })
        .await
    }

    /// `AUTH` with any SASL mechanism.
    pub async fn auth(&mut self, mechanism: Box<dyn Mechanism>) -> Result<()> {
        self.authenticate(Command::Auth(mechanism)).await
    }

    /// `AUTH SCRAM-SHA-256` with a fresh random nonce.
    pub async fn auth_scram_sha256(
        &mut self,
        user: &str,
        password: impl Into<Secret<String>>,
    ) -> Result<()> {
        let nonce = crate::scram_nonce()?;
        let mechanism =
            sasl::Scram::sha256(user.to_owned(), password.into(), nonce).map_err(sasl_error)?;
        self.auth(Box::new(mechanism)).await
    }

    /// `AUTH SCRAM-SHA-1` with a fresh random nonce.
    pub async fn auth_scram_sha1(
        &mut self,
        user: &str,
        password: impl Into<Secret<String>>,
    ) -> Result<()> {
        let nonce = crate::scram_nonce()?;
        let mechanism =
            sasl::Scram::sha1(user.to_owned(), password.into(), nonce).map_err(sasl_error)?;
        self.auth(Box::new(mechanism)).await
    }

    /// `AUTH CRAM-MD5`.
    pub async fn auth_cram_md5(
        &mut self,
        user: &str,
        password: impl Into<Secret<String>>,
    ) -> Result<()> {
        let mechanism = sasl::CramMd5::new(user.to_owned(), password.into());
        self.auth(Box::new(mechanism)).await
    }

    /// `AUTH PLAIN`.
    pub async fn auth_plain(
        &mut self,
        user: &str,
        password: impl Into<Secret<String>>,
    ) -> Result<()> {
        let mechanism =
            sasl::Plain::new(None, user.to_owned(), password.into()).map_err(sasl_error)?;
        self.auth(Box::new(mechanism)).await
    }

    /// `AUTH LOGIN`.
    pub async fn auth_login(
        &mut self,
        user: &str,
        password: impl Into<Secret<String>>,
    ) -> Result<()> {
        let mechanism = sasl::Login::new(user.to_owned(), password.into());
        self.auth(Box::new(mechanism)).await
    }

    /// `AUTH XOAUTH2`.
    pub async fn auth_xoauth2(
        &mut self,
        user: &str,
        token: impl Into<Secret<String>>,
    ) -> Result<()> {
        let mechanism = sasl::XOauth2::new(user.to_owned(), token.into()).map_err(sasl_error)?;
        self.auth(Box::new(mechanism)).await
    }

    /// `AUTH OAUTHBEARER`.
    pub async fn auth_oauthbearer(
        &mut self,
        user: &str,
        token: impl Into<Secret<String>>,
    ) -> Result<()> {
        let mechanism =
            sasl::OAuthBearer::new(user.to_owned(), token.into()).map_err(sasl_error)?;
        self.auth(Box::new(mechanism)).await
    }

    /// `STAT`.
    pub async fn stat(&mut self) -> Result<Stat> {
        match self.command(Command::Stat).await? {
            Reply::Stat(stat) => Ok(stat),
            other => Err(unexpected(other)),
        }
    }

    /// `LIST`.
    pub async fn list(&mut self) -> Result<Vec<ListEntry>> {
        match self.command(Command::List(None)).await? {
            Reply::List(entries) => Ok(entries),
            other => Err(unexpected(other)),
        }
    }

    /// `LIST n`.
    pub async fn list_one(&mut self, msg: MsgNum) -> Result<ListEntry> {
        match self.command(Command::List(Some(msg))).await? {
            Reply::ListOne(entry) => Ok(entry),
            other => Err(unexpected(other)),
        }
    }

    /// `UIDL`.
    pub async fn uidl(&mut self) -> Result<Vec<UidlEntry>> {
        match self.command(Command::Uidl(None)).await? {
            Reply::Uidl(entries) => Ok(entries),
            other => Err(unexpected(other)),
        }
    }

    /// `UIDL n`.
    pub async fn uidl_one(&mut self, msg: MsgNum) -> Result<UidlEntry> {
        match self.command(Command::Uidl(Some(msg))).await? {
            Reply::UidlOne(entry) => Ok(entry),
            other => Err(unexpected(other)),
        }
    }

    /// `DELE n`.
    pub async fn dele(&mut self, msg: MsgNum) -> Result<()> {
        self.command(Command::Dele(msg)).await.map(drop)
    }

    /// `RSET`.
    pub async fn rset(&mut self) -> Result<()> {
        self.command(Command::Rset).await.map(drop)
    }

    /// `NOOP`.
    pub async fn noop(&mut self) -> Result<()> {
        self.command(Command::Noop).await.map(drop)
    }

    /// `UTF8`.
    pub async fn utf8(&mut self) -> Result<()> {
        self.command(Command::Utf8).await.map(drop)
    }

    /// `LANG`: lists the languages, or chooses one (and returns an empty
    /// list).
    pub async fn lang(&mut self, tag: Option<&str>) -> Result<Vec<Language>> {
        match self.command(Command::Lang(tag.map(str::to_owned))).await? {
            Reply::Languages(languages) => Ok(languages),
            Reply::Ok(_) => Ok(Vec::new()),
            other => Err(unexpected(other)),
        }
    }

    /// `RETR n`: waits for the `+OK` and returns a reader for the message.
    pub async fn retr(&mut self, msg: MsgNum) -> Result<MessageReader<'_, S, T>> {
        self.open_body(Command::Retr(msg), msg).await
    }

    /// `TOP n lines`, as a reader.
    pub async fn top(&mut self, msg: MsgNum, lines: u32) -> Result<MessageReader<'_, S, T>> {
        self.open_body(Command::Top(msg, lines), msg).await
    }

    async fn open_body(
        &mut self,
        command: Command,
        msg: MsgNum,
    ) -> Result<MessageReader<'_, S, T>> {
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

    /// Retrieves several messages, pipelined when the server allows; chunks
    /// go to `sink`. One result per message; an outer `Err` is fatal.
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
                Err(error) => results.push(Some(Err(Error::from(error)))),
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
    /// [`Connection::retr_many`]. One result per message.
    pub async fn dele_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<()>>> {
        self.operation(async |conn| conn.dele_many_steps(msgs).await)
            .await
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
                Some((_, error)) => results.push(Err(Error::from(error))),
                None => results.push(replies.next().unwrap_or(Err(Error::Closed)).map(drop)),
            }
        }
        Ok(results)
    }

    /// `QUIT`, then shuts the stream down (within the write time limit),
    /// ignoring errors there.
    pub async fn quit(mut self) -> Result<()> {
        let reply = self.command(Command::Quit).await?;
        let limit = self.options.timeouts.write;
        let stream = &mut self.stream;
        let shutdown = poll_fn(|cx| stream.poll_shutdown(cx));
        let _ = with_timeout::<T, _>(limit, Phase::Write, shutdown).await;
        match reply {
            Reply::Ok(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// `STLS` (RFC 2595), verifying the certificate against `server_name`:
    /// refused with [`Error::StlsUnavailable`] unless the capabilities (cached,
    /// or asked with `CAPA`) list `STLS`; after the `+OK`, `handshake` takes
    /// the plaintext stream out of the one it is given (`None` if that is TLS
    /// already) and returns the handshake, run within the handshake time
    /// limit; then waits for the core's fresh `CAPA`.
    ///
    /// The connection is poisoned from the `+OK` until the handshake
    /// succeeds.
    pub async fn stls<H>(
        &mut self,
        server_name: &str,
        handshake: impl FnOnce(&mut S, Arc<ClientConfig>, ServerName<'static>) -> Option<H>,
    ) -> Result<()>
    where
        H: Future<Output = io::Result<S>>,
    {
        let config = self.options.tls.client_config()?;
        let name = parse_server_name(server_name)?;
        let capabilities = match self.capabilities() {
            Some(capabilities) => capabilities.clone(),
            None => match self.capa().await {
                Ok(capabilities) => capabilities,
                Err(Error::Server(_)) => return Err(Error::StlsUnavailable),
                Err(error) => return Err(error),
            },
        };
        if !capabilities.stls() {
            return Err(Error::StlsUnavailable);
        }
        self.operation(async |conn| conn.stls_steps(config, name, handshake).await)
            .await
    }

    async fn stls_steps<H>(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        handshake: impl FnOnce(&mut S, Arc<ClientConfig>, ServerName<'static>) -> Option<H>,
    ) -> Result<()>
    where
        H: Future<Output = io::Result<S>>,
    {
        let handle = self.client.submit(Command::Stls)?;
        if !matches!(self.reply(handle).await?, Reply::StartTls) {
            return Err(self.lost());
        }
        // Until the handshake succeeds the connection is unusable.
        self.poisoned = true;
        let Some(handshake) = handshake(&mut self.stream, config, name) else {
            return Err(Error::Usage(UsageError::WrongState {
                command: "STLS",
                reason: "the stream is already TLS",
            }));
        };
        let limit = self.options.timeouts.tls_handshake;
        self.stream = with_timeout::<T, _>(limit, Phase::TlsHandshake, handshake).await?;
        self.client.tls_established()?;
        self.poisoned = false;
        self.settle().await
    }
}
