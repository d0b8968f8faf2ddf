//! The commands other than `fetch`, and login.

use std::io::{self, Write};

use pop3_transport::runtime::{IoStream, Runtime as LibraryRuntime, StartTls, WriteTo};
use pop3_transport::{Connection, Error, MaybeTls, MessageReader, TlsStream};

use pop3_proto::{AuthMethod, Capabilities, MsgNum, Secret};
use serde::Serialize;

use clap::CommandFactory;

use crate::cli::{AuthName, Cli, Command, ConnArgs, Generate, ManPage, Runtime};
use crate::config::{expand_home, Config, Settings};
use crate::deliver::LineEndings;
use crate::error::{auth_failure, Exit, Failure};
use crate::fetch::{fetch, prepare, FetchOptions, Run, DEFAULT_MAX_SESSIONS};
use crate::policy::{check_login_delay, remember_login};
use crate::serverinfo::serverinfo;
use crate::target::{password, proxy_password, resolve, Target, Url};
use crate::trace::install_wire_trace;
use crate::transport::{connect, Exec, Session, WithSession};

/// The `LOGIN-DELAY` the server announces now, if known.
pub(crate) fn login_delay<S, R>(conn: &Connection<S, R>) -> Option<u64> {
    conn.capabilities().and_then(Capabilities::login_delay)
}

/// Logs in. The library's core checks the credentials before anything is
/// sent and, with `--auth auto`, picks the strongest method offered.
fn login<X, Y, R: LibraryRuntime, E: Exec>(
    session: &mut Session<X, Y, R, E>,
    target: &Target,
    secret: Secret<String>,
) -> Result<(), Failure>
where
    MaybeTls<X, Y>: StartTls,
{
    let user = target.require_user()?;
    let method = target.auth.method().ok_or_else(|| {
        Failure::new(
            Exit::Software,
            format!("unknown login method {:?}", target.auth),
        )
    })?;
    let name = method.name().to_owned();
    session
        .run(|c| c.login_with(user, secret, method))
        .map_err(|e| {
            let attempts = session.conn().client().login_attempts();
            let used = if attempts.is_empty() {
                name
            } else {
                attempts.join(", then ")
            };
            auth_failure(e, &used, login_delay(session.conn()))
        })
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

/// The body of `RETR`/`TOP` onto stdout, as the library reads it (stdout
/// is std's writer, not the runtime's, so it is written here).
async fn body_to_stdout<S: IoStream, R: LibraryRuntime>(
    body: Result<MessageReader<'_, S, R>, Error>,
) -> Result<(), Failure> {
    let mut reader = body?;
    let mut out = io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read_chunk(&mut buf).await?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(|e| stdout_failure(&e))?;
    }
    out.flush().map_err(|e| stdout_failure(&e))
}

/// `pop3 generate man` and `pop3 generate completions SHELL`.
fn generate(what: &Generate) -> Result<(), Failure> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    match what {
        Generate::Man { dir: Some(dir), .. } => {
            let written = crate::manual::write_pages(dir)
                .map_err(|e| Failure::io(format_args!("man pages in {}", dir.display()), &e))?;
            for path in written {
                out.extend_from_slice(format!("{}\n", path.display()).as_bytes());
            }
        }
        Generate::Man {
            page: ManPage::Pop3,
            dir: None,
        } => out = crate::manual::pop3_page().map_err(|e| Failure::io("man page", &e))?,
        Generate::Man {
            page: ManPage::Pop3Config,
            dir: None,
        } => out = crate::manual::config_page(),
        Generate::Completions { shell } => {
            clap_complete::generate(*shell, &mut command, "pop3", &mut out);
        }
    }
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(&out)
        .and_then(|()| stdout.flush())
        .map_err(|e| stdout_failure(&e))
}

/// The command line laid over the config file: for each setting, the
/// option given here, else the account's key, else `[defaults]`. The file's
/// URL counts as its `host`, `port`, `tls`, `user` and `auth` keys, so that
/// a URL or `--host` here replaces the file's server without a conflict.
fn lay_over(cli: &Cli, file: &Settings) -> Result<(ConnArgs, Option<FetchOptions>), Failure> {
    let mut conn = cli.conn.clone();
    let from_cli_url = cli.url.as_deref().map(Url::parse).transpose()?;
    let from_file_url = file
        .url
        .as_ref()
        .map(|u| Url::parse(u.get_ref()))
        .transpose()?;
    let given = |cli_flag: bool, in_url: bool| cli_flag || in_url;
    let cli_url = from_cli_url.as_ref();
    let file_url = from_file_url.as_ref();
    // A server named on the command line replaces the file's server whole.
    let server_here = cli.url.is_some() || cli.conn.host.is_some();
    let value = |s: &Option<toml::Spanned<String>>| s.as_ref().map(|v| v.get_ref().clone());
    if !server_here {
        conn.host = value(&file.host).or_else(|| file_url.map(|u| u.host.clone()));
    }
    if !given(
        conn.port.is_some(),
        cli_url.is_some_and(|u| u.port.is_some()),
    ) && !server_here
    {
        conn.port = file
            .port
            .as_ref()
            .map(|p| *p.get_ref())
            .or_else(|| file_url.and_then(|u| u.port));
    }
    if !given(conn.tls.is_some(), cli_url.is_some()) {
        conn.tls = file
            .tls
            .as_ref()
            .map(|t| *t.get_ref())
            .or_else(|| file_url.map(|u| u.tls));
    }
    if !given(
        conn.user.is_some(),
        cli_url.is_some_and(|u| u.user.is_some()),
    ) {
        conn.user = value(&file.user).or_else(|| file_url.and_then(|u| u.user.clone()));
    }
    if !given(
        conn.auth.is_some(),
        cli_url.is_some_and(|u| u.auth.is_some()),
    ) {
        conn.auth = file
            .auth
            .as_ref()
            .map(|a| a.get_ref().clone())
            .or_else(|| file_url.and_then(|u| u.auth.clone()));
    }
    // An OAuth provider's server, for what the file does not say.
    if let (false, Some((host, port, tls, auth))) =
        (server_here, crate::oauth::server_defaults(file))
    {
        if conn.host.is_none() {
            conn.host = Some(host);
            conn.port = conn.port.or(Some(port));
            conn.tls = conn.tls.or(Some(tls));
        }
        conn.auth = conn.auth.or(Some(auth));
    }
    // An OAuth account's secret is an access token: it goes out through a
    // token mechanism whatever server is named (`--host`, a URL, a custom
    // provider), never as a password through USER/PASS, PLAIN or SCRAM.
    if file.provider.is_some() {
        let token_mechanism = |auth: &AuthName| {
            matches!(
                auth.method(),
                Some(AuthMethod::XOAuth2 | AuthMethod::OAuthBearer)
            )
        };
        match &conn.auth {
            None => conn.auth = AuthName::try_from("xoauth2".to_owned()).ok(),
            Some(auth) if auth.is_auto() => {
                conn.auth = AuthName::try_from("xoauth2".to_owned()).ok();
            }
            Some(auth) if token_mechanism(auth) => {}
            Some(_) => {
                return Err(Failure::usage(
                    "an OAuth account (provider = ...) logs in with a token: \
                     auth must be xoauth2 or oauthbearer",
                ))
            }
        }
    }
    if conn.password_env.is_none() && conn.password_command.is_none() {
        conn.password_env = value(&file.password_env);
        conn.password_command = value(&file.password_command);
    }
    conn.allow_plaintext_credentials |= file
        .allow_plaintext_credentials
        .as_ref()
        .is_some_and(|a| *a.get_ref());
    conn.respect_login_delay |= file
        .respect_login_delay
        .as_ref()
        .is_some_and(|a| *a.get_ref());
    if conn.ca_file.is_none() {
        conn.ca_file = file.ca_file.as_ref().map(|p| expand_home(p.get_ref()));
    }
    if conn.trust.is_none() {
        conn.trust = file.trust.as_ref().map(|t| *t.get_ref());
    }
    if conn.tls_fingerprint.is_none() {
        conn.tls_fingerprint = value(&file.tls_fingerprint);
    }
    if conn.tls_server_name.is_none() {
        conn.tls_server_name = value(&file.tls_server_name);
    }
    if conn.proxy.is_none() {
        conn.proxy = value(&file.proxy);
    }
    if conn.proxy_password_env.is_none() && conn.proxy_password_command.is_none() {
        conn.proxy_password_env = value(&file.proxy_password_env);
        conn.proxy_password_command = value(&file.proxy_password_command);
    }
    if conn.timeout.is_none() {
        conn.timeout = file.timeout.as_ref().map(|t| *t.get_ref());
    }
    if conn.session_timeout.is_none() {
        conn.session_timeout = file.session_timeout.as_ref().map(|t| *t.get_ref());
    }
    if conn.runtime.is_none() {
        conn.runtime = file.runtime.as_ref().map(|r| *r.get_ref());
    }
    let Command::Fetch(args) = &cli.command else {
        return Ok((conn, None));
    };
    let mut options = FetchOptions {
        maildir: args.maildir.clone(),
        mbox: args.mbox.clone(),
        mda: args.mda.clone(),
        delete: args.delete,
        state: args.state.clone(),
        keep_days: args.keep_days,
        max_size: args.max_size.map(|s| s.0),
        delete_bigger_than: args.delete_bigger_than.map(|s| s.0),
        max_messages: args.max_messages,
        max_sessions: args.max_sessions,
        filter: args.filter.clone(),
        line_endings: if args.exact_bytes || file.exact_bytes.as_ref().is_some_and(|e| *e.get_ref())
        {
            LineEndings::AsReceived
        } else {
            LineEndings::Unix
        },
    };
    if options.maildir.is_none() && options.mbox.is_none() && options.mda.is_none() {
        options.maildir = file.maildir.as_ref().map(|p| expand_home(p.get_ref()));
        options.mbox = file.mbox.as_ref().map(|p| expand_home(p.get_ref()));
        options.mda = value(&file.mda);
    }
    // An mbox is always LF (mboxrd): `exact_bytes` from the file (say, in
    // `[defaults]` for the Maildir accounts) does not apply to it; only the
    // flag given with `--mbox` is refused.
    if options.mbox.is_some() && !args.exact_bytes {
        options.line_endings = LineEndings::Unix;
    }
    if !args.delete && !args.keep {
        options.delete = file.delete.as_ref().is_some_and(|d| *d.get_ref());
    }
    if options.state.is_none() {
        options.state = file.state.as_ref().map(|p| expand_home(p.get_ref()));
    }
    if options.keep_days.is_none() {
        options.keep_days = file.keep_days.as_ref().map(|d| *d.get_ref());
    }
    if options.max_size.is_none() {
        options.max_size = file.max_size.as_ref().map(|s| s.get_ref().0);
    }
    if options.delete_bigger_than.is_none() {
        options.delete_bigger_than = file.delete_bigger_than.as_ref().map(|s| s.get_ref().0);
    }
    if options.max_messages.is_none() {
        options.max_messages = file.max_messages.as_ref().map(|m| *m.get_ref());
    }
    if options.filter.is_none() {
        options.filter = value(&file.filter);
    }
    if options.max_sessions.is_none() {
        options.max_sessions = file.max_sessions.as_ref().map(|m| *m.get_ref());
    }
    Ok((conn, Some(options)))
}

/// Runs the command line; `Ok` is exit code 0.
pub(crate) fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Generate { what } = &cli.command {
        return generate(what);
    }
    let config = Config::load(cli.config.as_deref())?;
    if let Command::Oauth { what } = &cli.command {
        return crate::oauth::run(&cli, config.as_ref(), what);
    }
    // Before any program runs: none of them sees any account's secrets.
    let named = [&cli.conn.password_env, &cli.conn.proxy_password_env];
    for var in named.into_iter().flatten() {
        crate::secrets::hide_variable(var);
    }
    for var in config.iter().flat_map(Config::secret_variables) {
        crate::secrets::hide_variable(&var);
    }
    let names = match &cli.command {
        Command::Fetch(args) if !args.accounts.is_empty() => {
            if cli.url.is_some() || cli.account.is_some() {
                return Err(Failure::usage(
                    "fetch NAME... takes the accounts from the config file: \
                     give no URL or --account with them",
                ));
            }
            Some(args.accounts.clone())
        }
        Command::Fetch(_)
            if cli.url.is_none() && cli.conn.host.is_none() && cli.account.is_none() =>
        {
            config
                .as_ref()
                .map(Config::account_names)
                .filter(|n| !n.is_empty())
        }
        _ => None,
    };
    let Some(names) = names else {
        let settings =
            match (&config, cli.account.as_deref()) {
                (Some(config), account) => config.settings(account)?,
                (None, Some(_)) => return Err(Failure::usage(
                    "--account needs a config file ($XDG_CONFIG_HOME/pop3/config.toml or --config)",
                )),
                (None, None) => Settings::default(),
            };
        let result = run_one(&cli, &settings, None);
        if let (Err(failure), true, Command::Fetch(_)) = (&result, cli.json, &cli.command) {
            // The same object as for one of several accounts, so that a
            // script reads every fetch's outcome from stdout alike.
            print_json_failure(cli.account.as_deref(), failure);
        }
        return result;
    };
    let Some(config) = &config else {
        return Err(Failure::usage(
            "fetch NAME... needs a config file ($XDG_CONFIG_HOME/pop3/config.toml or --config)",
        ));
    };
    // Every account is checked before the first one connects.
    let mut accounts = Vec::with_capacity(names.len());
    for name in &names {
        let settings = config.settings(Some(name))?;
        lay_over(&cli, &settings)
            .and_then(|(conn, _)| resolve(None, &conn))
            .map_err(|f| f.context(format_args!("account {name}")))?;
        accounts.push((name, settings));
    }
    let mut first_failure: Option<Exit> = None;
    for (name, settings) in accounts {
        if let Err(failure) = run_one(&cli, &settings, Some(name)) {
            if cli.json {
                print_json_failure(Some(name), &failure);
            }
            eprintln!("pop3: {name}: {failure}");
            first_failure.get_or_insert(failure.exit);
            if matches!(failure.exit, Exit::Interrupted | Exit::Terminated) {
                break;
            }
        }
    }
    match first_failure {
        None => Ok(()),
        Some(exit) => Err(Failure::new(
            exit,
            "not every account was fetched (see above)",
        )),
    }
}

/// A failed fetch for `--json`: `{"account": NAME, "error": ..., "exit":
/// N}`, without `account` when no account of the config file is named
/// (as the summary of a fetch that worked). Printed on a best-effort basis:
/// the failure is also on stderr, and is the exit status.
fn print_json_failure(account: Option<&str>, failure: &Failure) {
    let mut object = serde_json::Map::new();
    if let Some(name) = account {
        object.insert("account".to_owned(), name.into());
    }
    object.insert("error".to_owned(), failure.to_string().into());
    object.insert("exit".to_owned(), failure.exit.code().into());
    let _ = print_json(&object);
}

/// Runs the command for one account (`label` names it when several are
/// fetched).
fn run_one(cli: &Cli, settings: &Settings, label: Option<&str>) -> Result<(), Failure> {
    let (conn, fetch_options) = lay_over(cli, settings)?;
    let mut target = resolve(cli.url.as_deref(), &conn)?;
    // A fetch checks its destination and takes its lock before connecting.
    let prepared = match fetch_options {
        Some(options) => Some((prepare(&options, &target.account()?)?, options)),
        None => None,
    };
    let runtime = conn.runtime.unwrap_or(Runtime::Blocking);
    let needs_login = !matches!(cli.command, Command::Capa | Command::Serverinfo);
    // Before the password prompt: there is no point in typing it now.
    if needs_login && conn.respect_login_delay {
        check_login_delay(&target.login_key()?)?;
    }
    if let Some(proxy) = target.connect.proxy.as_mut() {
        proxy.password = proxy_password(&conn)?;
    }
    // An account with a provider logs in with its stored OAuth token.
    let oauth = if needs_login {
        crate::oauth::account(label.or(cli.account.as_deref()), settings)?
    } else {
        None
    };
    // Ask for the password before connecting: a prompt can take a while.
    let secret = if needs_login {
        Some(match &oauth {
            Some(account) => account.access_token(cli)?,
            None => password(&conn, &target.account()?)?,
        })
    } else {
        None
    };
    if cli.verbose {
        eprintln!(
            "*  connecting to {} ({})",
            target.connect.endpoint(),
            match target.connect.tls {
                crate::cli::TlsMode::Implicit => "implicit TLS",
                crate::cli::TlsMode::Starttls => "STLS",
                crate::cli::TlsMode::None => "no TLS",
            },
        );
        install_wire_trace();
    }
    if prepared.is_some() {
        crate::interrupt::install();
    }
    if matches!(cli.command, Command::Serverinfo) {
        // It connects by itself: an untrusted certificate is a result to
        // show, not only an error.
        return serverinfo(&target, runtime, cli.json);
    }
    let Some((prepared, options)) = prepared else {
        return connect(
            runtime,
            &target.connect,
            OnServer {
                cli,
                target: &target,
                secret,
                fetching: None,
            },
        )
        .map(|_| ());
    };
    let mut run = Run::new(prepared, label);
    let max_sessions = options.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS) as usize;
    // A password is asked once (a prompt, a command) and used again.
    let password = secret.clone().filter(|_| oauth.is_none());
    let mut secret = secret;
    let more_waiting = loop {
        let more = connect(
            runtime,
            &target.connect,
            OnServer {
                cli,
                target: &target,
                secret: secret.take(),
                fetching: Some((&mut run, &options)),
            },
        )
        .map_err(|f| run.failed(f, cli.json))?;
        if !more {
            break None;
        }
        if run.sessions() >= max_sessions {
            break Some("max_sessions");
        }
        // Asked for, the advertised delay holds between these sessions too:
        // the next fetch continues once it has passed.
        if conn.respect_login_delay && check_login_delay(&target.login_key()?).is_err() {
            break Some("login_delay");
        }
        if let Some((exit, what)) = crate::interrupt::pending() {
            return Err(run.failed(Failure::new(exit, what), cli.json));
        }
        if cli.verbose {
            eprintln!(
                "*  the server handed out a full batch of new mail: session {} for more",
                run.sessions() + 1
            );
        }
        // A fresh OAuth token (refreshed if it is about to expire), or the
        // same password.
        secret = match &oauth {
            Some(account) => Some(
                account
                    .access_token(cli)
                    .map_err(|f| run.failed(f, cli.json))?,
            ),
            None => password.clone(),
        };
    };
    run.finish(cli.json, cli.verbose, label, more_waiting)
}

/// The command on the server, once connected, on any runtime.
struct OnServer<'a> {
    cli: &'a Cli,
    target: &'a Target,
    secret: Option<Secret<String>>,
    /// For `fetch`: the fetch its sessions share.
    fetching: Option<(&'a mut Run, &'a FetchOptions)>,
}

impl WithSession for OnServer<'_> {
    /// For `fetch`: whether to open another session.
    type Output = Result<bool, Failure>;

    fn with<X, Y, R, E>(self, opened: Result<Session<X, Y, R, E>, Error>) -> Self::Output
    where
        MaybeTls<X, Y>: StartTls,
        Y: TlsStream<X>,
        R: LibraryRuntime + WriteTo<Vec<u8>>,
        E: Exec,
    {
        on_server(self, opened?)
    }
}

/// Logs in if the command needs it, and runs it: `Ok(true)` when a fetch
/// asks for another session.
fn on_server<X, Y, R: LibraryRuntime + WriteTo<Vec<u8>>, E: Exec>(
    job: OnServer<'_>,
    mut session: Session<X, Y, R, E>,
) -> Result<bool, Failure>
where
    MaybeTls<X, Y>: StartTls,
{
    let OnServer {
        cli,
        target,
        secret,
        fetching,
    } = job;
    let needs_login = secret.is_some();
    if let Some(secret) = secret {
        login(&mut session, target, secret)?;
    }
    match &cli.command {
        Command::Capa => {
            let caps = session
                .run(|c| c.capa())
                .map_err(|e| Failure::from(e).context("CAPA"))?;
            let lines: Vec<String> = caps.list.iter().map(ToString::to_string).collect();
            if cli.json {
                print_json(&JsonCapa {
                    greeting: session.conn().greeting().text.to_string(),
                    encrypted: session.conn().client().is_encrypted(),
                    capabilities: lines,
                })?;
            } else {
                print_lines(lines)?;
            }
        }
        Command::Stat => {
            let stat = session
                .run(|c| c.stat())
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
                Some(n) => {
                    let m = msg(*n)?;
                    vec![session
                        .run(|c| c.list_one(m))
                        .map_err(|e| Failure::from(e).context(format_args!("LIST {n}")))?]
                }
                None => session
                    .run(|c| c.list())
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
                Some(n) => {
                    let m = msg(*n)?;
                    vec![session
                        .run(|c| c.uidl_one(m))
                        .map_err(|e| Failure::from(e).context(format_args!("UIDL {n}")))?]
                }
                None => session
                    .run(|c| c.uidl())
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
            session
                .run(|c| async move { body_to_stdout(c.retr(m).await).await })
                .map_err(|f| f.context(format_args!("RETR {n}")))?;
        }
        Command::Top { msg: n, lines } => {
            let m = msg(*n)?;
            let lines = *lines;
            session
                .run(|c| async move { body_to_stdout(c.top(m, lines).await).await })
                .map_err(|f| f.context(format_args!("TOP {n} {lines}")))?;
        }
        Command::Dele { msgs } => {
            for &n in msgs {
                // On any failure the connection is dropped without QUIT:
                // the server deletes nothing.
                let m = msg(n)?;
                session.run(|c| c.dele(m)).map_err(|e| {
                    Failure::from(e).context(format_args!("DELE {n} (nothing was deleted)"))
                })?;
            }
        }
        Command::Generate { what } => generate(what)?,
        // Handled before any connection.
        Command::Oauth { .. } => {}
        // Returned above, before connecting.
        Command::Serverinfo => {}
        Command::Fetch(_) => {
            let Some((run, options)) = fetching else {
                return Err(Failure::new(Exit::Software, "fetch was not prepared"));
            };
            remember_login(&target.login_key()?, login_delay(session.conn()));
            return fetch(session, run, options, cli.verbose, cli.json);
        }
    }
    if needs_login {
        remember_login(&target.login_key()?, login_delay(session.conn()));
    }
    session.finish(|c| c.quit()).map_err(|e| {
        let failure = Failure::from(e);
        if matches!(cli.command, Command::Dele { .. }) {
            failure.context("QUIT (the deletions may not have been committed)")
        } else {
            failure.context("QUIT")
        }
    })?;
    Ok(false)
}
