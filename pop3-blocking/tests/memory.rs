//! pop3-blocking over in-memory pipes: a scripted "server" that answers each
//! command line with a canned reply and records what it saw.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};

use pop3_blocking::{
    AuthMethod, Connection, Error, MaybeTls, MessageSink, MsgNum, Options, Phase, ProtocolError,
    ResponseCode, UsageError, Wait,
};

#[derive(Default)]
struct State {
    /// (expected command line without CRLF, reply).
    script: VecDeque<(String, Vec<u8>)>,
    /// Bytes the client may read now.
    ready: Vec<u8>,
    /// Everything the client wrote.
    sent: Vec<u8>,
    partial: Vec<u8>,
    /// Lines that did not match the script.
    mismatches: Vec<String>,
    /// Bytes the client has read in total, and the stream offsets at which
    /// each reply ends: how many replies were outstanding at each read.
    consumed: usize,
    produced: usize,
    reply_ends: Vec<usize>,
    max_outstanding: usize,
    /// What a read returns once nothing is ready.
    when_empty: WhenEmpty,
    /// Longest read handed out (to mimic a network that fragments).
    max_read: usize,
}

#[derive(Default, Clone, Copy)]
enum WhenEmpty {
    #[default]
    Eof,
    WouldBlock,
}

#[derive(Clone)]
struct Pipe(Arc<Mutex<State>>);

impl Pipe {
    fn new(greeting: &str, script: &[(&str, &str)]) -> Pipe {
        let state = State {
            script: script
                .iter()
                .map(|(c, r)| (c.to_string(), r.as_bytes().to_vec()))
                .collect(),
            ready: greeting.as_bytes().to_vec(),
            produced: greeting.len(),
            reply_ends: vec![greeting.len()],
            max_read: usize::MAX,
            ..State::default()
        };
        Pipe(Arc::new(Mutex::new(state)))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with(self, f: impl FnOnce(&mut State)) -> Pipe {
        f(&mut self.state());
        self
    }

    fn sent(&self) -> String {
        String::from_utf8_lossy(&self.state().sent).into_owned()
    }

    fn check(&self) {
        let state = self.state();
        assert!(state.mismatches.is_empty(), "{:?}", state.mismatches);
    }
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.state();
        if s.ready.is_empty() {
            return match s.when_empty {
                WhenEmpty::Eof => Ok(0),
                WhenEmpty::WouldBlock => Err(io::ErrorKind::WouldBlock.into()),
            };
        }
        let outstanding = s.reply_ends.iter().filter(|&&end| end > s.consumed).count();
        s.max_outstanding = s.max_outstanding.max(outstanding);
        let n = buf.len().min(s.ready.len()).min(s.max_read);
        buf[..n].copy_from_slice(&s.ready[..n]);
        s.ready.drain(..n);
        s.consumed += n;
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut s = self.state();
        s.sent.extend_from_slice(data);
        s.partial.extend_from_slice(data);
        while let Some(pos) = s.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = s.partial.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            match s.script.pop_front() {
                Some((expected, reply)) => {
                    if expected != line {
                        s.mismatches
                            .push(format!("expected {expected:?}, got {line:?}"));
                    }
                    s.ready.extend_from_slice(&reply);
                    s.produced += reply.len();
                    let end = s.produced;
                    s.reply_ends.push(end);
                }
                None => s.mismatches.push(format!("unscripted {line:?}")),
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const GREETING: &str = "+OK ready <1.2@example.org>\r\n";

fn encrypted() -> Options {
    Options::new().encrypted(true)
}

fn n(i: u32) -> MsgNum {
    MsgNum::new(i).expect("nonzero")
}

fn login_script() -> Vec<(&'static str, &'static str)> {
    vec![("USER u", "+OK\r\n"), ("PASS p", "+OK in\r\n")]
}

fn with_login<'a>(rest: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut script = login_script();
    script.extend_from_slice(rest);
    script
}

#[test]
fn greeting_login_stat_quit() {
    let pipe = Pipe::new(
        GREETING,
        &with_login(&[("STAT", "+OK 2 320\r\n"), ("QUIT", "+OK bye\r\n")]),
    );
    let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &encrypted())
        .wait()
        .expect("greeting");
    assert_eq!(
        c.greeting().apop_timestamp.as_deref(),
        Some("<1.2@example.org>")
    );
    c.login("u", "p").wait().expect("login");
    let stat = c.stat().wait().expect("stat");
    assert_eq!((stat.count, stat.size), (2, 320));
    c.quit().wait().expect("quit");
    pipe.check();
    assert_eq!(pipe.sent(), "USER u\r\nPASS p\r\nSTAT\r\nQUIT\r\n");
}

#[test]
fn credentials_refused_on_an_unencrypted_stream() {
    let pipe = Pipe::new(GREETING, &[("CAPA", "+OK\r\nUSER\r\n.\r\n")]);
    let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &Options::new())
        .wait()
        .expect("greeting");
    assert!(matches!(
        c.login("u", "p").wait(),
        Err(Error::Usage(UsageError::PlaintextCredentials))
    ));
    for result in [
        c.login_with("u", "p", AuthMethod::Plain).wait(),
        c.login_with("u", "p", AuthMethod::Login).wait(),
        c.apop("u", "p").wait(),
    ] {
        assert!(
            matches!(result, Err(Error::Usage(UsageError::PlaintextCredentials))),
            "{result:?}"
        );
    }
    assert!(c.capa().wait().expect("capa").user());
    assert!(!pipe.sent().contains("USER"), "{}", pipe.sent());
    assert!(!pipe.sent().contains("PASS"));
}

#[test]
fn dropping_the_connection_sends_nothing() {
    let pipe = Pipe::new(GREETING, &with_login(&[("DELE 1", "+OK marked\r\n")]));
    let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &encrypted())
        .wait()
        .expect("greeting");
    c.login("u", "p").wait().expect("login");
    c.dele(n(1)).wait().expect("dele");
    drop(c);
    assert_eq!(pipe.sent(), "USER u\r\nPASS p\r\nDELE 1\r\n");
}

#[test]
fn server_errors_keep_the_session_and_carry_codes() {
    let pipe = Pipe::new(
        GREETING,
        &[
            ("USER u", "+OK\r\n"),
            ("PASS bad", "-ERR [AUTH] wrong password\r\n"),
            ("USER u", "+OK\r\n"),
            ("PASS p", "+OK\r\n"),
            ("RETR 9", "-ERR no such message\r\n"),
            ("NOOP", "+OK\r\n"),
        ],
    );
    let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &encrypted())
        .wait()
        .expect("greeting");
    match c.login("u", "bad").wait() {
        Err(Error::Server(e)) => assert_eq!(e.code, Some(ResponseCode::Auth)),
        other => panic!("{other:?}"),
    }
    c.login("u", "p").wait().expect("login");
    // The -ERR comes from retr() itself, not from the first read.
    match c.retr(n(9)).wait() {
        Err(Error::Server(e)) => assert_eq!(e.text.as_str(), "no such message"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("RETR 9 succeeded"),
    }
    c.noop().wait().expect("noop");
    pipe.check();
}

const BODY: &str = "+OK\r\nSubject: s\r\n\r\n..dot\r\nline two\r\n.\r\n";
const MESSAGE: &[u8] = b"Subject: s\r\n\r\n.dot\r\nline two\r\n";

#[test]
fn message_reader_with_tiny_buffers_and_fragmented_input() {
    for (buf_size, max_read) in [(1, 1), (7, 3), (7, usize::MAX), (4096, 5)] {
        let pipe = Pipe::new(
            GREETING,
            &with_login(&[
                ("RETR 1", BODY),
                ("TOP 1 0", "+OK\r\nSubject: s\r\n\r\n.\r\n"),
            ]),
        )
        .with(|s| s.max_read = max_read);
        let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &encrypted())
            .wait()
            .expect("greeting");
        c.login("u", "p").wait().expect("login");
        let mut reader = c.retr(n(1)).wait().expect("retr");
        let mut got = Vec::new();
        let mut buf = vec![0u8; buf_size];
        loop {
            let k = Read::read(&mut reader, &mut buf).expect("read");
            assert!(k <= buf_size);
            if k == 0 {
                break;
            }
            got.extend_from_slice(&buf[..k]);
        }
        assert!(reader.is_finished());
        assert_eq!(
            Read::read(&mut reader, &mut buf).expect("read after the end"),
            0
        );
        assert_eq!(got, MESSAGE, "buf {buf_size}, reads of {max_read}");
        drop(reader);
        let mut top = Vec::new();
        c.top(n(1), 0)
            .wait()
            .expect("top")
            .read_to_end(&mut top)
            .expect("read");
        assert_eq!(top, b"Subject: s\r\n\r\n");
        pipe.check();
    }
}

#[test]
fn empty_message_reader_ends_at_the_first_read() {
    let pipe = Pipe::new(
        GREETING,
        &with_login(&[("RETR 1", "+OK\r\n.\r\n"), ("NOOP", "+OK\r\n")]),
    );
    let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &encrypted())
        .wait()
        .expect("greeting");
    c.login("u", "p").wait().expect("login");
    let mut reader = c.retr(n(1)).wait().expect("retr");
    let mut buf = [0u8; 16];
    assert_eq!(Read::read(&mut reader, &mut buf).expect("read"), 0);
    assert!(reader.is_finished());
    drop(reader);
    c.noop().wait().expect("noop");
}

#[test]
fn dropped_reader_is_drained_by_the_next_command() {
    let big = format!("+OK\r\n{}.\r\n", "0123456789abcdef\r\n".repeat(1000));
    let pipe = Pipe::new(
        GREETING,
        &with_login(&[
            ("RETR 1", &big),
            ("STAT", "+OK 1 18000\r\n"),
            ("RETR 1", BODY),
        ]),
    )
    .with(|s| s.max_read = 100);
    let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &encrypted())
        .wait()
        .expect("greeting");
    c.login("u", "p").wait().expect("login");
    {
        let mut reader = c.retr(n(1)).wait().expect("retr");
        let mut buf = [0u8; 10];
        reader.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"0123456789");
    }
    assert_eq!(c.stat().wait().expect("stat").count, 1);
    let mut out = Vec::new();
    assert_eq!(
        c.retr_to(n(1), &mut out).wait().expect("retr_to"),
        MESSAGE.len() as u64
    );
    assert_eq!(out, MESSAGE);
    pipe.check();
}

struct FailingWriter;

impl Write for FailingWriter {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::other("disk full"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_writer_leaves_the_connection_usable() {
    let pipe = Pipe::new(
        GREETING,
        &with_login(&[("RETR 1", BODY), ("NOOP", "+OK\r\n")]),
    );
    let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &encrypted())
        .wait()
        .expect("greeting");
    c.login("u", "p").wait().expect("login");
    match c.retr_to(n(1), &mut FailingWriter).wait() {
        Err(Error::Sink(e)) => assert_eq!(e.to_string(), "disk full"),
        other => panic!("{other:?}"),
    }
    c.noop().wait().expect("noop after the writer failed");
    pipe.check();
}

const CAPA_PIPELINING: &str = "+OK\r\nUSER\r\nPIPELINING\r\nTOP\r\n.\r\n";

fn many_retr_script(count: u32) -> Vec<(String, String)> {
    (1..=count)
        .map(|i| {
            (
                format!("RETR {i}"),
                format!("+OK\r\nSubject: {i}\r\n\r\n.\r\n"),
            )
        })
        .collect()
}

#[test]
fn retr_many_pipelines_when_the_server_allows() {
    let count = 200;
    let retrs = many_retr_script(count);
    let mut script: Vec<(&str, &str)> = login_script();
    // The whole burst is queued before anything is sent, so the core asks
    // CAPA first, then pipelines.
    script.push(("CAPA", CAPA_PIPELINING));
    script.extend(retrs.iter().map(|(c, r)| (c.as_str(), r.as_str())));
    script.push(("NOOP", "+OK\r\n"));
    let pipe = Pipe::new(GREETING, &script);
    let mut c = Connection::new(
        MaybeTls::Plain(pipe.clone()),
        &encrypted().pipeline_window(16),
    )
    .wait()
    .expect("greeting");
    c.login("u", "p").wait().expect("login");
    let msgs: Vec<MsgNum> = (1..=count).map(n).collect();
    let mut got: Vec<(MsgNum, Vec<u8>)> = Vec::new();
    let mut sink = |msg: MsgNum, chunk: &[u8]| match got.last_mut() {
        Some((m, data)) if *m == msg => data.extend_from_slice(chunk),
        _ => got.push((msg, chunk.to_vec())),
    };
    let results = c.retr_many(&msgs, &mut sink).wait().expect("retr_many");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(size) if *size == 14 || *size == 15 || *size == 16)),
        "{results:?}"
    );
    assert!(c.client().is_pipelining());
    assert_eq!(got.len(), count as usize);
    for (i, (msg, data)) in got.iter().enumerate() {
        assert_eq!(msg.get(), i as u32 + 1);
        assert_eq!(data, format!("Subject: {}\r\n\r\n", i + 1).as_bytes());
    }
    c.noop().wait().expect("noop");
    pipe.check();
    let outstanding = pipe.state().max_outstanding;
    assert!(outstanding > 1, "never more than one reply outstanding");
    assert!(outstanding <= 17, "window exceeded: {outstanding}");
}

#[test]
fn retr_many_without_pipelining_goes_one_at_a_time() {
    let retrs = many_retr_script(5);
    let mut script: Vec<(&str, &str)> = login_script();
    script.push(("CAPA", "+OK\r\nUSER\r\n.\r\n"));
    script.extend(retrs.iter().map(|(c, r)| (c.as_str(), r.as_str())));
    let pipe = Pipe::new(GREETING, &script);
    let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &encrypted())
        .wait()
        .expect("greeting");
    c.login("u", "p").wait().expect("login");
    let msgs: Vec<MsgNum> = (1..=5).map(n).collect();
    let mut total = 0;
    c.retr_many(&msgs, &mut |_, chunk: &[u8]| total += chunk.len())
        .wait()
        .expect("retr_many");
    assert_eq!(total, 5 * "Subject: 1\r\n\r\n".len());
    assert_eq!(pipe.state().max_outstanding, 1);
    pipe.check();
}

struct Collect {
    ended: Vec<(u32, Option<u64>)>,
}

impl MessageSink for Collect {
    fn on_chunk(&mut self, _: MsgNum, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn on_end(&mut self, msg: MsgNum, result: Result<u64, &Error>) -> io::Result<()> {
        self.ended.push((msg.get(), result.ok()));
        Ok(())
    }
}

#[test]
fn retr_many_reports_each_message() {
    let script = with_login(&[
        ("CAPA", CAPA_PIPELINING),
        ("RETR 1", "+OK\r\na\r\n.\r\n"),
        ("RETR 2", "-ERR deleted\r\n"),
        ("RETR 3", "+OK\r\nc\r\n..\r\n.\r\n"),
        ("STAT", "+OK 2 6\r\n"),
    ]);
    let pipe = Pipe::new(GREETING, &script);
    let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &encrypted())
        .wait()
        .expect("greeting");
    c.login("u", "p").wait().expect("login");
    let mut sink = Collect { ended: Vec::new() };
    let results = c
        .retr_many(&[n(1), n(2), n(3)], &mut sink)
        .wait()
        .expect("retr_many");
    assert_eq!(sink.ended, vec![(1, Some(3)), (2, None), (3, Some(6))]);
    assert!(matches!(results[0], Ok(3)));
    assert!(matches!(&results[1], Err(Error::Server(e)) if e.text.as_str() == "deleted"));
    assert!(matches!(results[2], Ok(6)));
    assert_eq!(c.stat().wait().expect("stat").count, 2);
    pipe.check();
}

#[test]
fn dele_many_reads_every_reply() {
    let script = with_login(&[
        ("CAPA", CAPA_PIPELINING),
        ("DELE 1", "+OK\r\n"),
        ("DELE 2", "-ERR already deleted\r\n"),
        ("DELE 3", "+OK\r\n"),
        ("NOOP", "+OK\r\n"),
    ]);
    let pipe = Pipe::new(GREETING, &script);
    let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &encrypted())
        .wait()
        .expect("greeting");
    c.login("u", "p").wait().expect("login");
    let results = c.dele_many(&[n(1), n(2), n(3)]).wait().expect("dele_many");
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(matches!(&results[1], Err(Error::Server(e)) if e.text.as_str() == "already deleted"));
    c.noop().wait().expect("noop");
    pipe.check();
    assert!(pipe.state().max_outstanding > 1);
}

#[test]
fn a_read_timeout_ends_the_connection() {
    let pipe = Pipe::new(GREETING, &with_login(&[("STAT", "+OK 1")]))
        .with(|s| s.when_empty = WhenEmpty::WouldBlock);
    let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &encrypted())
        .wait()
        .expect("greeting");
    c.login("u", "p").wait().expect("login");
    assert!(matches!(c.stat().wait(), Err(Error::Timeout(Phase::Read))));
    assert!(matches!(c.noop().wait(), Err(Error::Closed)));
    assert!(matches!(c.quit().wait(), Err(Error::Closed)));
}

#[test]
fn eof_in_a_body_is_a_protocol_error_and_ends_the_connection() {
    let pipe = Pipe::new(GREETING, &with_login(&[("RETR 1", "+OK\r\nhalf a mess")]));
    let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &encrypted())
        .wait()
        .expect("greeting");
    c.login("u", "p").wait().expect("login");
    let mut reader = c.retr(n(1)).wait().expect("retr");
    let mut all = Vec::new();
    let error = reader.read_to_end(&mut all).expect_err("cut short");
    let error = Error::from(error);
    assert!(
        matches!(error, Error::Protocol(ProtocolError::UnexpectedEof)),
        "{error:?}"
    );
    // A message that failed is not finished (the same on every runtime).
    assert!(!reader.is_finished());
    drop(reader);
    assert!(matches!(c.noop().wait(), Err(Error::Closed)));
}

#[test]
fn eof_when_idle_is_closed() {
    let pipe = Pipe::new(GREETING, &login_script());
    let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &encrypted())
        .wait()
        .expect("greeting");
    c.login("u", "p").wait().expect("login");
    // The script has no reply for NOOP: the pipe reports end of stream.
    let result = c.noop().wait();
    assert!(
        matches!(result, Err(Error::Protocol(ProtocolError::UnexpectedEof))),
        "{result:?}"
    );
    assert!(matches!(c.noop().wait(), Err(Error::Closed)));
}

#[test]
fn garbage_greeting() {
    let pipe = Pipe::new("* OK IMAP4rev1\r\n", &[]);
    match Connection::new(MaybeTls::Plain(pipe), &encrypted()).wait() {
        Err(Error::Protocol(ProtocolError::InvalidGreeting(_))) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn usage_errors_send_nothing() {
    let pipe = Pipe::new(GREETING, &[("NOOP", "+OK\r\n")]);
    let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &encrypted())
        .wait()
        .expect("greeting");
    assert!(matches!(
        c.stat().wait(),
        Err(Error::Usage(UsageError::WrongState { .. }))
    ));
    assert!(matches!(
        c.login("bad\r\nDELE 1", "p").wait(),
        Err(Error::Usage(UsageError::InvalidArgument(_)))
    ));
    assert!(matches!(
        c.lang(Some("no spaces")).wait(),
        Err(Error::Usage(UsageError::InvalidArgument(_)))
    ));
    assert_eq!(pipe.sent(), "");
}

#[test]
fn apop_sends_the_rfc_digest() {
    let pipe = Pipe::new(
        "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n",
        &[(
            "APOP mrose c4c9334bac560ecc979e58001b3e22fb",
            "+OK maildrop has 1 message\r\n",
        )],
    );
    let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &encrypted())
        .wait()
        .expect("greeting");
    c.apop("mrose", "tanstaaf").wait().expect("apop");
    pipe.check();
}

#[test]
fn scram_nonces_are_fresh() {
    // Two SCRAM exchanges: the client-first messages must differ in the nonce.
    let pipe = Pipe::new(GREETING, &[]);
    let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &encrypted())
        .wait()
        .expect("greeting");
    let _ = c.login_with("u", "p", AuthMethod::ScramSha256).wait();
    let first = pipe.sent();
    let pipe = Pipe::new(GREETING, &[]);
    let mut c = Connection::new(MaybeTls::Plain(pipe.clone()), &encrypted())
        .wait()
        .expect("greeting");
    let _ = c.login_with("u", "p", AuthMethod::ScramSha256).wait();
    let second = pipe.sent();
    assert!(first.starts_with("AUTH SCRAM-SHA-256 "), "{first}");
    assert_ne!(first, second);
}
