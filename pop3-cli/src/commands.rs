//! The commands other than `fetch`, and login.

use std::io::{self, Write};

use pop3_proto::{AuthMethod, MsgNum, Secret};
use serde::Serialize;

use crate::cli::{AuthChoice, Cli, Command};
use crate::error::{auth_failure, Failure, NetError};
use crate::fetch::fetch;
use crate::session::{capability_line, install_wire_trace, Session};
use crate::target::{password, resolve, Target};
use crate::transport::connect;

/// The library's login method for `--auth`.
fn auth_method(choice: AuthChoice) -> AuthMethod {
    match choice {
        AuthChoice::Auto => AuthMethod::Auto,
        AuthChoice::User => AuthMethod::UserPass,
        AuthChoice::Apop => AuthMethod::Apop,
        AuthChoice::Plain => AuthMethod::Plain,
        AuthChoice::Login => AuthMethod::Login,
        AuthChoice::CramMd5 => AuthMethod::CramMd5,
        AuthChoice::ScramSha1 => AuthMethod::ScramSha1,
        AuthChoice::ScramSha256 => AuthMethod::ScramSha256,
        AuthChoice::XOauth2 => AuthMethod::XOAuth2,
        AuthChoice::OAuthBearer => AuthMethod::OAuthBearer,
    }
}

/// Logs in. The library's core checks the credentials before anything is
/// sent and, with `--auth auto`, picks the strongest method offered.
fn login(
    session: &mut dyn Session,
    target: &Target,
    secret: Secret<String>,
) -> Result<(), Failure> {
    let user = target.require_user()?;
    let method = auth_method(target.auth);
    let name = method.name().to_owned();
    session.authenticate(method, user, secret).map_err(|e| {
        let used = session.login_mechanism().unwrap_or(name);
        auth_failure(e, &used)
    })
}

/// A writer that remembers its own failure, so that a broken stdout is not
/// mistaken for a broken connection.
struct Watched<W: Write> {
    inner: W,
    failed: Option<io::Error>,
}

impl<W: Write> Write for Watched<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| {
            self.failed = Some(io::Error::new(e.kind(), e.to_string()));
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|e| {
            self.failed = Some(io::Error::new(e.kind(), e.to_string()));
        })
    }
}

fn stdout_failure(e: &io::Error) -> Failure {
    Failure::io("stdout", e)
}

fn print_json(value: &impl Serialize) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, value).map_err(|e| stdout_failure(&io::Error::other(e)))?;
    writeln!(out).map_err(|e| stdout_failure(&e))
}

fn print_lines(lines: impl IntoIterator<Item = String>) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}").map_err(|e| stdout_failure(&e))?;
    }
    out.flush().map_err(|e| stdout_failure(&e))
}

#[derive(Serialize)]
struct JsonList {
    msg: u32,
    size: u64,
}

#[derive(Serialize)]
struct JsonUidl<'a> {
    msg: u32,
    uid: &'a str,
}

#[derive(Serialize)]
struct JsonStat {
    count: u32,
    size: u64,
}

#[derive(Serialize)]
struct JsonCapa {
    greeting: String,
    encrypted: bool,
    capabilities: Vec<String>,
}

fn msg(n: u32) -> Result<MsgNum, Failure> {
    MsgNum::new(n).ok_or_else(|| Failure::usage("message numbers start at 1"))
}

/// `RETR`/`TOP` into stdout.
fn body_to_stdout(
    session: &mut dyn Session,
    run: impl FnOnce(&mut dyn Session, &mut dyn Write) -> Result<u64, NetError>,
) -> Result<(), Failure> {
    let stdout = io::stdout();
    let mut out = Watched {
        inner: stdout.lock(),
        failed: None,
    };
    let result = run(session, &mut out);
    if let Some(e) = out.failed.take() {
        return Err(stdout_failure(&e));
    }
    result?;
    out.flush().map_err(|e| stdout_failure(&e))
}

/// Runs the command line; `Ok` is exit code 0.
pub(crate) fn run(cli: Cli) -> Result<(), Failure> {
    let url = match (&cli.url, &cli.command) {
        (Some(_), Command::Fetch(f)) if f.url.is_some() => {
            return Err(Failure::usage("the URL is given twice"))
        }
        (Some(url), _) => Some(url.as_str()),
        (None, Command::Fetch(f)) => f.url.as_deref(),
        (None, _) => None,
    };
    let target = resolve(url, &cli.conn)?;
    let needs_login = !matches!(cli.command, Command::Capa);
    // Ask for the password before connecting: a prompt can take a while.
    let secret = if needs_login {
        Some(password(&cli.conn, &target.account()?)?)
    } else {
        None
    };
    if cli.verbose {
        eprintln!(
            "*  connecting to {}:{} ({})",
            target.connect.host,
            target.connect.port,
            match target.connect.tls {
                crate::cli::TlsMode::Implicit => "implicit TLS",
                crate::cli::TlsMode::Starttls => "STLS",
                crate::cli::TlsMode::None => "no TLS",
            },
        );
        install_wire_trace();
    }
    let mut session = connect(cli.conn.runtime, &target.connect)?;
    if let Some(secret) = secret {
        login(session.as_mut(), &target, secret)?;
    }
    match &cli.command {
        Command::Capa => {
            let caps = session
                .capa()
                .map_err(|e| Failure::from(e).context("CAPA"))?;
            let lines: Vec<String> = caps.list.iter().map(capability_line).collect();
            if cli.json {
                print_json(&JsonCapa {
                    greeting: session.greeting().text.to_string(),
                    encrypted: session.is_encrypted(),
                    capabilities: lines,
                })?;
            } else {
                print_lines(lines)?;
            }
        }
        Command::Stat => {
            let stat = session
                .stat()
                .map_err(|e| Failure::from(e).context("STAT"))?;
            if cli.json {
                print_json(&JsonStat {
                    count: stat.count,
                    size: stat.size,
                })?;
            } else {
                print_lines([format!("{} {}", stat.count, stat.size)])?;
            }
        }
        Command::List { msg: n } => {
            let entries = match n {
                Some(n) => vec![session
                    .list_one(msg(*n)?)
                    .map_err(|e| Failure::from(e).context(format_args!("LIST {n}")))?],
                None => session
                    .list()
                    .map_err(|e| Failure::from(e).context("LIST"))?,
            };
            if cli.json {
                let list: Vec<JsonList> = entries
                    .iter()
                    .map(|e| JsonList {
                        msg: e.msg.get(),
                        size: e.size,
                    })
                    .collect();
                print_json(&list)?;
            } else {
                print_lines(entries.iter().map(|e| format!("{} {}", e.msg, e.size)))?;
            }
        }
        Command::Uidl { msg: n } => {
            let entries = match n {
                Some(n) => vec![session
                    .uidl_one(msg(*n)?)
                    .map_err(|e| Failure::from(e).context(format_args!("UIDL {n}")))?],
                None => session
                    .uidl()
                    .map_err(|e| Failure::from(e).context("UIDL"))?,
            };
            if cli.json {
                let list: Vec<JsonUidl<'_>> = entries
                    .iter()
                    .map(|e| JsonUidl {
                        msg: e.msg.get(),
                        uid: &e.uid,
                    })
                    .collect();
                print_json(&list)?;
            } else {
                print_lines(entries.iter().map(|e| format!("{} {}", e.msg, e.uid)))?;
            }
        }
        Command::Retr { msg: n } => {
            let m = msg(*n)?;
            body_to_stdout(session.as_mut(), |s, out| s.retr_to(m, out))
                .map_err(|f| f.context(format_args!("RETR {n}")))?;
        }
        Command::Top { msg: n, lines } => {
            let m = msg(*n)?;
            body_to_stdout(session.as_mut(), |s, out| s.top_to(m, *lines, out))
                .map_err(|f| f.context(format_args!("TOP {n} {lines}")))?;
        }
        Command::Dele { msgs } => {
            for &n in msgs {
                // On any failure the connection is dropped without QUIT:
                // the server deletes nothing.
                session.dele(msg(n)?).map_err(|e| {
                    Failure::from(e).context(format_args!("DELE {n} (nothing was deleted)"))
                })?;
            }
        }
        Command::Fetch(args) => {
            return fetch(session, args, &target.account()?, cli.verbose, cli.json);
        }
    }
    session.quit().map_err(|e| {
        let failure = Failure::from(e);
        if matches!(cli.command, Command::Dele { .. }) {
            failure.context("QUIT (the deletions may not have been committed)")
        } else {
            failure.context("QUIT")
        }
    })
}
