//! Submission: every command and operation is checked against the state the
//! session will be in once everything before it has succeeded, then queued.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::operation::{self, AuthMethod, Credentials, Operation};
use super::pipeline::{Expect, Queued};
#[cfg(doc)]
use super::{Action, Config, Event, Reply};
use super::{Client, Handle, State};
use crate::command::{self, check_argument, check_raw_verb, Command};
use crate::sasl::Mechanism;
use crate::{MsgNum, Secret, UsageError};

/// Submitted behind a composite operation that has not completed: waits,
/// because it assumes the operation succeeds.
pub(super) enum Backlog {
    Command(Queued),
    Operation(Operation),
}

/// What the session will look like once everything queued has succeeded;
/// commands are checked against this when submitted.
#[derive(Debug, Clone, Copy)]
pub(super) struct Projection {
    pub(super) state: State,
    pub(super) encrypted: bool,
    pub(super) tls_queued: bool,
    pub(super) user_given: bool,
}

impl Client {
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
    pub(super) fn enqueue(&mut self, queued: Queued) {
        if self.operation.is_some() || !self.backlog.is_empty() {
            self.backlog.push_back(Backlog::Command(queued));
            return;
        }
        self.queue.push_back(queued);
        self.fill_window();
        self.learn_pipelining();
    }

    /// Starts a composite operation, or holds it back behind another.
    pub(super) fn enqueue_operation(&mut self, operation: Operation) {
        if self.operation.is_some() || !self.backlog.is_empty() {
            self.backlog.push_back(Backlog::Operation(operation));
        } else {
            self.operation = Some(operation);
        }
    }

    /// The operation in progress has ended: what waited behind it moves on, up
    /// to the next operation.
    pub(super) fn release_backlog(&mut self) {
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

    pub(super) fn submit_many(
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
        // A running login or STLS goes on (the session must stay in step),
        // but its completion is not reported either.
        if self.is_pending(handle) && !self.discarded.contains(&handle) {
            self.discarded.push(handle);
        }
    }

    /// The handle whose [`Handle::id`] is `id`, if this client gave it out
    /// and its command or operation has neither completed nor been
    /// discarded: how a binding that names commands by integer finds the
    /// handle again.
    pub fn pending_handle(&self, id: u64) -> Option<Handle> {
        let handle = Handle::from_id(id);
        let pending = self.is_pending(handle) && !self.discarded.contains(&handle);
        (handle.client == self.id && pending).then_some(handle)
    }

    /// The command is queued, in flight, or waits behind an operation, or
    /// it is the running operation, or its completion has happened but is
    /// not reported yet (a caller who has not seen it may still discard it).
    fn is_pending(&self, handle: Handle) -> bool {
        let unreported = |e| operation::completed_handle(e) == Some(handle);
        self.operation.as_ref().is_some_and(|o| o.handle == handle)
            || self.deferred.iter().chain(&self.events).any(unreported)
            || self.queue.iter().any(|q| q.handle == handle)
            || self.in_flight.iter().any(|f| f.handle == handle)
            || self.backlog.iter().any(|b| match b {
                Backlog::Command(q) => q.handle == handle,
                Backlog::Operation(o) => o.handle == handle,
            })
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

    pub(super) fn new_handle(&mut self) -> Handle {
        // Sequence 0 is never used, so that no id is 0 (ids may wrap only
        // after 2^32 commands).
        self.next_seq = self.next_seq.checked_add(1).unwrap_or(1);
        Handle {
            client: self.id,
            seq: self.next_seq,
        }
    }

    pub(super) fn wrong_state(command: &Command, reason: &'static str) -> UsageError {
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
    pub(super) fn check(&self, command: &Command) -> Result<(), UsageError> {
        let p = self.projection;
        // Without state checks the server decides (Config::state_checks).
        let lenient = !self.config.state_checks;
        let authorization = lenient || p.state == State::Authorization;
        let transaction = lenient || p.state == State::Transaction;
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
                need(lenient || p.user_given, "needs an accepted USER first")?;
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
                // Kept whatever Config::state_checks says: TLS is not
                // negotiated mid-session.
                need(p.state == State::Authorization, "only before login")?;
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
    pub(super) fn project(&mut self, command: &Command) {
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

    pub(super) fn submit_auth(
        &mut self,
        mut mechanism: Box<dyn Mechanism>,
    ) -> Result<Handle, UsageError> {
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
}
