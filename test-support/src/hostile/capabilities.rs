//! Capability tampering across TLS: what the server offered before STLS is
//! forgotten. (Capabilities changing at login are the core's cases,
//! `pop3-proto/tests/hostile/pipelining.rs`.)

use pop3_proto::{Capabilities, Capability, ProtocolError};

use super::*;
use crate::pki::rustls_server_config;
use crate::scenarios::n;

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
