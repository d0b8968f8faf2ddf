//! Session rules and hostile input: states enforced, unsafe arguments refused
//! before anything is sent, STLS injection, limits, EOF, SASL abuse.
#![allow(clippy::unwrap_used)]

use pop3_proto::sasl::{SaslError, Scram, XOauth2};
use pop3_proto::{
    Action, Client, Command, Config, Event, Limits, MsgNum, ProtocolError, Reply, Secret, State,
    UsageError, MAX_WRITE_AHEAD,
};

fn n(v: u32) -> MsgNum {
    MsgNum::new(v).unwrap()
}

#[derive(Debug, Default)]
struct Seen {
    sent: Vec<u8>,
    events: Vec<String>,
    bodies: Vec<u8>,
    start_tls: bool,
    body_starts: usize,
    closed: bool,
    fatal: Option<ProtocolError>,
}

/// Polls until the client needs input, is closed or fails.
fn drain(c: &mut Client, seen: &mut Seen) {
    loop {
        match c.poll() {
            Ok(Action::Send(b)) => seen.sent.extend_from_slice(b),
            Ok(Action::Event(Event::Body { data, .. })) => seen.bodies.extend_from_slice(data),
            Ok(Action::Event(Event::BodyStart { .. })) => seen.body_starts += 1,
            Ok(Action::Event(e)) => seen.events.push(format!("{e:?}")),
            Ok(Action::NeedInput) => return,
            Ok(Action::StartTls) => {
                seen.start_tls = true;
                return;
            }
            Ok(Action::Closed) => {
                seen.closed = true;
                return;
            }
            Err(e) => {
                seen.fatal = Some(e);
                return;
            }
        }
    }
}

fn greeted(config: Config) -> (Client, Seen) {
    let mut c = Client::new(config);
    let mut seen = Seen::default();
    c.receive(b"+OK ready <1.2@host>\r\n");
    drain(&mut c, &mut seen);
    (c, seen)
}

fn logged_in() -> (Client, Seen) {
    let (mut c, mut seen) = greeted(Config::encrypted());
    c.user("u").unwrap();
    c.pass("p").unwrap();
    c.receive(b"+OK\r\n");
    drain(&mut c, &mut seen);
    c.receive(b"+OK\r\n");
    drain(&mut c, &mut seen);
    seen.sent.clear();
    seen.events.clear();
    (c, seen)
}

#[test]
fn commands_out_of_state_are_refused_and_send_nothing() {
    let (mut c, mut seen) = greeted(Config::encrypted());
    assert!(matches!(
        c.submit(Command::Retr(n(1))),
        Err(UsageError::WrongState {
            command: "RETR",
            ..
        })
    ));
    assert!(matches!(
        c.submit(Command::Stat),
        Err(UsageError::WrongState { .. })
    ));
    assert!(matches!(
        c.pass("p"),
        Err(UsageError::WrongState {
            command: "PASS",
            ..
        })
    ));
    drain(&mut c, &mut seen);
    assert!(seen.sent.is_empty());

    let (mut c, mut seen) = logged_in();
    assert!(matches!(
        c.submit(Command::Stls),
        Err(UsageError::WrongState {
            command: "STLS",
            ..
        })
    ));
    assert!(matches!(c.user("x"), Err(UsageError::WrongState { .. })));
    drain(&mut c, &mut seen);
    assert!(seen.sent.is_empty());
}

#[test]
fn a_second_stls_is_refused() {
    let (mut c, _) = greeted(Config::default());
    c.submit(Command::Stls).unwrap();
    assert!(matches!(
        c.submit(Command::Stls),
        Err(UsageError::WrongState { .. })
    ));
    let (mut c, _) = greeted(Config::encrypted());
    assert!(matches!(
        c.submit(Command::Stls),
        Err(UsageError::WrongState { .. })
    ));
}

#[test]
fn caller_strings_with_line_breaks_are_refused() {
    let (mut c, mut seen) = greeted(Config::encrypted());
    for bad in ["alice\r\nDELE 1", "alice\nQUIT", "al\rice", "nul\0"] {
        assert!(
            matches!(c.user(bad), Err(UsageError::InvalidArgument(_))),
            "{bad:?}"
        );
        assert!(matches!(
            c.apop(bad, "x"),
            Err(UsageError::InvalidArgument(_))
        ));
    }
    let raw = Command::Raw {
        verb: "XTND".into(),
        args: vec!["a\r\nDELE 1".into()],
        multiline: false,
    };
    assert!(matches!(c.submit(raw), Err(UsageError::InvalidArgument(_))));
    let raw = Command::Raw {
        verb: "X TND".into(),
        args: vec![],
        multiline: false,
    };
    assert!(matches!(c.submit(raw), Err(UsageError::InvalidArgument(_))));
    let raw = Command::Raw {
        verb: "PASS".into(),
        args: vec!["x".into()],
        multiline: false,
    };
    assert!(matches!(c.submit(raw), Err(UsageError::InvalidArgument(_))));
    assert!(matches!(
        c.submit(Command::Lang(Some("en\r\n".into()))),
        Err(UsageError::InvalidArgument(_))
    ));
    c.user("alice").unwrap();
    assert!(matches!(
        c.pass("pw\r\nDELE 1"),
        Err(UsageError::InvalidArgument(_))
    ));
    drain(&mut c, &mut seen);
    assert_eq!(seen.sent, b"USER alice\r\n");
}

#[test]
fn credentials_are_refused_in_the_clear_unless_allowed() {
    let (mut c, mut seen) = greeted(Config::default());
    assert_eq!(c.user("alice"), Err(UsageError::PlaintextCredentials));
    assert_eq!(c.apop("alice", "pw"), Err(UsageError::PlaintextCredentials));
    let token = XOauth2::new("alice".into(), Secret::new("tok".into())).unwrap();
    assert_eq!(
        c.auth(Box::new(token)).map(|_| ()),
        Err(UsageError::PlaintextCredentials)
    );
    // SCRAM never reveals the password, so it is allowed.
    let scram = Scram::sha256("alice".into(), Secret::new("pw".into()), "nonce123".into()).unwrap();
    assert!(c.auth(Box::new(scram)).is_ok());
    drain(&mut c, &mut seen);
    assert!(seen.sent.starts_with(b"AUTH SCRAM-SHA-256 "));

    let (mut c, _) = greeted(Config::default().allow_plaintext_credentials(true));
    assert!(c.user("alice").is_ok());
}

#[test]
fn credentials_queued_behind_stls_wait_for_tls() {
    let (mut c, mut seen) = greeted(Config::default());
    c.submit(Command::Stls).unwrap();
    c.user("alice").unwrap(); // allowed: TLS will be up before it is sent
    drain(&mut c, &mut seen);
    assert_eq!(seen.sent, b"STLS\r\n");
    c.receive(b"-ERR [SYS/TEMP] no TLS today\r\n");
    drain(&mut c, &mut seen);
    assert_eq!(
        seen.sent, b"STLS\r\n",
        "USER must never follow a refused STLS"
    );
    assert!(
        seen.events.iter().any(|e| e.contains("Cancelled")),
        "{:?}",
        seen.events
    );
}

#[test]
fn bytes_after_stls_ok_are_an_injection() {
    for injected in [
        &b"+OK injected\r\n"[..],
        b"+OK partial line without end",
        b"\x16\x03\x01",
    ] {
        let (mut c, mut seen) = greeted(Config::default());
        c.submit(Command::Stls).unwrap();
        drain(&mut c, &mut seen);
        let mut reply = b"+OK begin TLS\r\n".to_vec();
        reply.extend_from_slice(injected);
        c.receive(&reply);
        drain(&mut c, &mut seen);
        assert_eq!(
            seen.fatal,
            Some(ProtocolError::DataAfterStls),
            "{injected:?}"
        );
        assert!(!seen.start_tls);
        // Sticky: every later poll fails the same way; nothing is processed.
        assert_eq!(c.poll(), Err(ProtocolError::DataAfterStls));
        assert_eq!(
            c.user("x"),
            Err(UsageError::Failed(ProtocolError::DataAfterStls))
        );
    }
    // Bytes arriving after StartTls was announced, before TLS is up.
    let (mut c, mut seen) = greeted(Config::default());
    c.submit(Command::Stls).unwrap();
    drain(&mut c, &mut seen);
    c.receive(b"+OK begin TLS\r\n");
    drain(&mut c, &mut seen);
    assert!(seen.start_tls);
    c.receive(b"+OK late injection\r\n");
    assert_eq!(c.poll(), Err(ProtocolError::DataAfterStls));
}

#[test]
fn capabilities_from_before_tls_do_not_survive() {
    let (mut c, mut seen) = greeted(Config::default());
    c.submit(Command::Capa).unwrap();
    drain(&mut c, &mut seen);
    c.receive(b"+OK\r\nSTLS\r\nPIPELINING\r\nSASL PLAIN\r\n.\r\n");
    drain(&mut c, &mut seen);
    assert!(c.is_pipelining());
    c.submit(Command::Stls).unwrap();
    drain(&mut c, &mut seen);
    c.receive(b"+OK\r\n");
    drain(&mut c, &mut seen);
    assert!(seen.start_tls);
    c.tls_established().unwrap();
    assert!(c.capabilities().is_none());
    assert!(!c.is_pipelining());
    seen.sent.clear();
    drain(&mut c, &mut seen);
    assert_eq!(seen.sent, b"CAPA\r\n", "CAPA is issued again after TLS");
    c.receive(b"+OK\r\nUSER\r\n.\r\n");
    drain(&mut c, &mut seen);
    let caps = c.capabilities().unwrap();
    assert!(!caps.pipelining() && !caps.stls() && !caps.has_sasl("PLAIN"));
}

#[test]
fn nothing_is_pipelined_without_the_capability_and_the_window_is_bounded() {
    let (mut c, mut seen) = logged_in();
    for i in 1..=5 {
        c.submit(Command::Dele(n(i))).unwrap();
    }
    drain(&mut c, &mut seen);
    assert_eq!(seen.sent, b"DELE 1\r\n");

    let config = Config::encrypted().pipeline_window(3);
    let mut c = Client::new(config);
    let mut seen = Seen::default();
    c.receive(b"+OK hi\r\n");
    c.submit(Command::Capa).unwrap();
    drain(&mut c, &mut seen);
    c.receive(b"+OK\r\nPIPELINING\r\n.\r\n");
    drain(&mut c, &mut seen);
    c.user("u").unwrap();
    c.pass("p").unwrap();
    drain(&mut c, &mut seen);
    settle(&mut c, &[b"+OK\r\n", b"+OK\r\n"]);
    drain(&mut c, &mut seen);
    // Login dropped the capabilities and a new CAPA went out.
    c.receive(b"+OK\r\nPIPELINING\r\n.\r\n");
    drain(&mut c, &mut seen);
    seen.sent.clear();
    for i in 1..=10 {
        c.submit(Command::Retr(n(i))).unwrap();
    }
    drain(&mut c, &mut seen);
    assert_eq!(seen.sent, b"RETR 1\r\nRETR 2\r\nRETR 3\r\n");
    c.receive(b"+OK\r\nx\r\n.\r\n");
    drain(&mut c, &mut seen);
    assert_eq!(seen.sent, b"RETR 1\r\nRETR 2\r\nRETR 3\r\nRETR 4\r\n");
}

/// Whatever the window, at most `MAX_WRITE_AHEAD` bytes of commands (plus
/// the one that crossed it) go out unanswered; each reply lets more go.
#[test]
fn the_bytes_written_ahead_are_bounded_whatever_the_window() {
    let (mut c, mut seen) = pipelining(Config::encrypted().pipeline_window(usize::MAX));
    // "RETR 1000000\r\n" is 14 bytes.
    let first = 1_000_000;
    for i in first..first + 2000 {
        c.submit(Command::Retr(n(i))).unwrap();
    }
    drain(&mut c, &mut seen);
    let sent = seen.sent.len();
    assert!(sent >= MAX_WRITE_AHEAD, "{sent}");
    assert!(sent < MAX_WRITE_AHEAD + 14, "{sent}");
    assert_eq!(c.in_flight(), sent / 14);
    c.receive(b"+OK\r\nx\r\n.\r\n");
    drain(&mut c, &mut seen);
    assert_eq!(seen.sent.len(), sent + 14, "one answered, one more sent");
}

#[test]
fn stls_and_auth_are_never_pipelined() {
    let (mut c, mut seen) = greeted(Config::default());
    c.submit(Command::Capa).unwrap();
    drain(&mut c, &mut seen);
    c.receive(b"+OK\r\nPIPELINING\r\nSTLS\r\n.\r\n");
    drain(&mut c, &mut seen);
    seen.sent.clear();
    c.submit(Command::Stls).unwrap();
    c.submit(Command::Capa).unwrap();
    drain(&mut c, &mut seen);
    assert_eq!(seen.sent, b"STLS\r\n");
}

#[test]
fn over_long_lines_are_errors_that_keep_the_stream_in_step() {
    let mut limits = Limits::default();
    limits.max_line_len = 512;
    let (mut c, mut seen) = pipelining(Config::encrypted().limits(limits));

    // A 1 MiB -ERR line, fed in pieces, then a normal reply.
    c.submit(Command::Noop).unwrap();
    c.submit(Command::Noop).unwrap();
    let mut long = b"-ERR ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 1 << 20));
    for piece in long.chunks(4096) {
        c.receive(piece);
        drain(&mut c, &mut seen);
    }
    c.receive(b"\r\n+OK fine\r\n");
    drain(&mut c, &mut seen);
    assert!(seen.events[0].contains("LineTooLong"), "{:?}", seen.events);
    assert!(seen.events[1].contains("fine"), "{:?}", seen.events);

    // An over-long +OK to RETR: the body is skipped, the next reply is read.
    seen.events.clear();
    c.submit(Command::Retr(n(1))).unwrap();
    c.submit(Command::Stat).unwrap();
    let mut reply = b"+OK ".to_vec();
    reply.extend(std::iter::repeat_n(b'y', 10_000));
    reply.extend_from_slice(b"\r\nbody\r\n.\r\n+OK 1 2\r\n");
    c.receive(&reply);
    drain(&mut c, &mut seen);
    assert!(
        seen.events[0].contains("Failed") && seen.events[0].contains("LineTooLong"),
        "{:?}",
        seen.events
    );
    assert!(
        seen.events[1].contains("Stat { count: 1, size: 2 }"),
        "{:?}",
        seen.events
    );
    assert!(seen.bodies.is_empty());
    assert!(seen.fatal.is_none());
}

#[test]
fn an_over_long_line_that_is_not_a_reply_is_fatal() {
    let (mut c, mut seen) = logged_in();
    c.submit(Command::Noop).unwrap();
    c.receive(&vec![b'z'; 100_000]);
    drain(&mut c, &mut seen);
    assert_eq!(seen.fatal, Some(ProtocolError::LineTooLong { limit: 8192 }));
}

#[test]
fn a_capa_of_a_million_lines_is_refused_without_holding_it() {
    let (mut c, mut seen) = pipelining(Config::encrypted());
    c.submit(Command::Capa).unwrap();
    c.submit(Command::Noop).unwrap();
    c.receive(b"+OK\r\n");
    let block = b"X-CAP\r\n".repeat(10_000);
    for _ in 0..100 {
        c.receive(&block);
        drain(&mut c, &mut seen);
    }
    c.receive(b".\r\n+OK\r\n");
    drain(&mut c, &mut seen);
    assert!(
        seen.events[0].contains("TooManyLines { limit: 1000 }"),
        "{:?}",
        seen.events
    );
    assert!(seen.events[1].starts_with("Ok"), "{:?}", seen.events);
}

#[test]
fn body_line_limit_is_optional() {
    let mut limits = Limits::default();
    limits.max_body_line_len = Some(100);
    let config = Config::encrypted().limits(limits);
    let (mut c, mut seen) = pipelining(config);
    c.submit(Command::Retr(n(1))).unwrap();
    c.submit(Command::Noop).unwrap();
    let mut reply = b"+OK\r\nshort\r\n".to_vec();
    reply.extend(std::iter::repeat_n(b'L', 1000));
    reply.extend_from_slice(b"\r\nafter\r\n.\r\n+OK\r\n");
    c.receive(&reply);
    drain(&mut c, &mut seen);
    assert!(
        seen.events[0].contains("BodyLineTooLong"),
        "{:?}",
        seen.events
    );
    assert!(seen.events[1].starts_with("Ok"), "{:?}", seen.events);
}

#[test]
fn unsolicited_data_is_fatal() {
    let (mut c, mut seen) = greeted(Config::default());
    c.receive(b"+OK nobody asked\r\n");
    drain(&mut c, &mut seen);
    assert_eq!(seen.fatal, Some(ProtocolError::UnsolicitedData));
}

#[test]
fn greetings_bad_and_refused() {
    for (input, expect) in [
        (&b"HTTP/1.1 400 Bad Request\r\n"[..], "InvalidGreeting"),
        (b"-ERR [SYS/PERM] go away\r\n", "GreetingRejected"),
        (b"\x1b[2J\x00\xff\r\n", "InvalidGreeting"),
    ] {
        let mut c = Client::new(Config::default());
        let mut seen = Seen::default();
        c.receive(input);
        drain(&mut c, &mut seen);
        let fatal = format!("{:?}", seen.fatal);
        assert!(fatal.contains(expect), "{fatal}");
        assert!(!fatal.contains('\u{1b}'));
    }
}

#[test]
fn eof_mid_reply_is_an_error_and_eof_when_idle_closes() {
    let (mut c, mut seen) = logged_in();
    c.submit(Command::Retr(n(1))).unwrap();
    c.receive(b"+OK\r\npart of a mess");
    c.receive_eof();
    drain(&mut c, &mut seen);
    assert_eq!(seen.bodies, b"part of a mess");
    assert_eq!(seen.fatal, Some(ProtocolError::UnexpectedEof));

    let (mut c, mut seen) = logged_in();
    c.receive_eof();
    drain(&mut c, &mut seen);
    assert!(seen.closed && seen.fatal.is_none());
    assert_eq!(c.state(), State::Closed);

    let mut c = Client::new(Config::default());
    let mut seen = Seen::default();
    c.receive_eof();
    drain(&mut c, &mut seen);
    assert_eq!(seen.fatal, Some(ProtocolError::UnexpectedEof));
}

#[test]
fn apop_needs_a_valid_timestamp() {
    let huge = format!("+OK <{}@x>\r\n", "a".repeat(5000));
    for greeting in [
        "+OK no timestamp\r\n",
        "+OK <>\r\n",
        "+OK <no-at-sign>\r\n",
        "+OK <@empty-local>\r\n",
        "+OK <a b@c>\r\n",
        "+OK <unclosed@x\r\n",
        huge.as_str(),
    ] {
        let mut c = Client::new(Config::encrypted());
        let mut seen = Seen::default();
        c.receive(greeting.as_bytes());
        drain(&mut c, &mut seen);
        assert_eq!(c.greeting().unwrap().apop_timestamp, None, "{greeting}");
        assert_eq!(
            c.apop("u", "p"),
            Err(UsageError::NoApopTimestamp),
            "{greeting}"
        );
    }
}

#[test]
fn a_timestamp_in_a_huge_greeting_is_found_in_linear_time() {
    let mut greeting = b"+OK ".to_vec();
    greeting.extend(b"<".repeat(8000));
    greeting.extend_from_slice(b"\r\n");
    let mut c = Client::new(Config::encrypted());
    let mut seen = Seen::default();
    let start = std::time::Instant::now();
    c.receive(&greeting);
    drain(&mut c, &mut seen);
    assert!(seen.fatal.is_none());
    assert_eq!(c.greeting().unwrap().apop_timestamp, None);
    assert!(start.elapsed() < std::time::Duration::from_secs(1));
}

fn auth_scram() -> (Client, Seen) {
    let (mut c, mut seen) = greeted(Config::default());
    let scram = Scram::sha1(
        "user".into(),
        Secret::new("pencil".into()),
        "fyko+d2lbbFgONRv9qkxdawL".into(),
    )
    .unwrap();
    c.auth(Box::new(scram)).unwrap();
    drain(&mut c, &mut seen);
    (c, seen)
}

const SERVER_FIRST: &[u8] = b"+ cj1meWtvK2QybGJiRmdPTlJ2OXFreGRhd0wzcmZjTkhZSlkxWlZ2V1ZzN2oscz1RU1hDUitRNnNlazhiZjkyLGk9NDA5Ng==\r\n";

#[test]
fn sasl_a_bad_challenge_is_cancelled() {
    for challenge in [&b"+ !!!not base64!!!\r\n"[..], b"+ aT0w\r\n" /* i=0 */] {
        let (mut c, mut seen) = auth_scram();
        c.receive(challenge);
        drain(&mut c, &mut seen);
        assert!(
            seen.sent.ends_with(b"*\r\n"),
            "{:?}",
            String::from_utf8_lossy(&seen.sent)
        );
        c.receive(b"-ERR cancelled\r\n");
        drain(&mut c, &mut seen);
        assert!(
            seen.events.last().unwrap().contains("Failed"),
            "{:?}",
            seen.events
        );
        assert!(seen.fatal.is_none());
    }
}

#[test]
fn sasl_a_wrong_server_signature_is_caught() {
    let (mut c, mut seen) = auth_scram();
    c.receive(SERVER_FIRST);
    drain(&mut c, &mut seen);
    c.receive(b"+ dj1BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE9\r\n"); // v=AAAA...
    drain(&mut c, &mut seen);
    assert!(seen.sent.ends_with(b"*\r\n"));
    c.receive(b"-ERR ok\r\n");
    drain(&mut c, &mut seen);
    assert!(
        seen.events
            .last()
            .unwrap()
            .contains(&format!("{:?}", SaslError::ServerSignatureMismatch)),
        "{:?}",
        seen.events
    );
}

#[test]
fn sasl_ok_before_the_server_proved_itself_is_fatal() {
    let (mut c, mut seen) = auth_scram();
    c.receive(SERVER_FIRST);
    drain(&mut c, &mut seen);
    c.receive(b"+OK welcome\r\n");
    drain(&mut c, &mut seen);
    assert_eq!(seen.fatal, Some(ProtocolError::Sasl(SaslError::Incomplete)));

    let (mut c, mut seen) = auth_scram();
    c.receive(b"+ !!!\r\n");
    drain(&mut c, &mut seen);
    c.receive(b"+OK accepted anyway\r\n");
    drain(&mut c, &mut seen);
    assert_eq!(seen.fatal, Some(ProtocolError::AuthenticationAccepted));
}

#[test]
fn a_long_initial_response_waits_for_the_empty_challenge() {
    let (mut c, mut seen) = greeted(Config::encrypted());
    let token = "t".repeat(400);
    c.auth(Box::new(
        XOauth2::new("alice".into(), Secret::new(token)).unwrap(),
    ))
    .unwrap();
    drain(&mut c, &mut seen);
    assert_eq!(seen.sent, b"AUTH XOAUTH2\r\n");
    c.receive(b"+ \r\n");
    drain(&mut c, &mut seen);
    assert!(seen.sent.len() > 500 && seen.sent.ends_with(b"\r\n"));
    c.receive(b"+OK\r\n");
    drain(&mut c, &mut seen);
    assert!(seen.events.last().unwrap().contains("Authenticated"));
}

#[test]
fn secrets_never_show_in_debug_output() {
    let pass = Command::Pass(Secret::new("hunter2".into()));
    let apop = Command::Apop {
        user: "u".into(),
        password: Secret::new("hunter2".into()),
    };
    for text in [
        format!("{pass:?}"),
        format!("{apop:?}"),
        format!("{:#?}", Secret::new(String::from("hunter2"))),
    ] {
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[test]
fn a_failed_user_cancels_the_pass_behind_it() {
    let (mut c, mut seen) = greeted(Config::encrypted());
    let user = c.user("nobody").unwrap();
    let pass = c.pass("pw").unwrap();
    drain(&mut c, &mut seen);
    c.receive(b"-ERR [AUTH] no such user\r\n");
    drain(&mut c, &mut seen);
    assert_eq!(seen.sent, b"USER nobody\r\n");
    assert!(seen
        .events
        .iter()
        .any(|e| e.contains(&format!("{user:?}")) && e.starts_with("Err")));
    assert!(seen
        .events
        .iter()
        .any(|e| e.contains(&format!("{pass:?}")) && e.starts_with("Cancelled")));
    // The session goes on: a new login may be tried.
    assert!(c.user("somebody").is_ok());
}

#[test]
fn after_quit_nothing_more_is_accepted() {
    let (mut c, mut seen) = pipelining(Config::encrypted());
    c.submit(Command::Dele(n(1))).unwrap();
    c.submit(Command::Quit).unwrap();
    assert_eq!(c.submit(Command::Noop), Err(UsageError::Closed));
    drain(&mut c, &mut seen);
    // QUIT waits for the DELE's reply.
    assert_eq!(seen.sent, b"DELE 1\r\n");
    c.receive(b"+OK\r\n");
    drain(&mut c, &mut seen);
    assert_eq!(seen.sent, b"DELE 1\r\nQUIT\r\n");
    c.receive(b"+OK bye\r\n");
    drain(&mut c, &mut seen);
    assert!(seen.closed);
    assert!(seen.events.iter().any(|e| e.contains("bye")));
}

#[test]
fn handles_name_their_client() {
    let (mut a, _) = logged_in();
    let (mut b, _) = logged_in();
    assert_ne!(
        a.submit(Command::Noop).unwrap(),
        b.submit(Command::Noop).unwrap()
    );
}

#[test]
fn utf8_mode_is_tracked() {
    let (mut c, mut seen) = greeted(Config::encrypted());
    c.submit(Command::Utf8).unwrap();
    drain(&mut c, &mut seen);
    c.receive(b"+OK UTF8 enabled\r\n");
    drain(&mut c, &mut seen);
    assert!(c.is_utf8());
    assert!(seen.events.iter().any(|e| e.contains(&format!(
        "{:?}",
        Reply::Ok(pop3_proto::Text::sanitize(b"UTF8 enabled"))
    ))));
}

#[test]
fn a_bare_lf_never_ends_a_body() {
    // A message author plants "\n.\r\n" followed by a fake reply: on a server
    // that stuffs only CRLF lines this reaches the client unstuffed. It stays
    // message data, and the real terminator ends the body.
    let (mut c, mut seen) = pipelining(Config::encrypted());
    c.submit(Command::Retr(n(1))).unwrap();
    c.submit(Command::Noop).unwrap();
    c.receive(b"+OK\r\nline\n.\r\n+OK injected\r\n.\r\n+OK real\r\n");
    drain(&mut c, &mut seen);
    assert_eq!(seen.bodies, b"line\n.\r\n+OK injected\r\n");
    assert!(
        seen.events[0].contains("BodyEnd") && seen.events[1].contains("real"),
        "{:?}",
        seen.events
    );
}

#[test]
fn the_terminator_split_across_reads() {
    for split in 0..=10 {
        let (mut c, mut seen) = logged_in();
        c.submit(Command::Retr(n(1))).unwrap();
        let reply = b"+OK\r\ntext.\r\n.\r\n";
        c.receive(&reply[..5 + split.min(reply.len() - 5)]);
        drain(&mut c, &mut seen);
        c.receive(&reply[5 + split.min(reply.len() - 5)..]);
        drain(&mut c, &mut seen);
        assert_eq!(seen.bodies, b"text.\r\n", "split {split}");
        assert!(seen.events.last().unwrap().contains("BodyEnd"));
    }
}

#[test]
fn listings_may_not_name_messages_beyond_the_stat_count() {
    let (mut c, mut seen) = pipelining(Config::encrypted());
    c.submit(Command::Stat).unwrap();
    c.submit(Command::List(None)).unwrap();
    c.submit(Command::Uidl(None)).unwrap();
    c.submit(Command::List(None)).unwrap();
    drain(&mut c, &mut seen);
    c.receive(b"+OK 2 300\r\n+OK\r\n1 100\r\n2 100\r\n3 100\r\n.\r\n+OK\r\n1 a\r\n7 b\r\n.\r\n+OK\r\n1 100\r\n2 200\r\n.\r\n");
    drain(&mut c, &mut seen);
    assert!(
        seen.events[1].contains("beyond the STAT count"),
        "{:?}",
        seen.events
    );
    assert!(
        seen.events[2].contains("beyond the STAT count"),
        "{:?}",
        seen.events
    );
    assert!(seen.events[3].contains("List(["), "{:?}", seen.events);
}

#[test]
fn bytes_that_answer_no_command_are_fatal_before_the_next_command_goes_out() {
    // Extra bytes in the same read as the greeting.
    let mut c = Client::new(Config::encrypted());
    let mut seen = Seen::default();
    c.receive(b"+OK hi\r\n+OK forged reply\r\n");
    drain(&mut c, &mut seen);
    assert_eq!(seen.fatal, Some(ProtocolError::UnsolicitedData));
    assert_eq!(
        c.submit(Command::Capa),
        Err(UsageError::Failed(ProtocolError::UnsolicitedData))
    );

    // Extra bytes after the reply to the last command in flight: the reply
    // itself is delivered, the forged one is never matched to NOOP.
    let (mut c, mut seen) = logged_in();
    c.submit(Command::Stat).unwrap();
    drain(&mut c, &mut seen);
    c.receive(b"+OK 1 10\r\n+OK forged\r\n");
    drain(&mut c, &mut seen);
    assert!(seen.events[0].contains("Stat"), "{:?}", seen.events);
    assert_eq!(seen.fatal, Some(ProtocolError::UnsolicitedData));
    seen.sent.clear();
    assert_eq!(
        c.submit(Command::Noop),
        Err(UsageError::Failed(ProtocolError::UnsolicitedData))
    );
    drain(&mut c, &mut seen);
    assert!(seen.sent.is_empty());
}

#[test]
fn login_checks_the_password_before_user_is_queued() {
    let (mut c, mut seen) = greeted(Config::encrypted());
    assert!(matches!(
        c.login("alice", "pw\r\nDELE 1"),
        Err(UsageError::InvalidArgument(_))
    ));
    assert!(matches!(
        c.login("al\nice", "pw"),
        Err(UsageError::InvalidArgument(_))
    ));
    drain(&mut c, &mut seen);
    assert!(seen.sent.is_empty());
    c.login("alice", "pw").unwrap();
    drain(&mut c, &mut seen);
    assert_eq!(seen.sent, b"USER alice\r\n");
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

/// A logged-in client whose server offers PIPELINING, so that several
/// commands are in flight and their replies may arrive in one read.
fn pipelining(config: Config) -> (Client, Seen) {
    let mut c = Client::new(config);
    let mut seen = Seen::default();
    c.receive(b"+OK\r\n");
    c.submit(Command::Capa).unwrap();
    c.login("u", "p").unwrap();
    let capa: &[u8] = b"+OK\r\nPIPELINING\r\n.\r\n";
    settle(&mut c, &[capa, b"+OK\r\n", b"+OK\r\n", capa]);
    drain(&mut c, &mut seen);
    assert!(c.is_pipelining());
    seen.sent.clear();
    seen.events.clear();
    (c, seen)
}

#[test]
fn data_before_tls_is_up_ends_the_session() {
    let (mut c, mut seen) = greeted(Config::default());
    c.submit(Command::Stls).unwrap();
    c.user("queued").unwrap();
    drain(&mut c, &mut seen);
    c.receive(b"+OK begin TLS\r\n");
    drain(&mut c, &mut seen);
    assert!(seen.start_tls);
    c.receive(b"X");
    assert_eq!(c.poll(), Err(ProtocolError::DataAfterStls));
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.queued(), 0);
    assert_eq!(
        c.tls_established(),
        Err(UsageError::Failed(ProtocolError::DataAfterStls))
    );
    assert!(!c.is_encrypted());
}

#[test]
fn an_apop_line_never_exceeds_255_octets() {
    let (mut c, mut seen) = greeted(Config::encrypted());
    assert!(matches!(
        c.apop(&"a".repeat(216), "p"),
        Err(UsageError::InvalidArgument(_))
    ));
    c.apop(&"a".repeat(215), "p").unwrap();
    drain(&mut c, &mut seen);
    assert_eq!(seen.sent.len(), 255);
}

#[test]
fn the_body_line_limit_counts_crlf_lines() {
    // Short pieces separated by bare LFs are one CRLF line, over the limit.
    let mut limits = Limits::default();
    limits.max_body_line_len = Some(10);
    let (mut c, mut seen) = pipelining(Config::encrypted().limits(limits));
    c.submit(Command::Retr(n(1))).unwrap();
    drain(&mut c, &mut seen);
    c.receive(b"+OK\r\nabcdef\nabcdef\nabcdef\r\n.\r\n");
    drain(&mut c, &mut seen);
    assert!(
        seen.events[0].contains("BodyLineTooLong"),
        "{:?}",
        seen.events
    );
}

#[test]
fn a_burst_of_commands_asks_for_pipelining_once() {
    // Logged in without a CAPA: the second waiting command makes the client
    // ask, once, whether the server pipelines.
    let (mut c, mut seen) = logged_in();
    for i in 1..=4 {
        c.submit(Command::Dele(n(i))).unwrap();
    }
    drain(&mut c, &mut seen);
    assert_eq!(seen.sent, b"DELE 1\r\n");
    c.receive(b"+OK\r\n");
    drain(&mut c, &mut seen);
    assert_eq!(seen.sent, b"DELE 1\r\nCAPA\r\n");
    c.receive(b"+OK\r\nPIPELINING\r\n.\r\n");
    drain(&mut c, &mut seen);
    assert_eq!(
        seen.sent,
        b"DELE 1\r\nCAPA\r\nDELE 2\r\nDELE 3\r\nDELE 4\r\n"
    );

    // A server without CAPA is asked only once; commands go one at a time.
    let (mut c, mut seen) = logged_in();
    for i in 1..=3 {
        c.submit(Command::Dele(n(i))).unwrap();
    }
    for reply in [&b"+OK\r\n"[..], b"-ERR what?\r\n", b"+OK\r\n"] {
        drain(&mut c, &mut seen);
        c.receive(reply);
    }
    drain(&mut c, &mut seen);
    c.submit(Command::Noop).unwrap();
    drain(&mut c, &mut seen);
    assert_eq!(seen.sent, b"DELE 1\r\nCAPA\r\nDELE 2\r\nDELE 3\r\n");
}

/// Greeted, STLS accepted through the `start_tls` operation, a login queued
/// behind it: the core waits for the handshake.
fn upgrade_pending() -> (Client, Seen, pop3_proto::Handle, pop3_proto::Handle) {
    let (mut c, mut seen) = greeted(Config::default());
    let stls = c.start_tls().unwrap();
    let login = c.user("alice").unwrap();
    drain(&mut c, &mut seen);
    c.receive(b"+OK\r\nSTLS\r\nUSER\r\n.\r\n");
    drain(&mut c, &mut seen);
    c.receive(b"+OK go\r\n");
    drain(&mut c, &mut seen);
    assert!(seen.start_tls);
    (c, seen, stls, login)
}

/// A failed handshake after STLS: the operation fails, the login queued
/// behind it is cancelled, then the session ends with the fatal
/// `TlsFailed` — the events first, so every driver can report them.
#[test]
fn a_failed_tls_handshake_fails_the_upgrade_and_ends_the_session() {
    let (mut c, _, stls, login) = upgrade_pending();
    c.tls_failed().unwrap();
    let mut order = Vec::new();
    loop {
        match c.poll() {
            Ok(Action::Event(Event::Failed { handle, error })) => {
                assert_eq!((handle, error), (stls, ProtocolError::TlsFailed));
                order.push("failed");
            }
            Ok(Action::Event(Event::Cancelled { handle, reason })) => {
                assert_eq!((handle, reason), (login, UsageError::Cancelled));
                order.push("cancelled");
            }
            Err(error) => {
                assert_eq!(error, ProtocolError::TlsFailed);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(order, ["failed", "cancelled"]);
    assert_eq!(c.poll().unwrap_err(), ProtocolError::TlsFailed);
    assert_eq!(c.state(), State::Closed);
    assert!(matches!(c.tls_established(), Err(UsageError::Failed(_))));
    assert!(matches!(c.tls_failed(), Err(UsageError::Failed(_))));
    // Nothing pending: `tls_failed` is refused and changes nothing.
    let (mut idle, _) = greeted(Config::encrypted());
    assert!(matches!(
        idle.tls_failed(),
        Err(UsageError::WrongState { .. })
    ));
    assert_eq!(idle.state(), State::Authorization);
}

/// End of stream while the core waits for the handshake ends the upgrade
/// the same way, instead of asking for the handshake for ever.
#[test]
fn end_of_stream_during_the_tls_upgrade_ends_the_session() {
    let (mut c, mut seen, _, _) = upgrade_pending();
    c.receive_eof();
    drain(&mut c, &mut seen);
    assert_eq!(seen.fatal, Some(ProtocolError::UnexpectedEof));
    assert!(
        seen.events.iter().any(|e| e.starts_with("Failed")),
        "{:?}",
        seen.events
    );
    assert!(
        seen.events.iter().any(|e| e.starts_with("Cancelled")),
        "{:?}",
        seen.events
    );
}

/// Limits of `usize::MAX` mean "no limit": no overflow (a panic in debug
/// builds, a limit wrapped to 0 in release that fails every line split
/// across reads); the read size is held to `MAX_READ_SIZE`.
#[test]
fn limits_at_usize_max_do_not_overflow() {
    let mut limits = Limits::default();
    limits.max_line_len = usize::MAX;
    limits.max_listing_lines = usize::MAX;
    limits.max_listing_bytes = usize::MAX;
    limits.max_capa_lines = usize::MAX;
    limits.max_body_line_len = Some(usize::MAX);
    let mut config = Config::encrypted()
        .limits(limits)
        .pipeline_window(usize::MAX);
    config.read_size = usize::MAX;
    let mut c = Client::new(config);
    assert_eq!(c.config().read_size, pop3_proto::MAX_READ_SIZE);
    assert_eq!(c.input_bound(), usize::MAX);
    c.user("a").unwrap();
    c.pass(Secret::new("b".into())).unwrap();
    c.submit(Command::Retr(n(1))).unwrap();
    let mut seen = Seen::default();
    let script = b"+OK hi\r\n+OK\r\n+OK in\r\n+OK\r\nbody line\r\n..dot\r\n.\r\n";
    for &byte in script {
        let spare = c.input_buffer();
        assert!(!spare.is_empty() && spare.len() <= pop3_proto::MAX_READ_SIZE + 64);
        spare[0] = byte;
        c.input_written(1);
        drain(&mut c, &mut seen);
        assert_eq!(seen.fatal, None);
    }
    assert_eq!(seen.bodies, b"body line\r\n.dot\r\n");
    assert!(
        !seen.events.iter().any(|e| e.starts_with("Failed")),
        "{:?}",
        seen.events
    );
}

/// After polling to `NeedInput`, what the client holds unread is below
/// `input_bound`, so a driver that bounds input by it can always read.
#[test]
fn polling_always_brings_buffered_input_below_the_bound() {
    let mut config = Config::encrypted();
    config.read_size = 1024;
    config.limits.max_line_len = 100;
    let mut c = Client::new(config);
    let mut seen = Seen::default();
    c.receive(b"+OK hi\r\n+OK partial line not ended yet");
    drain(&mut c, &mut seen);
    assert!(c.buffered_input() < c.input_bound());
    assert_eq!(c.input_bound(), 1024 + 100 + 2);
}
