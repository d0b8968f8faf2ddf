//! The safe side of the boundary: a pump that turns the core's `poll()`
//! actions into what C asks for separately — a byte queue to write, and owned
//! events that stay put while C reads them.

use std::collections::VecDeque;

use pop3_proto::sasl::ChannelBinding;
use pop3_proto::{
    Action, AuthMethod, Capabilities, Capability, Client, Config, Credentials, Direction, Event,
    Handle, ListEntry, MsgNum, ProtocolError, Reply, Secret, Text, TraceLine, UidlEntry,
    UsageError,
};
use zeroize::Zeroize;

use crate::result::{
    pop3_result, usage_code, POP3_DONE, POP3_ERR_CALL_ORDER, POP3_ERR_CLOSED, POP3_ERR_INPUT_FULL,
    POP3_ERR_INVALID_ARGUMENT, POP3_ERR_PROTOCOL, POP3_ERR_RANDOM, POP3_ERR_TLS, POP3_OK,
};

/// Text handed to C: UTF-8, followed by a NUL that the length leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CText(Box<[u8]>);

impl CText {
    /// Every text C receives passes the core's one rule for server text
    /// (`Text::sanitize_str`) here, whatever produced it: the core's events
    /// already follow it, and passing them again changes nothing, but a
    /// text assembled on the way (an error's description, a capability
    /// written back as its line) can never carry a terminal escape past
    /// this point. The rule also replaces NUL, so the C string and its
    /// length agree.
    pub(crate) fn new(text: &str) -> CText {
        let safe = Text::sanitize_str(text);
        let mut bytes = Vec::with_capacity(safe.as_str().len() + 1);
        bytes.extend_from_slice(safe.as_str().as_bytes());
        bytes.push(0);
        CText(bytes.into_boxed_slice())
    }

    /// The bytes without the NUL.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0[..self.0.len() - 1]
    }

    /// The bytes with the NUL (for a C string pointer).
    pub(crate) fn with_nul(&self) -> &[u8] {
        &self.0
    }
}

/// What an `+OK` carried, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OkReply {
    Text(CText),
    Authenticated(CText),
    Stat { count: u32, size: u64 },
    List(Vec<ListEntry>),
    ListOne(ListEntry),
    Uidl(Vec<(u32, CText)>),
    UidlOne(u32, CText),
    Capabilities(Vec<CText>),
    StartTls,
    TlsEstablished,
    Other,
}

/// The bytes of a body chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyBytes {
    /// A copy, for an event queued while the core went on.
    Owned(Vec<u8>),
    /// Where the core's receive buffer holds the chunk; valid until the core
    /// is next called. Never dereferenced in Rust: only C reads it.
    Borrowed(*const u8, usize),
}

impl BodyBytes {
    pub(crate) fn ptr_len(&self) -> (*const u8, usize) {
        match self {
            BodyBytes::Owned(bytes) => (bytes.as_ptr(), bytes.len()),
            BodyBytes::Borrowed(ptr, len) => (*ptr, *len),
        }
    }
}

/// An event as C sees it, owning everything its pointers point to (except
/// a borrowed body chunk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owned {
    Greeting(CText),
    Ok {
        handle: u64,
        reply: OkReply,
    },
    Err {
        handle: u64,
        code: Option<CText>,
        text: CText,
        /// For a refused OAuth token: the refusal in words.
        refusal: Option<CText>,
        /// The server refused the credentials (the core's
        /// `ServerError::is_authentication_refusal`).
        authentication_refused: bool,
    },
    BodyStart {
        handle: u64,
    },
    Body {
        handle: u64,
        data: BodyBytes,
    },
    BodyEnd {
        handle: u64,
    },
    Failed {
        handle: u64,
        text: CText,
    },
    Cancelled {
        handle: u64,
        result: pop3_result,
        text: CText,
    },
    Capabilities(Vec<CText>),
    StartTls,
    Trace {
        sent: bool,
        line: CText,
    },
    Closed {
        result: pop3_result,
        text: CText,
    },
}

/// Bytes waiting to be written, in two parts: the block lent to C (what
/// `pending_output` handed out), and what the core queued since. The lent
/// block never moves or changes until C reports all of it written, whatever
/// other calls C makes meanwhile, so that a completion-based loop (libuv's
/// `uv_write`, io_uring, IOCP) can hand it to the kernel without a copy.
/// Every byte is wiped once reported written, and whatever is left is wiped
/// when the client is freed, since command lines may carry a password.
#[derive(Default)]
pub(crate) struct Outbox {
    /// Handed to C; `written` of its bytes are reported written (and wiped).
    lent: Option<Box<[u8]>>,
    written: usize,
    /// Queued since the lent block was handed out; lent next.
    queued: Vec<u8>,
}

impl Outbox {
    fn push(&mut self, data: &[u8]) {
        let needed = self.queued.len() + data.len();
        if needed > self.queued.capacity() {
            // Grow by hand: a plain `extend` would free the old allocation
            // with its secrets still in it.
            let mut bigger = Vec::with_capacity(needed.max(self.queued.capacity() * 2).max(256));
            bigger.extend_from_slice(&self.queued);
            self.queued.zeroize();
            self.queued = bigger;
        }
        self.queued.extend_from_slice(data);
    }

    /// The unwritten rest of the lent block, lending the queued bytes first
    /// when nothing is lent.
    pub(crate) fn pending(&mut self) -> &[u8] {
        if self.lent.is_none() && !self.queued.is_empty() {
            // `into_boxed_slice` would reallocate (and leave a copy behind)
            // when the capacity is larger than the length: copy exactly once
            // into a block of the right size, then wipe the queue.
            let block: Box<[u8]> = self.queued.as_slice().into();
            self.queued.zeroize();
            self.queued.clear();
            self.lent = Some(block);
            self.written = 0;
        }
        match &self.lent {
            Some(block) => &block[self.written..],
            None => &[],
        }
    }

    fn consume(&mut self, n: usize) -> Result<(), pop3_result> {
        let Some(block) = &mut self.lent else {
            return Err(POP3_ERR_CALL_ORDER);
        };
        let left = block.len() - self.written;
        if n > left {
            return Err(POP3_ERR_INVALID_ARGUMENT);
        }
        // Written bytes are the kernel's now: wipe them at once.
        block[self.written..self.written + n].zeroize();
        self.written += n;
        if self.written == block.len() {
            self.lent = None;
            self.written = 0;
        }
        Ok(())
    }

    /// Octets queued or lent and not yet reported written.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lent.as_ref().map_or(0, |b| b.len() - self.written) + self.queued.len()
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if let Some(block) = &mut self.lent {
            block.zeroize();
        }
        self.queued.zeroize();
    }
}

/// One C client: the core plus what the boundary needs around it.
pub(crate) struct Session {
    core: Client,
    outbox: Outbox,
    queue: VecDeque<Owned>,
    /// The event C is reading; its pointers stay valid until C's next call
    /// (a borrowed body chunk only until the core is called again).
    current: Option<Owned>,
    /// `Action::StartTls` repeats until TLS is up; C hears of it once.
    tls_reported: bool,
    /// The closing event is queued; the core has nothing more to say.
    finished: bool,
    /// The closing event was handed to C.
    closed_delivered: bool,
    /// Free space offered by `input_buffer`, until the next call.
    pub(crate) input_offer: Option<usize>,
    /// A panic happened inside a call on this session.
    pub(crate) poisoned: bool,
    /// The TLS channel binding for the logins submitted from now on.
    binding: Option<ChannelBinding>,
    /// Octets of the body chunks copied into `queue`: input taken from the
    /// core's buffer but not yet handed to C.
    queued_body_bytes: usize,
}

impl Session {
    pub(crate) fn new(config: Config) -> Session {
        Session {
            core: Client::new(config),
            outbox: Outbox::default(),
            queue: VecDeque::new(),
            current: None,
            tls_reported: false,
            finished: false,
            closed_delivered: false,
            input_offer: None,
            poisoned: false,
            binding: None,
            queued_body_bytes: 0,
        }
    }

    pub(crate) fn core(&self) -> &Client {
        &self.core
    }

    /// Runs a command submission on the core; C names the handle by its id.
    pub(crate) fn submit(
        &mut self,
        f: impl FnOnce(&mut Client) -> Result<Handle, UsageError>,
    ) -> Result<u64, pop3_result> {
        let handle = f(&mut self.core).map_err(|e| usage_code(&e))?;
        Ok(handle.id())
    }

    /// Like `submit`, for operations that return several handles.
    pub(crate) fn submit_many(
        &mut self,
        f: impl FnOnce(&mut Client) -> Result<Vec<Handle>, UsageError>,
    ) -> Result<Vec<u64>, pop3_result> {
        let handles = f(&mut self.core).map_err(|e| usage_code(&e))?;
        Ok(handles.into_iter().map(Handle::id).collect())
    }

    /// The whole login as one handle (the core's `login_with`). A SCRAM nonce
    /// (the core's `getrandom` feature) is always supplied, so that "auto"
    /// can choose SCRAM.
    pub(crate) fn login(
        &mut self,
        user: &str,
        secret: &str,
        method: &str,
    ) -> Result<u64, pop3_result> {
        let method = AuthMethod::from_name(method).ok_or(POP3_ERR_INVALID_ARGUMENT)?;
        let mut credentials = Credentials::new(user, Secret::new(String::from(secret)))
            .with_random_scram_nonce()
            .map_err(|_| POP3_ERR_RANDOM)?;
        if let Some(binding) = &self.binding {
            credentials = credentials.channel_binding(binding.clone());
        }
        self.submit(|core| core.login_with(credentials, method))
    }

    /// Sets (or, with `None`, clears) the channel binding later logins use;
    /// a login already submitted without one that has not started (queued
    /// behind STLS) takes it too, from the core.
    pub(crate) fn set_channel_binding(&mut self, binding: Option<ChannelBinding>) {
        if let Some(binding) = &binding {
            self.core.bind_pending_logins(binding);
        }
        self.binding = binding;
    }

    /// STLS as one handle (the core's `start_tls`): CAPA first when needed.
    pub(crate) fn start_tls(&mut self) -> Result<u64, pop3_result> {
        self.submit(Client::start_tls)
    }

    /// RETR for each message, all checked before any is queued.
    pub(crate) fn retr_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<u64>, pop3_result> {
        self.submit_many(|core| core.retr_many(msgs))
    }

    /// DELE for each message, all checked before any is queued.
    pub(crate) fn dele_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<u64>, pop3_result> {
        self.submit_many(|core| core.dele_many(msgs))
    }

    /// Stops reporting a command: the rest of its reply is read and dropped.
    pub(crate) fn discard(&mut self, id: u64) -> pop3_result {
        match self.core.pending_handle(id) {
            Some(handle) => {
                self.core.discard(handle);
                POP3_OK
            }
            None => POP3_ERR_INVALID_ARGUMENT,
        }
    }

    /// Input the client holds and C has not yet seen as events: what the
    /// core has not framed, and the body chunks already queued.
    fn held_input(&self) -> usize {
        self.core
            .buffered_input()
            .saturating_add(self.queued_body_bytes)
    }

    /// More input is refused while the client holds the core's bound
    /// (`Client::input_bound`: one read on top of a partial line) unseen, so
    /// that a caller who reads without handling events cannot make it grow
    /// without end. Handling events until `POP3_DONE` always brings it
    /// below the bound again.
    pub(crate) fn check_input_room(&self) -> Result<(), pop3_result> {
        if self.held_input() >= self.core.input_bound() {
            return Err(POP3_ERR_INPUT_FULL);
        }
        Ok(())
    }

    pub(crate) fn receive(&mut self, data: &[u8]) -> pop3_result {
        if let Err(code) = self.check_input_room() {
            return code;
        }
        self.core.receive(data);
        POP3_OK
    }

    pub(crate) fn receive_eof(&mut self) {
        self.core.receive_eof();
    }

    pub(crate) fn input_buffer(&mut self) -> Result<&mut [u8], pop3_result> {
        self.check_input_room()?;
        let buffer = self.core.input_buffer();
        self.input_offer = Some(buffer.len());
        Ok(buffer)
    }

    pub(crate) fn input_written(&mut self, offer: Option<usize>, n: usize) -> pop3_result {
        match offer {
            None => POP3_ERR_CALL_ORDER,
            Some(cap) if n > cap => POP3_ERR_INVALID_ARGUMENT,
            Some(_) => {
                self.core.input_written(n);
                POP3_OK
            }
        }
    }

    /// The TLS handshake after `POP3_EVENT_START_TLS` failed: the core
    /// cancels what waited for it and ends the session.
    pub(crate) fn tls_failed(&mut self) -> pop3_result {
        match self.core.tls_failed() {
            Ok(()) => POP3_OK,
            Err(e) => usage_code(&e),
        }
    }

    pub(crate) fn tls_established(&mut self) -> pop3_result {
        match self.core.tls_established() {
            Ok(()) => {
                self.tls_reported = false;
                POP3_OK
            }
            Err(e) => usage_code(&e),
        }
    }

    /// The bytes to write now, after moving whatever the core has into the
    /// outbox.
    pub(crate) fn pending_output(&mut self) -> Option<&[u8]> {
        self.pump();
        let pending = self.outbox.pending();
        (!pending.is_empty()).then_some(pending)
    }

    pub(crate) fn output_written(&mut self, n: usize) -> pop3_result {
        match self.outbox.consume(n) {
            Ok(()) => POP3_OK,
            Err(code) => code,
        }
    }

    /// The next event, kept as `current` so that C can read it until the next
    /// call. Events queued by an earlier `pending_output` come first; then
    /// the core is polled for one event only, so that a body chunk can be
    /// handed to C straight from the core's receive buffer.
    pub(crate) fn next_event(&mut self) -> Result<&Owned, pop3_result> {
        self.current = None;
        let event = match self.queue.pop_front() {
            Some(event) => {
                if let Owned::Body { data, .. } = &event {
                    self.queued_body_bytes -= data.ptr_len().1;
                }
                Some(event)
            }
            None => self.poll_event(true),
        };
        match event {
            Some(event) => {
                if matches!(event, Owned::Closed { .. }) {
                    self.closed_delivered = true;
                }
                Ok(self.current.insert(event))
            }
            None if self.closed_delivered => Err(POP3_ERR_CLOSED),
            None => Err(POP3_DONE),
        }
    }

    pub(crate) fn current(&self) -> Option<&Owned> {
        self.current.as_ref()
    }

    /// Polls the core until it needs input (or TLS, or is over), moving bytes
    /// to the outbox and events, with copies of any body chunks, to the queue.
    fn pump(&mut self) {
        while let Some(event) = self.poll_event(false) {
            if let Owned::Body { data, .. } = &event {
                self.queued_body_bytes += data.ptr_len().1;
            }
            self.queue.push_back(event);
        }
    }

    /// Polls the core until it gives an event, moving bytes to the outbox on
    /// the way; `None` when it needs input (or TLS) or is over. With `borrow`,
    /// a body chunk is not copied: it points into the core's receive buffer,
    /// which stays as it is until the core is called again — that is, until
    /// C's next call on this client.
    fn poll_event(&mut self, borrow: bool) -> Option<Owned> {
        while !self.finished {
            let action = match self.core.poll() {
                Ok(action) => action,
                Err(error) => {
                    self.finished = true;
                    return Some(closed_by(&error));
                }
            };
            match action {
                Action::Send(bytes) => self.outbox.push(bytes),
                Action::Event(event) => {
                    if let Event::Body { handle, data } = event {
                        let handle = handle.id();
                        let data = if borrow {
                            BodyBytes::Borrowed(data.as_ptr(), data.len())
                        } else {
                            BodyBytes::Owned(data.to_vec())
                        };
                        return Some(Owned::Body { handle, data });
                    }
                    if let Some(owned) = own(event) {
                        return Some(owned);
                    }
                }
                Action::NeedInput => return None,
                Action::StartTls => {
                    if self.tls_reported {
                        return None;
                    }
                    self.tls_reported = true;
                    return Some(Owned::StartTls);
                }
                Action::Closed => {
                    self.finished = true;
                    return Some(Owned::Closed {
                        result: POP3_OK,
                        text: CText::new("the session is over"),
                    });
                }
            }
        }
        None
    }
}

fn closed_by(error: &ProtocolError) -> Owned {
    let result = match error {
        ProtocolError::TlsFailed => POP3_ERR_TLS,
        _ => POP3_ERR_PROTOCOL,
    };
    Owned::Closed {
        result,
        text: CText::new(&error.to_string()),
    }
}

fn own(event: Event<'_>) -> Option<Owned> {
    Some(match event {
        Event::Greeting(greeting) => Owned::Greeting(CText::new(greeting.text.as_str())),
        Event::Ok {
            handle,
            reply: Reply::BodyEnd,
        } => Owned::BodyEnd {
            handle: handle.id(),
        },
        Event::Ok { handle, reply } => Owned::Ok {
            handle: handle.id(),
            reply: own_reply(reply),
        },
        Event::Err { handle, error } => Owned::Err {
            handle: handle.id(),
            authentication_refused: error.is_authentication_refusal(),
            code: error.code.map(|c| CText::new(&c.to_string())),
            text: CText::new(error.text.as_str()),
            refusal: error.token_refusal.map(|r| CText::new(&r.to_string())),
        },
        Event::BodyStart { handle } => Owned::BodyStart {
            handle: handle.id(),
        },
        Event::Failed { handle, error } => Owned::Failed {
            handle: handle.id(),
            text: CText::new(&error.to_string()),
        },
        Event::Cancelled { handle, reason } => Owned::Cancelled {
            handle: handle.id(),
            result: usage_code(&reason),
            text: CText::new(&reason.to_string()),
        },
        Event::Capabilities(caps) => Owned::Capabilities(capability_lines(&caps)),
        Event::Trace(TraceLine { direction, line }) => Owned::Trace {
            sent: direction == Direction::Sent,
            line: CText::new(line.as_str()),
        },
        _ => return None,
    })
}

fn own_reply(reply: Reply) -> OkReply {
    match reply {
        Reply::Ok(text) => OkReply::Text(CText::new(text.as_str())),
        Reply::Authenticated(text) => OkReply::Authenticated(CText::new(text.as_str())),
        Reply::Stat(stat) => OkReply::Stat {
            count: stat.count,
            size: stat.size,
        },
        Reply::List(entries) => OkReply::List(entries),
        Reply::ListOne(entry) => OkReply::ListOne(entry),
        Reply::Uidl(entries) => OkReply::Uidl(entries.iter().map(uidl).collect()),
        Reply::UidlOne(entry) => {
            let (msg, uid) = uidl(&entry);
            OkReply::UidlOne(msg, uid)
        }
        Reply::Capabilities(caps) => OkReply::Capabilities(capability_lines(&caps)),
        Reply::StartTls => OkReply::StartTls,
        Reply::TlsEstablished => OkReply::TlsEstablished,
        _ => OkReply::Other,
    }
}

fn uidl(entry: &UidlEntry) -> (u32, CText) {
    (entry.msg.get(), CText::new(&entry.uid))
}

fn capability_lines(caps: &Capabilities) -> Vec<CText> {
    caps.list
        .iter()
        .map(|c| CText::new(&capability_line(c)))
        .collect()
}

/// A capability written back as its CAPA line, the form C programs compare.
fn capability_line(cap: &Capability) -> String {
    cap.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_keeps_the_rest_of_a_partial_write() {
        let mut out = Outbox::default();
        out.push(b"USER a\r\n");
        assert_eq!(out.pending(), b"USER a\r\n");
        assert_eq!(out.consume(3), Ok(()));
        assert_eq!(out.pending(), b"R a\r\n");
        out.push(b"PASS b\r\n");
        // The lent block stays as it was; the new line waits behind it.
        assert_eq!(out.pending(), b"R a\r\n");
        assert_eq!(out.len(), 13);
        assert_eq!(out.consume(99), Err(POP3_ERR_INVALID_ARGUMENT));
        assert_eq!(out.consume(5), Ok(()));
        assert_eq!(out.pending(), b"PASS b\r\n");
        assert_eq!(out.consume(8), Ok(()));
        assert_eq!(out.pending(), b"");
        assert_eq!(out.consume(1), Err(POP3_ERR_CALL_ORDER));
    }

    #[test]
    fn the_lent_block_never_moves_and_is_wiped_as_written() {
        let mut out = Outbox::default();
        out.push(b"PASS secret\r\n");
        let lent = out.pending().as_ptr();
        // Much more output arrives while the block is with the kernel.
        for _ in 0..100 {
            out.push(&[b'x'; 1000]);
        }
        assert_eq!(out.pending().as_ptr(), lent);
        assert_eq!(out.consume(5), Ok(()));
        let block = out.lent.as_deref().expect("still lent");
        assert_eq!(&block[..5], &[0; 5], "written bytes are wiped");
        assert_eq!(&block[5..], b"secret\r\n");
        assert_eq!(out.pending().as_ptr(), lent.wrapping_add(5));
    }

    #[test]
    fn outbox_grows_past_its_first_capacity() {
        let mut out = Outbox::default();
        let chunk = [b'x'; 100];
        for _ in 0..50 {
            out.push(&chunk);
        }
        assert_eq!(out.pending().len(), 5000);
    }

    #[test]
    fn capability_lines_read_like_capa() {
        let caps = Capabilities {
            list: vec![
                Capability::Sasl(vec!["PLAIN".into(), "SCRAM-SHA-256".into()]),
                Capability::LoginDelay {
                    seconds: 900,
                    per_user: true,
                },
                Capability::Expire {
                    days: None,
                    per_user: false,
                },
            ],
        };
        let lines: Vec<_> = capability_lines(&caps)
            .iter()
            .map(|t| String::from_utf8_lossy(t.bytes()).into_owned())
            .collect();
        assert_eq!(
            lines,
            [
                "SASL PLAIN SCRAM-SHA-256",
                "LOGIN-DELAY 900 USER",
                "EXPIRE NEVER"
            ]
        );
    }
}
