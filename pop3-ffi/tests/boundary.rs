//! The C boundary, called the way C calls it: NULL pointers, calls in the
//! wrong order, output not drained, events after the session closed. Each
//! must be a result code with the out-parameters untouched, never a crash.

// Calling a C ABI from Rust takes raw pointers: unsafe is the point here.
#![allow(unsafe_code)]

use core::ffi::{c_char, CStr};
use std::ptr;

use pop3::*;

/// A client created through the ABI, freed on drop.
struct Client(*mut pop3_client);

impl Client {
    fn new(encrypted: bool) -> Client {
        let mut config = ptr::null_mut();
        // SAFETY: `config` is a valid out-pointer; the config is freed below.
        unsafe {
            assert_eq!(pop3_config_new(&mut config), POP3_OK);
            assert_eq!(pop3_config_set_encrypted(config, encrypted), POP3_OK);
            let mut client = ptr::null_mut();
            assert_eq!(pop3_client_new(config, &mut client), POP3_OK);
            pop3_config_free(config);
            assert!(!client.is_null());
            Client(client)
        }
    }

    fn receive(&self, bytes: &[u8]) {
        // SAFETY: live client; the slice is valid for the call.
        let code = unsafe { pop3_client_receive(self.0, bytes.as_ptr(), bytes.len()) };
        assert_eq!(code, POP3_OK);
    }

    /// Everything pending, marked as written.
    fn drain_output(&self) -> Vec<u8> {
        let mut all = Vec::new();
        loop {
            let mut out = ptr::null();
            let mut len = 0;
            // SAFETY: live client, valid out-pointers; the bytes are copied
            // before the next call.
            unsafe {
                match pop3_client_pending_output(self.0, &mut out, &mut len) {
                    POP3_OK => {
                        all.extend_from_slice(std::slice::from_raw_parts(out, len));
                        assert_eq!(pop3_client_output_written(self.0, len), POP3_OK);
                    }
                    POP3_DONE => return all,
                    other => panic!("pending_output: {other}"),
                }
            }
        }
    }

    /// The next event, with its text and data copied out.
    fn event(&self) -> Result<(pop3_event, String, Vec<u8>), pop3_result> {
        let mut ev = std::mem::MaybeUninit::<pop3_event>::uninit();
        // SAFETY: live client; `ev` is written on POP3_OK only, and read only then.
        unsafe {
            match pop3_client_next_event(self.0, ev.as_mut_ptr()) {
                POP3_OK => {
                    let ev = ev.assume_init();
                    let text = String::from_utf8_lossy(std::slice::from_raw_parts(
                        ev.text.cast::<u8>(),
                        ev.text_len,
                    ))
                    .into_owned();
                    let data = if ev.data.is_null() {
                        Vec::new()
                    } else {
                        std::slice::from_raw_parts(ev.data, ev.data_len).to_vec()
                    };
                    Ok((ev, text, data))
                }
                code => Err(code),
            }
        }
    }

    fn events(&self) -> Vec<(pop3_event, String, Vec<u8>)> {
        let mut all = Vec::new();
        while let Ok(ev) = self.event() {
            all.push(ev);
        }
        all
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // SAFETY: created by pop3_client_new, freed once.
        unsafe { pop3_client_free(self.0) }
    }
}

fn c(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).expect("no NUL")
}

const SENTINEL: pop3_handle = 0xDEAD_BEEF;

#[test]
fn null_pointers_are_reported_not_followed() {
    let client = Client::new(true);
    let user = c("alice");
    let mut handle = SENTINEL;
    // SAFETY: every pointer is NULL or valid; the point is the NULL ones.
    unsafe {
        assert_eq!(pop3_config_new(ptr::null_mut()), POP3_ERR_NULL);
        assert_eq!(
            pop3_config_set_encrypted(ptr::null_mut(), true),
            POP3_ERR_NULL
        );
        assert_eq!(
            pop3_config_set_max_listing_bytes(ptr::null_mut(), 1),
            POP3_ERR_NULL
        );
        pop3_config_free(ptr::null_mut());
        let mut out = ptr::null_mut();
        assert_eq!(pop3_client_new(ptr::null(), &mut out), POP3_ERR_NULL);
        assert!(out.is_null());
        pop3_client_free(ptr::null_mut());

        assert_eq!(
            pop3_client_receive(ptr::null_mut(), b"x".as_ptr(), 1),
            POP3_ERR_NULL
        );
        assert_eq!(pop3_client_receive(client.0, ptr::null(), 5), POP3_ERR_NULL);
        assert_eq!(pop3_client_receive(client.0, ptr::null(), 0), POP3_OK);
        assert_eq!(pop3_client_receive_eof(ptr::null_mut()), POP3_ERR_NULL);
        assert_eq!(pop3_client_tls_established(ptr::null_mut()), POP3_ERR_NULL);
        assert_eq!(
            pop3_client_next_event(client.0, ptr::null_mut()),
            POP3_ERR_NULL
        );
        let mut len = 0usize;
        assert_eq!(
            pop3_client_pending_output(client.0, ptr::null_mut(), &mut len),
            POP3_ERR_NULL
        );
        let mut buf = ptr::null_mut();
        assert_eq!(
            pop3_client_input_buffer(client.0, &mut buf, ptr::null_mut()),
            POP3_ERR_NULL
        );
        assert!(buf.is_null());

        assert_eq!(
            pop3_client_user(client.0, ptr::null(), &mut handle),
            POP3_ERR_NULL
        );
        assert_eq!(
            pop3_client_user(client.0, user.as_ptr(), ptr::null_mut()),
            POP3_ERR_NULL
        );
        assert_eq!(
            pop3_client_user(ptr::null_mut(), user.as_ptr(), &mut handle),
            POP3_ERR_NULL
        );
        assert_eq!(pop3_client_stat(client.0, ptr::null_mut()), POP3_ERR_NULL);
        assert_eq!(
            pop3_client_login(
                client.0,
                user.as_ptr(),
                ptr::null(),
                c"auto".as_ptr(),
                &mut handle
            ),
            POP3_ERR_NULL
        );
        assert_eq!(
            pop3_client_retr_many(client.0, ptr::null(), 3, &mut handle),
            POP3_ERR_NULL
        );
        let mut msg = 7u32;
        let mut size = 7u64;
        assert_eq!(
            pop3_client_list_entry(ptr::null(), 0, &mut msg, &mut size),
            POP3_ERR_NULL
        );
        assert_eq!(
            pop3_client_list_entry(client.0, 0, ptr::null_mut(), &mut size),
            POP3_ERR_NULL
        );
        assert_eq!((msg, size), (7, 7));
    }
    assert_eq!(handle, SENTINEL, "an out-parameter was written on failure");
    // None of that queued anything.
    assert_eq!(client.drain_output(), b"");
}

#[test]
fn invalid_arguments_queue_nothing() {
    let client = Client::new(true);
    let mut handle = SENTINEL;
    let bad_utf8: &[u8] = b"al\xffce\0";
    // SAFETY: live client; strings are NUL-terminated.
    unsafe {
        assert_eq!(
            pop3_client_user(client.0, bad_utf8.as_ptr().cast::<c_char>(), &mut handle),
            POP3_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            pop3_client_user(client.0, c"a\r\nDELE 1".as_ptr(), &mut handle),
            POP3_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            pop3_client_retr(client.0, 0, &mut handle),
            POP3_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            pop3_client_login(
                client.0,
                c"alice".as_ptr(),
                c"secret".as_ptr(),
                c"no-such-method".as_ptr(),
                &mut handle
            ),
            POP3_ERR_INVALID_ARGUMENT
        );
        let msgs = [1u32, 2, 0];
        let mut handles = [SENTINEL; 3];
        assert_eq!(
            pop3_client_retr_many(client.0, msgs.as_ptr(), 3, handles.as_mut_ptr()),
            POP3_ERR_INVALID_ARGUMENT
        );
        assert_eq!(handles, [SENTINEL; 3]);
        let data = [7u8; 32];
        assert_eq!(
            pop3_client_set_channel_binding(client.0, 9, data.as_ptr(), 32),
            POP3_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            pop3_client_set_channel_binding(
                client.0,
                POP3_CHANNEL_BINDING_TLS_EXPORTER,
                data.as_ptr(),
                0
            ),
            POP3_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            pop3_client_set_channel_binding(
                client.0,
                POP3_CHANNEL_BINDING_TLS_EXPORTER,
                ptr::null(),
                32
            ),
            POP3_ERR_NULL
        );
        assert_eq!(
            pop3_client_set_channel_binding(
                client.0,
                POP3_CHANNEL_BINDING_TLS_EXPORTER,
                data.as_ptr(),
                32
            ),
            POP3_OK
        );
        // From the server's certificate: the client picks the hash itself;
        // bytes that are no certificate are refused.
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]);
        let Ok(generated) = generated else {
            panic!("rcgen could not make a certificate");
        };
        let cert = generated.cert.der();
        assert_eq!(
            pop3_client_set_channel_binding(
                client.0,
                POP3_CHANNEL_BINDING_SERVER_CERTIFICATE,
                cert.as_ptr(),
                cert.len()
            ),
            POP3_OK
        );
        assert_eq!(
            pop3_client_set_channel_binding(
                client.0,
                POP3_CHANNEL_BINDING_SERVER_CERTIFICATE,
                data.as_ptr(),
                32
            ),
            POP3_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            pop3_client_set_channel_binding(client.0, 0, ptr::null(), 0),
            POP3_OK
        );
    }
    assert_eq!(handle, SENTINEL);
    client.receive(b"+OK hi\r\n");
    assert_eq!(client.drain_output(), b"");
}

#[test]
fn plaintext_credentials_are_refused_before_anything_is_queued() {
    let client = Client::new(false);
    let mut handle = SENTINEL;
    // SAFETY: live client; C strings.
    let r = unsafe {
        pop3_client_login(
            client.0,
            c"alice".as_ptr(),
            c"secret".as_ptr(),
            c"user".as_ptr(),
            &mut handle,
        )
    };
    assert_eq!(r, POP3_ERR_PLAINTEXT_CREDENTIALS);
    assert_eq!(handle, SENTINEL);
    client.receive(b"+OK hi\r\n");
    assert_eq!(client.drain_output(), b"");
}

#[test]
fn calls_in_the_wrong_order_are_codes() {
    let client = Client::new(true);
    let mut handle = SENTINEL;
    // SAFETY: live client, valid out-pointers.
    unsafe {
        // Nothing pending to mark as written.
        assert_eq!(pop3_client_output_written(client.0, 1), POP3_ERR_CALL_ORDER);
        // No input buffer was offered.
        assert_eq!(pop3_client_input_written(client.0, 1), POP3_ERR_CALL_ORDER);
        // An offer is withdrawn by any other call.
        let (mut buf, mut cap) = (ptr::null_mut(), 0);
        assert_eq!(
            pop3_client_input_buffer(client.0, &mut buf, &mut cap),
            POP3_OK
        );
        assert!(cap > 0);
        assert_eq!(
            pop3_client_input_written(client.0, cap + 1),
            POP3_ERR_INVALID_ARGUMENT
        );
        assert_eq!(pop3_client_input_written(client.0, 0), POP3_ERR_CALL_ORDER);
        // No TLS upgrade pending.
        assert_eq!(pop3_client_tls_established(client.0), POP3_ERR_WRONG_STATE);
        // RETR before login.
        assert_eq!(
            pop3_client_retr(client.0, 1, &mut handle),
            POP3_ERR_WRONG_STATE
        );
        // No listing is the current event.
        let (mut msg, mut size) = (0u32, 0u64);
        assert_eq!(
            pop3_client_list_entry(client.0, 0, &mut msg, &mut size),
            POP3_ERR_CALL_ORDER
        );
    }
    assert_eq!(handle, SENTINEL);
    // No events yet: nothing was received.
    assert_eq!(client.event().err(), Some(POP3_DONE));
}

#[test]
fn undrained_output_stays_pending_and_partial_writes_keep_the_rest() {
    let client = Client::new(true);
    let mut h = 0;
    // SAFETY: live client, valid out-pointers.
    unsafe {
        assert_eq!(pop3_client_capa(client.0, &mut h), POP3_OK);
        assert_eq!(
            pop3_client_user(client.0, c"alice".as_ptr(), &mut h),
            POP3_OK
        );
    }
    client.receive(b"+OK hi\r\n");
    let first = {
        let (mut out, mut len) = (ptr::null(), 0);
        // SAFETY: as above; the bytes are copied at once.
        unsafe {
            assert_eq!(
                pop3_client_pending_output(client.0, &mut out, &mut len),
                POP3_OK
            );
            std::slice::from_raw_parts(out, len).to_vec()
        }
    };
    assert_eq!(first, b"CAPA\r\n");
    // Asking again without writing gives the same bytes.
    let (mut out, mut len) = (ptr::null(), 0);
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            pop3_client_pending_output(client.0, &mut out, &mut len),
            POP3_OK
        );
        assert_eq!(std::slice::from_raw_parts(out, len), b"CAPA\r\n");
        assert_eq!(pop3_client_output_written(client.0, 2), POP3_OK);
        assert_eq!(
            pop3_client_output_written(client.0, 9),
            POP3_ERR_INVALID_ARGUMENT
        );
    }
    assert_eq!(client.drain_output(), b"PA\r\n");
    client.receive(b"+OK\r\nUSER\r\n.\r\n");
    let events = client.events();
    assert_eq!(events[0].0.kind, pop3_event_kind::POP3_EVENT_GREETING);
    assert_eq!(events[0].1, "hi");
    assert_eq!(events[1].0.reply, pop3_reply_kind::POP3_REPLY_CAPABILITIES);
    assert_eq!(client.drain_output(), b"USER alice\r\n");
}

#[test]
fn a_whole_session_through_the_abi() {
    let client = Client::new(true);
    let (mut login, mut stat, mut list, mut uidl, mut retr, mut quit) = (0, 0, 0, 0, 0, 0);
    // SAFETY: live client, C strings, valid out-pointers.
    unsafe {
        assert_eq!(
            pop3_client_login(
                client.0,
                c"alice".as_ptr(),
                c"pw".as_ptr(),
                c"user".as_ptr(),
                &mut login
            ),
            POP3_OK
        );
        assert_eq!(pop3_client_stat(client.0, &mut stat), POP3_OK);
        assert_eq!(pop3_client_list(client.0, 0, &mut list), POP3_OK);
        assert_eq!(pop3_client_uidl(client.0, 0, &mut uidl), POP3_OK);
        assert_eq!(pop3_client_retr(client.0, 1, &mut retr), POP3_OK);
        assert_eq!(pop3_client_quit(client.0, &mut quit), POP3_OK);
    }
    assert!(login != 0 && stat != 0 && retr != 0);
    let mut sent = Vec::new();
    let mut body = Vec::new();
    let mut ended = false;
    let mut closed = false;
    // A server that answers each line the client wrote, whatever the client
    // decided to send (the core may ask CAPA on its own).
    client.receive(b"+OK <1.2@host> hi\r\n");
    for _ in 0..20 {
        let out = client.drain_output();
        sent.extend_from_slice(&out);
        let mut replies = Vec::new();
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            replies.extend_from_slice(match line {
                b"CAPA\r" => b"+OK\r\nUSER\r\nUIDL\r\n.\r\n",
                b"USER alice\r" => b"+OK\r\n",
                b"PASS pw\r" => b"+OK logged in\r\n",
                b"STAT\r" => b"+OK 1 9\r\n",
                b"LIST\r" => b"+OK\r\n1 9\r\n.\r\n",
                b"UIDL\r" => b"+OK\r\n1 uid-one\r\n.\r\n",
                b"RETR 1\r" => b"+OK\r\nHi\r\n..dot\r\n.\r\n",
                b"QUIT\r" => b"-ERR [SYS/TEMP] cannot commit\r\n",
                other => panic!("unexpected line {:?}", String::from_utf8_lossy(other)),
            });
        }
        if replies.is_empty() {
            break;
        }
        client.receive(&replies);
        while let Ok((ev, text, data)) = client.event() {
            use pop3_event_kind::*;
            match ev.kind {
                POP3_EVENT_OK if ev.handle == stat => {
                    assert_eq!((ev.count, ev.size), (1, 9));
                }
                POP3_EVENT_OK if ev.handle == list => {
                    assert_eq!(ev.count, 1);
                    let (mut msg, mut size) = (0u32, 0u64);
                    // SAFETY: live client; this event is current.
                    unsafe {
                        assert_eq!(
                            pop3_client_list_entry(client.0, 0, &mut msg, &mut size),
                            POP3_OK
                        );
                        assert_eq!(
                            pop3_client_list_entry(client.0, 1, &mut msg, &mut size),
                            POP3_ERR_INVALID_ARGUMENT
                        );
                    }
                    assert_eq!((msg, size), (1, 9));
                }
                POP3_EVENT_OK if ev.handle == uidl => {
                    let (mut msg, mut uid, mut len) = (0u32, ptr::null(), 0usize);
                    // SAFETY: live client; this event is current; the uid is
                    // read before the next call.
                    unsafe {
                        assert_eq!(
                            pop3_client_uidl_entry(client.0, 0, &mut msg, &mut uid, &mut len),
                            POP3_OK
                        );
                        assert_eq!(CStr::from_ptr(uid).to_bytes(), b"uid-one");
                    }
                    assert_eq!(len, 7);
                }
                POP3_EVENT_BODY => {
                    assert_eq!(ev.handle, retr);
                    body.extend_from_slice(&data);
                }
                POP3_EVENT_BODY_END => {
                    assert_eq!(ev.handle, retr);
                    assert_eq!(body, b"Hi\r\n.dot\r\n");
                    ended = true;
                }
                POP3_EVENT_ERR => {
                    assert_eq!(ev.handle, quit);
                    // SAFETY: the code is a C string borrowed from the event.
                    let code = unsafe { CStr::from_ptr(ev.code) };
                    assert_eq!(code.to_bytes(), b"SYS/TEMP");
                    assert_eq!(text, "cannot commit");
                    closed = true;
                }
                POP3_EVENT_OK => assert!(ev.handle == login || ev.handle == 0),
                _ => {}
            }
        }
    }
    assert!(ended && closed);
    let sent = String::from_utf8_lossy(&sent).replace("CAPA\r\n", "");
    assert_eq!(
        sent,
        "USER alice\r\nPASS pw\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nQUIT\r\n"
    );
}

#[test]
fn events_after_close_are_codes() {
    let client = Client::new(true);
    let mut quit = 0;
    // SAFETY: live client.
    unsafe { assert_eq!(pop3_client_quit(client.0, &mut quit), POP3_OK) };
    client.receive(b"+OK hi\r\n");
    assert_eq!(client.drain_output(), b"QUIT\r\n");
    client.receive(b"+OK bye\r\n");
    // SAFETY: live client.
    unsafe { assert_eq!(pop3_client_receive_eof(client.0), POP3_OK) };
    let kinds: Vec<_> = client.events().iter().map(|e| e.0.kind).collect();
    assert_eq!(kinds.last(), Some(&pop3_event_kind::POP3_EVENT_CLOSED));
    assert_eq!(client.event().err(), Some(POP3_ERR_CLOSED));
    assert_eq!(client.event().err(), Some(POP3_ERR_CLOSED));
    let mut h = SENTINEL;
    // SAFETY: live client.
    unsafe {
        assert_eq!(pop3_client_noop(client.0, &mut h), POP3_ERR_CLOSED);
        assert_eq!(pop3_client_receive(client.0, b"x".as_ptr(), 1), POP3_OK);
    }
    assert_eq!(h, SENTINEL);
    assert_eq!(client.drain_output(), b"");
}

#[test]
fn a_protocol_error_closes_with_its_code() {
    let client = Client::new(true);
    client.receive(b"* OK this is IMAP\r\n");
    let events = client.events();
    let last = events.last().expect("an event");
    assert_eq!(last.0.kind, pop3_event_kind::POP3_EVENT_CLOSED);
    assert_eq!(last.0.result, POP3_ERR_PROTOCOL);
    assert!(last.1.contains("greeting"), "{}", last.1);
    assert_eq!(client.event().err(), Some(POP3_ERR_CLOSED));
}

#[test]
fn injected_bytes_after_stls_end_the_session() {
    let client = Client::new(false);
    let mut stls = 0;
    // SAFETY: live client.
    unsafe { assert_eq!(pop3_client_start_tls(client.0, &mut stls), POP3_OK) };
    client.receive(b"+OK hi\r\n");
    assert_eq!(client.drain_output(), b"CAPA\r\n");
    client.receive(b"+OK\r\nSTLS\r\n.\r\n");
    assert_eq!(client.drain_output(), b"STLS\r\n");
    client.receive(b"+OK begin TLS\r\n+OK injected\r\n");
    let kinds: Vec<_> = client
        .events()
        .iter()
        .map(|e| (e.0.kind, e.0.result))
        .collect();
    assert!(
        kinds.contains(&(pop3_event_kind::POP3_EVENT_CLOSED, POP3_ERR_PROTOCOL)),
        "{kinds:?}"
    );
    // SAFETY: live client.
    assert_ne!(unsafe { pop3_client_tls_established(client.0) }, POP3_OK);
}

#[test]
fn every_result_has_a_message() {
    for code in [
        POP3_OK,
        POP3_DONE,
        POP3_ERR_NULL,
        POP3_ERR_PANIC,
        -1000,
        1000,
    ] {
        // SAFETY: the result is a static C string.
        let text = unsafe { CStr::from_ptr(pop3_result_message(code)) };
        assert!(!text.to_bytes().is_empty());
    }
}

/// A logged-in client with `RETR 1` answered by `reply`; returns the body
/// bytes as events gave them, asking for output first when `output_first`
/// (so that chunks are queued as copies instead of lent from the buffer).
fn retrieve(reply: &[u8], output_first: bool) -> Vec<u8> {
    let client = Client::new(true);
    let (mut login, mut retr) = (0, 0);
    // SAFETY: live client, C strings, valid out-pointers.
    unsafe {
        let code = pop3_client_login(
            client.0,
            c"alice".as_ptr(),
            c"pw".as_ptr(),
            c"user".as_ptr(),
            &mut login,
        );
        assert_eq!(code, POP3_OK);
        assert_eq!(pop3_client_retr(client.0, 1, &mut retr), POP3_OK);
    }
    client.receive(b"+OK hi\r\n");
    assert_eq!(client.drain_output(), b"USER alice\r\n");
    client.receive(b"+OK\r\n");
    assert_eq!(client.drain_output(), b"PASS pw\r\n");
    client.receive(b"+OK\r\n");
    client.events();
    assert_eq!(client.drain_output(), b"RETR 1\r\n");
    client.receive(reply);
    if output_first {
        assert_eq!(client.drain_output(), b"");
    }
    let mut body = Vec::new();
    for (ev, _, data) in client.events() {
        if ev.kind == pop3_event_kind::POP3_EVENT_BODY {
            assert_eq!(ev.handle, retr);
            body.extend_from_slice(&data);
        }
    }
    body
}

#[test]
fn body_chunks_are_the_same_lent_or_copied() {
    let reply = b"+OK\r\nA: b\r\n\r\n..one\r\ntwo\r\n.\r\n";
    assert_eq!(retrieve(reply, false), b"A: b\r\n\r\n.one\r\ntwo\r\n");
    assert_eq!(retrieve(reply, true), b"A: b\r\n\r\n.one\r\ntwo\r\n");
}

/// A client with every `pop3_config_set_*` limit at its extreme.
fn client_with_max_limits() -> Client {
    let mut config = ptr::null_mut();
    // SAFETY: valid out-pointer; the config is freed below.
    unsafe {
        assert_eq!(pop3_config_new(&mut config), POP3_OK);
        assert_eq!(pop3_config_set_encrypted(config, true), POP3_OK);
        for set in [
            pop3_config_set_max_line_len,
            pop3_config_set_max_listing_lines,
            pop3_config_set_max_listing_bytes,
            pop3_config_set_max_capa_lines,
            pop3_config_set_max_body_line_len,
            pop3_config_set_read_size,
            pop3_config_set_pipeline_window,
        ] {
            assert_eq!(set(config, usize::MAX), POP3_OK);
        }
        let mut client = ptr::null_mut();
        assert_eq!(pop3_client_new(config, &mut client), POP3_OK);
        pop3_config_free(config);
        Client(client)
    }
}

/// Limits of `usize::MAX` mean "no limit": no overflow panic (debug), no
/// wrapped limit of 0 that fails every line split across reads (release).
/// Every reply here arrives one byte per read, through `input_buffer` (whose
/// read size is held to the core's maximum) and through `receive`.
#[test]
fn limits_at_usize_max_survive_split_reads() {
    let script: &[u8] = b"+OK ready\r\n+OK\r\nUSER\r\n.\r\n+OK\r\n+OK in\r\n\
        +OK\r\nUSER\r\n.\r\n+OK 1 5\r\n+OK\r\nab\r\n..c\r\n.\r\n";
    for through_buffer in [false, true] {
        let client = client_with_max_limits();
        let (mut capa, mut login, mut stat, mut retr) = (0, 0, 0, 0);
        // SAFETY: live client, C strings, valid out-pointers.
        unsafe {
            assert_eq!(pop3_client_capa(client.0, &mut capa), POP3_OK);
            assert_eq!(
                pop3_client_login(
                    client.0,
                    c"a".as_ptr(),
                    c"b".as_ptr(),
                    c"user".as_ptr(),
                    &mut login
                ),
                POP3_OK
            );
            assert_eq!(pop3_client_stat(client.0, &mut stat), POP3_OK);
            assert_eq!(pop3_client_retr(client.0, 1, &mut retr), POP3_OK);
        }
        let mut events = Vec::new();
        for &byte in script {
            if through_buffer {
                let (mut buf, mut cap) = (ptr::null_mut(), 0usize);
                // SAFETY: live client; the space is written within its size
                // and reported at once.
                unsafe {
                    assert_eq!(
                        pop3_client_input_buffer(client.0, &mut buf, &mut cap),
                        POP3_OK
                    );
                    assert!((1..17 * 1024 * 1024).contains(&cap), "{cap}");
                    *buf = byte;
                    assert_eq!(pop3_client_input_written(client.0, 1), POP3_OK);
                }
            } else {
                client.receive(&[byte]);
            }
            client.drain_output();
            events.extend(client.events());
        }
        let kinds: Vec<_> = events.iter().map(|e| e.0.kind).collect();
        use pop3_event_kind::*;
        assert!(
            !kinds.contains(&POP3_EVENT_FAILED) && !kinds.contains(&POP3_EVENT_CLOSED),
            "{kinds:?}"
        );
        let stat_event = events.iter().find(|e| e.0.handle == stat).expect("STAT");
        assert_eq!((stat_event.0.count, stat_event.0.size), (1, 5));
        let body: Vec<u8> = events
            .iter()
            .filter(|e| e.0.kind == POP3_EVENT_BODY)
            .flat_map(|e| e.2.clone())
            .collect();
        assert_eq!(body, b"ab\r\n.c\r\n");
        assert!(kinds.contains(&POP3_EVENT_BODY_END), "{kinds:?}");
    }
}

/// Whatever the server sends, no text reaching C — greeting, `-ERR` text and
/// its response code, failure reasons, SCRAM `e=`, capability lines, UIDs,
/// trace lines — holds a character the core's rule (`Text::is_unsafe_char`)
/// replaces: no terminal escape, no bidi override, no NUL.
#[test]
fn every_text_reaching_c_is_terminal_safe() {
    let nasty = "\x1b]0;owned\x07\x1b[2J\u{9b}31m\u{202e}desrever\u{202c}\u{200b}\0";
    let mut config = ptr::null_mut();
    let client;
    // SAFETY: valid out-pointers; the config is freed at once.
    unsafe {
        assert_eq!(pop3_config_new(&mut config), POP3_OK);
        assert_eq!(pop3_config_set_encrypted(config, true), POP3_OK);
        assert_eq!(pop3_config_set_trace(config, true), POP3_OK);
        let mut c = ptr::null_mut();
        assert_eq!(pop3_client_new(config, &mut c), POP3_OK);
        pop3_config_free(config);
        client = Client(c);
    }
    let mut h = 0;
    // SAFETY: live client, C strings, valid out-pointers.
    unsafe {
        assert_eq!(pop3_client_capa(client.0, &mut h), POP3_OK);
        assert_eq!(
            pop3_client_login(
                client.0,
                c"alice".as_ptr(),
                c"pw".as_ptr(),
                c"scram-sha-256".as_ptr(),
                &mut h
            ),
            POP3_OK
        );
    }
    let mut texts: Vec<Vec<u8>> = Vec::new();
    fn collect(client: &Client, texts: &mut Vec<Vec<u8>>) {
        let mut ev = std::mem::MaybeUninit::<pop3_event>::uninit();
        // SAFETY: live client; the event's text (and code, when not NULL)
        // is read before the next call on the client.
        unsafe {
            while pop3_client_next_event(client.0, ev.as_mut_ptr()) == POP3_OK {
                let ev = ev.assume_init_ref();
                texts.push(std::slice::from_raw_parts(ev.text.cast::<u8>(), ev.text_len).to_vec());
                if !ev.code.is_null() {
                    texts.push(
                        std::slice::from_raw_parts(ev.code.cast::<u8>(), ev.code_len).to_vec(),
                    );
                }
            }
        }
    }
    client.receive(format!("+OK {nasty} <1.2@host>\r\n").as_bytes());
    client.drain_output();
    collect(&client, &mut texts);
    client.receive(
        format!(
            "+OK\r\nSASL SCRAM-SHA-256\r\nX-{nasty} a{nasty}\r\nIMPLEMENTATION {nasty}\r\n.\r\n"
        )
        .as_bytes(),
    );
    // The capability lines of the CAPA reply, read before anything else.
    let mut ev = std::mem::MaybeUninit::<pop3_event>::uninit();
    // SAFETY: live client; the event and its lines are read before the next call.
    unsafe {
        loop {
            assert_eq!(pop3_client_next_event(client.0, ev.as_mut_ptr()), POP3_OK);
            let ev = ev.assume_init_ref();
            texts.push(std::slice::from_raw_parts(ev.text.cast::<u8>(), ev.text_len).to_vec());
            if ev.reply == pop3_reply_kind::POP3_REPLY_CAPABILITIES {
                for i in 0..ev.count as usize {
                    let (mut line, mut len) = (ptr::null(), 0);
                    assert_eq!(
                        pop3_client_capability(client.0, i, &mut line, &mut len),
                        POP3_OK
                    );
                    texts.push(std::slice::from_raw_parts(line.cast::<u8>(), len).to_vec());
                }
                break;
            }
        }
    }
    collect(&client, &mut texts);
    let sent = client.drain_output();
    assert!(String::from_utf8_lossy(&sent).starts_with("AUTH SCRAM-SHA-256"));
    // The server's SCRAM error, then a refusal with a response code.
    use base64::Engine as _;
    let e = base64::engine::general_purpose::STANDARD.encode(format!("e={nasty}"));
    client.receive(format!("+ {e}\r\n").as_bytes());
    client.drain_output();
    collect(&client, &mut texts);
    client.receive(format!("-ERR [SYS/{nasty}] no {nasty}\r\n").as_bytes());
    client.drain_output();
    collect(&client, &mut texts);
    client.receive(format!("{nasty}\r\n").as_bytes());
    collect(&client, &mut texts);
    assert!(texts.len() > 10, "{texts:?}");
    let mut saw_replacement = 0;
    for text in &texts {
        let text = std::str::from_utf8(text).expect("UTF-8");
        assert!(
            !text.chars().any(pop3_proto::Text::is_unsafe_char),
            "unsafe text reached C: {text:?}"
        );
        saw_replacement += usize::from(text.contains('\u{fffd}'));
    }
    // The nasty text did arrive (replaced), in several places.
    assert!(saw_replacement >= 5, "{texts:?}");
}

/// Input back-pressure: a caller who keeps passing input without handling
/// events is refused once the client holds one read on top of a partial
/// line, with nothing taken; handling events makes room again.
#[test]
fn input_is_refused_while_events_wait_and_accepted_after() {
    let mut config = ptr::null_mut();
    let client;
    // SAFETY: valid out-pointers; the config is freed at once.
    unsafe {
        assert_eq!(pop3_config_new(&mut config), POP3_OK);
        assert_eq!(pop3_config_set_encrypted(config, true), POP3_OK);
        assert_eq!(pop3_config_set_read_size(config, 1024), POP3_OK);
        assert_eq!(pop3_config_set_max_line_len(config, 512), POP3_OK);
        let mut c = ptr::null_mut();
        assert_eq!(pop3_client_new(config, &mut c), POP3_OK);
        pop3_config_free(config);
        client = Client(c);
    }
    let mut login = 0;
    let mut retr = 0;
    // SAFETY: live client, C strings, valid out-pointers.
    unsafe {
        assert_eq!(
            pop3_client_login(
                client.0,
                c"a".as_ptr(),
                c"b".as_ptr(),
                c"user".as_ptr(),
                &mut login
            ),
            POP3_OK
        );
    }
    client.receive(b"+OK hi\r\n");
    client.drain_output();
    client.events();
    client.receive(b"+OK\r\n");
    client.drain_output();
    client.events();
    client.receive(b"+OK in\r\n");
    client.drain_output();
    client.events();
    // SAFETY: live client, valid out-pointer.
    unsafe { assert_eq!(pop3_client_retr(client.0, 1, &mut retr), POP3_OK) };
    client.drain_output();
    client.receive(b"+OK\r\n");
    let chunk = [b'x'; 700];
    let mut taken = 0usize;
    let refused = loop {
        // SAFETY: live client; the slice is valid for the call.
        let code = unsafe { pop3_client_receive(client.0, chunk.as_ptr(), chunk.len()) };
        if code != POP3_OK {
            break code;
        }
        taken += chunk.len();
        // Output may be written meanwhile: that drains the core into the
        // client's own queue, which counts too.
        client.drain_output();
        assert!(taken < 100_000, "input never refused");
    };
    assert_eq!(refused, POP3_ERR_INPUT_FULL);
    assert!(taken <= 1024 + 512 + 2 + 700, "{taken}");
    let (mut buf, mut cap) = (ptr::null_mut(), 0usize);
    // SAFETY: live client, valid out-pointers.
    unsafe {
        assert_eq!(
            pop3_client_input_buffer(client.0, &mut buf, &mut cap),
            POP3_ERR_INPUT_FULL
        );
    }
    let body: usize = client.events().iter().map(|e| e.2.len()).sum();
    assert_eq!(body, taken);
    client.receive(b"\r\n.\r\n");
    let kinds: Vec<_> = client.events().iter().map(|e| e.0.kind).collect();
    assert!(
        kinds.contains(&pop3_event_kind::POP3_EVENT_BODY_END),
        "{kinds:?}"
    );
}

/// The completion contract: the bytes `pop3_client_pending_output` lends
/// stay where they are and unchanged until reported written, through other
/// calls that queue more output, take input and deliver events; what was
/// reported written is wiped at once.
#[test]
fn lent_output_stays_put_until_reported_and_is_wiped() {
    let client = Client::new(true);
    let mut h = 0;
    // SAFETY: live client, C strings, valid out-pointers.
    unsafe {
        assert_eq!(
            pop3_client_login(
                client.0,
                c"alice".as_ptr(),
                c"hunter2".as_ptr(),
                c"user".as_ptr(),
                &mut h
            ),
            POP3_OK
        );
    }
    client.receive(b"+OK hi\r\n");
    client.events();
    assert_eq!(client.drain_output(), b"USER alice\r\n");
    client.receive(b"+OK\r\n");
    client.events();
    let (mut out, mut len) = (ptr::null(), 0usize);
    // SAFETY: live client; `out` stays valid until reported written, which
    // is what this test checks, reading it between other calls.
    unsafe {
        assert_eq!(
            pop3_client_pending_output(client.0, &mut out, &mut len),
            POP3_OK
        );
        assert_eq!(std::slice::from_raw_parts(out, len), b"PASS hunter2\r\n");
        // Other calls happen while the write is "in the kernel".
        let mut more = 0;
        client.receive(b"+OK in\r\n");
        client.events();
        assert_eq!(pop3_client_noop(client.0, &mut more), POP3_OK);
        assert_eq!(pop3_client_stat(client.0, &mut more), POP3_OK);
        let (mut again, mut again_len) = (ptr::null(), 0usize);
        assert_eq!(
            pop3_client_pending_output(client.0, &mut again, &mut again_len),
            POP3_OK
        );
        assert_eq!((again, again_len), (out, len));
        assert_eq!(std::slice::from_raw_parts(out, len), b"PASS hunter2\r\n");
        // A partial completion: the rest is the same memory, further on,
        // and the written part is wiped.
        assert_eq!(pop3_client_output_written(client.0, 5), POP3_OK);
        assert_eq!(
            pop3_client_pending_output(client.0, &mut again, &mut again_len),
            POP3_OK
        );
        assert_eq!((again, again_len), (out.add(5), len - 5));
        assert_eq!(std::slice::from_raw_parts(out, 5), &[0u8; 5]);
        assert_eq!(std::slice::from_raw_parts(again, again_len), b"hunter2\r\n");
        assert_eq!(pop3_client_output_written(client.0, len - 5), POP3_OK);
    }
    // The output queued meanwhile comes next.
    let rest = client.drain_output();
    assert!(
        rest.starts_with(b"CAPA\r\n") || rest.starts_with(b"NOOP\r\n"),
        "{rest:?}"
    );
}

/// A login submitted right after `pop3_client_start_tls` (before the TLS
/// channel exists) still gets the channel binding set once the handshake is
/// done, so that "auto" chooses SCRAM-SHA-256-PLUS; before, it stayed
/// unbound and chose plain SCRAM-SHA-256.
#[test]
fn a_login_queued_behind_stls_takes_the_binding_set_after_the_handshake() {
    let client = Client::new(false);
    let (mut stls, mut login) = (0, 0);
    // SAFETY: live client, C strings, valid out-pointers.
    unsafe {
        assert_eq!(pop3_client_start_tls(client.0, &mut stls), POP3_OK);
        assert_eq!(
            pop3_client_login(
                client.0,
                c"alice".as_ptr(),
                c"pw".as_ptr(),
                c"auto".as_ptr(),
                &mut login
            ),
            POP3_OK
        );
    }
    client.receive(b"+OK hi\r\n");
    assert_eq!(client.drain_output(), b"CAPA\r\n");
    client.events();
    client.receive(b"+OK\r\nSTLS\r\nSASL SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n.\r\n");
    assert_eq!(client.drain_output(), b"STLS\r\n");
    client.events();
    client.receive(b"+OK go\r\n");
    let kinds: Vec<_> = client.events().iter().map(|e| e.0.kind).collect();
    assert!(
        kinds.contains(&pop3_event_kind::POP3_EVENT_START_TLS),
        "{kinds:?}"
    );
    let exporter = [7u8; 32];
    // SAFETY: live client; `exporter` is 32 readable bytes.
    unsafe {
        assert_eq!(pop3_client_tls_established(client.0), POP3_OK);
        assert_eq!(
            pop3_client_set_channel_binding(
                client.0,
                POP3_CHANNEL_BINDING_TLS_EXPORTER,
                exporter.as_ptr(),
                exporter.len()
            ),
            POP3_OK
        );
    }
    assert_eq!(client.drain_output(), b"CAPA\r\n");
    client.receive(b"+OK\r\nSASL SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n.\r\n");
    client.events();
    let sent = String::from_utf8(client.drain_output()).expect("ASCII");
    assert!(sent.starts_with("AUTH SCRAM-SHA-256-PLUS "), "{sent:?}");
}

/// A refused login is told from other `-ERR` replies, with or without
/// `[AUTH]`; a busy mailbox is not one; only an `-ERR` event can say.
#[test]
fn a_refused_login_is_told_from_other_refusals() {
    for (refusal, expected) in [
        (
            &b"-ERR Logon failure: unknown user name or bad password.\r\n"[..],
            true,
        ),
        (b"-ERR [AUTH] Authentication failed.\r\n", true),
        (b"-ERR [IN-USE] locked\r\n", false),
    ] {
        let client = Client::new(true);
        client.receive(b"+OK hi\r\n");
        let mut login = 0;
        // SAFETY: live client, C strings, valid out-pointer.
        unsafe {
            assert_eq!(
                pop3_client_login(
                    client.0,
                    c"alice".as_ptr(),
                    c"pw".as_ptr(),
                    c"user".as_ptr(),
                    &mut login
                ),
                POP3_OK
            );
        }
        let mut refused = !expected;
        while client.event().is_ok() {
            // SAFETY: live client, valid out-pointer.
            let code = unsafe { pop3_client_authentication_refused(client.0, &mut refused) };
            assert_eq!(code, POP3_ERR_CALL_ORDER, "the greeting is no -ERR");
        }
        assert_eq!(client.drain_output(), b"USER alice\r\n");
        client.receive(b"+OK\r\n");
        while client.event().is_ok() {}
        assert_eq!(client.drain_output(), b"PASS pw\r\n");
        client.receive(refusal);
        let (ev, _, _) = client.event().expect("the -ERR");
        assert_eq!(ev.kind, pop3_event_kind::POP3_EVENT_ERR);
        assert_eq!(ev.handle, login);
        // SAFETY: live client, valid out-pointer; this event is current.
        let code = unsafe { pop3_client_authentication_refused(client.0, &mut refused) };
        assert_eq!(code, POP3_OK);
        assert_eq!(refused, expected, "{}", String::from_utf8_lossy(refusal));
    }
}
