//! The `CRAM-MD5` mechanism (RFC 2195).

use alloc::string::String;
use alloc::vec::Vec;

use hmac::{Hmac, Mac};
use md5::Md5;

use super::{Mechanism, SaslError};
use crate::Secret;

/// The `CRAM-MD5` challenge-response mechanism (RFC 2195).
///
/// The server sends a unique challenge; the client answers
/// `user SP hex(HMAC-MD5(password, challenge))` in lower-case hex. The password
/// itself is not sent, so [`Mechanism::exposes_credentials`] is `false`, but
/// note that MD5 is weak and an eavesdropper can run an offline dictionary attack
/// on the answer; prefer SCRAM where the server offers it.
#[derive(Debug)]
pub struct CramMd5 {
    user: String,
    password: Secret<String>,
    responded: bool,
}

impl CramMd5 {
    /// Creates the mechanism for `user` with `password`.
    pub fn new(user: String, password: Secret<String>) -> Self {
        CramMd5 {
            user,
            password,
            responded: false,
        }
    }
}

impl Mechanism for CramMd5 {
    fn name(&self) -> &str {
        "CRAM-MD5"
    }

    fn exposes_credentials(&self) -> bool {
        false
    }

    fn initial_response(&mut self) -> Result<Option<Secret<Vec<u8>>>, SaslError> {
        Ok(None)
    }

    fn respond(&mut self, challenge: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
        if self.responded {
            return Err(SaslError::UnexpectedChallenge);
        }
        if challenge.is_empty() {
            return Err(SaslError::MalformedChallenge("empty CRAM-MD5 challenge"));
        }
        let mut mac = <Hmac<Md5> as Mac>::new_from_slice(self.password.expose().as_bytes())
            .map_err(|_| SaslError::InvalidCredential("cannot key HMAC-MD5"))?;
        mac.update(challenge);
        let digest = mac.finalize().into_bytes();

        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = Vec::with_capacity(self.user.len() + 1 + 2 * digest.len());
        out.extend_from_slice(self.user.as_bytes());
        out.push(b' ');
        for byte in digest {
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0x0f)]);
        }
        self.responded = true;
        Ok(Secret::new(out))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rfc_mech() -> CramMd5 {
        CramMd5::new(
            String::from("tim"),
            Secret::new(String::from("tanstaaftanstaaf")),
        )
    }

    #[test]
    fn rfc2195_vector() {
        let mut m = rfc_mech();
        assert_eq!(m.name(), "CRAM-MD5");
        assert!(!m.exposes_credentials());
        assert!(m.initial_response().unwrap().is_none());
        let r = m
            .respond(b"<1896.697170952@postoffice.reston.mci.net>")
            .unwrap();
        assert_eq!(
            r.expose().as_slice(),
            b"tim b913a602c7eda7a495b4e6e7334d3890"
        );
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn second_challenge_is_unexpected() {
        let mut m = rfc_mech();
        m.respond(b"<1.2@example>").unwrap();
        assert_eq!(
            m.respond(b"<1.2@example>").unwrap_err(),
            SaslError::UnexpectedChallenge
        );
    }

    #[test]
    fn empty_challenge_is_malformed() {
        let mut m = rfc_mech();
        assert!(matches!(
            m.respond(b""),
            Err(SaslError::MalformedChallenge(_))
        ));
    }
}
