//! The way in: the greeting, status lines, listings and message bodies, each
//! read from the receive buffer and turned into an event for the command in
//! flight.

use alloc::boxed::Box;
use alloc::vec::Vec;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::pipeline::Expect;
use super::submit::Projection;
use super::{Client, Event, Handle, Reply, State};
use crate::command;
use crate::framing::{BodyDecoder, BodyRead, LineRead, Rx};
use crate::parse::{self, Status};
use crate::sasl::{SaslError, TokenRefusal};
use crate::types::{
    Capabilities, Capability, Greeting, Language, ListEntry, ServerError, UidlEntry,
};
use crate::{ProtocolError, Text, UsageError};

/// A multi-line listing being read.
pub(super) enum Items {
    List(Vec<ListEntry>),
    Uidl(Vec<UidlEntry>),
    Capa(Vec<Capability>),
    Languages(Vec<Language>),
    /// The +OK line was too long: the listing is only skipped.
    Skip,
}

/// Where the reply to the oldest command in flight stands.
pub(super) enum Reading {
    Status,
    Listing {
        items: Items,
        lines: usize,
        /// The octets of the lines so far (`Limits::max_listing_bytes`).
        bytes: usize,
        error: Option<ProtocolError>,
    },
    Body {
        decoder: BodyDecoder,
        error: Option<ProtocolError>,
    },
}

/// One step of reading input.
pub(super) enum Step {
    Event(Event<'static>),
    Body(Handle, core::ops::Range<usize>),
    Progress,
    Idle,
}

impl Client {
    /// Nothing more can be read now: wait, or fail if the server hung up early.
    pub(super) fn pending(&mut self) -> Result<Step, ProtocolError> {
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

    pub(super) fn step(&mut self, max_chunk: usize) -> Result<Step, ProtocolError> {
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

    pub(super) fn read_greeting(&mut self) -> Result<Step, ProtocolError> {
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
        self.status_line = Some(Text::sanitize(line));
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

    pub(super) fn read_status(&mut self) -> Result<Step, ProtocolError> {
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
        self.status_line = Some(Text::sanitize(line));
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
    pub(super) fn status_too_long(
        &mut self,
        expect: Expect,
        prefix: &[u8],
    ) -> Result<Step, ProtocolError> {
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
                        bytes: 0,
                        error: Some(error),
                    }
                };
                Ok(Step::Progress)
            }
            Some(_) => Ok(self.complete_failed(error)),
            None => Err(error),
        }
    }

    pub(super) fn complete(&mut self, event: Event<'static>) -> Step {
        self.retire_front();
        Step::Event(event)
    }

    /// The reply to the oldest command in flight has been read in full.
    pub(super) fn retire_front(&mut self) {
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
    pub(super) fn check_unsolicited(&mut self) {
        if self.in_flight.is_empty() && !self.rx.is_empty() && self.state != State::Closed {
            self.fail();
            self.fatal = Some(ProtocolError::UnsolicitedData);
        }
    }

    pub(super) fn front_handle(&self) -> Handle {
        // Only called while a reply is being read, so a command is in flight.
        self.in_flight.front().map_or(
            Handle {
                client: self.id,
                seq: 0,
            },
            |f| f.handle,
        )
    }

    pub(super) fn complete_ok(&mut self, reply: Reply) -> Step {
        let handle = self.front_handle();
        self.complete(Event::Ok { handle, reply })
    }

    pub(super) fn complete_failed(&mut self, error: ProtocolError) -> Step {
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

    pub(super) fn on_ok(&mut self, expect: Expect, text: Vec<u8>) -> Result<Step, ProtocolError> {
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
                    bytes: 0,
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

    pub(super) fn authenticated(&mut self, text: &[u8]) -> Step {
        self.state = State::Transaction;
        self.capabilities = None;
        // A server may offer more after login (RFC 2449 section 5): ask again,
        // before anything queued behind the login goes out.
        self.capa = self.capa.logged_in();
        if self.capa.ask_after_login() {
            self.queue_internal_capa();
        }
        self.complete_ok(Reply::Authenticated(Text::sanitize(text)))
    }

    pub(super) fn on_err(&mut self, mut error: ServerError) -> Result<Step, ProtocolError> {
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
        error.during_login = matches!(expect, Expect::User | Expect::Login | Expect::Auth);
        if matches!(expect, Expect::Capa { .. }) {
            self.capa = self.capa.refused();
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
    pub(super) fn cancel_queue(&mut self) {
        self.cancel_all(UsageError::Cancelled);
        self.projection = Projection {
            state: self.state,
            encrypted: self.encrypted,
            tls_queued: false,
            user_given: false,
        };
    }

    /// Drops every queued command, telling the caller about its own ones.
    pub(super) fn cancel_all(&mut self, reason: UsageError) {
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

    pub(super) fn on_challenge(&mut self, text: &[u8]) -> Result<Step, ProtocolError> {
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
                self.tx.bytes.extend_from_slice(command::SASL_CANCEL);
                if self.config.trace {
                    self.trace_sent(b"*", usize::MAX);
                }
            }
        }
        Ok(Step::Progress)
    }

    pub(super) fn read_listing(&mut self) -> Result<Step, ProtocolError> {
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
            bytes,
            error,
        } = &mut self.reading
        else {
            return Ok(Step::Progress);
        };
        *lines += 1;
        *bytes = bytes.saturating_add(line.len());
        let max = if matches!(items, Items::Capa(_)) {
            limits.max_capa_lines
        } else {
            limits.max_listing_lines
        };
        let over = if *lines > max {
            Some(ProtocolError::TooManyLines { limit: max })
        } else if *bytes > limits.max_listing_bytes {
            Some(ProtocolError::ListingTooLarge {
                limit: limits.max_listing_bytes,
            })
        } else {
            None
        };
        if let Some(over) = over {
            // The reply has failed: what was kept of it goes at once, and
            // the rest is only read to its end.
            *items = Items::Skip;
            error.get_or_insert(over);
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

    pub(super) fn finish_listing(&mut self) -> Step {
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
                self.capa = self.capa.answered();
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
    pub(super) fn check_numbers(
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

    pub(super) fn read_body(&mut self, max_chunk: usize) -> Result<Step, ProtocolError> {
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
