//! Reading certificates: SHA-256 fingerprints and a plain summary of a
//! certificate for people ([`CertificateInfo`]).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use rustls::CertificateError;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use pop3_proto::Text;

use crate::{Error, Result};

/// The SHA-256 digest of a certificate's DER encoding, the form `openssl x509
/// -fingerprint -sha256` and mpop's `tls_fingerprint` use.
///
/// Parse one with [`str::parse`] (64 hex digits, with or without a colon
/// between each pair, any case) and pin it with
/// [`TlsOptions::pin_sha256`](crate::TlsOptions::pin_sha256). It prints as
/// upper-case pairs separated by colons.
///
/// ```
/// use pop3_transport::Sha256Fingerprint;
///
/// let colons = "AB:".repeat(31) + "CD";
/// let fingerprint: Sha256Fingerprint = colons.parse()?;
/// let bare: Sha256Fingerprint = colons.replace(':', "").to_lowercase().parse()?;
/// assert_eq!(fingerprint, bare);
/// assert_eq!(fingerprint.to_string(), colons);
/// # Ok::<(), pop3_transport::FingerprintError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Fingerprint([u8; 32]);

impl Sha256Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Sha256Fingerprint {
        use sha2::Digest;
        Sha256Fingerprint(sha2::Sha256::digest(der).into())
    }

    /// A fingerprint from its 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Sha256Fingerprint {
        Sha256Fingerprint(bytes)
    }

    /// The 32 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex digits, either bare or as 32 colon-separated pairs; upper
    /// or lower case; surrounding white space is ignored. The same as
    /// `text.parse()`.
    pub fn parse(text: &str) -> Result<Sha256Fingerprint, FingerprintError> {
        let text = text.trim();
        let mut digits = Vec::with_capacity(64);
        if text.contains(':') {
            // Colons must separate pairs exactly, so that a typo such as a
            // dropped digit cannot be hidden by a stray separator.
            for (index, pair) in text.split(':').enumerate() {
                if pair.chars().count() != 2 {
                    return Err(FingerprintError::Grouping { group: index + 1 });
                }
                digits.extend(pair.chars());
            }
        } else {
            digits.extend(text.chars());
        }
        if let Some((position, &found)) = digits
            .iter()
            .enumerate()
            .find(|(_, c)| !c.is_ascii_hexdigit())
        {
            return Err(FingerprintError::InvalidDigit {
                position: position + 1,
                found,
            });
        }
        if digits.len() != 64 {
            return Err(FingerprintError::Length {
                digits: digits.len(),
            });
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let high = pair[0].to_digit(16).unwrap_or(0);
            let low = pair[1].to_digit(16).unwrap_or(0);
            // Two hex digits always fit in a byte.
            *byte = u8::try_from(high * 16 + low).unwrap_or(0);
        }
        Ok(Sha256Fingerprint(bytes))
    }
}

impl FromStr for Sha256Fingerprint {
    type Err = FingerprintError;

    fn from_str(text: &str) -> Result<Sha256Fingerprint, FingerprintError> {
        Sha256Fingerprint::parse(text)
    }
}

impl fmt::Display for Sha256Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, byte) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Fingerprint({self})")
    }
}

/// Why a text is not a SHA-256 fingerprint; see [`Sha256Fingerprint::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FingerprintError {
    /// The text does not hold 64 hex digits.
    Length {
        /// How many digits it holds.
        digits: usize,
    },
    /// A character that is not a hex digit (colons excluded).
    InvalidDigit {
        /// Its position among the digits, from 1.
        position: usize,
        /// The character.
        found: char,
    },
    /// Colons are used, but not one between each pair of digits.
    Grouping {
        /// The colon-separated group (from 1) that is not two digits long.
        group: usize,
    },
}

impl fmt::Display for FingerprintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FingerprintError::Length { digits: 40 } => f.write_str(
                "a SHA-256 fingerprint has 64 hex digits; this one has 40, like a SHA-1 \
                 fingerprint (use `openssl x509 -noout -fingerprint -sha256`)",
            ),
            FingerprintError::Length { digits } => write!(
                f,
                "a SHA-256 fingerprint has 64 hex digits, this one has {digits}"
            ),
            FingerprintError::InvalidDigit { position, found } => write!(
                f,
                "a SHA-256 fingerprint holds hex digits only; digit {position} is {found:?}"
            ),
            FingerprintError::Grouping { group } => write!(
                f,
                "a SHA-256 fingerprint with colons has two hex digits between colons; \
                 group {group} has not"
            ),
        }
    }
}

impl std::error::Error for FingerprintError {}

/// What a certificate says about itself, for showing to people (as `pop3
/// serverinfo` does). Built from DER with [`CertificateInfo::from_der`];
/// nothing here is verified. The names are safe to print: control,
/// bidirectional and invisible characters are U+FFFD, as in the core's
/// [`Text`](pop3_proto::Text).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateInfo {
    /// The subject's distinguished name, e.g. `CN=localhost, O=Example`.
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// The subject's common names (`CN`). Host names are checked against them
    /// only when the certificate carries no subject alternative names.
    pub common_names: Vec<String>,
    /// The DNS names of the subject alternative name extension.
    pub dns_names: Vec<String>,
    /// The IP addresses of the subject alternative name extension.
    pub ip_addresses: Vec<IpAddr>,
    /// Start of validity, in seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, in seconds since the Unix epoch.
    pub not_after: i64,
    /// The serial number, as colon-separated hex pairs.
    pub serial: String,
    /// Whether basic constraints say `CA:TRUE`.
    pub is_ca: bool,
    /// Whether the certificate names itself as its issuer (subject equals
    /// issuer, and the key identifiers agree where both are present). The
    /// signature is not checked.
    pub self_signed: bool,
    /// The SHA-256 fingerprint of the DER encoding.
    pub sha256: Sha256Fingerprint,
}

impl CertificateInfo {
    /// Reads a DER-encoded X.509 certificate.
    ///
    /// Fails with [`Error::Tls`] holding
    /// `InvalidCertificate(CertificateError::BadEncoding)` if it cannot be
    /// parsed.
    pub fn from_der(der: &[u8]) -> Result<CertificateInfo> {
        let bad = || {
            Error::Tls(rustls::Error::InvalidCertificate(
                CertificateError::BadEncoding,
            ))
        };
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| bad())?;
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => dns_names.push(safe(dns)),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            ip_addresses.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(CertificateInfo {
            subject: safe(&cert.subject().to_string()),
            issuer: safe(&cert.issuer().to_string()),
            common_names: common_names(&cert),
            dns_names,
            ip_addresses,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            serial: hex_pairs(cert.raw_serial()),
            is_ca: cert
                .basic_constraints()
                .ok()
                .flatten()
                .is_some_and(|bc| bc.value.ca),
            self_signed: is_self_issued(&cert),
            sha256: Sha256Fingerprint::of(der),
        })
    }

    /// The names a host name is checked against: the subject alternative
    /// names (DNS names, then IP addresses), or, when there are none, the
    /// common names.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.dns_names.clone();
        names.extend(self.ip_addresses.iter().map(IpAddr::to_string));
        if names.is_empty() {
            names.clone_from(&self.common_names);
        }
        names
    }

    /// [`CertificateInfo::not_before`] as `YYYY-MM-DD hh:mm:ss UTC`.
    pub fn not_before_text(&self) -> String {
        format_unix_time(self.not_before)
    }

    /// [`CertificateInfo::not_after`] as `YYYY-MM-DD hh:mm:ss UTC`.
    pub fn not_after_text(&self) -> String {
        format_unix_time(self.not_after)
    }

    /// Whether `unix_seconds` lies within the validity period (both ends
    /// included).
    pub fn is_valid_at(&self, unix_seconds: i64) -> bool {
        (self.not_before..=self.not_after).contains(&unix_seconds)
    }
}

/// The subject's common names that are valid strings, safe to print.
pub(crate) fn common_names(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .map(safe)
        .collect()
}

/// Certificate text under the core's one rule for text from the other side
/// ([`Text::sanitize_str`]): whoever made the certificate chose every
/// character of its names, escape sequences and bidirectional overrides
/// included, and the names are printed (`pop3 serverinfo`, error messages).
/// No host name holds such a character, so none can match after this.
fn safe(text: &str) -> String {
    Text::sanitize_str(text).into_string()
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn hex_pairs(bytes: &[u8]) -> String {
    let pairs: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    pairs.join(":")
}

fn is_self_issued(cert: &X509Certificate<'_>) -> bool {
    if cert.subject().as_raw() != cert.issuer().as_raw() {
        return false;
    }
    let mut subject_key = None;
    let mut authority_key = None;
    for extension in cert.extensions() {
        match extension.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => subject_key = Some(id.0),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority_key = aki.key_identifier.as_ref().map(|id| id.0);
            }
            _ => {}
        }
    }
    match (subject_key, authority_key) {
        (Some(subject), Some(authority)) => subject == authority,
        _ => true,
    }
}

/// Seconds since the Unix epoch as `YYYY-MM-DD hh:mm:ss UTC` (proleptic
/// Gregorian calendar).
pub(crate) fn format_unix_time(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    let (year, month, day) = date_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

/// The civil date of a day count from 1970-01-01, counting in 400-year eras
/// (each exactly 146 097 days) that start on 1 March, so the leap day falls
/// at the end of an era year.
fn date_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The channel binding of a TLS connection, for SCRAM-PLUS (RFC 5802):
/// `tls-exporter` (RFC 9266) on TLS 1.3, `tls-server-end-point` (RFC 5929)
/// on TLS 1.2. `None` before the handshake, or when the certificate's
/// signature algorithm defines no single hash (Ed25519, say).
pub fn channel_binding(
    connection: &rustls::ClientConnection,
) -> Option<pop3_proto::sasl::ChannelBinding> {
    use pop3_proto::sasl::{ChannelBinding, TLS_EXPORTER_LABEL, TLS_EXPORTER_LENGTH};
    match connection.protocol_version()? {
        rustls::ProtocolVersion::TLSv1_3 => {
            let data = connection
                .export_keying_material(vec![0u8; TLS_EXPORTER_LENGTH], TLS_EXPORTER_LABEL, None)
                .ok()?;
            Some(ChannelBinding::tls_exporter(data))
        }
        _ => {
            // The signature algorithm is read by the core, the one place
            // every driver and binding shares.
            let cert = connection.peer_certificates()?.first()?;
            ChannelBinding::from_server_certificate(cert.as_ref())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";

    #[test]
    fn fingerprints_parse_with_and_without_colons() {
        let bare = Sha256Fingerprint::parse(HEX);
        let pairs: Vec<&str> = (0..32).map(|i| &HEX[2 * i..2 * i + 2]).collect();
        let colons = Sha256Fingerprint::parse(&pairs.join(":"));
        let upper = Sha256Fingerprint::parse(&format!("  {}\n", HEX.to_uppercase()));
        assert!(bare.is_ok());
        assert_eq!(bare, colons);
        assert_eq!(bare, upper);
        let fingerprint = bare.unwrap_or(Sha256Fingerprint([0; 32]));
        assert_eq!(fingerprint.as_bytes()[10], 0xaa);
        let shown = fingerprint.to_string();
        assert_eq!(shown.len(), 95);
        assert!(shown.starts_with("00:11:22:33:"));
        assert_eq!(shown.parse::<Sha256Fingerprint>(), Ok(fingerprint));
    }

    #[test]
    fn bad_fingerprints_are_typed_errors() {
        assert_eq!(
            Sha256Fingerprint::parse(&HEX[..62]),
            Err(FingerprintError::Length { digits: 62 })
        );
        assert_eq!(
            Sha256Fingerprint::parse(""),
            Err(FingerprintError::Length { digits: 0 })
        );
        assert!(
            Sha256Fingerprint::parse(&HEX[..40]).is_err_and(|e| e.to_string().contains("SHA-1"))
        );
        let mut wrong = HEX.to_string();
        wrong.replace_range(5..6, "g");
        assert_eq!(
            Sha256Fingerprint::parse(&wrong),
            Err(FingerprintError::InvalidDigit {
                position: 6,
                found: 'g'
            })
        );
        assert_eq!(
            Sha256Fingerprint::parse("001:12:23"),
            Err(FingerprintError::Grouping { group: 1 })
        );
        assert_eq!(
            Sha256Fingerprint::parse(&format!("{}:", &HEX[..2])),
            Err(FingerprintError::Grouping { group: 2 })
        );
        assert!(Sha256Fingerprint::parse(&"é".repeat(64)).is_err());
        assert_eq!(
            Sha256Fingerprint::parse(&format!("SHA256:{HEX}")),
            Err(FingerprintError::Grouping { group: 1 })
        );
    }

    #[test]
    fn fingerprint_of_known_input() {
        // The SHA-256 of the empty string, a published test vector.
        assert_eq!(
            Sha256Fingerprint::of(b"").to_string().replace(':', ""),
            "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
        );
    }

    #[test]
    fn unix_times_format_as_dates() {
        assert_eq!(format_unix_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_unix_time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_unix_time(978_307_199), "2000-12-31 23:59:59 UTC");
        assert_eq!(format_unix_time(4_102_444_800), "2100-01-01 00:00:00 UTC");
        assert_eq!(format_unix_time(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn certificate_info_reads_the_test_certificates() {
        let pki = crate::test_certificates::shared();
        let info = CertificateInfo::from_der(&pki.server.cert_der);
        let Ok(info) = info else {
            panic!("the test server certificate must parse: {info:?}");
        };
        assert_eq!(info.subject, "CN=localhost");
        assert!(info.issuer.contains("trusted CA"), "{}", info.issuer);
        assert_eq!(info.dns_names, ["localhost"]);
        assert_eq!(info.ip_addresses.len(), 2);
        assert_eq!(info.names(), ["localhost", "127.0.0.1", "::1"]);
        assert!(!info.is_ca && !info.self_signed);
        assert_eq!(info.sha256, Sha256Fingerprint::of(&pki.server.cert_der));
        assert!(info.not_before < info.not_after);

        let expired = CertificateInfo::from_der(&pki.expired.cert_der);
        let Ok(expired) = expired else {
            panic!("the expired certificate must parse: {expired:?}");
        };
        assert_eq!(expired.not_before_text(), "2000-01-01 00:00:00 UTC");
        assert_eq!(expired.not_after_text(), "2001-01-01 00:00:00 UTC");
        assert!(!expired.is_valid_at(1_700_000_000) && expired.is_valid_at(970_000_000));
        let ca = CertificateInfo::from_der(&pki.ca_der);
        assert!(ca.is_ok_and(|ca| ca.is_ca && ca.self_signed));
        let own = CertificateInfo::from_der(&pki.self_signed.cert_der);
        assert!(own.is_ok_and(|own| own.self_signed && !own.is_ca));
        assert!(matches!(
            CertificateInfo::from_der(b"not a certificate"),
            Err(Error::Tls(rustls::Error::InvalidCertificate(
                CertificateError::BadEncoding
            )))
        ));
    }
}
