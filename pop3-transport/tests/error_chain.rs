//! Every public error type reports each cause once: its `Display` never
//! repeats the `Display` of its `source()`, at any depth, so an error reporter
//! (anyhow, eyre, `std::error::Report`) that prints the chain shows each cause
//! once.

use std::error::Error as StdError;
use std::io;

use pop3_proto::sasl::SaslError;
use pop3_proto::{ProtocolError, ResponseCode, ServerError, Text, UsageError};
use pop3_transport::socks5::Socks5Error;
use pop3_transport::{Error, FingerprintError, FingerprintMismatch, Phase, Sha256Fingerprint};
use rustls::CertificateError;

/// Fails if any error in the chain starting at `error` shows its source.
fn assert_each_cause_once(error: &(dyn StdError + 'static)) {
    let mut current = Some(error);
    while let Some(error) = current {
        let shown = error.to_string();
        assert!(!shown.is_empty(), "{error:?} displays nothing");
        if let Some(source) = error.source() {
            let cause = source.to_string();
            assert!(
                !shown.contains(&cause),
                "{error:?}: \"{shown}\" repeats its source \"{cause}\""
            );
        }
        current = error.source();
    }
}

fn server_error() -> ServerError {
    ServerError::new(Some(ResponseCode::InUse), Text::sanitize(b"mailbox locked"))
}

fn transport_errors() -> Vec<Error> {
    let certificate = |problem| Error::Tls(rustls::Error::InvalidCertificate(problem));
    vec![
        Error::Io(io::Error::new(io::ErrorKind::ConnectionRefused, "refused")),
        Error::Io(io::Error::from(io::ErrorKind::UnexpectedEof)),
        Error::Io(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            pop3_transport::IoContext::new(
                pop3_transport::IoSubject::Server {
                    host: "localhost".to_owned(),
                    port: 995,
                },
                io::Error::from_raw_os_error(111),
            ),
        )),
        Error::Tls(rustls::Error::DecryptError),
        certificate(CertificateError::UnknownIssuer),
        certificate(CertificateError::NotValidForName),
        certificate(CertificateError::Expired),
        Error::Protocol(ProtocolError::UnexpectedEof),
        Error::Protocol(ProtocolError::Sasl(SaslError::NonceMismatch)),
        Error::BadReply(ProtocolError::LineTooLong { limit: 512 }),
        Error::Sink(io::Error::other("disk full")),
        Error::Usage(UsageError::PlaintextCredentials),
        Error::Usage(UsageError::Failed(ProtocolError::DataAfterStls)),
        Error::Server(server_error()),
        Error::Timeout(Phase::Greeting),
        Error::Closed,
        Error::StlsUnavailable,
        Error::MessageTooLarge { limit: 10 },
    ]
}

#[test]
fn transport_errors_show_each_cause_once() {
    for error in transport_errors() {
        assert_each_cause_once(&error);
        // The same error after a trip through `io::Error` (how a message
        // reader reports it).
        let wrapped = io::Error::from(error);
        assert_each_cause_once(&wrapped);
    }
}

#[test]
fn core_errors_show_each_cause_once() {
    let protocol = [
        ProtocolError::InvalidGreeting(Text::sanitize(b"hello")),
        ProtocolError::GreetingRejected(server_error()),
        ProtocolError::TlsInsteadOfGreeting,
        ProtocolError::Malformed("bad STAT"),
        ProtocolError::Sasl(SaslError::ServerSignatureMismatch),
        ProtocolError::AuthenticationAccepted,
    ];
    for error in &protocol {
        assert_each_cause_once(error);
    }
    let usage = [
        UsageError::WrongState {
            command: "RETR",
            reason: "not logged in",
        },
        UsageError::InvalidArgument("empty user name"),
        UsageError::Sasl(SaslError::InvalidCredential("prohibited character")),
        UsageError::Failed(ProtocolError::UnexpectedEof),
        UsageError::Cancelled,
    ];
    for error in &usage {
        assert_each_cause_once(error);
    }
    assert_each_cause_once(&server_error());
    assert_each_cause_once(&SaslError::ServerError("e=invalid-proof".into()));
}

#[test]
fn other_public_errors_show_each_cause_once() {
    let digits = "12:34".parse::<Sha256Fingerprint>();
    assert!(matches!(
        digits,
        Err(FingerprintError::Length { digits: 4 })
    ));
    if let Err(error) = &digits {
        assert_each_cause_once(error);
    }
    let mismatch = FingerprintMismatch {
        presented: Sha256Fingerprint::from_bytes([1; 32]),
        pinned: vec![Sha256Fingerprint::from_bytes([2; 32])],
    };
    assert_each_cause_once(&mismatch);
    assert_each_cause_once(&Socks5Error::NoAcceptableMethod);
}

#[test]
fn causes_are_in_the_one_line() {
    let refused = Error::Io(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"));
    assert_eq!(refused.to_string(), "I/O error: refused");
    let usage = Error::Usage(UsageError::PlaintextCredentials);
    assert!(usage.to_string().contains("unencrypted"), "{usage}");
}

#[test]
fn certificate_errors_say_what_to_do() {
    let unknown = Error::Tls(rustls::Error::InvalidCertificate(
        CertificateError::UnknownIssuer,
    ));
    let shown = unknown.to_string();
    assert!(shown.contains("trust its CA"), "{shown}");
    assert!(shown.contains("pin the certificate's SHA-256"), "{shown}");
    let name = Error::Tls(rustls::Error::InvalidCertificate(
        CertificateError::NotValidForName,
    ));
    assert!(
        name.to_string().contains("a name the certificate carries"),
        "{name}"
    );
    let namesake = Error::Tls(rustls::Error::InvalidCertificate(
        CertificateError::BadSignature,
    ));
    assert!(
        namesake
            .to_string()
            .contains("another certificate than the one trusted"),
        "{namesake}"
    );
    // Words for whoever reads the line, not names of Rust items.
    for error in [unknown, name, namesake] {
        assert!(!error.to_string().contains("::"), "{error}");
    }
}

#[test]
fn a_missing_ca_file_is_named() {
    let result = pop3_transport::TlsOptions::new().add_root_pem_file("/nope/ca.pem");
    let shown = result
        .as_ref()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(shown.starts_with("/nope/ca.pem: "), "{shown}");
    assert_eq!(shown.matches("/nope/ca.pem").count(), 1, "{shown}");
    let kind = result.err().map(|e| e.kind());
    assert_eq!(kind, Some(pop3_transport::ErrorKind::Local));
}
