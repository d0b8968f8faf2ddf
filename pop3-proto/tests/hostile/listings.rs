//! Malformed LIST and UIDL listings: each fails only its own command, with
//! its reason, and the good listing that follows is read correctly.

use pop3_proto::{Command, ListEntry, ProtocolError, Reply, UidlEntry};

use crate::peer::{show, Step};
use crate::{
    expect_failed, expect_ok, finish_logged_in, logged_in, login_steps_then, n, plain, repeated,
};

/// LIST with missing fields, duplicates, number 0, junk, and more entries
/// than STAT said: each `Failed(Malformed(..))` with its reason; a good LIST
/// afterwards is read correctly.
#[test]
fn malformed_list() {
    let cases: &[(&[u8], &str)] = &[
        (b"+OK\r\n1\r\n.\r\n", "malformed LIST entry"),
        (b"+OK\r\n1 10\r\n 2\r\n.\r\n", "malformed LIST entry"),
        (b"+OK\r\n1 10\r\nx 20\r\n.\r\n", "malformed LIST entry"),
        (b"+OK\r\n-1 10\r\n.\r\n", "malformed LIST entry"),
        (b"+OK\r\n1 \x1b[2J\r\n.\r\n", "malformed LIST entry"),
        (
            b"+OK\r\n1 10\r\n1 20\r\n.\r\n",
            "duplicate message number in LIST",
        ),
        (b"+OK\r\n0 10\r\n.\r\n", "message number 0"),
    ];
    let mut steps = Vec::new();
    for (reply, _) in cases {
        steps.push(Step::expect_line("LIST"));
        steps.push(Step::Send(reply.to_vec()));
    }
    steps.extend([
        Step::expect_line("LIST 1"),
        Step::send_line("+OK 1"),
        Step::expect_line("LIST 1"),
        Step::send_line("+OK 0 10"),
        Step::expect_line("STAT"),
        Step::send_line("+OK 2 30"),
        Step::expect_line("LIST"),
        Step::Send(b"+OK\r\n1 10\r\n2 20\r\n3 30\r\n.\r\n".to_vec()),
        Step::expect_line("LIST"),
        Step::Send(b"+OK\r\n1 10\r\n2 20\r\n.\r\n".to_vec()),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]);
    let mut s = logged_in(plain(), login_steps_then(steps));
    for (reply, why) in cases {
        let outcome = s.command(Command::List(None));
        expect_failed(outcome, ProtocolError::Malformed(why), &show(reply));
    }
    expect_failed(
        s.command(Command::List(Some(n(1)))),
        ProtocolError::Malformed("malformed LIST entry"),
        "LIST 1 without a size",
    );
    expect_failed(
        s.command(Command::List(Some(n(1)))),
        ProtocolError::Malformed("message number 0"),
        "LIST 1 answered for message 0",
    );
    expect_ok(s.command(Command::Stat), "stat");
    expect_failed(
        s.command(Command::List(None)),
        ProtocolError::Malformed("LIST names a message beyond the STAT count"),
        "LIST with more entries than STAT",
    );
    let list = expect_ok(s.command(Command::List(None)), "a good LIST");
    assert_eq!(
        list,
        Reply::List(vec![
            ListEntry {
                msg: n(1),
                size: 10
            },
            ListEntry {
                msg: n(2),
                size: 20
            }
        ])
    );
    expect_ok(s.command(Command::Quit), "quit");
    finish_logged_in(s).1.expect("script followed");
}

/// UIDL with missing fields, duplicates, number 0, control characters,
/// escapes, NUL, 8-bit bytes and over-long ids in the UID, and more entries
/// than STAT said: each `Failed(Malformed(..))` with its reason.
#[test]
fn malformed_uidl() {
    let long_uid = repeated(b"+OK\r\n1 ", b'u', 71, b"\r\n.\r\n");
    let cases: Vec<(&[u8], &str)> = vec![
        (b"+OK\r\n1\r\n.\r\n", "malformed UIDL entry"),
        (b"+OK\r\n1 ab\x01cd\r\n.\r\n", "malformed UIDL entry"),
        (b"+OK\r\n1 \x1b[31mred\r\n.\r\n", "malformed UIDL entry"),
        (b"+OK\r\n1 nul\x00id\r\n.\r\n", "malformed UIDL entry"),
        (b"+OK\r\n1 del\x7f\r\n.\r\n", "malformed UIDL entry"),
        (b"+OK\r\n1 caf\xc3\xa9\r\n.\r\n", "malformed UIDL entry"),
        (b"+OK\r\n1 tab\tid\r\n.\r\n", "malformed UIDL entry"),
        (b"+OK\r\n1 a\rb\r\n.\r\n", "malformed UIDL entry"),
        (&long_uid, "UIDL unique id longer than 70 characters"),
        (
            b"+OK\r\n1 a\r\n1 b\r\n.\r\n",
            "duplicate message number in UIDL",
        ),
        (
            b"+OK\r\n1 same\r\n2 same\r\n.\r\n",
            "duplicate unique id in UIDL",
        ),
        (b"+OK\r\n0 zero\r\n.\r\n", "message number 0"),
    ];
    let mut steps = Vec::new();
    for (reply, _) in &cases {
        steps.push(Step::expect_line("UIDL"));
        steps.push(Step::Send(reply.to_vec()));
    }
    steps.extend([
        Step::expect_line("UIDL 1"),
        Step::send_line("+OK 1"),
        Step::expect_line("UIDL 1"),
        Step::Send(b"+OK 1 bell\x07\r\n".to_vec()),
        Step::expect_line("STAT"),
        Step::send_line("+OK 1 10"),
        Step::expect_line("UIDL"),
        Step::Send(b"+OK\r\n1 a\r\n2 b\r\n.\r\n".to_vec()),
        Step::expect_line("UIDL"),
        Step::Send(b"+OK\r\n1 a\r\n.\r\n".to_vec()),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]);
    let mut s = logged_in(plain(), login_steps_then(steps));
    for (reply, why) in &cases {
        let outcome = s.command(Command::Uidl(None));
        expect_failed(outcome, ProtocolError::Malformed(why), &show(reply));
    }
    expect_failed(
        s.command(Command::Uidl(Some(n(1)))),
        ProtocolError::Malformed("malformed UIDL entry"),
        "UIDL 1 without an id",
    );
    expect_failed(
        s.command(Command::Uidl(Some(n(1)))),
        ProtocolError::Malformed("malformed UIDL entry"),
        "UIDL 1 with a BEL in the id",
    );
    expect_ok(s.command(Command::Stat), "stat");
    expect_failed(
        s.command(Command::Uidl(None)),
        ProtocolError::Malformed("UIDL names a message beyond the STAT count"),
        "UIDL with more entries than STAT",
    );
    let uidl = expect_ok(s.command(Command::Uidl(None)), "a good UIDL");
    assert_eq!(
        uidl,
        Reply::Uidl(vec![UidlEntry {
            msg: n(1),
            uid: "a".into()
        }])
    );
    expect_ok(s.command(Command::Quit), "quit");
    finish_logged_in(s).1.expect("script followed");
}
