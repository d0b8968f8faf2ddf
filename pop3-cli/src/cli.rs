//! The command line (clap derive).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Args, CommandFactory, Parser, Subcommand, ValueEnum};
use pop3_proto::AuthMethod;

use crate::error::EXIT_CODES_HELP;
use crate::policy::Size;

/// A POP3 client: list, retrieve and delete messages, or fetch new ones
/// into a Maildir, an mbox or an MDA without ever losing one.
///
/// The server is given as a URL (pop3s://user@host:port for implicit TLS,
/// pop3://user@host:port for STLS) or with --host/--port/--tls/--user.
/// The password never goes on the command line: it comes from
/// --password-env, --password-command, or a prompt on the terminal.
#[derive(Debug, Parser)]
#[command(name = "pop3", version, after_help = EXIT_CODES_HELP)]
pub(crate) struct Cli {
    /// The server: pop3s://[user@]host[:port] (implicit TLS, port 995) or
    /// pop3://[user@]host[:port] (STLS, port 110).
    #[arg(value_name = "URL")]
    pub(crate) url: Option<String>,

    /// Connection and login options.
    #[command(flatten, next_help_heading = "Connection and login")]
    pub(crate) conn: ConnArgs,

    /// Read accounts from this file [default:
    /// $XDG_CONFIG_HOME/pop3/config.toml, if it exists]. It names commands
    /// pop3 runs, so it must be yours (or root's) and writable by no one
    /// else (`chmod go-w`), as ssh requires of ~/.ssh/config.
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) config: Option<PathBuf>,

    /// Use this account of the config file (options given here override
    /// its settings).
    #[arg(long, value_name = "NAME", global = true)]
    pub(crate) account: Option<String>,

    /// Print the protocol trace to stderr (passwords and SASL exchanges are
    /// shown as <redacted>).
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,

    /// Machine-readable output (JSON on stdout) for capa, serverinfo, stat,
    /// list, uidl and fetch.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How to reach the server and log in.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConnArgs {
    /// Server host name or IP address.
    #[arg(long, global = true)]
    pub(crate) host: Option<String>,

    /// Server port [default: 995 with --tls implicit, 110 otherwise].
    #[arg(long, global = true)]
    pub(crate) port: Option<u16>,

    /// implicit: TLS from the start (POP3S); starttls: plain connection
    /// upgraded with STLS (fails if the server does not offer it); none: no
    /// TLS at all [default: implicit, or from the URL scheme].
    #[arg(long, value_enum, global = true)]
    pub(crate) tls: Option<TlsMode>,

    /// User name to log in as.
    #[arg(long, global = true)]
    pub(crate) user: Option<String>,

    /// Read the password (or OAuth token) from this environment variable.
    #[arg(
        long,
        value_name = "VAR",
        global = true,
        conflicts_with = "password_command"
    )]
    pub(crate) password_env: Option<String>,

    /// Run this command with `sh -c` and use the first line of its output
    /// as the password (or OAuth token).
    #[arg(long, value_name = "CMD", global = true)]
    pub(crate) password_command: Option<String>,

    /// Login method; auto picks the strongest the server offers:
    /// SCRAM-SHA-256-PLUS (over TLS; if the server refuses it, SCRAM-SHA-256
    /// once more without the binding), SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5,
    /// APOP, PLAIN, LOGIN, USER.
    #[arg(long, global = true, value_parser = auth_name())]
    pub(crate) auth: Option<AuthName>,

    /// Allow sending credentials over a connection that is not encrypted
    /// (refused otherwise, exit code 77). Formerly --allow-plaintext-auth,
    /// which still works.
    #[arg(long, global = true, alias = "allow-plaintext-auth")]
    pub(crate) allow_plaintext_credentials: bool,

    /// Wait out the LOGIN-DELAY the server advertised at the last login
    /// before connecting again (exit 75 until then). Off by default: most
    /// servers that advertise it (Gmail, Courier) do not enforce it.
    #[arg(long, global = true)]
    pub(crate) respect_login_delay: bool,

    /// Also trust the CA certificate(s) in this PEM file (certificates are
    /// always verified). A server certificate that is itself in the file is
    /// trusted too, even a self-signed one made by `openssl req -x509`; its
    /// host name and dates are still checked.
    #[arg(long, value_name = "PEM", global = true)]
    pub(crate) ca_file: Option<PathBuf>,

    /// Which roots to trust: system: the operating system's store
    /// (honouring SSL_CERT_FILE and SSL_CERT_DIR; the built-in Mozilla roots
    /// where the system has none); mozilla: the built-in Mozilla roots;
    /// ca-file: only the certificates of --ca-file [default: system].
    #[arg(long, value_enum, global = true)]
    pub(crate) trust: Option<Trust>,

    /// Trust exactly the server certificate with this SHA-256 fingerprint
    /// (64 hex digits, with or without colons, as `pop3 serverinfo` and
    /// `openssl x509 -noout -fingerprint -sha256` print it), instead of
    /// any roots; its host name and dates are not checked. Any other
    /// certificate fails before a command is sent (exit 78).
    #[arg(long, value_name = "SHA256", global = true)]
    pub(crate) tls_fingerprint: Option<String>,

    /// Check the server's certificate against NAME instead of the host
    /// connected to (and ask for NAME's certificate): for a server reached
    /// by an address or an alias that its certificate does not carry. Its
    /// dates and issuer are still checked.
    #[arg(long, value_name = "NAME", global = true)]
    pub(crate) tls_server_name: Option<String>,

    /// Connect through a SOCKS5 proxy: socks5://[user@]host:port
    /// (RFC 1928/1929). The proxy resolves the mail server's name (as Tor
    /// needs); TLS still checks the mail server's certificate for its own
    /// name. A password in the URL is refused: see --proxy-password-env.
    #[arg(long, value_name = "URL", global = true)]
    pub(crate) proxy: Option<String>,

    /// Read the proxy's password (for the user of --proxy) from this
    /// environment variable.
    #[arg(
        long,
        value_name = "VAR",
        global = true,
        conflicts_with = "proxy_password_command"
    )]
    pub(crate) proxy_password_env: Option<String>,

    /// Run this command with `sh -c` and use the first line of its output
    /// as the proxy's password.
    #[arg(long, value_name = "CMD", global = true)]
    pub(crate) proxy_password_command: Option<String>,

    /// Which transport runs the session (all behave the same). Hidden from
    /// --help: it exists to exercise the transports, not for users.
    #[arg(long, value_enum, global = true, hide = true)]
    pub(crate) runtime: Option<Runtime>,

    /// Time limit in seconds for connecting, the TLS handshake, and each
    /// read and write [default: 30 s to connect, 60 s per read/write].
    #[arg(long, value_name = "SECS", global = true,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout: Option<u64>,

    /// Overall time limit in seconds for a whole session, from connecting
    /// to QUIT, however busy the server keeps it [default: 3600].
    #[arg(long, value_name = "SECS", global = true,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) session_timeout: Option<u64>,
}

/// The TLS mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TlsMode {
    /// TLS from the first byte (POP3S, port 995).
    Implicit,
    /// Plain connection upgraded with STLS before anything else (port 110).
    Starttls,
    /// No TLS (credentials need --allow-plaintext-credentials).
    None,
}

/// `--trust`: the roots certificates are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Trust {
    /// The operating system's trust store.
    System,
    /// The Mozilla roots built into pop3.
    Mozilla,
    /// Only the certificates of --ca-file.
    CaFile,
}

/// The runtime (transport crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Runtime {
    /// pop3-blocking (std::net).
    Blocking,
    /// pop3-tokio on a current-thread tokio runtime.
    Tokio,
    /// pop3-smol on async-io.
    Smol,
}

/// A login method (`--auth`, the config file's `auth`, the URL's `;AUTH=`),
/// kept by its name: the core reads it ([`AuthMethod::from_name`]), so
/// only names the core knows are accepted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct AuthName(String);

impl AuthName {
    /// `auto`: the strongest method the server offers.
    pub(crate) fn auto() -> AuthName {
        AuthName("auto".to_owned())
    }

    /// Whether this is `auto`.
    pub(crate) fn is_auto(&self) -> bool {
        matches!(self.method(), Some(AuthMethod::Auto))
    }

    /// The core's login method; `None` never happens (the name was checked
    /// when this was made).
    pub(crate) fn method(&self) -> Option<AuthMethod> {
        AuthMethod::from_name(&self.0)
    }
}

impl TryFrom<String> for AuthName {
    type Error = String;

    fn try_from(name: String) -> Result<AuthName, String> {
        match AuthMethod::from_name(&name) {
            Some(_) => Ok(AuthName(name)),
            None => Err(format!("unknown login method `{name}`")),
        }
    }
}

/// What `--help` (and completions) say of each name `--auth` takes; the
/// core reads the name ([`AuthMethod::from_name`]).
const AUTH_NAMES: [(&str, &str); 12] = [
    ("auto", "The strongest method the server offers"),
    ("user", "USER and PASS"),
    ("apop", "APOP (needs a timestamp in the greeting)"),
    ("plain", "SASL PLAIN"),
    ("login", "SASL LOGIN"),
    ("cram-md5", "SASL CRAM-MD5"),
    ("scram-sha-1", "SASL SCRAM-SHA-1"),
    ("scram-sha-256", "SASL SCRAM-SHA-256"),
    (
        "scram-sha-1-plus",
        "SASL SCRAM-SHA-1-PLUS: bound to the TLS channel; never retried without the binding",
    ),
    (
        "scram-sha-256-plus",
        "SASL SCRAM-SHA-256-PLUS: bound to the TLS channel; never retried without the binding",
    ),
    (
        "xoauth2",
        "SASL XOAUTH2 (the secret is an OAuth 2.0 access token)",
    ),
    (
        "oauthbearer",
        "SASL OAUTHBEARER (the secret is an OAuth 2.0 access token)",
    ),
];

/// `--auth`'s parser: one of [`AUTH_NAMES`], read by the core.
fn auth_name() -> impl TypedValueParser<Value = AuthName> {
    PossibleValuesParser::new(AUTH_NAMES.map(|(name, help)| PossibleValue::new(name).help(help)))
        .try_map(AuthName::try_from)
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show the server's capabilities (CAPA, before login).
    Capa,
    /// Describe the server without logging in: greeting, implementation,
    /// every capability with its meaning, and for TLS the protocol
    /// version, cipher suite and certificate (subject, issuer, names,
    /// validity, SHA-256 fingerprint).
    ///
    /// Sends nothing but CAPA (and STLS, and QUIT). A certificate that is
    /// not trusted is still shown, with the reason and the --tls-fingerprint
    /// (or --ca-file) option that would trust it; nothing is then sent or
    /// read over that TLS connection, and pop3 exits with 78.
    Serverinfo,
    /// Number of messages and total size (STAT).
    Stat,
    /// Message numbers and sizes (LIST).
    List {
        /// Only this message.
        #[arg(value_parser = msg_num())]
        msg: Option<u32>,
    },
    /// Message numbers and unique ids (UIDL).
    Uidl {
        /// Only this message.
        #[arg(value_parser = msg_num())]
        msg: Option<u32>,
    },
    /// Write message N to stdout, byte for byte (RETR).
    Retr {
        /// The message number.
        #[arg(value_parser = msg_num())]
        msg: u32,
    },
    /// Write the headers and the first LINES body lines of message N to
    /// stdout (TOP).
    Top {
        /// The message number.
        #[arg(value_parser = msg_num())]
        msg: u32,
        /// How many body lines.
        lines: u32,
    },
    /// Delete messages (DELE, committed by QUIT; all or nothing).
    Dele {
        /// The message numbers.
        #[arg(required = true, value_parser = msg_num())]
        msgs: Vec<u32>,
    },
    /// Download the messages not downloaded before (by UIDL) into a
    /// Maildir, an mbox or an MDA; optionally delete them from the server
    /// once they are safely stored.
    ///
    /// Without a server, every account of the config file is fetched in
    /// turn (one summary line each); `pop3 fetch NAME...` fetches those.
    ///
    /// Each message is made durable (fsync) before its UID is recorded, and
    /// only recorded messages are deleted, after all retrievals, by QUIT. An
    /// interrupted fetch (Ctrl-C, kill, lost connection) loses nothing; the
    /// next one downloads exactly what was not saved. Maildir file names are
    /// derived from the account, the UID and the content, so nothing is
    /// stored twice and a new message under a reused UID is not taken for
    /// an old one.
    ///
    /// A server that hands out its mail a batch per session (Gmail: about
    /// 250 messages) gets further sessions in a row while each brings only
    /// new mail and stores all of it, up to --max-sessions; each session
    /// deletes (with --delete) only what it stored.
    #[command(after_help = EXIT_CODES_HELP)]
    Fetch(FetchArgs),
    /// Get an OAuth 2.0 token for an account with a provider key (Gmail,
    /// Outlook.com, Microsoft 365), or show the tokens kept.
    Oauth {
        /// What to do.
        #[command(subcommand)]
        what: OauthCommand,
    },
    /// Write the man pages or shell completions.
    ///
    /// No server is needed: `pop3 generate man --dir ~/.local/share/man`
    /// (then `man pop3`, `man pop3-config`), `pop3 generate completions
    /// bash > ~/.local/share/bash-completion/completions/pop3`.
    Generate {
        /// What to write.
        #[command(subcommand)]
        what: Generate,
    },
}

/// `oauth`.
#[derive(Debug, Subcommand)]
pub(crate) enum OauthCommand {
    /// Sign in: prints the provider's URL (and opens a browser when there is
    /// one) and waits on 127.0.0.1 for the browser to come back; the tokens
    /// are kept in $XDG_STATE_HOME/pop3/NAME.oauth.json (mode 0600), and
    /// `pop3 fetch` refreshes them from then on.
    Login {
        /// The account of the config file.
        #[arg(value_name = "NAME")]
        account: String,
        /// Sign in on another device with a code instead (Microsoft; for SSH
        /// sessions and machines without a browser). Google does not allow
        /// it for mail.
        #[arg(long)]
        device: bool,
        /// Print the URL only; do not start a browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// For each OAuth account: provider, scopes, when the access token
    /// expires, whether a refresh token is kept and where; never a token.
    Status {
        /// These accounts [default: every account with a provider key].
        #[arg(value_name = "NAME")]
        accounts: Vec<String>,
    },
}

/// `generate`.
#[derive(Debug, Subcommand)]
pub(crate) enum Generate {
    /// A man page in roff on stdout: pop3(1), every command and option,
    /// or pop3-config(5), every key of the config file; with --dir, both
    /// into DIR/man1 and DIR/man5.
    Man {
        /// Which page.
        #[arg(value_enum, default_value = "pop3")]
        page: ManPage,
        /// Write every page under DIR instead (DIR/man1/pop3.1,
        /// DIR/man5/pop3-config.5), e.g. ~/.cargo/share/man beside
        /// ~/.cargo/bin, and list the files written.
        #[arg(long, value_name = "DIR", conflicts_with = "page")]
        dir: Option<PathBuf>,
    },
    /// Completions for this shell.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// `generate man`'s pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ManPage {
    /// pop3(1): the command, every command and option.
    Pop3,
    /// pop3-config(5): the config file and every key.
    #[value(name = "pop3-config")]
    Pop3Config,
}

/// `fetch`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("sink").args(["maildir", "mbox", "mda"])))]
pub(crate) struct FetchArgs {
    /// Accounts of the config file to fetch [default: all of them, when
    /// no server is given].
    #[arg(value_name = "NAME")]
    pub(crate) accounts: Vec<String>,

    /// Deliver into this Maildir (created if missing, once logged in; LF
    /// line endings). State is kept in DIR/pop3-state/.
    #[arg(long, value_name = "DIR")]
    pub(crate) maildir: Option<PathBuf>,

    /// Append to this mbox file (mboxrd quoting, LF line endings). State is
    /// kept in FILE.pop3-state/.
    #[arg(long, value_name = "FILE")]
    pub(crate) mbox: Option<PathBuf>,

    /// Run this command with `sh -c` once per message, message on stdin
    /// (LF line endings); exit status 0 means delivered. State is kept in
    /// $XDG_STATE_HOME/pop3/ (~/.local/state/pop3/).
    #[arg(long, value_name = "CMD")]
    pub(crate) mda: Option<String>,

    /// Keep the messages on the server (the default).
    #[arg(long, conflicts_with = "delete")]
    pub(crate) keep: bool,

    /// Delete from the server the messages that are safely stored (after
    /// all retrievals; committed by QUIT).
    #[arg(long)]
    pub(crate) delete: bool,

    /// Keep the list of fetched UIDs in this file instead.
    #[arg(long, value_name = "FILE")]
    pub(crate) state: Option<PathBuf>,

    /// Delete from the server the messages first stored at least N days
    /// ago (0: all stored ones, like --delete).
    #[arg(long, value_name = "N", conflicts_with = "keep")]
    pub(crate) keep_days: Option<u32>,

    /// Leave messages bigger than SIZE on the server, unfetched, and report
    /// them (SIZE: bytes, or 512k, 10M, 1G).
    #[arg(long, value_name = "SIZE")]
    pub(crate) max_size: Option<Size>,

    /// Delete messages bigger than SIZE from the server without fetching
    /// them.
    #[arg(long, value_name = "SIZE")]
    pub(crate) delete_bigger_than: Option<Size>,

    /// Fetch at most N new messages in this run (the oldest first).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_messages: Option<u32>,

    /// Open at most N sessions in this run [default: 20]. A server that
    /// hands out its mail a batch per session (Gmail: about 250 messages,
    /// then none until the next login) gets another session as long as the
    /// last one listed only new mail and all of it was stored, and the
    /// server advertises EXPIRE 0; 1 fetches one batch per run.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_sessions: Option<u32>,

    /// Run this command with `sh -c` for each new message, its headers
    /// (TOP n 0) on stdin. It prints its verdict on stdout and exits 0:
    /// `fetch` (or nothing), `skip` (leave on the server), or `delete`
    /// (delete without fetching; only with --delete, otherwise skip). Any
    /// other outcome (another exit status, a signal, another word) stops
    /// the fetch before anything is deleted (exit 75). Changed: exit
    /// statuses 1 and 2 no longer mean delete and skip, since 1 is also
    /// what a crashing script returns.
    #[arg(long, value_name = "CMD")]
    pub(crate) filter: Option<String>,

    /// Store messages (Maildir) and feed them (MDA, filter) as RETR sent
    /// them, with CRLF line endings, instead of LF. Not for an mbox, which
    /// is always LF.
    #[arg(long)]
    pub(crate) exact_bytes: bool,
}

/// Whether `arg` is a `pop3s://`, `pop3://` or `pop://` URL.
fn is_url(arg: &str) -> bool {
    arg.split_once("://").is_some_and(|(scheme, _)| {
        ["pop3s", "pop3", "pop"]
            .iter()
            .any(|s| scheme.eq_ignore_ascii_case(s))
    })
}

/// Moves the server URL, wherever it is on the command line, to just after
/// the program name, so that `pop3 URL stat` and `pop3 stat URL` (and
/// `pop3 fetch URL`) mean the same. The value of an option (`--mda CMD`,
/// ...) is never taken for the URL, nor is anything after `--`.
pub(crate) fn relocate_url(mut args: Vec<OsString>) -> Vec<OsString> {
    let command = Cli::command();
    let mut valued = std::collections::HashSet::new();
    let all = command
        .get_arguments()
        .chain(command.get_subcommands().flat_map(|c| c.get_arguments()));
    for arg in all {
        if arg.is_positional() || !arg.get_action().takes_values() {
            continue;
        }
        if let Some(long) = arg.get_long() {
            valued.insert(format!("--{long}"));
        }
        if let Some(short) = arg.get_short() {
            valued.insert(format!("-{short}"));
        }
    }
    let mut found = None;
    let mut i = 1;
    while i < args.len() {
        let Some(text) = args[i].to_str() else {
            i += 1;
            continue;
        };
        if text == "--" {
            break;
        }
        if valued.contains(text) {
            i += 2;
            continue;
        }
        if is_url(text) {
            found = Some(i);
            break;
        }
        i += 1;
    }
    if let Some(at) = found.filter(|&at| at > 1) {
        let url = args.remove(at);
        args.insert(1, url);
    }
    args
}

/// clap's error as one line: its text up to the first blank line (so the
/// list of missing arguments is kept, the usage and tips are not), without
/// the `error: ` prefix.
pub(crate) fn one_line(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let mut parts = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            break;
        }
        parts.push(line.strip_prefix("error: ").unwrap_or(line));
    }
    parts.join(" ")
}

fn msg_num() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn url_before_or_after_the_command() {
        let cli = Cli::try_parse_from(["pop3", "pop3s://a@h", "stat"]).expect("parses");
        assert_eq!(cli.url.as_deref(), Some("pop3s://a@h"));
        let args = relocate_url(
            [
                "pop3",
                "fetch",
                "--mda",
                "pop3://x",
                "--delete",
                "pop3s://a@h",
            ]
            .map(OsString::from)
            .to_vec(),
        );
        let cli = Cli::try_parse_from(args).expect("parses");
        assert_eq!(cli.url.as_deref(), Some("pop3s://a@h"));
        let Command::Fetch(f) = cli.command else {
            panic!("not fetch")
        };
        assert_eq!(f.mda.as_deref(), Some("pop3://x"));
        for args in [
            &["pop3", "list", "pop3s://a@h", "3"][..],
            &["pop3", "list", "3", "pop3s://a@h"],
            &["pop3", "pop3s://a@h", "list", "3"],
        ] {
            let args = relocate_url(args.iter().map(OsString::from).collect());
            let cli = Cli::try_parse_from(args).expect("parses");
            assert_eq!(cli.url.as_deref(), Some("pop3s://a@h"));
            assert!(matches!(cli.command, Command::List { msg: Some(3) }));
        }
        let cli = Cli::try_parse_from(["pop3", "--host", "h", "retr", "3", "--runtime", "tokio"])
            .expect("parses");
        assert!(matches!(cli.command, Command::Retr { msg: 3 }));
        assert_eq!(cli.conn.runtime, Some(Runtime::Tokio));
        assert!(Cli::try_parse_from(["pop3", "retr", "0"]).is_err());
        assert!(Cli::try_parse_from(["pop3", "fetch", "--maildir", "a", "--mbox", "b"]).is_err());
    }
}
