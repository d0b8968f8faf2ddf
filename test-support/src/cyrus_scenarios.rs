//! The library against a real Cyrus pop3d 3.6 ([`crate::cyrus`]), written
//! once over [`Connection`](crate::scenarios::Connection) like
//! [`crate::scenarios`] and run by every Rust transport in both TLS modes
//! (implicit TLS, STLS) through [`cyrus_tests!`](crate::cyrus_tests):
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

use std::sync::Arc;
use std::time::Duration;

use pop3_proto::sasl::Scram;
use pop3_proto::{AuthMethod, MsgNum, ResponseCode, Secret};

use crate::cyrus::{Cyrus, CyrusMailbox};
use crate::dovecot::unique_user;
use crate::scenarios::{Conn, Error, Options, Result, Timeouts, TlsOptions, Transport};

/// Expands to one `#[test]` per scenario of [`crate::cyrus_scenarios`], each
/// running the scenario with `&$transport` on the transport's executor.
#[macro_export]
macro_rules! cyrus_tests {
    ($transport:expr) => {
        $crate::cyrus_tests!(@each $transport;
            cyrus_explicit_scram_sha256_logs_in_over_tls_and_stls,
            cyrus_wrong_password_is_refused_with_auth_code,
            cyrus_stat_uidl_retr_are_byte_exact,
            cyrus_retr_of_a_missing_message_is_refused,
            cyrus_auto_logs_in_with_plain_scram_after_plus_is_refused,
            cyrus_capa_offers_plus_only_over_tls,
            cyrus_scram_plus_with_our_binding_types_is_refused,
            cyrus_scram_flag_y_is_refused_over_tls_and_accepted_without,
        );
    };
    (@each $transport:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let transport = $transport;
                $crate::scenarios::Transport::block_on(
                    &transport,
                    $crate::cyrus_scenarios::$name(&transport),
                );
            }
        )*
    };
}

/// How the connection is made encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// POP3S: TLS from the first byte.
    Implicit,
    /// Plain POP3, then `STLS`.
    Stls,
}

/// Both modes.
pub const MODES: [Mode; 2] = [Mode::Implicit, Mode::Stls];

/// Which TLS versions the client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// rustls' default: TLS 1.3 (Cyrus' OpenSSL 3 agrees to it).
    V13,
    /// TLS 1.2 only.
    V12,
}

/// Options trusting Cyrus' CA for the name `localhost` on 127.0.0.1, with
/// 20 s limits on every wait.
pub fn options(cyrus: &Cyrus, tls: Tls) -> Options {
    let tls_options = match tls {
        Tls::V13 => TlsOptions::new().add_root_der(cyrus.ca_der().clone()),
        Tls::V12 => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(cyrus.ca_der().clone()).expect("the test CA");
            let provider = pop3_transport::crypto_provider();
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS12])
                .expect("the crypto provider does TLS 1.2")
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

/// Connects to the shared Cyrus in `mode`, offering `tls`.
pub async fn connect<T: Transport>(t: &T, cyrus: &Cyrus, mode: Mode, tls: Tls) -> Result<Conn<T>> {
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
pub fn user(prefix: &str) -> CyrusMailbox {
    Cyrus::shared().add_user(&unique_user(prefix), "cyrus-secret")
}

/// Cyrus' log, for failure messages.
pub fn log() -> String {
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

/// The server's refusal of a login, or a panic naming what happened instead.
#[track_caller]
fn refusal(result: Result<()>, what: &str) -> (Option<ResponseCode>, String) {
    match result {
        Err(Error::Server(e)) => (e.code.clone(), e.text.to_string()),
        other => panic!("{what}: expected a -ERR, got {other:?}\n{}", log()),
    }
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

/// Explicit SCRAM-SHA-256 logs in over implicit TLS and STLS.
pub async fn cyrus_explicit_scram_sha256_logs_in_over_tls_and_stls<T: Transport>(t: &T) {
    for mode in MODES {
        match scram_sha256_login(t, mode).await {
            Ok(m) => assert_eq!(m, ["SCRAM-SHA-256"], "{mode:?}"),
            Err(e) => panic!("{mode:?}: {e}\n{}", log()),
        }
    }
}

/// A wrong password: `-ERR [AUTH]`, answered at once.
pub async fn cyrus_wrong_password_is_refused_with_auth_code<T: Transport>(t: &T) {
    let cyrus = Cyrus::shared();
    let mailbox = user("wrong");
    let mut conn = connect(t, cyrus, Mode::Implicit, Tls::V13).await.unwrap();
    let started = std::time::Instant::now();
    let (code, text) = refusal(
        conn.login_with(mailbox.user(), "not-it", AuthMethod::ScramSha256)
            .await,
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

async fn read_back<T: Transport>(t: &T, mode: Mode, mailbox: &CyrusMailbox) -> Result<ReadBack> {
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

/// STAT, UIDL and RETR agree with the delivered messages, byte for byte.
pub async fn cyrus_stat_uidl_retr_are_byte_exact<T: Transport>(t: &T) {
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
        check(read_back(t, mode, &mailbox).await, format!("{mode:?}"));
    }
    // Nothing was deleted.
    assert_eq!(mailbox.count(), 3);
}

/// RETR of a message that does not exist is refused; the session goes on.
pub async fn cyrus_retr_of_a_missing_message_is_refused<T: Transport>(t: &T) {
    let mailbox = user("missing");
    mailbox.add_message(b"Subject: x\r\n\r\ny\r\n");
    let mut conn = connect(t, Cyrus::shared(), Mode::Implicit, Tls::V13)
        .await
        .unwrap();
    conn.login_with(mailbox.user(), mailbox.password(), AuthMethod::ScramSha256)
        .await
        .unwrap();
    let mut out = Vec::new();
    match conn.retr_to(MsgNum::new(2).unwrap(), &mut out).await {
        Err(Error::Server(_)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(conn.stat().await.unwrap().count, 1, "still usable");
    conn.quit().await.unwrap();
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

/// `auto`: the -PLUS attempt is refused, one retry with plain SCRAM logs in.
pub async fn cyrus_auto_logs_in_with_plain_scram_after_plus_is_refused<T: Transport>(t: &T) {
    for tls in [Tls::V13, Tls::V12] {
        for mode in MODES {
            let what = format!("{mode:?} {tls:?}");
            match auto_login(t, mode, tls).await {
                // Cyrus offers -PLUS but cannot bind with our types: the
                // -PLUS attempt is refused, plain SCRAM follows.
                Ok(attempts) => {
                    assert_eq!(attempts, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"], "{what}")
                }
                Err(e) => panic!("{what}: {e}\n{}", log()),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// What Cyrus does with channel binding
// ---------------------------------------------------------------------------

/// CAPA offers the -PLUS mechanisms over TLS only.
pub async fn cyrus_capa_offers_plus_only_over_tls<T: Transport>(t: &T) {
    let cyrus = Cyrus::shared();
    let o = options(cyrus, Tls::V13).allow_plaintext_credentials(true);
    let mut plain = t
        .connect_plain("127.0.0.1", cyrus.plain_addr().port(), &o)
        .await
        .expect("connect");
    plain.capa().await.unwrap();
    assert_eq!(
        sasl::<T>(&plain),
        ["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-256"]
    );
    assert!(plain.capabilities().unwrap().stls());
    plain.quit().await.unwrap();

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
            let mut conn = connect(t, cyrus, mode, tls).await.unwrap();
            if conn.capabilities().is_none() {
                conn.capa().await.unwrap();
            }
            assert_eq!(sasl::<T>(&conn), after_tls, "{mode:?} {tls:?}");
            assert!(!conn.capabilities().unwrap().stls(), "{mode:?} {tls:?}");
            conn.quit().await.unwrap();
        }
    }
}

/// SCRAM-SHA-256-PLUS as our core does it: `tls-exporter` on TLS 1.3,
/// `tls-server-end-point` on TLS 1.2. Cyrus 3.6 binds to `tls-unique` only
/// and refuses both after the client-final message.
pub async fn cyrus_scram_plus_with_our_binding_types_is_refused<T: Transport>(t: &T) {
    let cyrus = Cyrus::shared();
    for tls in [Tls::V13, Tls::V12] {
        for mode in MODES {
            let mailbox = user("plus");
            let mut conn = connect(t, cyrus, mode, tls).await.unwrap();
            let (code, text) = refusal(
                conn.login_with(
                    mailbox.user(),
                    mailbox.password(),
                    AuthMethod::ScramSha256Plus,
                )
                .await,
                &format!("{mode:?} {tls:?}"),
            );
            assert_eq!(code, Some(ResponseCode::Auth), "{mode:?} {tls:?}");
            assert_eq!(
                text, "authenticating: bad protocol / cancel",
                "{mode:?} {tls:?}"
            );
            // The session goes on: plain SCRAM works on the same connection.
            conn.login_with(mailbox.user(), mailbox.password(), AuthMethod::ScramSha256)
                .await
                .unwrap_or_else(|e| panic!("{mode:?} {tls:?}: {e}\n{}", log()));
            conn.quit().await.unwrap();
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
pub async fn cyrus_scram_flag_y_is_refused_over_tls_and_accepted_without<T: Transport>(t: &T) {
    let cyrus = Cyrus::shared();
    for tls in [Tls::V13, Tls::V12] {
        for mode in MODES {
            let mailbox = user("flag-y");
            let mut conn = connect(t, cyrus, mode, tls).await.unwrap();
            let (code, text) = refusal(
                conn.login_with(mailbox.user(), mailbox.password(), scram_y(&mailbox))
                    .await,
                &format!("{mode:?} {tls:?}"),
            );
            assert_eq!(code, Some(ResponseCode::Auth), "{mode:?} {tls:?}");
            assert_eq!(text, "authenticating: authentication failure");
            conn.quit().await.unwrap();
        }
    }
    let mailbox = user("flag-y-plain");
    let o = options(cyrus, Tls::V13).allow_plaintext_credentials(true);
    let mut plain = t
        .connect_plain("127.0.0.1", cyrus.plain_addr().port(), &o)
        .await
        .expect("connect");
    plain
        .login_with(mailbox.user(), mailbox.password(), scram_y(&mailbox))
        .await
        .unwrap_or_else(|e| panic!("y without TLS: {e}\n{}", log()));
    plain.quit().await.unwrap();
}
