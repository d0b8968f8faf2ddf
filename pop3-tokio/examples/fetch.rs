//! Downloads every message of a mailbox into a directory, named by UIDL.
//!
//! ```text
//! POP3_PASSWORD=secret cargo run -p pop3-tokio --example fetch-tokio -- \
//!     pop.example.com alice [--port 995] [--starttls] [--ca ca.pem] [--out mail] [--delete]
//! ```
//!
//! Implicit TLS (port 995) by default; `--starttls` uses port 110 with `STLS`.
//! With `--delete`, the messages are deleted on the server after download
//! (committed by QUIT).

use std::path::PathBuf;

use pop3_tokio::{connect_starttls, connect_tls, Error, Options, TlsOptions};

struct Args {
    host: String,
    user: String,
    port: Option<u16>,
    starttls: bool,
    ca: Option<PathBuf>,
    out: PathBuf,
    delete: bool,
}

/// A file name for a UID: the server chooses UIDs, and one such as `../x`
/// or `a/b` must not leave the output directory, so every byte other than
/// ASCII letters, digits, `-` and `_` is written as `%XX`.
fn file_name(uid: &str) -> String {
    let mut name = String::with_capacity(uid.len() + 4);
    for byte in uid.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            name.push(char::from(byte));
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    name.push_str(".eml");
    name
}

fn usage() -> ! {
    eprintln!("usage: fetch HOST USER [--port N] [--starttls] [--ca PEM] [--out DIR] [--delete]");
    eprintln!("the password is read from POP3_PASSWORD");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut positional = Vec::new();
    let mut args = Args {
        host: String::new(),
        user: String::new(),
        port: None,
        starttls: false,
        ca: None,
        out: PathBuf::from("mail"),
        delete: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--port" => args.port = it.next().and_then(|p| p.parse().ok()).or_else(|| usage()),
            "--starttls" => args.starttls = true,
            "--ca" => args.ca = Some(it.next().unwrap_or_else(|| usage()).into()),
            "--out" => args.out = it.next().unwrap_or_else(|| usage()).into(),
            "--delete" => args.delete = true,
            s if s.starts_with("--") => usage(),
            _ => positional.push(arg),
        }
    }
    let [host, user] = <[String; 2]>::try_from(positional).unwrap_or_else(|_| usage());
    args.host = host;
    args.user = user;
    args
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let args = parse_args();
    let password = std::env::var("POP3_PASSWORD").unwrap_or_else(|_| usage());
    let mut tls = TlsOptions::new();
    if let Some(ca) = &args.ca {
        tls = tls.add_root_pem_file(ca)?;
    }
    let options = Options::new().tls(tls);
    let mut conn = if args.starttls {
        connect_starttls(&args.host, args.port.unwrap_or(110), &options).await?
    } else {
        connect_tls(&args.host, args.port.unwrap_or(995), &options).await?
    };
    println!("server: {}", conn.greeting().text);
    // CAPA before login lets the core re-read it afterwards and pipeline.
    let _ = conn.capa().await;
    conn.login(&args.user, password).await?;
    let stat = conn.stat().await?;
    println!("{} messages, {} octets", stat.count, stat.size);

    tokio::fs::create_dir_all(&args.out).await?;
    let entries = conn.uidl().await?;
    for entry in &entries {
        let path = args.out.join(file_name(&entry.uid));
        if tokio::fs::try_exists(&path).await? {
            continue;
        }
        let mut file = tokio::fs::File::create(&path).await?;
        let size = conn.retr_to(entry.msg, &mut file).await?;
        println!("{} -> {} ({size} octets)", entry.msg, path.display());
    }
    if args.delete {
        let msgs: Vec<_> = entries.iter().map(|e| e.msg).collect();
        for (msg, result) in msgs.iter().zip(conn.dele_many(&msgs).await?) {
            if let Err(e) = result {
                eprintln!("DELE {msg}: {e}");
            }
        }
    }
    conn.quit().await
}
