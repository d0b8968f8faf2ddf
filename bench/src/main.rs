//! Benchmark client: logs in, lists the mailbox and retrieves every message
//! (pipelined with `retr_many`), counting and discarding the bytes, on the
//! transport chosen with `--runtime`: `blocking` (pop3-blocking), `tokio`
//! (pop3-tokio on a current-thread runtime) or `smol` (pop3-smol under
//! `smol::block_on`). Used by `bench/run.py`; see BENCHMARKS.md.
//!
//! ```text
//! PASS=secret cargo run --release -p pop3-bench -- --runtime tokio \
//!     --host 127.0.0.1 --port 1995 --tls implicit --ca ca.pem --user bench --password-env PASS \
//!     [--limit N] [--window N]
//! PASS=secret cargo run --release -p pop3-bench -- --runtime smol \
//!     --host 127.0.0.1 --port 1110 --tls none --user bench --password-env PASS \
//!     --retr-to-file out.eml --msg 1
//! ```
//!
//! `--tls none|implicit|starttls`; `--limit N` fetches only the first N
//! messages; `--window N` sets the pipeline window. With `--retr-to-file PATH
//! --msg N` it instead writes message N to PATH with `retr_to`. Prints one
//! line of JSON: `{"messages":N,"bytes":B,"seconds":S}` (seconds from before
//! connecting to after `QUIT`).

use std::process::ExitCode;
use std::time::Instant;

use pop3_proto::{ListEntry, MsgNum};
use pop3_transport::runtime::{IoStream, Runtime, WriteTo};
use pop3_transport::{Connection, Options, TlsOptions};

type BoxError = Box<dyn std::error::Error>;

#[derive(Clone, Copy)]
enum RuntimeName {
    Blocking,
    Tokio,
    Smol,
}

#[derive(Clone, Copy)]
enum Tls {
    None,
    Implicit,
    Starttls,
}

struct Args {
    runtime: RuntimeName,
    host: String,
    port: u16,
    tls: Tls,
    ca: Option<String>,
    user: String,
    password_env: String,
    limit: Option<usize>,
    window: Option<usize>,
    retr_to_file: Option<String>,
    msg: Option<u32>,
}

const USAGE: &str = "usage: pop3-bench --runtime blocking|tokio|smol --host H --port P \
--tls none|implicit|starttls [--ca PEM] --user U --password-env VAR [--limit N] [--window N] \
[--retr-to-file PATH --msg N]";

fn parse_args() -> Result<Args, String> {
    let mut runtime = None;
    let mut host = None;
    let mut port = None;
    let mut tls = Tls::None;
    let mut ca = None;
    let mut user = None;
    let mut password_env = None;
    let mut limit = None;
    let mut window = None;
    let mut retr_to_file = None;
    let mut msg = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--runtime" => {
                runtime = Some(match value()?.as_str() {
                    "blocking" => RuntimeName::Blocking,
                    "tokio" => RuntimeName::Tokio,
                    "smol" => RuntimeName::Smol,
                    _ => {
                        return Err(format!(
                            "--runtime must be blocking, tokio or smol\n{USAGE}"
                        ))
                    }
                })
            }
            "--host" => host = Some(value()?),
            "--port" => port = Some(value()?.parse().map_err(|e| format!("--port: {e}"))?),
            "--tls" => {
                tls = match value()?.as_str() {
                    "none" => Tls::None,
                    "implicit" => Tls::Implicit,
                    "starttls" => Tls::Starttls,
                    _ => return Err(format!("--tls must be none, implicit or starttls\n{USAGE}")),
                }
            }
            "--ca" => ca = Some(value()?),
            "--user" => user = Some(value()?),
            "--password-env" => password_env = Some(value()?),
            "--limit" => limit = Some(value()?.parse().map_err(|e| format!("--limit: {e}"))?),
            "--window" => window = Some(value()?.parse().map_err(|e| format!("--window: {e}"))?),
            "--retr-to-file" => retr_to_file = Some(value()?),
            "--msg" => msg = Some(value()?.parse().map_err(|e| format!("--msg: {e}"))?),
            _ => return Err(format!("unknown argument {arg:?}\n{USAGE}")),
        }
    }
    if retr_to_file.is_some() != msg.is_some() {
        return Err(format!("--retr-to-file and --msg go together\n{USAGE}"));
    }
    Ok(Args {
        runtime: runtime.ok_or(USAGE)?,
        host: host.ok_or(USAGE)?,
        port: port.ok_or(USAGE)?,
        tls,
        ca,
        user: user.ok_or(USAGE)?,
        password_env: password_env.ok_or(USAGE)?,
        limit,
        window,
        retr_to_file,
        msg,
    })
}

/// The session options (same type for every transport); loads the CA.
fn options(args: &Args) -> Result<Options, BoxError> {
    let mut tls = TlsOptions::new();
    if let Some(ca) = &args.ca {
        tls = tls.add_root_pem_file(ca)?;
    }
    let mut options = Options::new().tls(tls).allow_plaintext_credentials(true);
    if let Some(window) = args.window {
        options = options.pipeline_window(window);
    }
    Ok(options)
}

/// What one run printed: messages and bytes retrieved, and the seconds from
/// before connecting to after `QUIT`.
struct Report {
    messages: usize,
    bytes: u64,
    seconds: f64,
}

/// `--retr-to-file PATH --msg N`: the path and message, if given.
fn retr_to_target(args: &Args) -> Result<Option<(&str, MsgNum)>, BoxError> {
    match (&args.retr_to_file, args.msg) {
        (Some(path), Some(n)) => {
            let msg = MsgNum::new(n).ok_or("--msg must be at least 1")?;
            Ok(Some((path, msg)))
        }
        _ => Ok(None),
    }
}

/// The first `--limit` messages of the listing, and the bytes LIST announced
/// for them.
fn select(list: &[ListEntry], limit: Option<usize>) -> (Vec<MsgNum>, u64) {
    let take = limit.unwrap_or(list.len()).min(list.len());
    let msgs = list[..take].iter().map(|e| e.msg).collect();
    let expected = list[..take].iter().map(|e| e.size).sum();
    (msgs, expected)
}

/// Fails on the first message `retr_many` could not retrieve; warns when the
/// byte count differs from what LIST announced.
fn check(
    msgs: &[MsgNum],
    results: &[pop3_transport::Result<u64>],
    bytes: u64,
    expected: u64,
) -> Result<(), BoxError> {
    for (msg, result) in msgs.iter().zip(results) {
        if let Err(e) = result {
            return Err(format!("RETR {msg}: {e}").into());
        }
    }
    if bytes != expected {
        eprintln!("pop3-bench: received {bytes} bytes, LIST announced {expected}");
    }
    Ok(())
}

/// One run, the same code on every transport: `connect` opens the session
/// (the transport's connect function for `--tls`), `create` opens the
/// `--retr-to-file` writer of the runtime's kind (`retr_to` flushes it).
async fn fetch<S, R, W>(
    args: &Args,
    password: String,
    connect: impl AsyncFnOnce() -> pop3_transport::Result<Connection<S, R>>,
    create: impl AsyncFnOnce(&str) -> std::io::Result<W>,
) -> Result<Report, BoxError>
where
    S: IoStream,
    R: Runtime + WriteTo<W>,
{
    let started = Instant::now();
    let mut pop3 = connect().await?;
    pop3.login(&args.user, password).await?;
    pop3.capa().await?;

    let (messages, bytes) = if let Some((path, msg)) = retr_to_target(args)? {
        let mut file = create(path).await?;
        (1, pop3.retr_to(msg, &mut file).await?)
    } else {
        let (msgs, expected) = select(&pop3.list().await?, args.limit);
        let mut bytes = 0u64;
        let results = pop3
            .retr_many(&msgs, &mut |_: MsgNum, chunk: &[u8]| {
                bytes += chunk.len() as u64;
            })
            .await?;
        check(&msgs, &results, bytes, expected)?;
        (msgs.len(), bytes)
    };
    pop3.quit().await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Report {
        messages,
        bytes,
        seconds,
    })
}

fn fetch_blocking(args: &Args, options: &Options, password: String) -> Result<Report, BoxError> {
    use pop3_blocking::{connect_plain, connect_starttls, connect_tls, Wait};
    use std::io::BufWriter;

    let (host, port) = (args.host.as_str(), args.port);
    let connect = async || match args.tls {
        Tls::Implicit => connect_tls(host, port, options).await,
        Tls::Starttls => connect_starttls(host, port, options).await,
        Tls::None => connect_plain(host, port, options).await,
    };
    let create = async |path: &str| {
        let file = std::fs::File::create(path)?;
        Ok(BufWriter::with_capacity(64 * 1024, file))
    };
    fetch(args, password, connect, create).wait()
}

async fn fetch_tokio(args: &Args, options: &Options, password: String) -> Result<Report, BoxError> {
    use pop3_tokio::{connect_plain, connect_starttls, connect_tls};
    use tokio::io::BufWriter;

    let (host, port) = (args.host.as_str(), args.port);
    let connect = async || match args.tls {
        Tls::Implicit => connect_tls(host, port, options).await,
        Tls::Starttls => connect_starttls(host, port, options).await,
        Tls::None => connect_plain(host, port, options).await,
    };
    let create = async |path: &str| {
        let file = tokio::fs::File::create(path).await?;
        Ok(BufWriter::with_capacity(64 * 1024, file))
    };
    fetch(args, password, connect, create).await
}

/// On smol the `--retr-to-file` writer is an `Unblock` with a 64 KiB buffer:
/// `smol::fs::File` buffers up to 8 MiB for its background thread, which
/// would count in the memory figure.
async fn fetch_smol(args: &Args, options: &Options, password: String) -> Result<Report, BoxError> {
    use pop3_smol::{connect_plain, connect_starttls, connect_tls};

    let (host, port) = (args.host.as_str(), args.port);
    let connect = async || match args.tls {
        Tls::Implicit => connect_tls(host, port, options).await,
        Tls::Starttls => connect_starttls(host, port, options).await,
        Tls::None => connect_plain(host, port, options).await,
    };
    let create = async |path: &str| {
        let file = std::fs::File::create(path)?;
        Ok(blocking::Unblock::with_capacity(64 * 1024, file))
    };
    fetch(args, password, connect, create).await
}

fn run() -> Result<(), BoxError> {
    let args = parse_args()?;
    let password = std::env::var(&args.password_env)
        .map_err(|_| format!("environment variable {} is not set", args.password_env))?;
    let options = options(&args)?;
    let report = match args.runtime {
        RuntimeName::Blocking => fetch_blocking(&args, &options, password)?,
        RuntimeName::Tokio => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(fetch_tokio(&args, &options, password))?,
        RuntimeName::Smol => smol::block_on(fetch_smol(&args, &options, password))?,
    };
    let Report {
        messages,
        bytes,
        seconds,
    } = report;
    println!("{{\"messages\":{messages},\"bytes\":{bytes},\"seconds\":{seconds:.6}}}");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pop3-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
