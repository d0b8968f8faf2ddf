//! The C ABI of `pop3-ffi` driven the way a careless C program might: an
//! arbitrary sequence of calls with arbitrary arguments — received bytes
//! (copied or written into the offered input buffer, with lengths that may
//! exceed it), EOF, TLS established, partial and excessive output reports,
//! event pulls, listing accessors with arbitrary indices, every command with
//! arbitrary strings (not UTF-8, CR/LF, empty) and numbers, composite
//! operations with arbitrary method names and message lists, channel
//! bindings of any kind and length, and NULL pointers in many positions.
//!
//! Asserted: no panic reaches the boundary (`POP3_ERR_PANIC` never comes
//! back, and libFuzzer aborts on any panic even if caught); every result is
//! a documented code; out-parameters are untouched on failure; every pointer
//! handed out can be read for its whole length (ASan checks); event handles
//! are ones the target was given (or 0); `POP3_EVENT_CLOSED` comes at most
//! once and `pop3_client_next_event` returns `POP3_ERR_CLOSED` after it;
//! `PASS` never leaves on an unencrypted connection unless allowed.
#![no_main]
#![allow(unsafe_code)]

use std::collections::HashSet;
use std::ffi::CString;
use std::ptr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pop3::*;

#[derive(Arbitrary, Debug)]
struct Input {
    encrypted: bool,
    allow_plaintext: bool,
    window: u8,
    read_size: u16,
    max_line: u16,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Receive(Vec<u8>),
    /// Bytes written into `pop3_client_input_buffer`, reported as `claimed`.
    ReceiveBuffered {
        data: Vec<u8>,
        claimed: u32,
    },
    InputWrittenAlone(u32),
    Eof,
    TlsEstablished,
    Events(u8),
    Output {
        written: u32,
        partial: bool,
    },
    List(u8),
    Uidl(u8),
    Capability(u8),
    Command(Cmd),
    Nulls(u8),
    ChannelBinding {
        kind: u8,
        data: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
enum Cmd {
    User(Vec<u8>),
    Pass(Vec<u8>),
    Login {
        user: Vec<u8>,
        secret: Vec<u8>,
        method: u8,
    },
    Stat,
    List(u32),
    Uidl(u32),
    Retr(u32),
    Top(u32, u32),
    Dele(u32),
    Noop,
    Rset,
    Quit,
    Capa,
    Utf8,
    StartTls,
    RetrMany(Vec<u32>),
    DeleMany(Vec<u32>),
}

const METHODS: [&str; 12] = [
    "auto",
    "user",
    "apop",
    "plain",
    "login",
    "cram-md5",
    "scram-sha-1",
    "SCRAM-SHA-256",
    "xoauth2",
    "oauthbearer",
    "bogus",
    "",
];

const SENTINEL: u64 = 0x5EED_5EED;

fn documented(code: pop3_result) -> bool {
    (POP3_ERR_INPUT_FULL..=POP3_DONE).contains(&code) && code != POP3_ERR_PANIC
}

/// A C string from arbitrary bytes: cut at the first NUL, as C would see it.
fn c_string(bytes: &[u8]) -> CString {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).unwrap()
}

struct State {
    client: *mut pop3_client,
    handles: HashSet<u64>,
    closed: bool,
    allow_plaintext: bool,
}

impl State {
    fn check(&self, code: pop3_result) {
        assert!(documented(code), "undocumented result {code}");
    }

    fn take_handle(&mut self, code: pop3_result, handle: u64) {
        self.check(code);
        if code == POP3_OK {
            assert_ne!(handle, 0);
            assert!(self.handles.insert(handle), "handle {handle} given twice");
        } else {
            assert_eq!(handle, SENTINEL, "out-parameter written on failure");
        }
    }

    unsafe fn command(&mut self, cmd: &Cmd) {
        let c = self.client;
        let mut h = SENTINEL;
        let code = unsafe {
            match cmd {
                Cmd::User(name) => pop3_client_user(c, c_string(name).as_ptr(), &mut h),
                Cmd::Pass(pw) => pop3_client_pass(c, c_string(pw).as_ptr(), &mut h),
                Cmd::Login {
                    user,
                    secret,
                    method,
                } => {
                    let method = CString::new(METHODS[*method as usize % METHODS.len()]).unwrap();
                    pop3_client_login(
                        c,
                        c_string(user).as_ptr(),
                        c_string(secret).as_ptr(),
                        method.as_ptr(),
                        &mut h,
                    )
                }
                Cmd::Stat => pop3_client_stat(c, &mut h),
                Cmd::List(n) => pop3_client_list(c, *n % 4, &mut h),
                Cmd::Uidl(n) => pop3_client_uidl(c, *n % 4, &mut h),
                Cmd::Retr(n) => pop3_client_retr(c, *n % 4, &mut h),
                Cmd::Top(n, l) => pop3_client_top(c, *n % 4, *l, &mut h),
                Cmd::Dele(n) => pop3_client_dele(c, *n % 4, &mut h),
                Cmd::Noop => pop3_client_noop(c, &mut h),
                Cmd::Rset => pop3_client_rset(c, &mut h),
                Cmd::Quit => pop3_client_quit(c, &mut h),
                Cmd::Capa => pop3_client_capa(c, &mut h),
                Cmd::Utf8 => pop3_client_utf8(c, &mut h),
                Cmd::StartTls => pop3_client_start_tls(c, &mut h),
                Cmd::RetrMany(msgs) | Cmd::DeleMany(msgs) => {
                    let msgs: Vec<u32> = msgs.iter().take(64).map(|n| n % 8).collect();
                    let mut out = vec![SENTINEL; msgs.len()];
                    let code = if matches!(cmd, Cmd::RetrMany(_)) {
                        pop3_client_retr_many(c, msgs.as_ptr(), msgs.len(), out.as_mut_ptr())
                    } else {
                        pop3_client_dele_many(c, msgs.as_ptr(), msgs.len(), out.as_mut_ptr())
                    };
                    self.check(code);
                    for h in out {
                        self.take_handle(code, h);
                    }
                    return;
                }
            }
        };
        self.take_handle(code, h);
    }

    unsafe fn events(&mut self, n: u8) {
        for _ in 0..=n {
            let mut ev = std::mem::MaybeUninit::<pop3_event>::uninit();
            let code = unsafe { pop3_client_next_event(self.client, ev.as_mut_ptr()) };
            self.check(code);
            if self.closed {
                assert_eq!(code, POP3_ERR_CLOSED, "an event after POP3_EVENT_CLOSED");
            }
            if code != POP3_OK {
                return;
            }
            let ev = unsafe { ev.assume_init() };
            assert!(
                ev.handle == 0 || self.handles.contains(&ev.handle),
                "unknown handle"
            );
            // Touch every borrowed byte, so that ASan sees a bad pointer.
            unsafe {
                assert!(!ev.text.is_null());
                let text = std::slice::from_raw_parts(ev.text.cast::<u8>(), ev.text_len + 1);
                assert_eq!(text[ev.text_len], 0);
                assert!(std::str::from_utf8(&text[..ev.text_len]).is_ok());
                if !ev.code.is_null() {
                    let code = std::slice::from_raw_parts(ev.code.cast::<u8>(), ev.code_len + 1);
                    assert_eq!(code[ev.code_len], 0);
                }
                if !ev.data.is_null() {
                    let data = std::slice::from_raw_parts(ev.data, ev.data_len);
                    std::hint::black_box(data.iter().map(|&b| b as u64).sum::<u64>());
                }
            }
            if ev.kind == pop3_event_kind::POP3_EVENT_CLOSED {
                self.closed = true;
            }
            // Every listing entry is readable, and one past the end is refused.
            unsafe {
                for i in 0..=ev.count.min(1024) as usize {
                    self.list(i);
                    self.uidl(i);
                    self.capability(i);
                }
            }
        }
    }

    unsafe fn list(&self, i: usize) {
        let (mut msg, mut size) = (u32::MAX, u64::MAX);
        let code = unsafe { pop3_client_list_entry(self.client, i, &mut msg, &mut size) };
        self.check(code);
        if code != POP3_OK {
            assert_eq!((msg, size), (u32::MAX, u64::MAX));
        } else {
            assert_ne!(msg, 0);
        }
    }

    unsafe fn uidl(&self, i: usize) {
        let (mut msg, mut uid, mut len) = (u32::MAX, ptr::null(), usize::MAX);
        let code = unsafe { pop3_client_uidl_entry(self.client, i, &mut msg, &mut uid, &mut len) };
        self.check(code);
        if code == POP3_OK {
            let bytes = unsafe { std::slice::from_raw_parts(uid.cast::<u8>(), len + 1) };
            assert_eq!(bytes[len], 0);
        } else {
            assert!(uid.is_null() && len == usize::MAX && msg == u32::MAX);
        }
    }

    unsafe fn capability(&self, i: usize) {
        let (mut line, mut len) = (ptr::null(), usize::MAX);
        let code = unsafe { pop3_client_capability(self.client, i, &mut line, &mut len) };
        self.check(code);
        if code == POP3_OK {
            let bytes = unsafe { std::slice::from_raw_parts(line.cast::<u8>(), len + 1) };
            assert_eq!(bytes[len], 0);
        } else {
            assert!(line.is_null() && len == usize::MAX);
        }
    }

    unsafe fn output(&mut self, written: u32, partial: bool) {
        let (mut out, mut len) = (ptr::null(), usize::MAX);
        let code = unsafe { pop3_client_pending_output(self.client, &mut out, &mut len) };
        self.check(code);
        if code != POP3_OK {
            assert!(out.is_null() && len == usize::MAX);
            let code = unsafe { pop3_client_output_written(self.client, written as usize) };
            assert_eq!(code, POP3_ERR_CALL_ORDER);
            return;
        }
        assert!(len > 0);
        let bytes = unsafe { std::slice::from_raw_parts(out, len) };
        let mut encrypted = false;
        assert_eq!(
            unsafe { pop3_client_is_encrypted(self.client, &mut encrypted) },
            POP3_OK
        );
        if !encrypted && !self.allow_plaintext {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains("PASS "),
                "a password went out in clear: {text:?}"
            );
        }
        let n = if partial { written as usize } else { len };
        let code = unsafe { pop3_client_output_written(self.client, n) };
        self.check(code);
        if n <= len {
            assert_eq!(code, POP3_OK);
        } else {
            assert_eq!(code, POP3_ERR_INVALID_ARGUMENT);
        }
    }

    unsafe fn nulls(&self, which: u8) {
        let c = self.client;
        let code = unsafe {
            match which % 8 {
                0 => pop3_client_next_event(c, ptr::null_mut()),
                1 => pop3_client_pending_output(c, ptr::null_mut(), ptr::null_mut()),
                2 => pop3_client_receive(c, ptr::null(), 3),
                3 => pop3_client_stat(ptr::null_mut(), &mut 0),
                4 => pop3_client_user(c, ptr::null(), &mut 0),
                5 => pop3_client_input_buffer(c, ptr::null_mut(), &mut 0),
                6 => pop3_client_retr_many(c, ptr::null(), 2, ptr::null_mut()),
                _ => pop3_client_capability(ptr::null(), 0, ptr::null_mut(), &mut 0),
            }
        };
        assert_eq!(code, POP3_ERR_NULL);
    }
}

fuzz_target!(|input: Input| {
    unsafe {
        let mut config = ptr::null_mut();
        assert_eq!(pop3_config_new(&mut config), POP3_OK);
        pop3_config_set_encrypted(config, input.encrypted);
        pop3_config_set_allow_plaintext_credentials(config, input.allow_plaintext);
        pop3_config_set_pipeline_window(config, usize::from(input.window % 5));
        pop3_config_set_read_size(config, usize::from(input.read_size % 2048));
        pop3_config_set_max_line_len(config, usize::from(input.max_line.max(4)));
        pop3_config_set_trace(config, input.window & 0x80 != 0);
        let mut client = ptr::null_mut();
        assert_eq!(pop3_client_new(config, &mut client), POP3_OK);
        pop3_config_free(config);

        let mut state = State {
            client,
            handles: HashSet::new(),
            closed: false,
            allow_plaintext: input.allow_plaintext,
        };
        for op in input.ops.iter().take(256) {
            match op {
                Op::Receive(bytes) => {
                    state.check(pop3_client_receive(client, bytes.as_ptr(), bytes.len()))
                }
                Op::ReceiveBuffered { data, claimed } => {
                    let (mut buf, mut cap) = (ptr::null_mut(), 0usize);
                    let code = pop3_client_input_buffer(client, &mut buf, &mut cap);
                    state.check(code);
                    if code == POP3_OK {
                        let n = data.len().min(cap);
                        ptr::copy_nonoverlapping(data.as_ptr(), buf, n);
                        let claimed = (*claimed as usize) % (cap + 2);
                        let code = pop3_client_input_written(client, claimed);
                        state.check(code);
                        assert_eq!(code == POP3_OK, claimed <= cap);
                    }
                }
                Op::InputWrittenAlone(n) => {
                    let code = pop3_client_input_written(client, *n as usize);
                    assert_eq!(code, POP3_ERR_CALL_ORDER);
                }
                Op::Eof => state.check(pop3_client_receive_eof(client)),
                Op::TlsEstablished => {
                    state.check(pop3_client_tls_established(client));
                }
                Op::Events(n) => state.events(*n),
                Op::Output { written, partial } => state.output(*written, *partial),
                Op::List(i) => state.list(usize::from(*i)),
                Op::Uidl(i) => state.uidl(usize::from(*i)),
                Op::Capability(i) => state.capability(usize::from(*i)),
                Op::Command(cmd) => state.command(cmd),
                Op::Nulls(which) => state.nulls(*which),
                Op::ChannelBinding { kind, data } => {
                    let kind = u32::from(*kind % 4);
                    let code =
                        pop3_client_set_channel_binding(client, kind, data.as_ptr(), data.len());
                    state.check(code);
                    let valid = kind == 0 || (kind <= 2 && !data.is_empty());
                    assert_eq!(code == POP3_OK, valid);
                }
            }
        }
        pop3_client_free(client);
    }
});
