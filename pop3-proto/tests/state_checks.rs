//! `Config::state_checks(false)`: commands the session's state does not
//! allow are sent and the server decides (the standard Python `poplib`'s
//! way, which the drop-in keeps); argument, credential and TLS checks stay.

use pop3_proto::{Action, Client, Command, Config, Event, Reply, UsageError};

fn sent_and_events(client: &mut Client, replies: &[&[u8]]) -> (Vec<u8>, Vec<String>) {
    let mut sent = Vec::new();
    let mut events = Vec::new();
    let mut replies = replies.iter();
    loop {
        match client.poll().expect("no protocol error") {
            Action::Send(bytes) => sent.extend_from_slice(bytes),
            Action::Event(Event::Ok { reply, .. }) => events.push(match reply {
                Reply::Stat(stat) => format!("stat {} {}", stat.count, stat.size),
                other => format!("{other:?}"),
            }),
            Action::Event(Event::Err { error, .. }) => {
                events.push(format!("err {}", error.text.as_str()))
            }
            Action::Event(other) => events.push(format!("{other:?}")),
            Action::NeedInput => match replies.next() {
                Some(reply) => client.receive(reply),
                None => return (sent, events),
            },
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn without_state_checks_the_server_decides() {
    let mut client = Client::new(Config::encrypted().state_checks(false));
    client.receive(b"+OK ready\r\n");
    client
        .submit(Command::Stat)
        .expect("STAT before login is sent");
    client
        .submit(Command::Noop)
        .expect("NOOP before login is sent");
    let (sent, events) = sent_and_events(&mut client, &[b"+OK 2 20\r\n", b"-ERR log in first\r\n"]);
    assert_eq!(sent, b"STAT\r\nNOOP\r\n");
    assert!(events.iter().any(|e| e == "stat 2 20"), "{events:?}");
    assert!(events.iter().any(|e| e == "err log in first"), "{events:?}");
    client
        .submit(Command::Pass("secret".to_owned().into()))
        .expect("PASS without USER is sent");
    // What is unsafe stays refused.
    assert!(matches!(
        client.submit(Command::User("a\r\nDELE 1".to_owned())),
        Err(UsageError::InvalidArgument(_))
    ));
}

#[test]
fn state_checks_are_on_by_default() {
    let mut client = Client::new(Config::encrypted());
    client.receive(b"+OK ready\r\n");
    let _ = sent_and_events(&mut client, &[]);
    assert!(matches!(
        client.submit(Command::Stat),
        Err(UsageError::WrongState { .. })
    ));
}

#[test]
fn stls_stays_refused_after_login_without_state_checks() {
    let mut client = Client::new(
        Config::default()
            .state_checks(false)
            .allow_plaintext_credentials(true),
    );
    client.receive(b"+OK ready\r\n");
    client
        .submit(Command::User("u".to_owned()))
        .expect("USER before login");
    client
        .submit(Command::Pass("p".to_owned().into()))
        .expect("PASS after USER");
    let _ = sent_and_events(&mut client, &[b"+OK\r\n", b"+OK in\r\n"]);
    assert!(matches!(
        client.submit(Command::Stls),
        Err(UsageError::WrongState { .. })
    ));
}
