//! Channel-binding data for the `SCRAM-*-PLUS` mechanisms (RFC 5056, RFC 5802
//! section 6).
//!
//! Channel binding ties a SASL exchange to the TLS connection it runs over, so
//! a machine in the middle that terminates TLS with the client and opens its own
//! TLS connection to the server cannot relay the exchange: the two TLS
//! connections give different binding data, and the server refuses the proof.
//!
//! The core has no TLS, so the transport obtains the data and hands it over in a
//! [`ChannelBinding`]:
//!
//! - **`tls-exporter`** (RFC 9266), for TLS 1.3: the keying-material exporter
//!   (RFC 5705) with the label [`TLS_EXPORTER_LABEL`], an empty context and
//!   [`TLS_EXPORTER_LENGTH`] bytes of output. With rustls this is
//!   `export_keying_material(&mut [0; 32], b"EXPORTER-Channel-Binding", Some(&[]))`
//!   once the handshake is complete.
//! - **`tls-server-end-point`** (RFC 5929 section 4), for TLS 1.2: a hash of the
//!   server's end-entity certificate, exactly as received (DER). The hash is the
//!   one the certificate's signature algorithm uses, except that MD5 and SHA-1
//!   are replaced by SHA-256. Finding that algorithm means reading the
//!   certificate's `signatureAlgorithm`: [`certificate_signature_hash`] does
//!   (for every binding: C, Python), and [`tls_server_end_point_hash`] computes
//!   the data from the DER bytes and the hash it names;
//!   [`ChannelBinding::from_server_certificate`] does both. Certificates signed without a separate hash (Ed25519,
//!   Ed448) have no `tls-server-end-point` binding; use `tls-exporter` with them.
//!
//! `tls-exporter` is only unique per connection on TLS 1.3 (or TLS 1.2 with the
//! extended master secret), which is why TLS 1.2 falls back to
//! `tls-server-end-point`.

use alloc::vec::Vec;
use core::fmt;

use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

/// The exporter label of the `tls-exporter` binding (RFC 9266), without a
/// terminating NUL.
pub const TLS_EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// How many bytes of keying material the `tls-exporter` binding uses (RFC 9266).
pub const TLS_EXPORTER_LENGTH: usize = 32;

/// A channel-binding type (the registry of RFC 5056), as SCRAM names it in the
/// GS2 header (`p=<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChannelBindingKind {
    /// `tls-exporter` (RFC 9266): exported keying material; for TLS 1.3.
    TlsExporter,
    /// `tls-server-end-point` (RFC 5929): a hash of the server's certificate;
    /// for TLS 1.2.
    TlsServerEndPoint,
}

impl ChannelBindingKind {
    /// The registered name, as sent in the GS2 header: `"tls-exporter"` or
    /// `"tls-server-end-point"`.
    pub fn name(self) -> &'static str {
        match self {
            ChannelBindingKind::TlsExporter => "tls-exporter",
            ChannelBindingKind::TlsServerEndPoint => "tls-server-end-point",
        }
    }
}

impl fmt::Display for ChannelBindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The channel-binding data of one TLS connection, as the transport obtained it.
///
/// `Debug` shows the kind and the length only: `tls-exporter` data is derived
/// from the connection's secrets and has no business in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelBinding {
    /// Which binding type `data` belongs to.
    pub kind: ChannelBindingKind,
    /// The binding data (`cbind-data` of RFC 5802), never empty.
    pub data: Vec<u8>,
}

impl ChannelBinding {
    /// A `tls-exporter` binding from the 32 bytes the TLS exporter produced.
    pub fn tls_exporter(data: Vec<u8>) -> Self {
        ChannelBinding {
            kind: ChannelBindingKind::TlsExporter,
            data,
        }
    }

    /// A `tls-server-end-point` binding from the certificate hash (see
    /// [`tls_server_end_point_hash`]).
    pub fn tls_server_end_point(data: Vec<u8>) -> Self {
        ChannelBinding {
            kind: ChannelBindingKind::TlsServerEndPoint,
            data,
        }
    }

    /// The `tls-server-end-point` binding of the server's end-entity
    /// certificate `cert_der` (DER, exactly as received), or None when its
    /// signature algorithm names no hash this crate knows (Ed25519, RSASSA-PSS,
    /// a malformed certificate).
    pub fn from_server_certificate(cert_der: &[u8]) -> Option<Self> {
        let hash = certificate_signature_hash(cert_der)?;
        Some(Self::tls_server_end_point(tls_server_end_point_hash(
            cert_der, hash,
        )))
    }
}

impl fmt::Debug for ChannelBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelBinding")
            .field("kind", &self.kind)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// The hash function named by a certificate's signature algorithm, for
/// [`tls_server_end_point_hash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashKind {
    /// MD5 (as in `md5WithRSAEncryption`); replaced by SHA-256.
    Md5,
    /// SHA-1 (as in `sha1WithRSAEncryption`, `ecdsa-with-SHA1`); replaced by SHA-256.
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256 (as in `sha256WithRSAEncryption`, `ecdsa-with-SHA256`).
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// The `tls-server-end-point` binding data (RFC 5929 section 4.1): the hash of
/// the server certificate `cert_der` (the end-entity certificate exactly as the
/// server sent it), with the hash function `sig_hash` of the certificate's
/// signature algorithm — SHA-256 when that is MD5 or SHA-1.
///
/// ```
/// use pop3_proto::sasl::{tls_server_end_point_hash, HashKind};
///
/// let cert_der = b"not really a certificate";
/// // A SHA-1-signed certificate is hashed with SHA-256, like a SHA-256-signed one.
/// assert_eq!(
///     tls_server_end_point_hash(cert_der, HashKind::Sha1),
///     tls_server_end_point_hash(cert_der, HashKind::Sha256),
/// );
/// assert_eq!(tls_server_end_point_hash(cert_der, HashKind::Sha384).len(), 48);
/// ```
pub fn tls_server_end_point_hash(cert_der: &[u8], sig_hash: HashKind) -> Vec<u8> {
    match sig_hash {
        HashKind::Md5 | HashKind::Sha1 | HashKind::Sha256 => Sha256::digest(cert_der).to_vec(),
        HashKind::Sha224 => Sha224::digest(cert_der).to_vec(),
        HashKind::Sha384 => Sha384::digest(cert_der).to_vec(),
        HashKind::Sha512 => Sha512::digest(cert_der).to_vec(),
    }
}

/// One DER element: its tag, its contents and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

/// The hash function of a certificate's `signatureAlgorithm` (RFC 5280:
/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, ... }`),
/// read from its DER, for [`tls_server_end_point_hash`]: RSA PKCS #1 v1.5
/// and ECDSA with MD5, SHA-1 or SHA-2. None for anything else (Ed25519 has
/// no separate hash; RSASSA-PSS names it in parameters not read here) and
/// for bytes that are no certificate. The one place every binding finds it.
pub fn certificate_signature_hash(cert_der: &[u8]) -> Option<HashKind> {
    const SEQUENCE: u8 = 0x30;
    const OID: u8 = 0x06;
    let (SEQUENCE, certificate, _) = der_element(cert_der)? else {
        return None;
    };
    let (SEQUENCE, _, rest) = der_element(certificate)? else {
        return None;
    };
    let (SEQUENCE, algorithm, _) = der_element(rest)? else {
        return None;
    };
    let (OID, oid, _) = der_element(algorithm)? else {
        return None;
    };
    // 1.2.840.113549.1.1.x (PKCS #1) and 1.2.840.10045.4.x (ECDSA).
    const PKCS1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];
    if let Some(last) = oid.strip_prefix(PKCS1) {
        return match last {
            [0x04] => Some(HashKind::Md5),
            [0x05] => Some(HashKind::Sha1),
            [0x0b] => Some(HashKind::Sha256),
            [0x0c] => Some(HashKind::Sha384),
            [0x0d] => Some(HashKind::Sha512),
            [0x0e] => Some(HashKind::Sha224),
            _ => None,
        };
    }
    match oid.strip_prefix(ECDSA)? {
        [0x01] => Some(HashKind::Sha1),
        [0x03, 0x01] => Some(HashKind::Sha224),
        [0x03, 0x02] => Some(HashKind::Sha256),
        [0x03, 0x03] => Some(HashKind::Sha384),
        [0x03, 0x04] => Some(HashKind::Sha512),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    /// A certificate's outline: the three elements of `Certificate`, with
    /// only the signature algorithm's OID filled in.
    fn outline(oid: &[u8]) -> Vec<u8> {
        let mut algorithm = alloc::vec![0x06, oid.len() as u8];
        algorithm.extend_from_slice(oid);
        algorithm.extend_from_slice(&[0x05, 0x00]);
        let mut inner = alloc::vec![0x30, 0x03, 0x02, 0x01, 0x01, 0x30, algorithm.len() as u8];
        inner.extend_from_slice(&algorithm);
        inner.extend_from_slice(&[0x03, 0x01, 0x00]);
        let mut cert = alloc::vec![0x30, 0x81, inner.len() as u8];
        cert.extend_from_slice(&inner);
        cert
    }

    #[test]
    fn signature_hash_from_the_certificate() {
        let pkcs1 = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
        for (last, kind) in [
            (0x04, HashKind::Md5),
            (0x05, HashKind::Sha1),
            (0x0b, HashKind::Sha256),
            (0x0c, HashKind::Sha384),
            (0x0d, HashKind::Sha512),
            (0x0e, HashKind::Sha224),
        ] {
            let mut oid = pkcs1.to_vec();
            oid.push(last);
            assert_eq!(certificate_signature_hash(&outline(&oid)), Some(kind));
        }
        let ecdsa_sha384 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
        assert_eq!(
            certificate_signature_hash(&outline(&ecdsa_sha384)),
            Some(HashKind::Sha384)
        );
        // Ed25519 (1.3.101.112) and RSASSA-PSS have no hash to read here.
        assert_eq!(
            certificate_signature_hash(&outline(&[0x2b, 0x65, 0x70])),
            None
        );
        let mut pss = pkcs1.to_vec();
        pss.push(0x0a);
        assert_eq!(certificate_signature_hash(&outline(&pss)), None);
        let good = outline(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
        // Every truncation is refused, never a panic.
        for end in 0..good.len() {
            assert_eq!(certificate_signature_hash(&good[..end]), None, "{end}");
        }
        let binding = ChannelBinding::from_server_certificate(&good).expect("ECDSA SHA-256");
        assert_eq!(binding.kind, ChannelBindingKind::TlsServerEndPoint);
        assert_eq!(binding.data, Sha256::digest(&good).to_vec());
    }

    #[test]
    fn names() {
        assert_eq!(ChannelBindingKind::TlsExporter.name(), "tls-exporter");
        assert_eq!(
            format!("{}", ChannelBindingKind::TlsServerEndPoint),
            "tls-server-end-point"
        );
    }

    #[test]
    fn debug_hides_the_data() {
        let b = ChannelBinding::tls_exporter(alloc::vec![0xAB; 32]);
        let dbg = format!("{b:?}");
        assert!(dbg.contains("TlsExporter") && dbg.contains("32"), "{dbg}");
        assert!(
            !dbg.contains("171") && !dbg.to_lowercase().contains("ab,"),
            "{dbg}"
        );
    }

    #[test]
    fn end_point_hash_lengths_and_known_answer() {
        // SHA-256("abc") from FIPS 180-2.
        let abc = tls_server_end_point_hash(b"abc", HashKind::Md5);
        assert_eq!(
            abc[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "MD5-signed certificates are hashed with SHA-256"
        );
        for (kind, len) in [
            (HashKind::Md5, 32),
            (HashKind::Sha1, 32),
            (HashKind::Sha224, 28),
            (HashKind::Sha256, 32),
            (HashKind::Sha384, 48),
            (HashKind::Sha512, 64),
        ] {
            assert_eq!(tls_server_end_point_hash(b"x", kind).len(), len, "{kind:?}");
        }
    }
}
