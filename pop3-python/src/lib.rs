//! `pop3._core`: the sans-IO client of `pop3-proto` as a Python class.
//!
//! The Python side feeds received bytes in, takes bytes to send out and reads
//! typed events one at a time, in the style of h11. Every protocol decision
//! stays in `pop3-proto`; this module only converts values between the two
//! languages and keeps the handle numbers Python sees.

#![forbid(unsafe_code)]

mod events;

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use pop3_proto::{
    Action, AuthMethod, Command, Config, Credentials, Event, Handle, Limits, MsgNum, State,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOSError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

create_exception!(
    pop3,
    Error,
    PyException,
    "Base class of every error raised by the pop3 package."
);
create_exception!(
    pop3,
    ProtocolError,
    Error,
    "The server broke the POP3 protocol; the connection cannot be used any more."
);
create_exception!(
    pop3,
    UsageError,
    Error,
    "The caller asked for something the session does not allow now; nothing was sent."
);

/// A command refused by the core. Refused because the server broke the
/// protocol earlier, it is that `ProtocolError` again (the server's doing),
/// not a `UsageError` (the caller's).
fn usage(error: pop3_proto::UsageError) -> PyErr {
    match error {
        pop3_proto::UsageError::Failed(_) => ProtocolError::new_err(error.to_string()),
        _ => UsageError::new_err(error.to_string()),
    }
}

fn msg_num(n: u32) -> PyResult<MsgNum> {
    MsgNum::new(n).ok_or_else(|| UsageError::new_err("message numbers start at 1"))
}

/// The sans-IO POP3 client. See the `pop3` package documentation.
#[pyclass(module = "pop3._core", name = "Client")]
pub struct Client {
    /// Boxed: the core's state is over-aligned (32 bytes) and Python's object
    /// allocator only guarantees 16. In a mutex because the core is `Send` but
    /// not `Sync` (it may hold a SASL mechanism), and Python objects may be
    /// shared between threads; `&mut self` methods reach it without locking.
    inner: Mutex<Box<pop3_proto::Client>>,
    /// Events not yet returned, each with the status line of the reply it
    /// came from (the core's, read when the event was produced).
    events: VecDeque<(PyObject, Option<String>)>,
    /// The status line of the event `next_event` returned last.
    status_line: Option<String>,
    out: Vec<u8>,
    /// The fatal protocol error, once `poll` returned one.
    fatal: Option<String>,
    /// The core is waiting for TLS or has closed: what to repeat on each call.
    stopped: Option<Stop>,
}

#[derive(Clone, Copy)]
enum Stop {
    StartTls,
    Closed,
}

impl Client {
    fn core(&mut self) -> &mut pop3_proto::Client {
        self.inner.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    fn shared(&self) -> MutexGuard<'_, Box<pop3_proto::Client>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn submit(&mut self, command: Command) -> PyResult<u64> {
        let h = self.core().submit(command).map_err(usage)?;
        Ok(h.id())
    }

    /// Polls the core until it waits for input, for TLS or has closed,
    /// collecting bytes to send and events.
    fn pump(&mut self, py: Python<'_>, release_gil: bool) -> PyResult<()> {
        if self.fatal.is_some() {
            return Ok(());
        }
        self.stopped = None;
        let Client {
            inner,
            events,
            out,
            fatal,
            stopped,
            ..
        } = self;
        let inner = inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        // The core hands out a body as slices of its buffer, cut at every
        // dot-stuffed line; one Python object per slice would cost more than
        // the bytes. Consecutive slices are joined into one BodyChunk.
        let mut body: Option<(Handle, Vec<u8>)> = None;
        let result = loop {
            // Releasing the GIL lets a caller run this on a worker thread
            // while its event loop goes on: a SCRAM key derivation inside
            // `poll` may take a fifth of a second.
            let polled = if release_gil {
                py.allow_threads(|| inner.poll())
            } else {
                inner.poll()
            };
            let action = match polled {
                Err(error) => {
                    *fatal = Some(error.to_string());
                    break Ok(());
                }
                Ok(action) => action,
            };
            match action {
                Action::Send(bytes) => out.extend_from_slice(bytes),
                Action::Event(Event::Body { handle, data }) => {
                    match &mut body {
                        Some((h, buf)) if *h == handle => buf.extend_from_slice(data),
                        _ => {
                            flush_body(py, body.take(), events)?;
                            body = Some((handle, data.to_vec()));
                        }
                    }
                    if body.as_ref().is_some_and(|(_, buf)| buf.len() >= MAX_CHUNK) {
                        flush_body(py, body.take(), events)?;
                    }
                }
                Action::Event(event) => {
                    flush_body(py, body.take(), events)?;
                    // A STLS submitted on its own completes here, with its
                    // `+OK`, as C's POP3_EVENT_OK (POP3_REPLY_START_TLS) does;
                    // StartTls, which asks for the handshake, follows.
                    if let Some(object) = events::convert(py, event)? {
                        // The core reads one reply at a time, so its latest
                        // status line is this event's, even when more
                        // replies wait in its buffer.
                        let status = inner.status_line().map(|t| t.as_str().to_owned());
                        events.push_back((object, status));
                    }
                }
                Action::NeedInput => break Ok(()),
                Action::StartTls => {
                    *stopped = Some(Stop::StartTls);
                    break Ok(());
                }
                Action::Closed => {
                    *stopped = Some(Stop::Closed);
                    break Ok(());
                }
            }
        };
        flush_body(py, body.take(), events)?;
        result
    }
}

impl Client {
    fn next_event_inner(&mut self, py: Python<'_>, release_gil: bool) -> PyResult<PyObject> {
        if self.events.is_empty() {
            self.pump(py, release_gil)?;
        }
        if let Some((event, status)) = self.events.pop_front() {
            self.status_line = status;
            return Ok(event);
        }
        if let Some(error) = &self.fatal {
            return Err(ProtocolError::new_err(error.clone()));
        }
        // The core has read nothing since: during StartTls, the +OK to STLS.
        let status = self.core().status_line().map(|t| t.as_str().to_owned());
        self.status_line = status;
        match self.stopped {
            Some(Stop::StartTls) => events::start_tls(py),
            Some(Stop::Closed) => events::closed(py),
            None => events::need_data(py),
        }
    }
}

/// Largest joined body chunk.
const MAX_CHUNK: usize = 1024 * 1024;

fn flush_body(
    py: Python<'_>,
    body: Option<(Handle, Vec<u8>)>,
    events: &mut VecDeque<(PyObject, Option<String>)>,
) -> PyResult<()> {
    if let Some((handle, data)) = body {
        events.push_back((events::body_chunk(py, Some(handle.id()), &data)?, None));
    }
    Ok(())
}

#[pymethods]
impl Client {
    /// Creates a client for a connection that has just been opened.
    #[new]
    #[pyo3(signature = (*, encrypted=false, allow_plaintext_credentials=false, pipeline_window=None, max_line_len=None, max_listing_lines=None, max_listing_bytes=None, max_body_line_len=None, read_size=None, trace=false, state_checks=true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        encrypted: bool,
        allow_plaintext_credentials: bool,
        pipeline_window: Option<usize>,
        max_line_len: Option<usize>,
        max_listing_lines: Option<usize>,
        max_listing_bytes: Option<usize>,
        max_body_line_len: Option<usize>,
        read_size: Option<usize>,
        trace: bool,
        state_checks: bool,
    ) -> Client {
        let mut limits = Limits::default();
        if let Some(n) = max_line_len {
            limits.max_line_len = n;
        }
        if let Some(n) = max_listing_lines {
            limits.max_listing_lines = n;
        }
        if let Some(n) = max_listing_bytes {
            limits.max_listing_bytes = n;
        }
        limits.max_body_line_len = max_body_line_len;
        let mut config = if encrypted {
            Config::encrypted()
        } else {
            Config::default()
        }
        .allow_plaintext_credentials(allow_plaintext_credentials)
        .limits(limits);
        if let Some(n) = pipeline_window {
            config = config.pipeline_window(n);
        }
        if let Some(n) = read_size {
            config.read_size = n.max(1);
        }
        config = config.trace(trace).state_checks(state_checks);
        Client {
            inner: Mutex::new(Box::new(pop3_proto::Client::new(config))),
            events: VecDeque::new(),
            status_line: None,
            out: Vec::new(),
            fatal: None,
            stopped: None,
        }
    }

    /// Hands bytes received from the server to the client; `b""` means the
    /// server closed the connection.
    fn receive_data(&mut self, data: &[u8]) {
        if data.is_empty() {
            self.core().receive_eof();
        } else {
            self.core().receive(data);
        }
    }

    /// The next event. `NeedData` when the client must read more; `StartTls`
    /// (repeated) until `tls_established()`; `Closed` (repeated) at the end.
    /// Raises `ProtocolError` once the server has broken the protocol.
    fn next_event(&mut self, py: Python<'_>) -> PyResult<PyObject> {
        self.next_event_inner(py, false)
    }

    /// `next_event()` with the GIL released while the core computes, for a
    /// worker thread (`loop.run_in_executor`) during a login, whose SCRAM key
    /// derivation would otherwise hold up the event loop. Nothing else may
    /// use the client meanwhile.
    fn next_event_off_loop(&mut self, py: Python<'_>) -> PyResult<PyObject> {
        self.next_event_inner(py, true)
    }

    /// The bytes to write to the server now (may be empty). Events produced
    /// while collecting them wait for `next_event()`.
    fn data_to_send<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.pump(py, false)?;
        let bytes = PyBytes::new(py, &self.out);
        self.out.clear();
        Ok(bytes)
    }

    /// Reports that the TLS handshake asked for by `StartTls` has completed.
    fn tls_established(&mut self) -> PyResult<()> {
        self.core().tls_established().map_err(usage)?;
        self.stopped = None;
        Ok(())
    }

    /// Reports that the TLS handshake asked for by `StartTls` failed (or its
    /// certificate was refused): the session cannot go on. The `start_tls()`
    /// operation then completes with `Failed`, every command queued behind
    /// it with `Cancelled`, and `next_event()` raises `ProtocolError`. (End
    /// of stream, `receive_data(b"")`, during the upgrade does the same by
    /// itself.) Raises `UsageError` when no upgrade is pending.
    fn tls_failed(&mut self, py: Python<'_>) -> PyResult<()> {
        self.core().tls_failed().map_err(usage)?;
        // Collected now, so that `error` says why at once; the events still
        // come from `next_event()` first.
        self.pump(py, false)
    }

    /// Gives the channel binding of the server's certificate (DER, as
    /// `SSLObject.getpeercert(binary_form=True)` returns it) to the logins
    /// submitted before the handshake (queued behind `start_tls()`) that
    /// have not chosen their mechanism yet, so that "auto" can still prefer
    /// the SCRAM `-PLUS` mechanisms. Call it right after
    /// `tls_established()`. Returns how many logins took it: 0 too when the
    /// certificate's signature algorithm gives no `tls-server-end-point`
    /// binding (as `login(tls_certificate=...)` then uses none).
    fn bind_pending_logins(&mut self, tls_certificate: &[u8]) -> usize {
        match pop3_proto::sasl::ChannelBinding::from_server_certificate(tls_certificate) {
            Some(binding) => self.core().bind_pending_logins(&binding),
            None => 0,
        }
    }

    /// Octets received and not yet consumed by `next_event()`.
    #[getter]
    fn buffered_input(&self) -> usize {
        self.shared().buffered_input()
    }

    /// The most received input a driver should hold for this client before
    /// it next calls `next_event()` (what it has not handed over yet
    /// included): one read of `read_size` on top of the longest partial
    /// line. A driver that reads without being asked (an asyncio protocol)
    /// pauses reading there, so that memory stays bounded when the caller
    /// is slow; `next_event()` always brings `buffered_input` below it.
    #[getter]
    fn input_bound(&self) -> usize {
        self.shared().input_bound()
    }

    /// The session state: "greeting", "authorization", "transaction" or "closed".
    #[getter]
    fn state(&self) -> &'static str {
        match self.shared().state() {
            State::Greeting => "greeting",
            State::Authorization => "authorization",
            State::Transaction => "transaction",
            State::Closed => "closed",
        }
    }

    /// The status line (`+OK ...`, `-ERR ...`, the greeting) of the reply
    /// that the event `next_event()` returned last came from, as received
    /// without its CRLF, sanitised by the core: for a completion, that
    /// reply's first line (the one that opened a body or listing); with
    /// `StartTls`, the `+OK` to STLS. None for a body chunk, or before any.
    #[getter]
    fn status_line(&self) -> Option<String> {
        self.status_line.clone()
    }

    /// The fatal protocol error as text, if the server broke the protocol.
    #[getter]
    fn error(&self) -> Option<String> {
        self.fatal.clone()
    }

    /// The latest known capabilities as `{name: [arguments]}`, or None.
    #[getter]
    fn capabilities<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.shared().capabilities() {
            Some(caps) => Ok(Some(events::capability_dict(py, caps)?.into_any())),
            None => Ok(None),
        }
    }

    /// The greeting's APOP timestamp, if it had one.
    #[getter]
    fn apop_timestamp(&self) -> Option<String> {
        self.shared().greeting()?.apop_timestamp.clone()
    }

    /// Whether the connection is encrypted (implicit TLS or after STLS).
    #[getter]
    fn is_encrypted(&self) -> bool {
        self.shared().is_encrypted()
    }

    /// Whether UTF-8 mode is on (RFC 6856).
    #[getter]
    fn is_utf8(&self) -> bool {
        self.shared().is_utf8()
    }

    /// Whether commands are pipelined.
    #[getter]
    fn is_pipelining(&self) -> bool {
        self.shared().is_pipelining()
    }

    /// Whether no command is queued or waiting for its reply.
    #[getter]
    fn is_idle(&self) -> bool {
        self.shared().is_idle()
    }

    /// The SASL or other mechanism the latest `login()` used, if known.
    #[getter]
    fn login_mechanism(&self) -> Option<String> {
        self.shared().login_mechanism().map(str::to_owned)
    }

    // ----- single commands -----

    /// `USER name`.
    fn user(&mut self, name: &str) -> PyResult<u64> {
        self.submit(Command::User(name.to_owned()))
    }

    /// `PASS password`.
    fn pass_(&mut self, password: String) -> PyResult<u64> {
        self.submit(Command::Pass(password.into()))
    }

    /// `APOP name digest`, computed from the greeting's timestamp.
    fn apop(&mut self, user: &str, password: String) -> PyResult<u64> {
        self.submit(Command::Apop {
            user: user.to_owned(),
            password: password.into(),
        })
    }

    /// `CAPA`.
    fn capa(&mut self) -> PyResult<u64> {
        self.submit(Command::Capa)
    }

    /// `STLS` alone (see `start_tls()` for the whole upgrade).
    fn stls(&mut self) -> PyResult<u64> {
        self.submit(Command::Stls)
    }

    /// `STAT`.
    fn stat(&mut self) -> PyResult<u64> {
        self.submit(Command::Stat)
    }

    /// `LIST` or `LIST msg`.
    #[pyo3(signature = (msg=None))]
    fn list(&mut self, msg: Option<u32>) -> PyResult<u64> {
        let msg = msg.map(msg_num).transpose()?;
        self.submit(Command::List(msg))
    }

    /// `UIDL` or `UIDL msg`.
    #[pyo3(signature = (msg=None))]
    fn uidl(&mut self, msg: Option<u32>) -> PyResult<u64> {
        let msg = msg.map(msg_num).transpose()?;
        self.submit(Command::Uidl(msg))
    }

    /// `RETR msg`: BodyStart, BodyChunk..., BodyEnd.
    fn retr(&mut self, msg: u32) -> PyResult<u64> {
        let msg = msg_num(msg)?;
        self.submit(Command::Retr(msg))
    }

    /// `TOP msg lines`.
    fn top(&mut self, msg: u32, lines: u32) -> PyResult<u64> {
        let msg = msg_num(msg)?;
        self.submit(Command::Top(msg, lines))
    }

    /// `DELE msg`.
    fn dele(&mut self, msg: u32) -> PyResult<u64> {
        let msg = msg_num(msg)?;
        self.submit(Command::Dele(msg))
    }

    /// `NOOP`.
    fn noop(&mut self) -> PyResult<u64> {
        self.submit(Command::Noop)
    }

    /// `RSET`.
    fn rset(&mut self) -> PyResult<u64> {
        self.submit(Command::Rset)
    }

    /// `QUIT`.
    fn quit(&mut self) -> PyResult<u64> {
        self.submit(Command::Quit)
    }

    /// `UTF8` (RFC 6856).
    fn utf8(&mut self) -> PyResult<u64> {
        self.submit(Command::Utf8)
    }

    /// `LANG` (list) or `LANG tag`.
    #[pyo3(signature = (tag=None))]
    fn lang(&mut self, tag: Option<String>) -> PyResult<u64> {
        self.submit(Command::Lang(tag))
    }

    /// A command the core does not model (RPOP, XTND, ...).
    #[pyo3(signature = (verb, args=Vec::new(), multiline=false))]
    fn raw(&mut self, verb: String, args: Vec<String>, multiline: bool) -> PyResult<u64> {
        self.submit(Command::Raw {
            verb,
            args,
            multiline,
        })
    }

    // ----- composite operations -----

    /// The whole login as one handle: completes with LoggedIn, Err, Failed or
    /// Cancelled. `method` is "auto" (the strongest the server offers), "user",
    /// "apop", "plain", "login", "cram-md5", "scram-sha-1", "scram-sha-256",
    /// "xoauth2" or "oauthbearer" (the password is then an OAuth 2.0 token).
    /// SCRAM uses `scram_nonce`, a fresh random printable string of at least
    /// 16 characters; without one, the core makes one from the operating
    /// system's random generator. `tls_certificate` is the server's
    /// certificate as received (DER, `SSLObject.getpeercert(binary_form=True)`):
    /// it gives the `tls-server-end-point` channel binding, with which "auto"
    /// prefers the SCRAM `-PLUS` mechanisms.
    #[pyo3(signature = (user, password, method="auto", scram_nonce=None, tls_certificate=None))]
    fn login(
        &mut self,
        user: &str,
        password: String,
        method: &str,
        scram_nonce: Option<String>,
        tls_certificate: Option<Vec<u8>>,
    ) -> PyResult<u64> {
        let method = AuthMethod::from_name(method)
            .ok_or_else(|| UsageError::new_err(format!("unknown login method {method:?}")))?;
        let credentials = Credentials::new(user, password);
        let credentials = match scram_nonce {
            Some(nonce) => credentials.scram_nonce(nonce),
            None => credentials
                .with_random_scram_nonce()
                .map_err(|error| PyOSError::new_err(error.to_string()))?,
        };
        // The certificate's signature algorithm is read by the core, the one
        // place every binding shares.
        let binding = tls_certificate
            .as_deref()
            .and_then(pop3_proto::sasl::ChannelBinding::from_server_certificate);
        let credentials = match binding {
            Some(binding) => credentials.channel_binding(binding),
            None => credentials,
        };
        let h = self.core().login_with(credentials, method).map_err(usage)?;
        Ok(h.id())
    }

    /// `RETR` for each message (pipelined when the server allows): one handle
    /// per message, in order. All are checked before any is queued.
    fn retr_many(&mut self, msgs: Vec<u32>) -> PyResult<Vec<u64>> {
        let msgs = msgs
            .into_iter()
            .map(msg_num)
            .collect::<PyResult<Vec<_>>>()?;
        let handles = self.core().retr_many(&msgs).map_err(usage)?;
        Ok(handles.into_iter().map(Handle::id).collect())
    }

    /// `DELE` for each message, pipelined like `retr_many`.
    fn dele_many(&mut self, msgs: Vec<u32>) -> PyResult<Vec<u64>> {
        let msgs = msgs
            .into_iter()
            .map(msg_num)
            .collect::<PyResult<Vec<_>>>()?;
        let handles = self.core().dele_many(&msgs).map_err(usage)?;
        Ok(handles.into_iter().map(Handle::id).collect())
    }

    /// The whole STLS upgrade as one handle: asks CAPA if needed (Cancelled
    /// when STLS is not offered), sends STLS, asks for the handshake
    /// (StartTls), and completes with TlsEstablished once the capabilities
    /// were read again.
    fn start_tls(&mut self) -> PyResult<u64> {
        let h = self.core().start_tls().map_err(usage)?;
        Ok(h.id())
    }

    /// Stops reporting a command: the rest of its reply (a message body still
    /// arriving) is read and dropped, and no more events come for it.
    fn discard(&mut self, handle: u64) {
        if let Some(h) = self.core().pending_handle(handle) {
            self.core().discard(h);
        }
    }

    fn __repr__(&self) -> String {
        format!("<pop3.Client state={}>", self.state())
    }
}

/// Server text made safe to print, by the core's one rule: invalid UTF-8,
/// control characters (terminal escapes), bidirectional overrides and
/// invisible characters become U+FFFD, tabs spaces. Every text the package
/// hands over from the server has been through it already.
#[pyfunction]
fn safe_text(text: &Bound<'_, PyAny>) -> PyResult<String> {
    let safe = if let Ok(bytes) = text.downcast::<PyBytes>() {
        pop3_proto::Text::sanitize(bytes.as_bytes())
    } else {
        pop3_proto::Text::sanitize_str(&text.extract::<String>()?)
    };
    Ok(safe.as_str().to_owned())
}

/// The native part of the `pop3` package.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(safe_text, m)?)?;
    m.add("Error", py.get_type::<Error>())?;
    m.add("ProtocolError", py.get_type::<ProtocolError>())?;
    m.add("UsageError", py.get_type::<UsageError>())?;
    m.add_class::<Client>()?;
    events::register(m)?;
    Ok(())
}
