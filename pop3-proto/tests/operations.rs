//! Composite operations (login_with, start_tls, retr_many, dele_many,
//! discard) and the wire trace, driven against a scripted server that answers
//! each command line the client sends.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;

use pop3_proto::{
    Action, AuthMethod, Client, Config, Credentials, Direction, Event, Handle, MsgNum,
    ResponseCode, UsageError,
};

/// A server that answers each line the client sends, in order, with the
/// next scripted reply, and records the lines.
struct Server {
    replies: VecDeque<(&'static str, &'static [u8])>,
    received: Vec<String>,
    pending: Vec<u8>,
    partial: Vec<u8>,
}

impl Server {
    /// `replies`: (expected command line, reply bytes).
    fn new(greeting: &'static [u8], replies: &[(&'static str, &'static [u8])]) -> Server {
        Server {
            replies: replies.iter().copied().collect(),
            received: Vec::new(),
            pending: greeting.to_vec(),
            partial: Vec::new(),
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8(self.partial[..end].to_vec()).unwrap();
            self.partial.drain(..end + 2);
            let (expected, reply) = self
                .replies
                .pop_front()
                .unwrap_or_else(|| panic!("unexpected line {line:?}"));
            assert_eq!(line, expected, "the client sent the wrong line");
            self.received.push(line);
            self.pending.extend_from_slice(reply);
        }
    }
}

/// Everything the caller saw, as text.
#[derive(Default)]
struct Seen {
    events: Vec<String>,
    trace: Vec<String>,
    bodies: Vec<(Handle, Vec<u8>)>,
}

/// Pumps until `done` holds for the events seen, or the client is idle.
fn pump(client: &mut Client, server: &mut Server, seen: &mut Seen, done: impl Fn(&Seen) -> bool) {
    for _ in 0..10_000 {
        if done(seen) {
            return;
        }
        match client.poll().unwrap() {
            Action::Send(bytes) => {
                let bytes = bytes.to_vec();
                server.take(&bytes);
            }
            Action::Event(Event::Trace(line)) => {
                let dir = match line.direction {
                    Direction::Sent => "C",
                    Direction::Received => "S",
                };
                seen.trace.push(format!("{dir}: {}", line.line));
            }
            Action::Event(Event::Body { handle, data }) => {
                match seen.bodies.iter_mut().find(|(h, _)| *h == handle) {
                    Some((_, body)) => body.extend_from_slice(data),
                    None => seen.bodies.push((handle, data.to_vec())),
                }
            }
            Action::Event(event) => seen.events.push(format!("{event:?}")),
            Action::NeedInput => {
                if server.pending.is_empty() {
                    return;
                }
                let bytes = std::mem::take(&mut server.pending);
                client.receive(&bytes);
            }
            Action::StartTls => client.tls_established().unwrap(),
            Action::Closed => return,
        }
    }
    panic!("no progress");
}

fn completed(seen: &Seen, handle: Handle) -> bool {
    let tag = format!("{handle:?}");
    seen.events
        .iter()
        .any(|e| e.contains(&tag) && !e.starts_with("BodyStart"))
}

fn client() -> Client {
    Client::new(Config::encrypted().trace(true))
}

#[test]
fn auto_login_picks_the_strongest_offered_and_settles_on_the_new_capa() {
    let mut server = Server::new(
        b"+OK ready\r\n",
        &[
            ("CAPA", b"+OK\r\nSASL PLAIN LOGIN\r\nUSER\r\n.\r\n"),
            ("AUTH PLAIN AGFsaWNlAHNlY3JldA==", b"+OK welcome\r\n"),
            ("CAPA", b"+OK\r\nPIPELINING\r\nUIDL\r\n.\r\n"),
            ("STAT", b"+OK 2 20\r\n"),
        ],
    );
    let mut client = client();
    let mut seen = Seen::default();
    let login = client
        .login_with(Credentials::new("alice", "secret"), AuthMethod::Auto)
        .unwrap();
    let stat = client.submit(pop3_proto::Command::Stat).unwrap();
    pump(&mut client, &mut server, &mut seen, |s| completed(s, stat));
    assert_eq!(client.login_mechanism(), Some("PLAIN"));
    // The login completes only once the post-login CAPA is in, and before
    // the STAT submitted behind it.
    let login_at = seen
        .events
        .iter()
        .position(|e| e.contains(&format!("{login:?}")))
        .unwrap();
    let stat_at = seen
        .events
        .iter()
        .position(|e| e.contains(&format!("{stat:?}")))
        .unwrap();
    assert!(
        seen.events[login_at].contains("Authenticated"),
        "{seen:?}",
        seen = seen.events
    );
    assert!(login_at < stat_at);
    assert!(client.capabilities().unwrap().pipelining());
    // No event of the sub-commands reaches the caller.
    assert!(!seen
        .events
        .iter()
        .any(|e| e.contains("Err") || e.contains("Cancelled")));
    assert_eq!(
        seen.trace,
        [
            "S: +OK ready",
            "C: CAPA",
            "S: +OK",
            "C: AUTH PLAIN <redacted>",
            "S: +OK welcome",
            "C: CAPA",
            "S: +OK",
            "C: STAT",
            "S: +OK 2 20",
        ]
    );
}

#[test]
fn auto_login_without_capa_uses_apop_when_the_greeting_allows() {
    let mut server = Server::new(
        b"+OK POP3 <1896.697170952@dbc.mtview.ca.us>\r\n",
        &[
            ("CAPA", b"-ERR what\r\n"),
            (
                "APOP mrose c4c9334bac560ecc979e58001b3e22fb",
                b"+OK maildrop has 1 message\r\n",
            ),
        ],
    );
    let mut client = client();
    let mut seen = Seen::default();
    let login = client
        .login_with(Credentials::new("mrose", "tanstaaf"), AuthMethod::Auto)
        .unwrap();
    pump(&mut client, &mut server, &mut seen, |s| completed(s, login));
    assert_eq!(client.login_mechanism(), Some("APOP"));
    assert!(seen.events.iter().any(|e| e.contains("Authenticated")));
    assert!(seen.trace.contains(&"C: APOP mrose <redacted>".to_string()));
    assert!(!seen.trace.iter().any(|l| l.contains("c4c9334b")));
}

#[test]
fn scram_is_chosen_only_with_a_nonce() {
    let mut server = Server::new(
        b"+OK ready\r\n",
        &[
            ("CAPA", b"+OK\r\nSASL SCRAM-SHA-256 CRAM-MD5\r\n.\r\n"),
            ("AUTH CRAM-MD5", b"-ERR [AUTH] no\r\n"),
        ],
    );
    let mut client = client();
    let mut seen = Seen::default();
    let login = client
        .login_with(Credentials::new("alice", "secret"), AuthMethod::Auto)
        .unwrap();
    pump(&mut client, &mut server, &mut seen, |s| completed(s, login));
    assert_eq!(client.login_mechanism(), Some("CRAM-MD5"));
    let refused = seen.events.iter().find(|e| e.starts_with("Err")).unwrap();
    assert!(refused.contains(&format!("{login:?}")), "{refused}");
    assert!(
        refused.contains(&format!("{:?}", ResponseCode::Auth)),
        "{refused}"
    );
}

#[test]
fn a_refused_user_fails_the_login_and_cancels_what_follows_unsent() {
    let mut server = Server::new(b"+OK ready\r\n", &[("USER bob", b"-ERR no such user\r\n")]);
    let mut client = client();
    let mut seen = Seen::default();
    let login = client
        .login_with(Credentials::new("bob", "pw"), AuthMethod::UserPass)
        .unwrap();
    let stat = client.submit(pop3_proto::Command::Stat).unwrap();
    pump(&mut client, &mut server, &mut seen, |s| completed(s, stat));
    assert_eq!(server.received, ["USER bob"]);
    assert_eq!(seen.events.len(), 3, "{:?}", seen.events); // greeting, Err, Cancelled
    assert!(seen.events[1].starts_with("Err") && seen.events[1].contains(&format!("{login:?}")));
    assert!(
        seen.events[2].starts_with("Cancelled") && seen.events[2].contains(&format!("{stat:?}"))
    );
    // The session is back in the AUTHORIZATION state: a new login is accepted.
    assert!(client
        .login_with(Credentials::new("bob", "pw2"), AuthMethod::UserPass)
        .is_ok());
}

#[test]
fn login_checks_everything_before_sending_anything() {
    let mut plain = Client::new(Config::default());
    assert_eq!(
        plain
            .login_with(Credentials::new("a", "b"), AuthMethod::Auto)
            .unwrap_err(),
        UsageError::PlaintextCredentials
    );
    let mut client = client();
    assert!(matches!(
        client.login_with(Credentials::new("a\r\nDELE 1", "b"), AuthMethod::UserPass),
        Err(UsageError::InvalidArgument(_))
    ));
    assert!(matches!(
        client.login_with(Credentials::new("a", "b\r\n"), AuthMethod::Plain),
        Err(UsageError::InvalidArgument(_))
    ));
    assert!(matches!(
        client.login_with(Credentials::new("a", "b"), AuthMethod::ScramSha256),
        Err(UsageError::InvalidArgument(_))
    ));
    // Nothing was queued by the refused calls.
    assert_eq!(client.queued(), 0);
    client.receive(b"+OK hi\r\n");
    while let Ok(action) = client.poll() {
        match action {
            Action::Send(bytes) => panic!("sent {bytes:?}"),
            Action::NeedInput => break,
            _ => {}
        }
    }
}

#[test]
fn start_tls_checks_capa_and_sends_nothing_else_when_stls_is_missing() {
    let mut server = Server::new(b"+OK ready\r\n", &[("CAPA", b"+OK\r\nUSER\r\n.\r\n")]);
    let mut client = Client::new(Config::default().trace(true));
    let mut seen = Seen::default();
    let tls = client.start_tls().unwrap();
    let login = client
        .login_with(Credentials::new("a", "b"), AuthMethod::UserPass)
        .unwrap();
    pump(&mut client, &mut server, &mut seen, |s| completed(s, login));
    assert_eq!(server.received, ["CAPA"]);
    let first = seen
        .events
        .iter()
        .find(|e| e.contains(&format!("{tls:?}")))
        .unwrap();
    assert!(first.contains("StlsUnavailable"), "{first}");
    let second = seen
        .events
        .iter()
        .find(|e| e.contains(&format!("{login:?}")))
        .unwrap();
    assert!(second.starts_with("Cancelled"), "{second}");
    assert!(!client.is_encrypted());
}

#[test]
fn start_tls_completes_after_tls_and_the_fresh_capa() {
    let mut server = Server::new(
        b"+OK ready\r\n",
        &[
            ("CAPA", b"+OK\r\nSTLS\r\n.\r\n"),
            ("STLS", b"+OK go\r\n"),
            ("CAPA", b"+OK\r\nSASL PLAIN\r\nUSER\r\n.\r\n"),
            ("AUTH PLAIN AGEAYg==", b"+OK\r\n"),
            ("CAPA", b"+OK\r\nPIPELINING\r\n.\r\n"),
        ],
    );
    let mut client = Client::new(Config::default().trace(true));
    let mut seen = Seen::default();
    let tls = client.start_tls().unwrap();
    let login = client
        .login_with(Credentials::new("a", "b"), AuthMethod::Auto)
        .unwrap();
    pump(&mut client, &mut server, &mut seen, |s| completed(s, login));
    assert!(client.is_encrypted());
    // Auto chose from the capabilities read after TLS, not before.
    assert_eq!(client.login_mechanism(), Some("PLAIN"));
    let done: Vec<&String> = seen.events.iter().filter(|e| e.starts_with("Ok")).collect();
    assert_eq!(done.len(), 2, "{:?}", seen.events);
    assert!(done[0].contains(&format!("{tls:?}")) && done[0].contains("TlsEstablished"));
    assert!(done[1].contains(&format!("{login:?}")) && done[1].contains("Authenticated"));
}

#[test]
fn retr_many_and_dele_many_pipeline_with_one_result_per_message() {
    let mut server = Server::new(
        b"+OK ready\r\n",
        &[
            ("CAPA", b"+OK\r\nPIPELINING\r\n.\r\n"),
            ("USER a", b"+OK\r\n"),
            ("PASS b", b"+OK\r\n"),
            ("CAPA", b"+OK\r\nPIPELINING\r\n.\r\n"),
            ("RETR 1", b"+OK\r\none\r\n.\r\n"),
            ("RETR 2", b"-ERR [SYS/TEMP] later\r\n"),
            ("RETR 3", b"+OK\r\n..three\r\n.\r\n"),
            ("DELE 1", b"+OK\r\n"),
            ("DELE 3", b"+OK\r\n"),
        ],
    );
    let mut client = client();
    let mut seen = Seen::default();
    client.submit(pop3_proto::Command::Capa).unwrap();
    client
        .login_with(Credentials::new("a", "b"), AuthMethod::UserPass)
        .unwrap();
    let msgs: Vec<MsgNum> = [1, 2, 3].iter().map(|&n| MsgNum::new(n).unwrap()).collect();
    let retr = client.retr_many(&msgs).unwrap();
    let dele = client.dele_many(&[msgs[0], msgs[2]]).unwrap();
    pump(&mut client, &mut server, &mut seen, |s| {
        completed(s, dele[1])
    });
    assert_eq!(seen.bodies.len(), 2);
    assert_eq!(seen.bodies[0], (retr[0], b"one\r\n".to_vec()));
    assert_eq!(seen.bodies[1], (retr[2], b".three\r\n".to_vec()));
    let err = seen.events.iter().find(|e| e.starts_with("Err")).unwrap();
    assert!(err.contains(&format!("{:?}", retr[1])));
    // Pipelined: the three RETR lines went out together, before any reply.
    let retr_lines: Vec<usize> = seen
        .trace
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("C: RETR"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        retr_lines,
        [retr_lines[0], retr_lines[0] + 1, retr_lines[0] + 2]
    );
    // All-or-nothing: before login nothing is queued.
    let mut fresh = client_with_greeting();
    assert!(fresh.retr_many(&msgs).is_err());
    assert_eq!(fresh.queued(), 0);
}

/// A server may act on QUIT as soon as it reads it and drop whatever of
/// the earlier replies is still in its output buffer (Dovecot 2.3 does: the
/// last message of a pipelined fetch arrived cut short when the reader was
/// slow). So the retrievals are pipelined, but QUIT goes out only once the
/// last of their replies is in.
#[test]
fn quit_waits_for_every_earlier_reply() {
    let mut server = Server::new(
        b"+OK ready\r\n",
        &[
            ("CAPA", b"+OK\r\nPIPELINING\r\n.\r\n"),
            ("USER a", b"+OK\r\n"),
            ("PASS b", b"+OK\r\n"),
            ("CAPA", b"+OK\r\nPIPELINING\r\n.\r\n"),
            ("RETR 1", b"+OK\r\none\r\n.\r\n"),
            ("RETR 2", b"+OK\r\ntwo\r\n.\r\n"),
            ("QUIT", b"+OK bye\r\n"),
        ],
    );
    let mut client = client();
    let mut seen = Seen::default();
    client.submit(pop3_proto::Command::Capa).unwrap();
    client
        .login_with(Credentials::new("a", "b"), AuthMethod::UserPass)
        .unwrap();
    let msgs: Vec<MsgNum> = [1, 2].iter().map(|&n| MsgNum::new(n).unwrap()).collect();
    client.retr_many(&msgs).unwrap();
    let quit = client.submit(pop3_proto::Command::Quit).unwrap();
    pump(&mut client, &mut server, &mut seen, |s| completed(s, quit));
    assert_eq!(seen.bodies.len(), 2);
    let sent_at = |line: &str| seen.trace.iter().position(|l| l == line).unwrap();
    // The RETRs still go out together, before any reply.
    assert_eq!(sent_at("C: RETR 2"), sent_at("C: RETR 1") + 1);
    // QUIT only after the end of the last body.
    let last_reply = seen
        .trace
        .iter()
        .rposition(|l| l.starts_with("S: +OK") && !l.contains("bye"))
        .unwrap();
    assert!(
        sent_at("C: QUIT") > last_reply,
        "{trace:?}",
        trace = seen.trace
    );
}

fn client_with_greeting() -> Client {
    let mut client = client();
    client.receive(b"+OK\r\n");
    client
}

#[test]
fn a_discarded_message_is_read_to_its_end_and_not_reported() {
    let mut server = Server::new(
        b"+OK ready\r\n",
        &[
            ("USER a", b"+OK\r\n"),
            ("PASS b", b"+OK\r\n"),
            ("RETR 1", b"+OK\r\nlong message\r\n.\r\n"),
            ("NOOP", b"+OK\r\n"),
        ],
    );
    let mut client = client();
    let mut seen = Seen::default();
    client
        .login_with(Credentials::new("a", "b"), AuthMethod::UserPass)
        .unwrap();
    let retr = client
        .submit(pop3_proto::Command::Retr(MsgNum::new(1).unwrap()))
        .unwrap();
    client.discard(retr);
    let noop = client.submit(pop3_proto::Command::Noop).unwrap();
    pump(&mut client, &mut server, &mut seen, |s| completed(s, noop));
    assert!(seen.bodies.is_empty());
    assert!(!seen.events.iter().any(|e| e.contains(&format!("{retr:?}"))));
    assert!(seen.events.last().unwrap().contains(&format!("{noop:?}")));
}

#[test]
fn trace_is_off_by_default_and_redacts_sasl_responses() {
    let mut quiet = Client::new(Config::encrypted());
    quiet.receive(b"+OK\r\n");
    assert!(matches!(
        quiet.poll().unwrap(),
        Action::Event(Event::Greeting(_))
    ));
    assert!(matches!(quiet.poll().unwrap(), Action::NeedInput));

    let mut server = Server::new(
        b"+OK ready\r\n",
        &[
            ("AUTH LOGIN", b"+ VXNlcm5hbWU6\r\n"),
            ("YWxpY2U=", b"+ UGFzc3dvcmQ6\r\n"),
            ("c2VjcmV0", b"+OK\r\n"),
        ],
    );
    let mut client = client();
    let mut seen = Seen::default();
    let login = client
        .login_with(Credentials::new("alice", "secret"), AuthMethod::Login)
        .unwrap();
    pump(&mut client, &mut server, &mut seen, |s| completed(s, login));
    assert_eq!(
        seen.trace,
        [
            "S: +OK ready",
            "C: AUTH LOGIN",
            "S: + VXNlcm5hbWU6",
            "C: <redacted>",
            "S: + UGFzc3dvcmQ6",
            "C: <redacted>",
            "S: +OK",
        ]
    );
    assert!(seen.events.iter().any(|e| e.contains("Authenticated")));
}

#[test]
fn auto_prefers_scram_plus_with_a_binding_and_marks_a_stripped_offer() {
    use pop3_proto::sasl::ChannelBinding;
    let binding = ChannelBinding::tls_exporter(vec![7; 32]);
    for (capa, first_line, retry) in [
        (
            &b"+OK\r\nSASL SCRAM-SHA-256 SCRAM-SHA-256-PLUS PLAIN\r\n.\r\n"[..],
            "AUTH SCRAM-SHA-256-PLUS cD10bHMtZXhwb3J0ZXIsLG49YWxpY2Uscj1ub25jZW5vbmNlbm9uY2Vub25jZQ==",
            // Refused -PLUS: one unbound retry (see the next test).
            Some("AUTH SCRAM-SHA-256 biwsbj1hbGljZSxyPWQ5V1EzMlpHMDVpUjN5VmxFOTVWQWU2dnJ2aVVWTHVuRVJEd1ZabU41Z1U="),
        ),
        // A man in the middle stripped the -PLUS offer: plain SCRAM, with
        // the "y" flag, so a server that supports binding can tell.
        (
            b"+OK\r\nSASL SCRAM-SHA-256 PLAIN\r\n.\r\n",
            "AUTH SCRAM-SHA-256 eSwsbj1hbGljZSxyPW5vbmNlbm9uY2Vub25jZW5vbmNl",
            None,
        ),
    ] {
        let mut replies = vec![("CAPA", capa), (first_line, &b"-ERR [AUTH] no\r\n"[..])];
        replies.extend(retry.map(|line| (line, &b"-ERR [AUTH] no\r\n"[..])));
        let expected = replies.len();
        let mut server = Server::new(b"+OK ready\r\n", &replies);
        let mut client = client();
        let mut seen = Seen::default();
        let credentials = Credentials::new("alice", "secret")
            .scram_nonce("noncenoncenoncenonce")
            .channel_binding(binding.clone());
        let login = client.login_with(credentials, AuthMethod::Auto).unwrap();
        pump(&mut client, &mut server, &mut seen, |s| completed(s, login));
        // [AUTH] ends it: never PLAIN after a refused SCRAM.
        assert_eq!(server.received.len(), expected, "{:?}", server.received);
        assert!(seen.events.iter().any(|e| e.starts_with("Err")));
    }
}

/// A refused `-PLUS` exchange (Cyrus on TLS 1.3 refuses it like a wrong
/// password) is retried once with the same SCRAM, unbound (`n`), and with no
/// other method; when the retry is refused too, both attempts are reported.
#[test]
fn auto_retries_a_refused_plus_once_unbound_and_never_further() {
    use pop3_proto::sasl::ChannelBinding;
    let binding = ChannelBinding::tls_exporter(vec![7; 32]);
    for refusal in [
        &b"-ERR [AUTH] authenticating: bad protocol / cancel\r\n"[..],
        b"-ERR no\r\n",
    ] {
        let mut server = Server::new(
            b"+OK ready\r\n",
            &[
                (
                    "CAPA",
                    b"+OK\r\nSASL SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-256-PLUS CRAM-MD5 PLAIN\r\n.\r\n",
                ),
                (
                    "AUTH SCRAM-SHA-256-PLUS cD10bHMtZXhwb3J0ZXIsLG49YWxpY2Uscj1ub25jZW5vbmNlbm9uY2Vub25jZQ==",
                    refusal,
                ),
                // "n": this client does not bind; no "y", which a server that
                // offered -PLUS must refuse (RFC 5802 section 6). A nonce of
                // its own ("n,,n=alice,r=d9WQ32ZG...", derived from the
                // first), as every exchange must have.
                (
                    "AUTH SCRAM-SHA-256 biwsbj1hbGljZSxyPWQ5V1EzMlpHMDVpUjN5VmxFOTVWQWU2dnJ2aVVWTHVuRVJEd1ZabU41Z1U=",
                    b"-ERR [AUTH] invalid credentials\r\n",
                ),
            ],
        );
        let mut client = client();
        let mut seen = Seen::default();
        let credentials = Credentials::new("alice", "secret")
            .scram_nonce("noncenoncenoncenonce")
            .channel_binding(binding.clone());
        let login = client.login_with(credentials, AuthMethod::Auto).unwrap();
        pump(&mut client, &mut server, &mut seen, |s| completed(s, login));
        // Neither SCRAM-SHA-1(-PLUS) nor CRAM-MD5 nor PLAIN after that.
        assert_eq!(server.received.len(), 3, "{:?}", server.received);
        let err = seen.events.iter().find(|e| e.starts_with("Err")).unwrap();
        assert!(err.contains("invalid credentials"), "{err}");
        assert_eq!(
            client.login_attempts(),
            ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]
        );
        assert_eq!(client.login_mechanism(), Some("SCRAM-SHA-256"));
    }
}

/// No retry when the refusal says "not now" (a temporary code), or when the
/// caller asked for `-PLUS` by name.
#[test]
fn a_plus_refusal_is_final_when_temporary_or_chosen_by_name() {
    use pop3_proto::sasl::ChannelBinding;
    let binding = ChannelBinding::tls_exporter(vec![7; 32]);
    let plus_line =
        "AUTH SCRAM-SHA-256-PLUS cD10bHMtZXhwb3J0ZXIsLG49YWxpY2Uscj1ub25jZW5vbmNlbm9uY2Vub25jZQ==";
    let capa: &[u8] = b"+OK\r\nSASL SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n.\r\n";
    for (method, replies) in [
        (
            AuthMethod::Auto,
            vec![
                ("CAPA", capa),
                (plus_line, &b"-ERR [SYS/TEMP] try later\r\n"[..]),
            ],
        ),
        (
            AuthMethod::Auto,
            vec![("CAPA", capa), (plus_line, &b"-ERR [IN-USE] busy\r\n"[..])],
        ),
        (
            AuthMethod::ScramSha256Plus,
            vec![(plus_line, &b"-ERR [AUTH] bad protocol\r\n"[..])],
        ),
    ] {
        let name = format!("{method:?}");
        let expected = replies.len();
        let mut server = Server::new(b"+OK ready\r\n", &replies);
        let mut client = client();
        let mut seen = Seen::default();
        let credentials = Credentials::new("alice", "secret")
            .scram_nonce("noncenoncenoncenonce")
            .channel_binding(binding.clone());
        let login = client.login_with(credentials, method).unwrap();
        pump(&mut client, &mut server, &mut seen, |s| completed(s, login));
        assert_eq!(
            server.received.len(),
            expected,
            "{name}: {:?}",
            server.received
        );
        assert!(seen.events.iter().any(|e| e.starts_with("Err")), "{name}");
        assert_eq!(client.login_attempts().len(), 1, "{name}");
    }
}

#[test]
fn auto_falls_back_only_after_unsupported_and_only_to_challenge_response() {
    let mut server = Server::new(
        b"+OK ready\r\n",
        &[
            ("CAPA", b"+OK\r\nSASL SCRAM-SHA-256 CRAM-MD5 PLAIN\r\n.\r\n"),
            (
                "AUTH SCRAM-SHA-256 biwsbj1hbGljZSxyPW5vbmNlbm9uY2Vub25jZW5vbmNl",
                b"-ERR mechanism not available\r\n",
            ),
            ("AUTH CRAM-MD5", b"-ERR not here either\r\n"),
        ],
    );
    let mut client = client();
    let mut seen = Seen::default();
    let credentials = Credentials::new("alice", "secret").scram_nonce("noncenoncenoncenonce");
    let login = client.login_with(credentials, AuthMethod::Auto).unwrap();
    let stat = client.submit(pop3_proto::Command::Stat).unwrap();
    pump(&mut client, &mut server, &mut seen, |s| completed(s, stat));
    // SCRAM, then CRAM-MD5; never PLAIN, which would send the password.
    assert_eq!(server.received.len(), 3, "{:?}", server.received);
    let err = seen.events.iter().find(|e| e.starts_with("Err")).unwrap();
    assert!(err.contains(&format!("{login:?}")) && err.contains("not here either"));
    assert!(seen
        .events
        .iter()
        .any(|e| e.starts_with("Cancelled") && e.contains(&format!("{stat:?}"))));
}

#[test]
fn a_fallback_that_succeeds_leaves_the_session_logged_in() {
    let mut server = Server::new(
        b"+OK ready\r\n",
        &[
            ("CAPA", b"+OK\r\nSASL SCRAM-SHA-256 CRAM-MD5\r\n.\r\n"),
            (
                "AUTH SCRAM-SHA-256 biwsbj1hbGljZSxyPW5vbmNlbm9uY2Vub25jZW5vbmNl",
                b"-ERR unsupported\r\n",
            ),
            (
                "AUTH CRAM-MD5",
                b"+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n",
            ),
            (
                "YWxpY2UgYjkxM2E2MDJjN2VkYTdhNDk1YjRlNmU3MzM0ZDM4OTA=",
                b"+OK in\r\n",
            ),
            ("CAPA", b"+OK\r\nUIDL\r\n.\r\n"),
            ("STAT", b"+OK 0 0\r\n"),
        ],
    );
    let mut client = client();
    let mut seen = Seen::default();
    let credentials =
        Credentials::new("alice", "tanstaaftanstaaf").scram_nonce("noncenoncenoncenonce");
    let login = client.login_with(credentials, AuthMethod::Auto).unwrap();
    let stat = client.submit(pop3_proto::Command::Stat).unwrap();
    pump(&mut client, &mut server, &mut seen, |s| completed(s, stat));
    assert_eq!(client.login_mechanism(), Some("CRAM-MD5"));
    assert!(seen
        .events
        .iter()
        .any(|e| e.contains(&format!("{login:?}")) && e.contains("Authenticated")));
    assert!(seen
        .events
        .iter()
        .any(|e| e.contains(&format!("{stat:?}")) && e.contains("Stat")));
    assert_eq!(client.state(), pop3_proto::State::Transaction);
}

#[test]
fn a_tls_record_instead_of_a_greeting_is_named_at_once() {
    let mut client = Client::new(Config::default());
    // The first bytes of a TLS alert or handshake record, no line end.
    client.receive(&[0x16, 0x03, 0x01, 0x00, 0x2a]);
    assert_eq!(
        client.poll().unwrap_err(),
        pop3_proto::ProtocolError::TlsInsteadOfGreeting
    );
}

/// Drives `client` until it needs input; returns what it sent and the
/// events it reported (as text).
fn drain(client: &mut Client) -> (Vec<u8>, Vec<String>) {
    let mut sent = Vec::new();
    let mut events = Vec::new();
    loop {
        match client.poll().unwrap() {
            Action::Send(bytes) => sent.extend_from_slice(bytes),
            Action::Event(event) => events.push(format!("{event:?}")),
            Action::StartTls => client.tls_established().unwrap(),
            Action::NeedInput | Action::Closed => return (sent, events),
        }
    }
}

/// OAuth tokens of real length (Google's up to 2,000 characters,
/// Microsoft's about 2,500, and room beyond) always go in two steps: `AUTH
/// XOAUTH2` alone, the server's `+` (with or without a space), the token
/// line. Microsoft 365 closes the connection on an inline one.
#[test]
fn oauth_tokens_of_any_length_go_in_two_steps() {
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    for (method, name) in [
        ((|| AuthMethod::XOAuth2) as fn() -> AuthMethod, "XOAUTH2"),
        (|| AuthMethod::OAuthBearer, "OAUTHBEARER"),
    ] {
        for length in [60, 2_000, 16 * 1024, 64 * 1024] {
            for continuation in [&b"+ \r\n"[..], b"+\r\n"] {
                let token = "t".repeat(length);
                let mut client = Client::new(Config::encrypted());
                client.receive(b"+OK ready\r\n");
                drain(&mut client);
                let credentials = Credentials::new("someone@example.com", token.as_str());
                let login = client.login_with(credentials, method()).unwrap();
                let (sent, _) = drain(&mut client);
                assert_eq!(sent, format!("AUTH {name}\r\n").as_bytes());
                client.receive(continuation);
                let (sent, _) = drain(&mut client);
                let line = sent.strip_suffix(b"\r\n").unwrap();
                let message = BASE64.decode(line).unwrap();
                let expected = match name {
                    "XOAUTH2" => format!("user=someone@example.com\x01auth=Bearer {token}\x01\x01"),
                    _ => format!("n,a=someone@example.com,\x01auth=Bearer {token}\x01\x01"),
                };
                assert_eq!(message, expected.as_bytes(), "{name} {length}");
                client.receive(b"+OK welcome\r\n");
                let (_, events) = drain(&mut client);
                let tag = format!("{login:?}");
                assert!(
                    events
                        .iter()
                        .any(|e| e.starts_with("Ok") && e.contains(&tag)),
                    "{name} {length}: {events:?}"
                );
            }
        }
    }
}

#[test]
fn a_secret_above_64_kib_or_with_a_line_break_is_refused_before_sending() {
    for (secret, method) in [
        ("t".repeat(64 * 1024 + 1), AuthMethod::XOAuth2),
        ("a\r\nQUIT".to_string(), AuthMethod::XOAuth2),
        ("a\r\nQUIT".to_string(), AuthMethod::Plain),
        (String::new(), AuthMethod::OAuthBearer),
        // USER/PASS puts the password on a command line of at most 255 octets.
        ("p".repeat(300), AuthMethod::UserPass),
    ] {
        let mut client = Client::new(Config::encrypted());
        client.receive(b"+OK ready\r\n");
        drain(&mut client);
        let result = client.login_with(Credentials::new("u", secret.as_str()), method);
        assert!(
            matches!(result, Err(UsageError::InvalidArgument(_))),
            "{result:?}"
        );
        assert!(drain(&mut client).0.is_empty());
    }
}

/// `auto` with a secret too long for a PASS line, against a server that
/// offers nothing else: refused locally, the password never sent.
#[test]
fn auto_does_not_put_a_long_secret_on_a_pass_line() {
    let mut client = Client::new(Config::encrypted());
    client.receive(b"+OK ready\r\n");
    drain(&mut client);
    let token = "t".repeat(2_000);
    let login = client
        .login_with(Credentials::new("u", token.as_str()), AuthMethod::Auto)
        .unwrap();
    let (sent, _) = drain(&mut client);
    assert_eq!(sent, b"CAPA\r\n");
    client.receive(b"+OK\r\nUSER\r\n.\r\n");
    let (sent, events) = drain(&mut client);
    assert!(sent.is_empty(), "{:?}", String::from_utf8_lossy(&sent));
    let tag = format!("{login:?}");
    assert!(
        events.iter().any(|e| e.starts_with("Cancelled")
            && e.contains(&tag)
            && e.contains("InvalidArgument")),
        "{events:?}"
    );
}

/// Gmail refuses a token with a continuation carrying a JSON report; the
/// client answers with an empty line (OAUTHBEARER: `AQ==`, the 0x01 byte),
/// and the final `-ERR` carries the report, typed and worded.
#[test]
fn a_refused_token_is_acknowledged_and_its_report_read() {
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    let report = r#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#;
    for (method, ack) in [
        (AuthMethod::XOAuth2, &b"\r\n"[..]),
        (AuthMethod::OAuthBearer, b"AQ==\r\n"),
    ] {
        let mut client = Client::new(Config::encrypted());
        client.receive(b"+OK Gpop ready\r\n");
        drain(&mut client);
        let login = client
            .login_with(Credentials::new("someone@gmail.com", "expired"), method)
            .unwrap();
        drain(&mut client);
        client.receive(b"+ \r\n");
        drain(&mut client);
        client.receive(format!("+ {}\r\n", BASE64.encode(report)).as_bytes());
        let (sent, _) = drain(&mut client);
        assert_eq!(sent, ack);
        client.receive(b"-ERR [AUTH] Invalid credentials (Failure)\r\n");
        let (_, events) = drain(&mut client);
        let tag = format!("{login:?}");
        let err = events
            .iter()
            .find(|e| e.starts_with("Err") && e.contains(&tag))
            .unwrap_or_else(|| panic!("{events:?}"));
        assert!(err.contains("token_refusal: Some"), "{err}");
        assert!(err.contains("https://mail.google.com/"), "{err}");
    }
}

/// The caller sees events only for handles it was given: a reply to a
/// login's own `USER`, followed in the same read by a line no command
/// asked for, fails the session without reporting the `USER` reply.
/// (Found by the `operations` fuzz target.)
#[test]
fn an_operation_s_own_reply_is_not_reported_when_the_session_fails_after_it() {
    let mut client = Client::new(Config::encrypted());
    let login = client
        .login_with(Credentials::new("alice", "secret"), AuthMethod::UserPass)
        .unwrap();
    client.receive(b"+OK ready\r\n");
    let (sent, events) = drain(&mut client);
    assert_eq!(sent, b"USER alice\r\n");
    assert!(
        events.iter().all(|e| e.starts_with("Greeting")),
        "{events:?}"
    );
    client.receive(b"+OK\r\n1 100\r\n");
    loop {
        match client.poll() {
            Ok(Action::Event(event)) => {
                let handle = match &event {
                    Event::Ok { handle, .. }
                    | Event::Err { handle, .. }
                    | Event::Failed { handle, .. }
                    | Event::Cancelled { handle, .. } => Some(*handle),
                    _ => None,
                };
                assert!(handle.is_none_or(|h| h == login), "{event:?}");
            }
            Ok(other) => panic!("{other:?} instead of the failure"),
            Err(_) => break,
        }
    }
}

/// A running `start_tls` or login can be discarded like any command: it
/// goes on (the session stays in step) but reports nothing, and what was
/// submitted after it still runs. (Found by the `operations` fuzz target.)
#[test]
fn a_discarded_operation_reports_nothing() {
    let mut server = Server::new(
        b"+OK ready\r\n",
        &[
            ("CAPA", b"+OK\r\nSTLS\r\nUSER\r\n.\r\n"),
            ("STLS", b"+OK\r\n"),
            ("CAPA", b"+OK\r\nUSER\r\n.\r\n"),
            ("USER a", b"+OK\r\n"),
            ("PASS b", b"+OK\r\n"),
            ("CAPA", b"+OK\r\nUSER\r\n.\r\n"),
            ("NOOP", b"+OK\r\n"),
        ],
    );
    let mut client = Client::new(Config::default());
    let mut seen = Seen::default();
    let tls = client.start_tls().unwrap();
    let login = client
        .login_with(Credentials::new("a", "b"), AuthMethod::UserPass)
        .unwrap();
    let noop = client.submit(pop3_proto::Command::Noop).unwrap();
    client.discard(tls);
    client.discard(login);
    pump(&mut client, &mut server, &mut seen, |s| completed(s, noop));
    assert!(client.is_encrypted());
    assert_eq!(client.login_mechanism(), Some("USER/PASS"));
    for handle in [tls, login] {
        let tag = format!("{handle:?}");
        assert!(
            !seen.events.iter().any(|e| e.contains(&tag)),
            "{tag}: {:?}",
            seen.events
        );
    }
}

/// A command whose completion the core has decided but not reported yet
/// can still be discarded: the caller, who has not seen it complete, never
/// will. (Found by the `operations` fuzz target.)
#[test]
fn a_completion_not_yet_reported_can_still_be_discarded() {
    let mut client = Client::new(Config::encrypted());
    client.receive(b"+OK\r\n");
    let login = client
        .login_with(Credentials::new("a", "b"), AuthMethod::UserPass)
        .unwrap();
    let retr = client.retr_many(&[MsgNum::new(1).unwrap()]).unwrap()[0];
    let (sent, _) = drain(&mut client);
    assert_eq!(sent, b"USER a\r\n");
    client.receive(b"+OK\r\n");
    let (sent, _) = drain(&mut client);
    assert_eq!(sent, b"PASS b\r\n");
    // The refusal fails the login and cancels the retrieval queued behind
    // it; the caller sees the login's failure first.
    client.receive(b"-ERR [AUTH] no\r\n");
    match client.poll().unwrap() {
        Action::Event(Event::Err { handle, .. }) => assert_eq!(handle, login),
        other => panic!("{other:?}"),
    }
    client.discard(retr);
    let (_, events) = drain(&mut client);
    assert!(
        !events.iter().any(|e| e.contains(&format!("{retr:?}"))),
        "{events:?}"
    );
}

/// Runs the client against `server` until it is idle, and returns every
/// `-ERR` the caller was told of.
fn refusals(client: &mut Client, server: &mut Server) -> Vec<pop3_proto::ServerError> {
    let mut refused = Vec::new();
    for _ in 0..10_000 {
        match client.poll().unwrap() {
            Action::Send(bytes) => {
                let bytes = bytes.to_vec();
                server.take(&bytes);
            }
            Action::Event(Event::Err { error, .. }) => refused.push(error),
            Action::Event(_) => {}
            Action::NeedInput if !server.pending.is_empty() => {
                let bytes = std::mem::take(&mut server.pending);
                client.receive(&bytes);
            }
            Action::StartTls => client.tls_established().unwrap(),
            Action::NeedInput | Action::Closed => return refused,
        }
    }
    panic!("no progress");
}

#[test]
fn a_refused_login_step_is_told_from_other_refusals_with_or_without_a_code() {
    // Microsoft's wording has no code; Dovecot and Gmail send [AUTH].
    for (method, replies) in [
        (
            AuthMethod::UserPass,
            &[
                ("USER bob", &b"+OK\r\n"[..]),
                (
                    "PASS pw",
                    &b"-ERR Logon failure: unknown user name or bad password.\r\n"[..],
                ),
            ][..],
        ),
        (
            AuthMethod::UserPass,
            &[
                ("USER bob", &b"+OK\r\n"[..]),
                ("PASS pw", &b"-ERR [AUTH] Authentication failed.\r\n"[..]),
            ][..],
        ),
        (
            AuthMethod::UserPass,
            &[("USER bob", &b"-ERR no such user\r\n"[..])][..],
        ),
        (
            AuthMethod::Plain,
            &[(
                "AUTH PLAIN AGJvYgBwdw==",
                &b"-ERR [AUTH] Invalid credentials\r\n"[..],
            )][..],
        ),
    ] {
        let mut server = Server::new(b"+OK ready\r\n", replies);
        let mut session = client();
        session
            .login_with(Credentials::new("bob", "pw"), method)
            .unwrap();
        let refused = refusals(&mut session, &mut server);
        assert_eq!(refused.len(), 1, "{replies:?}");
        assert!(refused[0].during_login, "{replies:?}");
        assert!(refused[0].is_authentication_refusal(), "{replies:?}");
        assert!(!refused[0].is_temporary(), "{replies:?}");
    }
    // A mailbox in use is not a wrong password: try again later.
    let mut server = Server::new(
        b"+OK ready\r\n",
        &[
            ("USER bob", b"+OK\r\n"),
            ("PASS pw", b"-ERR [IN-USE] Mailbox is locked\r\n"),
        ],
    );
    let mut session = client();
    session
        .login_with(Credentials::new("bob", "pw"), AuthMethod::UserPass)
        .unwrap();
    let refused = refusals(&mut session, &mut server);
    assert!(refused[0].during_login && refused[0].is_temporary());
    assert!(!refused[0].is_authentication_refusal());
    // The same text outside a login is an ordinary refusal.
    let mut server = Server::new(
        b"+OK ready\r\n",
        &[
            ("USER bob", b"+OK\r\n"),
            ("PASS pw", b"+OK\r\n"),
            ("DELE 9", b"-ERR no such message\r\n"),
        ],
    );
    let mut session = client();
    session
        .login_with(Credentials::new("bob", "pw"), AuthMethod::UserPass)
        .unwrap();
    session
        .submit(pop3_proto::Command::Dele(MsgNum::new(9).unwrap()))
        .unwrap();
    let refused = refusals(&mut session, &mut server);
    assert_eq!(refused.len(), 1);
    assert!(!refused[0].during_login && !refused[0].is_authentication_refusal());
}

/// A refused `CAPA` is remembered for the session, so that a caller that
/// wants the capabilities does not ask a server that has none.
#[test]
fn a_refused_capa_is_remembered() {
    let mut server = Server::new(
        b"+OK ready\r\n",
        &[("CAPA", b"-ERR no CAPA here\r\n"), ("NOOP", b"+OK\r\n")],
    );
    let mut client = client();
    let mut seen = Seen::default();
    assert!(!client.capa_refused(), "not asked yet");
    let capa = client.submit(pop3_proto::Command::Capa).unwrap();
    pump(&mut client, &mut server, &mut seen, |s| completed(s, capa));
    assert!(client.capa_refused());
    assert!(client.capabilities().is_none());
}
