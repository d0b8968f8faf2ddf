//! Certificates: after STLS (unknown CA, expired, self-signed), pinned by
//! fingerprint (implicit TLS, STLS, through a proxy), and a trusted
//! self-signed server certificate that is no authority for others.

use pop3_transport::{FingerprintMismatch, Sha256Fingerprint, TlsOptions};

use super::*;
use crate::pki::{rustls_server_config, self_signed_server_and_forgery, CertKey};
use crate::scenarios::{connect_in, proxy_url, Mode};
use crate::socks5::{Socks5Config, Socks5Server};

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

/// A CA file that holds a server's self-signed certificate (CA:TRUE, as
/// `openssl req -x509` makes it, naming `shared.example` in a subject
/// alternative name or by its common name alone) trusts that certificate
/// alone: a certificate for `localhost` signed with that server's key is
/// refused with `UnknownIssuer` before any POP3 byte; the server's own
/// certificate, as the control, connects.
pub async fn trusted_self_signed_certificate_is_no_authority<T: Transport>(t: &T) {
    for subject_alt_name in [true, false] {
        trusted_self_signed_shape_is_no_authority(t, subject_alt_name).await;
    }
}

/// [`trusted_self_signed_certificate_is_no_authority`] for one shape.
async fn trusted_self_signed_shape_is_no_authority<T: Transport>(t: &T, subject_alt_name: bool) {
    let what = format!("subjectAltName: {subject_alt_name}");
    let (shared, forged) = self_signed_server_and_forgery(subject_alt_name);
    let trusting_shared = || {
        opts().tls(
            TlsOptions::new()
                .trust_roots(pop3_transport::TrustRoots::OnlyGiven)
                .add_root_pem(shared.cert_pem.as_bytes())
                .expect("valid PEM"),
        )
    };
    let server = script(vec![
        Step::StartTls(rustls_server_config(&forged)),
        Step::ExpectClose,
    ]);
    let e = expect_connect_err(
        t.connect_tls("localhost", port(&server), &trusting_shared())
            .await,
        &format!("{what}: a certificate signed by a trusted server's key"),
    );
    assert!(
        matches!(
            e,
            Error::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{what}: {e:?}"
    );
    let (received, _) = finish(server);
    assert!(
        !received.windows(4).any(|w| w == b"QUIT"),
        "{what}: {}",
        show(&received)
    );

    let server = script(vec![
        Step::StartTls(rustls_server_config(&shared)),
        Step::send_line(GREETING),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]);
    let s = expect_ok(
        t.connect_tls(
            "127.0.0.1",
            port(&server),
            &trusting_shared().server_name("shared.example"),
        )
        .await,
        &format!("{what}: the trusted certificate itself"),
    );
    expect_ok(s.quit().await, "quit");
    finish(server).1.expect("script followed");
}
