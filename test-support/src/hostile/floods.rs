//! Over-long lines that only a time-out can end. (Those that end, and floods,
//! are the core's cases, `pop3-proto/tests/hostile/floods.rs`.)

use super::*;

/// A `-ERR` line that never ends (2 MiB, then silence): the client skips it
/// without holding it and gives up with `Timeout`.
pub async fn reply_line_of_one_mib_never_ending<T: Transport>(t: &T) {
    let server = script(login_steps_then(vec![
        Step::expect_line("NOOP"),
        Step::Send(repeated(b"-ERR ", b'x', 2 * MIB, b"")),
        Step::Stall,
    ]));
    let mut s = logged_in(t, &server, &plain_opts().timeouts(timeouts(SHORT))).await;
    let started = Instant::now();
    let e = expect_err(s.noop().await, "an endless -ERR line");
    // The 2 MiB arrive within the first read limits; the last one fires.
    assert!(matches!(e, Error::Timeout(_)), "{e:?}");
    assert!(
        started.elapsed() < SHORT * 4,
        "took {:?}",
        started.elapsed()
    );
    assert_ended(&mut s, "after the time-out").await;
    drop(s);
    let (sent, _) = finish_logged_in(server);
    assert_eq!(sent, b"NOOP\r\n");
}
