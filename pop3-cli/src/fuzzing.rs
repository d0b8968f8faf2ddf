//! Entry points for the fuzz targets (`fuzz/fuzz_targets/cli_*.rs`): the
//! command's parsers of what a user or a file hands it, each checked for the
//! properties the rest of the command relies on. Not an API.

use std::path::PathBuf;

use crate::config::Config;
use crate::target::Url;

/// Parses a `pop3://` / `pop3s://` URL as the command line and the config
/// do. Checked: what is accepted has a host, no control character in the
/// host or the user (they reach a socket address, a command line and a
/// terminal), and parses the same twice.
pub fn url(text: &str) {
    let Ok(url) = Url::parse(text) else { return };
    assert!(!url.host.is_empty(), "empty host accepted: {text:?}");
    assert!(
        !url.host
            .chars()
            .any(|c| c.is_control() || c.is_whitespace()),
        "host with a control character or space: {:?}",
        url.host
    );
    if let Some(user) = &url.user {
        assert!(
            !user.chars().any(|c| c == '\r' || c == '\n' || c == '\0'),
            "user with CR, LF or NUL: {user:?}"
        );
    }
    assert_eq!(Url::parse(text).ok(), Some(url), "not deterministic");
}

/// Parses a config file's text, then resolves the defaults and every
/// account's settings, as `pop3 fetch` does before connecting. Checked: no
/// panic, whatever the text; a refusal is an error naming the file.
pub fn config(text: &str) {
    let path = PathBuf::from("fuzz.toml");
    let config = match Config::parse(path, text.to_owned()) {
        Ok(config) => config,
        Err(failure) => {
            assert!(
                failure.to_string().contains("fuzz.toml"),
                "a config error that does not name the file: {failure}"
            );
            return;
        }
    };
    let _ = config.settings(None);
    for name in config.account_names() {
        let _ = config.settings(Some(&name));
    }
}
