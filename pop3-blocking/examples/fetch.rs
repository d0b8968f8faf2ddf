//! Fetches every message of a mailbox and writes it to stdout.
//!
//! ```text
//! POP3_PASSWORD=secret cargo run -p pop3-blocking --example fetch -- pop.example.com alice
//! POP3_PASSWORD=secret cargo run -p pop3-blocking --example fetch -- localhost alice 110 ca.pem
//! ```
//!
//! Arguments: host, user, optional port (995: implicit TLS, the default;
//! anything else: plaintext upgraded with STLS), optional PEM file of an extra
//! CA to trust. The password comes from `POP3_PASSWORD`. Messages are not
//! deleted.

use std::io::Write;
use std::process::ExitCode;

use pop3_blocking::{connect_starttls, connect_tls, Options, TlsOptions, Wait};

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: fetch <host> <user> [port] [ca.pem]";
    let host = args.next().ok_or(usage)?;
    let user = args.next().ok_or(usage)?;
    let port: u16 = match args.next() {
        Some(p) => p.parse()?,
        None => 995,
    };
    let mut tls = TlsOptions::new();
    if let Some(ca) = args.next() {
        tls = tls.add_root_pem_file(ca)?;
    }
    let password = std::env::var("POP3_PASSWORD").map_err(|_| "set POP3_PASSWORD")?;
    let options = Options::new().tls(tls);

    let mut pop3 = if port == 995 {
        connect_tls(&host, port, &options).wait()?
    } else {
        connect_starttls(&host, port, &options).wait()?
    };
    eprintln!("connected: {}", pop3.greeting().text);
    pop3.login(&user, password).wait()?;

    let list = pop3.list().wait()?;
    eprintln!("{} messages", list.len());
    let mut stdout = std::io::stdout().lock();
    for entry in list {
        writeln!(
            stdout,
            "From pop3-fetch message {} ({} octets)",
            entry.msg, entry.size
        )?;
        let written = pop3.retr_to(entry.msg, &mut stdout).wait()?;
        eprintln!("message {}: {written} bytes", entry.msg);
    }
    stdout.flush()?;
    pop3.quit().wait()?;
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fetch: {e}");
            ExitCode::FAILURE
        }
    }
}
