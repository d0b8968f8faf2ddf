//! Credentials in the clear: refused before anything is sent.

use pop3_proto::{AuthMethod, Command, Reply, UsageError};

use crate::peer::{show, Step};
use crate::{
    assert_no_credentials, clear, expect_ok, expect_refused, greeted, GREETING, PASSWORD, USER,
};

/// No TLS, a server offering only USER, SASL PLAIN and LOGIN, and an APOP
/// timestamp: every way of logging in is refused with
/// `PlaintextCredentials`, and nothing but CAPA (and QUIT) is sent.
#[test]
fn plaintext_credentials_refused_by_default() {
    let mut s = greeted(
        clear(),
        vec![
            Step::send_line(GREETING),
            Step::expect_line("CAPA"),
            Step::Send(b"+OK\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n".to_vec()),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ],
    );
    assert!(!s.client.is_encrypted());
    let capa = match expect_ok(s.command(Command::Capa), "capa") {
        Reply::Capabilities(c) => c,
        other => panic!("capa: {other:?}"),
    };
    assert!(capa.user() && capa.has_sasl("PLAIN") && capa.has_sasl("LOGIN"));
    assert!(s.greeting().apop_timestamp.is_some());
    for (method, what) in [
        (AuthMethod::UserPass, "login"),
        (AuthMethod::Plain, "AUTH PLAIN"),
        (AuthMethod::Login, "AUTH LOGIN"),
        (AuthMethod::Apop, "apop"),
    ] {
        expect_refused(
            s.login_with(USER, PASSWORD, method),
            UsageError::PlaintextCredentials,
            what,
        );
    }
    expect_ok(s.command(Command::Quit), "quit");
    let (sent, result) = s.finish();
    assert_eq!(sent, b"CAPA\r\nQUIT\r\n", "{}", show(&sent));
    assert_no_credentials(&sent, "plaintext refusals");
    result.expect("script followed");
}
