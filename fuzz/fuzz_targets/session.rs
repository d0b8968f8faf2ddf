//! A whole session driven by arbitrary operations: submit arbitrary commands
//! (arbitrary strings, numbers and SASL mechanisms), receive arbitrary bytes
//! (copied, or read into `input_buffer`), EOF, TLS established, and polling,
//! under varied configurations (encryption, plaintext credentials, small
//! limits, pipeline window 1..4, body line limit, small read size).
//!
//! Asserted: no panic; every `Action::Send` is whole CRLF lines without NUL or
//! bare CR/LF (no caller string can inject a second command); each command
//! line goes out at most as often as it was submitted; USER/PASS/APOP and
//! credential-revealing AUTH lines never go out unencrypted unless allowed;
//! bytes sent stay within a bound proportional to what was submitted and
//! received; in-flight commands never exceed the pipeline window; events name
//! submitted commands, complete each at most once, carry the reply variant
//! their command expects, and bodies only for RETR/TOP/multi-line raw; a
//! refused submission changes nothing; `tls_established` succeeds exactly
//! when STLS was accepted; encryption never goes away; an `Err` from poll is
//! sticky (same error, submissions refused); `Closed` is final; after EOF the
//! client never asks for input and ends within a bounded number of polls.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use pop3_fuzz::{refused_after_fatal, wire_lines, FuzzCommand, FuzzMech, Op, SessionInput};
use pop3_proto::{Action, Client, Event, Handle, ProtocolError, Reply, State, UsageError};

struct Info {
    command: FuzzCommand,
    done: bool,
    /// `BodyStart` was seen: body chunks may follow.
    started: bool,
}

#[derive(Debug)]
enum Got {
    NeedInput,
    Closed,
    StartTls,
    Send(Vec<u8>),
    Event { handle: Option<Handle>, kind: Kind },
    Fatal(ProtocolError),
}

#[derive(Debug)]
enum Kind {
    Greeting,
    Capabilities,
    Ok(Reply),
    Err,
    Failed(ProtocolError),
    Cancelled(UsageError),
    BodyStart,
    Body(usize),
}

fn poll_owned(client: &mut Client) -> Got {
    match client.poll() {
        Ok(Action::NeedInput) => Got::NeedInput,
        Ok(Action::Closed) => Got::Closed,
        Ok(Action::StartTls) => Got::StartTls,
        Ok(Action::Send(b)) => Got::Send(b.to_vec()),
        Ok(Action::Event(e)) => {
            let (handle, kind) = match e {
                Event::Greeting(_) => (None, Kind::Greeting),
                Event::Capabilities(_) => (None, Kind::Capabilities),
                Event::Ok { handle, reply } => (Some(handle), Kind::Ok(reply)),
                Event::Err { handle, .. } => (Some(handle), Kind::Err),
                Event::Failed { handle, error } => (Some(handle), Kind::Failed(error)),
                Event::Cancelled { handle, reason } => (Some(handle), Kind::Cancelled(reason)),
                Event::BodyStart { handle } => (Some(handle), Kind::BodyStart),
                Event::Body { handle, data } => (Some(handle), Kind::Body(data.len())),
                other => panic!("unknown event {other:?}"),
            };
            Got::Event { handle, kind }
        }
        Err(e) => Got::Fatal(e),
    }
}

const EXPOSING_MECHS: [&str; 4] = ["PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"];

struct Driver {
    client: Client,
    allow_plaintext: bool,
    window: usize,
    handles: HashMap<Handle, Info>,
    /// Accepted submissions per first word of their line.
    submitted: HashMap<String, usize>,
    sent_lines: HashMap<String, usize>,
    /// Names of custom mechanisms that claim not to reveal credentials.
    quiet_custom_names: Vec<String>,
    submits: usize,
    budget: usize,
    received: usize,
    sent: usize,
    tls_ok: usize,
    logins: usize,
    greeted: bool,
    tls_pending: bool,
    auth_in_flight: bool,
    was_encrypted: bool,
    eof: bool,
    closed: bool,
    fatal: Option<ProtocolError>,
}

impl Driver {
    fn check_reply(&self, command: &FuzzCommand, reply: &Reply) {
        let limits = self.client.config().limits;
        let ok = match (command, reply) {
            (FuzzCommand::User(_), Reply::Ok(_)) => true,
            (
                FuzzCommand::Pass(_) | FuzzCommand::Apop { .. } | FuzzCommand::Auth(_),
                Reply::Authenticated(_),
            ) => true,
            (FuzzCommand::Stat, Reply::Stat(_)) => true,
            (FuzzCommand::List(None), Reply::List(v)) => v.len() <= limits.max_listing_lines,
            (FuzzCommand::List(Some(_)), Reply::ListOne(_)) => true,
            (FuzzCommand::Uidl(None), Reply::Uidl(v)) => v.len() <= limits.max_listing_lines,
            (FuzzCommand::Uidl(Some(_)), Reply::UidlOne(_)) => true,
            (FuzzCommand::Capa, Reply::Capabilities(c)) => c.list.len() <= limits.max_capa_lines,
            (FuzzCommand::Lang(None), Reply::Languages(v)) => v.len() <= limits.max_listing_lines,
            (FuzzCommand::Stls, Reply::StartTls) => true,
            (c, Reply::BodyEnd) => c.has_body(),
            (
                FuzzCommand::Lang(Some(_))
                | FuzzCommand::Quit
                | FuzzCommand::Noop
                | FuzzCommand::Rset
                | FuzzCommand::Dele(_)
                | FuzzCommand::Utf8
                | FuzzCommand::Raw {
                    multiline: false, ..
                },
                Reply::Ok(_),
            ) => true,
            _ => false,
        };
        assert!(ok, "{command:?} answered with {reply:?}");
    }

    fn on_send(&mut self, bytes: &[u8]) {
        self.sent += bytes.len();
        let encrypted = self.client.is_encrypted();
        for line in wire_lines(bytes) {
            if self.auth_in_flight {
                // A SASL response: base64, empty, or "*" to cancel.
                assert!(
                    line == b"*"
                        || line
                            .iter()
                            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b)),
                    "SASL response line {:?}",
                    String::from_utf8_lossy(line)
                );
                continue;
            }
            let text = String::from_utf8_lossy(line);
            let mut words = text.split(' ');
            let verb = words.next().unwrap_or("").to_string();
            let n = self.sent_lines.entry(verb.clone()).or_insert(0);
            *n += 1;
            let mut allowed = self.submitted.get(&verb).copied().unwrap_or(0);
            if verb == "CAPA" {
                // Re-read by the client itself after TLS and after login.
                allowed += self.tls_ok + self.logins;
            }
            assert!(
                *n <= allowed,
                "{verb:?} sent {n} times, submitted {allowed}: {text:?}"
            );
            let exposing = match verb.as_str() {
                "USER" | "PASS" | "APOP" => true,
                "AUTH" => {
                    self.auth_in_flight = true;
                    let name = words.next().unwrap_or("").to_string();
                    EXPOSING_MECHS.contains(&name.as_str())
                        && !self.quiet_custom_names.contains(&name)
                }
                _ => false,
            };
            if exposing {
                assert!(
                    encrypted || self.allow_plaintext,
                    "credentials sent unencrypted: {text:?}"
                );
            }
        }
        let bound = self.budget + 2 * self.received + 6 * (self.tls_ok + self.logins + 1);
        assert!(
            self.sent <= bound,
            "sent {} bytes, bound {bound}",
            self.sent
        );
    }

    fn on_event(&mut self, handle: Option<Handle>, kind: Kind) {
        if let Kind::Greeting = kind {
            assert!(!self.greeted, "second greeting");
            self.greeted = true;
            return;
        }
        let Some(handle) = handle else { return };
        let info = self
            .handles
            .get_mut(&handle)
            .unwrap_or_else(|| panic!("event for unknown {handle:?}: {kind:?}"));
        assert!(
            !info.done,
            "event after completion of {:?}: {kind:?}",
            info.command
        );
        let command = info.command.clone();
        match kind {
            Kind::BodyStart => {
                assert!(!info.started, "second BodyStart for {:?}", info.command);
                info.started = true;
            }
            Kind::Body(_) => assert!(info.started, "body before BodyStart for {:?}", info.command),
            _ => info.done = true,
        }
        if matches!(command, FuzzCommand::Auth(_)) && !matches!(kind, Kind::Cancelled(_)) {
            self.auth_in_flight = false;
        }
        match kind {
            Kind::BodyStart => assert!(command.has_body(), "body start for {command:?}"),
            Kind::Body(n) => {
                assert!(n > 0, "empty Body event");
                assert!(command.has_body(), "body for {command:?}");
            }
            Kind::Ok(reply) => {
                self.check_reply(&command, &reply);
                match reply {
                    Reply::Authenticated(_) => {
                        // (Unless bytes nobody asked for already made the session fail.)
                        if self.client.error().is_none() {
                            assert_eq!(self.client.state(), State::Transaction);
                        }
                        self.logins += 1;
                    }
                    Reply::StartTls => {
                        assert!(!self.client.is_encrypted());
                        self.tls_pending = true;
                    }
                    _ => {}
                }
                if matches!(command, FuzzCommand::Quit) {
                    assert_eq!(self.client.state(), State::Closed);
                }
            }
            Kind::Failed(e) => assert!(
                matches!(
                    e,
                    ProtocolError::LineTooLong { .. }
                        | ProtocolError::BodyLineTooLong { .. }
                        | ProtocolError::TooManyLines { .. }
                        | ProtocolError::Malformed(_)
                        | ProtocolError::Sasl(_)
                ),
                "Failed with {e:?}"
            ),
            Kind::Cancelled(reason) => assert!(
                matches!(
                    reason,
                    UsageError::Cancelled | UsageError::Closed | UsageError::NoApopTimestamp
                ),
                "Cancelled with {reason:?}"
            ),
            Kind::Err | Kind::Greeting | Kind::Capabilities => {}
        }
    }

    /// Polls at most `n` times; returns false if the client stopped (needs
    /// input, TLS, is closed or failed).
    fn poll_many(&mut self, n: usize) {
        for _ in 0..n {
            if !self.poll_once() {
                return;
            }
        }
    }

    /// One poll, checked. Returns whether polling again makes progress.
    fn poll_once(&mut self) -> bool {
        let got = poll_owned(&mut self.client);
        if let Some(e) = &self.fatal {
            match &got {
                Got::Fatal(again) => assert_eq!(again, e, "fatal error changed"),
                other => panic!("after {e:?}, poll gave {other:?}"),
            }
            return false;
        }
        if self.closed {
            assert!(
                matches!(got, Got::Closed),
                "after Closed, poll gave {got:?}"
            );
            return false;
        }
        let keep_going = match got {
            Got::NeedInput => {
                assert!(!self.eof, "NeedInput after EOF");
                false
            }
            Got::Closed => {
                assert_eq!(self.client.state(), State::Closed);
                self.closed = true;
                false
            }
            Got::StartTls => {
                assert!(self.tls_pending, "StartTls without an accepted STLS");
                false
            }
            Got::Send(bytes) => {
                self.on_send(&bytes);
                true
            }
            Got::Event { handle, kind } => {
                self.on_event(handle, kind);
                true
            }
            Got::Fatal(e) => {
                assert_eq!(self.client.error(), Some(&e));
                assert_eq!(
                    self.client.state(),
                    State::Closed,
                    "state after the fatal error {e:?}"
                );
                assert!(
                    matches!(poll_owned(&mut self.client), Got::Fatal(ref again) if *again == e),
                    "error not sticky"
                );
                let refused = self
                    .client
                    .submit(pop3_proto::Command::Noop)
                    .expect_err("submission accepted after a fatal error");
                assert!(
                    refused_after_fatal(&refused, &e),
                    "submit after {e:?}: {refused:?}"
                );
                self.fatal = Some(e);
                self.auth_in_flight = false;
                false
            }
        };
        assert!(
            self.client.in_flight() <= self.window,
            "{} commands in flight, window {}",
            self.client.in_flight(),
            self.window
        );
        if self.was_encrypted {
            assert!(self.client.is_encrypted(), "encryption went away");
        }
        self.was_encrypted = self.client.is_encrypted();
        keep_going
    }

    fn submit(&mut self, command: FuzzCommand) {
        let Some(built) = command.build() else { return };
        let (queued, in_flight) = (self.client.queued(), self.client.in_flight());
        match self.client.submit(built) {
            Ok(handle) => {
                assert!(
                    self.fatal.is_none(),
                    "submission accepted after a fatal error"
                );
                assert!(!self.handles.contains_key(&handle), "handle reused");
                *self.submitted.entry(command.verb()).or_insert(0) += 1;
                self.submits += 1;
                self.budget += command.send_budget();
                if let FuzzCommand::Auth(FuzzMech::Custom {
                    name,
                    exposes: false,
                    ..
                }) = &command
                {
                    self.quiet_custom_names.push(name.0.clone());
                }
                self.handles.insert(
                    handle,
                    Info {
                        command,
                        done: false,
                        started: false,
                    },
                );
            }
            Err(e) => {
                if let Some(fatal) = &self.fatal {
                    assert!(
                        refused_after_fatal(&e, fatal),
                        "submit after {fatal:?}: {e:?}"
                    );
                }
                assert_eq!(
                    self.client.queued(),
                    queued,
                    "refused submission was queued"
                );
                assert_eq!(
                    self.client.in_flight(),
                    in_flight,
                    "refused submission was sent"
                );
            }
        }
    }
}

fuzz_target!(|input: SessionInput| {
    let config = input.config.config();
    let mut d = Driver {
        client: Client::new(config),
        allow_plaintext: config.allow_plaintext_credentials,
        window: config.pipeline_window,
        handles: HashMap::new(),
        submitted: HashMap::new(),
        sent_lines: HashMap::new(),
        quiet_custom_names: Vec::new(),
        submits: 0,
        budget: 0,
        received: 0,
        sent: 0,
        tls_ok: 0,
        logins: 0,
        greeted: false,
        tls_pending: false,
        auth_in_flight: false,
        was_encrypted: config.encrypted,
        eof: false,
        closed: false,
        fatal: None,
    };
    for op in input.ops {
        match op {
            Op::Submit(command) => d.submit(command),
            Op::Receive(bytes) => {
                d.received += bytes.0.len();
                d.client.receive(&bytes.0);
            }
            Op::ReceiveBuffered(bytes) => {
                let mut rest = &bytes.0[..];
                while !rest.is_empty() {
                    let spare = d.client.input_buffer();
                    assert!(spare.len() >= d.client.config().read_size);
                    let spare = d.client.input_buffer();
                    let n = rest.len().min(spare.len());
                    spare[..n].copy_from_slice(&rest[..n]);
                    d.client.input_written(n);
                    d.received += n;
                    rest = &rest[n..];
                }
            }
            Op::Eof => {
                d.client.receive_eof();
                d.eof = true;
            }
            Op::TlsEstablished => {
                let failed = d.client.error().is_some();
                let ok = d.client.tls_established().is_ok();
                assert_eq!(
                    ok,
                    d.tls_pending && !failed,
                    "tls_established: {ok}, STLS accepted: {}, failed: {failed}",
                    d.tls_pending
                );
                if ok {
                    d.tls_pending = false;
                    d.tls_ok += 1;
                    assert!(d.client.is_encrypted());
                }
            }
            Op::PollMany(n) => d.poll_many(usize::from(n) + 1),
        }
    }

    // The end: EOF, then the client must stop within a bounded number of polls.
    d.client.receive_eof();
    d.eof = true;
    let limit = 4 * d.received + 16 * d.submits + 256;
    for _ in 0..limit {
        if d.fatal.is_some() || d.closed {
            return;
        }
        if !d.poll_once() {
            if d.tls_pending && d.fatal.is_none() && !d.closed {
                d.client.tls_established().unwrap();
                d.tls_pending = false;
                d.tls_ok += 1;
            }
        }
    }
    assert!(
        d.fatal.is_some() || d.closed,
        "the session did not end after EOF within {limit} polls"
    );
});
