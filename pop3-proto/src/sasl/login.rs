//! The non-standard but widely deployed `LOGIN` mechanism
//! (draft-murchison-sasl-login).

use alloc::string::String;
use alloc::vec::Vec;

use super::{Mechanism, SaslError};
use crate::Secret;

/// The `LOGIN` mechanism: the server asks for the user name and then for the
/// password (the prompts are usually `Username:` and `Password:`); the client
/// answers each in turn.
///
/// The prompts' text is not interpreted, since servers word them differently: the
/// first challenge gets the user name, the second the password, and a third is an
/// error. There is no initial response. The password travels in the clear (only
/// base64-encoded), so [`Mechanism::exposes_credentials`] is `true`.
#[derive(Debug)]
pub struct Login {
    user: String,
    password: Secret<String>,
    step: u8,
}

impl Login {
    /// Creates the mechanism for `user` with `password`.
    pub fn new(user: String, password: Secret<String>) -> Self {
        Login {
            user,
            password,
            step: 0,
        }
    }
}

impl Mechanism for Login {
    fn name(&self) -> &str {
        "LOGIN"
    }

    fn exposes_credentials(&self) -> bool {
        true
    }

    fn initial_response(&mut self) -> Result<Option<Secret<Vec<u8>>>, SaslError> {
        Ok(None)
    }

    fn respond(&mut self, _challenge: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
        let answer = match self.step {
            0 => self.user.as_bytes(),
            1 => self.password.expose().as_bytes(),
            _ => return Err(SaslError::UnexpectedChallenge),
        };
        let answer = Secret::new(answer.to_vec());
        self.step += 1;
        Ok(answer)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn two_steps() {
        let mut m = Login::new(String::from("tim"), Secret::new(String::from("tanstaaf")));
        assert_eq!(m.name(), "LOGIN");
        assert!(m.exposes_credentials());
        assert!(m.initial_response().unwrap().is_none());
        assert_eq!(m.respond(b"Username:").unwrap().expose().as_slice(), b"tim");
        assert_eq!(
            m.respond(b"Password:").unwrap().expose().as_slice(),
            b"tanstaaf"
        );
        assert_eq!(
            m.respond(b"More?").unwrap_err(),
            SaslError::UnexpectedChallenge
        );
        assert_eq!(m.respond(b"").unwrap_err(), SaslError::UnexpectedChallenge);
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn prompt_text_is_not_interpreted() {
        let mut m = Login::new(String::from("u"), Secret::new(String::from("p")));
        assert_eq!(m.respond(b"User Name\0").unwrap().expose().as_slice(), b"u");
        assert_eq!(m.respond(b"").unwrap().expose().as_slice(), b"p");
    }

    #[test]
    fn debug_redacts_password() {
        let m = Login::new(String::from("u"), Secret::new(String::from("hunter2")));
        assert!(!format!("{m:?}").contains("hunter2"));
    }
}
