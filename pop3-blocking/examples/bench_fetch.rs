//! Benchmark client: logs in, lists the mailbox and retrieves every message
//! (pipelined with `retr_many`), counting and discarding the bytes. Used by
//! `bench/run.py`; see BENCHMARKS.md.
//!
//! ```text
//! PASS=secret cargo run --release -p pop3-blocking --example bench_fetch -- \
//!     --host 127.0.0.1 --port 1995 --tls implicit --ca ca.pem --user bench --password-env PASS \
//!     [--limit N] [--window N]
//! PASS=secret cargo run --release -p pop3-blocking --example bench_fetch -- \
//!     --host 127.0.0.1 --port 1110 --tls none --user bench --password-env PASS \
//!     --retr-to-file out.eml --msg 1
//! ```
//!
//! `--tls none|implicit|starttls`; `--limit N` fetches only the first N
//! messages; `--window N` sets the pipeline window. With `--retr-to-file PATH
//! --msg N` it instead writes message N to PATH with `retr_to`. Prints one
//! line of JSON: `{"messages":N,"bytes":B,"seconds":S}`.

use std::fs::File;
use std::io::BufWriter;
use std::process::ExitCode;
use std::time::Instant;

use pop3_blocking::{connect_plain, connect_starttls, connect_tls, MsgNum, Options, TlsOptions};

struct Args {
    host: String,
    port: u16,
    tls: String,
    ca: Option<String>,
    user: String,
    password_env: String,
    limit: Option<usize>,
    window: Option<usize>,
    retr_to_file: Option<String>,
    msg: Option<u32>,
}

const USAGE: &str = "usage: bench_fetch --host H --port P --tls none|implicit|starttls \
[--ca PEM] --user U --password-env VAR [--limit N] [--window N] [--retr-to-file PATH --msg N]";

fn parse_args() -> Result<Args, String> {
    let mut host = None;
    let mut port = None;
    let mut tls = "none".to_string();
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
            "--host" => host = Some(value()?),
            "--port" => port = Some(value()?.parse().map_err(|e| format!("--port: {e}"))?),
            "--tls" => tls = value()?,
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
    if !matches!(tls.as_str(), "none" | "implicit" | "starttls") {
        return Err(format!("--tls must be none, implicit or starttls\n{USAGE}"));
    }
    if retr_to_file.is_some() != msg.is_some() {
        return Err(format!("--retr-to-file and --msg go together\n{USAGE}"));
    }
    Ok(Args {
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

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let password = std::env::var(&args.password_env)
        .map_err(|_| format!("environment variable {} is not set", args.password_env))?;
    let mut tls = TlsOptions::new();
    if let Some(ca) = &args.ca {
        tls = tls.add_root_pem_file(ca)?;
    }
    let mut options = Options::new().tls(tls).allow_plaintext_auth(true);
    if let Some(window) = args.window {
        options = options.pipeline_window(window);
    }

    let started = Instant::now();
    let mut pop3 = match args.tls.as_str() {
        "implicit" => connect_tls(&args.host, args.port, &options)?,
        "starttls" => connect_starttls(&args.host, args.port, &options)?,
        _ => connect_plain(&args.host, args.port, &options)?,
    };
    pop3.login(&args.user, password)?;
    pop3.capa()?;

    let (messages, bytes) = if let (Some(path), Some(n)) = (&args.retr_to_file, args.msg) {
        let msg = MsgNum::new(n).ok_or("--msg must be at least 1")?;
        let mut file = BufWriter::with_capacity(64 * 1024, File::create(path)?);
        let bytes = pop3.retr_to(msg, &mut file)?;
        file.into_inner().map_err(|e| e.into_error())?;
        (1, bytes)
    } else {
        let list = pop3.list()?;
        let take = args.limit.unwrap_or(list.len()).min(list.len());
        let msgs: Vec<MsgNum> = list[..take].iter().map(|e| e.msg).collect();
        let expected: u64 = list[..take].iter().map(|e| e.size).sum();
        let mut bytes = 0u64;
        let results = pop3.retr_many(&msgs, &mut |_: MsgNum, chunk: &[u8]| {
            bytes += chunk.len() as u64;
        })?;
        for (msg, result) in msgs.iter().zip(&results) {
            if let Err(e) = result {
                return Err(format!("RETR {msg}: {e}").into());
            }
        }
        if bytes != expected {
            eprintln!("bench_fetch: received {bytes} bytes, LIST announced {expected}");
        }
        (msgs.len(), bytes)
    };
    pop3.quit()?;
    let seconds = started.elapsed().as_secs_f64();
    println!("{{\"messages\":{messages},\"bytes\":{bytes},\"seconds\":{seconds:.6}}}");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_fetch: {e}");
            ExitCode::FAILURE
        }
    }
}
