//! Over-long lines, floods and numbers too large: each refused at once,
//! without being held, and only the command they answer fails when the
//! stream stays in step. (A line that never ends, so that only a time-out
//! can stop it, is the socket suite's `reply_line_of_one_mib_never_ending`.)

use pop3_proto::{Command, ProtocolError, Reply};

use crate::peer::{show, Session, Step};
use crate::{
    assert_ended, expect_failed, expect_fatal, expect_ok, finish_logged_in, logged_in,
    login_steps_then, n, plain, repeated, MIB,
};

/// A 1 MiB greeting without a line end, as `+OK` and as garbage: fatal
/// `LineTooLong` at once (without waiting for more bytes), nothing sent.
#[test]
fn greeting_of_one_mib_without_crlf() {
    for (prefix, byte) in [(&b"+OK "[..], b'a'), (b"", b'z')] {
        let what = format!("1 MiB greeting starting {}", show(prefix));
        let mut s = Session::new(
            plain(),
            vec![Step::Send(repeated(prefix, byte, MIB + 17, b""))],
        );
        let outcome = s.greet().expect_err(&what);
        expect_fatal(outcome, ProtocolError::LineTooLong { limit: 8192 }, &what);
        let (sent, _) = s.finish();
        assert!(sent.is_empty(), "{what}: {}", show(&sent));
    }
}

/// 1 MiB status lines that do end: `+OK` to STAT, `-ERR` to NOOP, `+OK` to
/// LIST (with its listing): each `Failed(LineTooLong)` for that command
/// alone; the session stays in step.
#[test]
fn reply_line_of_one_mib_then_crlf() {
    let mut s = logged_in(
        plain(),
        login_steps_then(vec![
            Step::expect_line("STAT"),
            Step::Send(repeated(b"+OK ", b'9', MIB, b"\r\n")),
            Step::expect_line("NOOP"),
            Step::Send(repeated(b"-ERR ", b'x', MIB, b"\r\n")),
            Step::expect_line("LIST"),
            Step::Send(repeated(b"+OK ", b'y', MIB, b"\r\n1 10\r\n2 20\r\n.\r\n")),
            Step::expect_line("STAT"),
            Step::send_line("+OK 2 30"),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ]),
    );
    let too_long = ProtocolError::LineTooLong { limit: 8192 };
    expect_failed(
        s.command(Command::Stat),
        too_long.clone(),
        "1 MiB +OK to STAT",
    );
    expect_failed(
        s.command(Command::Noop),
        too_long.clone(),
        "1 MiB -ERR to NOOP",
    );
    expect_failed(
        s.command(Command::List(None)),
        too_long,
        "1 MiB +OK to LIST",
    );
    match expect_ok(s.command(Command::Stat), "stat after the long lines") {
        Reply::Stat(stat) => assert_eq!((stat.count, stat.size), (2, 30)),
        other => panic!("stat: {other:?}"),
    }
    expect_ok(s.command(Command::Quit), "quit");
    finish_logged_in(s).1.expect("script followed");
}

/// 1 MiB of bytes that are no reply at all: fatal `LineTooLong` at once.
#[test]
fn garbage_line_of_one_mib() {
    let mut s = logged_in(
        plain(),
        login_steps_then(vec![
            Step::expect_line("NOOP"),
            Step::Send(repeated(b"", b'z', MIB, b"")),
        ]),
    );
    expect_fatal(
        s.command(Command::Noop),
        ProtocolError::LineTooLong { limit: 8192 },
        "1 MiB of garbage",
    );
    assert_ended(&mut s, "after garbage");
    let (sent, _) = finish_logged_in(s);
    assert_eq!(sent, b"NOOP\r\n");
}

/// A CAPA of a million lines: `Failed(TooManyLines)` for CAPA, and the
/// session still answers NOOP.
#[test]
fn capa_of_a_million_lines() {
    let mut flood = b"+OK\r\n".to_vec();
    for _ in 0..1_000_000 {
        flood.extend_from_slice(b"X-CAP\r\n");
    }
    flood.extend_from_slice(b".\r\n");
    let mut s = logged_in(
        plain(),
        login_steps_then(vec![
            Step::expect_line("CAPA"),
            Step::Send(flood),
            Step::expect_line("NOOP"),
            Step::send_line("+OK still here"),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ]),
    );
    expect_failed(
        s.command(Command::Capa),
        ProtocolError::TooManyLines { limit: 1000 },
        "a CAPA of a million lines",
    );
    expect_ok(s.command(Command::Noop), "noop after the flood");
    expect_ok(s.command(Command::Quit), "quit");
    finish_logged_in(s).1.expect("script followed");
}

/// A UIDL of a million lines (well-formed, as a lying server may send):
/// the default refuses it at 100 000 lines, `Failed(TooManyLines)`, and
/// drops what it had kept; the session still answers NOOP. (The default
/// was a million, so such a listing of ~50 MB was held whole.)
#[test]
fn uidl_of_a_million_lines() {
    let mut flood = b"+OK\r\n".to_vec();
    for i in 1..=1_000_000u32 {
        flood.extend_from_slice(format!("{i} uid-{i:040}\r\n").as_bytes());
    }
    flood.extend_from_slice(b".\r\n");
    let mut s = logged_in(
        plain(),
        login_steps_then(vec![
            Step::expect_line("UIDL"),
            Step::Send(flood),
            Step::expect_line("NOOP"),
            Step::send_line("+OK still here"),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ]),
    );
    expect_failed(
        s.command(Command::Uidl(None)),
        ProtocolError::TooManyLines { limit: 100_000 },
        "a UIDL of a million lines",
    );
    expect_ok(s.command(Command::Noop), "noop after the flood");
    expect_ok(s.command(Command::Quit), "quit");
    finish_logged_in(s).1.expect("script followed");
}

/// A LANG listing of 2 000 lines of 8 000 octets (16 MB, far below the
/// line limit): `Failed(ListingTooLarge)` at the 8 MiB default, and the
/// session goes on.
#[test]
fn lang_listing_of_sixteen_megabytes() {
    let description = "d".repeat(8_000);
    let mut flood = b"+OK\r\n".to_vec();
    for i in 0..2_000 {
        flood.extend_from_slice(format!("x-{i} {description}\r\n").as_bytes());
    }
    flood.extend_from_slice(b".\r\n");
    let mut s = logged_in(
        plain(),
        login_steps_then(vec![
            Step::expect_line("LANG"),
            Step::Send(flood),
            Step::expect_line("NOOP"),
            Step::send_line("+OK still here"),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ]),
    );
    expect_failed(
        s.command(Command::Lang(None)),
        ProtocolError::ListingTooLarge { limit: 8 * MIB },
        "a LANG listing of 16 MB",
    );
    expect_ok(s.command(Command::Noop), "noop after the flood");
    expect_ok(s.command(Command::Quit), "quit");
    finish_logged_in(s).1.expect("script followed");
}

/// Numbers of 2^64 and more in STAT, LIST and LIST n:
/// `Failed(Malformed("number too large"))`, and the session goes on.
#[test]
fn numbers_over_u64() {
    let mut s = logged_in(
        plain(),
        login_steps_then(vec![
            Step::expect_line("STAT"),
            Step::send_line("+OK 18446744073709551616 10"),
            Step::expect_line("STAT"),
            Step::send_line("+OK 1 18446744073709551616"),
            Step::expect_line("STAT"),
            Step::send_line("+OK 4294967296 10"),
            Step::expect_line("LIST"),
            Step::Send(b"+OK\r\n1 18446744073709551616\r\n.\r\n".to_vec()),
            Step::expect_line("LIST"),
            Step::Send(b"+OK\r\n99999999999999999999999999 1\r\n.\r\n".to_vec()),
            Step::expect_line("LIST 1"),
            Step::send_line("+OK 1 340282366920938463463374607431768211456"),
            Step::expect_line("STAT"),
            Step::send_line("+OK 1 18446744073709551615"),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ]),
    );
    let too_large = ProtocolError::Malformed("number too large");
    for (command, what) in [
        (Command::Stat, "STAT count 2^64"),
        (Command::Stat, "STAT size 2^64"),
        (Command::Stat, "STAT count 2^32"),
        (Command::List(None), "LIST size 2^64"),
        (Command::List(None), "LIST number 10^25"),
        (Command::List(Some(n(1))), "LIST 1 size 2^128"),
    ] {
        expect_failed(s.command(command), too_large.clone(), what);
    }
    match expect_ok(s.command(Command::Stat), "STAT at u64::MAX") {
        Reply::Stat(stat) => assert_eq!((stat.count, stat.size), (1, u64::MAX)),
        other => panic!("stat: {other:?}"),
    }
    expect_ok(s.command(Command::Quit), "quit");
    finish_logged_in(s).1.expect("script followed");
}
