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
//! Cases that the scenario suite or the core's `tests/session.rs` already
//! prove are not repeated here; `SECURITY.md` maps every case to its test.

use std::fmt;
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use pop3_proto::sasl::{Mechanism, SaslError, Scram};
use pop3_proto::{
    AuthMethod, Capabilities, Capability, Limits, ListEntry, ProtocolError, ResponseCode, Secret,
    UidlEntry, UsageError,
};

use crate::pki::{rustls_server_config, CertKey, TestPki};
use pop3_transport::runtime::{IoStream, Runtime};
use pop3_transport::socks5::{ReplyCode, Socks5ConnectError, Socks5Error, Stage};
use pop3_transport::{Connection, FingerprintMismatch, Phase, Sha256Fingerprint, TlsOptions};

use crate::scenarios::{
    connect_in, n, proxy_url, retr_bytes, retr_streamed, timeouts, top_bytes, trusting, Conn,
    Error, Mode, Options, Result, Transport,
};
use crate::scripted::{show, ScriptConfig, ScriptedServer, Step};
use crate::socks5::{Behaviour, Socks5Config, Socks5Server};

/// Expands to one `#[test]` per case of [`crate::hostile`], each calling the
/// case with `&$transport` under a [`Watchdog`].
#[macro_export]
macro_rules! hostile_tests {
    ($transport:expr) => {
        $crate::hostile_tests!(@each $transport;
            stls_refused_without_code,
            stls_refused_sys_perm,
            capa_refused_while_stls_required,
            stls_injection_partial_line,
            stls_plaintext_garbage_instead_of_tls,
            stls_handshake_stalls,
            implicit_tls_handshake_stalls,
            capabilities_from_before_tls_are_forgotten,
            pipelining_only_after_login,
            pipelining_lost_at_login,
            unsolicited_data_after_greeting,
            unsolicited_data_after_a_reply,
            plaintext_credentials_refused_by_default,
            apop_timestamps_invalid,
            apop_timestamp_huge,
            starttls_unknown_ca,
            starttls_expired,
            starttls_self_signed,
            greeting_of_one_mib_without_crlf,
            reply_line_of_one_mib_then_crlf,
            reply_line_of_one_mib_never_ending,
            garbage_line_of_one_mib,
            capa_of_a_million_lines,
            numbers_over_u64,
            malformed_list,
            malformed_uidl,
            sasl_huge_challenge,
            sasl_invalid_base64_challenge,
            sasl_err_mid_exchange,
            scram_right_signature_control,
            scram_ok_before_server_proof,
            scram_wrong_server_signature,
            scram_iteration_counts,
            bare_lf_terminator_times_out,
            terminator_split_across_reads,
            body_ending_with_text_dot,
            escapes_in_greeting,
            escapes_in_err_text,
            line_breaks_in_caller_arguments,
            line_breaks_in_password,
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

#[track_caller]
fn expect_protocol<V: fmt::Debug>(result: Result<V>, want: ProtocolError, what: &str) -> Error {
    let e = expect_err(result, what);
    match &e {
        Error::Protocol(got) if *got == want => {}
        other => panic!("{what}: expected Protocol({want:?}), got {other:?}"),
    }
    assert!(e.is_fatal(), "{what}: a protocol error ends the session");
    e
}

/// One unusable reply: `BadReply(want)`, not fatal (the session goes on).
#[track_caller]
fn expect_bad_reply<V: fmt::Debug>(result: Result<V>, want: ProtocolError, what: &str) {
    let e = expect_err(result, what);
    match &e {
        Error::BadReply(got) if *got == want => {}
        other => panic!("{what}: expected BadReply({want:?}), got {other:?}"),
    }
    assert!(!e.is_fatal(), "{what}: one unusable reply is not fatal");
}

#[track_caller]
fn expect_usage<V: fmt::Debug>(result: Result<V>, want: UsageError, what: &str) {
    match expect_err(result, what) {
        Error::Usage(got) if got == want => {}
        other => panic!("{what}: expected Usage({want:?}), got {other:?}"),
    }
}

#[track_caller]
fn expect_server<V: fmt::Debug>(
    result: Result<V>,
    code: Option<ResponseCode>,
    what: &str,
) -> pop3_proto::ServerError {
    match expect_err(result, what) {
        Error::Server(e) => {
            assert_eq!(e.code, code, "{what}: response code of {e:?}");
            e
        }
        other => panic!("{what}: expected Server (-ERR), got {other:?}"),
    }
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

/// Neither password of this suite, plain or in its base64 forms (alone, and
/// as the AUTH PLAIN message), in `received`.
#[track_caller]
fn assert_password_not_sent(received: &[u8], what: &str) {
    let text = String::from_utf8_lossy(received);
    let secrets = [
        PASSWORD.to_owned(),
        SCRAM_PASSWORD.to_owned(),
        base64(PASSWORD.as_bytes()),
        base64(SCRAM_PASSWORD.as_bytes()),
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
// STLS refused or unavailable
// ---------------------------------------------------------------------------

async fn stls_refused_with<T: Transport>(t: &T, line: &str, code: Option<ResponseCode>) {
    let server = script(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::Send(CAPA_WITH_STLS.to_vec()),
        Step::expect_line("STLS"),
        Step::send_line(line),
        Step::ExpectClose,
    ]);
    let what = format!("STLS answered {line:?}");
    let e = expect_connect_err(
        t.connect_starttls("localhost", port(&server), &opts())
            .await,
        &what,
    );
    match e {
        Error::Server(e) => assert_eq!(e.code, code, "{what}: {e:?}"),
        other => panic!("{what}: expected Server, got {other:?}"),
    }
    let (received, result) = finish(server);
    assert_eq!(received, b"CAPA\r\nSTLS\r\n", "{what}: {}", show(&received));
    assert_no_credentials(&received, &what);
    result.expect("the client closed without a plaintext fallback");
}

/// STLS refused with a bare `-ERR`: `Server` without a code, no fallback.
pub async fn stls_refused_without_code<T: Transport>(t: &T) {
    stls_refused_with(t, "-ERR not now", None).await;
}

/// STLS refused with `-ERR [SYS/PERM]`: `Server` carrying `SysPerm`.
pub async fn stls_refused_sys_perm<T: Transport>(t: &T) {
    stls_refused_with(
        t,
        "-ERR [SYS/PERM] TLS is broken here",
        Some(ResponseCode::SysPerm),
    )
    .await;
}

/// CAPA itself refused while STLS is required: `StlsUnavailable`, and
/// nothing but CAPA sent.
pub async fn capa_refused_while_stls_required<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::send_line("-ERR unknown command"),
        Step::ExpectClose,
    ]);
    let e = expect_connect_err(
        t.connect_starttls("localhost", port(&server), &opts())
            .await,
        "CAPA refused",
    );
    assert!(matches!(e, Error::StlsUnavailable), "{e:?}");
    let (received, result) = finish(server);
    assert_eq!(received, b"CAPA\r\n", "{}", show(&received));
    result.expect("client closed");
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

/// PIPELINING only in the post-login CAPA: nothing is pipelined before the
/// login, and DELEs are pipelined after it.
pub async fn pipelining_only_after_login<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line(GREETING),
        Step::expect_line("CAPA"),
        Step::Send(b"+OK\r\nUSER\r\nTOP\r\n.\r\n".to_vec()),
        Step::expect_line(&format!("USER {USER}")),
        Step::send_line("+OK"),
        Step::expect_line(&format!("PASS {PASSWORD}")),
        Step::send_line("+OK logged in"),
        Step::expect_line("CAPA"),
        Step::Send(b"+OK\r\nUSER\r\nTOP\r\nPIPELINING\r\n.\r\n".to_vec()),
        Step::expect_line("NOOP"),
        Step::send_line("+OK"),
        // All three before any answer: pipelined.
        Step::expect_line("DELE 1"),
        Step::expect_line("DELE 2"),
        Step::expect_line("DELE 3"),
        Step::Send(b"+OK\r\n+OK\r\n+OK\r\n".to_vec()),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]);
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", port(&server), &plain_opts())
            .await,
        "connect_plain",
    );
    let before = expect_ok(s.capa().await, "capa before login");
    assert!(!before.pipelining());
    assert!(!s.client().is_pipelining(), "pipelining before login");
    expect_ok(s.login(USER, PASSWORD).await, "login");
    expect_ok(s.noop().await, "noop");
    assert!(
        s.client().is_pipelining(),
        "the post-login CAPA offers PIPELINING"
    );
    let caps = s.capabilities().cloned().expect("post-login capabilities");
    assert!(caps.pipelining() && caps.top() && caps.user(), "{caps:?}");
    let results = expect_ok(s.dele_many(&[n(1), n(2), n(3)]).await, "dele_many");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    expect_ok(s.quit().await, "quit");
    let (received, result) = finish(server);
    result.expect("script followed");
    assert_eq!(
        after_login(received.strip_prefix(b"CAPA\r\n").unwrap_or(&received)),
        b"CAPA\r\nNOOP\r\nDELE 1\r\nDELE 2\r\nDELE 3\r\nQUIT\r\n"
    );
}

/// PIPELINING in the pre-login CAPA only: after login commands go one at a
/// time.
pub async fn pipelining_lost_at_login<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line(GREETING),
        Step::expect_line("CAPA"),
        Step::Send(b"+OK\r\nUSER\r\nPIPELINING\r\n.\r\n".to_vec()),
        Step::expect_line(&format!("USER {USER}")),
        Step::send_line("+OK"),
        Step::expect_line(&format!("PASS {PASSWORD}")),
        Step::send_line("+OK logged in"),
        Step::expect_line("CAPA"),
        Step::Send(b"+OK\r\nUSER\r\n.\r\n".to_vec()),
        Step::expect_line("NOOP"),
        Step::send_line("+OK"),
        Step::expect_line("DELE 1"),
        Step::Sleep(Duration::from_millis(300)),
        Step::Close,
    ]);
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", port(&server), &plain_opts())
            .await,
        "connect_plain",
    );
    expect_ok(s.capa().await, "capa before login");
    assert!(s.client().is_pipelining());
    expect_ok(s.login(USER, PASSWORD).await, "login");
    expect_ok(s.noop().await, "noop");
    assert!(!s.client().is_pipelining(), "PIPELINING survived the login");
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
    result.expect("script followed");
    assert_eq!(
        after_login(received.strip_prefix(b"CAPA\r\n").unwrap_or(&received)),
        b"CAPA\r\nNOOP\r\nDELE 1\r\n",
        "one command at a time"
    );
}

// ---------------------------------------------------------------------------
// Unsolicited data
// ---------------------------------------------------------------------------

/// A second `+OK` in the greeting's write, before any command: the next
/// operation fails with `UnsolicitedData`, and the reply is never taken for
/// the answer to a command the client sends.
pub async fn unsolicited_data_after_greeting<T: Transport>(t: &T) {
    let server = script(vec![
        Step::Send(format!("{GREETING}\r\n+OK nobody asked for this\r\n").into_bytes()),
        Step::ExpectClose,
    ]);
    let e = match t
        .connect_plain("127.0.0.1", port(&server), &plain_opts())
        .await
    {
        // Caught while reading the greeting: as good.
        Err(e) => e,
        Ok(mut s) => expect_err(s.capa().await, "capa after unsolicited data"),
    };
    assert!(
        matches!(e, Error::Protocol(ProtocolError::UnsolicitedData)),
        "expected Protocol(UnsolicitedData), got {e:?}"
    );
    let (received, result) = finish(server);
    assert!(
        received.is_empty(),
        "nothing may be sent on a desynchronised stream: {}",
        show(&received)
    );
    result.expect("client closed");
}

/// An extra `+OK` in the same write as a reply: the next operation fails
/// with `UnsolicitedData` instead of taking it as its answer.
pub async fn unsolicited_data_after_a_reply<T: Transport>(t: &T) {
    let server = script(login_steps_then(vec![
        Step::expect_line("NOOP"),
        Step::Send(b"+OK\r\n+OK extra reply nobody asked for\r\n".to_vec()),
        Step::ExpectClose,
    ]));
    let mut s = logged_in(t, &server, &plain_opts()).await;
    expect_ok(s.noop().await, "noop");
    expect_protocol(
        s.noop().await,
        ProtocolError::UnsolicitedData,
        "noop after an extra reply",
    );
    assert_ended(&mut s, "after unsolicited data").await;
    drop(s);
    let (sent, result) = finish_logged_in(server);
    assert_eq!(sent, b"NOOP\r\n", "{}", show(&sent));
    result.expect("client closed");
}

// ---------------------------------------------------------------------------
// Credentials in the clear
// ---------------------------------------------------------------------------

/// No TLS, a server offering only USER, SASL PLAIN and LOGIN, and an APOP
/// timestamp: every way of logging in is refused with
/// `Usage(PlaintextCredentials)`, and nothing but CAPA (and QUIT) is sent.
pub async fn plaintext_credentials_refused_by_default<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line(GREETING),
        Step::expect_line("CAPA"),
        Step::Send(b"+OK\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n".to_vec()),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]);
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", port(&server), &opts()).await,
        "connect_plain",
    );
    assert!(!s.client().is_encrypted());
    let capa = expect_ok(s.capa().await, "capa");
    assert!(capa.user() && capa.has_sasl("PLAIN") && capa.has_sasl("LOGIN"));
    assert!(s.greeting().apop_timestamp.is_some());
    expect_usage(
        s.login(USER, PASSWORD).await,
        UsageError::PlaintextCredentials,
        "login",
    );
    expect_usage(
        s.login_with(USER, PASSWORD, AuthMethod::Plain).await,
        UsageError::PlaintextCredentials,
        "AUTH PLAIN",
    );
    expect_usage(
        s.login_with(USER, PASSWORD, AuthMethod::Login).await,
        UsageError::PlaintextCredentials,
        "AUTH LOGIN",
    );
    expect_usage(
        s.apop(USER, PASSWORD).await,
        UsageError::PlaintextCredentials,
        "apop",
    );
    expect_ok(s.quit().await, "quit");
    let (received, result) = finish(server);
    assert_eq!(received, b"CAPA\r\nQUIT\r\n", "{}", show(&received));
    assert_no_credentials(&received, "plaintext refusals");
    result.expect("script followed");
}

// ---------------------------------------------------------------------------
// APOP timestamps
// ---------------------------------------------------------------------------

async fn apop_refused<T: Transport>(t: &T, greeting: &[u8], opts: &Options, what: &str) {
    let mut line = greeting.to_vec();
    line.extend_from_slice(b"\r\n");
    let server = script(vec![
        Step::Send(line),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]);
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", port(&server), opts).await,
        &format!("connect_plain, {what}"),
    );
    assert_eq!(s.greeting().apop_timestamp, None, "{what}");
    assert_clean(s.greeting().text.as_str(), what);
    expect_usage(
        s.apop(USER, PASSWORD).await,
        UsageError::NoApopTimestamp,
        what,
    );
    expect_ok(s.quit().await, what);
    let (received, result) = finish(server);
    assert_eq!(received, b"QUIT\r\n", "{what}: {}", show(&received));
    result.unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// Greetings whose timestamp is missing, malformed or not a msg-id: APOP is
/// refused with `Usage(NoApopTimestamp)` and nothing is sent (plaintext
/// credentials are allowed here, so that is not the reason).
pub async fn apop_timestamps_invalid<T: Transport>(t: &T) {
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
        apop_refused(t, greeting, &plain_opts(), &show(greeting)).await;
    }
}

/// A 10 KB timestamp: with the default 8 KiB line limit the greeting itself
/// is refused (`LineTooLong`, nothing sent); with a limit raised to fit it,
/// APOP is refused with `Usage(NoApopTimestamp)`.
pub async fn apop_timestamp_huge<T: Transport>(t: &T) {
    let greeting = repeated(b"+OK <", b'a', 10 * 1024, b"@host.example>");
    let mut line = greeting.clone();
    line.extend_from_slice(b"\r\n");
    let server = script(vec![Step::Send(line), Step::ExpectClose]);
    let e = expect_connect_err(
        t.connect_plain("127.0.0.1", port(&server), &plain_opts())
            .await,
        "10 KB greeting, default limits",
    );
    assert!(
        matches!(
            e,
            Error::Protocol(ProtocolError::LineTooLong { limit: 8192 })
        ),
        "{e:?}"
    );
    let (received, _) = finish(server);
    assert!(received.is_empty(), "{}", show(&received));

    let mut raised = plain_opts();
    let mut limits = Limits::default();
    limits.max_line_len = 64 * 1024;
    raised.limits = limits;
    apop_refused(t, &greeting, &raised, "10 KB timestamp, raised line limit").await;
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

/// A 1 MiB greeting without a line end, as `+OK` and as garbage:
/// `LineTooLong` at once (no time-out), nothing sent.
pub async fn greeting_of_one_mib_without_crlf<T: Transport>(t: &T) {
    for (prefix, byte) in [(&b"+OK "[..], b'a'), (b"", b'z')] {
        let what = format!("1 MiB greeting starting {}", show(prefix));
        let server = script(vec![
            Step::Send(repeated(prefix, byte, MIB + 17, b"")),
            Step::Stall,
        ]);
        let started = Instant::now();
        let e = expect_connect_err(
            t.connect_plain("127.0.0.1", port(&server), &plain_opts())
                .await,
            &what,
        );
        assert!(
            matches!(
                e,
                Error::Protocol(ProtocolError::LineTooLong { limit: 8192 })
            ),
            "{what}: {e:?}"
        );
        assert!(started.elapsed() < LIMIT, "{what}: {:?}", started.elapsed());
        let (received, _) = finish(server);
        assert!(received.is_empty(), "{what}: {}", show(&received));
    }
}

/// 1 MiB status lines that do end: `+OK` to STAT, `-ERR` to NOOP, `+OK` to
/// LIST (with its listing): each `Protocol(LineTooLong)` for that command
/// alone; the session stays in step.
pub async fn reply_line_of_one_mib_then_crlf<T: Transport>(t: &T) {
    let server = script(login_steps_then(vec![
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
    ]));
    let mut s = logged_in(t, &server, &plain_opts()).await;
    let too_long = ProtocolError::LineTooLong { limit: 8192 };
    expect_bad_reply(s.stat().await, too_long.clone(), "1 MiB +OK to STAT");
    expect_bad_reply(s.noop().await, too_long.clone(), "1 MiB -ERR to NOOP");
    expect_bad_reply(s.list().await, too_long, "1 MiB +OK to LIST");
    let stat = expect_ok(s.stat().await, "stat after the long lines");
    assert_eq!((stat.count, stat.size), (2, 30));
    expect_ok(s.quit().await, "quit");
    finish_logged_in(server).1.expect("script followed");
}

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

/// 1 MiB of bytes that are no reply at all: fatal `LineTooLong` at once.
pub async fn garbage_line_of_one_mib<T: Transport>(t: &T) {
    let server = script(login_steps_then(vec![
        Step::expect_line("NOOP"),
        Step::Send(repeated(b"", b'z', MIB, b"")),
        Step::Stall,
    ]));
    let mut s = logged_in(t, &server, &plain_opts()).await;
    let started = Instant::now();
    expect_protocol(
        s.noop().await,
        ProtocolError::LineTooLong { limit: 8192 },
        "1 MiB of garbage",
    );
    assert!(started.elapsed() < LIMIT, "{:?}", started.elapsed());
    assert_ended(&mut s, "after garbage").await;
    drop(s);
    let (sent, _) = finish_logged_in(server);
    assert_eq!(sent, b"NOOP\r\n");
}

/// A CAPA of a million lines: `Protocol(TooManyLines)` for CAPA, and the
/// session still answers NOOP.
pub async fn capa_of_a_million_lines<T: Transport>(t: &T) {
    let mut flood = b"+OK\r\n".to_vec();
    for _ in 0..1_000_000 {
        flood.extend_from_slice(b"X-CAP\r\n");
    }
    flood.extend_from_slice(b".\r\n");
    let server = script(login_steps_then(vec![
        Step::expect_line("CAPA"),
        Step::Send(flood),
        Step::expect_line("NOOP"),
        Step::send_line("+OK still here"),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]));
    let mut s = logged_in(t, &server, &plain_opts()).await;
    expect_bad_reply(
        s.capa().await,
        ProtocolError::TooManyLines { limit: 1000 },
        "a CAPA of a million lines",
    );
    expect_ok(s.noop().await, "noop after the flood");
    expect_ok(s.quit().await, "quit");
    finish_logged_in(server).1.expect("script followed");
}

/// Numbers of 2^64 and more in STAT, LIST and LIST n:
/// `Protocol(Malformed("number too large"))`, and the session goes on.
pub async fn numbers_over_u64<T: Transport>(t: &T) {
    let server = script(login_steps_then(vec![
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
    ]));
    let mut s = logged_in(t, &server, &plain_opts()).await;
    let too_large = ProtocolError::Malformed("number too large");
    expect_bad_reply(s.stat().await, too_large.clone(), "STAT count 2^64");
    expect_bad_reply(s.stat().await, too_large.clone(), "STAT size 2^64");
    expect_bad_reply(s.stat().await, too_large.clone(), "STAT count 2^32");
    expect_bad_reply(s.list().await, too_large.clone(), "LIST size 2^64");
    expect_bad_reply(s.list().await, too_large.clone(), "LIST number 10^25");
    expect_bad_reply(s.list_one(n(1)).await, too_large, "LIST 1 size 2^128");
    let stat = expect_ok(s.stat().await, "STAT at u64::MAX");
    assert_eq!((stat.count, stat.size), (1, u64::MAX));
    expect_ok(s.quit().await, "quit");
    finish_logged_in(server).1.expect("script followed");
}

// ---------------------------------------------------------------------------
// Malformed listings
// ---------------------------------------------------------------------------

/// LIST with missing fields, duplicates, number 0, junk, and more entries
/// than STAT said: each `Protocol(Malformed(..))` with its reason; a good
/// LIST afterwards is read correctly.
pub async fn malformed_list<T: Transport>(t: &T) {
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
    let server = script(login_steps_then(steps));
    let mut s = logged_in(t, &server, &plain_opts()).await;
    for (reply, why) in cases {
        expect_bad_reply(s.list().await, ProtocolError::Malformed(why), &show(reply));
    }
    expect_bad_reply(
        s.list_one(n(1)).await,
        ProtocolError::Malformed("malformed LIST entry"),
        "LIST 1 without a size",
    );
    expect_bad_reply(
        s.list_one(n(1)).await,
        ProtocolError::Malformed("message number 0"),
        "LIST 1 answered for message 0",
    );
    expect_ok(s.stat().await, "stat");
    expect_bad_reply(
        s.list().await,
        ProtocolError::Malformed("LIST names a message beyond the STAT count"),
        "LIST with more entries than STAT",
    );
    let list = expect_ok(s.list().await, "a good LIST");
    assert_eq!(
        list,
        vec![
            ListEntry {
                msg: n(1),
                size: 10
            },
            ListEntry {
                msg: n(2),
                size: 20
            }
        ]
    );
    expect_ok(s.quit().await, "quit");
    finish_logged_in(server).1.expect("script followed");
}

/// UIDL with missing fields, duplicates, number 0, control characters,
/// escapes, NUL, 8-bit bytes and over-long ids in the UID, and more entries
/// than STAT said: each `Protocol(Malformed(..))` with its reason.
pub async fn malformed_uidl<T: Transport>(t: &T) {
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
    let server = script(login_steps_then(steps));
    let mut s = logged_in(t, &server, &plain_opts()).await;
    for (reply, why) in &cases {
        expect_bad_reply(s.uidl().await, ProtocolError::Malformed(why), &show(reply));
    }
    expect_bad_reply(
        s.uidl_one(n(1)).await,
        ProtocolError::Malformed("malformed UIDL entry"),
        "UIDL 1 without an id",
    );
    expect_bad_reply(
        s.uidl_one(n(1)).await,
        ProtocolError::Malformed("malformed UIDL entry"),
        "UIDL 1 with a BEL in the id",
    );
    expect_ok(s.stat().await, "stat");
    expect_bad_reply(
        s.uidl().await,
        ProtocolError::Malformed("UIDL names a message beyond the STAT count"),
        "UIDL with more entries than STAT",
    );
    let uidl = expect_ok(s.uidl().await, "a good UIDL");
    assert_eq!(
        uidl,
        vec![UidlEntry {
            msg: n(1),
            uid: "a".into()
        }]
    );
    expect_ok(s.quit().await, "quit");
    finish_logged_in(server).1.expect("script followed");
}

// ---------------------------------------------------------------------------
// SASL abuse
// ---------------------------------------------------------------------------

/// A 1 MiB challenge to AUTH LOGIN: fatal `LineTooLong` at once; neither the
/// user name nor the password was sent.
pub async fn sasl_huge_challenge<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line(GREETING),
        Step::expect_line("AUTH LOGIN"),
        Step::Send(repeated(b"+ ", b'A', MIB, b"\r\n")),
        Step::Stall,
    ]);
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", port(&server), &plain_opts())
            .await,
        "connect_plain",
    );
    expect_protocol(
        s.login_with(USER, PASSWORD, AuthMethod::Login).await,
        ProtocolError::LineTooLong { limit: 8192 },
        "1 MiB SASL challenge",
    );
    assert_ended(&mut s, "after a huge challenge").await;
    drop(s);
    let (received, _) = finish(server);
    assert_eq!(received, b"AUTH LOGIN\r\n", "{}", show(&received));
}

/// A challenge that is not base64: the client cancels with `*`, the server's
/// `-ERR` ends the exchange, the call fails with
/// `Protocol(Sasl(MalformedChallenge))`, and the session goes on.
pub async fn sasl_invalid_base64_challenge<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line(GREETING),
        Step::expect_line("AUTH LOGIN"),
        Step::send_line("+ !!!not base64!!!"),
        Step::expect_line("*"),
        Step::send_line("-ERR authentication cancelled"),
        Step::expect_line("CAPA"),
        Step::Send(b"+OK\r\nUSER\r\n.\r\n".to_vec()),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]);
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", port(&server), &plain_opts())
            .await,
        "connect_plain",
    );
    expect_bad_reply(
        s.login_with(USER, PASSWORD, AuthMethod::Login).await,
        ProtocolError::Sasl(SaslError::MalformedChallenge(
            "challenge is not valid base64",
        )),
        "invalid base64 challenge",
    );
    expect_ok(s.capa().await, "capa after the cancelled exchange");
    expect_ok(s.quit().await, "quit");
    let (received, result) = finish(server);
    assert_eq!(
        received,
        b"AUTH LOGIN\r\n*\r\nCAPA\r\nQUIT\r\n",
        "{}",
        show(&received)
    );
    result.expect("script followed");
}

/// `-ERR` in the middle of an exchange (AUTH LOGIN after the user name,
/// SCRAM after the client proof): `Server` with the code, the password never
/// sent, and the session goes on.
pub async fn sasl_err_mid_exchange<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line(GREETING),
        Step::expect_line("AUTH LOGIN"),
        Step::send_line("+ VXNlcm5hbWU6"),
        Step::expect_line(&base64(USER.as_bytes())),
        Step::send_line("-ERR [SYS/TEMP] try again later"),
        Step::expect_line(&scram_auth_line()),
        Step::send_line(&format!("+ {}", base64(server_first("4096").as_bytes()))),
        Step::expect_line(&base64(SCRAM_CLIENT_FINAL.as_bytes())),
        Step::send_line("-ERR [AUTH] invalid proof"),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]);
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", port(&server), &plain_opts())
            .await,
        "connect_plain",
    );
    expect_server(
        s.login_with(USER, PASSWORD, AuthMethod::Login).await,
        Some(ResponseCode::SysTemp),
        "AUTH LOGIN refused after the user name",
    );
    expect_server(
        s.auth(scram()).await,
        Some(ResponseCode::Auth),
        "SCRAM refused after the proof",
    );
    expect_ok(s.quit().await, "quit");
    let (received, result) = finish(server);
    result.expect("script followed");
    assert_password_not_sent(&received, "-ERR mid-exchange");
}

const SCRAM_USER: &str = "user";
const SCRAM_PASSWORD: &str = "pencil";
const SCRAM_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";
const SCRAM_CLIENT_FIRST: &str = "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL";
const SCRAM_SERVER_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
const SCRAM_SALT: &str = "QSXCR+Q6sek8bf92";
const SCRAM_CLIENT_FINAL: &str =
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
const SCRAM_SERVER_FINAL: &str = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";

/// SCRAM-SHA-1 with the RFC 5802 test vector's nonce, so that a scripted
/// server knows every message in advance.
fn scram() -> Box<dyn Mechanism> {
    let mechanism = Scram::sha1(
        SCRAM_USER.into(),
        Secret::new(SCRAM_PASSWORD.into()),
        SCRAM_NONCE.into(),
    )
    .expect("SCRAM test vector");
    Box::new(mechanism)
}

fn scram_auth_line() -> String {
    format!("AUTH SCRAM-SHA-1 {}", base64(SCRAM_CLIENT_FIRST.as_bytes()))
}

fn server_first(iterations: &str) -> String {
    format!("r={SCRAM_SERVER_NONCE},s={SCRAM_SALT},i={iterations}")
}

fn challenge(message: &str) -> Step {
    Step::send_line(&format!("+ {}", base64(message.as_bytes())))
}

/// The RFC 5802 exchange with the right server signature logs in: the
/// control that shows the scripts of the SCRAM cases are right.
pub async fn scram_right_signature_control<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line(GREETING),
        Step::expect_line(&scram_auth_line()),
        challenge(&server_first("4096")),
        Step::expect_line(&base64(SCRAM_CLIENT_FINAL.as_bytes())),
        challenge(SCRAM_SERVER_FINAL),
        Step::expect_line(""),
        Step::send_line("+OK welcome"),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]);
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", port(&server), &opts()).await,
        "connect_plain",
    );
    expect_ok(s.auth(scram()).await, "SCRAM with the right signature");
    expect_ok(s.quit().await, "quit");
    let (received, result) = finish(server);
    result.expect("script followed");
    assert_password_not_sent(&received, "SCRAM");
}

/// `+OK` before the server proved that it knows the password (right after
/// the client-first message, and right after the client proof): fatal
/// `Protocol(Sasl(Incomplete))`.
pub async fn scram_ok_before_server_proof<T: Transport>(t: &T) {
    let early = vec![
        Step::send_line(GREETING),
        Step::expect_line(&scram_auth_line()),
        Step::send_line("+OK come in"),
        Step::ExpectClose,
    ];
    let late = vec![
        Step::send_line(GREETING),
        Step::expect_line(&scram_auth_line()),
        challenge(&server_first("4096")),
        Step::expect_line(&base64(SCRAM_CLIENT_FINAL.as_bytes())),
        Step::send_line("+OK come in"),
        Step::ExpectClose,
    ];
    for (what, steps) in [
        ("+OK after client-first", early),
        ("+OK after the proof", late),
    ] {
        let server = script(steps);
        let mut s = expect_ok(
            t.connect_plain("127.0.0.1", port(&server), &opts()).await,
            "connect_plain",
        );
        expect_protocol(
            s.auth(scram()).await,
            ProtocolError::Sasl(SaslError::Incomplete),
            what,
        );
        assert_ended(&mut s, what).await;
        drop(s);
        let (received, result) = finish(server);
        result.unwrap_or_else(|e| panic!("{what}: script not followed: {e}"));
        assert_password_not_sent(&received, what);
    }
}

/// A wrong server signature: the client cancels with `*` (after sending its
/// proof), and the call fails with `Protocol(Sasl(ServerSignatureMismatch))`
/// even though the server then says `-ERR`; the session goes on.
pub async fn scram_wrong_server_signature<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line(GREETING),
        Step::expect_line(&scram_auth_line()),
        challenge(&server_first("4096")),
        Step::expect_line(&base64(SCRAM_CLIENT_FINAL.as_bytes())),
        challenge("v=AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        Step::expect_line("*"),
        Step::send_line("-ERR cancelled"),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]);
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", port(&server), &opts()).await,
        "connect_plain",
    );
    expect_bad_reply(
        s.auth(scram()).await,
        ProtocolError::Sasl(SaslError::ServerSignatureMismatch),
        "wrong server signature",
    );
    expect_ok(s.quit().await, "quit");
    let (received, result) = finish(server);
    result.expect("script followed");
    assert_password_not_sent(&received, "SCRAM");
}

/// Iteration counts 0, 4294967295 (above the 1,000,000 default maximum) and
/// one that overflows u32: the client cancels with `*` before computing
/// anything, and the call fails with `Protocol(Sasl(IterationCount(..)))`.
pub async fn scram_iteration_counts<T: Transport>(t: &T) {
    for (count, want) in [
        ("0", 0),
        ("4294967295", u32::MAX),
        ("1000001", 1_000_001),
        ("99999999999", u32::MAX),
    ] {
        let what = format!("SCRAM i={count}");
        let server = script(vec![
            Step::send_line(GREETING),
            Step::expect_line(&scram_auth_line()),
            challenge(&server_first(count)),
            Step::expect_line("*"),
            Step::send_line("-ERR cancelled"),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ]);
        let mut s = expect_ok(
            t.connect_plain("127.0.0.1", port(&server), &opts()).await,
            "connect_plain",
        );
        let started = Instant::now();
        expect_bad_reply(
            s.auth(scram()).await,
            ProtocolError::Sasl(SaslError::IterationCount(want)),
            &what,
        );
        assert!(started.elapsed() < LIMIT, "{what}: {:?}", started.elapsed());
        expect_ok(s.quit().await, &what);
        let (received, result) = finish(server);
        result.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            received,
            format!("{}\r\n*\r\nQUIT\r\n", scram_auth_line()).as_bytes(),
            "{what}"
        );
    }
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

/// Bodies whose last line ends in a dot (`text.\r\n`), a stuffed lone dot as
/// the last line, an empty body, and `text.` split from its CRLF: each is
/// exact.
pub async fn body_ending_with_text_dot<T: Transport>(t: &T) {
    let server = script(login_steps_then(vec![
        Step::expect_line("RETR 1"),
        Step::Send(b"+OK\r\nsome text.\r\n.\r\n".to_vec()),
        Step::expect_line("RETR 2"),
        Step::Send(b"+OK\r\ntext.\r\n..\r\n.\r\n".to_vec()),
        Step::expect_line("RETR 3"),
        Step::Send(b"+OK\r\n.\r\n".to_vec()),
        Step::expect_line("RETR 4"),
        Step::Send(b"+OK\r\ntext.".to_vec()),
        Step::Sleep(Duration::from_millis(40)),
        Step::Send(b"\r\n.\r\n".to_vec()),
        Step::expect_line("TOP 5 0"),
        Step::Send(b"+OK\r\nSubject: x.\r\n\r\n.\r\n".to_vec()),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]));
    let mut s = logged_in(t, &server, &plain_opts()).await;
    assert_eq!(
        expect_ok(retr_bytes(&mut s, n(1)).await, "retr 1"),
        b"some text.\r\n"
    );
    assert_eq!(
        expect_ok(retr_bytes(&mut s, n(2)).await, "retr 2"),
        b"text.\r\n.\r\n"
    );
    assert_eq!(expect_ok(retr_bytes(&mut s, n(3)).await, "retr 3"), b"");
    assert_eq!(
        expect_ok(retr_bytes(&mut s, n(4)).await, "retr 4"),
        b"text.\r\n"
    );
    assert_eq!(
        expect_ok(top_bytes(&mut s, n(5), 0).await, "top 5"),
        b"Subject: x.\r\n\r\n"
    );
    expect_ok(s.quit().await, "quit");
    finish_logged_in(server).1.expect("script followed");
}

// ---------------------------------------------------------------------------
// Terminal escapes, NUL and invalid UTF-8 in server text
// ---------------------------------------------------------------------------

const NASTY: &[u8] = b"\x1b]0;owned\x07\x1b[2J\x1b[31mred\x00nul\xff\xfe\xc2\x9bcsi\x7fdel\rcr";

fn with_nasty(prefix: &[u8]) -> Vec<u8> {
    let mut line = prefix.to_vec();
    line.extend_from_slice(NASTY);
    line.extend_from_slice(b"\r\n");
    line
}

/// An error, as its `Display` prints it, must be free of control characters.
#[track_caller]
fn assert_error_text_clean(error: &dyn fmt::Display, what: &str) {
    let text = error.to_string();
    assert_clean(&text, what);
    assert!(
        text.contains('\u{fffd}'),
        "{what}: the server's bytes should show as replacement characters: {text:?}"
    );
}

/// Escapes, NUL, C1 controls and invalid UTF-8 in a `+OK` greeting, a
/// `-ERR` greeting and a garbage greeting: the greeting text and the errors'
/// `Display` hold no control characters.
pub async fn escapes_in_greeting<T: Transport>(t: &T) {
    let server = script(vec![
        Step::Send(with_nasty(b"+OK <1.2@host> ")),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]);
    let s = expect_ok(
        t.connect_plain("127.0.0.1", port(&server), &plain_opts())
            .await,
        "connect_plain",
    );
    let greeting = s.greeting();
    assert_clean(greeting.text.as_str(), "+OK greeting");
    assert!(greeting.text.as_str().contains("owned"), "{greeting:?}");
    assert_eq!(greeting.apop_timestamp.as_deref(), Some("<1.2@host>"));
    expect_ok(s.quit().await, "quit");
    let (received, result) = finish(server);
    assert_eq!(received, b"QUIT\r\n", "{}", show(&received));
    result.expect("script followed");

    let server = script(vec![
        Step::Send(with_nasty(b"-ERR [SYS/PERM] ")),
        Step::ExpectClose,
    ]);
    let e = expect_connect_err(
        t.connect_plain("127.0.0.1", port(&server), &plain_opts())
            .await,
        "-ERR greeting",
    );
    match &e {
        Error::Protocol(ProtocolError::GreetingRejected(err)) => {
            assert_eq!(err.code, Some(ResponseCode::SysPerm));
            assert_clean(err.text.as_str(), "-ERR greeting text");
        }
        other => panic!("expected GreetingRejected, got {other:?}"),
    }
    assert_error_text_clean(&e, "-ERR greeting");
    let (received, result) = finish(server);
    assert!(received.is_empty(), "{}", show(&received));
    result.expect("client closed");

    let server = script(vec![Step::Send(with_nasty(b"")), Step::ExpectClose]);
    let e = expect_connect_err(
        t.connect_plain("127.0.0.1", port(&server), &plain_opts())
            .await,
        "garbage greeting",
    );
    assert!(
        matches!(e, Error::Protocol(ProtocolError::InvalidGreeting(_))),
        "{e:?}"
    );
    assert_error_text_clean(&e, "garbage greeting");
    let (received, result) = finish(server);
    assert!(received.is_empty(), "{}", show(&received));
    result.expect("client closed");
}

/// The same bytes in `-ERR` replies (to USER, to NOOP, in a response code)
/// and in a line that is no status at all: typed errors whose `Display`
/// holds no control characters.
pub async fn escapes_in_err_text<T: Transport>(t: &T) {
    let mut bad_code = b"-ERR [IN-USE\x1b[5m] ".to_vec();
    bad_code.extend_from_slice(NASTY);
    bad_code.extend_from_slice(b"\r\n");
    let server = script(vec![
        Step::send_line(GREETING),
        Step::expect_line(&format!("USER {USER}")),
        Step::Send(with_nasty(b"-ERR [AUTH] ")),
        Step::expect_line(&format!("USER {USER}")),
        Step::send_line("+OK"),
        Step::expect_line(&format!("PASS {PASSWORD}")),
        Step::send_line("+OK"),
        Step::expect_line("NOOP"),
        Step::Send(with_nasty(b"-ERR ")),
        Step::expect_line("NOOP"),
        Step::Send(bad_code),
        Step::expect_line("NOOP"),
        Step::Send(with_nasty(b"")),
        Step::ExpectClose,
    ]);
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", port(&server), &plain_opts())
            .await,
        "connect_plain",
    );
    let e = expect_server(
        s.login(USER, PASSWORD).await,
        Some(ResponseCode::Auth),
        "-ERR to USER",
    );
    assert_clean(e.text.as_str(), "-ERR to USER");
    assert_error_text_clean(&e, "-ERR to USER");
    expect_ok(s.login(USER, PASSWORD).await, "login");
    let e = expect_server(s.noop().await, None, "-ERR to NOOP");
    assert_clean(e.text.as_str(), "-ERR to NOOP");
    assert_error_text_clean(&e, "-ERR to NOOP");
    let e = match expect_err(s.noop().await, "-ERR with an escape in its code") {
        Error::Server(e) => e,
        other => panic!("expected Server, got {other:?}"),
    };
    if let Some(ResponseCode::Other(code)) = &e.code {
        assert_clean(code, "response code");
    }
    assert_clean(e.text.as_str(), "-ERR with an escape in its code");
    assert_error_text_clean(&e, "-ERR with an escape in its code");
    let e = expect_err(s.noop().await, "a line that is no status");
    assert!(
        matches!(e, Error::Protocol(ProtocolError::InvalidStatusLine(_))),
        "{e:?}"
    );
    assert_error_text_clean(&e, "a line that is no status");
    assert_ended(&mut s, "after an invalid status line").await;
    drop(s);
    let (received, result) = finish(server);
    let want = format!(
        "USER {USER}\r\n{}NOOP\r\nNOOP\r\nNOOP\r\n",
        String::from_utf8_lossy(&login_bytes())
    );
    assert_eq!(received, want.as_bytes(), "{}", show(&received));
    result.expect("script followed");
}

// ---------------------------------------------------------------------------
// Caller arguments with line breaks
// ---------------------------------------------------------------------------

const INJECTIONS: [&str; 5] = [
    "alice\r\nDELE 1",
    "alice\nQUIT",
    "al\rice",
    "nul\0",
    "alice\r\n",
];

/// CR, LF or NUL in the login user name, the APOP user name and password,
/// and the LANG tag: `Usage(InvalidArgument)`, nothing sent, and the
/// session goes on.
pub async fn line_breaks_in_caller_arguments<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line(GREETING),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]);
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", port(&server), &plain_opts())
            .await,
        "connect_plain",
    );
    for bad in INJECTIONS {
        let invalid = |r: Result<_, Error>, what: &str| match r {
            Err(Error::Usage(UsageError::InvalidArgument(_))) => {}
            other => panic!("{what} with {bad:?}: expected Usage(InvalidArgument), got {other:?}"),
        };
        invalid(s.login(bad, PASSWORD).await.map(drop), "login user");
        invalid(s.apop(bad, PASSWORD).await.map(drop), "apop user");
        invalid(s.apop(USER, bad).await.map(drop), "apop password");
        invalid(s.lang(Some(bad)).await.map(drop), "lang tag");
    }
    expect_ok(s.quit().await, "quit");
    let (received, result) = finish(server);
    assert_eq!(received, b"QUIT\r\n", "{}", show(&received));
    result.expect("script followed");
}

/// CR, LF or NUL in the login password: `Usage(InvalidArgument)`, and
/// nothing sent — not even the USER line before it.
pub async fn line_breaks_in_password<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line(GREETING),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]);
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", port(&server), &plain_opts())
            .await,
        "connect_plain",
    );
    for bad in INJECTIONS {
        match s.login(USER, bad).await {
            Err(Error::Usage(UsageError::InvalidArgument(_))) => {}
            other => {
                panic!("login password {bad:?}: expected Usage(InvalidArgument), got {other:?}")
            }
        }
    }
    expect_ok(s.quit().await, "quit");
    let (received, result) = finish(server);
    assert_eq!(received, b"QUIT\r\n", "{}", show(&received));
    result.expect("script followed");
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
            base64(SCRAM_CLIENT_FIRST.as_bytes()),
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
