//! A string that must never be printed: access and refresh tokens, client
//! secrets, authorization codes, PKCE verifiers.

use std::fmt;

use zeroize::Zeroizing;

/// A secret string. Its `Debug` prints `Secret(<redacted>)`; it has no
/// `Display`; its memory is wiped when it is dropped. [`Secret::expose`] is
/// the one way to read it, so every place that sends a secret is found by
/// searching for that name.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(value.into()))
    }

    /// The secret itself, for sending it where it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret::new(value)
    }
}

/// The core's secret, for a login: the token's buffer moves across, so no
/// copy is left behind unwiped (`expose().to_owned()` would leave one).
impl From<Secret> for pop3_proto::Secret<String> {
    fn from(mut secret: Secret) -> pop3_proto::Secret<String> {
        pop3_proto::Secret::new(std::mem::take(&mut *secret.0))
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("ya29.very-secret");
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("redacted"));
        assert_eq!(secret.expose(), "ya29.very-secret");
    }

    #[test]
    fn becomes_the_cores_secret_without_a_copy() {
        let secret = Secret::new("at-login");
        let address = secret.expose().as_ptr();
        let core: pop3_proto::Secret<String> = secret.into();
        assert_eq!(core.expose(), "at-login");
        // The same buffer, moved: nothing was copied to be left behind.
        assert_eq!(core.expose().as_ptr(), address);
        assert!(!format!("{core:?}").contains("at-login"));
    }
}
