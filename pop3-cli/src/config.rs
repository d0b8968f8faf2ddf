//! Accounts in a config file: `$XDG_CONFIG_HOME/pop3/config.toml`
//! (`~/.config/pop3/config.toml`), or `--config FILE`.
//!
//! ```toml
//! [defaults]
//! ca_file = "~/.config/pop3/ca.pem"
//! trust = "ca-file"
//! delete = true
//!
//! [accounts.work]
//! url = "pop3s://alice@pop.example.org"
//! password_command = "pass show mail/work"
//! maildir = "~/Mail/work"
//! ```
//!
//! Every long option of the connection and of `fetch` is a key, with `-`
//! written `_`; OAuth accounts add `provider` and its keys (see
//! `pop3-config(5)`). No key holds a password. An account's table is laid over
//! `[defaults]`, and options on the command line over both. Every mistake
//! (an unknown key, a value of the wrong type, a bad URL) is reported with
//! the file, the line and the key, before anything connects.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::cli::{AuthName, Runtime, TlsMode, Trust};
use crate::error::{Exit, Failure};
use crate::policy::Size;
use crate::target::Url;

/// One table: `[defaults]` or `[accounts.NAME]`. Each key is the long
/// option of the same name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    pub(crate) url: Option<Spanned<String>>,
    pub(crate) host: Option<Spanned<String>>,
    pub(crate) port: Option<Spanned<u16>>,
    pub(crate) tls: Option<Spanned<TlsMode>>,
    pub(crate) user: Option<Spanned<String>>,
    pub(crate) auth: Option<Spanned<AuthName>>,
    pub(crate) password_env: Option<Spanned<String>>,
    pub(crate) password_command: Option<Spanned<String>>,
    /// Formerly `allow_plaintext_auth`, still read.
    #[serde(alias = "allow_plaintext_auth")]
    pub(crate) allow_plaintext_credentials: Option<Spanned<bool>>,
    pub(crate) respect_login_delay: Option<Spanned<bool>>,
    pub(crate) ca_file: Option<Spanned<String>>,
    pub(crate) trust: Option<Spanned<Trust>>,
    pub(crate) tls_fingerprint: Option<Spanned<String>>,
    pub(crate) tls_server_name: Option<Spanned<String>>,
    pub(crate) proxy: Option<Spanned<String>>,
    pub(crate) proxy_password_env: Option<Spanned<String>>,
    pub(crate) proxy_password_command: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<u64>>,
    pub(crate) session_timeout: Option<Spanned<u64>>,
    pub(crate) runtime: Option<Spanned<Runtime>>,
    pub(crate) maildir: Option<Spanned<String>>,
    pub(crate) mbox: Option<Spanned<String>>,
    pub(crate) mda: Option<Spanned<String>>,
    pub(crate) keep: Option<Spanned<bool>>,
    pub(crate) delete: Option<Spanned<bool>>,
    pub(crate) state: Option<Spanned<String>>,
    pub(crate) keep_days: Option<Spanned<u32>>,
    pub(crate) max_size: Option<Spanned<Size>>,
    pub(crate) delete_bigger_than: Option<Spanned<Size>>,
    pub(crate) max_messages: Option<Spanned<u32>>,
    pub(crate) max_sessions: Option<Spanned<u32>>,
    pub(crate) filter: Option<Spanned<String>>,
    pub(crate) exact_bytes: Option<Spanned<bool>>,
    /// OAuth 2.0: `gmail`, `outlook` or `custom`.
    pub(crate) provider: Option<Spanned<String>>,
    pub(crate) client_id: Option<Spanned<String>>,
    pub(crate) client_secret: Option<Spanned<String>>,
    pub(crate) tenant: Option<Spanned<String>>,
    pub(crate) scopes: Option<Spanned<String>>,
    pub(crate) authorization_endpoint: Option<Spanned<String>>,
    pub(crate) token_endpoint: Option<Spanned<String>>,
    pub(crate) device_endpoint: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    defaults: Option<Settings>,
    accounts: Option<BTreeMap<String, Spanned<Settings>>>,
}

/// A loaded config file.
#[derive(Debug)]
pub(crate) struct Config {
    path: PathBuf,
    text: String,
    defaults: Settings,
    /// In file order.
    accounts: Vec<(String, Settings)>,
}

/// Where the config file is unless `--config` says: `None` when neither
/// `XDG_CONFIG_HOME` nor `HOME` is set.
fn default_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(base.join("pop3").join("config.toml"))
}

/// `~/x` is `$HOME/x`.
pub(crate) fn expand_home(path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(home).join(rest);
        }
    }
    PathBuf::from(path)
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The key written on the line of `offset` (`name = ...`), if any.
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[start..end];
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"').trim_matches('\'');
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_owned())
}

impl Config {
    /// Loads `explicit` (`--config`), or the default file if it exists.
    /// `Ok(None)`: no config file.
    pub(crate) fn load(explicit: Option<&Path>) -> Result<Option<Config>, Failure> {
        let path = match explicit {
            Some(path) => path.to_owned(),
            None => match default_path() {
                Some(path) if path.exists() => path,
                _ => return Ok(None),
            },
        };
        let fail = |e: io::Error| {
            let exit = if e.kind() == io::ErrorKind::NotFound {
                Exit::Usage
            } else {
                Exit::IoErr
            };
            Failure::new(exit, format!("config file {}: {e}", path.display()))
        };
        let mut file = fs::File::open(&path).map_err(fail)?;
        // Checked on the file that is read, not on its name: it cannot be
        // swapped in between.
        check_owner_and_mode(&path, &file.metadata().map_err(fail)?)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(fail)?;
        Config::parse(path, text).map(Some)
    }

    /// Parses and checks `text`, read from `path`.
    pub(crate) fn parse(path: PathBuf, text: String) -> Result<Config, Failure> {
        let file: File = match toml::from_str(&text) {
            Ok(file) => file,
            Err(e) => return Err(parse_failure(&path, &text, &e)),
        };
        let mut accounts: Vec<(usize, String, Settings)> = file
            .accounts
            .unwrap_or_default()
            .into_iter()
            .map(|(name, table)| (table.span().start, name, table.into_inner()))
            .collect();
        accounts.sort_by_key(|(at, _, _)| *at);
        let config = Config {
            path,
            text,
            defaults: file.defaults.unwrap_or_default(),
            accounts: accounts
                .into_iter()
                .map(|(_, name, table)| (name, table))
                .collect(),
        };
        config.check(&config.defaults)?;
        for (_, table) in &config.accounts {
            config.check(table)?;
        }
        Ok(config)
    }

    /// A failure about the value at `span` of `key`.
    pub(crate) fn error_at(&self, span: Range<usize>, key: &str, why: &str) -> Failure {
        Failure::usage(format!(
            "{}:{}: {key}: {why}",
            self.path.display(),
            line_of(&self.text, span.start)
        ))
    }

    /// The checks serde cannot make.
    fn check(&self, table: &Settings) -> Result<(), Failure> {
        if let Some(url) = &table.url {
            if let Err(e) = Url::parse(url.get_ref()) {
                return Err(self.error_at(url.span(), "url", &e.message));
            }
        }
        if let (Some(keep), Some(delete)) = (&table.keep, &table.delete) {
            if *keep.get_ref() && *delete.get_ref() {
                return Err(self.error_at(
                    delete.span(),
                    "delete",
                    "keep and delete are both true",
                ));
            }
        }
        if let (Some(a), Some(b)) = (&table.password_env, &table.password_command) {
            let _ = a;
            return Err(self.error_at(
                b.span(),
                "password_command",
                "give password_env or password_command, not both",
            ));
        }
        let sinks = [&table.maildir, &table.mbox, &table.mda];
        if sinks.iter().filter(|s| s.is_some()).count() > 1 {
            let span = sinks
                .iter()
                .filter_map(|s| s.as_ref().map(Spanned::span))
                .max_by_key(|s| s.start)
                .unwrap_or(0..0);
            return Err(self.error_at(span, "maildir/mbox/mda", "give only one destination"));
        }
        if let Some(timeout) = &table.timeout {
            if *timeout.get_ref() == 0 {
                return Err(self.error_at(timeout.span(), "timeout", "must be at least 1"));
            }
        }
        if let Some(limit) = &table.session_timeout {
            if *limit.get_ref() == 0 {
                return Err(self.error_at(limit.span(), "session_timeout", "must be at least 1"));
            }
        }
        if let Some(max) = &table.max_messages {
            if *max.get_ref() == 0 {
                return Err(self.error_at(max.span(), "max_messages", "must be at least 1"));
            }
        }
        if let Some(max) = &table.max_sessions {
            if *max.get_ref() == 0 {
                return Err(self.error_at(max.span(), "max_sessions", "must be at least 1"));
            }
        }
        if let Some(pin) = &table.tls_fingerprint {
            if let Err(e) = pin.get_ref().parse::<pop3_transport::Sha256Fingerprint>() {
                return Err(self.error_at(pin.span(), "tls_fingerprint", &e.to_string()));
            }
        }
        if let Some(name) = &table.tls_server_name {
            if let Err(e) = crate::target::tls_server_name(name.get_ref()) {
                let why = e.message.replace("--tls-server-name ", "");
                return Err(self.error_at(name.span(), "tls_server_name", &why));
            }
        }
        if let Some(proxy) = &table.proxy {
            if let Err(e) = crate::target::parse_proxy(proxy.get_ref()) {
                let why = e.message.strip_prefix("--proxy: ").unwrap_or(&e.message);
                let why = why.replace("--proxy-password-", "proxy_password_");
                return Err(self.error_at(proxy.span(), "proxy", &why));
            }
        }
        if let (Some(_), Some(b)) = (&table.proxy_password_env, &table.proxy_password_command) {
            return Err(self.error_at(
                b.span(),
                "proxy_password_command",
                "give proxy_password_env or proxy_password_command, not both",
            ));
        }
        if let Some(port) = &table.port {
            if *port.get_ref() == 0 {
                return Err(self.error_at(port.span(), "port", "must be 1 to 65535"));
            }
        }
        Ok(())
    }

    /// The variables that any table names as holding a password, so that
    /// no program pop3 runs for any account sees them.
    pub(crate) fn secret_variables(&self) -> Vec<String> {
        std::iter::once(&self.defaults)
            .chain(self.accounts.iter().map(|(_, table)| table))
            .flat_map(|table| [&table.password_env, &table.proxy_password_env])
            .filter_map(|var| var.as_ref().map(|v| v.get_ref().clone()))
            .collect()
    }

    /// The names of the accounts, in file order.
    pub(crate) fn account_names(&self) -> Vec<String> {
        self.accounts.iter().map(|(name, _)| name.clone()).collect()
    }

    /// `[defaults]` with `[accounts.NAME]` laid over it (only `[defaults]`
    /// without a name).
    pub(crate) fn settings(&self, name: Option<&str>) -> Result<Settings, Failure> {
        let Some(name) = name else {
            return Ok(self.defaults.clone());
        };
        let Some((_, account)) = self.accounts.iter().find(|(n, _)| n == name) else {
            let names = self.account_names().join(", ");
            return Err(Failure::usage(format!(
                "no account {name:?} in {} (accounts: {})",
                self.path.display(),
                if names.is_empty() { "none" } else { &names }
            )));
        };
        let mut merged = self.defaults.clone();
        merged.overlay(account);
        Ok(merged)
    }
}

impl Settings {
    /// Takes every key `over` sets. A destination or a URL replaces the
    /// other destinations or the other ways to name the server.
    fn overlay(&mut self, over: &Settings) {
        macro_rules! take {
            ($($field:ident),*) => {$(
                if over.$field.is_some() {
                    self.$field = over.$field.clone();
                }
            )*};
        }
        if over.maildir.is_some() || over.mbox.is_some() || over.mda.is_some() {
            self.maildir = None;
            self.mbox = None;
            self.mda = None;
        }
        if over.keep.is_some() || over.delete.is_some() {
            self.keep = None;
            self.delete = None;
        }
        if over.password_env.is_some() || over.password_command.is_some() {
            self.password_env = None;
            self.password_command = None;
        }
        if over.proxy_password_env.is_some() || over.proxy_password_command.is_some() {
            self.proxy_password_env = None;
            self.proxy_password_command = None;
        }
        take!(
            url,
            host,
            port,
            tls,
            user,
            auth,
            password_env,
            password_command,
            allow_plaintext_credentials,
            respect_login_delay,
            ca_file,
            trust,
            tls_fingerprint,
            tls_server_name,
            proxy,
            proxy_password_env,
            proxy_password_command,
            timeout,
            session_timeout,
            runtime,
            maildir,
            mbox,
            mda,
            keep,
            delete,
            state,
            keep_days,
            max_size,
            delete_bigger_than,
            max_messages,
            max_sessions,
            filter,
            exact_bytes,
            provider,
            client_id,
            client_secret,
            tenant,
            scopes,
            authorization_endpoint,
            token_endpoint,
            device_endpoint
        );
    }
}

/// Refuses a config file that someone else could have written, as ssh
/// refuses such a `~/.ssh/config`: it names commands pop3 runs
/// (`password_command`, `mda`, `filter`), so whoever can write it can run
/// anything as this user, and read the mail and the passwords. It must
/// belong to this user (or root) and be writable by its owner only.
#[cfg(unix)]
fn check_owner_and_mode(path: &Path, meta: &fs::Metadata) -> Result<(), Failure> {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    let owner = meta.uid();
    let writable_by_others = meta.mode() & 0o022 != 0;
    if owner != me && owner != 0 {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "config file {}: owned by another user (uid {owner}); it names commands \
                 pop3 runs, so it must be yours: refusing to read it",
                path.display()
            ),
        ));
    }
    if writable_by_others {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "config file {}: writable by {} (mode {:o}); it names commands pop3 runs, \
                 so only you may write it: run `chmod go-w {}`",
                path.display(),
                if meta.mode() & 0o002 != 0 {
                    "every user"
                } else {
                    "its group"
                },
                meta.mode() & 0o7777,
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Other systems have no such modes to check.
#[cfg(not(unix))]
fn check_owner_and_mode(_path: &Path, _meta: &fs::Metadata) -> Result<(), Failure> {
    Ok(())
}

/// A TOML or serde error as `FILE:LINE: KEY: what`.
fn parse_failure(path: &Path, text: &str, error: &toml::de::Error) -> Failure {
    let message = error.message().trim();
    let (line, key) = match error.span() {
        Some(span) => {
            let quoted = text.get(span.clone()).unwrap_or_default().trim();
            let key = if message.starts_with("unknown field") {
                Some(quoted.trim_matches('"').to_owned())
            } else {
                key_on_line(text, span.start)
            };
            (Some(line_of(text, span.start)), key)
        }
        None => (None, None),
    };
    let why = if message.starts_with("unknown field") {
        match key.as_deref() {
            Some("password") => {
                "no key holds a password: use password_env or password_command".to_owned()
            }
            _ => "unknown key (keys are the long options, with _ for -)".to_owned(),
        }
    } else {
        // serde's text is one sentence; keep it on one line.
        message.replace('\n', " ")
    };
    let at = match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    };
    match key {
        Some(key) => Failure::usage(format!("{at}: {key}: {why}")),
        None => Failure::usage(format!("{at}: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Failure> {
        Config::parse(PathBuf::from("c.toml"), text.to_owned())
    }

    #[test]
    fn the_former_plaintext_key_is_still_read() {
        for key in ["allow_plaintext_credentials", "allow_plaintext_auth"] {
            let config = parse(&format!("[defaults]\n{key} = true\n")).expect("valid");
            let settings = config.settings(None).expect("defaults");
            assert_eq!(
                settings.allow_plaintext_credentials.map(|v| *v.get_ref()),
                Some(true),
                "{key}"
            );
        }
    }

    #[test]
    fn accounts_in_file_order_over_defaults() {
        let config = parse(
            "[defaults]\nmaildir = \"/m\"\ndelete = true\n\n\
             [accounts.zeta]\nurl = \"pop3s://z@h\"\n\n\
             [accounts.alpha]\nhost = \"a\"\nmda = \"cat\"\nkeep = true\nmax_size = \"10M\"\n",
        )
        .expect("valid");
        assert_eq!(config.account_names(), ["zeta", "alpha"]);
        let zeta = config.settings(Some("zeta")).expect("zeta");
        assert_eq!(
            zeta.maildir.as_ref().map(|m| m.get_ref().as_str()),
            Some("/m")
        );
        assert_eq!(zeta.delete.as_ref().map(|d| *d.get_ref()), Some(true));
        let alpha = config.settings(Some("alpha")).expect("alpha");
        assert!(alpha.maildir.is_none() && alpha.delete.is_none());
        assert_eq!(
            config.settings(Some("nope")).expect_err("no").exit,
            Exit::Usage
        );
    }

    #[test]
    fn mistakes_name_file_line_and_key() {
        for (text, needle) in [
            (
                "[accounts.a]\nhost = \"h\"\nmaildirr = \"x\"\n",
                "c.toml:3: maildirr: unknown key",
            ),
            (
                "[accounts.a]\n\npassword = \"x\"\n",
                "c.toml:3: password: no key holds a password",
            ),
            ("[defaults]\nport = \"995\"\n", "c.toml:2: port:"),
            ("[defaults]\ntls = \"sometimes\"\n", "c.toml:2: tls:"),
            (
                "[accounts.a]\nurl = \"imap://h\"\n",
                "c.toml:2: url: bad URL",
            ),
            ("[accounts.a]\nmax_size = \"ten\"\n", "c.toml:2: max_size:"),
            ("[acounts.a]\n", "c.toml:1: acounts: unknown key"),
            (
                "[defaults]\nkeep = true\ndelete = true\n",
                "c.toml:3: delete:",
            ),
            ("[defaults\n", "c.toml:1"),
        ] {
            let failure = parse(text).expect_err(text);
            assert_eq!(failure.exit, Exit::Usage);
            assert!(
                failure.message.starts_with(needle),
                "{text:?}: {}",
                failure.message
            );
            assert!(!failure.message.contains('\n'));
        }
    }
}
