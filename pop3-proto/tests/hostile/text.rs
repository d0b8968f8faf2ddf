//! Terminal escapes, NUL, C1 controls and invalid UTF-8 in server text: the
//! text the caller gets, and every error's `Display`, hold no control
//! characters.

use std::fmt;

use pop3_proto::{AuthMethod, Command, ProtocolError, ResponseCode};

use crate::peer::{show, Outcome, Session, Step};
use crate::{
    assert_clean, assert_ended, expect_ok, expect_server, greeted, login_bytes, plain, GREETING,
    PASSWORD, USER,
};

const NASTY: &[u8] = b"\x1b]0;owned\x07\x1b[2J\x1b[31mred\x00nul\xff\xfe\xc2\x9bcsi\x7fdel\rcr";

fn with_nasty(prefix: &[u8]) -> Vec<u8> {
    let mut line = prefix.to_vec();
    line.extend_from_slice(NASTY);
    line.extend_from_slice(b"\r\n");
    line
}

/// An error, as its `Display` prints it, must be free of control characters.
#[track_caller]
fn assert_error_text_clean(error: &dyn fmt::Display, what: &str) {
    let text = error.to_string();
    assert_clean(&text, what);
    assert!(
        text.contains('\u{fffd}'),
        "{what}: the server's bytes should show as replacement characters: {text:?}"
    );
}

/// The greeting's fatal error.
#[track_caller]
fn greeting_error(greeting: Vec<u8>, what: &str) -> ProtocolError {
    let mut s = Session::new(plain(), vec![Step::Send(greeting)]);
    let e = match s.greet() {
        Err(Outcome::Fatal(e)) => e,
        other => panic!("{what}: expected a fatal error, got {other:?}"),
    };
    assert_eq!(s.client.error(), Some(&e), "{what}: sticky");
    let (sent, result) = s.finish();
    assert!(sent.is_empty(), "{what}: {}", show(&sent));
    result.expect("script followed");
    e
}

/// Escapes, NUL, C1 controls and invalid UTF-8 in a `+OK` greeting, a
/// `-ERR` greeting and a garbage greeting: the greeting text and the errors'
/// `Display` hold no control characters.
#[test]
fn escapes_in_greeting() {
    let mut s = greeted(
        plain(),
        vec![
            Step::Send(with_nasty(b"+OK <1.2@host> ")),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ],
    );
    let greeting = s.greeting();
    assert_clean(greeting.text.as_str(), "+OK greeting");
    assert!(greeting.text.as_str().contains("owned"), "{greeting:?}");
    assert_eq!(greeting.apop_timestamp.as_deref(), Some("<1.2@host>"));
    expect_ok(s.command(Command::Quit), "quit");
    let (sent, result) = s.finish();
    assert_eq!(sent, b"QUIT\r\n", "{}", show(&sent));
    result.expect("script followed");

    let e = greeting_error(with_nasty(b"-ERR [SYS/PERM] "), "-ERR greeting");
    match &e {
        ProtocolError::GreetingRejected(err) => {
            assert_eq!(err.code, Some(ResponseCode::SysPerm));
            assert_clean(err.text.as_str(), "-ERR greeting text");
        }
        other => panic!("expected GreetingRejected, got {other:?}"),
    }
    assert_error_text_clean(&e, "-ERR greeting");

    let e = greeting_error(with_nasty(b""), "garbage greeting");
    assert!(matches!(e, ProtocolError::InvalidGreeting(_)), "{e:?}");
    assert_error_text_clean(&e, "garbage greeting");
}

/// The same bytes in `-ERR` replies (to USER, to NOOP, in a response code)
/// and in a line that is no status at all: `-ERR` events and a fatal
/// `InvalidStatusLine` whose `Display` holds no control characters.
#[test]
fn escapes_in_err_text() {
    let mut bad_code = b"-ERR [IN-USE\x1b[5m] ".to_vec();
    bad_code.extend_from_slice(NASTY);
    bad_code.extend_from_slice(b"\r\n");
    let mut s = greeted(
        plain(),
        vec![
            Step::send_line(GREETING),
            Step::expect_line(&format!("USER {USER}")),
            Step::Send(with_nasty(b"-ERR [AUTH] ")),
            Step::expect_line(&format!("USER {USER}")),
            Step::send_line("+OK"),
            Step::expect_line(&format!("PASS {PASSWORD}")),
            Step::send_line("+OK"),
            Step::expect_line("NOOP"),
            Step::Send(with_nasty(b"-ERR ")),
            Step::expect_line("NOOP"),
            Step::Send(bad_code),
            Step::expect_line("NOOP"),
            Step::Send(with_nasty(b"")),
        ],
    );
    let e = expect_server(
        s.login_with(USER, PASSWORD, AuthMethod::UserPass),
        Some(ResponseCode::Auth),
        "-ERR to USER",
    );
    assert_clean(e.text.as_str(), "-ERR to USER");
    assert_error_text_clean(&e, "-ERR to USER");
    expect_ok(s.login_with(USER, PASSWORD, AuthMethod::UserPass), "login");
    let e = expect_server(s.command(Command::Noop), None, "-ERR to NOOP");
    assert_clean(e.text.as_str(), "-ERR to NOOP");
    assert_error_text_clean(&e, "-ERR to NOOP");
    let e = match s.command(Command::Noop) {
        Outcome::Err(e) => e,
        other => panic!("-ERR with an escape in its code: expected -ERR, got {other:?}"),
    };
    if let Some(ResponseCode::Other(code)) = &e.code {
        assert_clean(code, "response code");
    }
    assert_clean(e.text.as_str(), "-ERR with an escape in its code");
    assert_error_text_clean(&e, "-ERR with an escape in its code");
    let e = match s.command(Command::Noop) {
        Outcome::Fatal(e) => e,
        other => panic!("a line that is no status: expected a fatal error, got {other:?}"),
    };
    assert!(matches!(e, ProtocolError::InvalidStatusLine(_)), "{e:?}");
    assert_error_text_clean(&e, "a line that is no status");
    assert_ended(&mut s, "after an invalid status line");
    let (sent, result) = s.finish();
    let want = format!(
        "USER {USER}\r\n{}NOOP\r\nNOOP\r\nNOOP\r\n",
        String::from_utf8_lossy(&login_bytes())
    );
    assert_eq!(sent, want.as_bytes(), "{}", show(&sent));
    result.expect("script followed");
}
