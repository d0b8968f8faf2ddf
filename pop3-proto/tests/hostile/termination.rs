//! Message termination: bodies whose last line looks like the end but is
//! not. (A bare-LF "terminator", which only a time-out ends, and a
//! terminator split across the network's reads, are the socket suite's
//! `bare_lf_terminator_times_out` and `terminator_split_across_reads`.)

use pop3_proto::{Command, Reply};

use crate::peer::{Session, Step};
use crate::{expect_ok, finish_logged_in, logged_in, login_steps_then, n, plain};

/// Runs a `RETR` or `TOP` and returns its body.
#[track_caller]
fn body(s: &mut Session, command: Command, what: &str) -> Vec<u8> {
    let handle = s.client.submit(command).unwrap();
    match expect_ok(s.run(handle), what) {
        Reply::BodyEnd => s.body(handle),
        other => panic!("{what}: {other:?}"),
    }
}

/// Bodies whose last line ends in a dot (`text.\r\n`), a stuffed lone dot as
/// the last line, an empty body, and `text.` in one read and its CRLF in the
/// next: each is exact.
#[test]
fn body_ending_with_text_dot() {
    let mut s = logged_in(
        plain(),
        login_steps_then(vec![
            Step::expect_line("RETR 1"),
            Step::Send(b"+OK\r\nsome text.\r\n.\r\n".to_vec()),
            Step::expect_line("RETR 2"),
            Step::Send(b"+OK\r\ntext.\r\n..\r\n.\r\n".to_vec()),
            Step::expect_line("RETR 3"),
            Step::Send(b"+OK\r\n.\r\n".to_vec()),
            Step::expect_line("RETR 4"),
            Step::Send(b"+OK\r\ntext.".to_vec()),
            Step::Send(b"\r\n.\r\n".to_vec()),
            Step::expect_line("TOP 5 0"),
            Step::Send(b"+OK\r\nSubject: x.\r\n\r\n.\r\n".to_vec()),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ]),
    );
    assert_eq!(
        body(&mut s, Command::Retr(n(1)), "retr 1"),
        b"some text.\r\n"
    );
    assert_eq!(
        body(&mut s, Command::Retr(n(2)), "retr 2"),
        b"text.\r\n.\r\n"
    );
    assert_eq!(body(&mut s, Command::Retr(n(3)), "retr 3"), b"");
    assert_eq!(body(&mut s, Command::Retr(n(4)), "retr 4"), b"text.\r\n");
    assert_eq!(
        body(&mut s, Command::Top(n(5), 0), "top 5"),
        b"Subject: x.\r\n\r\n"
    );
    expect_ok(s.command(Command::Quit), "quit");
    finish_logged_in(s).1.expect("script followed");
}
