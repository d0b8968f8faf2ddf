//! `Client::status_line`: the status line each reply opened with, as
//! received (sanitised), read right after the event that answers the
//! command, however many replies wait pipelined in the buffer.

use pop3_proto::{Action, Client, Command, Config, Event, MsgNum};

/// Polls until input is needed, recording for each event that answers a
/// command the status line the client reports at that moment.
fn status_per_reply(client: &mut Client) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        match client.poll().expect("no protocol error") {
            Action::Send(_) | Action::Event(Event::Body { .. } | Event::BodyStart { .. }) => {}
            Action::Event(Event::Ok { .. } | Event::Err { .. } | Event::Greeting(_)) => {
                let line = client.status_line().map(|t| t.as_str().to_owned());
                lines.push(line.unwrap_or_default());
            }
            Action::Event(_) => {}
            Action::NeedInput | Action::StartTls | Action::Closed => return lines,
        }
    }
}

fn msg(n: u32) -> MsgNum {
    MsgNum::new(n).expect("a message number")
}

#[test]
fn each_event_has_its_own_status_line() {
    let mut client = Client::new(Config::encrypted().state_checks(false));
    assert!(client.status_line().is_none());
    client.receive(b"+OK POP3 ready <1.2@host>\r\n");
    assert_eq!(status_per_reply(&mut client), ["+OK POP3 ready <1.2@host>"]);
    // Logged in, with a server that pipelines, so that the replies below
    // may all wait in the buffer at once.
    client.submit(Command::User("u".to_owned())).expect("USER");
    let _ = status_per_reply(&mut client);
    client.receive(b"+OK\r\n");
    assert_eq!(status_per_reply(&mut client), ["+OK"]);
    client
        .submit(Command::Pass("p".to_owned().into()))
        .expect("PASS");
    let _ = status_per_reply(&mut client);
    client.receive(b"+OK logged in\r\n");
    assert_eq!(status_per_reply(&mut client), ["+OK logged in"]);
    client.submit(Command::Capa).expect("CAPA");
    let _ = status_per_reply(&mut client);
    client.receive(b"+OK\r\nPIPELINING\r\nUSER\r\n.\r\n");
    assert_eq!(status_per_reply(&mut client), ["+OK"]);
    assert!(client.is_pipelining());
    for command in [
        Command::Stat,
        Command::Retr(msg(1)),
        Command::List(None),
        Command::List(Some(msg(9))),
        Command::Dele(msg(1)),
    ] {
        client.submit(command).expect("submitted");
    }
    // Every reply arrives at once: each event still gets its own line.
    client.receive(
        b"+OK 2 320\r\n\
          +OK 120 octets\r\nSubject: x\r\n\r\nbody\r\n.\r\n\
          +OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n\
          -ERR [SYS/TEMP] no such message\r\n\
          +OK message 1 deleted\r\n",
    );
    assert_eq!(
        status_per_reply(&mut client),
        [
            "+OK 2 320",
            "+OK 120 octets",
            "+OK 2 messages (320 octets)",
            "-ERR [SYS/TEMP] no such message",
            "+OK message 1 deleted",
        ]
    );
}

#[test]
fn the_status_line_is_sanitised_and_kept_during_the_upgrade() {
    let mut client = Client::new(Config::default());
    client.receive(b"+OK hi\r\n");
    let _ = status_per_reply(&mut client);
    client.submit(Command::Stls).expect("STLS");
    client.receive(b"+OK begin \x1b[31mTLS\r\n");
    let _ = status_per_reply(&mut client);
    // The terminal escape is gone; the line is there while TLS is asked for.
    assert_eq!(
        client.status_line().map(|t| t.as_str()),
        Some("+OK begin \u{fffd}[31mTLS")
    );
    assert!(matches!(client.poll(), Ok(Action::StartTls)));
}
