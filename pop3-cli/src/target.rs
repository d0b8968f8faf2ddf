//! Which server and account: the URL, the flags, and the password.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use pop3_proto::Secret;

use pop3_transport::{PeerCertificates, Sha256Fingerprint};

use crate::cli::{AuthName, ConnArgs, TlsMode, Trust};
use crate::error::{Exit, Failure};
use crate::transport::ConnectConfig;

/// A parsed `pop3s://` or `pop3://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    /// Implicit for `pop3s`, STLS for `pop3`.
    pub(crate) tls: TlsMode,
    /// The user, percent-decoded.
    pub(crate) user: Option<String>,
    /// The host (IPv6 without brackets).
    pub(crate) host: String,
    /// The port, if given.
    pub(crate) port: Option<u16>,
    /// `;AUTH=` from RFC 2384 (`*` is auto).
    pub(crate) auth: Option<AuthName>,
}

fn percent_decode(s: &str) -> Result<String, Failure> {
    let out = pop3_transport::socks5::percent_decode(s)
        .ok_or_else(|| Failure::usage(format!("bad %-escape in URL: {s}")))?;
    String::from_utf8(out).map_err(|_| Failure::usage("URL user name is not UTF-8"))
}

/// `;AUTH=` (RFC 2384): `*` for any method, `+APOP`, or a SASL mechanism
/// (and `USER`), by the name the core knows it by.
fn auth_from_url(value: &str) -> Result<AuthName, Failure> {
    let name = match value {
        "*" => "auto",
        _ if value.eq_ignore_ascii_case("+APOP") => "apop",
        // Spelled `*` and `+APOP` in a URL.
        _ if value.eq_ignore_ascii_case("auto") || value.eq_ignore_ascii_case("apop") => "",
        _ => value,
    };
    AuthName::try_from(name.to_owned())
        .map_err(|_| Failure::usage(format!("URL: unknown ;AUTH={value}")))
}

impl Url {
    /// Parses `scheme://[user[;AUTH=mech]@]host[:port][/]`.
    pub(crate) fn parse(url: &str) -> Result<Url, Failure> {
        let bad = |why: &str| Failure::usage(format!("bad URL {url:?}: {why}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected pop3s://host or pop3://host"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "pop3s" => TlsMode::Implicit,
            "pop3" | "pop" => TlsMode::Starttls,
            _ => return Err(bad("the scheme must be pop3s or pop3")),
        };
        let authority = match rest.find(['/', '?', '#']) {
            Some(at) if rest[at..] == *"/" => &rest[..at],
            Some(_) => return Err(bad("paths, queries and fragments are not supported")),
            None => rest,
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let mut user = None;
        let mut auth = None;
        if let Some(info) = userinfo {
            let (name, params) = match info.split_once(';') {
                Some((n, p)) => (n, Some(p)),
                None => (info, None),
            };
            // A colon reads as `user:password`, and a password is never taken
            // from a URL (nor sent as a user name, where it would land in the
            // server's log). Gmail's documented `recent:` prefix is the one
            // unambiguous case; any other colon must be written %3A.
            if name.contains(':') && !has_recent_prefix(name) {
                return Err(Failure::usage(
                    "a colon in the URL's user part reads as user:password, and passwords \
                     are never taken from the command line: if the colon belongs to the \
                     user name, write it %3A (recent%3Aalice%40gmail.com) or use --user; \
                     give the password with --password-env VAR or --password-command CMD",
                ));
            }
            if let Some(params) = params {
                let value = params
                    .strip_prefix("AUTH=")
                    .or_else(|| params.strip_prefix("auth="))
                    .ok_or_else(|| bad("only ;AUTH= is understood after the user"))?;
                auth = Some(auth_from_url(value)?);
            }
            if !name.is_empty() {
                user = Some(percent_decode(name)?);
            }
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in the host"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
            };
            (host, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        // What reaches the resolver, the TLS name check and the terminal: an
        // IPv6 address in brackets, or a name of letters, digits, `-`, `.`
        // and `_` (non-ASCII letters for internationalised names).
        let valid = if hostport.starts_with('[') {
            host.parse::<std::net::Ipv6Addr>().is_ok()
        } else {
            host.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_'))
        };
        if !valid {
            return Err(bad("the host is not a host name or address"));
        }
        if user
            .as_deref()
            .is_some_and(|u| u.chars().any(char::is_control))
        {
            return Err(bad("control characters in the user name"));
        }
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| bad("bad port"))?,
            ),
            None => None,
        };
        Ok(Url {
            tls,
            user,
            host: host.to_owned(),
            port,
            auth,
        })
    }
}

/// Everything needed to connect and log in.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// How to connect.
    pub(crate) connect: ConnectConfig,
    /// Who to log in as, if known.
    pub(crate) user: Option<String>,
    /// The login method.
    pub(crate) auth: AuthName,
}

impl Target {
    /// `user@host`, naming the account in state files and Maildir names.
    /// Not the port or the TLS mode: switching between `pop3://` and
    /// `pop3s://` is the same mailbox.
    pub(crate) fn account(&self) -> Result<String, Failure> {
        Ok(format!(
            "{}@{}",
            self.require_user()?,
            self.connect.host.to_ascii_lowercase()
        ))
    }

    /// The account with the port (`user@host:port`): what a server's
    /// `LOGIN-DELAY` applies to, so one server's delay never holds back
    /// another on the same host.
    pub(crate) fn login_key(&self) -> Result<String, Failure> {
        Ok(format!("{}:{}", self.account()?, self.connect.port))
    }

    /// The user, or a usage error.
    pub(crate) fn require_user(&self) -> Result<&str, Failure> {
        self.user
            .as_deref()
            .ok_or_else(|| Failure::usage("no user name: use --user NAME or NAME@ in the URL"))
    }
}

fn merge<T: PartialEq + std::fmt::Debug>(
    flag: Option<T>,
    from_url: Option<T>,
    what: &str,
) -> Result<Option<T>, Failure> {
    match (flag, from_url) {
        (Some(a), Some(b)) if a != b => Err(Failure::usage(format!(
            "the {what} is given twice: {a:?} with --{what} and {b:?} in the URL"
        ))),
        (Some(a), _) => Ok(Some(a)),
        (None, b) => Ok(b),
    }
}

/// Gmail's `recent:` mode prefix before an address (`recent:alice@gmail.com`),
/// whose colon is part of the user name. Without the `@` of an address,
/// `recent:hunter2` may well be a user `recent` and a password.
fn has_recent_prefix(name: &str) -> bool {
    name.get(..7)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("recent:"))
        && name.get(7..).is_some_and(|address| {
            let at = address.contains('@') || address.to_ascii_lowercase().contains("%40");
            at && !address.contains(':') && !address.starts_with('@')
        })
}

/// `--proxy`'s URL, which must not hold a password: the command line is
/// visible to every user (`ps`), and the config file is not the place for
/// one either. The message does not repeat the URL.
pub(crate) fn parse_proxy(url: &str) -> Result<pop3_transport::socks5::Socks5Proxy, Failure> {
    let proxy = pop3_transport::socks5::Socks5Proxy::parse(url)
        .map_err(|e| Failure::usage(format!("--proxy: {e}")))?;
    if proxy.password.is_some() {
        return Err(Failure::usage(
            "--proxy: the URL holds a password; give only the user name \
             (socks5://USER@HOST:PORT) and the password with --proxy-password-env VAR \
             or --proxy-password-command CMD",
        ));
    }
    Ok(proxy)
}

/// `--tls-server-name`'s value: a DNS name or an IP address, checked before
/// connecting.
pub(crate) fn tls_server_name(name: &str) -> Result<String, Failure> {
    pop3_transport::Options::new()
        .server_name(name)
        .tls_server_name(name)
        .map(|_| name.to_owned())
        .map_err(|_| {
            Failure::usage(format!(
                "--tls-server-name {name:?}: not a host name or an IP address"
            ))
        })
}

/// Combines the URL (if any) and the flags.
pub(crate) fn resolve(url: Option<&str>, args: &ConnArgs) -> Result<Target, Failure> {
    let url = url.map(Url::parse).transpose()?;
    let (url_host, url_port, url_user, url_tls, url_auth) = match url {
        Some(u) => (Some(u.host), u.port, u.user, Some(u.tls), u.auth),
        None => (None, None, None, None, None),
    };
    let host = merge(args.host.clone(), url_host, "host")?.ok_or_else(|| {
        Failure::usage(
            "no server: give a URL (pop3s://user@host) or --host, \
             or name an account of the config file (--account NAME)",
        )
    })?;
    let tls = match (args.tls, url_tls) {
        (None, None) => TlsMode::Implicit,
        (Some(t), None) | (None, Some(t)) => t,
        (Some(TlsMode::Implicit), Some(TlsMode::Implicit)) => TlsMode::Implicit,
        (Some(t @ (TlsMode::Starttls | TlsMode::None)), Some(TlsMode::Starttls)) => t,
        (Some(flag), Some(_)) => {
            return Err(Failure::usage(format!(
                "--tls {} contradicts the URL scheme (pop3s:// is implicit TLS, pop3:// is STLS or none)",
                match flag {
                    TlsMode::Implicit => "implicit",
                    TlsMode::Starttls => "starttls",
                    TlsMode::None => "none",
                }
            )))
        }
    };
    let port = merge(args.port, url_port, "port")?.unwrap_or(match tls {
        TlsMode::Implicit => 995,
        TlsMode::Starttls | TlsMode::None => 110,
    });
    let user = merge(args.user.clone(), url_user, "user")?;
    // Refused before connecting: a line break would end the command early.
    if let Some(user) = &user {
        if user.is_empty() || user.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0')) {
            return Err(Failure::usage(
                "the user name is empty or contains CR, LF or NUL",
            ));
        }
    }
    let auth = match (args.auth.clone(), url_auth) {
        (None, Some(a)) => a,
        (Some(a), Some(u)) if a.is_auto() => u,
        (Some(a), _) => a,
        (None, None) => AuthName::auto(),
    };
    let ca_pem = match &args.ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| Failure::io(format_args!("--ca-file {}", path.display()), &e))?,
        ),
        None => None,
    };
    let fingerprint = match &args.tls_fingerprint {
        Some(text) => Some(
            text.parse::<Sha256Fingerprint>()
                .map_err(|e| Failure::usage(format!("--tls-fingerprint: {e}")))?,
        ),
        None => None,
    };
    if fingerprint.is_some() && tls == TlsMode::None {
        // A pin that is silently ignored would look like protection.
        return Err(Failure::usage(
            "--tls-fingerprint needs TLS: use --tls implicit or --tls starttls",
        ));
    }
    let server_name = match &args.tls_server_name {
        Some(name) => Some(tls_server_name(name)?),
        None => None,
    };
    if server_name.is_some() && tls == TlsMode::None {
        return Err(Failure::usage(
            "--tls-server-name needs TLS: use --tls implicit or --tls starttls",
        ));
    }
    let proxy = match &args.proxy {
        Some(url) => Some(parse_proxy(url)?),
        None => None,
    };
    if proxy.as_ref().is_none_or(|p| p.username.is_none())
        && (args.proxy_password_env.is_some() || args.proxy_password_command.is_some())
    {
        return Err(Failure::usage(
            "a proxy password needs a proxy URL with a user name: --proxy socks5://USER@HOST:PORT",
        ));
    }
    let trust = args.trust.unwrap_or(Trust::System);
    if trust == Trust::CaFile && ca_pem.is_none() && fingerprint.is_none() {
        return Err(Failure::usage(
            "--trust ca-file trusts only the certificates of --ca-file: give --ca-file PEM",
        ));
    }
    Ok(Target {
        connect: ConnectConfig {
            host,
            port,
            tls,
            ca_pem,
            trust,
            fingerprint,
            server_name,
            proxy,
            presented: PeerCertificates::new(),
            timeout: args.timeout.map(Duration::from_secs),
            session_timeout: args.session_timeout.map(Duration::from_secs),
            allow_plaintext_credentials: args.allow_plaintext_credentials,
        },
        user,
        auth,
    })
}

/// The password (or token): `--password-env`, `--password-command`, or a
/// prompt on the terminal. Never an argument.
pub(crate) fn password(args: &ConnArgs, account: &str) -> Result<Secret<String>, Failure> {
    if let Some(var) = &args.password_env {
        return secret_from_env("--password-env", var);
    }
    if let Some(command) = &args.password_command {
        return secret_from_command("--password-command", command);
    }
    match rpassword::prompt_password(format!("Password for {account}: ")) {
        Ok(p) => Ok(Secret::new(p)),
        Err(e) => Err(Failure::usage(format!(
            "no password: use --password-env VAR or --password-command CMD \
             (cannot prompt on a terminal: {e})"
        ))),
    }
}

/// The proxy's password, for a proxy URL with a user name:
/// `--proxy-password-env` or `--proxy-password-command`, as the mail
/// password (a password in the URL is refused when it is parsed). `None`:
/// the proxy takes no password.
pub(crate) fn proxy_password(args: &ConnArgs) -> Result<Option<Secret<String>>, Failure> {
    if let Some(var) = &args.proxy_password_env {
        return secret_from_env("--proxy-password-env", var).map(Some);
    }
    if let Some(command) = &args.proxy_password_command {
        return secret_from_command("--proxy-password-command", command).map(Some);
    }
    Ok(None)
}

/// The value of the variable `var`, for `option`.
fn secret_from_env(option: &str, var: &str) -> Result<Secret<String>, Failure> {
    match std::env::var(var) {
        Ok(value) => Ok(Secret::new(value)),
        Err(std::env::VarError::NotPresent) => Err(Failure::usage(format!(
            "{option} {var}: the variable is not set"
        ))),
        Err(std::env::VarError::NotUnicode(_)) => Err(Failure::usage(format!(
            "{option} {var}: the value is not UTF-8"
        ))),
    }
}

/// The most a password command may print. A password or an OAuth token is
/// far shorter; the buffer is allocated once at this size, so that reading
/// never moves the secret and leaves a copy behind in freed memory.
const MAX_PASSWORD_OUTPUT: usize = 64 * 1024;

/// The first line `command` prints, for `option`; the command runs without
/// the variables that hold secrets, and what it printed is wiped.
fn secret_from_command(option: &str, command: &str) -> Result<Secret<String>, Failure> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    crate::secrets::scrub(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::io(format_args!("{option}: cannot run sh"), &e))?;
    let mut output = Secret::new(vec![0u8; MAX_PASSWORD_OUTPUT + 1]);
    let mut len = 0;
    if let Some(mut stdout) = child.stdout.take() {
        let buffer = output.expose_mut();
        loop {
            let room = &mut buffer[len..];
            if room.is_empty() {
                break;
            }
            match stdout.read(room) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Failure::io(option, &e));
                }
            }
        }
        if len > MAX_PASSWORD_OUTPUT {
            // Not a password: stop it rather than wait for it to finish.
            let _ = child.kill();
        }
    }
    let status = child.wait().map_err(|e| Failure::io(option, &e))?;
    if len > MAX_PASSWORD_OUTPUT {
        return Err(Failure::new(
            Exit::NoPerm,
            format!("{option} printed more than {MAX_PASSWORD_OUTPUT} bytes; no password"),
        ));
    }
    if !status.success() {
        return Err(Failure::new(
            Exit::NoPerm,
            format!("{option} failed ({status}); no password"),
        ));
    }
    let bytes = &output.expose()[..len];
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(Failure::new(
            Exit::NoPerm,
            format!("{option} printed no password"),
        ));
    }
    let text = std::str::from_utf8(line)
        .map_err(|_| Failure::new(Exit::NoPerm, format!("{option}: the password is not UTF-8")))?;
    Ok(Secret::new(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("pop3s://alice@mail.example.org:1995").expect("valid");
        assert_eq!(u.tls, TlsMode::Implicit);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.host, "mail.example.org");
        assert_eq!(u.port, Some(1995));
        let u = Url::parse("pop3://bob%40example.org;AUTH=*@[::1]/").expect("valid");
        assert_eq!(u.tls, TlsMode::Starttls);
        assert_eq!(u.user.as_deref(), Some("bob@example.org"));
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, None);
        assert!(u.auth.is_some_and(|a| a.is_auto()));
        let u = Url::parse("pop3s://xn--bcher-kva.example_1.org").expect("valid");
        assert_eq!(u.host, "xn--bcher-kva.example_1.org");
        let u = Url::parse("pop3s://carol@example.org@host").expect("valid");
        assert_eq!(u.user.as_deref(), Some("carol@example.org"));
        assert_eq!(u.host, "host");
        let u = Url::parse("pop3s://recent:alice@gmail.com@pop.gmail.com").expect("valid");
        assert_eq!(u.user.as_deref(), Some("recent:alice@gmail.com"));
        assert_eq!(u.host, "pop.gmail.com");
        let u = Url::parse("pop3s://recent%3Aalice%40gmail.com;AUTH=*@h:995").expect("valid");
        assert_eq!(u.user.as_deref(), Some("recent:alice@gmail.com"));
        assert_eq!(u.port, Some(995));
        crate::fuzzing::url("pop3s://recent:alice@gmail.com;AUTH=+APOP@h/");
        for bad in [
            "imap://h",
            "pop3s://",
            "pop3s://h:0",
            "pop3s://h:99999",
            "pop3s://h/INBOX",
            "h:995",
            // Found by the cli_url fuzz target: a NUL in the host.
            "pop3://be\u{0}0ob;AU:1]:110",
            "pop3s://mail example.org",
            "pop3s://[not-v6]:995",
            "pop3s://a%0Ab@h",
            // A password in the URL is neither used nor sent as a user name.
            "pop3s://alice:secret@h",
            "pop3s://alice:s@cret@h",
            "pop3s://recent:alice:secret@h",
            "pop3s://recent:secret@mail.example.org",
        ] {
            let f = Url::parse(bad).expect_err(bad);
            assert_eq!(f.exit, Exit::Usage, "{bad}");
            assert!(!f.message.contains("secret"));
        }
        let f = Url::parse("pop3s://alice:secret@h").expect_err("a password");
        assert!(
            f.message.contains("%3A") && f.message.contains("--user"),
            "{}",
            f.message
        );
        let u = Url::parse("pop3s://Recent:bob@example.org@h").expect("the prefix in any case");
        assert_eq!(u.user.as_deref(), Some("Recent:bob@example.org"));
    }
}
