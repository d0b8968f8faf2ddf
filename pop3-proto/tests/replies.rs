//! Known-answer tables for every kind of reply, and the rule that every strict
//! prefix of a valid reply is incomplete (the client asks for more input and
//! reports nothing about that command).
#![allow(clippy::unwrap_used)]

use pop3_proto::{
    Action, Capability, Client, Command, Config, Event, ListEntry, MsgNum, ProtocolError, Reply,
    ResponseCode, Stat, Text, UidlEntry,
};

fn n(v: u32) -> MsgNum {
    MsgNum::new(v).unwrap()
}

/// A client logged in (in the transaction state), with its output drained.
fn logged_in() -> Client {
    let mut c = Client::new(Config::encrypted());
    c.receive(b"+OK hi\r\n");
    c.user("u").unwrap();
    c.pass("p").unwrap();
    settle(&mut c, &[b"+OK\r\n", b"+OK\r\n"]);
    while !matches!(c.poll().unwrap(), Action::NeedInput) {}
    c
}

/// The owned outcome of one command.
#[derive(Debug, PartialEq)]
enum Outcome {
    Ok(Reply, Vec<u8>),
    Err(Option<ResponseCode>, String),
    Failed(ProtocolError),
}

/// Submits `command`, feeds `reply`, and returns the outcome, or `None` if the
/// client is still waiting for more input.
fn run(command: Command, reply: &[u8]) -> Option<Outcome> {
    let mut c = logged_in();
    let handle = c.submit(command).unwrap();
    c.receive(reply);
    let mut body = Vec::new();
    loop {
        match c.poll().unwrap() {
            Action::Send(_) => {}
            Action::Event(Event::BodyStart { handle: h }) if h == handle => {}
            Action::Event(Event::Body { handle: h, data }) if h == handle => {
                body.extend_from_slice(data)
            }
            Action::Event(Event::Ok { handle: h, reply }) if h == handle => {
                return Some(Outcome::Ok(reply, body))
            }
            Action::Event(Event::Err { handle: h, error }) if h == handle => {
                return Some(Outcome::Err(error.code, error.text.as_str().to_string()))
            }
            Action::Event(Event::Failed { handle: h, error }) if h == handle => {
                return Some(Outcome::Failed(error))
            }
            Action::Event(other) => panic!("unexpected {other:?}"),
            Action::NeedInput => return None,
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn ok(reply: Reply) -> Option<Outcome> {
    Some(Outcome::Ok(reply, Vec::new()))
}

fn text(s: &str) -> Text {
    Text::sanitize(s.as_bytes())
}

fn table() -> Vec<(Command, &'static [u8], Option<Outcome>)> {
    vec![
        (
            Command::Stat,
            b"+OK 2 320\r\n",
            ok(Reply::Stat(Stat {
                count: 2,
                size: 320,
            })),
        ),
        (
            Command::Stat,
            b"+OK   2   320  \r\n",
            ok(Reply::Stat(Stat {
                count: 2,
                size: 320,
            })),
        ),
        (
            Command::Stat,
            b"+ok 0 0 extra text\r\n",
            ok(Reply::Stat(Stat { count: 0, size: 0 })),
        ),
        (
            Command::Stat,
            b"+OK 99999999999999999999 1\r\n",
            Some(Outcome::Failed(ProtocolError::Malformed(
                "number too large",
            ))),
        ),
        (
            Command::Stat,
            b"+OK 4294967296 1\r\n",
            Some(Outcome::Failed(ProtocolError::Malformed(
                "number too large",
            ))),
        ),
        (
            Command::Stat,
            b"+OK 18446744073709551615 18446744073709551616\r\n",
            Some(Outcome::Failed(ProtocolError::Malformed(
                "number too large",
            ))),
        ),
        (
            Command::Stat,
            b"+OK\r\n",
            Some(Outcome::Failed(ProtocolError::Malformed(
                "malformed STAT reply",
            ))),
        ),
        (
            Command::List(None),
            b"+OK 2 messages\r\n1 120\r\n2  200 \r\n.\r\n",
            ok(Reply::List(vec![
                ListEntry {
                    msg: n(1),
                    size: 120,
                },
                ListEntry {
                    msg: n(2),
                    size: 200,
                },
            ])),
        ),
        (
            Command::List(None),
            b"+OK\r\n.\r\n",
            ok(Reply::List(vec![])),
        ),
        (
            Command::List(None),
            b"+OK\r\n1 120\r\n1 130\r\n.\r\n",
            Some(Outcome::Failed(ProtocolError::Malformed(
                "duplicate message number in LIST",
            ))),
        ),
        (
            Command::List(None),
            b"+OK\r\n0 120\r\n.\r\n",
            Some(Outcome::Failed(ProtocolError::Malformed(
                "message number 0",
            ))),
        ),
        (
            Command::List(None),
            b"+OK\r\n1\r\n.\r\n",
            Some(Outcome::Failed(ProtocolError::Malformed(
                "malformed LIST entry",
            ))),
        ),
        (
            Command::List(Some(n(3))),
            b"+OK 3 1200\r\n",
            ok(Reply::ListOne(ListEntry {
                msg: n(3),
                size: 1200,
            })),
        ),
        (
            Command::List(Some(n(9))),
            b"-ERR no such message, only 2 messages in maildrop\r\n",
            Some(Outcome::Err(
                None,
                "no such message, only 2 messages in maildrop".into(),
            )),
        ),
        (
            Command::Uidl(None),
            b"+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2   QhdPYR:00WBw1Ph7x7  \r\n.\r\n",
            ok(Reply::Uidl(vec![
                UidlEntry {
                    msg: n(1),
                    uid: "whqtswO00WBw418f9t5JxYwZ".into(),
                },
                UidlEntry {
                    msg: n(2),
                    uid: "QhdPYR:00WBw1Ph7x7".into(),
                },
            ])),
        ),
        (
            Command::Uidl(None),
            b"+OK\r\n1 same\r\n2 same\r\n.\r\n",
            Some(Outcome::Failed(ProtocolError::Malformed(
                "duplicate unique id in UIDL",
            ))),
        ),
        (
            Command::Uidl(None),
            b"+OK\r\n1 a\x01b\r\n.\r\n",
            Some(Outcome::Failed(ProtocolError::Malformed(
                "malformed UIDL entry",
            ))),
        ),
        (
            Command::Uidl(Some(n(2))),
            b"+OK 2 QhdPYR:00WBw1Ph7x7\r\n",
            ok(Reply::UidlOne(UidlEntry {
                msg: n(2),
                uid: "QhdPYR:00WBw1Ph7x7".into(),
            })),
        ),
        (
            Command::Retr(n(1)),
            b"+OK 5 octets\r\nhi\r\n..\r\n.\r\n",
            Some(Outcome::Ok(Reply::BodyEnd, b"hi\r\n.\r\n".to_vec())),
        ),
        (Command::Retr(n(1)), b"+OK\r\n.\r\n", ok(Reply::BodyEnd)),
        (
            Command::Retr(n(1)),
            b"-ERR [SYS/TEMP] try later\r\n",
            Some(Outcome::Err(
                Some(ResponseCode::SysTemp),
                "try later".into(),
            )),
        ),
        (
            Command::Top(n(1), 0),
            b"+OK\r\nSubject: a\r\n\r\n.\r\n",
            Some(Outcome::Ok(Reply::BodyEnd, b"Subject: a\r\n\r\n".to_vec())),
        ),
        (
            Command::Dele(n(1)),
            b"+OK message 1 deleted\r\n",
            ok(Reply::Ok(text("message 1 deleted"))),
        ),
        (
            Command::Dele(n(1)),
            b"-ERR message 1 already deleted\r\n",
            Some(Outcome::Err(None, "message 1 already deleted".into())),
        ),
        (Command::Noop, b"+OK\r\n", ok(Reply::Ok(text("")))),
        (
            Command::Rset,
            b"+OK maildrop has 2 messages\r\n",
            ok(Reply::Ok(text("maildrop has 2 messages"))),
        ),
        (
            Command::Capa,
            b"+OK\r\nTOP\r\nSASL SCRAM-SHA-256 plain\r\nUTF8 USER\r\nLANG\r\nSTLS\r\n.\r\n",
            ok(Reply::Capabilities(pop3_proto::Capabilities {
                list: vec![
                    Capability::Top,
                    Capability::Sasl(vec!["SCRAM-SHA-256".into(), "PLAIN".into()]),
                    Capability::Utf8 { user: true },
                    Capability::Lang,
                    Capability::Stls,
                ],
            })),
        ),
        (
            Command::Lang(None),
            b"+OK Language listing follows\r\nen English\r\nde Deutsch\r\n.\r\n",
            ok(Reply::Languages(vec![
                pop3_proto::Language {
                    tag: "en".into(),
                    description: text("English"),
                },
                pop3_proto::Language {
                    tag: "de".into(),
                    description: text("Deutsch"),
                },
            ])),
        ),
        (
            Command::Lang(Some("de".into())),
            b"+OK Sprache ist Deutsch\r\n",
            ok(Reply::Ok(text("Sprache ist Deutsch"))),
        ),
        (
            Command::Raw {
                verb: "XTND".into(),
                args: vec!["XMIT".into()],
                multiline: false,
            },
            b"+OK go ahead\r\n",
            ok(Reply::Ok(text("go ahead"))),
        ),
        (
            Command::Raw {
                verb: "XTND".into(),
                args: vec!["LIST".into()],
                multiline: true,
            },
            b"+OK\r\na\r\n..b\r\n.\r\n",
            Some(Outcome::Ok(Reply::BodyEnd, b"a\r\n.b\r\n".to_vec())),
        ),
        (
            Command::Noop,
            b"-ERR [AUTH] bad\r\n",
            Some(Outcome::Err(Some(ResponseCode::Auth), "bad".into())),
        ),
        (
            Command::Noop,
            b"-ERR [login-delay] wait\r\n",
            Some(Outcome::Err(Some(ResponseCode::LoginDelay), "wait".into())),
        ),
        (
            Command::Noop,
            b"-ERR [SYS/PERM] gone\r\n",
            Some(Outcome::Err(Some(ResponseCode::SysPerm), "gone".into())),
        ),
        (
            Command::Noop,
            b"-ERR [UTF8] needs utf8\r\n",
            Some(Outcome::Err(Some(ResponseCode::Utf8), "needs utf8".into())),
        ),
        (
            Command::Noop,
            b"-ERR\r\n",
            Some(Outcome::Err(None, String::new())),
        ),
        (
            Command::Noop,
            b"+OK bare LF\n",
            ok(Reply::Ok(text("bare LF"))),
        ),
    ]
}

#[test]
fn known_answers() {
    for (command, reply, expected) in table() {
        let verb = command.verb().to_string();
        assert_eq!(
            run(command, reply),
            expected,
            "{verb} {:?}",
            String::from_utf8_lossy(reply)
        );
    }
}

#[test]
fn every_strict_prefix_is_incomplete() {
    for (command, reply, _) in table() {
        let verb = command.verb().to_string();
        for len in 0..reply.len() {
            let command = table()
                .into_iter()
                .find(|(c, r, _)| c.verb() == verb && *r == reply)
                .unwrap()
                .0;
            assert_eq!(
                run(command, &reply[..len]),
                None,
                "{verb}: prefix {:?} of {:?}",
                String::from_utf8_lossy(&reply[..len]),
                String::from_utf8_lossy(reply)
            );
        }
    }
}

#[test]
fn sanitised_text_has_no_control_characters() {
    let outcome = run(
        Command::Noop,
        b"-ERR \x1b]0;pwned\x07 \x9b1m \xff\xfe\x00end\r\n",
    )
    .unwrap();
    let Outcome::Err(_, text) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert!(text.ends_with("end"));
}

/// Hands the server's replies over one at a time, each only once the client
/// has sent what it answers (the way they arrive from a real server).
fn settle(c: &mut Client, replies: &[&[u8]]) {
    for reply in replies {
        while !matches!(c.poll().unwrap(), Action::NeedInput) {}
        c.receive(reply);
    }
    while !matches!(c.poll().unwrap(), Action::NeedInput) {}
}
