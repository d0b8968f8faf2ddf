//! When the core asks `CAPA` on its own (see [`Event::Capabilities`]).

use super::pipeline::{Expect, Queued};
#[cfg(doc)]
use super::Event;
use super::{Client, State};
use crate::command::Command;

impl Client {
    pub(super) fn queue_internal_capa(&mut self) {
        self.capa_asked = true;
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
            && !self.capa_asked
            && !self.capa_refused
            && self.queue.len() >= 2
        {
            self.queue_internal_capa();
        }
    }
}
