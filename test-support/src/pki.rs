//! A throw-away PKI for TLS tests, generated with [`rcgen`].
//!
//! [`TestPki::new`] creates a trusted CA plus a set of leaf certificates that
//! exercise the interesting verification outcomes of a TLS client:
//!
//! | field                     | signed by        | names                                  | verification by a client that trusts [`TestPki::ca_der`] |
//! |---------------------------|------------------|----------------------------------------|-----------------------------------------------------------|
//! | [`TestPki::server`]       | trusted CA       | DNS `localhost`, IP `127.0.0.1`, `::1` | succeeds                                                  |
//! | [`TestPki::wrong_host`]   | trusted CA       | DNS `wrong.example` only               | fails: not valid for name                                 |
//! | [`TestPki::expired`]      | trusted CA       | DNS `localhost`, IP `127.0.0.1`, `::1` | fails: expired (valid 2000-01-01 .. 2001-01-01)           |
//! | [`TestPki::unknown_ca`]   | an untrusted CA  | DNS `localhost`, IP `127.0.0.1`, `::1` | fails: unknown issuer                                     |
//! | [`TestPki::self_signed`]  | itself           | DNS `localhost`, IP `127.0.0.1`, `::1` | fails: unknown issuer                                     |
//!
//! All keys are ECDSA P-256 (rcgen's default), so generation takes a few
//! milliseconds. Use [`TestPki::shared`] when one PKI per test binary is enough.
//!
//! [`HomemadeCerts`] are certificates made the way many small servers make
//! theirs, with `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=...`:
//! self-signed, `basicConstraints CA:TRUE`, a common name and no subject
//! alternative names. `openssl` comes with Debian's `dovecot-core` (which
//! depends on it), so every machine that runs the Dovecot tests has it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The subject alternative names of every "good" leaf certificate.
pub const LOCALHOST_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A certificate together with its private key, in PEM and DER form.
#[derive(Debug)]
pub struct CertKey {
    /// The certificate, PEM encoded (`-----BEGIN CERTIFICATE-----`).
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM encoded (`-----BEGIN PRIVATE KEY-----`).
    pub key_pem: String,
    /// The certificate, DER encoded.
    pub cert_der: CertificateDer<'static>,
    /// The private key, PKCS#8 DER encoded.
    pub key_der: PrivateKeyDer<'static>,
}

impl Clone for CertKey {
    fn clone(&self) -> Self {
        CertKey {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
            cert_der: self.cert_der.clone(),
            key_der: self.key_der.clone_key(),
        }
    }
}

impl CertKey {
    fn from_rcgen(cert: &Certificate, key: &KeyPair) -> CertKey {
        CertKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    /// Writes `<dir>/<name>.pem` (certificate) and `<dir>/<name>-key.pem`
    /// (private key, mode 0600 on Unix) and returns their paths.
    pub fn write_pem_files(
        &self,
        dir: &Path,
        name: &str,
    ) -> io::Result<(std::path::PathBuf, std::path::PathBuf)> {
        let cert_path = dir.join(format!("{name}.pem"));
        let key_path = dir.join(format!("{name}-key.pem"));
        fs::write(&cert_path, &self.cert_pem)?;
        fs::write(&key_path, &self.key_pem)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600))?;
        }
        Ok((cert_path, key_path))
    }
}

/// A generated CA and leaf certificates; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The trusted CA certificate, PEM encoded. Clients under test trust this.
    pub ca_pem: String,
    /// The trusted CA certificate, DER encoded.
    pub ca_der: CertificateDer<'static>,
    /// The untrusted CA that signed [`TestPki::unknown_ca`], PEM encoded.
    pub other_ca_pem: String,
    /// The untrusted CA that signed [`TestPki::unknown_ca`], DER encoded.
    pub other_ca_der: CertificateDer<'static>,
    /// Valid server certificate for `localhost`, `127.0.0.1` and `::1`.
    pub server: CertKey,
    /// Certificate signed by the trusted CA, valid only for `wrong.example`.
    pub wrong_host: CertKey,
    /// Certificate for localhost signed by the trusted CA whose validity ended in 2001.
    pub expired: CertKey,
    /// Certificate for localhost signed by a CA the client does not trust.
    pub unknown_ca: CertKey,
    /// Self-signed certificate for localhost.
    pub self_signed: CertKey,
    /// Certificate for localhost whose issuer has the trusted CA's name but
    /// another key: what a client trusting the CA meets when the server's
    /// certificate comes from another CA of the same name (a CA file out of
    /// date, a snakeoil certificate of the same subject).
    pub impostor: CertKey,
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

fn ca(common_name: &str) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().expect("rcgen: generate CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("rcgen: CA params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "pop3 test-support");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("rcgen: self-sign CA");
    (cert, key)
}

fn leaf_params(common_name: &str, sans: &[&str]) -> CertificateParams {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("rcgen: leaf params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params
}

fn leaf_signed(params: CertificateParams, issuer: &Certificate, issuer_key: &KeyPair) -> CertKey {
    let key = KeyPair::generate().expect("rcgen: generate leaf key");
    let cert = params
        .signed_by(&key, issuer, issuer_key)
        .expect("rcgen: sign leaf");
    CertKey::from_rcgen(&cert, &key)
}

/// A self-signed server certificate whose subject (common name and
/// organisation) is `hostile` verbatim and whose DNS names are `localhost`
/// and `dns`: certificate text a hostile server chooses, to test that it is
/// shown safely.
pub fn certificate_named(hostile: &str, dns: &str) -> CertKey {
    let key = KeyPair::generate().expect("rcgen: generate key");
    let mut params = leaf_params(hostile, &["localhost"]);
    params
        .distinguished_name
        .push(DnType::OrganizationName, hostile);
    let dns = rcgen::Ia5String::try_from(dns.to_owned()).expect("rcgen: an IA5 DNS name");
    params.subject_alt_names.push(rcgen::SanType::DnsName(dns));
    let cert = params.self_signed(&key).expect("rcgen: self-sign");
    CertKey::from_rcgen(&cert, &key)
}

/// A server's self-signed certificate as `openssl req -x509` makes it
/// (CA:TRUE, no key usage) for `shared.example`, and a certificate for
/// `localhost` signed with that server's key: what the holder of that key
/// could forge if a CA file that holds its certificate made it an
/// authority. With `subject_alt_name` the host is named as `-addext
/// subjectAltName=DNS:shared.example` names it; without, by the common
/// name alone, as `-subj /CN=shared.example` does.
pub fn self_signed_server_and_forgery(subject_alt_name: bool) -> (CertKey, CertKey) {
    let key = KeyPair::generate().expect("rcgen: generate server key");
    let sans: &[&str] = if subject_alt_name {
        &["shared.example"]
    } else {
        &[]
    };
    let mut params = leaf_params("shared.example", sans);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = Vec::new();
    params.extended_key_usages = Vec::new();
    let cert = params.self_signed(&key).expect("rcgen: self-sign server");
    let forged = leaf_signed(leaf_params("localhost", &LOCALHOST_SANS), &cert, &key);
    (CertKey::from_rcgen(&cert, &key), forged)
}

impl TestPki {
    /// Generates a fresh CA and all leaf certificates. Panics if rcgen fails
    /// (which it does not for these fixed parameters).
    pub fn new() -> TestPki {
        let (ca_cert, ca_key) = ca("pop3 test-support trusted CA");
        let (other_cert, other_key) = ca("pop3 test-support UNTRUSTED CA");

        let server = leaf_signed(leaf_params("localhost", &LOCALHOST_SANS), &ca_cert, &ca_key);
        let wrong_host = leaf_signed(
            leaf_params("wrong.example", &["wrong.example"]),
            &ca_cert,
            &ca_key,
        );
        let mut expired_params = leaf_params("localhost (expired)", &LOCALHOST_SANS);
        expired_params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        expired_params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let expired = leaf_signed(expired_params, &ca_cert, &ca_key);
        let unknown_ca = leaf_signed(
            leaf_params("localhost (unknown CA)", &LOCALHOST_SANS),
            &other_cert,
            &other_key,
        );
        let self_signed = {
            let key = KeyPair::generate().expect("rcgen: generate self-signed key");
            let cert = leaf_params("localhost (self-signed)", &LOCALHOST_SANS)
                .self_signed(&key)
                .expect("rcgen: self-sign leaf");
            CertKey::from_rcgen(&cert, &key)
        };

        let (namesake_cert, namesake_key) = ca("pop3 test-support trusted CA");
        let impostor = leaf_signed(
            leaf_params("localhost", &LOCALHOST_SANS),
            &namesake_cert,
            &namesake_key,
        );

        TestPki {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            other_ca_pem: other_cert.pem(),
            other_ca_der: other_cert.der().clone(),
            server,
            wrong_host,
            expired,
            unknown_ca,
            self_signed,
            impostor,
        }
    }

    /// One PKI per process, generated on first use.
    pub fn shared() -> &'static TestPki {
        static SHARED: OnceLock<TestPki> = OnceLock::new();
        SHARED.get_or_init(TestPki::new)
    }

    /// A root store containing only the trusted CA.
    pub fn root_store(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca_der.clone())
            .expect("test CA is a valid trust anchor");
        roots
    }

    /// A rustls client configuration (the transports' crypto provider, safe default protocol
    /// versions, no client auth) that trusts only the test CA.
    pub fn rustls_client_config(&self) -> Arc<rustls::ClientConfig> {
        let config = rustls::ClientConfig::builder_with_provider(pop3_transport::crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("the crypto provider supports the default protocol versions")
            .with_root_certificates(self.root_store())
            .with_no_client_auth();
        Arc::new(config)
    }

    /// Writes every certificate and key as PEM into `dir` (which must exist):
    ///
    /// * `ca.pem` — the trusted CA; `other-ca.pem` — the untrusted CA
    /// * `server.pem` / `server-key.pem`
    /// * `wrong-host.pem` / `wrong-host-key.pem`
    /// * `expired.pem` / `expired-key.pem`
    /// * `unknown-ca.pem` / `unknown-ca-key.pem`
    /// * `self-signed.pem` / `self-signed-key.pem`
    pub fn write_pem_files(&self, dir: &Path) -> io::Result<()> {
        fs::write(dir.join("ca.pem"), &self.ca_pem)?;
        fs::write(dir.join("other-ca.pem"), &self.other_ca_pem)?;
        for (name, ck) in [
            ("server", &self.server),
            ("wrong-host", &self.wrong_host),
            ("expired", &self.expired),
            ("unknown-ca", &self.unknown_ca),
            ("self-signed", &self.self_signed),
        ] {
            ck.write_pem_files(dir, name)?;
        }
        Ok(())
    }
}

impl CertKey {
    /// A certificate and key from PEM text (the first `CERTIFICATE` block and
    /// the first private key).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> io::Result<CertKey> {
        let invalid = |what: &str, e: rustls_pki_types::pem::Error| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
        };
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| invalid("certificate PEM", e))?;
        let key_der =
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| invalid("key PEM", e))?;
        Ok(CertKey {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            cert_der,
            key_der,
        })
    }
}

/// Runs `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=<common_name>
/// -days 30` in a fresh temporary directory and reads back the certificate
/// and key it wrote. The certificate is self-signed, carries
/// `basicConstraints CA:TRUE` and no subject alternative names, and is valid
/// from now for 30 days.
pub fn openssl_self_signed(common_name: &str) -> io::Result<CertKey> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "pop3-openssl-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir)?;
    let result = run_openssl_req(&dir, common_name);
    let _ = fs::remove_dir_all(&dir);
    result
}

fn run_openssl_req(dir: &Path, common_name: &str) -> io::Result<CertKey> {
    let (cert_path, key_path): (PathBuf, PathBuf) = (dir.join("cert.pem"), dir.join("key.pem"));
    let output = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .arg("-subj")
        .arg(format!("/CN={common_name}"))
        .arg("-keyout")
        .arg(&key_path)
        .arg("-out")
        .arg(&cert_path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot run openssl ({e}); install it with `apt-get install openssl`"),
            )
        })?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "openssl req -x509 failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    CertKey::from_pem(
        &fs::read_to_string(&cert_path)?,
        &fs::read_to_string(&key_path)?,
    )
}

/// Self-signed `CA:TRUE` certificates without subject alternative names, as
/// `openssl req -x509` makes them; see the [module docs](self).
///
/// | field | made by | common name | valid |
/// |---|---|---|---|
/// | [`HomemadeCerts::localhost`] | `openssl req -x509` | `localhost` | now + 30 days |
/// | [`HomemadeCerts::other_localhost`] | `openssl req -x509` (another key) | `localhost` | now + 30 days |
/// | [`HomemadeCerts::wrong_host`] | `openssl req -x509` | `wrong.example` | now + 30 days |
/// | [`HomemadeCerts::expired`] | rcgen, same shape (OpenSSL 3.0's `req` cannot back-date) | `localhost` | 2000-01-01 .. 2001-01-01 |
#[derive(Debug, Clone)]
pub struct HomemadeCerts {
    /// The usual home-server certificate for `localhost`.
    pub localhost: CertKey,
    /// A second, unrelated certificate for `localhost`.
    pub other_localhost: CertKey,
    /// The same kind of certificate, for `wrong.example`.
    pub wrong_host: CertKey,
    /// The same kind of certificate for `localhost`, expired in 2001.
    pub expired: CertKey,
}

impl HomemadeCerts {
    /// Makes all four (about a second: three RSA keys).
    pub fn new() -> io::Result<HomemadeCerts> {
        Ok(HomemadeCerts {
            localhost: openssl_self_signed("localhost")?,
            other_localhost: openssl_self_signed("localhost")?,
            wrong_host: openssl_self_signed("wrong.example")?,
            expired: expired_self_signed_ca("localhost"),
        })
    }

    /// One set per process, made on first use. Panics (in every caller) if
    /// `openssl` fails.
    pub fn shared() -> &'static HomemadeCerts {
        static SHARED: OnceLock<Result<HomemadeCerts, String>> = OnceLock::new();
        match SHARED.get_or_init(|| HomemadeCerts::new().map_err(|e| e.to_string())) {
            Ok(certs) => certs,
            Err(e) => panic!("could not make the openssl test certificates: {e}"),
        }
    }
}

/// A self-signed `CA:TRUE` certificate with only a common name, valid
/// 2000-01-01 .. 2001-01-01.
fn expired_self_signed_ca(common_name: &str) -> CertKey {
    let key = KeyPair::generate().expect("rcgen: generate key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("rcgen: params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let cert = params.self_signed(&key).expect("rcgen: self-sign");
    CertKey::from_rcgen(&cert, &key)
}

/// A rustls server configuration presenting `cert` (without chain), using the
/// transports' crypto provider explicitly and rustls' safe default protocol versions
/// (TLS 1.2 and 1.3), without client authentication.
pub fn rustls_server_config(cert: &CertKey) -> Arc<rustls::ServerConfig> {
    let config = rustls::ServerConfig::builder_with_provider(pop3_transport::crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("the crypto provider supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert_der.clone()], cert.key_der.clone_key())
        .expect("generated certificate and key match");
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{ClientConnection, ServerConnection};
    use rustls_pki_types::ServerName;

    /// Runs an in-memory handshake and returns the client's error, if any.
    fn handshake(pki: &TestPki, cert: &CertKey, name: &str) -> Result<(), rustls::Error> {
        let server_name = ServerName::try_from(name.to_string()).expect("valid server name");
        let mut client = ClientConnection::new(pki.rustls_client_config(), server_name)?;
        let mut server = ServerConnection::new(rustls_server_config(cert))?;
        for _ in 0..20 {
            let mut buf = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut buf).expect("write to vec");
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).expect("read from slice");
            }
            if let Err(e) = server.process_new_packets() {
                // Deliver the alert, then surface the server's view.
                let mut alert = Vec::new();
                let _ = server.write_tls(&mut alert);
                return Err(e);
            }
            let mut buf = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut buf).expect("write to vec");
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).expect("read from slice");
            }
            client.process_new_packets()?;
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        panic!("handshake did not finish");
    }

    #[test]
    fn server_cert_is_valid_for_all_loopback_names() {
        let pki = TestPki::shared();
        for name in LOCALHOST_SANS {
            handshake(pki, &pki.server, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn bad_certs_fail_with_the_intended_error() {
        use rustls::{CertificateError, Error};
        let pki = TestPki::shared();
        let err = handshake(pki, &pki.wrong_host, "localhost").expect_err("wrong host");
        assert!(
            matches!(
                err,
                Error::InvalidCertificate(CertificateError::NotValidForName)
                    | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
            ),
            "{err:?}"
        );
        let err = handshake(pki, &pki.expired, "localhost").expect_err("expired");
        assert!(
            matches!(
                err,
                Error::InvalidCertificate(CertificateError::Expired)
                    | Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
            ),
            "{err:?}"
        );
        for (what, ck) in [
            ("unknown CA", &pki.unknown_ca),
            ("self-signed", &pki.self_signed),
        ] {
            let err = handshake(pki, ck, "localhost").expect_err(what);
            assert!(
                matches!(
                    err,
                    Error::InvalidCertificate(CertificateError::UnknownIssuer)
                ),
                "{what}: {err:?}"
            );
        }
        // The wrong_host certificate is fine for its own name.
        handshake(pki, &pki.wrong_host, "wrong.example").expect("wrong.example");
    }

    #[test]
    fn pem_and_der_agree_and_files_are_written() {
        let pki = TestPki::new();
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki
            .server
            .key_pem
            .starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_ne!(pki.ca_der, pki.other_ca_der);
        let dir = std::env::temp_dir().join(format!("pki-test-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        pki.write_pem_files(&dir).expect("write");
        for f in [
            "ca.pem",
            "other-ca.pem",
            "server.pem",
            "server-key.pem",
            "wrong-host.pem",
            "expired-key.pem",
            "unknown-ca.pem",
            "self-signed-key.pem",
        ] {
            assert!(dir.join(f).is_file(), "{f}");
        }
        assert_eq!(
            fs::read_to_string(dir.join("server.pem")).expect("read"),
            pki.server.cert_pem
        );
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn homemade_certificates_have_the_openssl_shape() {
        let certs = HomemadeCerts::shared();
        assert_ne!(certs.localhost.cert_der, certs.other_localhost.cert_der);
        for cert in [&certs.localhost, &certs.wrong_host] {
            assert!(cert.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            // A usable rustls server certificate despite CA:TRUE.
            let _ = rustls_server_config(cert);
        }
        // rustls refuses a CA certificate as a server's own certificate, even
        // when it is the trust anchor itself: the case the client must handle.
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(certs.localhost.cert_der.clone())
            .expect("a CA:TRUE certificate is a valid anchor");
        let config = rustls::ClientConfig::builder_with_provider(pop3_transport::crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server_name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let mut client = ClientConnection::new(Arc::new(config), server_name).expect("client");
        let mut server =
            ServerConnection::new(rustls_server_config(&certs.localhost)).expect("server");
        let mut error = None;
        for _ in 0..10 {
            let mut buf = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut buf).expect("write");
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).expect("read");
            }
            if server.process_new_packets().is_err() {
                break;
            }
            let mut buf = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut buf).expect("write");
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).expect("read");
            }
            if let Err(e) = client.process_new_packets() {
                error = Some(e);
                break;
            }
        }
        let error = error.expect("rustls alone must refuse it");
        assert!(
            format!("{error:?}").contains("CaUsedAsEndEntity"),
            "{error:?}"
        );
    }
}
