//! STLS injection, garbage and stalls: bytes after the STLS `+OK` are never
//! parsed, plaintext where the handshake belongs is a TLS error, and a
//! handshake that never completes ends at the handshake limit.

use pop3_proto::ProtocolError;

use super::*;

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
