//! The hostile-server suite: scripted servers that lie, inject, stall, flood
//! and tamper, run on every transport to prove that no server input can hurt
//! a client.
//!
//! Like [`scenarios`](crate::scenarios), each case is an async function
//! over the one [`Connection`] type, reached through a transport's
//! [`Transport`] implementation; a transport's `tests/hostile.rs` expands
//! [`hostile_tests!`](crate::hostile_tests) with the same transport value as
//! its scenario suite:
//!
//! ```ignore
//! test_support::hostile_tests!(Blocking);
//! ```
//!
//! Every case asserts the typed error (the [`Error`] variant and, where
//! there is one, the exact [`ProtocolError`], [`UsageError`] or
//! [`ResponseCode`]), that no credential crossed the wire when it must not
//! have (every byte the scripted server received, from
//! [`join_all`](ScriptedServer::join_all), is searched for the password, its
//! base64 forms and for `USER`, `PASS`, `AUTH` and `APOP` lines), and that
//! nothing hangs: scripted servers give up
//! after 5 s, clients use 1–4 s limits, and every test runs under a
//! [`Watchdog`] that aborts the test binary if a case is still running after
//! a minute. A panic anywhere fails the test.
//!
//! Only cases that need a socket, a runtime or TLS are here: STLS injection
//! and certificates, time-outs and stalls, reads split by the network,
//! proxies. Those whose outcome the core decides (listings, numbers, SASL,
//! APOP, floods, server text, caller arguments) run once, without sockets,
//! in `pop3-proto/tests/hostile/`; cases that the scenario suite or the
//! core's `tests/session.rs` already prove are not repeated here either.
//! `SECURITY.md` maps every case to its test.

use std::fmt;
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use pop3_proto::{Capabilities, Capability, ProtocolError};

use crate::pki::{rustls_server_config, CertKey, TestPki};
use pop3_transport::runtime::{IoStream, Runtime};
use pop3_transport::socks5::{ReplyCode, Socks5ConnectError, Socks5Error, Stage};
use pop3_transport::{Connection, FingerprintMismatch, Phase, Sha256Fingerprint, TlsOptions};

use crate::scenarios::{
    connect_in, n, proxy_url, retr_bytes, retr_streamed, timeouts, trusting, Conn, Error, Mode,
    Options, Result, Transport,
};
use crate::scripted::{show, ScriptConfig, ScriptedServer, Step};
use crate::socks5::{Behaviour, Socks5Config, Socks5Server};

/// Expands to one `#[test]` per case of [`crate::hostile`], each calling the
/// case with `&$transport` under a [`Watchdog`].
#[macro_export]
macro_rules! hostile_tests {
    ($transport:expr) => {
        $crate::hostile_tests!(@each $transport;
            stls_injection_partial_line,
            stls_plaintext_garbage_instead_of_tls,
            stls_handshake_stalls,
            implicit_tls_handshake_stalls,
            capabilities_from_before_tls_are_forgotten,
            starttls_unknown_ca,
            starttls_expired,
            starttls_self_signed,
            reply_line_of_one_mib_never_ending,
            bare_lf_terminator_times_out,
            terminator_split_across_reads,
            proxy_answers_garbage,
            proxy_refuses,
            proxy_stalls,
            wrong_fingerprint_pin,
        );
    };
    (@each $transport:expr; $($(#[$attr:meta])* $name:ident),* $(,)?) => {
        $(
            #[test]
            $(#[$attr])*
            fn $name() {
                let _watchdog = $crate::hostile::Watchdog::start(stringify!($name));
                let transport = $transport;
                $crate::scenarios::Transport::block_on(
                    &transport,
                    $crate::hostile::$name(&transport),
                );
            }
        )*
    };
}

// ---------------------------------------------------------------------------
// Watchdog and error text
// ---------------------------------------------------------------------------

/// How long one case may run before the [`Watchdog`] aborts the test binary.
pub const WATCHDOG_LIMIT: Duration = Duration::from_secs(60);

/// Aborts the whole test process if the case that started it is still
/// running after [`WATCHDOG_LIMIT`]: a hang fails loudly instead of blocking
/// the suite. Dropping it (at the end of the test, or while a panic unwinds)
/// stops it.
#[derive(Debug)]
pub struct Watchdog {
    _stop: mpsc::Sender<()>,
}

impl Watchdog {
    /// Starts watching the case `name`.
    pub fn start(name: &'static str) -> Watchdog {
        let (stop, stopped) = mpsc::channel::<()>();
        thread::Builder::new()
            .name(format!("watchdog-{name}"))
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(WATCHDOG_LIMIT) {
                    eprintln!("hostile case {name} still running after {WATCHDOG_LIMIT:?}: hung");
                    std::process::abort();
                }
            })
            .expect("spawn the watchdog thread");
        Watchdog { _stop: stop }
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The client's limit where a case wants no time-out.
const LIMIT: Duration = Duration::from_secs(2);
/// The client's limit where a time-out is the expected outcome.
const SHORT: Duration = Duration::from_secs(1);

const USER: &str = "alice";
const PASSWORD: &str = "Hunter2-hostile-pw";
const GREETING: &str = "+OK hostile server ready <1896.697170952@hostile.example>";
const MIB: usize = 1 << 20;

const CAPA_WITH_STLS: &[u8] = b"+OK\r\nTOP\r\nUSER\r\nSTLS\r\nSASL PLAIN LOGIN\r\nUIDL\r\n.\r\n";

fn script_config() -> ScriptConfig {
    ScriptConfig {
        timeout: Duration::from_secs(5),
        stall_limit: Duration::from_secs(10),
    }
}

fn script(steps: Vec<Step>) -> ScriptedServer {
    ScriptedServer::start_with(steps, script_config())
}

/// Client options: trusts the test CA, 2 s limits, credentials refused in
/// the clear (the default).
fn opts() -> Options {
    trusting(&TestPki::shared().ca_pem).timeouts(timeouts(LIMIT))
}

/// [`opts`] with plaintext credentials allowed, for cases about something
/// else than the plaintext rule.
fn plain_opts() -> Options {
    opts().allow_plaintext_auth(true)
}

fn port(server: &ScriptedServer) -> u16 {
    server.addr().port()
}

#[track_caller]
fn expect_ok<V>(result: Result<V>, what: &str) -> V {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

#[track_caller]
fn expect_err<V: fmt::Debug>(result: Result<V>, what: &str) -> Error {
    match result {
        Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
        Err(e) => e,
    }
}

#[track_caller]
fn expect_connect_err<C>(result: Result<C>, what: &str) -> Error {
    expect_err(result.map(drop), what)
}

/// The session ended: every later call fails with `Closed`.
async fn assert_ended<S: IoStream, R: Runtime>(s: &mut Connection<S, R>, what: &str) {
    match s.capa().await {
        Err(Error::Closed) => {}
        other => panic!("{what}: the session should have ended, but capa gave {other:?}"),
    }
}

/// A time-out that fired after about `limit`, not at once and not much later.
#[track_caller]
fn assert_timed_out(e: &Error, started: Instant, limit: Duration, what: &str) {
    let took = started.elapsed();
    assert!(
        matches!(e, Error::Timeout(_)),
        "{what}: expected Timeout, got {e:?}"
    );
    assert!(
        took >= limit.mul_f32(0.9),
        "{what}: timed out too early ({took:?})"
    );
    assert!(
        took < limit + Duration::from_millis(1500),
        "{what}: timed out too late ({took:?} for a {limit:?} limit)"
    );
}

/// Waits for the server (the client must be gone, or the script complete):
/// everything the client sent, and whether the script was followed.
fn finish(server: ScriptedServer) -> (Vec<u8>, Result<(), String>) {
    server.join_all()
}

/// Ends a case that logged in with [`logged_in`]: what the client sent after
/// its login (checked to hold no credential), and whether the script was
/// followed.
#[track_caller]
fn finish_logged_in(server: ScriptedServer) -> (Vec<u8>, Result<(), String>) {
    let (received, result) = finish(server);
    let after = after_login(&received).to_vec();
    assert_no_credentials(&after, "after the login");
    (after, result)
}

/// Standard base64 with padding (test vectors and credential searches).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(v >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// No password (see [`assert_password_not_sent`]), no base64 user name and no
/// `USER`, `PASS`, `AUTH` or `APOP` line in `received`.
#[track_caller]
fn assert_no_credentials(received: &[u8], what: &str) {
    assert_password_not_sent(received, what);
    let text = String::from_utf8_lossy(received);
    assert!(
        !text.contains(base64(USER.as_bytes()).as_str()),
        "{what}: the client sent the user name for AUTH LOGIN: {}",
        show(received)
    );
    for line in text.split('\n') {
        let verb = line
            .trim_start()
            .split([' ', '\r'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        assert!(
            !["USER", "PASS", "AUTH", "APOP"].contains(&verb.as_str()),
            "{what}: the client sent a {verb} line: {}",
            show(received)
        );
    }
}

/// The password of this suite, plain or in its base64 forms (alone, and as
/// the AUTH PLAIN message), nowhere in `received`.
#[track_caller]
fn assert_password_not_sent(received: &[u8], what: &str) {
    let text = String::from_utf8_lossy(received);
    let secrets = [
        PASSWORD.to_owned(),
        base64(PASSWORD.as_bytes()),
        base64(format!("\0{USER}\0{PASSWORD}").as_bytes()),
    ];
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{what}: the client sent a password ({secret:?}): {}",
            show(received)
        );
    }
}

/// No control character (C0, DEL, C1 — terminal escapes) in `text`.
#[track_caller]
fn assert_clean(text: &str, what: &str) {
    assert!(
        !text.chars().any(char::is_control),
        "{what}: control characters in {text:?}"
    );
}

/// The greeting and a USER/PASS login.
fn login_steps() -> Vec<Step> {
    vec![
        Step::send_line(GREETING),
        Step::expect_line(&format!("USER {USER}")),
        Step::send_line("+OK"),
        Step::expect_line(&format!("PASS {PASSWORD}")),
        Step::send_line("+OK logged in"),
    ]
}

fn login_steps_then(rest: Vec<Step>) -> Vec<Step> {
    let mut steps = login_steps();
    steps.extend(rest);
    steps
}

/// The login the client sends for [`login_steps`].
fn login_bytes() -> Vec<u8> {
    format!("USER {USER}\r\nPASS {PASSWORD}\r\n").into_bytes()
}

/// Connects in the clear (plaintext credentials allowed) and logs in.
async fn logged_in<T: Transport>(t: &T, server: &ScriptedServer, opts: &Options) -> Conn<T> {
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", port(server), opts).await,
        "connect_plain",
    );
    expect_ok(s.login(USER, PASSWORD).await, "login");
    s
}

/// What the client sent after its login; fails unless it began with the login.
#[track_caller]
fn after_login(received: &[u8]) -> &[u8] {
    let login = login_bytes();
    assert!(
        received.starts_with(&login),
        "the client did not start with the login: {}",
        show(received)
    );
    &received[login.len()..]
}

fn repeated(prefix: &[u8], byte: u8, count: usize, suffix: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(prefix.len() + count + suffix.len());
    v.extend_from_slice(prefix);
    v.extend(std::iter::repeat_n(byte, count));
    v.extend_from_slice(suffix);
    v
}

// ---------------------------------------------------------------------------
// STLS injection, garbage and stalls
// ---------------------------------------------------------------------------

/// A partial line (no CRLF) after the STLS `+OK`, in the same write:
/// `DataAfterStls`, and nothing sent after STLS.
pub async fn stls_injection_partial_line<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::Send(CAPA_WITH_STLS.to_vec()),
        Step::expect_line("STLS"),
        Step::Send(b"+OK begin TLS\r\n+OK injected, no line end".to_vec()),
        Step::ExpectClose,
    ]);
    let e = expect_connect_err(
        t.connect_starttls("localhost", port(&server), &opts())
            .await,
        "partial line after STLS +OK",
    );
    assert!(
        matches!(e, Error::Protocol(ProtocolError::DataAfterStls)),
        "{e:?}"
    );
    let (received, result) = finish(server);
    assert_eq!(received, b"CAPA\r\nSTLS\r\n", "{}", show(&received));
    result.expect("client closed");
}

/// The STLS `+OK`, then (once the client has started its handshake)
/// plaintext instead of TLS: a `Tls` error, and after `STLS` only the
/// ClientHello went out.
pub async fn stls_plaintext_garbage_instead_of_tls<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::Send(CAPA_WITH_STLS.to_vec()),
        Step::expect_line("STLS"),
        Step::send_line("+OK begin TLS"),
        // Separate from the +OK, so that it reaches the TLS layer rather
        // than the injection check.
        Step::Sleep(Duration::from_millis(500)),
        Step::Send(b"-ERR this is not TLS\r\n+OK nor is this\r\n".to_vec()),
        // The ClientHello is binary and may hold a '\n': Stall, not ExpectClose.
        Step::Stall,
    ]);
    let e = expect_connect_err(
        t.connect_starttls("localhost", port(&server), &opts())
            .await,
        "plaintext after STLS +OK",
    );
    assert!(
        matches!(
            e,
            Error::Tls(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            ))
        ),
        "expected Tls(InvalidMessage(InvalidContentType)), got {e:?}"
    );
    let (received, _) = finish(server);
    let rest = received
        .strip_prefix(b"CAPA\r\nSTLS\r\n")
        .unwrap_or_else(|| panic!("client sent {}", show(&received)));
    assert_eq!(
        rest.first(),
        Some(&0x16),
        "after STLS only a TLS handshake record may follow: {}",
        show(rest)
    );
    assert_no_credentials(&received, "plaintext after STLS +OK");
}

fn handshake_opts() -> Options {
    let mut o = opts().timeouts(timeouts(Duration::from_secs(4)));
    o.timeouts.tls_handshake = Some(SHORT);
    o
}

/// The STLS `+OK`, then silence: the handshake limit (not the longer read
/// limit) fires with `Timeout`.
pub async fn stls_handshake_stalls<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::Send(CAPA_WITH_STLS.to_vec()),
        Step::expect_line("STLS"),
        Step::send_line("+OK begin TLS"),
        Step::Stall,
    ]);
    let started = Instant::now();
    let e = expect_connect_err(
        t.connect_starttls("localhost", port(&server), &handshake_opts())
            .await,
        "stalled STLS handshake",
    );
    assert_timed_out(&e, started, SHORT, "stalled STLS handshake");
    let (received, _) = finish(server);
    let rest = received
        .strip_prefix(b"CAPA\r\nSTLS\r\n")
        .unwrap_or_else(|| panic!("client sent {}", show(&received)));
    assert!(rest.is_empty() || rest[0] == 0x16, "{}", show(rest));
    assert_no_credentials(&received, "stalled STLS handshake");
}

/// Implicit TLS to a server that never answers the ClientHello: `Timeout`
/// after the handshake limit.
pub async fn implicit_tls_handshake_stalls<T: Transport>(t: &T) {
    let server = script(vec![Step::Stall]);
    let started = Instant::now();
    let e = expect_connect_err(
        t.connect_tls("localhost", port(&server), &handshake_opts())
            .await,
        "stalled implicit TLS handshake",
    );
    assert_timed_out(&e, started, SHORT, "stalled implicit TLS handshake");
    let (received, _) = finish(server);
    assert!(
        received.is_empty() || received[0] == 0x16,
        "{}",
        show(&received)
    );
    assert_no_credentials(&received, "stalled implicit TLS handshake");
}

// ---------------------------------------------------------------------------
// Capability tampering
// ---------------------------------------------------------------------------

/// Pre-TLS CAPA offers PIPELINING and SASL PLAIN, post-TLS CAPA does not:
/// after STLS `capabilities()` is the post-TLS list only, and commands go
/// out one at a time.
pub async fn capabilities_from_before_tls_are_forgotten<T: Transport>(t: &T) {
    let pki = TestPki::shared();
    let post_tls: &[u8] = b"+OK\r\nUSER\r\nTOP\r\n.\r\n";
    let server = script(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::Send(
            b"+OK\r\nSTLS\r\nPIPELINING\r\nSASL PLAIN LOGIN\r\nUSER\r\nX-PRE-TLS\r\n.\r\n".to_vec(),
        ),
        Step::expect_line("STLS"),
        Step::send_line("+OK begin TLS"),
        Step::StartTls(rustls_server_config(&pki.server)),
        Step::expect_line("CAPA"),
        Step::Send(post_tls.to_vec()),
        Step::expect_line(&format!("USER {USER}")),
        Step::send_line("+OK"),
        Step::expect_line(&format!("PASS {PASSWORD}")),
        Step::send_line("+OK logged in"),
        Step::expect_line("CAPA"),
        Step::Send(post_tls.to_vec()),
        Step::expect_line("NOOP"),
        Step::send_line("+OK"),
        Step::expect_line("DELE 1"),
        // A pipelining client would have sent DELE 2 by now; Close records
        // whatever arrived before closing.
        Step::Sleep(Duration::from_millis(300)),
        Step::Close,
    ]);
    let mut s = expect_ok(
        t.connect_starttls("localhost", port(&server), &opts())
            .await,
        "connect_starttls",
    );
    assert!(s.client().is_encrypted());
    let want = Capabilities {
        list: vec![Capability::User, Capability::Top],
    };
    assert_eq!(
        s.capabilities().cloned(),
        Some(want.clone()),
        "post-TLS CAPA only"
    );
    assert!(!s.client().is_pipelining(), "PIPELINING survived TLS");
    expect_ok(s.login(USER, PASSWORD).await, "login over TLS");
    expect_ok(s.noop().await, "noop");
    assert_eq!(s.capabilities().cloned(), Some(want), "post-login CAPA");
    assert!(!s.client().is_pipelining());
    let e = expect_err(
        s.dele_many(&[n(1), n(2)]).await,
        "dele_many, server hangs up",
    );
    assert!(
        matches!(
            e,
            Error::Protocol(ProtocolError::UnexpectedEof) | Error::Closed | Error::Io(_)
        ),
        "{e:?}"
    );
    drop(s);
    let (received, result) = finish(server);
    let want = format!(
        "CAPA\r\nSTLS\r\nCAPA\r\nUSER {USER}\r\nPASS {PASSWORD}\r\nCAPA\r\nNOOP\r\nDELE 1\r\n"
    );
    assert_eq!(
        received,
        want.as_bytes(),
        "one command at a time: {}",
        show(&received)
    );
    result.expect("script followed");
}

// ---------------------------------------------------------------------------
// Certificates after STLS
// ---------------------------------------------------------------------------

async fn starttls_with<T: Transport>(
    t: &T,
    cert: &CertKey,
    what: &str,
) -> rustls::CertificateError {
    let server = script(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::Send(CAPA_WITH_STLS.to_vec()),
        Step::expect_line("STLS"),
        Step::send_line("+OK begin TLS"),
        Step::StartTls(rustls_server_config(cert)),
        Step::ExpectClose,
    ]);
    let e = expect_connect_err(
        t.connect_starttls("localhost", port(&server), &opts())
            .await,
        what,
    );
    let (received, result) = finish(server);
    assert_eq!(
        received,
        b"CAPA\r\nSTLS\r\n",
        "{what}: nothing may follow STLS: {}",
        show(&received)
    );
    assert!(
        result.is_err(),
        "{what}: the server's handshake should fail"
    );
    match e {
        Error::Tls(rustls::Error::InvalidCertificate(c)) => c,
        other => panic!("{what}: expected Tls(InvalidCertificate), got {other:?}"),
    }
}

/// STLS, then a certificate from an unknown CA: `UnknownIssuer`.
pub async fn starttls_unknown_ca<T: Transport>(t: &T) {
    let c = starttls_with(t, &TestPki::shared().unknown_ca, "STLS, unknown CA").await;
    assert!(
        matches!(c, rustls::CertificateError::UnknownIssuer),
        "{c:?}"
    );
}

/// STLS, then a certificate whose validity ended in 2001: `ExpiredContext`.
pub async fn starttls_expired<T: Transport>(t: &T) {
    let c = starttls_with(t, &TestPki::shared().expired, "STLS, expired").await;
    match c {
        rustls::CertificateError::ExpiredContext { not_after, .. } => {
            assert_eq!(not_after.as_secs(), 978_307_200, "2001-01-01T00:00:00Z");
        }
        other => panic!("expected ExpiredContext, got {other:?}"),
    }
}

/// STLS, then a self-signed certificate: `UnknownIssuer`.
pub async fn starttls_self_signed<T: Transport>(t: &T) {
    let c = starttls_with(t, &TestPki::shared().self_signed, "STLS, self-signed").await;
    assert!(
        matches!(c, rustls::CertificateError::UnknownIssuer),
        "{c:?}"
    );
}

// ---------------------------------------------------------------------------
// Over-long lines and floods
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Message termination
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// SOCKS5 proxies and pinned certificates
// ---------------------------------------------------------------------------

/// Where the mail server would be: a listener that only tells whether anyone
/// connected. A proxy that fails must leave it untouched.
struct MailPort(TcpListener);

impl MailPort {
    fn new() -> MailPort {
        MailPort(TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
    }

    fn port(&self) -> u16 {
        self.0.local_addr().expect("local address").port()
    }

    #[track_caller]
    fn assert_untouched(&self, what: &str) {
        self.0.set_nonblocking(true).expect("non-blocking listener");
        match self.0.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok((_, from)) => panic!("{what}: the mail server was reached (from {from})"),
            Err(e) => panic!("{what}: accept: {e}"),
        }
    }
}

/// Connects in every mode through `proxy` (with `credentials` for it) to a
/// mail port nobody may reach, expecting each attempt to fail fast with
/// `Error::Proxy` holding `want`, naming SOCKS5 in its text.
async fn through_failing_proxy<T: Transport>(
    t: &T,
    proxy: &Socks5Server,
    credentials: Option<(&str, &str)>,
    want: &Socks5Error,
    what: &str,
) {
    let mail = MailPort::new();
    let options = opts().proxy(proxy_url(&proxy.url(credentials)));
    for mode in Mode::ALL {
        let what = format!("{what}, {mode:?}");
        let started = Instant::now();
        let e = expect_connect_err(
            connect_in(t, mode, "localhost", mail.port(), &options).await,
            &what,
        );
        assert!(
            started.elapsed() < LIMIT,
            "{what}: took {:?}",
            started.elapsed()
        );
        match &e {
            Error::Proxy(Socks5ConnectError::Socks5(got)) if got == want => {}
            other => panic!("{what}: expected Proxy({want:?}), got {other:?}"),
        }
        let text = e.to_string();
        assert!(text.contains("SOCKS5"), "{what}: {text}");
        assert_clean(&text, &what);
    }
    mail.assert_untouched(what);
}

/// A proxy that answers the method offer with something that is not SOCKS5
/// (an HTTP error, a POP3 greeting, a SOCKS4 reply), a method that was not
/// offered, or one byte and a close: a typed `Proxy` error at once in every
/// mode, with nothing sent toward the mail server.
pub async fn proxy_answers_garbage<T: Transport>(t: &T) {
    let cases: [(&[u8], Socks5Error); 5] = [
        (
            b"HTTP/1.1 400 Bad Request\r\n\r\n",
            Socks5Error::NotSocks5 {
                stage: Stage::MethodSelection,
                version: b'H',
            },
        ),
        (
            b"+OK POP3 server ready\r\n",
            Socks5Error::NotSocks5 {
                stage: Stage::MethodSelection,
                version: b'+',
            },
        ),
        (
            &[0, 0x5a, 0, 0, 0, 0, 0, 0],
            Socks5Error::NotSocks5 {
                stage: Stage::MethodSelection,
                version: 0,
            },
        ),
        (&[5, 0x42], Socks5Error::UnexpectedMethod(0x42)),
        (&[5], Socks5Error::Truncated(Stage::MethodSelection)),
    ];
    for (garbage, want) in cases {
        let what = format!("proxy answering {}", show(garbage));
        let proxy = Socks5Server::start(Socks5Config::with_behaviour(Behaviour::Garbage(
            garbage.to_vec(),
        )));
        // With credentials for the proxy, as the more exposed case.
        through_failing_proxy(t, &proxy, Some(("proxy-user", "proxy-pw")), &want, &what).await;
        for request in proxy.requests() {
            assert_eq!(request.methods, [0, 2], "{what}");
        }
    }
}

/// A proxy that refuses: the CONNECT refused with each of several reply
/// codes, its reply cut short, the proxy password refused, a proxy that
/// wants credentials the client does not have, and no proxy listening. A
/// typed `Proxy` error in every mode; the mail server is never reached.
pub async fn proxy_refuses<T: Transport>(t: &T) {
    for (code, reply) in [
        (1, ReplyCode::GeneralFailure),
        (2, ReplyCode::NotAllowed),
        (4, ReplyCode::HostUnreachable),
        (5, ReplyCode::ConnectionRefused),
    ] {
        let what = format!("proxy refusing with code {code}");
        let proxy = Socks5Server::start(Socks5Config::with_behaviour(Behaviour::Refuse(code)));
        let want = Socks5Error::ConnectFailed(reply);
        through_failing_proxy(t, &proxy, None, &want, &what).await;
        for request in proxy.requests() {
            assert_eq!(
                (request.address_type, request.host.as_str()),
                (3, "localhost"),
                "{what}: the proxy is asked by name"
            );
        }
    }
    let proxy = Socks5Server::start(Socks5Config::with_behaviour(Behaviour::TruncatedReply));
    let want = Socks5Error::Truncated(Stage::Connect);
    through_failing_proxy(t, &proxy, None, &want, "proxy cutting its reply short").await;

    let proxy = Socks5Server::start(Socks5Config::relay().require_auth("proxy-user", "right"));
    let want = Socks5Error::AuthRefused { status: 1 };
    let what = "proxy refusing the password";
    through_failing_proxy(t, &proxy, Some(("proxy-user", "wrong")), &want, what).await;
    let want = Socks5Error::NoAcceptableMethod;
    let what = "proxy wanting credentials";
    through_failing_proxy(t, &proxy, None, &want, what).await;

    // No proxy listening at all: an I/O error, still named as the proxy's.
    let closed = MailPort::new();
    let url = format!("socks5://127.0.0.1:{}", closed.port());
    drop(closed);
    let mail = MailPort::new();
    for mode in Mode::ALL {
        let what = format!("no proxy listening, {mode:?}");
        let options = opts().proxy(proxy_url(&url));
        let e = expect_connect_err(
            connect_in(t, mode, "localhost", mail.port(), &options).await,
            &what,
        );
        match &e {
            Error::Proxy(Socks5ConnectError::Io(io))
                if io.kind() == std::io::ErrorKind::ConnectionRefused => {}
            other => panic!("{what}: expected Proxy(Io(ConnectionRefused)), got {other:?}"),
        }
        assert!(e.to_string().contains("proxy"), "{what}: {e}");
    }
    mail.assert_untouched("no proxy listening");
}

/// A proxy that reads the method offer and then says nothing: `Timeout` in
/// the proxy phase after the connect limit, not a hang.
pub async fn proxy_stalls<T: Transport>(t: &T) {
    let proxy = Socks5Server::start(Socks5Config::with_behaviour(Behaviour::Silent));
    let mail = MailPort::new();
    let options = opts()
        .timeouts(timeouts(SHORT))
        .proxy(proxy_url(&proxy.url(None)));
    let started = Instant::now();
    let e = expect_connect_err(
        t.connect_tls("localhost", mail.port(), &options).await,
        "silent proxy",
    );
    assert_timed_out(&e, started, SHORT, "silent proxy");
    assert!(
        matches!(e, Error::Timeout(Phase::Proxy)),
        "the time-out names the proxy: {e:?}"
    );
    mail.assert_untouched("silent proxy");
}

/// The server presents a certificate whose SHA-256 fingerprint is not the
/// pinned one (the certificate chains to a trusted CA, but a pin trusts
/// nothing else): `Tls(InvalidCertificate(..))` holding the
/// `FingerprintMismatch`, before any POP3 command, in implicit TLS, after
/// STLS (only `CAPA` and `STLS` sent), and through a proxy. The right pin,
/// as a control, connects.
pub async fn wrong_fingerprint_pin<T: Transport>(t: &T) {
    let pki = TestPki::shared();
    let presented = Sha256Fingerprint::of(&pki.server.cert_der);
    let wrong = Sha256Fingerprint::of(&pki.self_signed.cert_der);
    let pinned = |pin| {
        opts().tls(
            TlsOptions::new()
                .add_root_pem(pki.ca_pem.as_bytes())
                .expect("the test CA is valid PEM")
                .pin_sha256(pin),
        )
    };
    let implicit = || {
        script(vec![
            Step::StartTls(rustls_server_config(&pki.server)),
            Step::send_line(GREETING),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ])
    };
    // Control: the right pin connects.
    let server = implicit();
    let s = expect_ok(
        t.connect_tls("localhost", port(&server), &pinned(presented))
            .await,
        "the right pin",
    );
    expect_ok(s.quit().await, "quit");
    finish(server).1.expect("script followed");

    let proxy = Socks5Server::start(Socks5Config::relay());
    for mode in [Mode::ImplicitTls, Mode::Stls] {
        for via_proxy in [false, true] {
            let what = format!("wrong pin, {mode:?}, through a proxy: {via_proxy}");
            let server = match mode {
                Mode::Stls => script(vec![
                    Step::send_line(GREETING),
                    Step::expect_line("CAPA"),
                    Step::Send(CAPA_WITH_STLS.to_vec()),
                    Step::expect_line("STLS"),
                    Step::send_line("+OK begin TLS"),
                    Step::StartTls(rustls_server_config(&pki.server)),
                    Step::ExpectClose,
                ]),
                _ => implicit(),
            };
            let mut options = pinned(wrong);
            if via_proxy {
                options = options.proxy(proxy_url(&proxy.url(None)));
            }
            let e = expect_connect_err(
                connect_in(t, mode, "localhost", port(&server), &options).await,
                &what,
            );
            let mismatch = match &e {
                Error::Tls(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
                    other,
                ))) => other.0.downcast_ref::<FingerprintMismatch>(),
                _ => None,
            };
            match mismatch {
                Some(m) => {
                    assert_eq!(m.presented, presented, "{what}");
                    assert_eq!(m.pinned, [wrong], "{what}");
                }
                None => panic!("{what}: expected a FingerprintMismatch, got {e:?}"),
            }
            let (received, _) = finish(server);
            let before_tls: &[u8] = match mode {
                Mode::Stls => b"CAPA\r\nSTLS\r\n",
                _ => b"",
            };
            assert_eq!(
                received,
                before_tls,
                "{what}: no POP3 command may follow: {}",
                show(&received)
            );
        }
    }
    assert_eq!(proxy.requests().len(), 2, "both proxied attempts used it");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(
            base64(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"),
            "biwsbj11c2VyLHI9ZnlrbytkMmxiYkZnT05Sdjlxa3hkYXdM"
        );
    }

    #[test]
    fn credential_search_finds_login_lines() {
        let caught = std::panic::catch_unwind(|| {
            assert_no_credentials(b"CAPA\r\nuser alice\r\n", "t");
        });
        assert!(caught.is_err());
        assert_no_credentials(b"CAPA\r\nSTLS\r\nQUIT\r\n", "t");
    }
}
