//! Drives the sans-IO core by hand over a plain `std::net::TcpStream`: the whole
//! run loop an embedder writes, in one screen.
//!
//! ```text
//! POP3_PASSWORD=secret cargo run -p pop3-proto --example by_hand -- 127.0.0.1 110 alice
//! ```
//!
//! It logs in with USER/PASS, lists the maildrop and prints the first message.
//! This example speaks plain TCP, so it must allow credentials in the clear;
//! the transports (`pop3-blocking`, ...) add TLS.

use std::io::{Read, Write};
use std::net::TcpStream;

use pop3_proto::{Action, Client, Command, Config, Event, Reply};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".into());
    let port: u16 = args.next().map_or(Ok(110), |p| p.parse())?;
    let user = args.next().unwrap_or_else(|| "alice".into());
    let password = std::env::var("POP3_PASSWORD").map_err(|_| "set POP3_PASSWORD")?;

    let mut stream = TcpStream::connect((host.as_str(), port))?;
    let mut client = Client::new(Config::default().allow_plaintext_credentials(true));

    // Commands may be submitted at once: the core queues them and sends each
    // when the session allows it.
    client.user(&user)?;
    client.pass(password)?;
    let list = client.submit(Command::List(None))?;
    let mut retr = None;
    let mut stdout = std::io::stdout().lock();

    loop {
        match client.poll()? {
            Action::Send(bytes) => stream.write_all(bytes)?,
            Action::NeedInput => {
                let buf = client.input_buffer();
                let n = stream.read(buf)?;
                if n == 0 {
                    client.receive_eof();
                } else {
                    client.input_written(n);
                }
            }
            Action::Event(Event::Greeting(g)) => eprintln!("greeting: {}", g.text),
            Action::Event(Event::Ok {
                handle,
                reply: Reply::List(entries),
            }) if handle == list => {
                for e in &entries {
                    eprintln!("message {} is {} octets", e.msg, e.size);
                }
                match entries.first() {
                    Some(first) => retr = Some(client.submit(Command::Retr(first.msg))?),
                    None => {
                        client.submit(Command::Quit)?;
                    }
                }
            }
            Action::Event(Event::Body { data, .. }) => stdout.write_all(data)?,
            Action::Event(Event::Ok {
                handle,
                reply: Reply::BodyEnd,
            }) if Some(handle) == retr => {
                // Nothing was deleted, so QUIT commits nothing.
                client.submit(Command::Quit)?;
            }
            Action::Event(Event::Err { error, .. }) => return Err(error.to_string().into()),
            Action::Event(other) => eprintln!("{other:?}"),
            Action::StartTls => return Err("this example never sends STLS".into()),
            Action::Closed => break,
        }
    }
    Ok(())
}
