//! Capability tampering around the login: pipelining follows the current
//! capabilities only. (Capabilities from before TLS need a TLS server: the
//! socket suite's `capabilities_from_before_tls_are_forgotten`.)

use pop3_proto::{AuthMethod, Command, ProtocolError, Reply};

use crate::peer::Step;
use crate::{after_login, expect_fatal, expect_ok, greeted, n, plain, GREETING, PASSWORD, USER};

/// PIPELINING only in the post-login CAPA: nothing is pipelined before the
/// login, and DELEs are pipelined after it (the script wants all three
/// before it answers any).
#[test]
fn pipelining_only_after_login() {
    let mut s = greeted(
        plain(),
        vec![
            Step::send_line(GREETING),
            Step::expect_line("CAPA"),
            Step::Send(b"+OK\r\nUSER\r\nTOP\r\n.\r\n".to_vec()),
            Step::expect_line(&format!("USER {USER}")),
            Step::send_line("+OK"),
            Step::expect_line(&format!("PASS {PASSWORD}")),
            Step::send_line("+OK logged in"),
            Step::expect_line("CAPA"),
            Step::Send(b"+OK\r\nUSER\r\nTOP\r\nPIPELINING\r\n.\r\n".to_vec()),
            Step::expect_line("NOOP"),
            Step::send_line("+OK"),
            // All three before any answer: pipelined.
            Step::expect_line("DELE 1"),
            Step::expect_line("DELE 2"),
            Step::expect_line("DELE 3"),
            Step::Send(b"+OK\r\n+OK\r\n+OK\r\n".to_vec()),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ],
    );
    let before = match expect_ok(s.command(Command::Capa), "capa before login") {
        Reply::Capabilities(c) => c,
        other => panic!("capa: {other:?}"),
    };
    assert!(!before.pipelining());
    assert!(!s.client.is_pipelining(), "pipelining before login");
    expect_ok(s.login_with(USER, PASSWORD, AuthMethod::UserPass), "login");
    expect_ok(s.command(Command::Noop), "noop");
    assert!(
        s.client.is_pipelining(),
        "the post-login CAPA offers PIPELINING"
    );
    let caps = s
        .client
        .capabilities()
        .cloned()
        .expect("post-login capabilities");
    assert!(caps.pipelining() && caps.top() && caps.user(), "{caps:?}");
    let deles = s.client.dele_many(&[n(1), n(2), n(3)]).unwrap();
    for outcome in s.run_all(&deles) {
        expect_ok(outcome, "dele");
    }
    expect_ok(s.command(Command::Quit), "quit");
    let (sent, result) = s.finish();
    result.expect("script followed");
    assert_eq!(
        after_login(sent.strip_prefix(b"CAPA\r\n").unwrap_or(&sent)),
        b"CAPA\r\nNOOP\r\nDELE 1\r\nDELE 2\r\nDELE 3\r\nQUIT\r\n"
    );
}

/// PIPELINING in the pre-login CAPA only: after login commands go one at a
/// time (the server hangs up after the first DELE; a second was never sent).
#[test]
fn pipelining_lost_at_login() {
    let mut s = greeted(
        plain(),
        vec![
            Step::send_line(GREETING),
            Step::expect_line("CAPA"),
            Step::Send(b"+OK\r\nUSER\r\nPIPELINING\r\n.\r\n".to_vec()),
            Step::expect_line(&format!("USER {USER}")),
            Step::send_line("+OK"),
            Step::expect_line(&format!("PASS {PASSWORD}")),
            Step::send_line("+OK logged in"),
            Step::expect_line("CAPA"),
            Step::Send(b"+OK\r\nUSER\r\n.\r\n".to_vec()),
            Step::expect_line("NOOP"),
            Step::send_line("+OK"),
            Step::expect_line("DELE 1"),
            Step::Close,
        ],
    );
    expect_ok(s.command(Command::Capa), "capa before login");
    assert!(s.client.is_pipelining());
    expect_ok(s.login_with(USER, PASSWORD, AuthMethod::UserPass), "login");
    expect_ok(s.command(Command::Noop), "noop");
    assert!(!s.client.is_pipelining(), "PIPELINING survived the login");
    let deles = s.client.dele_many(&[n(1), n(2)]).unwrap();
    expect_fatal(
        s.run(deles[0]),
        ProtocolError::UnexpectedEof,
        "dele_many, server hangs up",
    );
    let (sent, result) = s.finish();
    result.expect("script followed");
    assert_eq!(
        after_login(sent.strip_prefix(b"CAPA\r\n").unwrap_or(&sent)),
        b"CAPA\r\nNOOP\r\nDELE 1\r\n",
        "one command at a time"
    );
}
