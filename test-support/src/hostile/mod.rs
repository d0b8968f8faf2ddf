//! The hostile-server suite: scripted servers that lie, inject, stall, flood
//! and tamper, run on every transport to prove that no server input can hurt
//! a client through its pump.
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
//! The cases live in one file per section ([`stls`], [`capabilities`], [`deadlines`],
//! [`certificates`], [`floods`], [`termination`], [`proxy`], [`errors`]). Every
//! `pub async fn name<T: Transport>(t: &T)` of a section file is a case:
//! `build.rs` lists them, and the macro makes one `#[test]` per case, named
//! `section::case`, so adding a case is writing the function. Helpers in a
//! section file are private.
//!
//! Every case asserts the typed error (the [`Error`] variant and, where
//! there is one, the exact [`ProtocolError`](pop3_proto::ProtocolError) or
//! [`ResponseCode`](pop3_proto::ResponseCode)), that no credential crossed
//! the wire when it must not have (every byte the scripted server received,
//! from [`join_all`](ScriptedServer::join_all), is searched for the password,
//! its base64 forms and for `USER`, `PASS`, `AUTH` and `APOP` lines), and
//! that nothing hangs: scripted servers give up after 5 s, clients use 1–4 s
//! limits, and every test runs under a [`Watchdog`] that aborts the test
//! binary if a case is still running after a minute. A panic anywhere fails
//! the test.
//!
//! Only cases that need a socket, a runtime or TLS are here: STLS injection
//! and certificates, time-outs and stalls, reads split by the network,
//! proxies. Those whose outcome the core decides (listings, numbers, SASL,
//! APOP, floods, server text, caller arguments) run once, without sockets,
//! in `pop3-proto/tests/hostile/`; cases that the scenario suite or the
//! core's `tests/session.rs` already prove are not repeated here either.
//! `SECURITY.md` maps every case to its test.

use std::fmt;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use pop3_transport::runtime::{IoStream, Runtime};
use pop3_transport::Connection;

use crate::pki::TestPki;
use crate::scenarios::{timeouts, trusting, Conn, Error, Options, Result, Transport};
use crate::scripted::{show, ScriptConfig, ScriptedServer, Step};

pub mod capabilities;
pub mod certificates;
pub mod deadlines;
pub mod errors;
pub mod floods;
pub mod proxy;
pub mod stls;
pub mod termination;

/// Expands to one `#[test]` per case of [`crate::hostile`], in a module per
/// section (`stls::stls_injection_partial_line`), each calling the case with
/// `&$transport` under a [`Watchdog`]. The cases are found by `build.rs`:
/// every `pub async fn` of a section file.
#[macro_export]
macro_rules! hostile_tests {
    ($transport:expr) => {
        $crate::__hostile_sections!($transport);
    };
    (@section $transport:expr; $section:ident: $($case:ident)*) => {
        mod $section {
            #[allow(unused_imports)]
            use super::*;

            $(
                #[test]
                fn $case() {
                    let _watchdog = $crate::hostile::Watchdog::start(concat!(
                        stringify!($section),
                        "::",
                        stringify!($case)
                    ));
                    let transport = $transport;
                    $crate::scenarios::Transport::block_on(
                        &transport,
                        $crate::hostile::$section::$case(&transport),
                    );
                }
            )*
        }
    };
}

// The cases of each section file, as `build.rs` found them: defines
// `__hostile_sections!`, which expands `hostile_tests!(@section ..)` once
// per section.
include!(concat!(env!("OUT_DIR"), "/hostile_cases.rs"));

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
    opts().allow_plaintext_credentials(true)
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
