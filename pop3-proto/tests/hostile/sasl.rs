//! SASL abuse: huge and malformed challenges, `-ERR` in mid-exchange, and a
//! SCRAM server that cannot prove it knows the password or asks for absurd
//! iteration counts. SCRAM runs with the RFC 5802 test vector's nonce, so
//! that the script knows every message in advance.

use std::time::{Duration, Instant};

use pop3_proto::sasl::{Mechanism, SaslError, Scram};
use pop3_proto::{AuthMethod, Command, Credentials, ProtocolError, ResponseCode, Secret};

use crate::peer::{show, Step};
use crate::{
    assert_ended, assert_password_not_sent, b64, clear, expect_failed, expect_fatal, expect_ok,
    expect_server, greeted, plain, repeated, GREETING, MIB, PASSWORD, USER,
};

const SCRAM_USER: &str = "user";
pub(crate) const SCRAM_PASSWORD: &str = "pencil";
const SCRAM_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";
const SCRAM_CLIENT_FIRST: &str = "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL";
const SCRAM_SERVER_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
const SCRAM_SALT: &str = "QSXCR+Q6sek8bf92";
const SCRAM_CLIENT_FINAL: &str =
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
const SCRAM_SERVER_FINAL: &str = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";

/// SCRAM-SHA-1 with the RFC 5802 test vector's nonce.
fn scram() -> Box<dyn Mechanism> {
    let mechanism = Scram::sha1(
        SCRAM_USER.into(),
        Secret::new(SCRAM_PASSWORD.into()),
        SCRAM_NONCE.into(),
    )
    .expect("SCRAM test vector");
    Box::new(mechanism)
}

fn scram_auth_line() -> String {
    format!("AUTH SCRAM-SHA-1 {}", b64(SCRAM_CLIENT_FIRST.as_bytes()))
}

fn server_first(iterations: &str) -> String {
    format!("r={SCRAM_SERVER_NONCE},s={SCRAM_SALT},i={iterations}")
}

fn challenge(message: &str) -> Step {
    Step::send_line(&format!("+ {}", b64(message.as_bytes())))
}

/// RFC 7677: an iteration count below 4096 is refused by default
/// (`Failed(Sasl(IterationCountBelowMinimum))`, `*` before any key is
/// derived); `Credentials::scram_min_iterations` lowers the bar, and then
/// the same count is answered with the client's proof.
#[test]
fn scram_iteration_count_below_the_minimum() {
    let credentials = || Credentials::new(SCRAM_USER, SCRAM_PASSWORD).scram_nonce(SCRAM_NONCE);
    for count in [1u32, 1024, 4095] {
        let what = format!("SCRAM i={count}, default minimum");
        let mut s = greeted(
            plain(),
            vec![
                Step::send_line(GREETING),
                Step::expect_line(&scram_auth_line()),
                challenge(&server_first(&count.to_string())),
                Step::expect_line("*"),
                Step::send_line("-ERR cancelled"),
                Step::expect_line("QUIT"),
                Step::send_line("+OK bye"),
            ],
        );
        expect_failed(
            s.login_with_credentials(credentials(), AuthMethod::ScramSha1),
            ProtocolError::Sasl(SaslError::IterationCountBelowMinimum {
                count,
                minimum: 4096,
            }),
            &what,
        );
        expect_ok(s.command(Command::Quit), &what);
        let (sent, result) = s.finish();
        result.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            sent,
            format!("{}\r\n*\r\nQUIT\r\n", scram_auth_line()).as_bytes(),
            "{what}"
        );
    }

    let what = "SCRAM i=1024, minimum lowered to 1024";
    let mut s = greeted(
        plain(),
        vec![
            Step::send_line(GREETING),
            Step::expect_line(&scram_auth_line()),
            challenge(&server_first("1024")),
            // The RFC 5802 vector's exchange, recomputed for 1024 iterations.
            Step::expect_line(&b64(
                b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=ZkeY8lm7VkiL6BqEPvK9lfoIrUE=",
            )),
            Step::send_line("-ERR [AUTH] no"),
        ],
    );
    let outcome = s.login_with_credentials(
        credentials().scram_min_iterations(1024),
        AuthMethod::ScramSha1,
    );
    expect_server(outcome, Some(ResponseCode::Auth), what);
}

/// A 1 MiB challenge to AUTH LOGIN: fatal `LineTooLong` at once; neither the
/// user name nor the password was sent.
#[test]
fn sasl_huge_challenge() {
    let mut s = greeted(
        plain(),
        vec![
            Step::send_line(GREETING),
            Step::expect_line("AUTH LOGIN"),
            Step::Send(repeated(b"+ ", b'A', MIB, b"\r\n")),
        ],
    );
    expect_fatal(
        s.login_with(USER, PASSWORD, AuthMethod::Login),
        ProtocolError::LineTooLong { limit: 8192 },
        "1 MiB SASL challenge",
    );
    assert_ended(&mut s, "after a huge challenge");
    let (sent, _) = s.finish();
    assert_eq!(sent, b"AUTH LOGIN\r\n", "{}", show(&sent));
}

/// A challenge that is not base64: the client cancels with `*`, the server's
/// `-ERR` ends the exchange, the login fails with
/// `Failed(Sasl(MalformedChallenge))`, and the session goes on.
#[test]
fn sasl_invalid_base64_challenge() {
    let mut s = greeted(
        plain(),
        vec![
            Step::send_line(GREETING),
            Step::expect_line("AUTH LOGIN"),
            Step::send_line("+ !!!not base64!!!"),
            Step::expect_line("*"),
            Step::send_line("-ERR authentication cancelled"),
            Step::expect_line("CAPA"),
            Step::Send(b"+OK\r\nUSER\r\n.\r\n".to_vec()),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ],
    );
    expect_failed(
        s.login_with(USER, PASSWORD, AuthMethod::Login),
        ProtocolError::Sasl(SaslError::MalformedChallenge(
            "challenge is not valid base64",
        )),
        "invalid base64 challenge",
    );
    expect_ok(
        s.command(Command::Capa),
        "capa after the cancelled exchange",
    );
    expect_ok(s.command(Command::Quit), "quit");
    let (sent, result) = s.finish();
    assert_eq!(
        sent,
        b"AUTH LOGIN\r\n*\r\nCAPA\r\nQUIT\r\n",
        "{}",
        show(&sent)
    );
    result.expect("script followed");
}

/// `-ERR` in the middle of an exchange (AUTH LOGIN after the user name,
/// SCRAM after the client proof): `-ERR` with the code, the password never
/// sent, and the session goes on.
#[test]
fn sasl_err_mid_exchange() {
    let mut s = greeted(
        plain(),
        vec![
            Step::send_line(GREETING),
            Step::expect_line("AUTH LOGIN"),
            Step::send_line("+ VXNlcm5hbWU6"),
            Step::expect_line(&b64(USER.as_bytes())),
            Step::send_line("-ERR [SYS/TEMP] try again later"),
            Step::expect_line(&scram_auth_line()),
            Step::send_line(&format!("+ {}", b64(server_first("4096").as_bytes()))),
            Step::expect_line(&b64(SCRAM_CLIENT_FINAL.as_bytes())),
            Step::send_line("-ERR [AUTH] invalid proof"),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ],
    );
    expect_server(
        s.login_with(USER, PASSWORD, AuthMethod::Login),
        Some(ResponseCode::SysTemp),
        "AUTH LOGIN refused after the user name",
    );
    expect_server(
        s.auth(scram()),
        Some(ResponseCode::Auth),
        "SCRAM refused after the proof",
    );
    expect_ok(s.command(Command::Quit), "quit");
    let (sent, result) = s.finish();
    result.expect("script followed");
    assert_password_not_sent(&sent, "-ERR mid-exchange");
}

/// The RFC 5802 exchange with the right server signature logs in: the
/// control that shows the scripts of the SCRAM cases are right.
#[test]
fn scram_right_signature_control() {
    let mut s = greeted(
        clear(),
        vec![
            Step::send_line(GREETING),
            Step::expect_line(&scram_auth_line()),
            challenge(&server_first("4096")),
            Step::expect_line(&b64(SCRAM_CLIENT_FINAL.as_bytes())),
            challenge(SCRAM_SERVER_FINAL),
            Step::expect_line(""),
            Step::send_line("+OK welcome"),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ],
    );
    expect_ok(s.auth(scram()), "SCRAM with the right signature");
    expect_ok(s.command(Command::Quit), "quit");
    let (sent, result) = s.finish();
    result.expect("script followed");
    assert_password_not_sent(&sent, "SCRAM");
}

/// `+OK` before the server proved that it knows the password (right after
/// the client-first message, and right after the client proof): fatal
/// `Sasl(Incomplete)`.
#[test]
fn scram_ok_before_server_proof() {
    let early = vec![
        Step::send_line(GREETING),
        Step::expect_line(&scram_auth_line()),
        Step::send_line("+OK come in"),
    ];
    let late = vec![
        Step::send_line(GREETING),
        Step::expect_line(&scram_auth_line()),
        challenge(&server_first("4096")),
        Step::expect_line(&b64(SCRAM_CLIENT_FINAL.as_bytes())),
        Step::send_line("+OK come in"),
    ];
    for (what, steps) in [
        ("+OK after client-first", early),
        ("+OK after the proof", late),
    ] {
        let mut s = greeted(clear(), steps);
        expect_fatal(
            s.auth(scram()),
            ProtocolError::Sasl(SaslError::Incomplete),
            what,
        );
        assert_ended(&mut s, what);
        let (sent, result) = s.finish();
        result.unwrap_or_else(|e| panic!("{what}: script not followed: {e}"));
        assert_password_not_sent(&sent, what);
    }
}

/// A wrong server signature: the client cancels with `*` (after sending its
/// proof), and the login fails with `Failed(Sasl(ServerSignatureMismatch))`
/// even though the server then says `-ERR`; the session goes on.
#[test]
fn scram_wrong_server_signature() {
    let mut s = greeted(
        clear(),
        vec![
            Step::send_line(GREETING),
            Step::expect_line(&scram_auth_line()),
            challenge(&server_first("4096")),
            Step::expect_line(&b64(SCRAM_CLIENT_FINAL.as_bytes())),
            challenge("v=AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            Step::expect_line("*"),
            Step::send_line("-ERR cancelled"),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ],
    );
    expect_failed(
        s.auth(scram()),
        ProtocolError::Sasl(SaslError::ServerSignatureMismatch),
        "wrong server signature",
    );
    expect_ok(s.command(Command::Quit), "quit");
    let (sent, result) = s.finish();
    result.expect("script followed");
    assert_password_not_sent(&sent, "SCRAM");
}

/// Iteration counts 0, 4294967295 (above the 1,000,000 default maximum) and
/// one that overflows u32: the client cancels with `*` before computing
/// anything, and the login fails with `Failed(Sasl(IterationCount(..)))`.
#[test]
fn scram_iteration_counts() {
    for (count, want) in [
        ("0", 0),
        ("4294967295", u32::MAX),
        ("1000001", 1_000_001),
        ("99999999999", u32::MAX),
    ] {
        let what = format!("SCRAM i={count}");
        let mut s = greeted(
            clear(),
            vec![
                Step::send_line(GREETING),
                Step::expect_line(&scram_auth_line()),
                challenge(&server_first(count)),
                Step::expect_line("*"),
                Step::send_line("-ERR cancelled"),
                Step::expect_line("QUIT"),
                Step::send_line("+OK bye"),
            ],
        );
        let started = Instant::now();
        expect_failed(
            s.auth(scram()),
            ProtocolError::Sasl(SaslError::IterationCount(want)),
            &what,
        );
        // Billions of HMAC rounds would take far longer than this.
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{what}: {took:?}");
        expect_ok(s.command(Command::Quit), &what);
        let (sent, result) = s.finish();
        result.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            sent,
            format!("{}\r\n*\r\nQUIT\r\n", scram_auth_line()).as_bytes(),
            "{what}"
        );
    }
}
