//! The extern "C" functions and the types C sees.
//!
//! Every function here follows the same rules: each pointer argument is
//! checked for NULL before anything happens, out-parameters are written only
//! when the call returns `POP3_OK`, and the body runs inside `catch_unwind`
//! so that no panic unwinds into C.

#![allow(non_camel_case_types)]

use core::ffi::{c_char, CStr};
use core::ptr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pop3_proto::sasl::ChannelBinding;
use pop3_proto::{Command, Config, MsgNum, Secret};

use crate::result::*;
use crate::session::{OkReply, Owned, Session};

/// Names one submitted command; the events of its reply carry the same value.
/// Handles are never 0: an event with handle 0 belongs to no command the
/// caller submitted (the greeting, capabilities the client asked for itself,
/// trace lines, the end of the session).
pub type pop3_handle = u64;

/// Settings for new clients. Create with `pop3_config_new`, change with the
/// `pop3_config_set_*` functions, free with `pop3_config_free`. A client
/// copies the settings when it is created, so the config can be freed (or
/// reused) right after `pop3_client_new`.
pub struct pop3_config {
    config: Config,
}

/// One POP3 session over a connection the caller owns. The client does no
/// I/O: the caller moves bytes between it and the socket (and TLS).
///
/// # The run loop
///
/// 1. Connect the socket (for implicit TLS, port 995, run the TLS handshake
///    first and set `pop3_config_set_encrypted`). Create the client with
///    `pop3_client_new`.
/// 2. Submit commands whenever you like (`pop3_client_login`,
///    `pop3_client_stat`, `pop3_client_retr`, ...). Each writes a
///    `pop3_handle` naming the reply to come, or returns a negative
///    `pop3_result` with nothing queued. Commands may be submitted before the
///    greeting; they go out when the session allows.
/// 3. Write: while `pop3_client_pending_output` returns `POP3_OK`, write the
///    bytes to the connection and report how many were written with
///    `pop3_client_output_written` (a partial write keeps the rest pending).
///    The bytes stay valid until reported, so a completion-based loop
///    (`uv_write`) hands them to the kernel as they are and reports when the
///    write completes.
/// 4. Handle events: call `pop3_client_next_event` until it returns
///    `POP3_DONE`. Data the event points to is valid until your next call
///    on this client (the `const` accessors excepted): use or copy it first.
///    On `POP3_EVENT_START_TLS`, stop reading plaintext and run the TLS
///    handshake on the connection, then call `pop3_client_tls_established`,
///    or `pop3_client_tls_failed` if it failed. On `POP3_EVENT_CLOSED`, the
///    session is over: close the connection.
/// 5. Read: when the connection is readable, pass the bytes to
///    `pop3_client_receive` (or read straight into `pop3_client_input_buffer`
///    and report the count with `pop3_client_input_written`); at end of
///    stream call `pop3_client_receive_eof`. Go back to step 3.
///
/// Handling an event may submit commands, which queue output: always run
/// step 3 again before waiting for the socket.
///
/// # How a session ends
///
/// Every session that ends produces exactly one `POP3_EVENT_CLOSED`, the
/// last event: after QUIT is answered or the server closes while idle
/// (`result` `POP3_OK`); when the server breaks the protocol, closes in the
/// middle of a reply, or closes between `POP3_EVENT_START_TLS` and
/// `pop3_client_tls_established` (`POP3_ERR_PROTOCOL`); after
/// `pop3_client_tls_failed` (`POP3_ERR_TLS`). When the TLS upgrade ends the
/// session, the commands waiting on it complete first, with
/// `POP3_EVENT_FAILED` (the STLS operation) or `POP3_EVENT_CANCELLED` (what
/// was queued behind it). When the server breaks the protocol or closes in
/// the middle of a reply, the commands still outstanding get no event of
/// their own: `POP3_EVENT_CLOSED` ends them all. The only
/// exception is `POP3_ERR_PANIC`, a bug in the library: that client
/// answers nothing more and must be freed.
///
/// # Over-long lines
///
/// A reply line longer than `pop3_config_set_max_line_len` is skipped to its
/// CRLF without being held, and its command completes with
/// `POP3_EVENT_FAILED` (a multi-line reply is read to its end first); the
/// session goes on. Where such a line cannot be skipped in step (an
/// over-long greeting, a line that is no reply at all, or the reply to STLS,
/// a login or QUIT), the session ends with `POP3_EVENT_CLOSED`
/// (`POP3_ERR_PROTOCOL`).
///
/// # Memory: input back-pressure
///
/// The client holds at most one read of unprocessed input on top of a
/// partial line (`pop3_config_set_read_size` plus
/// `pop3_config_set_max_line_len`, about 72 KiB by default). Input passed
/// while it already holds that much without the events having been handled
/// is refused with `POP3_ERR_INPUT_FULL` and nothing taken: handle events
/// until `POP3_DONE`, which always makes room, then pass it again. A loop
/// that follows the steps above never meets it. Output waiting to be
/// written is bounded by the core too: at most 8 KiB of commands go
/// unanswered.
///
/// # Time limits
///
/// The client has no clock: the loop keeps time. Keep an idle limit for
/// each wait and an overall deadline for the session, read from a monotonic
/// clock before connecting: a server that trickles a byte now and then never
/// stays silent long enough for the idle limit. Before each wait, stop if
/// the deadline has passed, and wait at most the shorter of the idle limit
/// and what remains (`examples/fetch.c` shows it with poll(2),
/// `examples/uv_fetch.c` with a libuv timer).
///
/// # Channel binding with STLS
///
/// A login submitted right after `pop3_client_start_tls` waits for TLS;
/// the binding only exists once the handshake is done. Call
/// `pop3_client_set_channel_binding` right after
/// `pop3_client_tls_established`, before handling more events: the waiting
/// login takes the binding then and may use the `-PLUS` mechanisms. Set
/// later (once the login has started), it applies to later logins only.
///
/// # Threads
///
/// A client may move between threads but must not be used by two threads at
/// once. Different clients are independent.
pub struct pop3_client {
    session: Session,
}

/// What kind of event `pop3_client_next_event` returned.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum pop3_event_kind {
    /// The server's `+OK` greeting; `text` holds its text.
    POP3_EVENT_GREETING = 1,
    /// A command succeeded; `reply` says what the `+OK` carried.
    POP3_EVENT_OK = 2,
    /// The server refused a command with `-ERR`. `code` is the response code
    /// in brackets (such as `AUTH`, `IN-USE`, `SYS/TEMP`) or NULL, `text` the
    /// rest. The session goes on.
    POP3_EVENT_ERR = 3,
    /// A RETR or TOP was accepted; its body follows as `POP3_EVENT_BODY`
    /// events, then `POP3_EVENT_BODY_END`.
    POP3_EVENT_BODY_START = 4,
    /// A piece of a message body (`data`, `data_len`), dot-unstuffed, line
    /// endings exactly as the server sent them.
    POP3_EVENT_BODY = 5,
    /// The body of `handle` is complete.
    POP3_EVENT_BODY_END = 6,
    /// The reply to `handle` was unusable (malformed, too long); `text` says
    /// why. Body pieces already delivered for it must be discarded. The
    /// session goes on.
    POP3_EVENT_FAILED = 7,
    /// The command `handle` was never sent (a STLS or login before it
    /// failed); `result` and `text` say why.
    POP3_EVENT_CANCELLED = 8,
    /// The capabilities, re-read by the client itself after TLS or login;
    /// `count` lines, read them with `pop3_client_capability`.
    POP3_EVENT_CAPABILITIES = 9,
    /// Run the TLS handshake now, then call `pop3_client_tls_established`
    /// (or `pop3_client_tls_failed`). Any byte received before that is an
    /// injection attempt and ends the session; so does end of stream.
    POP3_EVENT_START_TLS = 10,
    /// A line sent or received (`direction`), secrets replaced by
    /// `<redacted>`; only with `pop3_config_set_trace`.
    POP3_EVENT_TRACE = 11,
    /// The session is over; close the connection. `result` is `POP3_OK`
    /// after QUIT or a clean close, or a negative code (`POP3_ERR_PROTOCOL`
    /// when the server broke the protocol or closed too early,
    /// `POP3_ERR_TLS` after `pop3_client_tls_failed`), with `text` saying
    /// how. Every session that ends gets exactly one, always the last event.
    POP3_EVENT_CLOSED = 12,
}

/// What the `+OK` of a `POP3_EVENT_OK` carried.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum pop3_reply_kind {
    /// Not a `POP3_EVENT_OK` event.
    POP3_REPLY_NONE = 0,
    /// A one-line `+OK` with `text` (USER, DELE, NOOP, RSET, QUIT, UTF8).
    POP3_REPLY_TEXT = 1,
    /// Logged in; `text` is the server's text.
    POP3_REPLY_AUTHENTICATED = 2,
    /// STAT: `count` messages, `size` octets.
    POP3_REPLY_STAT = 3,
    /// LIST: `count` entries, read with `pop3_client_list_entry`.
    POP3_REPLY_LIST = 4,
    /// LIST n: `msg` and `size` (also entry 0 of `pop3_client_list_entry`).
    POP3_REPLY_LIST_ONE = 5,
    /// UIDL: `count` entries, read with `pop3_client_uidl_entry`.
    POP3_REPLY_UIDL = 6,
    /// UIDL n: `msg`, and the unique id in `text` (also entry 0 of
    /// `pop3_client_uidl_entry`).
    POP3_REPLY_UIDL_ONE = 7,
    /// CAPA: `count` lines, read with `pop3_client_capability`.
    POP3_REPLY_CAPABILITIES = 8,
    /// STLS accepted: `POP3_EVENT_START_TLS` follows.
    POP3_REPLY_START_TLS = 9,
    /// The TLS upgrade of `pop3_client_start_tls` is complete.
    POP3_REPLY_TLS_ESTABLISHED = 10,
    /// A reply this version of the header has no kind for.
    POP3_REPLY_OTHER = 11,
}

/// Which way a traced line went.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum pop3_trace_direction {
    /// Not a trace event.
    POP3_TRACE_NONE = 0,
    /// A command line the client sent.
    POP3_TRACE_SENT = 1,
    /// A status line the client received.
    POP3_TRACE_RECEIVED = 2,
}

/// One event, filled in by `pop3_client_next_event`. Fields that do not apply
/// to the kind are 0 or NULL.
///
/// Every pointer in it is borrowed from the client and valid until the next
/// call on that client other than the `const` accessors
/// (`pop3_client_list_entry`, `pop3_client_uidl_entry`,
/// `pop3_client_capability`, `pop3_client_is_encrypted`); copy what you need
/// to keep. A body chunk points straight into the client's receive buffer,
/// so that writing it out is the only copy. Text is UTF-8 that has passed
/// the core's one rule for server text (control characters, so terminal
/// escapes, bidirectional overrides and invisible characters become
/// U+FFFD), NUL-terminated, and its length leaves the NUL out.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct pop3_event {
    /// What happened.
    pub kind: pop3_event_kind,
    /// The command this event belongs to, or 0.
    pub handle: pop3_handle,
    /// For `POP3_EVENT_OK`: what the reply carried.
    pub reply: pop3_reply_kind,
    /// For `POP3_EVENT_CANCELLED` and `POP3_EVENT_CLOSED`: why, as a code.
    pub result: pop3_result,
    /// Greeting text, `+OK`/`-ERR` text, UIDL id, failure reason or trace
    /// line; never NULL (empty when there is none).
    pub text: *const c_char,
    /// Length of `text` in octets.
    pub text_len: usize,
    /// For `POP3_EVENT_ERR`: the response code, or NULL.
    pub code: *const c_char,
    /// Length of `code` in octets.
    pub code_len: usize,
    /// For `POP3_EVENT_BODY`: the bytes (not NUL-terminated).
    pub data: *const u8,
    /// Length of `data` in octets.
    pub data_len: usize,
    /// STAT message count, or number of entries of a listing.
    pub count: u64,
    /// STAT maildrop size, or LIST n message size, in octets.
    pub size: u64,
    /// LIST n / UIDL n message number.
    pub msg: u32,
    /// For `POP3_EVENT_TRACE`: which way the line went.
    pub direction: pop3_trace_direction,
}

const EMPTY: &[u8] = b"\0";

impl pop3_event {
    fn blank(kind: pop3_event_kind) -> pop3_event {
        pop3_event {
            kind,
            handle: 0,
            reply: pop3_reply_kind::POP3_REPLY_NONE,
            result: POP3_OK,
            text: EMPTY.as_ptr().cast(),
            text_len: 0,
            code: ptr::null(),
            code_len: 0,
            data: ptr::null(),
            data_len: 0,
            count: 0,
            size: 0,
            msg: 0,
            direction: pop3_trace_direction::POP3_TRACE_NONE,
        }
    }

    fn with_text(mut self, text: &crate::session::CText) -> pop3_event {
        self.text = text.with_nul().as_ptr().cast();
        self.text_len = text.bytes().len();
        self
    }

    /// The C view of an owned event; its pointers borrow from `event`.
    fn of(event: &Owned) -> pop3_event {
        use pop3_event_kind::*;
        use pop3_reply_kind::*;
        match event {
            Owned::Greeting(text) => pop3_event::blank(POP3_EVENT_GREETING).with_text(text),
            Owned::Ok { handle, reply } => {
                let mut ev = pop3_event::blank(POP3_EVENT_OK);
                ev.handle = *handle;
                match reply {
                    OkReply::Text(text) => {
                        ev = ev.with_text(text);
                        ev.reply = POP3_REPLY_TEXT;
                    }
                    OkReply::Authenticated(text) => {
                        ev = ev.with_text(text);
                        ev.reply = POP3_REPLY_AUTHENTICATED;
                    }
                    OkReply::Stat { count, size } => {
                        ev.reply = POP3_REPLY_STAT;
                        ev.count = u64::from(*count);
                        ev.size = *size;
                    }
                    OkReply::List(entries) => {
                        ev.reply = POP3_REPLY_LIST;
                        ev.count = entries.len() as u64;
                    }
                    OkReply::ListOne(entry) => {
                        ev.reply = POP3_REPLY_LIST_ONE;
                        ev.count = 1;
                        ev.msg = entry.msg.get();
                        ev.size = entry.size;
                    }
                    OkReply::Uidl(entries) => {
                        ev.reply = POP3_REPLY_UIDL;
                        ev.count = entries.len() as u64;
                    }
                    OkReply::UidlOne(msg, uid) => {
                        ev = ev.with_text(uid);
                        ev.reply = POP3_REPLY_UIDL_ONE;
                        ev.count = 1;
                        ev.msg = *msg;
                    }
                    OkReply::Capabilities(lines) => {
                        ev.reply = POP3_REPLY_CAPABILITIES;
                        ev.count = lines.len() as u64;
                    }
                    OkReply::StartTls => ev.reply = POP3_REPLY_START_TLS,
                    OkReply::TlsEstablished => ev.reply = POP3_REPLY_TLS_ESTABLISHED,
                    OkReply::Other => ev.reply = POP3_REPLY_OTHER,
                }
                ev
            }
            Owned::Err {
                handle, code, text, ..
            } => {
                let mut ev = pop3_event::blank(POP3_EVENT_ERR).with_text(text);
                ev.handle = *handle;
                if let Some(code) = code {
                    ev.code = code.with_nul().as_ptr().cast();
                    ev.code_len = code.bytes().len();
                }
                ev
            }
            Owned::BodyStart { handle } => {
                let mut ev = pop3_event::blank(POP3_EVENT_BODY_START);
                ev.handle = *handle;
                ev
            }
            Owned::Body { handle, data } => {
                let mut ev = pop3_event::blank(POP3_EVENT_BODY);
                ev.handle = *handle;
                (ev.data, ev.data_len) = data.ptr_len();
                ev
            }
            Owned::BodyEnd { handle } => {
                let mut ev = pop3_event::blank(POP3_EVENT_BODY_END);
                ev.handle = *handle;
                ev
            }
            Owned::Failed { handle, text } => {
                let mut ev = pop3_event::blank(POP3_EVENT_FAILED).with_text(text);
                ev.handle = *handle;
                ev.result = POP3_ERR_PROTOCOL;
                ev
            }
            Owned::Cancelled {
                handle,
                result,
                text,
            } => {
                let mut ev = pop3_event::blank(POP3_EVENT_CANCELLED).with_text(text);
                ev.handle = *handle;
                ev.result = *result;
                ev
            }
            Owned::Capabilities(lines) => {
                let mut ev = pop3_event::blank(POP3_EVENT_CAPABILITIES);
                ev.count = lines.len() as u64;
                ev
            }
            Owned::StartTls => pop3_event::blank(POP3_EVENT_START_TLS),
            Owned::Trace { sent, line } => {
                let mut ev = pop3_event::blank(POP3_EVENT_TRACE).with_text(line);
                ev.direction = if *sent {
                    pop3_trace_direction::POP3_TRACE_SENT
                } else {
                    pop3_trace_direction::POP3_TRACE_RECEIVED
                };
                ev
            }
            Owned::Closed { result, text } => {
                let mut ev = pop3_event::blank(POP3_EVENT_CLOSED).with_text(text);
                ev.result = *result;
                ev
            }
        }
    }
}

// ----- helpers: every raw pointer is turned into a reference here -----

/// The client behind a pointer from C.
///
/// # Safety
///
/// `client` is NULL or a pointer from `pop3_client_new` not yet freed, and
/// not used by another thread during the call.
unsafe fn client_mut<'a>(client: *mut pop3_client) -> Option<&'a mut pop3_client> {
    // SAFETY: NULL or live and unaliased for the call (this function's
    // contract); NULL becomes None.
    unsafe { client.as_mut() }
}

/// The client behind a `const` pointer from C.
///
/// # Safety
///
/// As for `client_mut`, except that other readers are allowed.
unsafe fn client_ref<'a>(client: *const pop3_client) -> Option<&'a pop3_client> {
    // SAFETY: NULL or live, and not mutated during the call (contract).
    unsafe { client.as_ref() }
}

/// Runs `f` on a client, catching panics. `f` also gets the input space
/// offered by the previous call (see `pop3_client_input_written`), which any
/// other call withdraws.
fn run(
    client: Option<&mut pop3_client>,
    f: impl FnOnce(&mut Session, Option<usize>) -> pop3_result,
) -> pop3_result {
    let Some(client) = client else {
        return POP3_ERR_NULL;
    };
    let session = &mut client.session;
    let offer = session.input_offer.take();
    if session.poisoned {
        return POP3_ERR_PANIC;
    }
    match catch_unwind(AssertUnwindSafe(|| f(session, offer))) {
        Ok(code) => code,
        Err(_) => {
            session.poisoned = true;
            POP3_ERR_PANIC
        }
    }
}

/// `run` for the accessors that only read the client.
fn run_const(client: Option<&pop3_client>, f: impl FnOnce(&Session) -> pop3_result) -> pop3_result {
    let Some(client) = client else {
        return POP3_ERR_NULL;
    };
    if client.session.poisoned {
        return POP3_ERR_PANIC;
    }
    catch_unwind(AssertUnwindSafe(|| f(&client.session))).unwrap_or(POP3_ERR_PANIC)
}

/// Catches a panic in code that touches no client.
fn guard(f: impl FnOnce() -> pop3_result) -> pop3_result {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(POP3_ERR_PANIC)
}

/// A NUL-terminated UTF-8 argument.
///
/// # Safety
///
/// `p` is NULL or a NUL-terminated string that stays valid and unchanged
/// for the lifetime `'a` (the call).
unsafe fn text_arg<'a>(p: *const c_char) -> Result<&'a str, pop3_result> {
    if p.is_null() {
        return Err(POP3_ERR_NULL);
    }
    // SAFETY: not NULL, and NUL-terminated and valid for 'a by this
    // function's contract.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map_err(|_| POP3_ERR_INVALID_ARGUMENT)
}

/// A byte-buffer argument; NULL is accepted only with length 0.
///
/// # Safety
///
/// When `len > 0`, `p` points to `len` readable bytes valid for `'a`.
unsafe fn bytes_arg<'a>(p: *const u8, len: usize) -> Result<&'a [u8], pop3_result> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(POP3_ERR_NULL);
    }
    if len > isize::MAX as usize {
        return Err(POP3_ERR_INVALID_ARGUMENT);
    }
    // SAFETY: `p` is not NULL and points to `len` readable bytes (contract),
    // and `len` fits in isize as `from_raw_parts` requires.
    Ok(unsafe { core::slice::from_raw_parts(p, len) })
}

/// Writes an out-parameter.
///
/// # Safety
///
/// `out` is not NULL (checked by the caller) and points to writable memory
/// for a `T`, suitably aligned.
unsafe fn put<T>(out: *mut T, value: T) {
    // SAFETY: valid, aligned and writable by this function's contract;
    // `write` does not read or drop the old (possibly uninitialised) value.
    unsafe { out.write(value) }
}

fn msg_arg(n: u32) -> Result<MsgNum, pop3_result> {
    MsgNum::new(n).ok_or(POP3_ERR_INVALID_ARGUMENT)
}

/// Submits with `f` and writes the handle to `out`.
///
/// # Safety
///
/// As for `client_mut`, and `out` is NULL or writable.
unsafe fn command(
    client: *mut pop3_client,
    out: *mut pop3_handle,
    f: impl FnOnce(&mut Session) -> Result<u64, pop3_result>,
) -> pop3_result {
    if out.is_null() {
        return POP3_ERR_NULL;
    }
    // SAFETY: `client` is NULL or live and unaliased (contract).
    let client = unsafe { client_mut(client) };
    run(client, |s, _| match f(s) {
        Ok(handle) => {
            // SAFETY: `out` is not NULL (checked above) and writable
            // (this function's contract).
            unsafe { put(out, handle) };
            POP3_OK
        }
        Err(code) => code,
    })
}

// ----- results -----

/// A static, NUL-terminated English description of any `pop3_result` value
/// (unknown values included). Never NULL; never free it.
#[no_mangle]
pub extern "C" fn pop3_result_message(result: pop3_result) -> *const c_char {
    message_ptr(result)
}

// ----- config -----

/// Creates a config with the defaults: not encrypted, no credentials in
/// plaintext, 1024 commands (8 KiB) in flight when pipelining, the core's limits, no
/// trace. On success writes it to `*out`; free it with `pop3_config_free`.
///
/// # Safety
///
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_config_new(out: *mut *mut pop3_config) -> pop3_result {
    if out.is_null() {
        return POP3_ERR_NULL;
    }
    guard(|| {
        let config = Box::new(pop3_config {
            config: Config::default(),
        });
        // SAFETY: `out` is not NULL and writable (contract).
        unsafe { put(out, Box::into_raw(config)) };
        POP3_OK
    })
}

/// Frees a config. NULL is ignored.
///
/// # Safety
///
/// `config` is NULL or from `pop3_config_new`, not freed before, and not used
/// after.
#[no_mangle]
pub unsafe extern "C" fn pop3_config_free(config: *mut pop3_config) {
    if config.is_null() {
        return;
    }
    // SAFETY: from Box::into_raw in pop3_config_new and freed only once
    // (contract).
    let config = unsafe { Box::from_raw(config) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(config)));
}

/// Applies `f` to a config.
///
/// # Safety
///
/// `config` is NULL or live and not used by another thread meanwhile.
unsafe fn set(config: *mut pop3_config, f: impl FnOnce(&mut pop3_config)) -> pop3_result {
    // SAFETY: NULL or live and unaliased (contract).
    match unsafe { config.as_mut() } {
        None => POP3_ERR_NULL,
        Some(config) => guard(|| {
            f(config);
            POP3_OK
        }),
    }
}

/// The connection is already encrypted (implicit TLS, port 995).
///
/// # Safety
///
/// `config` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pop3_config_set_encrypted(
    config: *mut pop3_config,
    encrypted: bool,
) -> pop3_result {
    // SAFETY: `config` is NULL or live and unaliased (this function's contract).
    unsafe { set(config, |c| c.config.encrypted = encrypted) }
}

/// Allows passwords and other credentials on an unencrypted connection.
/// Off by default; turn it on only for test servers on loopback.
///
/// # Safety
///
/// `config` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pop3_config_set_allow_plaintext_credentials(
    config: *mut pop3_config,
    allow: bool,
) -> pop3_result {
    // SAFETY: `config` is NULL or live and unaliased (this function's contract).
    unsafe { set(config, |c| c.config.allow_plaintext_credentials = allow) }
}

/// Most commands in flight when the server offers PIPELINING (at least 1;
/// default 1024; at most 8 KiB of commands unanswered whatever the window).
///
/// # Safety
///
/// `config` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pop3_config_set_pipeline_window(
    config: *mut pop3_config,
    window: usize,
) -> pop3_result {
    // SAFETY: `config` is NULL or live and unaliased (this function's contract).
    unsafe { set(config, |c| c.config = c.config.pipeline_window(window)) }
}

/// Longest status or listing line in octets (default 8192).
///
/// # Safety
///
/// `config` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pop3_config_set_max_line_len(
    config: *mut pop3_config,
    octets: usize,
) -> pop3_result {
    // SAFETY: `config` is NULL or live and unaliased (this function's contract).
    unsafe { set(config, |c| c.config.limits.max_line_len = octets) }
}

/// Most lines in a LIST or UIDL listing (default 100000; one listing is
/// also held to 8 MiB of lines, the core's `Limits::max_listing_bytes`).
///
/// # Safety
///
/// `config` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pop3_config_set_max_listing_lines(
    config: *mut pop3_config,
    lines: usize,
) -> pop3_result {
    // SAFETY: `config` is NULL or live and unaliased (this function's contract).
    unsafe { set(config, |c| c.config.limits.max_listing_lines = lines) }
}

/// Most octets in the lines of one listing (LIST, UIDL, LANG, CAPA), CRLFs
/// excluded (default 8 MiB); a longer listing fails that command alone.
///
/// # Safety
///
/// `config` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pop3_config_set_max_listing_bytes(
    config: *mut pop3_config,
    octets: usize,
) -> pop3_result {
    // SAFETY: `config` is NULL or live and unaliased (this function's contract).
    unsafe { set(config, |c| c.config.limits.max_listing_bytes = octets) }
}

/// Most lines in a CAPA reply (default 1000).
///
/// # Safety
///
/// `config` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pop3_config_set_max_capa_lines(
    config: *mut pop3_config,
    lines: usize,
) -> pop3_result {
    // SAFETY: `config` is NULL or live and unaliased (this function's contract).
    unsafe { set(config, |c| c.config.limits.max_capa_lines = lines) }
}

/// Longest line inside a message body, or 0 for no limit (the default:
/// bodies are streamed, so long lines cost no memory).
///
/// # Safety
///
/// `config` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pop3_config_set_max_body_line_len(
    config: *mut pop3_config,
    octets: usize,
) -> pop3_result {
    // SAFETY: `config` is NULL or live and unaliased (this function's contract).
    unsafe {
        set(config, |c| {
            c.config.limits.max_body_line_len = (octets > 0).then_some(octets)
        })
    }
}

/// Free space `pop3_client_input_buffer` offers, in octets (default 65536).
///
/// # Safety
///
/// `config` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pop3_config_set_read_size(
    config: *mut pop3_config,
    octets: usize,
) -> pop3_result {
    // SAFETY: `config` is NULL or live and unaliased (this function's contract).
    unsafe { set(config, |c| c.config.read_size = octets.max(1)) }
}

/// Reports every command line sent and status line received as
/// `POP3_EVENT_TRACE`, with secrets replaced by `<redacted>`. Off by default.
///
/// # Safety
///
/// `config` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pop3_config_set_trace(
    config: *mut pop3_config,
    trace: bool,
) -> pop3_result {
    // SAFETY: `config` is NULL or live and unaliased (this function's contract).
    unsafe { set(config, |c| c.config = c.config.trace(trace)) }
}

// ----- client lifetime -----

/// Creates a client for a connection that has just been opened (and, for
/// implicit TLS, whose handshake is done). The settings are copied from
/// `config`. On success writes the client to `*out`; free it with
/// `pop3_client_free`.
///
/// # Safety
///
/// `config` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_new(
    config: *const pop3_config,
    out: *mut *mut pop3_client,
) -> pop3_result {
    if out.is_null() {
        return POP3_ERR_NULL;
    }
    // SAFETY: NULL or live (contract).
    let Some(config) = (unsafe { config.as_ref() }) else {
        return POP3_ERR_NULL;
    };
    guard(|| {
        let client = Box::new(pop3_client {
            session: Session::new(config.config),
        });
        // SAFETY: `out` is not NULL and writable (contract).
        unsafe { put(out, Box::into_raw(client)) };
        POP3_OK
    })
}

/// Frees a client, wiping any unsent bytes (they may hold a password). Every
/// pointer borrowed from it becomes invalid. NULL is ignored.
///
/// # Safety
///
/// `client` is NULL or from `pop3_client_new`, not freed before, and not used
/// after.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_free(client: *mut pop3_client) {
    if client.is_null() {
        return;
    }
    // SAFETY: from Box::into_raw in pop3_client_new and freed only once
    // (contract).
    let client = unsafe { Box::from_raw(client) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(client)));
}

// ----- input -----

/// Hands `len` bytes received from the server to the client, which copies
/// them. `data` may be NULL when `len` is 0.
///
/// # Safety
///
/// `client` is NULL or live; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_receive(
    client: *mut pop3_client,
    data: *const u8,
    len: usize,
) -> pop3_result {
    // SAFETY: `data`/`len` as in this function's contract.
    let data = match unsafe { bytes_arg(data, len) } {
        Ok(data) => data,
        Err(code) => return code,
    };
    // SAFETY: `client` is NULL or live and unaliased (this function's contract).
    let client = unsafe { client_mut(client) };
    run(client, |s, _| s.receive(data))
}

/// The server closed its side of the connection (a read returned 0).
///
/// # Safety
///
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_receive_eof(client: *mut pop3_client) -> pop3_result {
    // SAFETY: `client` is NULL or live and unaliased (this function's contract).
    let client = unsafe { client_mut(client) };
    run(client, |s, _| {
        s.receive_eof();
        POP3_OK
    })
}

/// Free space inside the client to read server bytes into, saving the copy
/// `pop3_client_receive` makes. Writes its address to `*buf` and its size
/// to `*cap`. The space is valid only until the next call on this client,
/// which must be `pop3_client_input_written` reporting how many bytes were
/// stored (0 if none).
///
/// # Safety
///
/// `client` is NULL or live; `buf` and `cap` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_input_buffer(
    client: *mut pop3_client,
    buf: *mut *mut u8,
    cap: *mut usize,
) -> pop3_result {
    if buf.is_null() || cap.is_null() {
        return POP3_ERR_NULL;
    }
    // SAFETY: `client` is NULL or live and unaliased (this function's contract).
    let client = unsafe { client_mut(client) };
    run(client, |s, _| {
        let space = match s.input_buffer() {
            Ok(space) => space,
            Err(code) => return code,
        };
        let (ptr, len) = (space.as_mut_ptr(), space.len());
        // SAFETY: both checked not NULL above and writable (contract).
        unsafe {
            put(buf, ptr);
            put(cap, len);
        }
        POP3_OK
    })
}

/// Reports that `n` bytes were stored at the start of the space the previous
/// call, `pop3_client_input_buffer`, offered. `POP3_ERR_CALL_ORDER` if that
/// was not the previous call; `POP3_ERR_INVALID_ARGUMENT` if `n` exceeds
/// the space.
///
/// # Safety
///
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_input_written(
    client: *mut pop3_client,
    n: usize,
) -> pop3_result {
    // SAFETY: `client` is NULL or live and unaliased (this function's contract).
    let client = unsafe { client_mut(client) };
    run(client, |s, offer| s.input_written(offer, n))
}

/// The TLS handshake after `POP3_EVENT_START_TLS` failed (or its
/// certificate was refused), so the session cannot go on. The
/// `pop3_client_start_tls` handle completes with `POP3_EVENT_FAILED`, every
/// command submitted behind it with `POP3_EVENT_CANCELLED`, and then
/// `POP3_EVENT_CLOSED` follows with `result` `POP3_ERR_TLS`: read events
/// until then as usual. `POP3_ERR_WRONG_STATE` when no upgrade is pending.
///
/// # Safety
///
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_tls_failed(client: *mut pop3_client) -> pop3_result {
    // SAFETY: `client` is NULL or live and unaliased (this function's contract).
    let client = unsafe { client_mut(client) };
    run(client, |s, _| s.tls_failed())
}

/// TLS is up after `POP3_EVENT_START_TLS` (the handshake succeeded and the
/// certificate was verified). `POP3_ERR_WRONG_STATE` when no upgrade is
/// pending.
///
/// # Safety
///
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_tls_established(client: *mut pop3_client) -> pop3_result {
    // SAFETY: `client` is NULL or live and unaliased (this function's contract).
    let client = unsafe { client_mut(client) };
    run(client, |s, _| s.tls_established())
}

// ----- output -----

/// The bytes to write to the server next. On `POP3_OK` writes their address
/// to `*out` and their length (never 0) to `*len`; `POP3_DONE` when there is
/// nothing to write.
///
/// The bytes are lent until they are reported written: they stay valid and
/// unchanged until `pop3_client_output_written` has reported all of them,
/// whatever other calls are made meanwhile (events, input, new commands),
/// and until `pop3_client_free`. Until then this function returns the
/// unwritten rest of the same bytes (after a partial report, the pointer
/// advanced by the octets reported); output queued meanwhile comes next.
/// So both styles of loop work without a copy:
///
/// - readiness (poll, epoll, kqueue): when the socket is writable, write
///   what this returns and report what the write took, in a loop;
/// - completion (libuv `uv_write`, io_uring, IOCP): hand the bytes to the
///   kernel, make no other write until it completes, then report the count
///   and ask again (`examples/uv_fetch.c`).
///
/// Each byte is wiped as soon as it is reported written, and what is left
/// when the client is freed, since a line may carry a password.
///
/// # Safety
///
/// `client` is NULL or live; `out` and `len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_pending_output(
    client: *mut pop3_client,
    out: *mut *const u8,
    len: *mut usize,
) -> pop3_result {
    if out.is_null() || len.is_null() {
        return POP3_ERR_NULL;
    }
    // SAFETY: `client` is NULL or live and unaliased (this function's contract).
    let client = unsafe { client_mut(client) };
    run(client, |s, _| match s.pending_output() {
        Some(bytes) => {
            // SAFETY: both checked not NULL above and writable (contract).
            unsafe {
                put(out, bytes.as_ptr());
                put(len, bytes.len());
            }
            POP3_OK
        }
        None => POP3_DONE,
    })
}

/// Reports that the first `n` of the bytes `pop3_client_pending_output`
/// lent were written (a partial write leaves the rest lent, unmoved). The
/// written bytes are wiped at once. `POP3_ERR_CALL_ORDER` when nothing is
/// lent; `POP3_ERR_INVALID_ARGUMENT` when `n` is more than is lent.
///
/// # Safety
///
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_output_written(
    client: *mut pop3_client,
    n: usize,
) -> pop3_result {
    // SAFETY: `client` is NULL or live and unaliased (this function's contract).
    let client = unsafe { client_mut(client) };
    run(client, |s, _| s.output_written(n))
}

// ----- events -----

/// The next event. On `POP3_OK` fills `*event`; its pointers, and what the
/// listing accessors give for it, stay valid until the next call on this
/// client other than a `const` accessor. `POP3_DONE` when no event is ready (write pending
/// output, then read); `POP3_ERR_CLOSED` once `POP3_EVENT_CLOSED` was
/// delivered.
///
/// # Safety
///
/// `client` is NULL or live; `event` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_next_event(
    client: *mut pop3_client,
    event: *mut pop3_event,
) -> pop3_result {
    if event.is_null() {
        return POP3_ERR_NULL;
    }
    // SAFETY: `client` is NULL or live and unaliased (this function's contract).
    let client = unsafe { client_mut(client) };
    run(client, |s, _| match s.next_event() {
        Ok(owned) => {
            // SAFETY: checked not NULL above and writable (contract).
            unsafe { put(event, pop3_event::of(owned)) };
            POP3_OK
        }
        Err(code) => code,
    })
}

/// Entry `index` of the LIST listing of the current event
/// (`POP3_REPLY_LIST` or `POP3_REPLY_LIST_ONE`): writes the message number
/// and its size in octets. `POP3_ERR_CALL_ORDER` when the current event is
/// no LIST reply, `POP3_ERR_INVALID_ARGUMENT` when `index >= count`.
///
/// # Safety
///
/// `client` is NULL or live; `msg` and `size` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_list_entry(
    client: *const pop3_client,
    index: usize,
    msg: *mut u32,
    size: *mut u64,
) -> pop3_result {
    if msg.is_null() || size.is_null() {
        return POP3_ERR_NULL;
    }
    // SAFETY: `client` is NULL or live and unaliased (this function's contract).
    let client = unsafe { client_ref(client) };
    run_const(client, |s| {
        let entry = match s.current() {
            Some(Owned::Ok {
                reply: OkReply::List(entries),
                ..
            }) => entries.get(index),
            Some(Owned::Ok {
                reply: OkReply::ListOne(entry),
                ..
            }) => (index == 0).then_some(entry),
            _ => return POP3_ERR_CALL_ORDER,
        };
        let Some(entry) = entry else {
            return POP3_ERR_INVALID_ARGUMENT;
        };
        // SAFETY: both checked not NULL above and writable (contract).
        unsafe {
            put(msg, entry.msg.get());
            put(size, entry.size);
        }
        POP3_OK
    })
}

/// Entry `index` of the UIDL listing of the current event (`POP3_REPLY_UIDL`
/// or `POP3_REPLY_UIDL_ONE`): writes the message number and its unique id
/// (NUL-terminated, borrowed like the event's text).
///
/// # Safety
///
/// `client` is NULL or live; `msg`, `uid` and `uid_len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_uidl_entry(
    client: *const pop3_client,
    index: usize,
    msg: *mut u32,
    uid: *mut *const c_char,
    uid_len: *mut usize,
) -> pop3_result {
    if msg.is_null() || uid.is_null() || uid_len.is_null() {
        return POP3_ERR_NULL;
    }
    // SAFETY: `client` is NULL or live and unaliased (this function's contract).
    let client = unsafe { client_ref(client) };
    run_const(client, |s| {
        let entry = match s.current() {
            Some(Owned::Ok {
                reply: OkReply::Uidl(entries),
                ..
            }) => entries.get(index).map(|(n, id)| (*n, id)),
            Some(Owned::Ok {
                reply: OkReply::UidlOne(n, id),
                ..
            }) => (index == 0).then_some((*n, id)),
            _ => return POP3_ERR_CALL_ORDER,
        };
        let Some((n, id)) = entry else {
            return POP3_ERR_INVALID_ARGUMENT;
        };
        // SAFETY: all three checked not NULL above and writable (contract).
        unsafe {
            put(msg, n);
            put(uid, id.with_nul().as_ptr().cast());
            put(uid_len, id.bytes().len());
        }
        POP3_OK
    })
}

/// Line `index` of the capabilities of the current event
/// (`POP3_EVENT_CAPABILITIES`, or `POP3_EVENT_OK` with
/// `POP3_REPLY_CAPABILITIES`), as the server's CAPA line would read
/// (`"SASL PLAIN SCRAM-SHA-256"`, `"PIPELINING"`); NUL-terminated, borrowed
/// like the event's text.
///
/// # Safety
///
/// `client` is NULL or live; `line` and `line_len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_capability(
    client: *const pop3_client,
    index: usize,
    line: *mut *const c_char,
    line_len: *mut usize,
) -> pop3_result {
    if line.is_null() || line_len.is_null() {
        return POP3_ERR_NULL;
    }
    // SAFETY: `client` is NULL or live and unaliased (this function's contract).
    let client = unsafe { client_ref(client) };
    run_const(client, |s| {
        let lines = match s.current() {
            Some(Owned::Capabilities(lines))
            | Some(Owned::Ok {
                reply: OkReply::Capabilities(lines),
                ..
            }) => lines,
            _ => return POP3_ERR_CALL_ORDER,
        };
        let Some(text) = lines.get(index) else {
            return POP3_ERR_INVALID_ARGUMENT;
        };
        // SAFETY: both checked not NULL above and writable (contract).
        unsafe {
            put(line, text.with_nul().as_ptr().cast());
            put(line_len, text.bytes().len());
        }
        POP3_OK
    })
}

/// Why the server refused an OAuth 2.0 token, for the current event: a
/// `POP3_EVENT_ERR` of an `"xoauth2"` or `"oauthbearer"` login after which
/// the server had sent its JSON error report (Gmail does). Writes the
/// refusal in words (`"the token was refused (expired, or lacks the scope
/// https://mail.google.com/)"`), NUL-terminated and borrowed like the
/// event's text, and returns `POP3_OK`; `POP3_DONE` when this `-ERR` carries
/// no such report; `POP3_ERR_CALL_ORDER` when the current event is no
/// `POP3_EVENT_ERR`.
///
/// # Safety
///
/// `client` is NULL or live; `text` and `text_len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_token_refusal(
    client: *const pop3_client,
    text: *mut *const c_char,
    text_len: *mut usize,
) -> pop3_result {
    if text.is_null() || text_len.is_null() {
        return POP3_ERR_NULL;
    }
    // SAFETY: `client` is NULL or live and unaliased (this function's contract).
    let client = unsafe { client_ref(client) };
    run_const(client, |s| {
        let Some(Owned::Err { refusal, .. }) = s.current() else {
            return POP3_ERR_CALL_ORDER;
        };
        let Some(refusal) = refusal else {
            return POP3_DONE;
        };
        // SAFETY: both checked not NULL above and writable (contract).
        unsafe {
            put(text, refusal.with_nul().as_ptr().cast());
            put(text_len, refusal.bytes().len());
        }
        POP3_OK
    })
}

/// Whether the current event, a `POP3_EVENT_ERR`, refused the credentials:
/// a login step (`USER`, `PASS`, `APOP`, `AUTH`) refused with `[AUTH]`,
/// without a response code (as Microsoft's servers refuse a bad password)
/// or with one the core does not know. A temporary code (`IN-USE`,
/// `LOGIN-DELAY`, `SYS/TEMP`) is not: the credentials were not the problem.
/// Writes it and returns `POP3_OK`; `POP3_ERR_CALL_ORDER` when the current
/// event is no `POP3_EVENT_ERR`.
///
/// # Safety
///
/// `client` is NULL or live; `refused` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_authentication_refused(
    client: *const pop3_client,
    refused: *mut bool,
) -> pop3_result {
    if refused.is_null() {
        return POP3_ERR_NULL;
    }
    // SAFETY: `client` is NULL or live and unaliased (this function's contract).
    let client = unsafe { client_ref(client) };
    run_const(client, |s| {
        let Some(Owned::Err {
            authentication_refused,
            ..
        }) = s.current()
        else {
            return POP3_ERR_CALL_ORDER;
        };
        // SAFETY: checked not NULL above and writable (contract).
        unsafe { put(refused, *authentication_refused) };
        POP3_OK
    })
}

/// Whether the connection is encrypted (implicit TLS, or STLS completed).
///
/// # Safety
///
/// `client` is NULL or live; `encrypted` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_is_encrypted(
    client: *const pop3_client,
    encrypted: *mut bool,
) -> pop3_result {
    if encrypted.is_null() {
        return POP3_ERR_NULL;
    }
    // SAFETY: `client` is NULL or live and unaliased (this function's contract).
    let client = unsafe { client_ref(client) };
    run_const(client, |s| {
        // SAFETY: checked not NULL above and writable (contract).
        unsafe { put(encrypted, s.core().is_encrypted()) };
        POP3_OK
    })
}

// ----- commands -----
//
// Each writes the command's handle to `*handle` on POP3_OK. On an error
// nothing is queued and `*handle` is untouched. Strings are NUL-terminated
// UTF-8, read during the call only.

/// `USER name`.
///
/// # Safety
///
/// `client` is NULL or live; `name` is NULL or a C string; `handle` is NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_user(
    client: *mut pop3_client,
    name: *const c_char,
    handle: *mut pop3_handle,
) -> pop3_result {
    // SAFETY: `name` as in the contract.
    let name = match unsafe { text_arg(name) } {
        Ok(name) => name,
        Err(code) => return code,
    };
    // SAFETY: `client` and `handle` meet `command`'s contract (this function's own).
    unsafe { command(client, handle, |s| s.submit(|c| c.user(name))) }
}

/// `PASS password`. The bytes of the PASS line are wiped once they have
/// been written; the caller should wipe its own copy of the password.
///
/// # Safety
///
/// `client` is NULL or live; `password` is NULL or a C string; `handle` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_pass(
    client: *mut pop3_client,
    password: *const c_char,
    handle: *mut pop3_handle,
) -> pop3_result {
    // SAFETY: `password` as in the contract.
    let password = match unsafe { text_arg(password) } {
        Ok(password) => password,
        Err(code) => return code,
    };
    // SAFETY: `client` and `handle` meet `command`'s contract (this function's own).
    unsafe {
        command(client, handle, |s| {
            s.submit(|c| c.pass(Secret::new(String::from(password))))
        })
    }
}

/// `STAT`: the reply is `POP3_REPLY_STAT`.
///
/// # Safety
///
/// `client` is NULL or live; `handle` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_stat(
    client: *mut pop3_client,
    handle: *mut pop3_handle,
) -> pop3_result {
    // SAFETY: `client` and `handle` meet `command`'s contract (this function's own).
    unsafe { command(client, handle, |s| s.submit(|c| c.submit(Command::Stat))) }
}

/// `NOOP`.
///
/// # Safety
///
/// `client` is NULL or live; `handle` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_noop(
    client: *mut pop3_client,
    handle: *mut pop3_handle,
) -> pop3_result {
    // SAFETY: `client` and `handle` meet `command`'s contract (this function's own).
    unsafe { command(client, handle, |s| s.submit(|c| c.submit(Command::Noop))) }
}

/// `RSET`: unmarks messages marked for deletion.
///
/// # Safety
///
/// `client` is NULL or live; `handle` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_rset(
    client: *mut pop3_client,
    handle: *mut pop3_handle,
) -> pop3_result {
    // SAFETY: `client` and `handle` meet `command`'s contract (this function's own).
    unsafe { command(client, handle, |s| s.submit(|c| c.submit(Command::Rset))) }
}

/// `QUIT`: in the transaction state, deletions are committed; then
/// `POP3_EVENT_CLOSED` follows.
///
/// # Safety
///
/// `client` is NULL or live; `handle` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_quit(
    client: *mut pop3_client,
    handle: *mut pop3_handle,
) -> pop3_result {
    // SAFETY: `client` and `handle` meet `command`'s contract (this function's own).
    unsafe { command(client, handle, |s| s.submit(|c| c.submit(Command::Quit))) }
}

/// `CAPA`: the reply is `POP3_REPLY_CAPABILITIES`.
///
/// # Safety
///
/// `client` is NULL or live; `handle` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_capa(
    client: *mut pop3_client,
    handle: *mut pop3_handle,
) -> pop3_result {
    // SAFETY: `client` and `handle` meet `command`'s contract (this function's own).
    unsafe { command(client, handle, |s| s.submit(|c| c.submit(Command::Capa))) }
}

/// `UTF8` (RFC 6856).
///
/// # Safety
///
/// `client` is NULL or live; `handle` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_utf8(
    client: *mut pop3_client,
    handle: *mut pop3_handle,
) -> pop3_result {
    // SAFETY: `client` and `handle` meet `command`'s contract (this function's own).
    unsafe { command(client, handle, |s| s.submit(|c| c.submit(Command::Utf8))) }
}

/// STLS as one operation (RFC 2595): asks CAPA first when the
/// capabilities are not known, and sends STLS only if they list it —
/// otherwise the handle completes with `POP3_EVENT_CANCELLED` and
/// `POP3_ERR_STLS_UNAVAILABLE`, nothing but CAPA having been sent. After the
/// server's `+OK`, `POP3_EVENT_START_TLS` asks for the handshake; once
/// `pop3_client_tls_established` is called, the client asks CAPA again and
/// the handle completes with `POP3_EVENT_OK` and `POP3_REPLY_TLS_ESTABLISHED`.
/// Commands submitted after it (a login) wait for TLS, and are cancelled if
/// the upgrade fails.
///
/// # Safety
///
/// `client` is NULL or live; `handle` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_start_tls(
    client: *mut pop3_client,
    handle: *mut pop3_handle,
) -> pop3_result {
    // SAFETY: `client` and `handle` meet `command`'s contract (this function's own).
    unsafe { command(client, handle, Session::start_tls) }
}

/// `LIST` (msg 0: every message, `POP3_REPLY_LIST`) or `LIST msg`
/// (`POP3_REPLY_LIST_ONE`).
///
/// # Safety
///
/// `client` is NULL or live; `handle` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_list(
    client: *mut pop3_client,
    msg: u32,
    handle: *mut pop3_handle,
) -> pop3_result {
    // SAFETY: `client` and `handle` meet `command`'s contract (this function's own).
    unsafe {
        command(client, handle, |s| {
            s.submit(|c| c.submit(Command::List(MsgNum::new(msg))))
        })
    }
}

/// `UIDL` (msg 0: every message, `POP3_REPLY_UIDL`) or `UIDL msg`
/// (`POP3_REPLY_UIDL_ONE`).
///
/// # Safety
///
/// `client` is NULL or live; `handle` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_uidl(
    client: *mut pop3_client,
    msg: u32,
    handle: *mut pop3_handle,
) -> pop3_result {
    // SAFETY: `client` and `handle` meet `command`'s contract (this function's own).
    unsafe {
        command(client, handle, |s| {
            s.submit(|c| c.submit(Command::Uidl(MsgNum::new(msg))))
        })
    }
}

/// `RETR msg` (msg >= 1): `POP3_EVENT_BODY_START`, `POP3_EVENT_BODY`
/// pieces, `POP3_EVENT_BODY_END`; or `POP3_EVENT_ERR`.
///
/// # Safety
///
/// `client` is NULL or live; `handle` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_retr(
    client: *mut pop3_client,
    msg: u32,
    handle: *mut pop3_handle,
) -> pop3_result {
    // SAFETY: `client` and `handle` meet `command`'s contract (this function's own).
    unsafe {
        command(client, handle, |s| {
            let command = msg_arg(msg).map(Command::Retr)?;
            s.submit(|c| c.submit(command))
        })
    }
}

/// `DELE msg` (msg >= 1): marks the message; QUIT commits.
///
/// # Safety
///
/// `client` is NULL or live; `handle` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_dele(
    client: *mut pop3_client,
    msg: u32,
    handle: *mut pop3_handle,
) -> pop3_result {
    // SAFETY: `client` and `handle` meet `command`'s contract (this function's own).
    unsafe {
        command(client, handle, |s| {
            let command = msg_arg(msg).map(Command::Dele)?;
            s.submit(|c| c.submit(command))
        })
    }
}

/// `TOP msg lines` (msg >= 1): the headers, the blank line and the first
/// `lines` body lines, delivered like RETR.
///
/// # Safety
///
/// `client` is NULL or live; `handle` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_top(
    client: *mut pop3_client,
    msg: u32,
    lines: u32,
    handle: *mut pop3_handle,
) -> pop3_result {
    // SAFETY: `client` and `handle` meet `command`'s contract (this function's own).
    unsafe {
        command(client, handle, |s| {
            let msg = msg_arg(msg)?;
            s.submit(|c| c.submit(Command::Top(msg, lines)))
        })
    }
}

// ----- composite operations -----

/// Logs in as one operation. `method` names the mechanism: `"auto"` (the
/// strongest the server offers), `"user"` (USER/PASS), `"apop"`, `"plain"`,
/// `"login"`, `"cram-md5"`, `"scram-sha-1"`, `"scram-sha-256"`, `"xoauth2"`,
/// `"oauthbearer"` (for the last two `secret` is an OAuth 2.0 token); any
/// case. Everything is checked before anything is queued: credentials on an
/// unencrypted connection (`POP3_ERR_PLAINTEXT_CREDENTIALS`), CR/LF/NUL in
/// `user` or `secret`, an unknown method (`POP3_ERR_INVALID_ARGUMENT`).
///
/// The handle completes with `POP3_EVENT_OK` (`POP3_REPLY_AUTHENTICATED`),
/// `POP3_EVENT_ERR` (the refusal of the failing step), `POP3_EVENT_FAILED`
/// or `POP3_EVENT_CANCELLED`. Events of the steps inside (CAPA, USER, PASS,
/// AUTH) are not reported. A SCRAM nonce comes from the operating system's
/// random number generator (`POP3_ERR_RANDOM` if it fails). The bytes of the
/// lines that carried the secret are wiped once written; the caller should
/// wipe its own copy.
///
/// # Safety
///
/// `client` is NULL or live; `user`, `secret` and `method` are NULL or C
/// strings; `handle` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_login(
    client: *mut pop3_client,
    user: *const c_char,
    secret: *const c_char,
    method: *const c_char,
    handle: *mut pop3_handle,
) -> pop3_result {
    // SAFETY: the three strings are NULL or C strings (contract).
    let (user, secret, method) =
        match unsafe { (text_arg(user), text_arg(secret), text_arg(method)) } {
            (Ok(u), Ok(s), Ok(m)) => (u, s, m),
            (Err(code), _, _) | (_, Err(code), _) | (_, _, Err(code)) => return code,
        };
    // SAFETY: `client` and `handle` meet `command`'s contract (this function's own).
    unsafe { command(client, handle, |s| s.login(user, secret, method)) }
}

/// Submits one command per message number with `f`, all checked first, and
/// writes the handles to `handles[0..count]`.
///
/// # Safety
///
/// As for `command`; `msgs` points to `count` readable numbers and `handles`
/// to `count` writable handles (either may be NULL when `count` is 0).
unsafe fn many(
    client: *mut pop3_client,
    msgs: *const u32,
    count: usize,
    handles: *mut pop3_handle,
    f: impl FnOnce(&mut Session, &[MsgNum]) -> Result<Vec<u64>, pop3_result>,
) -> pop3_result {
    if count > 0 && (msgs.is_null() || handles.is_null()) {
        return POP3_ERR_NULL;
    }
    if count > isize::MAX as usize / core::mem::size_of::<pop3_handle>() {
        return POP3_ERR_INVALID_ARGUMENT;
    }
    let numbers: &[u32] = if count == 0 {
        &[]
    } else {
        // SAFETY: not NULL, `count` readable u32 values (contract), and the
        // size fits in isize (checked above).
        unsafe { core::slice::from_raw_parts(msgs, count) }
    };
    // SAFETY: `client` is NULL or live and unaliased (contract).
    let client = unsafe { client_mut(client) };
    run(client, |s, _| {
        let mut checked = Vec::with_capacity(numbers.len());
        for &n in numbers {
            match msg_arg(n) {
                Ok(msg) => checked.push(msg),
                Err(code) => return code,
            }
        }
        match f(s, &checked) {
            Ok(ids) => {
                for (i, id) in ids.into_iter().enumerate().take(count) {
                    // SAFETY: `handles` holds `count` writable slots
                    // (contract) and `i < count`.
                    unsafe { put(handles.add(i), id) };
                }
                POP3_OK
            }
            Err(code) => code,
        }
    })
}

/// `RETR` for each of `count` message numbers, pipelined when the server
/// allows it. All are checked first: on an error nothing is queued. Writes
/// one handle per message, in order, to `handles[0..count]`; each completes
/// as a single `pop3_client_retr` does.
///
/// # Safety
///
/// `client` is NULL or live; `msgs` points to `count` numbers and `handles`
/// to room for `count` handles (NULL allowed when `count` is 0).
#[no_mangle]
pub unsafe extern "C" fn pop3_client_retr_many(
    client: *mut pop3_client,
    msgs: *const u32,
    count: usize,
    handles: *mut pop3_handle,
) -> pop3_result {
    // SAFETY: the arguments meet `many`'s contract (this function's own).
    unsafe { many(client, msgs, count, handles, |s, msgs| s.retr_many(msgs)) }
}

/// `DELE` for each of `count` message numbers, like `pop3_client_retr_many`.
/// Deletions take effect at QUIT.
///
/// # Safety
///
/// As for `pop3_client_retr_many`.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_dele_many(
    client: *mut pop3_client,
    msgs: *const u32,
    count: usize,
    handles: *mut pop3_handle,
) -> pop3_result {
    // SAFETY: the arguments meet `many`'s contract (this function's own).
    unsafe { many(client, msgs, count, handles, |s, msgs| s.dele_many(msgs)) }
}

/// Stops reporting a command (a RETR whose message is no longer wanted, say):
/// the rest of its reply is read and dropped and no more events come for it.
/// `POP3_ERR_INVALID_ARGUMENT` for a handle that is unknown or complete.
///
/// # Safety
///
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_discard(
    client: *mut pop3_client,
    handle: pop3_handle,
) -> pop3_result {
    // SAFETY: `client` is NULL or live and unaliased (this function's contract).
    let client = unsafe { client_mut(client) };
    run(client, |s, _| s.discard(handle))
}

/// The TLS channel binding for the logins submitted after this call, so that
/// `"auto"` prefers SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS, which prove to
/// the server that no one relays the TLS session. `kind` is
/// `POP3_CHANNEL_BINDING_TLS_EXPORTER` (TLS 1.3) or
/// `POP3_CHANNEL_BINDING_TLS_SERVER_END_POINT` (TLS 1.2; or
/// `POP3_CHANNEL_BINDING_SERVER_CERTIFICATE` with the server's certificate
/// in DER, from which the client computes it: `POP3_ERR_INVALID_ARGUMENT`
/// when its signature algorithm names no hash the client knows); `data`
/// (`len` > 0 octets) is copied. `kind` 0 clears the binding. Call it after the TLS
/// handshake; with STLS, right after `pop3_client_tls_established`, and a
/// login submitted before (queued behind `pop3_client_start_tls`) takes the
/// binding too, as long as it has not started.
///
/// # Safety
///
/// `client` is NULL or live; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn pop3_client_set_channel_binding(
    client: *mut pop3_client,
    kind: u32,
    data: *const u8,
    len: usize,
) -> pop3_result {
    // SAFETY: `data`/`len` as in this function's contract.
    let data = match unsafe { bytes_arg(data, len) } {
        Ok(data) => data,
        Err(code) => return code,
    };
    let binding = match kind {
        0 => None,
        _ if data.is_empty() => return POP3_ERR_INVALID_ARGUMENT,
        POP3_CHANNEL_BINDING_TLS_EXPORTER => Some(ChannelBinding::tls_exporter(data.to_vec())),
        POP3_CHANNEL_BINDING_TLS_SERVER_END_POINT => {
            Some(ChannelBinding::tls_server_end_point(data.to_vec()))
        }
        POP3_CHANNEL_BINDING_SERVER_CERTIFICATE => {
            match ChannelBinding::from_server_certificate(data) {
                Some(binding) => Some(binding),
                None => return POP3_ERR_INVALID_ARGUMENT,
            }
        }
        _ => return POP3_ERR_INVALID_ARGUMENT,
    };
    // SAFETY: `client` is NULL or live and unaliased (this function's contract).
    let client = unsafe { client_mut(client) };
    run(client, |s, _| {
        s.set_channel_binding(binding);
        POP3_OK
    })
}
