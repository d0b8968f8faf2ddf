//! The certificates this crate's unit tests verify, generated with `rcgen`.
//!
//! The unit tests make their own rather than take the workspace's
//! `test-support` PKI: that crate is not published, so the tests of the
//! packaged crate (what crater and distribution packagers build) would not
//! compile with it. The shapes are the ones `test-support` documents.

use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;

/// A certificate in DER and PEM, with its private key in PEM.
pub(crate) struct Issued {
    pub(crate) cert_der: CertificateDer<'static>,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// A trusted CA and leaf certificates for `localhost` with each verification
/// outcome.
pub(crate) struct TestCertificates {
    /// The trusted CA ("pop3 unit-test trusted CA").
    pub(crate) ca_der: CertificateDer<'static>,
    pub(crate) ca_pem: String,
    /// Signed by the CA for `localhost`, `127.0.0.1` and `::1`: passes.
    pub(crate) server: Issued,
    /// Signed by the CA, valid 2000-01-01 .. 2001-01-01.
    pub(crate) expired: Issued,
    /// Signed by the CA for `wrong.example` only.
    pub(crate) wrong_host: Issued,
    /// Signed by a CA nobody trusts.
    pub(crate) unknown_ca: Issued,
    /// Its own issuer, for `localhost`, `127.0.0.1` and `::1`.
    pub(crate) self_signed: Issued,
    /// Shaped as `openssl req -x509 -subj /CN=localhost` makes a server's
    /// certificate: self-signed, CA:TRUE, a common name and no subject
    /// alternative names.
    pub(crate) common_name_only: Issued,
}

const LOCALHOST: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// One set per test binary, generated on first use (ECDSA P-256, a few
/// milliseconds).
pub(crate) fn shared() -> &'static TestCertificates {
    static SHARED: OnceLock<TestCertificates> = OnceLock::new();
    SHARED.get_or_init(generate)
}

fn generate() -> TestCertificates {
    let (ca, ca_key) = authority("pop3 unit-test trusted CA");
    let (other_ca, other_key) = authority("pop3 unit-test UNTRUSTED CA");
    let mut expired = leaf("localhost (expired)", &LOCALHOST);
    expired.not_before = rcgen::date_time_ymd(2000, 1, 1);
    expired.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let mut common_name_only = leaf("localhost", &[]);
    common_name_only.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    common_name_only.key_usages = Vec::new();
    common_name_only.extended_key_usages = Vec::new();
    TestCertificates {
        ca_der: ca.der().clone(),
        ca_pem: ca.pem(),
        server: signed(leaf("localhost", &LOCALHOST), Some((&ca, &ca_key))),
        expired: signed(expired, Some((&ca, &ca_key))),
        wrong_host: signed(
            leaf("wrong.example", &["wrong.example"]),
            Some((&ca, &ca_key)),
        ),
        unknown_ca: signed(
            leaf("localhost (unknown CA)", &LOCALHOST),
            Some((&other_ca, &other_key)),
        ),
        self_signed: signed(leaf("localhost (self-signed)", &LOCALHOST), None),
        common_name_only: signed(common_name_only, None),
    }
}

fn authority(common_name: &str) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().expect("rcgen: a CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("rcgen: CA parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("rcgen: a self-signed CA");
    (cert, key)
}

fn leaf(common_name: &str, names: &[&str]) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("rcgen: leaf parameters");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params
}

fn signed(params: CertificateParams, issuer: Option<(&Certificate, &KeyPair)>) -> Issued {
    let key = KeyPair::generate().expect("rcgen: a leaf key");
    let cert = match issuer {
        Some((issuer, issuer_key)) => params.signed_by(&key, issuer, issuer_key),
        None => params.self_signed(&key),
    }
    .expect("rcgen: a leaf certificate");
    Issued {
        cert_der: cert.der().clone(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}
