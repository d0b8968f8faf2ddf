//! APOP timestamps that are missing, malformed or too long.

use pop3_proto::{AuthMethod, Command, Config, Limits, ProtocolError, UsageError};

use crate::peer::{show, Session, Step};
use crate::{
    assert_clean, expect_fatal, expect_ok, expect_refused, greeted, plain, repeated, PASSWORD, USER,
};

fn apop_refused(greeting: &[u8], config: Config, what: &str) {
    let mut line = greeting.to_vec();
    line.extend_from_slice(b"\r\n");
    let mut s = greeted(
        config,
        vec![
            Step::Send(line),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ],
    );
    assert_eq!(s.greeting().apop_timestamp, None, "{what}");
    assert_clean(s.greeting().text.as_str(), what);
    expect_refused(
        s.login_with(USER, PASSWORD, AuthMethod::Apop),
        UsageError::NoApopTimestamp,
        what,
    );
    expect_ok(s.command(Command::Quit), what);
    let (sent, result) = s.finish();
    assert_eq!(sent, b"QUIT\r\n", "{what}: {}", show(&sent));
    result.unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// Greetings whose timestamp is missing, malformed or not a msg-id: APOP is
/// refused with `NoApopTimestamp` and nothing is sent (plaintext credentials
/// are allowed here, so that is not the reason).
#[test]
fn apop_timestamps_invalid() {
    let cases: &[&[u8]] = &[
        b"+OK no timestamp at all",
        b"+OK <>",
        b"+OK <no-at-sign>",
        b"+OK <@no-local-part>",
        b"+OK <no-domain@>",
        b"+OK <with space@host>",
        b"+OK <unclosed@host",
        b"+OK unopened@host>",
        b"+OK <nested<1.2@host>",
        b"+OK [1.2@host]",
        b"+OK 1896.697170952@dbc.mydomain.com",
        b"+OK <ctl\x01char@host>",
        b"+OK <esc\x1b[2J@host>",
        b"+OK <nul\x00@host>",
        b"+OK <8bit\xe9@host>",
        b"+OK <tab\t@host>",
    ];
    for greeting in cases {
        apop_refused(greeting, plain(), &show(greeting));
    }
}

/// A 10 KB timestamp: with the default 8 KiB line limit the greeting itself
/// is refused (fatal `LineTooLong`, nothing sent); with a limit raised to fit
/// it, APOP is refused with `NoApopTimestamp`.
#[test]
fn apop_timestamp_huge() {
    let greeting = repeated(b"+OK <", b'a', 10 * 1024, b"@host.example>");
    let mut line = greeting.clone();
    line.extend_from_slice(b"\r\n");
    let mut s = Session::new(plain(), vec![Step::Send(line)]);
    let outcome = s.greet().expect_err("a 10 KB greeting, default limits");
    expect_fatal(
        outcome,
        ProtocolError::LineTooLong { limit: 8192 },
        "10 KB greeting, default limits",
    );
    let (sent, _) = s.finish();
    assert!(sent.is_empty(), "{}", show(&sent));

    let mut limits = Limits::default();
    limits.max_line_len = 64 * 1024;
    apop_refused(
        &greeting,
        plain().limits(limits),
        "10 KB timestamp, raised line limit",
    );
}
