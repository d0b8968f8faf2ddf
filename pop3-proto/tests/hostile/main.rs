//! Hostile servers against the core: the cases that test its decisions, not
//! a driver's pump. Malformed listings, numbers too large, SASL and SCRAM
//! abuse, APOP timestamps, over-long lines and floods, unsolicited replies,
//! escapes in server text, line breaks in caller arguments, refused STLS.
//!
//! Each case drives [`pop3_proto::Client`] against a scripted server in
//! memory ([`peer`]) with the bytes the socket suite sent, once, and asserts
//! what the core produced: the event of the command ([`Event::Ok`], `Err`,
//! `Failed`, `Cancelled`), the fatal [`ProtocolError`] from `poll`, or the
//! [`UsageError`] that refused a submission; and, as the socket suite did,
//! that no credential was sent when none may be (every byte the client sent
//! is searched for the password, its base64 forms and for `USER`, `PASS`,
//! `AUTH` and `APOP` lines). What needs a socket, a runtime or TLS (STLS
//! injection, certificates, time-outs, stalls, reads split by the network,
//! proxies) stays in `test-support/src/hostile/`, run on every transport.
//! `SECURITY.md` maps every case to its test.
//!
//! [`Event::Ok`]: pop3_proto::Event::Ok
#![allow(clippy::unwrap_used)]

mod peer;

mod apop;
mod arguments;
mod credentials;
mod floods;
mod listings;
mod pipelining;
mod sasl;
mod stls;
mod termination;
mod text;
mod unsolicited;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use pop3_proto::{
    AuthMethod, Config, MsgNum, ProtocolError, Reply, ResponseCode, ServerError, UsageError,
};

use peer::{show, Outcome, Session, Step};

const USER: &str = "alice";
const PASSWORD: &str = "Hunter2-hostile-pw";
const GREETING: &str = "+OK hostile server ready <1896.697170952@hostile.example>";
const MIB: usize = 1 << 20;

fn n(v: u32) -> MsgNum {
    MsgNum::new(v).unwrap()
}

/// A connection in the clear that refuses credentials (the default).
fn clear() -> Config {
    Config::default()
}

/// [`clear`] with plaintext credentials allowed, for cases about something
/// else than the plaintext rule.
fn plain() -> Config {
    Config::default().allow_plaintext_credentials(true)
}

/// A session that has read its greeting.
#[track_caller]
fn greeted(config: Config, steps: Vec<Step>) -> Session {
    let mut s = Session::new(config, steps);
    if let Err(outcome) = s.greet() {
        panic!("greeting: {outcome:?}");
    }
    s
}

/// Greeted in the clear (plaintext credentials allowed) and logged in with
/// USER/PASS; `steps` begin with [`login_steps`].
#[track_caller]
fn logged_in(config: Config, steps: Vec<Step>) -> Session {
    let mut s = greeted(config, steps);
    let outcome = s.login_with(USER, PASSWORD, AuthMethod::UserPass);
    expect_ok(outcome, "login");
    s
}

#[track_caller]
fn expect_ok(outcome: Outcome, what: &str) -> Reply {
    match outcome {
        Outcome::Ok(reply) => reply,
        other => panic!("{what}: expected +OK, got {other:?}"),
    }
}

/// The fatal error from `poll`: the session is over.
#[track_caller]
fn expect_fatal(outcome: Outcome, want: ProtocolError, what: &str) -> ProtocolError {
    match outcome {
        Outcome::Fatal(got) if got == want => got,
        other => panic!("{what}: expected the fatal {want:?}, got {other:?}"),
    }
}

/// One unusable reply (`Event::Failed`): the session goes on.
#[track_caller]
fn expect_failed(outcome: Outcome, want: ProtocolError, what: &str) {
    match outcome {
        Outcome::Failed(got) if got == want => {}
        other => panic!("{what}: expected Failed({want:?}), got {other:?}"),
    }
}

/// Refused when submitted: nothing queued, nothing sent.
#[track_caller]
fn expect_refused(outcome: Outcome, want: UsageError, what: &str) {
    match outcome {
        Outcome::Refused(got) if got == want => {}
        other => panic!("{what}: expected Refused({want:?}), got {other:?}"),
    }
}

/// `-ERR` with `code`.
#[track_caller]
fn expect_server(outcome: Outcome, code: Option<ResponseCode>, what: &str) -> ServerError {
    match outcome {
        Outcome::Err(e) => {
            assert_eq!(e.code, code, "{what}: response code of {e:?}");
            e
        }
        other => panic!("{what}: expected -ERR, got {other:?}"),
    }
}

/// The session is over: the error is sticky and nothing more is accepted.
#[track_caller]
fn assert_ended(s: &mut Session, what: &str) {
    let error = s.client.error().cloned();
    assert!(error.is_some(), "{what}: the session should have ended");
    match s.client.submit(pop3_proto::Command::Capa) {
        Err(UsageError::Failed(e)) => assert_eq!(Some(e), error, "{what}"),
        other => panic!("{what}: the session should have ended, but CAPA gave {other:?}"),
    }
}

/// Standard base64 with padding.
fn b64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// No password (see [`assert_password_not_sent`]), no base64 user name and no
/// `USER`, `PASS`, `AUTH` or `APOP` line in `sent`.
#[track_caller]
fn assert_no_credentials(sent: &[u8], what: &str) {
    assert_password_not_sent(sent, what);
    let text = String::from_utf8_lossy(sent);
    assert!(
        !text.contains(b64(USER.as_bytes()).as_str()),
        "{what}: the client sent the user name for AUTH LOGIN: {}",
        show(sent)
    );
    for line in text.split('\n') {
        let verb = line
            .trim_start()
            .split([' ', '\r'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        assert!(
            !["USER", "PASS", "AUTH", "APOP"].contains(&verb.as_str()),
            "{what}: the client sent a {verb} line: {}",
            show(sent)
        );
    }
}

/// Neither password of these cases, plain or in its base64 forms (alone, and
/// as the AUTH PLAIN message), in `sent`.
#[track_caller]
fn assert_password_not_sent(sent: &[u8], what: &str) {
    let text = String::from_utf8_lossy(sent);
    let secrets = [
        PASSWORD.to_owned(),
        sasl::SCRAM_PASSWORD.to_owned(),
        b64(PASSWORD.as_bytes()),
        b64(sasl::SCRAM_PASSWORD.as_bytes()),
        b64(format!("\0{USER}\0{PASSWORD}").as_bytes()),
    ];
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{what}: the client sent a password ({secret:?}): {}",
            show(sent)
        );
    }
}

/// No control character (C0, DEL, C1: terminal escapes) in `text`.
#[track_caller]
fn assert_clean(text: &str, what: &str) {
    assert!(
        !text.chars().any(char::is_control),
        "{what}: control characters in {text:?}"
    );
}

/// The greeting and a USER/PASS login.
fn login_steps() -> Vec<Step> {
    vec![
        Step::send_line(GREETING),
        Step::expect_line(&format!("USER {USER}")),
        Step::send_line("+OK"),
        Step::expect_line(&format!("PASS {PASSWORD}")),
        Step::send_line("+OK logged in"),
    ]
}

fn login_steps_then(rest: Vec<Step>) -> Vec<Step> {
    let mut steps = login_steps();
    steps.extend(rest);
    steps
}

/// The login the client sends for [`login_steps`].
fn login_bytes() -> Vec<u8> {
    format!("USER {USER}\r\nPASS {PASSWORD}\r\n").into_bytes()
}

/// What the client sent after its login; fails unless it began with the login.
#[track_caller]
fn after_login(sent: &[u8]) -> &[u8] {
    let login = login_bytes();
    assert!(
        sent.starts_with(&login),
        "the client did not start with the login: {}",
        show(sent)
    );
    &sent[login.len()..]
}

/// Ends a case that logged in with [`logged_in`]: what the client sent after
/// its login (checked to hold no credential), and whether the script was
/// followed.
#[track_caller]
fn finish_logged_in(s: Session) -> (Vec<u8>, Result<(), String>) {
    let (sent, result) = s.finish();
    let after = after_login(&sent).to_vec();
    assert_no_credentials(&after, "after the login");
    (after, result)
}

fn repeated(prefix: &[u8], byte: u8, count: usize, suffix: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(prefix.len() + count + suffix.len());
    v.extend_from_slice(prefix);
    v.extend(std::iter::repeat_n(byte, count));
    v.extend_from_slice(suffix);
    v
}

#[test]
fn credential_search_finds_login_lines() {
    let caught = std::panic::catch_unwind(|| {
        assert_no_credentials(b"CAPA\r\nuser alice\r\n", "t");
    });
    assert!(caught.is_err());
    assert_no_credentials(b"CAPA\r\nSTLS\r\nQUIT\r\n", "t");
}
