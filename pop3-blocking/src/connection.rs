//! The blocking connection: a loop over the sans-IO core.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use pop3_proto::sasl::{CramMd5, Login, Mechanism, OAuthBearer, Plain, Scram, XOauth2};
use pop3_proto::{
    Action, Capabilities, Client, Command, Event, Greeting, Handle, Language, ListEntry, MsgNum,
    ProtocolError, Reply, Secret, Stat, UidlEntry, UsageError,
};

use crate::error::{from_io, from_usage};
use crate::stream::MaybeTls;
use crate::{Error, Phase, Result};
use crate::{Options, Timeouts};

/// What the driving loop hands to its callback.
enum Step<'a> {
    Event(Event<'a>),
    StartTls,
}

/// When the driving loop gives up waiting for the callback.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Read from the socket until the callback is satisfied.
    Block,
    /// Read only while commands are outstanding; return `None` when none are.
    UntilIdle,
}

/// A POP3 session over a stream `S`.
///
/// Every method sends its command and blocks until the reply is complete (see
/// [`Timeouts`] for how long). The protocol itself — framing, dot-unstuffing,
/// state checks, pipelining, SASL — is done by [`pop3_proto::Client`]; this
/// type only moves bytes.
///
/// # Ending a session
///
/// Call [`Connection::quit`]: only `QUIT` makes the server commit the
/// messages marked with [`Connection::dele`]. **Dropping a `Connection`
/// without `quit` sends nothing**: the server sees the connection close
/// without `QUIT`, does not enter the UPDATE state, and deletes nothing.
///
/// # Errors
///
/// See [`Error`] for which errors end the connection. After one of those every
/// method returns [`Error::Closed`].
#[derive(Debug)]
pub struct Connection<S: Read + Write> {
    client: Client,
    stream: S,
    options: Options,
    greeting: Greeting,
    /// Bytes were written since the last flush.
    unflushed: bool,
    /// The stream failed or the session ended: refuse everything.
    poisoned: bool,
    /// A [`MessageReader`] was dropped before the end of its body, or a
    /// multi-command call returned early: replies are outstanding that nobody
    /// waits for. The next operation reads (and discards) them first.
    draining: bool,
}

/// Which reply a blocking call waits for, and what its events mean.
fn outcome(target: Handle, event: Event<'_>) -> Option<Result<Reply>> {
    match event {
        Event::Ok { handle, reply } if handle == target => Some(Ok(reply)),
        Event::Err { handle, error } if handle == target => Some(Err(Error::Server(error))),
        Event::Failed { handle, error } if handle == target => Some(Err(Error::Protocol(error))),
        Event::Cancelled { handle, reason } if handle == target => Some(Err(from_usage(reason))),
        _ => None,
    }
}

/// The final event of a command, whichever it is.
fn ended(event: Event<'_>) -> Option<(Handle, Result<Reply>)> {
    match event {
        Event::Ok { handle, reply } => Some((handle, Ok(reply))),
        Event::Err { handle, error } => Some((handle, Err(Error::Server(error)))),
        Event::Failed { handle, error } => Some((handle, Err(Error::Protocol(error)))),
        Event::Cancelled { handle, reason } => Some((handle, Err(from_usage(reason)))),
        _ => None,
    }
}

fn unexpected(_reply: &Reply) -> Error {
    Error::Protocol(ProtocolError::Malformed("reply of an unexpected kind"))
}

fn sasl(error: pop3_proto::sasl::SaslError) -> Error {
    Error::Usage(UsageError::Sasl(error))
}

impl<S: Read + Write> Connection<S> {
    /// Starts a session over a stream that is already connected (an in-memory
    /// pipe, a subprocess's stdio, an SSH channel, a TLS stream of your own):
    /// reads the greeting and returns.
    ///
    /// Set [`Options::encrypted`] if the stream is encrypted, or credentials
    /// are refused unless [`Options::allow_plaintext_auth`]. Time limits in
    /// `options` are *not* applied: configure them on your stream.
    pub fn new(stream: S, options: &Options) -> Result<Connection<S>> {
        Connection::start(stream, options, options.encrypted)
    }

    pub(crate) fn start(stream: S, options: &Options, encrypted: bool) -> Result<Connection<S>> {
        let mut connection = Connection {
            client: Client::new(options.core_config(encrypted)),
            stream,
            options: options.clone(),
            greeting: Greeting {
                text: pop3_proto::Text::default(),
                apop_timestamp: None,
            },
            unflushed: false,
            poisoned: false,
            draining: false,
        };
        let greeting = connection.drive(usize::MAX, Wait::Block, |step| match step {
            Step::Event(Event::Greeting(greeting)) => Some(Ok(greeting)),
            _ => None,
        })?;
        connection.greeting = greeting.ok_or(Error::Closed)?;
        Ok(connection)
    }

    // ----- the loop -----

    /// Runs the core until `on` returns `Some`, doing what each action says.
    /// Errors of the stream or the protocol end the connection.
    fn drive<T>(
        &mut self,
        max_body: usize,
        wait: Wait,
        mut on: impl FnMut(Step<'_>) -> Option<Result<T>>,
    ) -> Result<Option<T>> {
        if self.poisoned {
            return Err(Error::Closed);
        }
        let Connection {
            client,
            stream,
            unflushed,
            poisoned,
            ..
        } = self;
        loop {
            let action = match client.poll_body_limited(max_body.max(1)) {
                Ok(action) => action,
                Err(error) => {
                    *poisoned = true;
                    return Err(Error::Protocol(error));
                }
            };
            match action {
                // The core writes at most one pipeline window ahead of what it
                // has read, so writing everything before reading cannot
                // deadlock against a server that stops reading while its own
                // replies are not being read.
                Action::Send(bytes) => {
                    if let Err(error) = stream.write_all(bytes) {
                        *poisoned = true;
                        return Err(from_io(error, Phase::Write));
                    }
                    *unflushed = true;
                }
                Action::Event(event) => {
                    if let Some(result) = on(Step::Event(event)) {
                        return result.map(Some);
                    }
                }
                Action::StartTls => {
                    if let Some(result) = on(Step::StartTls) {
                        return result.map(Some);
                    }
                    // Only `stls` submits STLS, and it handles this action.
                    *poisoned = true;
                    return Err(Error::Closed);
                }
                Action::NeedInput => {
                    match wait {
                        Wait::UntilIdle if client.is_idle() => return Ok(None),
                        _ => {}
                    }
                    if *unflushed {
                        if let Err(error) = stream.flush() {
                            *poisoned = true;
                            return Err(from_io(error, Phase::Write));
                        }
                        *unflushed = false;
                    }
                    let buf = client.input_buffer();
                    let read = loop {
                        match stream.read(buf) {
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            other => break other,
                        }
                    };
                    match read {
                        Ok(0) => client.receive_eof(),
                        Ok(n) => client.input_written(n),
                        // rustls: the peer closed without close_notify. The core
                        // knows whether a reply was cut short.
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => client.receive_eof(),
                        Err(error) => {
                            *poisoned = true;
                            return Err(from_io(error, Phase::Read));
                        }
                    }
                }
                Action::Closed => {
                    *poisoned = true;
                    return Err(Error::Closed);
                }
            }
        }
    }

    /// Reads and discards the replies nobody waits for any more (a dropped
    /// [`MessageReader`], an aborted [`Connection::retr_many`]).
    fn drain(&mut self) -> Result<()> {
        if self.draining {
            self.drive(usize::MAX, Wait::UntilIdle, |_| None::<Result<()>>)?;
            self.draining = false;
        }
        Ok(())
    }

    fn submit(&mut self, command: Command) -> Result<Handle> {
        if self.poisoned {
            return Err(Error::Closed);
        }
        let submitted = self.client.submit(command);
        submitted.map_err(|error| self.usage(error))
    }

    /// A refusal from the core. One that says the core failed earlier (seen
    /// now, at the next command) leaves the connection as unusable as a failed
    /// read does.
    fn usage(&mut self, error: pop3_proto::UsageError) -> Error {
        if matches!(error, pop3_proto::UsageError::Failed(_)) {
            self.poisoned = true;
        }
        from_usage(error)
    }

    /// Waits for the reply to `handle`; body chunks for it are discarded.
    fn wait(&mut self, handle: Handle) -> Result<Reply> {
        self.drive(usize::MAX, Wait::Block, |step| match step {
            Step::Event(event) => outcome(handle, event),
            Step::StartTls => None,
        })?
        .ok_or(Error::Closed)
    }

    /// Submits one command and waits for its reply.
    fn command(&mut self, command: Command) -> Result<Reply> {
        self.drain()?;
        let handle = self.submit(command)?;
        self.wait(handle)
    }

    fn simple(&mut self, command: Command) -> Result<()> {
        self.command(command).map(drop)
    }

    // ----- information -----

    /// The server's greeting.
    pub fn greeting(&self) -> &Greeting {
        &self.greeting
    }

    /// The capabilities from the latest `CAPA` valid in the current state,
    /// without asking the server. The core forgets them when TLS starts and
    /// after login, and asks again by itself if the server answered before.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.client.capabilities()
    }

    /// The sans-IO core, for its state ([`Client::state`],
    /// [`Client::is_encrypted`], [`Client::is_pipelining`], ...).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether an earlier error ended the connection (every call now returns
    /// [`Error::Closed`]).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The time limits from the options.
    pub fn timeouts(&self) -> Timeouts {
        self.options.timeouts
    }

    /// The stream, ending the session without `QUIT`. Bytes the server sent
    /// that were already read are lost.
    pub fn into_inner(self) -> S {
        self.stream
    }

    // ----- authorization -----

    /// `CAPA`: asks for the capabilities (and caches them, see
    /// [`Connection::capabilities`]).
    pub fn capa(&mut self) -> Result<Capabilities> {
        match self.command(Command::Capa)? {
            Reply::Capabilities(capabilities) => Ok(capabilities),
            other => Err(unexpected(&other)),
        }
    }

    /// `USER` then `PASS` (sent together when the server allows pipelining).
    ///
    /// Refused with [`UsageError::PlaintextCredentials`] on an unencrypted
    /// connection unless [`Options::allow_plaintext_auth`].
    pub fn login(&mut self, user: &str, password: impl Into<Secret<String>>) -> Result<()> {
        self.drain()?;
        let submitted = self.client.login(user, password.into());
        let (user_handle, pass_handle) = submitted.map_err(|error| self.usage(error))?;
        self.wait(user_handle)?;
        self.wait(pass_handle).map(drop)
    }

    /// `APOP`: logs in with an MD5 digest of the greeting's timestamp and the
    /// password. Fails with [`UsageError::NoApopTimestamp`] if the greeting has
    /// no timestamp. APOP is considered a credential: unencrypted connections
    /// need [`Options::allow_plaintext_auth`].
    pub fn apop(&mut self, user: &str, password: impl Into<Secret<String>>) -> Result<()> {
        self.simple(Command::Apop {
            user: user.to_owned(),
            password: password.into(),
        })
    }

    /// `AUTH` with any SASL mechanism (RFC 5034).
    pub fn auth(&mut self, mechanism: Box<dyn Mechanism>) -> Result<()> {
        self.simple(Command::Auth(mechanism))
    }

    /// `AUTH SCRAM-SHA-256` with a fresh random nonce. The server must prove
    /// that it knows the password, or the call fails with
    /// [`Error::Protocol`]`(`[`ProtocolError::Sasl`]`)`.
    pub fn auth_scram_sha256(
        &mut self,
        user: &str,
        password: impl Into<Secret<String>>,
    ) -> Result<()> {
        let mechanism = Scram::sha256(
            user.to_owned(),
            password.into(),
            pop3_transport::scram_nonce()?,
        )
        .map_err(sasl)?;
        self.auth(Box::new(mechanism))
    }

    /// `AUTH SCRAM-SHA-1` with a fresh random nonce.
    pub fn auth_scram_sha1(
        &mut self,
        user: &str,
        password: impl Into<Secret<String>>,
    ) -> Result<()> {
        let mechanism = Scram::sha1(
            user.to_owned(),
            password.into(),
            pop3_transport::scram_nonce()?,
        )
        .map_err(sasl)?;
        self.auth(Box::new(mechanism))
    }

    /// `AUTH CRAM-MD5`.
    pub fn auth_cram_md5(&mut self, user: &str, password: impl Into<Secret<String>>) -> Result<()> {
        self.auth(Box::new(CramMd5::new(user.to_owned(), password.into())))
    }

    /// `AUTH PLAIN` (the password travels in the clear inside the session).
    pub fn auth_plain(&mut self, user: &str, password: impl Into<Secret<String>>) -> Result<()> {
        let mechanism = Plain::new(None, user.to_owned(), password.into()).map_err(sasl)?;
        self.auth(Box::new(mechanism))
    }

    /// `AUTH LOGIN` (the password travels in the clear inside the session).
    pub fn auth_login(&mut self, user: &str, password: impl Into<Secret<String>>) -> Result<()> {
        self.auth(Box::new(Login::new(user.to_owned(), password.into())))
    }

    /// `AUTH XOAUTH2` with an OAuth 2.0 access token.
    pub fn auth_xoauth2(&mut self, user: &str, token: impl Into<Secret<String>>) -> Result<()> {
        let mechanism = XOauth2::new(user.to_owned(), token.into()).map_err(sasl)?;
        self.auth(Box::new(mechanism))
    }

    /// `AUTH OAUTHBEARER` (RFC 7628) with an OAuth 2.0 access token.
    pub fn auth_oauthbearer(&mut self, user: &str, token: impl Into<Secret<String>>) -> Result<()> {
        let mechanism = OAuthBearer::new(user.to_owned(), token.into()).map_err(sasl)?;
        self.auth(Box::new(mechanism))
    }

    /// `UTF8` (RFC 6856): switches the session to UTF-8. Before login only.
    pub fn utf8(&mut self) -> Result<()> {
        self.simple(Command::Utf8)
    }

    /// `LANG` (RFC 6856). With `None`, lists the languages the server offers;
    /// with `Some(tag)`, chooses one and returns an empty list.
    pub fn lang(&mut self, tag: Option<&str>) -> Result<Vec<Language>> {
        match self.command(Command::Lang(tag.map(str::to_owned)))? {
            Reply::Languages(languages) => Ok(languages),
            Reply::Ok(_) => Ok(Vec::new()),
            other => Err(unexpected(&other)),
        }
    }

    // ----- transaction -----

    /// `STAT`: number of messages and their total size.
    pub fn stat(&mut self) -> Result<Stat> {
        match self.command(Command::Stat)? {
            Reply::Stat(stat) => Ok(stat),
            other => Err(unexpected(&other)),
        }
    }

    /// `LIST`: every message's number and size.
    pub fn list(&mut self) -> Result<Vec<ListEntry>> {
        match self.command(Command::List(None))? {
            Reply::List(entries) => Ok(entries),
            other => Err(unexpected(&other)),
        }
    }

    /// `LIST n`.
    pub fn list_one(&mut self, msg: MsgNum) -> Result<ListEntry> {
        match self.command(Command::List(Some(msg)))? {
            Reply::ListOne(entry) => Ok(entry),
            other => Err(unexpected(&other)),
        }
    }

    /// `UIDL`: every message's unique id.
    pub fn uidl(&mut self) -> Result<Vec<UidlEntry>> {
        match self.command(Command::Uidl(None))? {
            Reply::Uidl(entries) => Ok(entries),
            other => Err(unexpected(&other)),
        }
    }

    /// `UIDL n`.
    pub fn uidl_one(&mut self, msg: MsgNum) -> Result<UidlEntry> {
        match self.command(Command::Uidl(Some(msg)))? {
            Reply::UidlOne(entry) => Ok(entry),
            other => Err(unexpected(&other)),
        }
    }

    /// `RETR n`: the message, streamed. Returns once the server has accepted
    /// the command (a `-ERR` is returned here as [`Error::Server`]); read the
    /// message from the [`MessageReader`]. The bytes are dot-unstuffed, with
    /// line endings exactly as the server sent them (normally CRLF).
    pub fn retr(&mut self, msg: MsgNum) -> Result<MessageReader<'_, S>> {
        self.body_reader(msg, Command::Retr(msg))
    }

    /// `TOP n lines`: the headers, the blank line and the first `lines` lines
    /// of the body, streamed like [`Connection::retr`].
    pub fn top(&mut self, msg: MsgNum, lines: u32) -> Result<MessageReader<'_, S>> {
        self.body_reader(msg, Command::Top(msg, lines))
    }

    /// `RETR n` into a writer; returns the number of bytes written. An error
    /// of the writer comes back as [`Error::Io`] and leaves the connection
    /// usable.
    pub fn retr_to(&mut self, msg: MsgNum, out: &mut impl Write) -> Result<u64> {
        self.body_to(Command::Retr(msg), out)
    }

    /// `TOP n lines` into a writer; returns the number of bytes written.
    pub fn top_to(&mut self, msg: MsgNum, lines: u32, out: &mut impl Write) -> Result<u64> {
        self.body_to(Command::Top(msg, lines), out)
    }

    fn body_reader(&mut self, msg: MsgNum, command: Command) -> Result<MessageReader<'_, S>> {
        self.drain()?;
        let handle = self.submit(command)?;
        // Wait for the server's +OK (the core's BodyStart), reading nothing
        // of the body yet: a -ERR is returned here, not by the first read.
        let started = self.drive(1, Wait::Block, |step| match step {
            Step::Event(Event::BodyStart { handle: h }) if h == handle => Some(Ok(())),
            Step::Event(event) => outcome(handle, event).map(|r| r.map(drop)),
            Step::StartTls => None,
        });
        match started {
            Ok(Some(())) => {}
            Ok(None) => return Err(Error::Closed),
            Err(error) => {
                // Another reply to the same command may still be outstanding
                // (a chunk, then a failure): read it next time.
                self.draining = true;
                return Err(error);
            }
        }
        self.draining = true;
        Ok(MessageReader {
            connection: self,
            handle,
            msg,
            done: false,
        })
    }

    fn body_to(&mut self, command: Command, out: &mut impl Write) -> Result<u64> {
        self.drain()?;
        let handle = self.submit(command)?;
        let mut total = 0u64;
        self.draining = true;
        let result = self.drive(usize::MAX, Wait::Block, |step| match step {
            Step::Event(Event::Body { handle: h, data }) if h == handle => {
                match out.write_all(data) {
                    Ok(()) => {
                        total += data.len() as u64;
                        None
                    }
                    Err(e) => Some(Err(Error::Io(e))),
                }
            }
            Step::Event(event) => outcome(handle, event),
            Step::StartTls => None,
        });
        let reply = result?.ok_or(Error::Closed)?;
        self.draining = false;
        match reply {
            Reply::BodyEnd => Ok(total),
            other => Err(unexpected(&other)),
        }
    }

    /// `DELE n`: marks the message for deletion. It is deleted only when the
    /// session ends with [`Connection::quit`].
    pub fn dele(&mut self, msg: MsgNum) -> Result<()> {
        self.simple(Command::Dele(msg))
    }

    /// `RSET`: unmarks every message marked for deletion.
    pub fn rset(&mut self) -> Result<()> {
        self.simple(Command::Rset)
    }

    /// `NOOP`.
    pub fn noop(&mut self) -> Result<()> {
        self.simple(Command::Noop)
    }

    /// `QUIT`: ends the session; after login the server now deletes the
    /// messages marked with [`Connection::dele`]. A `-ERR` (deletion failed) is
    /// [`Error::Server`].
    pub fn quit(mut self) -> Result<()> {
        self.draining = false;
        let handle = self.submit(Command::Quit)?;
        self.wait(handle)?;
        let _ = self.stream.flush();
        Ok(())
    }

    /// `RETR` for every message in `msgs`, pipelined: all the commands are
    /// handed to the core at once, and it keeps up to
    /// [`Options::pipeline_window`] of them in flight when the server offers
    /// `PIPELINING` (one at a time otherwise). If the capabilities are not
    /// known in this state, the core asks `CAPA` first, once.
    ///
    /// Each message's bytes go to [`MessageSink::on_chunk`] as they arrive,
    /// then [`MessageSink::on_end`] reports how it ended. Returns one result
    /// per message, in order: its size, or why it failed (`-ERR`, for example
    /// when it was deleted; an unusable reply; a command that could not be
    /// submitted). An outer `Err` ended the connection.
    pub fn retr_many(
        &mut self,
        msgs: &[MsgNum],
        sink: &mut impl MessageSink,
    ) -> Result<Vec<Result<u64>>> {
        self.drain()?;
        let mut results: Vec<Option<Result<u64>>> = Vec::with_capacity(msgs.len());
        let mut index = HashMap::with_capacity(msgs.len());
        for (i, &msg) in msgs.iter().enumerate() {
            match self.submit(Command::Retr(msg)) {
                Ok(handle) => {
                    index.insert(handle, i);
                    results.push(None);
                }
                Err(error) => results.push(Some(Err(error))),
            }
        }
        let mut sizes = vec![0u64; msgs.len()];
        let mut left = index.len();
        if left > 0 {
            // The core keeps at most one window of commands in flight, so the
            // bytes written ahead of the replies are a few per command: writing
            // everything, then reading, cannot deadlock.
            self.draining = true;
            self.drive(usize::MAX, Wait::Block, |step| {
                let Step::Event(event) = step else {
                    return None;
                };
                if let Event::Body { handle, data } = event {
                    if let Some(&i) = index.get(&handle) {
                        sizes[i] += data.len() as u64;
                        sink.on_chunk(msgs[i], data);
                    }
                    return None;
                }
                let (handle, result) = ended(event)?;
                let &i = index.get(&handle)?;
                let result = result.and_then(|reply| match reply {
                    Reply::BodyEnd => Ok(sizes[i]),
                    other => Err(unexpected(&other)),
                });
                sink.on_end(msgs[i], result.as_ref().copied());
                results[i] = Some(result);
                left -= 1;
                (left == 0).then_some(Ok(()))
            })?;
            self.draining = false;
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Err(Error::Closed)))
            .collect())
    }

    /// `DELE` for every message in `msgs`, pipelined like
    /// [`Connection::retr_many`]. Returns one result per message, in order;
    /// an outer `Err` ended the connection.
    pub fn dele_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<()>>> {
        self.drain()?;
        let submitted: Vec<Result<Handle>> = msgs
            .iter()
            .map(|&msg| self.submit(Command::Dele(msg)))
            .collect();
        let mut results = Vec::with_capacity(msgs.len());
        for handle in submitted {
            let result = match handle {
                Ok(handle) => match self.wait(handle) {
                    Ok(_) => Ok(()),
                    Err(error) if self.poisoned => return Err(error),
                    Err(error) => Err(error),
                },
                Err(error) => Err(error),
            };
            results.push(result);
        }
        Ok(results)
    }
}

impl<S: Read + Write> Connection<MaybeTls<S>> {
    /// `STLS` (RFC 2595): upgrades a plaintext session to TLS in place,
    /// verifying that the server's certificate is valid for `server_name`.
    /// A `-ERR` is [`Error::Server`] and leaves the plaintext session usable;
    /// a TLS failure ends it. Anything the server sends after its `+OK` before
    /// the handshake is refused ([`ProtocolError::DataAfterStls`]).
    ///
    /// The handshake runs under the stream's current time limits.
    pub fn stls(&mut self, server_name: &str) -> Result<()> {
        self.stls_with(server_name, &mut |_, _| Ok(()))
    }

    pub(crate) fn stls_with(
        &mut self,
        server_name: &str,
        hook: &mut dyn FnMut(&S, bool) -> io::Result<()>,
    ) -> Result<()> {
        let config = self.options.tls.client_config()?;
        let name = pop3_transport::parse_server_name(server_name)?;
        self.drain()?;
        let handle = self.submit(Command::Stls)?;
        self.drive(usize::MAX, Wait::Block, |step| match step {
            Step::StartTls => Some(Ok(())),
            Step::Event(Event::Ok { handle: h, .. }) if h == handle => None,
            Step::Event(event) => outcome(handle, event).map(|r| r.map(drop)),
        })?
        .ok_or(Error::Closed)?;
        if let Err(error) = self.stream.start_tls(config, name, hook) {
            self.poisoned = true;
            return Err(error);
        }
        if let Err(error) = self.client.tls_established() {
            self.poisoned = true;
            return Err(Error::Usage(error));
        }
        // The core asks for the capabilities again; read the answer now so
        // that `capabilities()` is up to date.
        self.drive(usize::MAX, Wait::UntilIdle, |_| None::<Result<()>>)?;
        Ok(())
    }
}

impl Connection<MaybeTls<std::net::TcpStream>> {
    /// Changes the read and write time limits of the socket (the connect and
    /// handshake limits only matter while connecting).
    pub fn set_timeouts(&mut self, timeouts: Timeouts) -> Result<()> {
        if let Some(socket) = self.stream.get_ref() {
            socket.set_read_timeout(timeouts.read).map_err(Error::Io)?;
            socket
                .set_write_timeout(timeouts.write)
                .map_err(Error::Io)?;
        }
        self.options.timeouts = timeouts;
        Ok(())
    }
}

/// Receives the messages of [`Connection::retr_many`] as they arrive.
///
/// Any `FnMut(MsgNum, &[u8])` closure is a sink that ignores the ends.
pub trait MessageSink {
    /// The next piece of message `msg` (dot-unstuffed, line endings as sent).
    fn on_chunk(&mut self, msg: MsgNum, chunk: &[u8]);

    /// Message `msg` is complete (`Ok` with its size), or failed: then the
    /// chunks already given for it must be discarded.
    fn on_end(&mut self, msg: MsgNum, result: Result<u64, &Error>) {
        let _ = (msg, result);
    }
}

impl<F: FnMut(MsgNum, &[u8])> MessageSink for F {
    fn on_chunk(&mut self, msg: MsgNum, chunk: &[u8]) {
        self(msg, chunk)
    }
}

/// A message being received, from [`Connection::retr`] or [`Connection::top`].
/// Read it with [`Read`]; it ends (`Ok(0)`) at the end of the message.
///
/// Each `read` hands over at most `buf.len()` bytes straight from the core's
/// receive buffer, so a small buffer works and costs no extra copy.
///
/// Dropping the reader before the end is allowed: the connection stays
/// usable, and the next call on it first reads and discards the rest of the
/// message. Errors come back as [`io::Error`]s that carry the [`Error`];
/// `Error::from(io_error)` gets it back (for example [`Error::Protocol`] when
/// the reply was unusable: then discard the bytes already read).
#[derive(Debug)]
pub struct MessageReader<'a, S: Read + Write> {
    connection: &'a mut Connection<S>,
    handle: Handle,
    msg: MsgNum,
    done: bool,
}

impl<S: Read + Write> MessageReader<'_, S> {
    /// The message being read.
    pub fn msg(&self) -> MsgNum {
        self.msg
    }

    /// Every byte of the message has been read (or reading it failed).
    pub fn is_finished(&self) -> bool {
        self.done
    }

    /// Reads the rest of the message into `out`; returns the number of bytes.
    pub fn read_to_writer(&mut self, out: &mut impl Write) -> Result<u64> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = self.read_message(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            out.write_all(&buf[..n]).map_err(Error::Io)?;
            total += n as u64;
        }
    }

    /// Like [`Read::read`], with this crate's error type.
    pub fn read_message(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let handle = self.handle;
        let room = buf.len();
        let mut ended = false;
        let result = self.connection.drive(room, Wait::Block, |step| match step {
            Step::Event(Event::Body { handle: h, data }) if h == handle => {
                // `drive` asks the core for at most `room` octets, so it fits.
                let n = data.len().min(room);
                buf[..n].copy_from_slice(&data[..n]);
                Some(Ok(n))
            }
            Step::Event(Event::Ok {
                handle: h,
                reply: Reply::BodyEnd,
            }) if h == handle => {
                ended = true;
                Some(Ok(0))
            }
            Step::Event(event) => outcome(handle, event).map(|r| {
                ended = true;
                r.map(|_| 0)
            }),
            Step::StartTls => None,
        });
        if ended {
            self.done = true;
            self.connection.draining = false;
        }
        match result {
            Ok(n) => Ok(n.unwrap_or(0)),
            Err(error) => {
                self.done = true;
                Err(error)
            }
        }
    }
}

impl<S: Read + Write> Read for MessageReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_message(buf).map_err(io::Error::from)
    }
}
