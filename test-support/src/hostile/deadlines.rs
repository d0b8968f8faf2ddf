//! The session's overall deadline (`Timeouts::session`): servers that keep
//! a session busy without ever pausing long enough for an idle limit.

use super::*;
use pop3_transport::Phase;

use crate::scenarios::{n, retr_bytes, Timeouts};

/// The idle limit of these cases: each read may wait this long.
const IDLE: Duration = Duration::from_secs(1);
/// The overall limit of these cases.
const SESSION: Duration = Duration::from_secs(2);

/// One-second idle limits, a two-second session.
fn deadline_opts() -> Options {
    plain_opts().timeouts(Timeouts {
        session: Some(SESSION),
        ..timeouts(IDLE)
    })
}

/// `count` times: `chunk`, then a pause of `pause`.
fn trickle(chunk: &[u8], pause: Duration, count: usize) -> Vec<Step> {
    (0..count)
        .flat_map(|_| [Step::Send(chunk.to_vec()), Step::Sleep(pause)])
        .collect()
}

/// The session fails with the overall deadline about `SESSION` after it
/// began (`started`: just before connecting), and is over.
#[track_caller]
fn assert_session_deadline(e: &Error, started: Instant, what: &str) {
    let took = started.elapsed();
    assert!(
        matches!(e, Error::Timeout(Phase::Session)),
        "{what}: expected Timeout(Session), got {e:?}"
    );
    assert!(
        took >= SESSION.mul_f32(0.9),
        "{what}: the deadline fired too early ({took:?})"
    );
    assert!(
        took < SESSION + Duration::from_millis(1500),
        "{what}: the deadline fired too late ({took:?} for a {SESSION:?} session)"
    );
}

/// A reply line trickled one byte every 200 ms, without end: no read waits
/// as long as the 1 s idle limit, so only the 2 s session deadline ends it,
/// and the error says so.
pub async fn trickled_line_meets_the_session_deadline<T: Transport>(t: &T) {
    let mut steps = vec![Step::expect_line("NOOP"), Step::Send(b"+OK ".to_vec())];
    steps.extend(trickle(b"x", Duration::from_millis(200), 50));
    let server = script(login_steps_then(steps));
    let started = Instant::now();
    let mut s = logged_in(t, &server, &deadline_opts()).await;
    let e = expect_err(s.noop().await, "a trickled endless line");
    assert_session_deadline(&e, started, "a trickled endless line");
    assert_ended(&mut s, "after the deadline").await;
    drop(s);
    let (sent, _) = finish_logged_in(server);
    assert_eq!(sent, b"NOOP\r\n");
}

/// A message body that keeps coming, fast, without end: the client never
/// waits at all, so no timer runs; the deadline is checked before each read
/// and ends it.
pub async fn endless_fast_body_meets_the_session_deadline<T: Transport>(t: &T) {
    let mut steps = vec![Step::expect_line("RETR 1"), Step::Send(b"+OK\r\n".to_vec())];
    let line = repeated(b"", b'y', 4094, b"\r\n");
    steps.extend(trickle(&line, Duration::from_millis(5), 1000));
    let server = script(login_steps_then(steps));
    let started = Instant::now();
    let mut s = logged_in(t, &server, &deadline_opts()).await;
    let e = expect_err(retr_bytes(&mut s, n(1)).await, "an endless fast body");
    assert_session_deadline(&e, started, "an endless fast body");
    assert_ended(&mut s, "after the deadline").await;
    drop(s);
    let (sent, _) = finish_logged_in(server);
    assert_eq!(sent, b"RETR 1\r\n");
}

/// The control: a server that stops sending meets the idle limit first,
/// and the error names the read, not the session.
pub async fn silence_meets_the_idle_limit_first<T: Transport>(t: &T) {
    let server = script(login_steps_then(vec![
        Step::expect_line("NOOP"),
        Step::Send(b"+OK ".to_vec()),
        Step::Stall,
    ]));
    let mut s = logged_in(t, &server, &deadline_opts()).await;
    let started = Instant::now();
    let e = expect_err(s.noop().await, "a silent server");
    assert!(matches!(e, Error::Timeout(Phase::Read)), "{e:?}");
    assert_timed_out(&e, started, IDLE, "a silent server");
    drop(s);
    let (sent, _) = finish_logged_in(server);
    assert_eq!(sent, b"NOOP\r\n");
}

/// A TLS handshake trickled one byte every 200 ms: the header of a
/// handshake record of 16 KiB, then its body a byte at a time. No read
/// waits as long as the 1 s idle limit and the handshake's own limit is
/// longer than the session, so only the 2 s session deadline ends it. A
/// blocking socket's limit bounds one read, not the whole handshake.
pub async fn trickled_tls_handshake_meets_the_session_deadline<T: Transport>(t: &T) {
    let mut steps = vec![Step::Send(vec![0x16, 0x03, 0x03, 0x40, 0x00])];
    steps.extend(trickle(&[0], Duration::from_millis(200), 25));
    let server = script(steps);
    let options = deadline_opts().timeouts(Timeouts {
        session: Some(SESSION),
        tls_handshake: Some(Duration::from_secs(30)),
        ..timeouts(IDLE)
    });
    let started = Instant::now();
    let e = expect_connect_err(
        t.connect_tls("localhost", port(&server), &options).await,
        "a trickled TLS handshake",
    );
    assert_session_deadline(&e, started, "a trickled TLS handshake");
    drop(finish(server));
}
