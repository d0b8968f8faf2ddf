//! TLS trust against a real Dovecot, on every transport (blocking, tokio,
//! smol) and in both TLS modes (implicit TLS and STLS), through the public
//! `connect_tls` / `connect_starttls`, `login`, `stat` and `quit`:
//!
//! - a certificate made by `openssl req -x509` (self-signed, CA:TRUE, no
//!   subject alternative names) is trusted when it is the one root given;
//! - a CA found only in a temporary system store (`SSL_CERT_FILE`) is trusted
//!   by [`TrustRoots::System`] (in a child process: the variable is
//!   process-wide);
//! - a pinned SHA-256 fingerprint is trusted with no roots at all;
//! - and the negative twins (another self-signed certificate, a wrong
//!   fingerprint, an expired certificate, a wrong host name) fail with
//!   `Error::Tls` before any command: checked against Dovecot, and against a
//!   scripted server that records every byte the client sends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pop3_blocking::Wait;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use pop3_proto::Stat;
use pop3_transport::{
    CertificateInfo, Error, FingerprintMismatch, Options, PeerCertificates, Sha256Fingerprint,
    Timeouts, TlsDiagnosis, TlsOptions, TrustRoots,
};
use rustls::CertificateError;
use test_support::scripted::{ScriptedServer, Step};
use test_support::{
    rustls_server_config, unique_user, CertKey, Dovecot, DovecotOptions, HomemadeCerts, TestPki,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runtime {
    Blocking,
    Tokio,
    Smol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// POP3S: TLS from the first byte.
    Implicit,
    /// Plain POP3, then `STLS`.
    Stls,
}

const RUNTIMES: [Runtime; 3] = [Runtime::Blocking, Runtime::Tokio, Runtime::Smol];
const MODES: [Mode; 2] = [Mode::Implicit, Mode::Stls];

/// Where to connect and as whom.
#[derive(Debug, Clone)]
struct Target {
    plain_port: u16,
    tls_port: u16,
    user: String,
    password: String,
}

impl Target {
    /// A fresh user with one message on `dovecot`.
    fn on(dovecot: &Dovecot) -> Target {
        let user = unique_user("trust");
        let mailbox = dovecot.add_user(&user, "secret");
        mailbox.add_message(b"Subject: trust\r\n\r\nhello\r\n");
        Target {
            plain_port: dovecot.plain_addr().port(),
            tls_port: dovecot.tls_addr().port(),
            user,
            password: "secret".to_owned(),
        }
    }

    fn port(&self, mode: Mode) -> u16 {
        match mode {
            Mode::Implicit => self.tls_port,
            Mode::Stls => self.plain_port,
        }
    }
}

/// Options for `tls`, verifying the name `localhost` while connecting to
/// 127.0.0.1 (Dovecot listens on IPv4 only).
fn options(tls: TlsOptions) -> Options {
    Options::new()
        .tls(tls)
        .server_name("localhost")
        .timeouts(Timeouts::uniform(Duration::from_secs(20)))
}

/// Connects, logs in, asks `STAT` and quits, on one runtime in one mode.
fn session(
    runtime: Runtime,
    mode: Mode,
    target: &Target,
    options: &Options,
) -> Result<Stat, Error> {
    let (host, port, user, password) = (
        "127.0.0.1",
        target.port(mode),
        target.user.as_str(),
        target.password.clone(),
    );
    match runtime {
        Runtime::Blocking => {
            let mut conn = match mode {
                Mode::Implicit => pop3_blocking::connect_tls(host, port, options).wait()?,
                Mode::Stls => pop3_blocking::connect_starttls(host, port, options).wait()?,
            };
            conn.login(user, password).wait()?;
            let stat = conn.stat().wait()?;
            conn.quit().wait()?;
            Ok(stat)
        }
        Runtime::Tokio => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async {
                let mut conn = match mode {
                    Mode::Implicit => pop3_tokio::connect_tls(host, port, options).await?,
                    Mode::Stls => pop3_tokio::connect_starttls(host, port, options).await?,
                };
                conn.login(user, password).await?;
                let stat = conn.stat().await?;
                conn.quit().await?;
                Ok(stat)
            })
        }
        Runtime::Smol => smol::block_on(async {
            let mut conn = match mode {
                Mode::Implicit => pop3_smol::connect_tls(host, port, options).await?,
                Mode::Stls => pop3_smol::connect_starttls(host, port, options).await?,
            };
            conn.login(user, password).await?;
            let stat = conn.stat().await?;
            conn.quit().await?;
            Ok(stat)
        }),
    }
}

/// Every runtime and mode logs in and finds the one message.
fn assert_sessions_succeed(target: &Target, options: &Options) {
    for runtime in RUNTIMES {
        for mode in MODES {
            match session(runtime, mode, target, options) {
                Ok(stat) => assert_eq!(stat.count, 1, "{runtime:?} {mode:?}"),
                Err(e) => panic!("{runtime:?} {mode:?}: {e}\n{:?}", e.tls_diagnosis(None)),
            }
        }
    }
}

/// Every runtime and mode fails with a certificate error that `expected`
/// accepts; returns the errors.
fn assert_sessions_refused(
    target: &Target,
    options: &Options,
    expected: impl Fn(&CertificateError) -> bool,
) -> Vec<Error> {
    let mut errors = Vec::new();
    for runtime in RUNTIMES {
        for mode in MODES {
            match session(runtime, mode, target, options) {
                Err(Error::Tls(rustls::Error::InvalidCertificate(problem)))
                    if expected(&problem) =>
                {
                    errors.push(Error::Tls(rustls::Error::InvalidCertificate(problem)));
                }
                other => panic!("{runtime:?} {mode:?}: wrong outcome {other:?}"),
            }
        }
    }
    errors
}

/// A Dovecot presenting `cert`, started once per test binary.
fn dovecot_presenting(cell: &'static OnceLock<Dovecot>, cert: &CertKey) -> &'static Dovecot {
    cell.get_or_init(|| {
        Dovecot::start_with_cert(DovecotOptions::default(), cert).expect("start Dovecot")
    })
}

fn homemade() -> &'static Dovecot {
    static CELL: OnceLock<Dovecot> = OnceLock::new();
    dovecot_presenting(&CELL, &HomemadeCerts::shared().localhost)
}

fn homemade_expired() -> &'static Dovecot {
    static CELL: OnceLock<Dovecot> = OnceLock::new();
    dovecot_presenting(&CELL, &HomemadeCerts::shared().expired)
}

fn homemade_wrong_host() -> &'static Dovecot {
    static CELL: OnceLock<Dovecot> = OnceLock::new();
    dovecot_presenting(&CELL, &HomemadeCerts::shared().wrong_host)
}

fn only(cert: &CertKey) -> TlsOptions {
    TlsOptions::new()
        .trust_roots(TrustRoots::OnlyGiven)
        .add_root_pem(cert.cert_pem.as_bytes())
        .expect("PEM")
}

/// A fresh directory for files of one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{}-{}", unique_user(name), std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

#[test]
fn an_openssl_certificate_given_as_the_only_root_is_trusted() {
    let cert = &HomemadeCerts::shared().localhost;
    let target = Target::on(homemade());
    assert_sessions_succeed(&target, &options(only(cert)));
}

#[test]
fn an_openssl_certificate_from_a_file_adds_to_the_default_roots() {
    // What `pop3 --ca-file` does: the system roots stay, the file adds to them.
    let cert = &HomemadeCerts::shared().localhost;
    let dir = temp_dir("ca-file");
    let path = dir.join("server.pem");
    std::fs::write(&path, &cert.cert_pem).expect("write");
    let tls = TlsOptions::new().add_root_pem_file(&path).expect("read");
    assert_eq!(tls.roots(), TrustRoots::System);
    let target = Target::on(homemade());
    assert_sessions_succeed(&target, &options(tls));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_pinned_fingerprint_is_trusted_without_roots_or_name() {
    let cert = &HomemadeCerts::shared().localhost;
    let pin: Sha256Fingerprint = Sha256Fingerprint::of(&cert.cert_der)
        .to_string()
        .to_lowercase()
        .replace(':', "")
        .parse()
        .expect("fingerprint");
    let tls = TlsOptions::new()
        .trust_roots(TrustRoots::OnlyGiven)
        .pin_sha256(pin);
    let target = Target::on(homemade());
    assert_sessions_succeed(&target, &options(tls.clone()));
    // The pin identifies the certificate: the host name is not checked.
    let other_name = options(tls).server_name("mail.elsewhere.example");
    assert_sessions_succeed(&target, &other_name);
}

#[test]
fn another_self_signed_certificate_is_refused() {
    let certs = HomemadeCerts::shared();
    let presented = PeerCertificates::new();
    let tls = only(&certs.other_localhost).capture_peer_certificates(&presented);
    let target = Target::on(homemade());
    // webpki's verdict on a CA certificate that does not chain is either.
    let errors = assert_sessions_refused(&target, &options(tls), |problem| {
        matches!(
            problem,
            CertificateError::UnknownIssuer | CertificateError::Other(_)
        )
    });
    let end_entity = presented.end_entity().expect("the chain was recorded");
    assert_eq!(end_entity, certs.localhost.cert_der);
    let info = CertificateInfo::from_der(&end_entity).expect("parse");
    assert!(info.self_signed && info.is_ca);
    assert_eq!(info.common_names, ["localhost"]);
    for error in errors {
        // Pinning it, or trusting it as an authority, would accept it.
        let diagnosis = error.tls_diagnosis(Some(&info));
        assert!(
            matches!(
                &diagnosis,
                Some(
                    TlsDiagnosis::UnknownIssuer { presented: Some(cert) }
                        | TlsDiagnosis::CaUsedAsEndEntity { presented: Some(cert) }
                ) if cert.sha256 == info.sha256
            ),
            "{diagnosis:?}"
        );
    }
}

/// A certificate whose issuer bears the trusted CA's name but was signed by
/// another key: the diagnosis says another certificate than the trusted one
/// is presented, with its fingerprint, rather than "damaged or forged".
#[test]
fn a_namesake_of_the_trusted_ca_is_told_apart() {
    static CELL: OnceLock<Dovecot> = OnceLock::new();
    let pki = TestPki::shared();
    let dovecot = dovecot_presenting(&CELL, &pki.impostor);
    let presented = PeerCertificates::new();
    let tls = TlsOptions::new()
        .trust_roots(TrustRoots::OnlyGiven)
        .add_root_pem(pki.ca_pem.as_bytes())
        .expect("PEM")
        .capture_peer_certificates(&presented);
    let errors = assert_sessions_refused(&Target::on(dovecot), &options(tls), |problem| {
        *problem == CertificateError::BadSignature
    });
    let end_entity = presented.end_entity().expect("the chain was recorded");
    let info = CertificateInfo::from_der(&end_entity).expect("parse");
    assert_eq!(info.sha256, Sha256Fingerprint::of(&pki.impostor.cert_der));
    for error in errors {
        let line = error.to_string();
        assert!(
            line.contains("another certificate than the one trusted"),
            "{line}"
        );
        assert!(!line.contains("::"), "a Rust name in the message: {line}");
        assert_eq!(
            error.tls_diagnosis(Some(&info)),
            Some(TlsDiagnosis::NotSignedByTrusted {
                presented: Some(info.clone())
            })
        );
    }
}

#[test]
fn a_wrong_fingerprint_is_refused() {
    let certs = HomemadeCerts::shared();
    let wrong = Sha256Fingerprint::of(&certs.other_localhost.cert_der);
    let tls = TlsOptions::new().pin_sha256(wrong);
    let target = Target::on(homemade());
    let errors = assert_sessions_refused(&target, &options(tls), |problem| {
        let CertificateError::Other(other) = problem else {
            return false;
        };
        other
            .0
            .downcast_ref::<FingerprintMismatch>()
            .is_some_and(|m| {
                m.presented == Sha256Fingerprint::of(&certs.localhost.cert_der)
                    && m.pinned == [wrong]
            })
    });
    let diagnosis = errors[0].tls_diagnosis(None);
    assert_eq!(
        diagnosis,
        Some(TlsDiagnosis::PinMismatch {
            presented: Sha256Fingerprint::of(&certs.localhost.cert_der),
            pinned: vec![wrong],
        })
    );
}

#[test]
fn an_expired_certificate_is_refused_even_when_given() {
    let certs = HomemadeCerts::shared();
    let target = Target::on(homemade_expired());
    let errors = assert_sessions_refused(&target, &options(only(&certs.expired)), |problem| {
        matches!(problem, CertificateError::ExpiredContext { .. })
    });
    let diagnosis = errors[0].tls_diagnosis(None);
    let Some(TlsDiagnosis::Expired {
        not_after: Some(when),
        ..
    }) = diagnosis
    else {
        panic!("{diagnosis:?}");
    };
    assert_eq!(when.to_string(), "2001-01-01 00:00:00 UTC");
}

#[test]
fn a_certificate_for_another_host_is_refused_even_when_given() {
    let certs = HomemadeCerts::shared();
    let target = Target::on(homemade_wrong_host());
    let errors = assert_sessions_refused(&target, &options(only(&certs.wrong_host)), |problem| {
        matches!(
            problem,
            CertificateError::NotValidForNameContext { presented, .. }
                if presented == &["wrong.example".to_owned()]
        )
    });
    assert_eq!(
        errors[0].tls_diagnosis(None),
        Some(TlsDiagnosis::NameMismatch {
            expected: Some("localhost".to_owned()),
            presented: vec!["wrong.example".to_owned()],
        })
    );
    // The same certificate is fine for the name it carries.
    let right_name = options(only(&certs.wrong_host)).server_name("wrong.example");
    assert_sessions_succeed(&target, &right_name);
}

#[test]
fn refused_certificates_leave_no_login_in_dovecots_log() {
    // Runs after (or alongside) the negative tests: whatever they did, no
    // user of theirs may have reached authentication.
    let certs = HomemadeCerts::shared();
    let target = Target::on(homemade());
    let tls = TlsOptions::new().pin_sha256(Sha256Fingerprint::of(&certs.other_localhost.cert_der));
    for runtime in RUNTIMES {
        for mode in MODES {
            let outcome = session(runtime, mode, &target, &options(tls.clone()));
            assert!(matches!(outcome, Err(Error::Tls(_))), "{outcome:?}");
        }
    }
    // The control: a trusted session's user does appear in the log.
    let control = Target::on(homemade());
    let pinned = TlsOptions::new().pin_sha256(Sha256Fingerprint::of(&certs.localhost.cert_der));
    session(Runtime::Blocking, Mode::Stls, &control, &options(pinned)).expect("control");
    let log = homemade().log();
    assert!(log.contains(&control.user), "{log}");
    assert!(
        !log.contains(&target.user),
        "a refused connection reached authentication:\n{log}"
    );
    assert!(log.contains("no auth attempts"), "{log}");
}

/// One scripted session that presents `cert`: implicit TLS from the start,
/// or `STLS` after a `CAPA` that offers it. A client that refuses the
/// certificate sends nothing over TLS.
fn scripted(mode: Mode, cert: &CertKey) -> ScriptedServer {
    let tls = rustls_server_config(cert);
    let steps = match mode {
        Mode::Implicit => vec![
            Step::StartTls(tls),
            Step::send_line("+OK ready"),
            Step::Stall,
        ],
        Mode::Stls => vec![
            Step::send_line("+OK ready"),
            Step::expect_line("CAPA"),
            Step::Send(b"+OK\r\nSTLS\r\nUSER\r\n.\r\n".to_vec()),
            Step::expect_line("STLS"),
            Step::send_line("+OK begin TLS"),
            Step::StartTls(tls),
            Step::send_line("+OK ready"),
            Step::Stall,
        ],
    };
    ScriptedServer::start(steps)
}

#[test]
fn refused_certificates_fail_before_any_command() {
    let certs = HomemadeCerts::shared();
    let cases: [(&str, &CertKey, TlsOptions); 4] = [
        (
            "another self-signed",
            &certs.localhost,
            only(&certs.other_localhost),
        ),
        (
            "wrong fingerprint",
            &certs.localhost,
            TlsOptions::new().pin_sha256(Sha256Fingerprint::of(&certs.other_localhost.cert_der)),
        ),
        ("expired", &certs.expired, only(&certs.expired)),
        ("wrong host", &certs.wrong_host, only(&certs.wrong_host)),
    ];
    for (what, presented, tls) in cases {
        for runtime in RUNTIMES {
            for mode in MODES {
                let server = scripted(mode, presented);
                let target = Target {
                    plain_port: server.addr().port(),
                    tls_port: server.addr().port(),
                    user: "nobody".to_owned(),
                    password: "nothing".to_owned(),
                };
                let outcome = session(runtime, mode, &target, &options(tls.clone()));
                assert!(
                    matches!(outcome, Err(Error::Tls(_))),
                    "{what} {runtime:?} {mode:?}: {outcome:?}"
                );
                let (received, script) = server.join_all();
                assert!(script.is_err(), "{what}: the handshake must not complete");
                let expected: &[u8] = match mode {
                    Mode::Implicit => b"",
                    Mode::Stls => b"CAPA\r\nSTLS\r\n",
                };
                assert_eq!(
                    String::from_utf8_lossy(&received),
                    String::from_utf8_lossy(expected),
                    "{what} {runtime:?} {mode:?}"
                );
            }
        }
    }
}

/// The system-store case runs in a child process of this test binary, with
/// `SSL_CERT_FILE` set for it alone.
const CHILD_CASE: &str = "POP3_TRUST_TEST_CASE";
const CHILD_TARGET: &str = "POP3_TRUST_TEST_TARGET";

#[test]
fn a_ca_in_the_system_store_is_trusted_by_default() {
    if let Ok(case) = std::env::var(CHILD_CASE) {
        return system_store_child(&case);
    }
    let dovecot = Dovecot::shared();
    let target = Target::on(dovecot);
    let dir = temp_dir("ssl-cert-file");
    let test_ca = dir.join("test-ca.pem");
    std::fs::write(&test_ca, dovecot.ca_pem()).expect("write");
    let other_ca = dir.join("other-ca.pem");
    std::fs::write(&other_ca, &TestPki::shared().other_ca_pem).expect("write");
    let cases = [
        ("system-trusts", test_ca.clone()),
        ("system-without-the-ca", other_ca),
        ("mozilla-ignores-the-store", test_ca),
        ("missing-store-is-an-error", dir.join("missing.pem")),
    ];
    for (case, store) in cases {
        let output = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "a_ca_in_the_system_store_is_trusted_by_default",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_CASE, case)
            .env(
                CHILD_TARGET,
                format!(
                    "{} {} {} {}",
                    target.plain_port, target.tls_port, target.user, target.password
                ),
            )
            .env("SSL_CERT_FILE", &store)
            .env_remove("SSL_CERT_DIR")
            .output()
            .expect("run the test binary");
        assert!(
            output.status.success() && String::from_utf8_lossy(&output.stdout).contains("1 passed"),
            "case {case}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

fn system_store_child(case: &str) {
    let spec = std::env::var(CHILD_TARGET).expect("target");
    let parts: Vec<&str> = spec.split(' ').collect();
    let target = Target {
        plain_port: parts[0].parse().expect("port"),
        tls_port: parts[1].parse().expect("port"),
        user: parts[2].to_owned(),
        password: parts[3].to_owned(),
    };
    let unknown = |problem: &CertificateError| matches!(problem, CertificateError::UnknownIssuer);
    match case {
        "system-trusts" => {
            assert_eq!(TlsOptions::new().roots(), TrustRoots::System);
            assert_sessions_succeed(&target, &options(TlsOptions::new()));
        }
        "system-without-the-ca" => {
            assert_sessions_refused(&target, &options(TlsOptions::new()), unknown);
        }
        "mozilla-ignores-the-store" => {
            let tls = TlsOptions::new().trust_roots(TrustRoots::Mozilla);
            assert_sessions_refused(&target, &options(tls), unknown);
        }
        "missing-store-is-an-error" => {
            // `SSL_CERT_FILE` names no file: an error that says so, never a
            // silent fall-back to the built-in roots (issue 19 §9).
            let error = TlsOptions::new()
                .client_config()
                .expect_err("a missing SSL_CERT_FILE is an error");
            let found = match &error {
                pop3_transport::Error::Io(e) => e
                    .get_ref()
                    .and_then(|e| e.downcast_ref::<pop3_transport::CertFileError>()),
                _ => None,
            };
            assert!(found.is_some(), "{error:?}");
        }
        other => panic!("unknown child case {other}"),
    }
}
