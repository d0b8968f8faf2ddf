//! Replies nobody asked for are never taken for the answer to a command.

use pop3_proto::{Command, ProtocolError, UsageError};

use crate::peer::{show, Outcome, Session, Step};
use crate::{
    assert_ended, expect_ok, finish_logged_in, logged_in, login_steps_then, plain, GREETING,
};

/// The session failed before `outcome`'s command could be submitted: it
/// was refused with the fatal error, nothing queued.
#[track_caller]
fn expect_session_failed(outcome: Outcome, want: ProtocolError, what: &str) {
    match outcome {
        Outcome::Refused(UsageError::Failed(got)) if got == want => {}
        other => panic!("{what}: expected Refused(Failed({want:?})), got {other:?}"),
    }
}

/// A second `+OK` in the greeting's write, before any command: the next
/// operation fails with `UnsolicitedData`, and nothing is sent on the
/// desynchronised stream.
#[test]
fn unsolicited_data_after_greeting() {
    let mut s = Session::new(
        plain(),
        vec![Step::Send(
            format!("{GREETING}\r\n+OK nobody asked for this\r\n").into_bytes(),
        )],
    );
    s.greet().expect("the greeting itself is good");
    // The core read the extra line with the greeting: the session has
    // failed, and the next command is refused with that error.
    expect_session_failed(
        s.command(Command::Capa),
        ProtocolError::UnsolicitedData,
        "capa after unsolicited data",
    );
    assert_ended(&mut s, "after unsolicited data");
    let (sent, result) = s.finish();
    assert!(
        sent.is_empty(),
        "nothing may be sent on a desynchronised stream: {}",
        show(&sent)
    );
    result.expect("script followed");
}

/// An extra `+OK` in the same write as a reply: the reply is delivered, and
/// the next operation fails with `UnsolicitedData` instead of taking it as
/// its answer.
#[test]
fn unsolicited_data_after_a_reply() {
    let mut s = logged_in(
        plain(),
        login_steps_then(vec![
            Step::expect_line("NOOP"),
            Step::Send(b"+OK\r\n+OK extra reply nobody asked for\r\n".to_vec()),
        ]),
    );
    expect_ok(s.command(Command::Noop), "noop");
    expect_session_failed(
        s.command(Command::Noop),
        ProtocolError::UnsolicitedData,
        "noop after an extra reply",
    );
    assert_ended(&mut s, "after unsolicited data");
    let (sent, result) = finish_logged_in(s);
    assert_eq!(sent, b"NOOP\r\n", "{}", show(&sent));
    result.expect("script followed");
}
