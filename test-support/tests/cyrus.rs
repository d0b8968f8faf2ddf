//! The library against a real Cyrus pop3d 3.6 (see `test_support::cyrus`),
//! on every Rust transport (blocking, tokio, smol) and in both TLS modes
//! (implicit TLS, STLS):
//!
//! - explicit SCRAM-SHA-256 logs in;
//! - STAT, UIDL and RETR agree with the messages delivered, byte for byte;
//! - `AuthMethod::Auto` logs in, ending with plain SCRAM-SHA-256: Cyrus 3.6
//!   offers SCRAM-SHA-256-PLUS but binds to `tls-unique` only, so the -PLUS
//!   attempt (with `tls-exporter` on TLS 1.3, `tls-server-end-point` on TLS
//!   1.2) is refused and Auto must retry once with plain SCRAM;
//! - and what Cyrus does with channel binding, pinned down: CAPA before and
//!   after TLS, the refusal of a -PLUS login with our binding types, the
//!   refusal of the GS2 flag `y` over TLS and its acceptance without TLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::{ready, Future};
use std::sync::Arc;
use std::time::Duration;

use pop3_blocking::Wait;
use pop3_proto::sasl::Scram;
use pop3_proto::{AuthMethod, MsgNum, ResponseCode, Secret};
use test_support::cyrus::{Cyrus, CyrusMailbox};
use test_support::dovecot::unique_user;
use test_support::scenarios::{Conn, Error, Options, Result, Timeouts, TlsOptions, Transport};

// ---------------------------------------------------------------------------
// The three transports
// ---------------------------------------------------------------------------

struct Blocking;

impl Transport for Blocking {
    type Stream = pop3_blocking::MaybeTls<std::net::TcpStream>;
    type Runtime = pop3_blocking::Blocking;

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        future.wait()
    }

    fn connect_plain(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        ready(pop3_blocking::connect_plain(host, port, o))
    }

    fn connect_tls(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        ready(pop3_blocking::connect_tls(host, port, o))
    }

    fn connect_starttls(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        ready(pop3_blocking::connect_starttls(host, port, o))
    }
}

struct Tokio(tokio::runtime::Runtime);

impl Tokio {
    fn new() -> Tokio {
        Tokio(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime"),
        )
    }
}

impl Transport for Tokio {
    type Stream = pop3_tokio::MaybeTls<tokio::net::TcpStream>;
    type Runtime = pop3_tokio::Tokio;

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }

    fn connect_plain(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        pop3_tokio::connect_plain(host, port, o)
    }

    fn connect_tls(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        pop3_tokio::connect_tls(host, port, o)
    }

    fn connect_starttls(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        pop3_tokio::connect_starttls(host, port, o)
    }
}

struct Smol;

impl Transport for Smol {
    type Stream = pop3_smol::MaybeTls<pop3_smol::TcpStream>;
    type Runtime = pop3_smol::Smol;

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        smol::block_on(future)
    }

    fn connect_plain(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        pop3_smol::connect_plain(host, port, o)
    }

    fn connect_tls(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        pop3_smol::connect_tls(host, port, o)
    }

    fn connect_starttls(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        pop3_smol::connect_starttls(host, port, o)
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// POP3S: TLS from the first byte.
    Implicit,
    /// Plain POP3, then `STLS`.
    Stls,
}

const MODES: [Mode; 2] = [Mode::Implicit, Mode::Stls];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    /// rustls' default: TLS 1.3 (Cyrus' OpenSSL 3 agrees to it).
    V13,
    /// TLS 1.2 only.
    V12,
}

/// Options trusting Cyrus' CA for the name `localhost` on 127.0.0.1, with
/// 20 s limits on every wait.
fn options(cyrus: &Cyrus, tls: Tls) -> Options {
    let tls_options = match tls {
        Tls::V13 => TlsOptions::new().add_root_der(cyrus.ca_der().clone()),
        Tls::V12 => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(cyrus.ca_der().clone()).expect("the test CA");
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS12])
                .expect("ring does TLS 1.2")
                .with_root_certificates(roots)
                .with_no_client_auth();
            TlsOptions::new().rustls_config(Arc::new(config))
        }
    };
    Options::new()
        .tls(tls_options)
        .server_name("localhost")
        .timeouts(Timeouts::uniform(Duration::from_secs(20)))
}

async fn connect<T: Transport>(t: &T, cyrus: &Cyrus, mode: Mode, tls: Tls) -> Result<Conn<T>> {
    let o = options(cyrus, tls);
    match mode {
        Mode::Implicit => {
            t.connect_tls("127.0.0.1", cyrus.tls_addr().port(), &o)
                .await
        }
        Mode::Stls => {
            t.connect_starttls("127.0.0.1", cyrus.plain_addr().port(), &o)
                .await
        }
    }
}

/// A fresh user on the shared Cyrus.
fn user(prefix: &str) -> CyrusMailbox {
    Cyrus::shared().add_user(&unique_user(prefix), "cyrus-secret")
}

/// Cyrus' log, for failure messages.
fn log() -> String {
    format!("--- Cyrus log ---\n{}", Cyrus::shared().log())
}

/// The SASL mechanisms of a `CAPA` reply, in the server's order.
fn sasl<T: Transport>(conn: &Conn<T>) -> Vec<String> {
    conn.capabilities()
        .expect("CAPA was asked")
        .sasl_mechanisms()
        .map(str::to_string)
        .collect()
}

/// Runs `f` on every transport.
fn on_every_transport(f: impl Fn(&dyn Fn(&str) -> String)) {
    // The closure receives a label maker so failures name the transport.
    for name in ["blocking", "tokio", "smol"] {
        f(&|what| format!("{name}: {what}"));
    }
}

/// The server's refusal of a login, or a panic naming what happened instead.
#[track_caller]
fn refusal(result: Result<()>, what: &str) -> (Option<ResponseCode>, String) {
    match result {
        Err(Error::Server(e)) => (e.code.clone(), e.text.to_string()),
        other => panic!("{what}: expected a -ERR, got {other:?}\n{}", log()),
    }
}

// ---------------------------------------------------------------------------
// The server itself
// ---------------------------------------------------------------------------

#[test]
fn cyrus_starts_and_logs() {
    let cyrus = Cyrus::shared();
    assert!(
        cyrus.version().starts_with("3.6."),
        "version {:?}",
        cyrus.version()
    );
    let mailbox = user("log");
    let mut conn = connect(&Blocking, cyrus, Mode::Implicit, Tls::V13)
        .wait()
        .unwrap();
    conn.login_with(mailbox.user(), mailbox.password(), AuthMethod::UserPass)
        .wait()
        .unwrap();
    conn.quit().wait().unwrap();
    // Syslog is captured as root (a mount namespace); the tests run as root
    // in CI. Lines arrive asynchronously: give them a moment.
    if test_support_is_root() {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !cyrus.log().contains(mailbox.user()) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = cyrus.log();
        let line = format!(
            "login: localhost [127.0.0.1] {} plaintext+TLS User logged in",
            mailbox.user()
        );
        assert!(log.contains(&line), "no {line:?} in\n{log}");
    }
}

fn test_support_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// A started and dropped Cyrus leaves no directory behind.
#[test]
fn dropped_cyrus_removes_its_directory() {
    let cyrus = Cyrus::start().unwrap();
    let dir = cyrus.dir().to_path_buf();
    assert!(dir.join("imapd.conf").exists());
    drop(cyrus);
    assert!(!dir.exists(), "{} still exists", dir.display());
}

// ---------------------------------------------------------------------------
// (a) explicit SCRAM-SHA-256
// ---------------------------------------------------------------------------

async fn scram_sha256_login<T: Transport>(t: &T, mode: Mode) -> Result<Vec<String>> {
    let cyrus = Cyrus::shared();
    let mailbox = user("scram");
    let mut conn = connect(t, cyrus, mode, Tls::V13).await?;
    conn.login_with(mailbox.user(), mailbox.password(), AuthMethod::ScramSha256)
        .await?;
    let mechanism = conn.client().login_mechanism().map(str::to_string);
    let stat = conn.stat().await?;
    conn.quit().await?;
    assert_eq!(stat.count, 0);
    Ok(mechanism.into_iter().collect())
}

#[test]
fn explicit_scram_sha256_logs_in_over_tls_and_stls() {
    for mode in MODES {
        let check = |result: Result<Vec<String>>, name: &str| match result {
            Ok(m) => assert_eq!(m, ["SCRAM-SHA-256"], "{name} {mode:?}"),
            Err(e) => panic!("{name} {mode:?}: {e}\n{}", log()),
        };
        check(
            Blocking.block_on(scram_sha256_login(&Blocking, mode)),
            "blocking",
        );
        let tokio = Tokio::new();
        check(tokio.block_on(scram_sha256_login(&tokio, mode)), "tokio");
        check(Smol.block_on(scram_sha256_login(&Smol, mode)), "smol");
    }
}

#[test]
fn wrong_password_is_refused_with_auth_code() {
    let cyrus = Cyrus::shared();
    let mailbox = user("wrong");
    let mut conn = connect(&Blocking, cyrus, Mode::Implicit, Tls::V13)
        .wait()
        .unwrap();
    let started = std::time::Instant::now();
    let (code, text) = refusal(
        conn.login_with(mailbox.user(), "not-it", AuthMethod::ScramSha256)
            .wait(),
        "wrong password",
    );
    assert_eq!(code, Some(ResponseCode::Auth), "{text}");
    // failedloginpause: 0 — no 3 s wait.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// (b) STAT, UIDL, RETR byte for byte
// ---------------------------------------------------------------------------

/// STAT's count and size, the UIDs, the RETR bodies.
type ReadBack = (u32, u64, Vec<String>, Vec<Vec<u8>>);

async fn read_back<T: Transport>(t: &T, mode: Mode, mailbox: &CyrusMailbox) -> Result<ReadBack>
where
    T::Runtime: pop3_transport::runtime::WriteTo<Vec<u8>>,
{
    let mut conn = connect(t, Cyrus::shared(), mode, Tls::V13).await?;
    conn.login_with(mailbox.user(), mailbox.password(), AuthMethod::ScramSha256)
        .await?;
    let stat = conn.stat().await?;
    let uids = conn.uidl().await?;
    let mut bodies = Vec::new();
    for entry in &uids {
        let mut out = Vec::new();
        let n = conn.retr_to(entry.msg, &mut out).await?;
        assert_eq!(n, out.len() as u64);
        bodies.push(out);
    }
    conn.quit().await?;
    Ok((
        stat.count,
        stat.size,
        uids.into_iter().map(|e| e.uid).collect(),
        bodies,
    ))
}

#[test]
fn stat_uidl_retr_are_byte_exact() {
    let mailbox = user("retr");
    let sent: [&[u8]; 3] = [
        b"Subject: one\r\nMessage-ID: <one@test>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nfirst\r\n",
        // A line that is a lone dot and lines starting with dots: stuffed on
        // the way in and out.
        b"Subject: two\r\n\r\n.\r\n..two dots\r\n.leading\r\nend\r\n",
        // Binary-ish 8-bit body and a long line.
        &[
            b"Subject: three\r\n\r\n".as_slice(),
            &[0xC3, 0xA9, b' ', 0xFF, b'\r', b'\n'],
            &[b'x'; 2000],
            b"\r\n",
        ]
        .concat(),
    ];
    let stored: Vec<Vec<u8>> = sent.iter().map(|m| mailbox.add_message(m)).collect();
    for (m, s) in sent.iter().zip(&stored) {
        // Cyrus prepends its headers; the message itself follows unchanged
        // (except Message-ID/Date added to the headers when missing).
        let body = |b: &[u8]| -> Vec<u8> {
            let at = b.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            b[at..].to_vec()
        };
        assert_eq!(body(s), body(m), "body stored unchanged");
        assert!(
            s.windows(m.len().min(14))
                .any(|w| w == &m[..m.len().min(14)]),
            "the message's first header is kept"
        );
    }
    assert_eq!(mailbox.messages(), stored);
    let total: u64 = stored.iter().map(|m| m.len() as u64).sum();

    let check = |result: Result<ReadBack>, what: String| {
        let (count, size, uids, bodies) =
            result.unwrap_or_else(|e| panic!("{what}: {e}\n{}", log()));
        assert_eq!(count, 3, "{what}");
        assert_eq!(size, total, "{what}: STAT size is the stored octets");
        assert_eq!(uids.len(), 3, "{what}");
        // <uidvalidity>.<uid>, uids 1, 2, 3, one uidvalidity.
        let validity = uids[0].split('.').next().unwrap().to_string();
        for (i, uid) in uids.iter().enumerate() {
            assert_eq!(uid, &format!("{validity}.{}", i + 1), "{what}");
        }
        assert_eq!(bodies, stored, "{what}: RETR is byte-exact");
    };
    for mode in MODES {
        on_every_transport(|label| {
            let what = label(&format!("{mode:?}"));
            if what.starts_with("blocking") {
                check(
                    Blocking.block_on(read_back(&Blocking, mode, &mailbox)),
                    what,
                );
            } else if what.starts_with("tokio") {
                let t = Tokio::new();
                check(t.block_on(read_back(&t, mode, &mailbox)), what);
            } else {
                check(Smol.block_on(read_back(&Smol, mode, &mailbox)), what);
            }
        });
    }
    // Nothing was deleted.
    assert_eq!(mailbox.count(), 3);
}

#[test]
fn retr_of_a_missing_message_is_refused() {
    let mailbox = user("missing");
    mailbox.add_message(b"Subject: x\r\n\r\ny\r\n");
    let mut conn = connect(&Blocking, Cyrus::shared(), Mode::Implicit, Tls::V13)
        .wait()
        .unwrap();
    conn.login_with(mailbox.user(), mailbox.password(), AuthMethod::ScramSha256)
        .wait()
        .unwrap();
    let mut out = Vec::new();
    match conn.retr_to(MsgNum::new(2).unwrap(), &mut out).wait() {
        Err(Error::Server(_)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(conn.stat().wait().unwrap().count, 1, "still usable");
    conn.quit().wait().unwrap();
}

// ---------------------------------------------------------------------------
// (c) Auto: -PLUS refused, one retry with plain SCRAM
// ---------------------------------------------------------------------------

async fn auto_login<T: Transport>(t: &T, mode: Mode, tls: Tls) -> Result<Vec<String>> {
    let mailbox = user("auto");
    mailbox.add_message(b"Subject: auto\r\n\r\nhello\r\n");
    let mut conn = connect(t, Cyrus::shared(), mode, tls).await?;
    conn.login_with(mailbox.user(), mailbox.password(), AuthMethod::Auto)
        .await?;
    let attempts = conn.client().login_attempts().to_vec();
    assert_eq!(
        conn.client().login_mechanism(),
        Some("SCRAM-SHA-256"),
        "{attempts:?}"
    );
    assert_eq!(conn.stat().await?.count, 1);
    conn.quit().await?;
    Ok(attempts)
}

#[test]
fn auto_logs_in_with_plain_scram_after_plus_is_refused() {
    for tls in [Tls::V13, Tls::V12] {
        for mode in MODES {
            on_every_transport(|label| {
                let what = label(&format!("{mode:?} {tls:?}"));
                let result = if what.starts_with("blocking") {
                    Blocking.block_on(auto_login(&Blocking, mode, tls))
                } else if what.starts_with("tokio") {
                    let t = Tokio::new();
                    t.block_on(auto_login(&t, mode, tls))
                } else {
                    Smol.block_on(auto_login(&Smol, mode, tls))
                };
                match result {
                    // Cyrus offers -PLUS but cannot bind with our types: the
                    // -PLUS attempt is refused, plain SCRAM follows.
                    Ok(attempts) => {
                        assert_eq!(attempts, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"], "{what}")
                    }
                    Err(e) => panic!("{what}: {e}\n{}", log()),
                }
            });
        }
    }
}

// ---------------------------------------------------------------------------
// What Cyrus does with channel binding
// ---------------------------------------------------------------------------

#[test]
fn capa_offers_plus_only_over_tls() {
    let cyrus = Cyrus::shared();
    let o = options(cyrus, Tls::V13).allow_plaintext_credentials(true);
    let mut plain =
        pop3_blocking::connect_plain("127.0.0.1", cyrus.plain_addr().port(), &o).expect("connect");
    plain.capa().wait().unwrap();
    assert_eq!(
        sasl::<Blocking>(&plain),
        ["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-256"]
    );
    assert!(plain.capabilities().unwrap().stls());
    plain.quit().wait().unwrap();

    let after_tls = [
        "PLAIN",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-1",
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-256",
    ];
    for mode in MODES {
        for tls in [Tls::V13, Tls::V12] {
            let mut conn = connect(&Blocking, cyrus, mode, tls).wait().unwrap();
            if conn.capabilities().is_none() {
                conn.capa().wait().unwrap();
            }
            assert_eq!(sasl::<Blocking>(&conn), after_tls, "{mode:?} {tls:?}");
            assert!(!conn.capabilities().unwrap().stls(), "{mode:?} {tls:?}");
            conn.quit().wait().unwrap();
        }
    }
}

/// SCRAM-SHA-256-PLUS as our core does it: `tls-exporter` on TLS 1.3,
/// `tls-server-end-point` on TLS 1.2. Cyrus 3.6 binds to `tls-unique` only
/// and refuses both after the client-final message.
#[test]
fn scram_plus_with_our_binding_types_is_refused() {
    let cyrus = Cyrus::shared();
    for tls in [Tls::V13, Tls::V12] {
        for mode in MODES {
            let mailbox = user("plus");
            let mut conn = connect(&Blocking, cyrus, mode, tls).wait().unwrap();
            let (code, text) = refusal(
                conn.login_with(
                    mailbox.user(),
                    mailbox.password(),
                    AuthMethod::ScramSha256Plus,
                )
                .wait(),
                &format!("{mode:?} {tls:?}"),
            );
            assert_eq!(code, Some(ResponseCode::Auth), "{mode:?} {tls:?}");
            assert_eq!(
                text, "authenticating: bad protocol / cancel",
                "{mode:?} {tls:?}"
            );
            // The session goes on: plain SCRAM works on the same connection.
            conn.login_with(mailbox.user(), mailbox.password(), AuthMethod::ScramSha256)
                .wait()
                .unwrap_or_else(|e| panic!("{mode:?} {tls:?}: {e}\n{}", log()));
            conn.quit().wait().unwrap();
        }
    }
}

/// Plain SCRAM-SHA-256 with the GS2 flag `y` ("I could bind, I think you
/// cannot").
fn scram_y(mailbox: &CyrusMailbox) -> AuthMethod {
    let nonce = pop3_transport::scram_nonce().unwrap();
    let scram = Scram::sha256(
        mailbox.user().to_string(),
        Secret::new(mailbox.password().to_string()),
        nonce,
    )
    .unwrap()
    .with_binding_supported(true);
    AuthMethod::Mechanism(Box::new(scram))
}

/// RFC 5802: a server that supports channel binding must refuse `y`. Cyrus
/// does over TLS (where it offers -PLUS) and accepts `y` without TLS (where
/// it does not).
#[test]
fn scram_flag_y_is_refused_over_tls_and_accepted_without() {
    let cyrus = Cyrus::shared();
    for tls in [Tls::V13, Tls::V12] {
        for mode in MODES {
            let mailbox = user("flag-y");
            let mut conn = connect(&Blocking, cyrus, mode, tls).wait().unwrap();
            let (code, text) = refusal(
                conn.login_with(mailbox.user(), mailbox.password(), scram_y(&mailbox))
                    .wait(),
                &format!("{mode:?} {tls:?}"),
            );
            assert_eq!(code, Some(ResponseCode::Auth), "{mode:?} {tls:?}");
            assert_eq!(text, "authenticating: authentication failure");
            conn.quit().wait().unwrap();
        }
    }
    let mailbox = user("flag-y-plain");
    let o = options(cyrus, Tls::V13).allow_plaintext_credentials(true);
    let mut plain =
        pop3_blocking::connect_plain("127.0.0.1", cyrus.plain_addr().port(), &o).expect("connect");
    plain
        .login_with(mailbox.user(), mailbox.password(), scram_y(&mailbox))
        .wait()
        .unwrap_or_else(|e| panic!("y without TLS: {e}\n{}", log()));
    plain.quit().wait().unwrap();
}
