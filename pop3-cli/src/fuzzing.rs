//! Entry points for the fuzz targets (`fuzz/fuzz_targets/cli_*.rs`): the
//! command's parsers of what a user or a file hands it, each checked for the
//! properties the rest of the command relies on. Not an API.

use std::path::PathBuf;

use crate::config::Config;
use crate::target::Url;

/// Parses a `pop3://` / `pop3s://` URL as the command line and the config
/// do. Checked: what is accepted has a host, no control character in the
/// host or the user (they reach a socket address, a command line and a
/// terminal), keeps a colon of the user part in the user name (no password
/// is read from a URL), and parses the same twice.
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
    // No password is ever taken from a URL, nor sent as a user name: a raw
    // colon in the user part is accepted only in Gmail's `recent:` prefix,
    // and then stays in the user name.
    if let Some((_, rest)) = text.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if let Some((info, _)) = authority.rsplit_once('@') {
            let name = info.split(';').next().unwrap_or_default();
            assert!(
                !name.contains(':') || url.user.as_deref().is_some_and(|u| u.contains(':')),
                "a colon of the user part was dropped: {text:?} gave {:?}",
                url.user
            );
            assert!(
                !name.contains(':') || name.to_ascii_lowercase().starts_with("recent:"),
                "a raw colon outside `recent:` was accepted: {text:?}"
            );
        }
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

/// Reads `bytes` as each of the files a fetch leaves beside its state: the
/// state itself, a Maildir batch's intent and an mbox batch's intent.
/// Checked: a state's UIDs are non-empty, without space or line break, and
/// read back the same once written again (the state is rewritten at every
/// fetch, so a UID that changed in the rewrite would be fetched again); a
/// Maildir intent names only files this command gives (`pop3-…`, no `/`
/// or NUL: the name is looked up among the Maildir's file names, and must
/// be one); an mbox intent, read as the next fetch reads it (a torn last
/// line ignored), has entries with a 64-digit hash and a UID without line
/// break.
pub fn state_files(bytes: &[u8]) {
    use crate::state::{format_uids, parse_maildir_intent, parse_uids};

    let uids = parse_uids(bytes, 7);
    for (uid, _) in &uids {
        assert!(
            !uid.is_empty() && !uid.contains([' ', '\n']),
            "state UID {uid:?}"
        );
    }
    assert_eq!(
        parse_uids(format_uids(&uids).as_bytes(), 7),
        uids,
        "a state's UIDs change when it is rewritten"
    );
    for (uid, name) in parse_maildir_intent(bytes) {
        assert!(
            !uid.is_empty() && !uid.contains([' ', '\n']),
            "intent UID {uid:?}"
        );
        assert!(
            name.starts_with("pop3-") && !name.contains(['/', '\0', '\n']),
            "intent file name {name:?}"
        );
    }
    for (_, _, hash, uid) in crate::deliver::parse_intent(bytes) {
        assert_eq!(hash.len(), 64);
        assert!(
            !uid.is_empty() && !uid.contains('\n'),
            "mbox intent UID {uid:?}"
        );
    }
}
