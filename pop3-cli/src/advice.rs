//! A TLS failure in the command's words: the library gives the facts
//! ([`TlsDiagnosis`]), this says what they mean and which option of `pop3`
//! would help.

use pop3_transport::{CertificateInfo, TlsDiagnosis, UtcTime};

/// What went wrong and what would fix it, in plain words.
pub(crate) fn tls_advice(diagnosis: &TlsDiagnosis) -> String {
    match diagnosis {
        TlsDiagnosis::UnknownIssuer { presented } => match presented {
            Some(cert) if cert.self_signed => format!(
                "the server's certificate is self-signed (\"{}\") and is not one this client \
                 was told to trust. {}",
                cert.subject,
                how_to_trust(presented.as_ref())
            ),
            _ => {
                let issuer = presented
                    .as_ref()
                    .map_or_else(String::new, |c| format!(" (\"{}\")", c.issuer));
                format!(
                    "the server's certificate was issued by an authority this client does not \
                     trust{issuer}; a self-signed certificate fails this way too. {}",
                    how_to_trust(presented.as_ref())
                )
            }
        },
        TlsDiagnosis::CaUsedAsEndEntity { presented } => format!(
            "the server's certificate is a CA certificate (basicConstraints CA:TRUE, as \
             `openssl req -x509` makes) used as a server's own certificate, which is \
             accepted only when that exact certificate is trusted. {}",
            how_to_trust(presented.as_ref())
        ),
        TlsDiagnosis::Expired { not_after, now } => format!(
            "the server's certificate expired{}. Its administrator must renew it; if the \
             date here is wrong, correct this computer's clock.",
            when(" on", *not_after, *now)
        ),
        TlsDiagnosis::NotValidYet { not_before, now } => format!(
            "the server's certificate is not valid{}. Check this computer's clock.",
            when(" before", *not_before, *now)
        ),
        TlsDiagnosis::NameMismatch {
            expected,
            presented,
        } => {
            let expected = expected
                .as_ref()
                .map_or_else(String::new, |name| format!(" \"{name}\""));
            let carried = if presented.is_empty() {
                "it carries no host name".to_owned()
            } else {
                format!("it is valid for {}", presented.join(", "))
            };
            format!(
                "the server's certificate is not valid for the name{expected}: {carried}. \
                 Connect with one of the names it carries, or check the certificate against \
                 one of them with --tls-server-name NAME (config key tls_server_name), or ask \
                 the server's administrator for a certificate with the right name."
            )
        }
        TlsDiagnosis::PinMismatch { presented, pinned } => {
            let pinned: Vec<String> = pinned.iter().map(ToString::to_string).collect();
            format!(
                "the server's certificate has SHA-256 fingerprint {presented}, not the pinned \
                 {}. If the server's certificate was replaced on purpose, check the new \
                 fingerprint with its administrator and pin that one with --tls-fingerprint \
                 (config key tls_fingerprint); otherwise someone may be \
                 intercepting the connection.",
                pinned.join(" or ")
            )
        }
        TlsDiagnosis::UnsupportedCriticalExtension => "the server's certificate has a critical \
            extension this client does not understand, so it cannot be accepted."
            .to_owned(),
        TlsDiagnosis::NotSignedByTrusted { presented } => {
            let fingerprint = presented.as_ref().map_or_else(String::new, |c| {
                format!(" (SHA-256 fingerprint {})", c.sha256)
            });
            format!(
                "the server's certificate{fingerprint} names a trusted certificate as its \
                 issuer, but that one did not sign it. Most likely the server presents \
                 another certificate than the one trusted for it: a renewed certificate, the \
                 wrong file given with --ca-file, or an unrelated trusted certificate of the \
                 same name (such as Debian's snakeoil certificate for localhost). Compare the \
                 fingerprint with the server's administrator, then trust the new certificate \
                 with --ca-file FILE or pin it with --tls-fingerprint (config keys ca_file and \
                 tls_fingerprint); a forged certificate fails this way too."
            )
        }
        TlsDiagnosis::Revoked => "the server's certificate has been revoked by its issuer. Its \
            administrator must replace it."
            .to_owned(),
        TlsDiagnosis::NotForServers => "the server's certificate is not meant for TLS servers \
            (its extended key usage does not include serverAuth)."
            .to_owned(),
        TlsDiagnosis::Malformed => "the server's certificate is malformed.".to_owned(),
        TlsDiagnosis::OtherCertificate(why) => {
            format!("the server's certificate was refused: {why}.")
        }
        TlsDiagnosis::NoCertificate => {
            "the server sent no certificate, so it cannot be verified.".to_owned()
        }
        TlsDiagnosis::NotTls(why) => format!(
            "the server did not answer with TLS ({why}). A port for plain POP3 (110) answers \
             this way: use pop3:// (--tls starttls) there, and pop3s:// (--tls implicit) on \
             the POP3S port (995)."
        ),
        TlsDiagnosis::Alert(alert) => format!(
            "the server ended the TLS handshake with the alert {alert}; its log may say why."
        ),
        TlsDiagnosis::Incompatible(why) => format!(
            "the server offers no TLS version or cipher suite this client accepts (TLS 1.2 or \
             1.3 with current ciphers): {why}."
        ),
        TlsDiagnosis::Other(why) => format!("the TLS connection failed: {why}."),
        other => format!("the TLS connection failed: {other:?}."),
    }
}

/// Whether pinning the certificate or trusting its issuer with `--ca-file`
/// would accept it: no trusted authority issued it (self-signed, or a
/// private CA). Not for a wrong host name or expired dates, which
/// `--ca-file` keeps checking.
pub(crate) fn unknown_issuer(diagnosis: &TlsDiagnosis) -> bool {
    matches!(
        diagnosis,
        TlsDiagnosis::UnknownIssuer { .. } | TlsDiagnosis::CaUsedAsEndEntity { .. }
    )
}

/// ` on 2001-01-01 00:00:00 UTC (it is now ...)`, or nothing when the date
/// is unknown.
fn when(preposition: &str, date: Option<UtcTime>, now: Option<UtcTime>) -> String {
    match (date, now) {
        (Some(date), Some(now)) => format!("{preposition} {date} (it is now {now})"),
        (Some(date), None) => format!("{preposition} {date}"),
        (None, _) => String::new(),
    }
}

/// How to trust a certificate deliberately.
fn how_to_trust(presented: Option<&CertificateInfo>) -> String {
    let fingerprint = presented.map_or_else(|| "SHA256".to_owned(), |c| c.sha256.to_string());
    format!(
        "If you trust this server, add the certificate of the authority that issued it (or the \
         server's own certificate) with --ca-file FILE, or pin the server's certificate with \
         --tls-fingerprint {fingerprint} after checking that fingerprint with the server's \
         administrator (config keys ca_file and tls_fingerprint)."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pop3_transport::Sha256Fingerprint;

    #[test]
    fn unknown_issuer_says_how_to_trust() {
        let plain = tls_advice(&TlsDiagnosis::UnknownIssuer { presented: None });
        assert!(
            plain.contains("authority this client does not trust"),
            "{plain}"
        );
        assert!(plain.contains("--ca-file FILE, or pin"), "{plain}");
        assert!(plain.contains("--tls-fingerprint SHA256 after"), "{plain}");
        let ca = tls_advice(&TlsDiagnosis::CaUsedAsEndEntity { presented: None });
        assert!(ca.contains("CA:TRUE") && ca.contains("--ca-file"), "{ca}");
    }

    #[test]
    fn a_namesake_issuer_is_explained_with_the_fingerprint() {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]);
        let Ok(generated) = generated else {
            panic!("rcgen could not make a certificate");
        };
        let der = generated.cert.der();
        let presented = CertificateInfo::from_der(der).ok();
        let text = tls_advice(&TlsDiagnosis::NotSignedByTrusted { presented });
        let fingerprint = Sha256Fingerprint::of(der).to_string();
        assert!(
            text.contains(&format!("(SHA-256 fingerprint {fingerprint})")),
            "{text}"
        );
        assert!(
            text.contains("another certificate than the one trusted"),
            "{text}"
        );
        assert!(
            text.contains("--ca-file") && text.contains("--tls-fingerprint"),
            "{text}"
        );
        assert!(!text.contains("::"), "{text}");
    }

    #[test]
    fn dates_are_spelled_out() {
        let text = tls_advice(&TlsDiagnosis::Expired {
            not_after: Some(UtcTime(978_307_200)),
            now: Some(UtcTime(1_764_547_200)),
        });
        assert!(
            text.contains("expired on 2001-01-01 00:00:00 UTC (it is now 2025-12-01 00:00:00 UTC)"),
            "{text}"
        );
        let text = tls_advice(&TlsDiagnosis::NotValidYet {
            not_before: Some(UtcTime(86_400)),
            now: None,
        });
        assert!(
            text.contains("not valid before 1970-01-02 00:00:00 UTC. Check"),
            "{text}"
        );
    }

    #[test]
    fn names_and_pins_are_listed() {
        let text = tls_advice(&TlsDiagnosis::NameMismatch {
            expected: Some("localhost".to_owned()),
            presented: vec!["wrong.example".to_owned(), "odd".to_owned()],
        });
        assert!(
            text.contains(
                "not valid for the name \"localhost\": it is valid for wrong.example, odd"
            ),
            "{text}"
        );
        assert!(text.contains("--tls-server-name NAME"), "{text}");
        let presented = Sha256Fingerprint::from_bytes([0xAB; 32]);
        let pinned = Sha256Fingerprint::from_bytes([0x01; 32]);
        let text = tls_advice(&TlsDiagnosis::PinMismatch {
            presented,
            pinned: vec![pinned],
        });
        assert!(text.contains(&format!("fingerprint {presented}, not the pinned {pinned}")));
        assert!(text.contains("intercepting"));
    }
}
