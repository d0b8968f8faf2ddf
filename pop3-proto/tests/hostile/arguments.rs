//! Caller arguments with line breaks or NUL: refused before anything is
//! sent, and the session goes on.

use pop3_proto::{AuthMethod, Command, UsageError};

use crate::peer::{show, Outcome, Session, Step};
use crate::{expect_ok, greeted, plain, GREETING, PASSWORD, USER};

const INJECTIONS: [&str; 5] = [
    "alice\r\nDELE 1",
    "alice\nQUIT",
    "al\rice",
    "nul\0",
    "alice\r\n",
];

fn script() -> Vec<Step> {
    vec![
        Step::send_line(GREETING),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]
}

#[track_caller]
fn invalid(outcome: Outcome, what: &str, bad: &str) {
    match outcome {
        Outcome::Refused(UsageError::InvalidArgument(_)) => {}
        other => panic!("{what} with {bad:?}: expected Refused(InvalidArgument), got {other:?}"),
    }
}

fn quit_and_finish(mut s: Session) {
    expect_ok(s.command(Command::Quit), "quit");
    let (sent, result) = s.finish();
    assert_eq!(sent, b"QUIT\r\n", "{}", show(&sent));
    result.expect("script followed");
}

/// CR, LF or NUL in the login user name, the APOP user name and password,
/// and the LANG tag: `InvalidArgument`, nothing sent, and the session goes
/// on.
#[test]
fn line_breaks_in_caller_arguments() {
    let mut s = greeted(plain(), script());
    for bad in INJECTIONS {
        let outcome = s.login_with(bad, PASSWORD, AuthMethod::UserPass);
        invalid(outcome, "login user", bad);
        let outcome = s.login_with(bad, PASSWORD, AuthMethod::Apop);
        invalid(outcome, "apop user", bad);
        let outcome = s.login_with(USER, bad, AuthMethod::Apop);
        invalid(outcome, "apop password", bad);
        let outcome = s.command(Command::Lang(Some(bad.into())));
        invalid(outcome, "lang tag", bad);
    }
    quit_and_finish(s);
}

/// CR, LF or NUL in the login password: `InvalidArgument`, and nothing
/// sent, not even the USER line before it.
#[test]
fn line_breaks_in_password() {
    let mut s = greeted(plain(), script());
    for bad in INJECTIONS {
        let outcome = s.login_with(USER, bad, AuthMethod::UserPass);
        invalid(outcome, "login password", bad);
    }
    quit_and_finish(s);
}
