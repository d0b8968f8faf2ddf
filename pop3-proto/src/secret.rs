//! A wrapper for credentials whose `Debug` output never shows the value
//! and whose memory is zeroed when it is dropped.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use zeroize::Zeroize;

/// A password, token or SASL payload.
///
/// `Debug` always prints `Secret(<redacted>)`, in every build, so that secrets
/// cannot leak into logs through `{:?}`. There is deliberately no `Display`.
/// When a `Secret` is dropped its buffer is overwritten with zeros (all of
/// its capacity), so the value does not linger in freed memory; what the
/// caller still holds, or copied with [`Secret::expose`], is the caller's.
///
/// ```
/// use pop3_proto::Secret;
/// let s = Secret::new(String::from("hunter2"));
/// assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
/// assert_eq!(s.expose(), "hunter2");
/// ```
///
/// Every call that takes a password or token takes
/// `impl Into<Secret<String>>`, so the string types a program holds all work
/// as they are: `&str`, `String`, `&String`, or a `Secret<String>`.
///
/// ```
/// use pop3_proto::{Client, Config, Secret};
///
/// let password = String::from("hunter2"); // from a prompt, a file, ...
/// let mut client = Client::new(Config::encrypted());
/// client.login("alice", &password)?; // &String
/// # let mut client = Client::new(Config::encrypted());
/// client.login("alice", password.as_str())?; // &str
/// # let mut client = Client::new(Config::encrypted());
/// client.login("alice", Secret::new(password))?; // Secret<String>
/// # Ok::<(), pop3_proto::UsageError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Self {
        Secret(value)
    }

    /// Borrows the secret value. Call this only where the value is really needed.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Borrows the secret value mutably, to fill a buffer allocated once
    /// (reading into it never moves the secret, so no copy is left behind
    /// in freed memory).
    pub fn expose_mut(&mut self) -> &mut T {
        &mut self.0
    }

    /// Unwraps the secret value (it is then no longer wiped on drop).
    pub fn into_inner(mut self) -> T
    where
        T: Default,
    {
        core::mem::take(&mut self.0)
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret<String> {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&String> for Secret<String> {
    fn from(value: &String) -> Self {
        Secret(value.clone())
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Secret(String::from(value))
    }
}

impl From<Vec<u8>> for Secret<Vec<u8>> {
    fn from(value: Vec<u8>) -> Self {
        Secret(value)
    }
}
