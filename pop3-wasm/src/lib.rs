//! The sans-IO client of `pop3-proto` for JavaScript, through WebAssembly.
//!
//! The JavaScript side hands received bytes in, takes the bytes to send and
//! reads events one at a time, as C and Python do; every protocol decision
//! stays in `pop3-proto`. The surface is made of numbers, strings and byte
//! arrays only, so that it needs nothing from JavaScript but `wasm-bindgen`'s
//! glue and builds (and is tested) on the host too:
//!
//! - events are JSON text (`next_event`), the bytes of a body chunk come
//!   from `take_body` right after its event;
//! - a command's handle is its [`Handle::id`](pop3_proto::Handle::id)
//!   (a JavaScript `bigint`); 0 means the command was refused, and
//!   `last_error` says why, as JSON `{"kind":"usage"|"protocol","message"}`.

#![forbid(unsafe_code)]

mod json;

use std::collections::VecDeque;

use pop3_proto::sasl::ChannelBinding;
use pop3_proto::{
    Action, AuthMethod, Command, Config, Credentials, Direction, Event, Handle, Limits, MsgNum,
    Reply, State,
};
use wasm_bindgen::prelude::wasm_bindgen;

use json::{quote, string_array, Object};

/// Largest body chunk handed to JavaScript: consecutive slices of a body
/// (the core cuts one at every dot-stuffed line) are joined up to this.
const MAX_CHUNK: usize = 256 * 1024;

/// The sans-IO POP3 client.
#[wasm_bindgen]
pub struct Client {
    /// Boxed: the core's state is large and over-aligned.
    core: Box<pop3_proto::Client>,
    /// Events not yet returned: JSON text, with the bytes of a body chunk.
    events: VecDeque<(String, Option<Vec<u8>>)>,
    /// The bytes of the body chunk `next_event` returned last.
    body: Vec<u8>,
    out: Vec<u8>,
    /// The fatal protocol error, once `poll` returned one.
    fatal: Option<String>,
    /// The core is waiting for TLS or has closed: what to repeat.
    stopped: Option<Stop>,
    /// Why the latest refused call was refused (JSON).
    last_error: Option<String>,
}

#[derive(Clone, Copy)]
enum Stop {
    StartTls,
    Closed,
}

fn usage_json(error: &pop3_proto::UsageError) -> String {
    // Refused because the server broke the protocol earlier, it is that
    // protocol error again (the server's doing), not the caller's.
    let kind = match error {
        pop3_proto::UsageError::Failed(_) => "protocol",
        _ => "usage",
    };
    Object::new(kind)
        .string("message", &error.to_string())
        .finish()
}

fn limit(value: Option<u32>, default: usize) -> usize {
    value.map_or(default, |n| n as usize)
}

impl Client {
    fn refuse(&mut self, error: &pop3_proto::UsageError) -> u64 {
        self.last_error = Some(usage_json(error));
        0
    }

    fn accept(&mut self, result: Result<Handle, pop3_proto::UsageError>) -> u64 {
        match result {
            Ok(handle) => {
                self.last_error = None;
                handle.id()
            }
            Err(error) => self.refuse(&error),
        }
    }

    fn submit(&mut self, command: Command) -> u64 {
        let result = self.core.submit(command);
        self.accept(result)
    }

    fn msg(&mut self, n: u32) -> Option<MsgNum> {
        let msg = MsgNum::new(n);
        if msg.is_none() {
            self.last_error = Some(
                Object::new("usage")
                    .string("message", "message numbers start at 1")
                    .finish(),
            );
        }
        msg
    }

    /// Polls the core until it waits for input, for TLS or has closed,
    /// collecting bytes to send and events.
    fn pump(&mut self) {
        if self.fatal.is_some() {
            return;
        }
        self.stopped = None;
        let Client {
            core,
            events,
            out,
            fatal,
            stopped,
            ..
        } = self;
        let mut body: Option<(Handle, Vec<u8>)> = None;
        loop {
            let action = match core.poll() {
                Err(error) => {
                    *fatal = Some(error.to_string());
                    break;
                }
                Ok(action) => action,
            };
            match action {
                Action::Send(bytes) => out.extend_from_slice(bytes),
                Action::Event(Event::Body { handle, data }) => {
                    match &mut body {
                        Some((h, buf)) if *h == handle => buf.extend_from_slice(data),
                        _ => {
                            flush_body(body.take(), events);
                            body = Some((handle, data.to_vec()));
                        }
                    }
                    if body.as_ref().is_some_and(|(_, buf)| buf.len() >= MAX_CHUNK) {
                        flush_body(body.take(), events);
                    }
                }
                Action::Event(event) => {
                    flush_body(body.take(), events);
                    if let Some(text) = convert(event) {
                        events.push_back((text, None));
                    }
                }
                Action::NeedInput => break,
                Action::StartTls => {
                    *stopped = Some(Stop::StartTls);
                    break;
                }
                Action::Closed => {
                    *stopped = Some(Stop::Closed);
                    break;
                }
            }
        }
        flush_body(body.take(), events);
    }
}

fn flush_body(body: Option<(Handle, Vec<u8>)>, events: &mut VecDeque<(String, Option<Vec<u8>>)>) {
    if let Some((handle, data)) = body {
        let text = Object::new("body").handle(Some(handle.id())).finish();
        events.push_back((text, Some(data)));
    }
}

#[wasm_bindgen]
impl Client {
    /// A client for a connection that has just been opened. Limits left
    /// `undefined` keep the core's defaults.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        encrypted: bool,
        allow_plaintext_credentials: bool,
        trace: bool,
        pipeline_window: Option<u32>,
        read_size: Option<u32>,
        max_line_len: Option<u32>,
        max_listing_lines: Option<u32>,
        max_listing_bytes: Option<u32>,
        max_body_line_len: Option<u32>,
    ) -> Client {
        let defaults = Limits::default();
        let mut limits = defaults;
        limits.max_line_len = limit(max_line_len, defaults.max_line_len);
        limits.max_listing_lines = limit(max_listing_lines, defaults.max_listing_lines);
        limits.max_listing_bytes = limit(max_listing_bytes, defaults.max_listing_bytes);
        limits.max_body_line_len = max_body_line_len.map(|n| n as usize);
        let mut config = if encrypted {
            Config::encrypted()
        } else {
            Config::default()
        }
        .allow_plaintext_credentials(allow_plaintext_credentials)
        .limits(limits)
        .trace(trace);
        if let Some(n) = pipeline_window {
            config = config.pipeline_window(n as usize);
        }
        if let Some(n) = read_size {
            config.read_size = (n as usize).max(1);
        }
        Client {
            core: Box::new(pop3_proto::Client::new(config)),
            events: VecDeque::new(),
            body: Vec::new(),
            out: Vec::new(),
            fatal: None,
            stopped: None,
            last_error: None,
        }
    }

    /// Hands bytes received from the server to the client (copied).
    pub fn receive(&mut self, data: &[u8]) {
        self.core.receive(data);
    }

    /// The server closed its side of the connection.
    pub fn receive_eof(&mut self) {
        self.core.receive_eof();
    }

    /// The next event as JSON. The driver's instructions are events too:
    /// `needInput` (read, then `receive`), `startTls` (repeated until
    /// `tls_established` or `tls_failed`), `closed` (repeated at the end)
    /// and `protocolError` (repeated: the server broke the protocol, close
    /// the connection). After a `body` event, `take_body` gives its bytes.
    pub fn next_event(&mut self) -> String {
        if self.events.is_empty() {
            self.pump();
        }
        if let Some((text, data)) = self.events.pop_front() {
            self.body = data.unwrap_or_default();
            return text;
        }
        if let Some(error) = &self.fatal {
            return Object::new("protocolError")
                .string("message", error)
                .finish();
        }
        let kind = match self.stopped {
            Some(Stop::StartTls) => "startTls",
            Some(Stop::Closed) => "closed",
            None => "needInput",
        };
        Object::new(kind).finish()
    }

    /// The bytes of the `body` event `next_event` returned last (once).
    pub fn take_body(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.body)
    }

    /// The bytes to write to the server now (may be empty). Events produced
    /// while collecting them wait for `next_event`.
    pub fn data_to_send(&mut self) -> Vec<u8> {
        self.pump();
        std::mem::take(&mut self.out)
    }

    /// The TLS handshake asked for by `startTls` has completed. `false`
    /// (see `last_error`) when no upgrade was pending.
    pub fn tls_established(&mut self) -> bool {
        match self.core.tls_established() {
            Ok(()) => {
                self.stopped = None;
                true
            }
            Err(error) => {
                self.refuse(&error);
                false
            }
        }
    }

    /// The TLS handshake asked for by `startTls` failed (or its certificate
    /// was refused): the upgrade completes with `failed`, what waited
    /// behind it with `cancelled`, then `protocolError`. `false` when no
    /// upgrade was pending.
    pub fn tls_failed(&mut self) -> bool {
        match self.core.tls_failed() {
            Ok(()) => {
                self.pump();
                true
            }
            Err(error) => {
                self.refuse(&error);
                false
            }
        }
    }

    /// Gives the `tls-server-end-point` channel binding of the server's
    /// certificate (DER) to logins queued behind the upgrade. How many took it.
    pub fn bind_pending_logins(&mut self, tls_certificate: &[u8]) -> u32 {
        match ChannelBinding::from_server_certificate(tls_certificate) {
            Some(binding) => {
                u32::try_from(self.core.bind_pending_logins(&binding)).unwrap_or(u32::MAX)
            }
            None => 0,
        }
    }

    /// Octets received and not yet turned into events.
    pub fn buffered_input(&self) -> usize {
        self.core.buffered_input()
    }

    /// The most received input a driver should hold for this client before
    /// it next asks for events: a driver pauses reading there.
    pub fn input_bound(&self) -> usize {
        self.core.input_bound()
    }

    /// "greeting", "authorization", "transaction" or "closed".
    pub fn state(&self) -> String {
        match self.core.state() {
            State::Greeting => "greeting",
            State::Authorization => "authorization",
            State::Transaction => "transaction",
            State::Closed => "closed",
        }
        .to_owned()
    }

    /// Whether the connection is encrypted (implicit TLS or after STLS).
    pub fn is_encrypted(&self) -> bool {
        self.core.is_encrypted()
    }

    /// Whether commands are pipelined.
    pub fn is_pipelining(&self) -> bool {
        self.core.is_pipelining()
    }

    /// Whether no command is queued or waiting for its reply.
    pub fn is_idle(&self) -> bool {
        self.core.is_idle()
    }

    /// The mechanism the latest login used, if known.
    pub fn login_mechanism(&self) -> Option<String> {
        self.core.login_mechanism().map(str::to_owned)
    }

    /// The latest known capabilities as JSON `{name: [arguments]}`, if any.
    pub fn capabilities(&self) -> Option<String> {
        self.core.capabilities().map(capability_json)
    }

    /// The greeting's APOP timestamp, if it had one.
    pub fn apop_timestamp(&self) -> Option<String> {
        self.core.greeting()?.apop_timestamp.clone()
    }

    /// Why the latest refused call was refused, as JSON; `undefined` after
    /// a call that succeeded.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.clone()
    }

    // ----- single commands: each returns its handle, or 0 -----

    /// `USER name`.
    pub fn user(&mut self, name: &str) -> u64 {
        self.submit(Command::User(name.to_owned()))
    }

    /// `PASS password`.
    pub fn pass(&mut self, password: String) -> u64 {
        self.submit(Command::Pass(password.into()))
    }

    /// `APOP name digest`, from the greeting's timestamp.
    pub fn apop(&mut self, user: &str, password: String) -> u64 {
        self.submit(Command::Apop {
            user: user.to_owned(),
            password: password.into(),
        })
    }

    /// `CAPA`.
    pub fn capa(&mut self) -> u64 {
        self.submit(Command::Capa)
    }

    /// `STLS` alone (`start_tls` is the whole upgrade).
    pub fn stls(&mut self) -> u64 {
        self.submit(Command::Stls)
    }

    /// `STAT`.
    pub fn stat(&mut self) -> u64 {
        self.submit(Command::Stat)
    }

    /// `LIST` (0: every message) or `LIST msg`.
    pub fn list(&mut self, msg: u32) -> u64 {
        let msg = if msg == 0 { None } else { MsgNum::new(msg) };
        self.submit(Command::List(msg))
    }

    /// `UIDL` (0: every message) or `UIDL msg`.
    pub fn uidl(&mut self, msg: u32) -> u64 {
        let msg = if msg == 0 { None } else { MsgNum::new(msg) };
        self.submit(Command::Uidl(msg))
    }

    /// `RETR msg`: `bodyStart`, `body`..., `bodyEnd`.
    pub fn retr(&mut self, msg: u32) -> u64 {
        match self.msg(msg) {
            Some(msg) => self.submit(Command::Retr(msg)),
            None => 0,
        }
    }

    /// `TOP msg lines`.
    pub fn top(&mut self, msg: u32, lines: u32) -> u64 {
        match self.msg(msg) {
            Some(msg) => self.submit(Command::Top(msg, lines)),
            None => 0,
        }
    }

    /// `DELE msg`.
    pub fn dele(&mut self, msg: u32) -> u64 {
        match self.msg(msg) {
            Some(msg) => self.submit(Command::Dele(msg)),
            None => 0,
        }
    }

    /// `NOOP`.
    pub fn noop(&mut self) -> u64 {
        self.submit(Command::Noop)
    }

    /// `RSET`.
    pub fn rset(&mut self) -> u64 {
        self.submit(Command::Rset)
    }

    /// `QUIT`.
    pub fn quit(&mut self) -> u64 {
        self.submit(Command::Quit)
    }

    /// `UTF8` (RFC 6856).
    pub fn utf8(&mut self) -> u64 {
        self.submit(Command::Utf8)
    }

    // ----- composite operations -----

    /// The whole login as one handle (`loggedIn`, `err`, `failed` or
    /// `cancelled`). `method` is "auto" or a mechanism name the core knows
    /// ("user", "apop", "plain", "login", "cram-md5", "scram-sha-1",
    /// "scram-sha-256", "xoauth2", "oauthbearer"). `scram_nonce` is a fresh
    /// random printable string of at least 16 characters; `tls_certificate`
    /// the server's certificate (DER), for SCRAM `-PLUS`.
    pub fn login(
        &mut self,
        user: &str,
        password: String,
        method: &str,
        scram_nonce: String,
        tls_certificate: Option<Vec<u8>>,
    ) -> u64 {
        let Some(method) = AuthMethod::from_name(method) else {
            let mut message = String::from("unknown login method ");
            quote(&mut message, method);
            self.last_error = Some(Object::new("usage").string("message", &message).finish());
            return 0;
        };
        let mut credentials = Credentials::new(user, password).scram_nonce(scram_nonce);
        if let Some(binding) = tls_certificate
            .as_deref()
            .and_then(ChannelBinding::from_server_certificate)
        {
            credentials = credentials.channel_binding(binding);
        }
        let result = self.core.login_with(credentials, method);
        self.accept(result)
    }

    /// `RETR` for each message, pipelined when the server allows: one handle
    /// per message, in order; empty (see `last_error`) when refused. All are
    /// checked before any is queued.
    pub fn retr_many(&mut self, msgs: Vec<u32>) -> Vec<u64> {
        self.many(msgs, pop3_proto::Client::retr_many)
    }

    /// `DELE` for each message, pipelined like `retr_many`.
    pub fn dele_many(&mut self, msgs: Vec<u32>) -> Vec<u64> {
        self.many(msgs, pop3_proto::Client::dele_many)
    }

    /// The whole STLS upgrade as one handle: `cancelled` when the server
    /// does not offer STLS; the `startTls` instruction; `tlsEstablished`.
    pub fn start_tls(&mut self) -> u64 {
        let result = self.core.start_tls();
        self.accept(result)
    }

    /// Stops reporting a command: the rest of its reply is read and dropped.
    pub fn discard(&mut self, handle: u64) {
        if let Some(h) = self.core.pending_handle(handle) {
            self.core.discard(h);
        }
    }
}

type Many = fn(&mut pop3_proto::Client, &[MsgNum]) -> Result<Vec<Handle>, pop3_proto::UsageError>;

impl Client {
    fn many(&mut self, msgs: Vec<u32>, submit: Many) -> Vec<u64> {
        let mut nums = Vec::with_capacity(msgs.len());
        for n in msgs {
            match self.msg(n) {
                Some(msg) => nums.push(msg),
                None => return Vec::new(),
            }
        }
        match submit(&mut self.core, &nums) {
            Ok(handles) => {
                self.last_error = None;
                handles.into_iter().map(Handle::id).collect()
            }
            Err(error) => {
                self.refuse(&error);
                Vec::new()
            }
        }
    }
}

fn capability_json(caps: &pop3_proto::Capabilities) -> String {
    let mut object = String::from("{");
    let mut first = true;
    for cap in &caps.list {
        // Each CAPA line split into its words, as the other bindings give it.
        let line = cap.to_string();
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else {
            continue;
        };
        if !first {
            object.push(',');
        }
        first = false;
        quote(&mut object, name);
        object.push(':');
        object.push_str(&string_array(words));
    }
    object.push('}');
    object
}

/// One core event as JSON; `None` for events this binding does not report.
fn convert(event: Event<'_>) -> Option<String> {
    let text = match event {
        Event::Greeting(g) => Object::new("greeting")
            .string("text", g.text.as_str())
            .optional_string("apopTimestamp", g.apop_timestamp.as_deref())
            .finish(),
        Event::Ok { handle, reply } => {
            let h = Some(handle.id());
            match reply {
                Reply::Ok(text) => Object::new("ok")
                    .handle(h)
                    .string("text", text.as_str())
                    .finish(),
                Reply::Authenticated(text) => Object::new("loggedIn")
                    .handle(h)
                    .string("text", text.as_str())
                    .finish(),
                Reply::Stat(s) => Object::new("stat")
                    .handle(h)
                    .number("count", u64::from(s.count))
                    .number("size", s.size)
                    .finish(),
                Reply::List(entries) => list_json(h, entries.iter().copied()),
                Reply::ListOne(entry) => list_json(h, std::iter::once(entry)),
                Reply::Uidl(entries) => uidl_json(h, entries.iter()),
                Reply::UidlOne(entry) => uidl_json(h, std::iter::once(&entry)),
                Reply::Capabilities(caps) => Object::new("capabilities")
                    .handle(h)
                    .raw("capabilities", &capability_json(&caps))
                    .finish(),
                Reply::BodyEnd => Object::new("bodyEnd").handle(h).finish(),
                Reply::TlsEstablished => Object::new("tlsEstablished").handle(h).finish(),
                // A STLS submitted on its own: its +OK; `startTls` follows.
                _ => Object::new("ok").handle(h).string("text", "").finish(),
            }
        }
        Event::Err { handle, error } => {
            let refusal = error.token_refusal.as_ref();
            let code = error.code.as_ref().map(ToString::to_string);
            let refusal_text = refusal.map(ToString::to_string);
            Object::new("err")
                .handle(Some(handle.id()))
                .optional_string("code", code.as_deref())
                .string("text", error.text.as_str())
                .optional_string("tokenRefusal", refusal_text.as_deref())
                // The core's verdicts, so that callers branch on them
                // rather than on codes and login state of their own.
                .boolean("authenticationRefused", error.is_authentication_refusal())
                .boolean("temporary", error.is_temporary())
                .finish()
        }
        Event::BodyStart { handle } => Object::new("bodyStart").handle(Some(handle.id())).finish(),
        Event::Failed { handle, error } => Object::new("failed")
            .handle(Some(handle.id()))
            .string("error", &error.to_string())
            .finish(),
        Event::Cancelled { handle, reason } => Object::new("cancelled")
            .handle(Some(handle.id()))
            .string("reason", &reason.to_string())
            .boolean(
                "sessionEnded",
                matches!(
                    reason,
                    pop3_proto::UsageError::Closed | pop3_proto::UsageError::Failed(_)
                ),
            )
            .finish(),
        Event::Trace(trace) => Object::new("trace")
            .string(
                "direction",
                match trace.direction {
                    Direction::Sent => "sent",
                    Direction::Received => "received",
                },
            )
            .string("line", trace.line.as_str())
            .finish(),
        Event::Capabilities(caps) => Object::new("capabilities")
            .handle(None)
            .raw("capabilities", &capability_json(&caps))
            .finish(),
        // Body chunks are joined by the pump; events added to the core later
        // are not reported until this binding knows them.
        _ => return None,
    };
    Some(text)
}

fn list_json(handle: Option<u64>, entries: impl Iterator<Item = pop3_proto::ListEntry>) -> String {
    let mut array = String::from("[");
    for (i, e) in entries.enumerate() {
        if i > 0 {
            array.push(',');
        }
        array.push_str(&format!("[{},{}]", e.msg.get(), e.size));
    }
    array.push(']');
    Object::new("listing")
        .handle(handle)
        .raw("entries", &array)
        .finish()
}

fn uidl_json<'a>(
    handle: Option<u64>,
    entries: impl Iterator<Item = &'a pop3_proto::UidlEntry>,
) -> String {
    let mut array = String::from("[");
    for (i, e) in entries.enumerate() {
        if i > 0 {
            array.push(',');
        }
        array.push_str(&format!("[{},", e.msg.get()));
        quote(&mut array, &e.uid);
        array.push(']');
    }
    array.push(']');
    Object::new("uidListing")
        .handle(handle)
        .raw("entries", &array)
        .finish()
}

#[cfg(test)]
mod tests;
