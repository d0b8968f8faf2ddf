//! The environment variables that carry this run's secrets, kept from the
//! programs pop3 runs.
//!
//! `--password-env VAR` and `--proxy-password-env VAR` (and the same keys of
//! every account in the config file) name variables that hold a password.
//! An MDA, a filter or a password command has no use for them, and any of
//! them may log its environment or run something that does: each child is
//! started without them. The names are gathered before the first child
//! runs, for every account, so one account's filter does not see another
//! account's password either.

use std::process::Command;
use std::sync::Mutex;

/// The names of the variables that hold secrets.
static SECRET_VARIABLES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Marks `name` as a variable that holds a secret.
pub(crate) fn hide_variable(name: &str) {
    let mut names = SECRET_VARIABLES.lock().unwrap_or_else(|p| p.into_inner());
    if !names.iter().any(|n| n == name) {
        names.push(name.to_owned());
    }
}

/// Removes every variable that holds a secret from `command`'s
/// environment.
pub(crate) fn scrub(command: &mut Command) {
    let names = SECRET_VARIABLES.lock().unwrap_or_else(|p| p.into_inner());
    for name in names.iter() {
        command.env_remove(name);
    }
}
