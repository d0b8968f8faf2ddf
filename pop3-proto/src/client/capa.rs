//! When the core asks `CAPA` on its own (see [`Event::Capabilities`]).

use super::pipeline::{Expect, Queued};
#[cfg(doc)]
use super::Event;
use super::{Client, State};
use crate::command::Command;

/// What the session knows of the server's `CAPA`, which decides when the
/// core asks on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CapaState {
    /// Not asked since the session state began (greeting or login), and
    /// never answered.
    NotAsked,
    /// Sent or queued in this state; neither answered nor refused so far.
    Asked,
    /// The server answered it, so it is worth asking again after login (a
    /// server may offer more then: RFC 2449 section 5).
    Answered,
    /// The server refused it and never answered it: it does not implement
    /// RFC 2449, so the core does not ask before a burst or an operation.
    Refused,
    /// The server answered it once and refused it once: not asked before a
    /// burst or an operation, but still after login.
    AnsweredAndRefused,
}

impl CapaState {
    /// A `CAPA` was sent or queued.
    pub(super) fn asked(self) -> CapaState {
        match self {
            CapaState::NotAsked => CapaState::Asked,
            other => other,
        }
    }

    /// The server answered a `CAPA`.
    pub(super) fn answered(self) -> CapaState {
        match self {
            CapaState::Refused | CapaState::AnsweredAndRefused => CapaState::AnsweredAndRefused,
            _ => CapaState::Answered,
        }
    }

    /// The server refused a `CAPA`.
    pub(super) fn refused(self) -> CapaState {
        match self {
            CapaState::Answered | CapaState::AnsweredAndRefused => CapaState::AnsweredAndRefused,
            _ => CapaState::Refused,
        }
    }

    /// Login begins a new state: a `CAPA` asked before it counts no more.
    pub(super) fn logged_in(self) -> CapaState {
        match self {
            CapaState::Asked => CapaState::NotAsked,
            other => other,
        }
    }

    /// Ask again right after login: the server answered before.
    pub(super) fn ask_after_login(self) -> bool {
        matches!(self, CapaState::Answered | CapaState::AnsweredAndRefused)
    }

    /// An operation that needs the capabilities may ask for them.
    pub(super) fn may_ask(self) -> bool {
        !matches!(self, CapaState::Refused | CapaState::AnsweredAndRefused)
    }
}

impl Client {
    pub(super) fn queue_internal_capa(&mut self) {
        self.capa = self.capa.asked();
        let handle = self.new_handle();
        self.queue.push_front(Queued {
            handle,
            command: Command::Capa,
            expect: Expect::Capa { internal: true },
            initial: None,
        });
    }

    /// Several commands are waiting because nothing says the server
    /// pipelines: after login, ask once (RFC 2449), so that the burst can go
    /// out together. (One waiting command is not a burst: it is not worth a
    /// round trip.)
    pub(super) fn learn_pipelining(&mut self) {
        if self.state == State::Transaction
            && self.capabilities.is_none()
            && self.capa == CapaState::NotAsked
            && self.queue.len() >= 2
        {
            self.queue_internal_capa();
        }
    }
}
