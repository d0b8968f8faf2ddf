//! Arbitrary bytes as the reply to one command on a logged-in client.
//!
//! Input: `[kind, chunk, repeat, reply...]`. `kind` picks STAT, LIST, LIST n,
//! UIDL, UIDL n, CAPA, NOOP or LANG; the reply bytes are repeated
//! `1 + repeat % 64` times (to outgrow every limit) and handed over through
//! `input_buffer`/`input_written` in pieces of `1 + chunk` bytes; then EOF.
//!
//! The reply bytes are also read as an OAuth token refusal report
//! (`TokenRefusal::parse`).
//!
//! Asserted: no panic; a bounded number of polls per byte; the receive buffer
//! and the heap held by the client stay within what the (small) limits allow;
//! the reply, if any, has the variant the command expects and respects the
//! limits; server text is sanitised; errors are of the kinds a reply can cause
//! and are sticky; after EOF the client never asks for input again, and it
//! fails if the reply was not complete.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3_fuzz::{live_bytes, logged_in, refused_after_fatal, small_limits};
use pop3_proto::{
    Action, Capability, Client, Command, Config, Event, Handle, MsgNum, ProtocolError, Reply,
    ResponseCode, State, Text,
};

const KINDS: u8 = 8;
const READ_SIZE: usize = 256;
/// Heap the client may hold beyond its size after login, with the small limits:
/// the receive buffer (read_size + a partial line, with Vec growth) plus at most
/// 16 listing entries or 8 capability lines of 64 octets, sanitised.
const HEAP_BOUND: usize = 32 * 1024;

fn text_ok(t: &Text) {
    assert!(
        !t.as_str().chars().any(char::is_control),
        "unsanitised text {t:?}"
    );
}

fn check_reply(kind: u8, reply: &Reply, limits: &pop3_proto::Limits) {
    match (kind, reply) {
        (0, Reply::Stat(_)) => {}
        (1, Reply::List(v)) => {
            assert!(
                v.len() <= limits.max_listing_lines,
                "LIST longer than the limit"
            );
            let mut nums: Vec<u32> = v.iter().map(|e| e.msg.get()).collect();
            nums.sort_unstable();
            nums.dedup();
            assert_eq!(nums.len(), v.len(), "duplicate message numbers in LIST");
        }
        (2, Reply::ListOne(_)) => {}
        (3, Reply::Uidl(v)) => {
            assert!(
                v.len() <= limits.max_listing_lines,
                "UIDL longer than the limit"
            );
            for e in v {
                check_uid(&e.uid);
            }
            let mut uids: Vec<&str> = v.iter().map(|e| e.uid.as_str()).collect();
            uids.sort_unstable();
            uids.dedup();
            assert_eq!(uids.len(), v.len(), "duplicate unique ids in UIDL");
        }
        (4, Reply::UidlOne(e)) => check_uid(&e.uid),
        (5, Reply::Capabilities(c)) => {
            assert!(
                c.list.len() <= limits.max_capa_lines,
                "CAPA longer than the limit"
            );
            for cap in &c.list {
                match cap {
                    Capability::Implementation(t) => text_ok(t),
                    Capability::Other { name, args } => {
                        assert!(!name.chars().any(char::is_control));
                        assert!(args
                            .iter()
                            .all(|a| !a.chars().any(char::is_control) && !a.is_empty()));
                    }
                    Capability::Sasl(m) => {
                        assert!(m.iter().all(|m| !m.chars().any(char::is_control)))
                    }
                    _ => {}
                }
            }
        }
        (6, Reply::Ok(t)) => text_ok(t),
        (7, Reply::Languages(v)) => {
            assert!(
                v.len() <= limits.max_listing_lines,
                "LANG longer than the limit"
            );
            for l in v {
                assert!(!l.tag.is_empty());
                assert!(
                    l.tag
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*'),
                    "{l:?}"
                );
                text_ok(&l.description);
            }
        }
        (k, r) => panic!("command kind {k} got reply {r:?}"),
    }
}

fn check_uid(uid: &str) {
    assert!((1..=70).contains(&uid.len()), "uid length {}", uid.len());
    assert!(
        uid.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "uid {uid:?}"
    );
}

fn fatal_kind_ok(e: &ProtocolError) -> bool {
    matches!(
        e,
        ProtocolError::InvalidStatusLine(_)
            | ProtocolError::LineTooLong { .. }
            | ProtocolError::UnexpectedEof
            | ProtocolError::UnsolicitedData
    )
}

fn failed_kind_ok(e: &ProtocolError) -> bool {
    matches!(
        e,
        ProtocolError::LineTooLong { .. }
            | ProtocolError::TooManyLines { .. }
            | ProtocolError::Malformed(_)
    )
}

struct Run {
    handle: Handle,
    kind: u8,
    completed: bool,
    fatal: Option<ProtocolError>,
    closed: bool,
    eof: bool,
}

/// Polls until the client needs input, is closed or fails; checks everything it does.
fn drain(client: &mut Client, run: &mut Run, budget: &mut usize) {
    let limits = client.config().limits;
    loop {
        assert!(*budget > 0, "too many polls for the input given");
        *budget -= 1;
        match client.poll() {
            Ok(Action::NeedInput) => {
                assert!(!run.eof, "NeedInput after EOF");
                return;
            }
            Ok(Action::Closed) => {
                assert!(run.eof, "Closed without EOF or QUIT");
                assert_eq!(client.state(), State::Closed);
                run.closed = true;
                return;
            }
            Ok(Action::Send(b)) => {
                panic!("nothing to send, but sent {:?}", String::from_utf8_lossy(b))
            }
            Ok(Action::StartTls) => panic!("StartTls without STLS"),
            Ok(Action::Event(event)) => {
                let handle = match &event {
                    Event::Ok { handle, reply } => {
                        check_reply(run.kind, reply, &limits);
                        if let Reply::Capabilities(c) = reply {
                            assert_eq!(client.capabilities(), Some(c));
                        }
                        *handle
                    }
                    Event::Err { handle, error } => {
                        text_ok(&error.text);
                        if let Some(ResponseCode::Other(code)) = &error.code {
                            assert!(!code.chars().any(char::is_control));
                        }
                        *handle
                    }
                    Event::Failed { handle, error } => {
                        assert!(failed_kind_ok(error), "unexpected Failed error {error:?}");
                        *handle
                    }
                    other => panic!("unexpected event {other:?}"),
                };
                assert_eq!(handle, run.handle, "event for an unknown command");
                assert!(!run.completed, "second completion for one command");
                run.completed = true;
                assert_eq!(client.in_flight(), 0);
            }
            Err(e) => {
                assert!(fatal_kind_ok(&e), "unexpected fatal error {e:?}");
                // Sticky.
                assert_eq!(client.poll().err().as_ref(), Some(&e));
                assert_eq!(client.error(), Some(&e));
                assert_eq!(client.state(), State::Closed);
                let refused = client
                    .submit(Command::Noop)
                    .expect_err("submission accepted after a fatal error");
                assert!(
                    refused_after_fatal(&refused, &e),
                    "submit after {e:?}: {refused:?}"
                );
                run.fatal = Some(e);
                return;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let kind = data[0] % KINDS;
    let chunk = usize::from(data[1]) + 1;
    let repeat = usize::from(data[2] % 64) + 1;
    let reply = &data[3..];
    // The same bytes as an OAuth error report: parsed without panic, and
    // whatever it yields is safe to print.
    if let Some(refusal) = pop3_proto::sasl::TokenRefusal::parse(reply) {
        text_ok(&refusal.status);
        refusal.scope.iter().chain(&refusal.schemes).for_each(text_ok);
        let words = refusal.to_string();
        assert!(!words.chars().any(char::is_control), "{words:?}");
    }
    let n = MsgNum::new(u32::from(data[1]) + 1).unwrap();

    let mut config = Config::encrypted().limits(small_limits());
    config.read_size = READ_SIZE;
    let mut client = logged_in(config);
    let command = match kind {
        0 => Command::Stat,
        1 => Command::List(None),
        2 => Command::List(Some(n)),
        3 => Command::Uidl(None),
        4 => Command::Uidl(Some(n)),
        5 => Command::Capa,
        6 => Command::Noop,
        _ => Command::Lang(None),
    };
    let handle = client.submit(command).unwrap();
    match client.poll() {
        Ok(Action::Send(b)) => assert!(b.ends_with(b"\r\n")),
        other => panic!("expected the command to be sent, got {other:?}"),
    }
    assert!(matches!(client.poll(), Ok(Action::NeedInput)));
    let baseline = live_bytes();
    let limits = client.config().limits;
    let buffer_bound = READ_SIZE + limits.max_line_len + 2;

    let total = reply.len() * repeat;
    let mut run = Run {
        handle,
        kind,
        completed: false,
        fatal: None,
        closed: false,
        eof: false,
    };
    let mut budget = 2 * total + 64;
    let mut fed = 0;
    let stream = reply.iter().copied().cycle().take(total);
    let mut stream = stream.peekable();
    while stream.peek().is_some() {
        let spare = client.input_buffer();
        assert!(
            spare.len() >= READ_SIZE,
            "input_buffer smaller than read_size"
        );
        assert!(
            spare.len() <= buffer_bound,
            "receive buffer grew to {} octets",
            spare.len()
        );
        let n = chunk.min(spare.len());
        let mut written = 0;
        for (slot, byte) in spare.iter_mut().zip(stream.by_ref().take(n)) {
            *slot = byte;
            written += 1;
        }
        client.input_written(written);
        fed += written;
        drain(&mut client, &mut run, &mut budget);
        let held = live_bytes().saturating_sub(baseline);
        assert!(
            held <= HEAP_BOUND,
            "client holds {held} heap bytes after {fed} input bytes"
        );
        if run.fatal.is_some() || run.closed {
            break;
        }
    }

    if run.fatal.is_none() && !run.closed {
        client.receive_eof();
        run.eof = true;
        drain(&mut client, &mut run, &mut budget);
        assert!(
            run.fatal.is_some() || run.closed,
            "EOF did not end the session"
        );
        if !run.completed {
            assert!(
                run.fatal.is_some(),
                "EOF in the middle of a reply was not an error"
            );
        }
    }
});
