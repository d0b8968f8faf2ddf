//! The commands other than `fetch`, and login.

use std::io::{self, Write};

use pop3_proto::{MsgNum, Secret};
use serde::Serialize;

use crate::cli::{AuthChoice, Cli, Command};
use crate::error::{auth_failure, plaintext_message, Exit, Failure, NetError};
use crate::fetch::{fetch, prepare, FetchOptions};
use crate::session::{capability_line, Mechanism, Session, Traced};
use crate::target::{password, resolve, Target};
use crate::transport::connect;

/// Picks the strongest method the server offers: SCRAM-SHA-256,
/// SCRAM-SHA-1, CRAM-MD5, APOP (greeting timestamp), PLAIN, LOGIN, USER.
/// Returns the method and whether `CAPA` was asked.
fn choose(session: &mut dyn Session) -> Result<(Mechanism, bool), Failure> {
    let mut asked = false;
    let caps = match session.capabilities() {
        Some(caps) => Some(caps),
        None => {
            asked = true;
            match session.capa() {
                Ok(caps) => Some(caps),
                Err(e) if !e.is_fatal() || session.is_usable() => None,
                Err(e) => return Err(Failure::from(e).context("CAPA")),
            }
        }
    };
    let apop = session.greeting().apop_timestamp.is_some();
    let mechanism = match caps {
        Some(caps) => {
            let sasl = |name: &str| caps.has_sasl(name);
            if sasl("SCRAM-SHA-256") {
                Mechanism::ScramSha256
            } else if sasl("SCRAM-SHA-1") {
                Mechanism::ScramSha1
            } else if sasl("CRAM-MD5") {
                Mechanism::CramMd5
            } else if apop {
                Mechanism::Apop
            } else if sasl("PLAIN") {
                Mechanism::Plain
            } else if sasl("LOGIN") {
                Mechanism::Login
            } else {
                Mechanism::User
            }
        }
        None if apop => Mechanism::Apop,
        None => Mechanism::User,
    };
    Ok((mechanism, asked))
}

/// Logs in. Returns whether `CAPA` was asked before.
fn login(
    session: &mut dyn Session,
    target: &Target,
    secret: Secret<String>,
) -> Result<bool, Failure> {
    // Checked here, before anything is sent (not even USER or CAPA): the
    // library would refuse the password itself, but only after USER.
    if !session.is_encrypted() && !target.connect.allow_plaintext_auth {
        return Err(Failure::new(Exit::NoPerm, plaintext_message()));
    }
    let user = target.require_user()?;
    let (mechanism, asked) = match target.auth {
        AuthChoice::Auto => choose(session)?,
        AuthChoice::User => (Mechanism::User, false),
        AuthChoice::Apop => (Mechanism::Apop, false),
        AuthChoice::Plain => (Mechanism::Plain, false),
        AuthChoice::Login => (Mechanism::Login, false),
        AuthChoice::CramMd5 => (Mechanism::CramMd5, false),
        AuthChoice::ScramSha1 => (Mechanism::ScramSha1, false),
        AuthChoice::ScramSha256 => (Mechanism::ScramSha256, false),
        AuthChoice::XOauth2 => (Mechanism::XOauth2, false),
        AuthChoice::OAuthBearer => (Mechanism::OAuthBearer, false),
    };
    session
        .authenticate(mechanism, user, secret)
        .map_err(|e| auth_failure(e, mechanism.name()))?;
    Ok(asked)
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

/// `host:port`, with an IPv6 address in brackets (`[::1]:995`).
pub(crate) fn endpoint(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Connects, naming the server as [`endpoint`] does in any error.
fn connect_to(target: &Target, runtime: crate::cli::Runtime) -> Result<Box<dyn Session>, Failure> {
    let host = &target.connect.host;
    let port = target.connect.port;
    connect(runtime, &target.connect).map_err(|mut failure| {
        // The transport layer writes `host:port`; an IPv6 address needs
        // brackets to be read back.
        let plain = format!("{host}:{port}: ");
        if host.contains(':') {
            if let Some(rest) = failure.message.strip_prefix(&plain) {
                failure.message = format!("{}: {rest}", endpoint(host, port));
            }
        }
        failure
    })
}

/// Runs the command line; `Ok` is exit code 0.
pub(crate) fn run(cli: Cli) -> Result<(), Failure> {
    let target = resolve(cli.url.as_deref(), &cli.conn)?;
    // A fetch checks its destination and takes its lock before connecting.
    let prepared = match &cli.command {
        Command::Fetch(args) => {
            let options = FetchOptions {
                maildir: args.maildir.clone(),
                mbox: args.mbox.clone(),
                mda: args.mda.clone(),
                delete: args.delete,
                state: args.state.clone(),
            };
            Some((prepare(&options, &target.account()?)?, options))
        }
        _ => None,
    };
    let needs_login = !matches!(cli.command, Command::Capa);
    // Ask for the password before connecting: a prompt can take a while.
    let secret = if needs_login {
        Some(password(&cli.conn, &target.account()?)?)
    } else {
        None
    };
    if cli.verbose {
        eprintln!(
            "*  connecting to {} ({}, runtime {:?})",
            endpoint(&target.connect.host, target.connect.port),
            match target.connect.tls {
                crate::cli::TlsMode::Implicit => "implicit TLS",
                crate::cli::TlsMode::Starttls => "STLS",
                crate::cli::TlsMode::None => "no TLS",
            },
            cli.conn.runtime
        );
    }
    if prepared.is_some() {
        crate::interrupt::install();
    }
    let mut session = connect_to(&target, cli.conn.runtime)?;
    if cli.verbose {
        session = Box::new(Traced::new(session));
    }
    let mut capa_asked = false;
    if let Some(secret) = secret {
        capa_asked = login(session.as_mut(), &target, secret)?;
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
        Command::Fetch(_) => {
            let Some((prepared, options)) = prepared else {
                return Err(Failure::new(Exit::Software, "fetch was not prepared"));
            };
            return fetch(
                session,
                capa_asked,
                prepared,
                &options,
                cli.verbose,
                cli.json,
                None,
            );
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
