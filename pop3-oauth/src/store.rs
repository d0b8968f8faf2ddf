//! Tokens kept per account in files of their own, and the refresh done
//! under a lock so that processes sharing an account never present a
//! refresh token another has already rotated away.
//!
//! The store is a directory (`$XDG_STATE_HOME/pop3/`, else
//! `~/.local/state/pop3/`) made 0700, holding per account
//! `NAME.oauth.json` (0600, replaced atomically: written to a temporary
//! file, flushed to disk, renamed over the old one, the directory synced)
//! and `NAME.oauth.lock`, the file whose lock a refresh holds.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::http::HttpClient;
use crate::provider::{Client, ProviderSettings};
use crate::token::{refresh, Tokens};

/// Refresh when the access token has less than this many seconds left: a
/// POP3 login and a long download fit in what remains.
pub const REFRESH_MARGIN: u64 = 300;

/// How long [`TokenStore::lock`] waits for another process's refresh: a
/// refresh is one HTTP exchange, at most [`crate::http::Limits::timeout`]
/// (30 s by default), and a few may queue.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// What is stored for one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTokens {
    /// Format version, so that a later program can read an older file.
    pub version: u32,
    /// The provider preset's name, or `custom`.
    pub provider: String,
    /// The token endpoint the tokens came from: a refresh token is only
    /// ever sent back there.
    pub token_endpoint: String,
    /// The tokens.
    #[serde(flatten)]
    pub tokens: Tokens,
}

/// The directory of token files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStore {
    dir: PathBuf,
}

/// What [`TokenStore::access_token`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// The stored access token was still fresh.
    No,
    /// This call refreshed it.
    Yes,
    /// Another process refreshed it while this one waited for the lock.
    ByAnother,
}

impl TokenStore {
    /// The store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> TokenStore {
        TokenStore { dir: dir.into() }
    }

    /// `$XDG_STATE_HOME/pop3`, else `$HOME/.local/state/pop3`; `None` when
    /// neither variable is set.
    pub fn default_dir() -> Option<PathBuf> {
        let non_empty = |name| std::env::var_os(name).filter(|value| !value.is_empty());
        match non_empty("XDG_STATE_HOME") {
            Some(dir) => Some(PathBuf::from(dir).join("pop3")),
            None => Some(PathBuf::from(non_empty("HOME")?).join(".local/state/pop3")),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The token file of `account`. Account names are written as they are
    /// when they are plain (letters, digits, `.`, `_`, `-`, `@`, `+`), and
    /// percent-encoded otherwise, so two names never share a file.
    pub fn path(&self, account: &str) -> Result<PathBuf, Error> {
        Ok(self.dir.join(format!("{}.oauth.json", file_stem(account)?)))
    }

    fn lock_path(&self, account: &str) -> Result<PathBuf, Error> {
        Ok(self.dir.join(format!("{}.oauth.lock", file_stem(account)?)))
    }

    /// Makes the directory if needed, and makes it 0700 if it was not: a
    /// directory made earlier by hand, or by a program under a looser
    /// umask, keeps its mode otherwise, and others could list the token
    /// files' names. Tightening the mode of a directory owned by someone
    /// else fails (only the owner may change it), which is reported rather
    /// than ignored.
    fn ensure_dir(&self) -> Result<(), Error> {
        let storage = |source| Error::Storage {
            path: self.dir.clone(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(storage)?;
        let metadata = fs::metadata(&self.dir).map_err(storage)?;
        if metadata.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700)).map_err(storage)?;
        }
        Ok(())
    }

    /// What is stored for `account`; `None` if nothing is.
    pub fn load(&self, account: &str) -> Result<Option<StoredTokens>, Error> {
        let path = self.path(account)?;
        let text = match fs::read(&path) {
            Ok(text) => zeroize::Zeroizing::new(text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Storage { path, source }),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|_| Error::CorruptStore { path })
    }

    /// Replaces what is stored for `account`, atomically and durably.
    pub fn save(&self, account: &str, stored: &StoredTokens) -> Result<PathBuf, Error> {
        self.ensure_dir()?;
        let path = self.path(account)?;
        let storage = |source| Error::Storage {
            path: path.clone(),
            source,
        };
        let text = zeroize::Zeroizing::new(serde_json::to_vec_pretty(stored).map_err(|_| {
            Error::MalformedAnswer {
                why: "the tokens cannot be written as JSON".into(),
            }
        })?);
        let suffix = crate::authorization::random_token(6)?;
        let temporary = path.with_extension(format!("json.{suffix}.tmp"));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temporary)?;
            // The mode given at creation is masked by the umask; 0600 is
            // set again explicitly.
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            file.write_all(&text)?;
            file.sync_all()?;
            fs::rename(&temporary, &path)?;
            File::open(&self.dir)?.sync_all()
        })();
        if let Err(source) = written {
            let _ = fs::remove_file(&temporary);
            return Err(storage(source));
        }
        Ok(path)
    }

    /// [`TokenStore::save`] under the account's refresh lock: what a login
    /// stores is then never overwritten by a refresh that another process
    /// had already started from the tokens before it (the refresh holds
    /// the lock from reading to saving, so the login waits for it and
    /// saves last).
    pub fn save_locked(&self, account: &str, stored: &StoredTokens) -> Result<PathBuf, Error> {
        let _lock = self.lock(account)?;
        self.save(account, stored)
    }

    /// Removes what is stored for `account`.
    pub fn remove(&self, account: &str) -> Result<bool, Error> {
        let path = self.path(account)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(Error::Storage { path, source }),
        }
    }

    /// Takes the refresh lock of `account`, waiting up to [`LOCK_WAIT`]
    /// for another holder. The lock is released when the returned file is
    /// dropped.
    pub fn lock(&self, account: &str) -> Result<File, Error> {
        self.lock_within(account, LOCK_WAIT)
    }

    /// [`TokenStore::lock`] waiting up to `wait`; still held then is
    /// [`Error::LockTimedOut`], naming the lock file (a hung process that
    /// holds it, or a lock on a network file system that never frees).
    pub fn lock_within(&self, account: &str, wait: std::time::Duration) -> Result<File, Error> {
        self.ensure_dir()?;
        let path = self.lock_path(account)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|source| Error::Storage {
                path: path.clone(),
                source,
            })?;
        let deadline = crate::http::deadline_after(wait);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(Error::Storage { path, source })
                }
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(Error::LockTimedOut { path });
            }
            // A refresh takes a second or so: polling ten times a second
            // costs nothing and adds little to the wait.
            std::thread::sleep(deadline.duration_since(now).min(LOCK_POLL));
        }
    }

    /// An access token for `account` good for at least [`REFRESH_MARGIN`]
    /// seconds, refreshed if needed.
    ///
    /// The refresh runs under the account's lock, and the stored tokens are
    /// read again once the lock is held: if another process refreshed (and
    /// perhaps rotated the refresh token) meanwhile, its result is used and
    /// the old refresh token is never presented. A rotated refresh token is
    /// saved before this returns, so before the POP3 login.
    pub fn access_token(
        &self,
        account: &str,
        http: &HttpClient,
        settings: &ProviderSettings,
        client: &Client,
    ) -> Result<(StoredTokens, Refreshed), Error> {
        self.access_token_within(account, http, settings, client, REFRESH_MARGIN)
    }

    /// [`TokenStore::access_token`] with another margin.
    pub fn access_token_within(
        &self,
        account: &str,
        http: &HttpClient,
        settings: &ProviderSettings,
        client: &Client,
        margin: u64,
    ) -> Result<(StoredTokens, Refreshed), Error> {
        let unlocked = self.load(account)?.ok_or(Error::NotLoggedIn)?;
        if unlocked.tokens.fresh_for(margin) {
            return Ok((unlocked, Refreshed::No));
        }
        let _lock = self.lock(account)?;
        let stored = self.load(account)?.ok_or(Error::NotLoggedIn)?;
        // Another process refreshed while this one waited: its token is
        // used even if the provider's lifetimes are shorter than `margin`
        // (else each process would refresh in turn), as long as a login
        // fits in what is left.
        let changed = stored.tokens.access_token != unlocked.tokens.access_token;
        if stored.tokens.fresh_for(margin) || (changed && stored.tokens.fresh_for(margin.min(30))) {
            return Ok((stored, Refreshed::ByAnother));
        }
        let refresh_token = stored
            .tokens
            .refresh_token
            .clone()
            .ok_or(Error::NotLoggedIn)?;
        // The refresh token goes back only to the endpoint that issued it,
        // whatever the settings say now.
        let mut settings = settings.clone();
        settings.token_endpoint.clone_from(&stored.token_endpoint);
        let tokens = refresh(http, &settings, client, &refresh_token)?;
        let renewed = StoredTokens { tokens, ..stored };
        self.save(account, &renewed)?;
        Ok((renewed, Refreshed::Yes))
    }
}

/// The longest file stem an account name may become. Percent-encoding can
/// triple a name, and the temporary file adds about 25 bytes to the stem:
/// 200 keeps every name under the 255 bytes most file systems allow.
const MAX_STEM: usize = 200;

fn file_stem(account: &str) -> Result<String, Error> {
    if account.is_empty() || account.len() > MAX_STEM || account.starts_with('.') {
        return Err(Error::BadAccountName);
    }
    let mut stem = String::new();
    for byte in account.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-' | b'@' | b'+') {
            stem.push(char::from(byte));
        } else {
            stem.push_str(&format!("%{byte:02X}"));
        }
    }
    // Checked after encoding: the name's own length says too little.
    if stem.len() > MAX_STEM {
        return Err(Error::BadAccountName);
    }
    Ok(stem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pop3-oauth-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// What a store holds at the least: an access token, nothing else.
    fn access_token_only() -> StoredTokens {
        StoredTokens {
            version: 1,
            provider: "gmail".into(),
            token_endpoint: "https://t/".into(),
            tokens: Tokens {
                access_token: Secret::new("at"),
                expires_at: None,
                refresh_token: None,
                scope: None,
                obtained_at: None,
            },
        }
    }

    #[test]
    fn saved_tokens_are_0600_and_read_back() {
        let dir = scratch("save");
        let store = TokenStore::new(dir.join("nested"));
        let stored = StoredTokens {
            version: 1,
            provider: "gmail".into(),
            token_endpoint: "https://t/".into(),
            tokens: Tokens {
                access_token: Secret::new("at"),
                expires_at: Some(5),
                refresh_token: Some(Secret::new("rt")),
                scope: None,
                obtained_at: None,
            },
        };
        let path = store.save("work/x y", &stored).ok();
        assert_eq!(path, store.path("work/x y").ok());
        let mode = path
            .as_ref()
            .and_then(|p| fs::metadata(p).ok())
            .map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode, Some(0o600));
        let dir_mode = fs::metadata(store.dir())
            .ok()
            .map(|m| m.permissions().mode() & 0o777);
        assert_eq!(dir_mode, Some(0o700));
        assert!(path.is_some_and(|p| p.ends_with("work%2Fx%20y.oauth.json")));
        assert_eq!(store.load("work/x y").ok().flatten(), Some(stored));
        assert!(store.load("other").is_ok_and(|s| s.is_none()));
        // Nothing but the token file and no temporary is left behind.
        let names: Vec<_> = fs::read_dir(store.dir())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn an_existing_open_directory_is_made_0700() {
        let dir = scratch("open-dir");
        let _ = fs::create_dir_all(&dir);
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
        let store = TokenStore::new(&dir);
        let stored = access_token_only();
        assert!(store.save("a", &stored).is_ok());
        let mode = fs::metadata(&dir)
            .ok()
            .map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode, Some(0o700));
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
        assert!(store.lock("a").is_ok());
        let mode = fs::metadata(&dir)
            .ok()
            .map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode, Some(0o700));
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_lock_held_elsewhere_is_waited_for_then_named() {
        let dir = scratch("lock-wait");
        let store = TokenStore::new(&dir);
        let held = store.lock("a").ok();
        assert!(held.is_some());
        let started = std::time::Instant::now();
        let second = store.lock_within("a", std::time::Duration::from_millis(300));
        assert!(started.elapsed() >= std::time::Duration::from_millis(300));
        let shown = second.as_ref().err().map(ToString::to_string);
        assert!(
            matches!(&second, Err(Error::LockTimedOut { path }) if path.ends_with("a.oauth.lock")),
            "{second:?}"
        );
        assert!(shown.is_some_and(|text| text.contains("a.oauth.lock")));
        assert!(second.err().is_some_and(|e| e.is_transient()));
        drop(held);
        assert!(store
            .lock_within("a", std::time::Duration::from_millis(300))
            .is_ok());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_locked_save_waits_for_a_refresh_in_progress() {
        let dir = scratch("save-locked");
        let store = TokenStore::new(&dir);
        let stored = |token: &str| StoredTokens {
            version: 1,
            provider: "gmail".into(),
            token_endpoint: "https://t/".into(),
            tokens: Tokens {
                access_token: Secret::new(token),
                expires_at: None,
                refresh_token: None,
                scope: None,
                obtained_at: None,
            },
        };
        let refreshing = store.lock("a").ok();
        assert!(refreshing.is_some());
        let (tx, rx) = std::sync::mpsc::channel();
        let login = {
            let store = store.clone();
            std::thread::spawn(move || {
                let saved = store.save_locked("a", &stored("at-login"));
                let _ = tx.send(());
                saved.is_ok()
            })
        };
        // While the refresh holds the lock, the login's save waits.
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(400))
            .is_err());
        assert!(store.save("a", &stored("at-refresh")).is_ok());
        drop(refreshing);
        assert!(login.join().unwrap_or(false));
        let kept = store.load("a").ok().flatten();
        assert_eq!(
            kept.map(|s| s.tokens.access_token.expose().to_owned()),
            Some("at-login".to_owned())
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn odd_account_names_are_refused_or_encoded() {
        let store = TokenStore::new("/x");
        assert!(matches!(store.path(""), Err(Error::BadAccountName)));
        assert!(matches!(store.path(".."), Err(Error::BadAccountName)));
        assert_ne!(store.path("a/b").ok(), store.path("a%2Fb").ok());
    }

    #[test]
    fn a_name_too_long_once_encoded_is_a_bad_account_name() {
        let dir = scratch("long");
        let store = TokenStore::new(&dir);
        // 200 bytes as given, 600 once percent-encoded.
        let long = "é".repeat(100);
        assert!(matches!(store.path(&long), Err(Error::BadAccountName)));
        let stored = access_token_only();
        assert!(matches!(
            store.save(&long, &stored),
            Err(Error::BadAccountName)
        ));
        // The longest plain name still fits, temporary file included.
        assert!(store.save(&"a".repeat(200), &stored).is_ok());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_corrupt_file_is_reported_with_its_path() {
        let dir = scratch("corrupt");
        let store = TokenStore::new(&dir);
        let _ = fs::create_dir_all(&dir);
        let _ = fs::write(
            dir.join("a.oauth.json"),
            "{\"access_token\":\"secret-value\"",
        );
        let error = store.load("a").err();
        assert!(matches!(&error, Some(Error::CorruptStore { .. })));
        assert!(!format!("{error:?}").contains("secret-value"));
        let _ = fs::remove_dir_all(dir);
    }
}
