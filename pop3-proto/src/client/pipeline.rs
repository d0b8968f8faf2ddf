//! The way out: submitted commands queue, go on the wire as far as the
//! pipelining window allows, and wait in flight for their replies.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::{Client, Event, Handle, State, MAX_WRITE_AHEAD};
use crate::command::{self, Command, Shown};
use crate::sasl::{Mechanism, SaslError, TokenRefusal};
use crate::Secret;

/// What a sent command's reply looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
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
    pub(super) fn of(command: &Command) -> Expect {
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

    /// Nothing is pipelined across these: the outcome of a login or STLS
    /// changes what may follow. QUIT waits until every earlier reply has
    /// arrived: a server may end the session the moment it reads QUIT and
    /// drop the part of earlier replies its socket has not yet taken
    /// (Dovecot 2.3 does so: its QUIT flushes once without waiting, then
    /// closes), which truncated the last message of a pipelined fetch when
    /// the reader was slow.
    fn is_barrier(self) -> bool {
        matches!(
            self,
            Expect::Login | Expect::Auth | Expect::Stls | Expect::Quit
        )
    }

    pub(super) fn is_multiline(self) -> bool {
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
pub(super) struct Queued {
    pub(super) handle: Handle,
    pub(super) command: Command,
    pub(super) expect: Expect,
    /// AUTH only: the mechanism's initial response, computed at submission.
    pub(super) initial: Option<Secret<Vec<u8>>>,
}

/// A SASL exchange in progress.
pub(super) struct AuthExchange {
    pub(super) mechanism: Box<dyn Mechanism>,
    /// An initial response too long for the AUTH line (RFC 5034: 255 octets),
    /// sent instead in answer to the server's first, empty challenge.
    pub(super) deferred: Option<Secret<Vec<u8>>>,
    /// Set when the client cancelled the exchange with `*`.
    pub(super) cancelled: Option<SaslError>,
    /// An OAuth mechanism's token was refused with a JSON report; the `-ERR`
    /// that follows carries it.
    pub(super) refusal: Option<TokenRefusal>,
}

/// A sent command waiting for its reply.
pub(super) struct InFlight {
    pub(super) handle: Handle,
    pub(super) expect: Expect,
    pub(super) auth: Option<AuthExchange>,
    /// Length of the command line sent.
    pub(super) bytes: usize,
}

/// The bytes [`Client::poll`] hands out to be written. They stay valid
/// until the next call on the client, which clears them — wiping them first
/// if they carried a secret.
#[derive(Default)]
pub(super) struct SendBuffer {
    pub(super) bytes: Vec<u8>,
    /// Handed to the caller by the last poll: cleared on the next call.
    handed: bool,
    /// Holds a secret: wiped when cleared.
    pub(super) secret: bool,
}

impl SendBuffer {
    /// Clears what the last poll handed out.
    pub(super) fn release(&mut self) {
        if self.handed {
            if self.secret {
                self.bytes.iter_mut().for_each(|b| *b = 0);
                self.secret = false;
            }
            self.bytes.clear();
            self.handed = false;
        }
    }

    /// The bytes to write now; cleared on the next call.
    pub(super) fn hand_out(&mut self) -> &[u8] {
        self.handed = true;
        &self.bytes
    }

    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl Client {
    /// Moves queued commands onto the wire as far as the window allows: one at a
    /// time without PIPELINING, and never past a STLS or login command.
    pub(super) fn fill_window(&mut self) {
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

    pub(super) fn release_tx(&mut self) {
        self.tx.release();
    }

    pub(super) fn send(&mut self, queued: Queued) {
        self.release_tx();
        let Queued {
            handle,
            command,
            expect,
            initial,
        } = queued;
        let line_start = self.tx.bytes.len();
        let (shown, auth) = if let Command::Auth(mechanism) = command {
            let (shown, deferred) =
                command::encode_auth(&mut self.tx.bytes, mechanism.name(), initial);
            let exchange = AuthExchange {
                mechanism,
                deferred,
                cancelled: None,
                refusal: None,
            };
            (shown, Some(exchange))
        } else {
            let timestamp = self
                .greeting
                .as_ref()
                .and_then(|g| g.apop_timestamp.as_deref());
            match command.encode(&mut self.tx.bytes, timestamp) {
                Ok(shown) => (shown, None),
                Err(reason) => {
                    self.events.push_back(Event::Cancelled { handle, reason });
                    return;
                }
            }
        };
        if matches!(expect, Expect::Capa { .. }) {
            self.capa = self.capa.asked();
        }
        let shown_words = match shown {
            Shown::All => usize::MAX,
            Shown::Words(words) => {
                self.tx.secret = true;
                words
            }
        };
        let line_end = self.tx.bytes.len();
        if self.config.trace && line_end > line_start {
            // A copy of a line that may carry a password: wiped once traced.
            let line = Secret::new(self.tx.bytes[line_start..line_end - 2].to_vec());
            self.trace_sent(line.expose(), shown_words);
        }
        let bytes = line_end - line_start;
        self.in_flight_bytes += bytes;
        self.in_flight.push_back(InFlight {
            handle,
            expect,
            auth,
            bytes,
        });
    }

    /// Sends one SASL response line.
    pub(super) fn send_sasl_line(&mut self, data: &[u8]) {
        self.release_tx();
        command::encode_sasl_response(&mut self.tx.bytes, data);
        self.tx.secret = true;
        if self.config.trace {
            self.trace_sent(b"", 0);
        }
    }
}
