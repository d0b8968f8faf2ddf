//! Message termination where the network matters: a bare-LF "terminator"
//! that only the read limit ends, and the terminator split across reads.

use super::*;
use crate::scenarios::{n, retr_bytes, retr_streamed};

/// `.\n` is no terminator (a bare LF never ends a body): the dot after a
/// bare LF stays message data, and a body "ending" in `.\n` waits for the
/// real end until the read limit fires with `Timeout` — never a wrong
/// message.
pub async fn bare_lf_terminator_times_out<T: Transport>(t: &T) {
    let server = script(login_steps_then(vec![
        Step::expect_line("RETR 1"),
        Step::Send(b"+OK\r\nfirst\n.\nsecond\r\n.\r\n".to_vec()),
        Step::expect_line("RETR 2"),
        Step::Send(b"+OK\r\nline one\r\n.\n".to_vec()),
        Step::Stall,
    ]));
    let mut s = logged_in(t, &server, &plain_opts().timeouts(timeouts(SHORT))).await;
    let body = expect_ok(
        retr_bytes(&mut s, n(1)).await,
        "retr with a dot after a bare LF",
    );
    assert_eq!(body, b"first\n.\nsecond\r\n", "{}", show(&body));
    let started = Instant::now();
    let e = expect_err(retr_bytes(&mut s, n(2)).await, "retr ending in .\\n");
    assert_timed_out(&e, started, SHORT, "retr ending in .\\n");
    assert_ended(&mut s, "after the time-out").await;
    drop(s);
    let (sent, _) = finish_logged_in(server);
    assert_eq!(sent, b"RETR 1\r\nRETR 2\r\n");
}

/// The terminator split across reads (the server pauses inside `\r\n.\r\n`):
/// the body is exact, through `retr_to` and through the reader, and the
/// session goes on.
pub async fn terminator_split_across_reads<T: Transport>(t: &T) {
    let pause = || Step::Sleep(Duration::from_millis(40));
    let send = |b: &[u8]| Step::Send(b.to_vec());
    let server = script(login_steps_then(vec![
        Step::expect_line("RETR 1"),
        send(b"+OK\r\ntext\r\n"),
        pause(),
        send(b"."),
        pause(),
        send(b"\r"),
        pause(),
        send(b"\n"),
        Step::expect_line("RETR 2"),
        send(b"+OK\r\nabc\r"),
        pause(),
        send(b"\n."),
        pause(),
        send(b"\r\n"),
        Step::expect_line("RETR 3"),
        send(b"+OK\r\n..stuffed\r\nlast\r\n"),
        pause(),
        send(b".\r"),
        pause(),
        send(b"\n"),
        Step::expect_line("NOOP"),
        Step::send_line("+OK"),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]));
    let mut s = logged_in(t, &server, &plain_opts()).await;
    assert_eq!(
        expect_ok(retr_bytes(&mut s, n(1)).await, "retr 1"),
        b"text\r\n"
    );
    assert_eq!(
        expect_ok(retr_bytes(&mut s, n(2)).await, "retr 2"),
        b"abc\r\n"
    );
    assert_eq!(
        expect_ok(retr_streamed(&mut s, n(3), 1).await, "streamed retr 3"),
        b".stuffed\r\nlast\r\n"
    );
    expect_ok(s.noop().await, "noop");
    expect_ok(s.quit().await, "quit");
    finish_logged_in(server).1.expect("script followed");
}
