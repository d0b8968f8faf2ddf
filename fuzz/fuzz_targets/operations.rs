//! The composite operations, driven the way the transports drive them: a
//! login with an arbitrary method (`Auto` with fallback and the unbound
//! SCRAM retry included), `start_tls`, `retr_many` and `dele_many`, mixed
//! with plain commands and discards, against a server that answers with
//! lines from a phrasebook of what real servers say (so the fuzzer reaches
//! the deep stages: CAPA lists with SASL and STLS, `+` continuations, SCRAM
//! challenges, multi-line bodies) or with arbitrary bytes, EOF and a TLS
//! handshake that completes whenever the input says so.
//!
//! Asserted: no panic; what goes out is whole CRLF lines without NUL; the
//! secret never leaves unencrypted, neither as it is nor inside a base64
//! SASL response, unless plaintext credentials were allowed; every handle
//! completes at most once and with the reply its operation promises
//! (`Authenticated` for a login, `TlsEstablished` for `start_tls`, `BodyEnd`
//! after `BodyStart` for a retrieval, `Ok` for a deletion); a discarded
//! handle reports nothing more; a login tries at most as many methods as
//! there are, plus the one unbound retry; once `Closed`, nothing pending is
//! left without its completion, and after EOF the session reaches `Closed`
//! (or a fatal error) within a bounded number of polls.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use pop3_fuzz::{wire_lines, Bytes};
use pop3_proto::sasl::ChannelBinding;
use pop3_proto::{
    Action, AuthMethod, Client, Command, Config, Credentials, Event, Handle, MsgNum, Reply, State,
};

/// The secret every login carries; recognisable in any encoding below.
const SECRET: &str = "tOpSeCrEt-42";
const USER: &str = "alice";

#[derive(Arbitrary, Debug)]
struct Input {
    encrypted: bool,
    allow_plaintext: bool,
    /// pipeline_window = 1 + window % 4.
    window: u8,
    with_binding: bool,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    Login(Method),
    StartTls,
    RetrMany(Vec<u8>),
    DeleMany(Vec<u8>),
    Stat,
    Noop,
    Quit,
    /// Discards the n-th handle handed out so far.
    Discard(u8),
    Say(Phrase),
    Raw(Bytes),
    Eof,
    TlsEstablished,
    /// Polls up to n + 1 times (stopping when the client waits).
    Poll(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Method {
    Auto,
    UserPass,
    Apop,
    Plain,
    Login,
    CramMd5,
    ScramSha1,
    ScramSha256,
    ScramSha256Plus,
    XOAuth2,
    OAuthBearer,
}

impl Method {
    fn build(self) -> AuthMethod {
        match self {
            Method::Auto => AuthMethod::Auto,
            Method::UserPass => AuthMethod::UserPass,
            Method::Apop => AuthMethod::Apop,
            Method::Plain => AuthMethod::Plain,
            Method::Login => AuthMethod::Login,
            Method::CramMd5 => AuthMethod::CramMd5,
            Method::ScramSha1 => AuthMethod::ScramSha1,
            Method::ScramSha256 => AuthMethod::ScramSha256,
            Method::ScramSha256Plus => AuthMethod::ScramSha256Plus,
            Method::XOAuth2 => AuthMethod::XOAuth2,
            Method::OAuthBearer => AuthMethod::OAuthBearer,
        }
    }
}

/// What servers say, as whole lines (or a body).
#[derive(Arbitrary, Debug)]
enum Phrase {
    Greeting,
    GreetingWithTimestamp,
    Ok,
    Err,
    ErrAuth,
    ErrSysTemp,
    ErrInUse,
    /// A CAPA listing; `sasl` picks mechanisms by bit.
    Capa {
        stls: bool,
        user: bool,
        pipelining: bool,
        uidl: bool,
        sasl: u16,
    },
    /// `+ ` then an arbitrary (short) base64 challenge.
    Continue(Bytes),
    ContinueEmpty,
    /// A well-formed SCRAM server-first message for the nonce prefix sent.
    ScramFirst {
        iterations: u16,
    },
    /// `+OK` then n lines and the terminating dot.
    Body {
        lines: u8,
        stuffed: bool,
    },
    Dot,
    ListingOf(u8),
}

const SASL_NAMES: [&str; 11] = [
    "PLAIN",
    "LOGIN",
    "CRAM-MD5",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256-PLUS",
    "XOAUTH2",
    "OAUTHBEARER",
    "EXTERNAL",
    "GSSAPI",
];

impl Phrase {
    fn bytes(&self, nonce: &str) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD;
        match self {
            Phrase::Greeting => b"+OK ready\r\n".to_vec(),
            Phrase::GreetingWithTimestamp => {
                b"+OK ready <1896.697170952@dbc.mtview.ca.us>\r\n".to_vec()
            }
            Phrase::Ok => b"+OK\r\n".to_vec(),
            Phrase::Err => b"-ERR no\r\n".to_vec(),
            Phrase::ErrAuth => b"-ERR [AUTH] invalid credentials\r\n".to_vec(),
            Phrase::ErrSysTemp => b"-ERR [SYS/TEMP] try later\r\n".to_vec(),
            Phrase::ErrInUse => b"-ERR [IN-USE] locked\r\n".to_vec(),
            Phrase::Capa {
                stls,
                user,
                pipelining,
                uidl,
                sasl,
            } => {
                let mut out = b"+OK capabilities\r\n".to_vec();
                for (on, line) in [
                    (*stls, "STLS"),
                    (*user, "USER"),
                    (*pipelining, "PIPELINING"),
                    (*uidl, "UIDL"),
                ] {
                    if on {
                        out.extend_from_slice(line.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                }
                let names: Vec<&str> = SASL_NAMES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| sasl & (1 << i) != 0)
                    .map(|(_, n)| *n)
                    .collect();
                if !names.is_empty() {
                    out.extend_from_slice(format!("SASL {}\r\n", names.join(" ")).as_bytes());
                }
                out.extend_from_slice(b".\r\n");
                out
            }
            Phrase::Continue(data) => {
                let mut out = b"+ ".to_vec();
                out.extend_from_slice(b64.encode(&data.0[..data.0.len().min(96)]).as_bytes());
                out.extend_from_slice(b"\r\n");
                out
            }
            Phrase::ContinueEmpty => b"+ \r\n".to_vec(),
            Phrase::ScramFirst { iterations } => {
                let first = format!(
                    "r={nonce}srv,s={},i={}",
                    b64.encode(b"salt"),
                    1 + u32::from(*iterations % 64)
                );
                format!("+ {}\r\n", b64.encode(first)).into_bytes()
            }
            Phrase::Body { lines, stuffed } => {
                let mut out = b"+OK message follows\r\n".to_vec();
                for i in 0..*lines % 16 {
                    if *stuffed && i % 3 == 0 {
                        out.extend_from_slice(b"..dot-stuffed\r\n");
                    } else {
                        out.extend_from_slice(format!("line {i}\r\n").as_bytes());
                    }
                }
                out.extend_from_slice(b".\r\n");
                out
            }
            Phrase::Dot => b".\r\n".to_vec(),
            Phrase::ListingOf(n) => {
                let mut out = b"+OK\r\n".to_vec();
                for i in 1..=u32::from(*n % 8) {
                    out.extend_from_slice(format!("{i} {}\r\n", i * 100).as_bytes());
                }
                out.extend_from_slice(b".\r\n");
                out
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Login,
    StartTls,
    Retr,
    Dele,
    Plain,
    Quit,
}

/// An event, without the borrow of the client's buffer.
enum Seen {
    Done(Handle, Result<Reply, ()>),
    BodyStart(Handle),
    Body(Handle, usize),
    Other,
}

struct Pending {
    kind: Kind,
    done: bool,
    discarded: bool,
    body_started: bool,
}

struct Driver {
    client: Client,
    allow_plaintext: bool,
    pending: HashMap<Handle, Pending>,
    order: Vec<Handle>,
    tls_accepted: bool,
    eof: bool,
    closed: bool,
    failed: bool,
    nonce: String,
}

/// Every form in which the secret could leave: itself, or inside a base64
/// SASL response (PLAIN's `\0user\0secret`, LOGIN's bare secret, XOAUTH2's
/// `auth=Bearer secret`, OAUTHBEARER's GS2 string).
fn reveals_secret(line: &[u8]) -> bool {
    let contains = |hay: &[u8]| hay.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
    if contains(line) {
        return true;
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    line.split(|&b| b == b' ')
        .filter_map(|word| b64.decode(word).ok())
        .any(|decoded| contains(&decoded))
}

impl Driver {
    fn hand_out(&mut self, handle: Handle, kind: Kind) {
        assert!(!self.pending.contains_key(&handle), "handle reused");
        self.pending.insert(
            handle,
            Pending {
                kind,
                done: false,
                discarded: false,
                body_started: false,
            },
        );
        self.order.push(handle);
    }

    fn on_send(&mut self, bytes: &[u8]) {
        assert!(bytes.ends_with(b"\r\n"), "partial line sent: {bytes:?}");
        for line in wire_lines(bytes) {
            assert!(
                !line.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n'),
                "NUL or bare CR/LF in a sent line: {line:?}"
            );
            if !self.client.is_encrypted() && !self.allow_plaintext {
                assert!(
                    !reveals_secret(line),
                    "the secret left unencrypted: {:?}",
                    String::from_utf8_lossy(line)
                );
            }
            // Remember the SCRAM client nonce so the phrasebook can answer it.
            if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(line) {
                if let Some(at) = decoded.windows(3).position(|w| w == b",r=") {
                    let rest = &decoded[at + 3..];
                    let end = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
                    self.nonce = String::from_utf8_lossy(&rest[..end]).into_owned();
                }
            }
        }
    }

    fn on_event(&mut self, seen: Seen) {
        let (handle, outcome) = match seen {
            Seen::Done(handle, outcome) => (handle, Some(outcome)),
            Seen::BodyStart(handle) => (handle, None),
            Seen::Body(handle, len) => {
                assert!(len > 0, "empty Body event");
                let p = self
                    .pending
                    .get(&handle)
                    .expect("body for an unknown handle");
                assert!(p.body_started, "body before BodyStart");
                assert!(!p.discarded, "body for a discarded handle");
                return;
            }
            Seen::Other => return,
        };
        let p = self
            .pending
            .get_mut(&handle)
            .unwrap_or_else(|| panic!("event for a handle never handed out: {handle:?}"));
        assert!(!p.done, "{:?} completed twice", p.kind);
        assert!(!p.discarded, "{:?} reported after its discard", p.kind);
        let Some(outcome) = outcome else {
            assert_eq!(p.kind, Kind::Retr, "BodyStart for {:?}", p.kind);
            assert!(!p.body_started, "second BodyStart");
            p.body_started = true;
            return;
        };
        p.done = true;
        if let Ok(reply) = outcome {
            let fits = match (p.kind, &reply) {
                (Kind::Login, Reply::Authenticated(_)) => true,
                (Kind::StartTls, Reply::TlsEstablished) => true,
                (Kind::Retr, Reply::BodyEnd) => p.body_started,
                (Kind::Dele | Kind::Plain | Kind::Quit, Reply::Ok(_)) => true,
                (Kind::Plain, Reply::Stat(_)) => true,
                _ => false,
            };
            assert!(fits, "{:?} completed with {reply:?}", p.kind);
            match (p.kind, &reply) {
                (Kind::Login, _) if self.client.error().is_none() => {
                    assert_eq!(self.client.state(), State::Transaction);
                    let tried = self.client.login_attempts().len();
                    assert!(
                        (1..=SASL_NAMES.len() + 3).contains(&tried),
                        "{tried} login attempts"
                    );
                }
                (Kind::StartTls, _) => assert!(self.client.is_encrypted()),
                _ => {}
            }
        }
    }

    /// One poll; whether polling again makes progress.
    fn poll_once(&mut self) -> bool {
        if self.closed || self.failed {
            return false;
        }
        let action = match self.client.poll() {
            Ok(action) => action,
            Err(_) => {
                self.failed = true;
                return false;
            }
        };
        match action {
            Action::NeedInput => {
                assert!(!self.eof, "NeedInput after EOF");
                false
            }
            Action::Closed => {
                self.closed = true;
                for (handle, p) in &self.pending {
                    assert!(
                        p.done || p.discarded,
                        "{:?} {handle:?} never completed before Closed",
                        p.kind
                    );
                }
                false
            }
            Action::StartTls => {
                self.tls_accepted = true;
                false
            }
            Action::Send(bytes) => {
                let bytes = bytes.to_vec();
                self.on_send(&bytes);
                true
            }
            Action::Event(event) => {
                let seen = match event {
                    Event::Ok { handle, reply } => Seen::Done(handle, Ok(reply)),
                    Event::Err { handle, .. }
                    | Event::Failed { handle, .. }
                    | Event::Cancelled { handle, .. } => Seen::Done(handle, Err(())),
                    Event::BodyStart { handle } => Seen::BodyStart(handle),
                    Event::Body { handle, data } => Seen::Body(handle, data.len()),
                    _ => Seen::Other,
                };
                self.on_event(seen);
                true
            }
        }
    }

    fn poll(&mut self, n: usize) {
        for _ in 0..n {
            if !self.poll_once() {
                return;
            }
        }
    }

    fn msgs(numbers: &[u8]) -> Vec<MsgNum> {
        numbers
            .iter()
            .take(8)
            .filter_map(|&n| MsgNum::new(u32::from(n % 6)))
            .collect()
    }

    fn step(&mut self, step: Step, with_binding: bool) {
        match step {
            Step::Login(method) => {
                // The phrasebook's server-first asks for 1..=64 iterations,
                // to keep each exchange cheap: below the default minimum,
                // every SCRAM login would stop there and the client-final,
                // server-final and unbound-retry paths would go unexplored.
                let mut credentials = Credentials::new(USER, SECRET.to_string())
                    .scram_nonce("fuzzNonce0123")
                    .scram_min_iterations(1);
                if with_binding {
                    credentials =
                        credentials.channel_binding(ChannelBinding::tls_exporter(vec![7; 32]));
                }
                if let Ok(h) = self.client.login_with(credentials, method.build()) {
                    self.hand_out(h, Kind::Login);
                }
            }
            Step::StartTls => {
                if let Ok(h) = self.client.start_tls() {
                    self.hand_out(h, Kind::StartTls);
                }
            }
            Step::RetrMany(numbers) => {
                if let Ok(hs) = self.client.retr_many(&Self::msgs(&numbers)) {
                    for h in hs {
                        self.hand_out(h, Kind::Retr);
                    }
                }
            }
            Step::DeleMany(numbers) => {
                if let Ok(hs) = self.client.dele_many(&Self::msgs(&numbers)) {
                    for h in hs {
                        self.hand_out(h, Kind::Dele);
                    }
                }
            }
            Step::Stat | Step::Noop | Step::Quit => {
                let (command, kind) = match step {
                    Step::Stat => (Command::Stat, Kind::Plain),
                    Step::Noop => (Command::Noop, Kind::Plain),
                    _ => (Command::Quit, Kind::Quit),
                };
                if let Ok(h) = self.client.submit(command) {
                    self.hand_out(h, kind);
                }
            }
            Step::Discard(n) => {
                if !self.order.is_empty() {
                    let h = self.order[usize::from(n) % self.order.len()];
                    self.client.discard(h);
                    if let Some(p) = self.pending.get_mut(&h) {
                        p.discarded = true;
                    }
                }
            }
            Step::Say(phrase) => {
                if !self.eof {
                    let bytes = phrase.bytes(&self.nonce);
                    self.client.receive(&bytes);
                }
            }
            Step::Raw(bytes) => {
                if !self.eof {
                    self.client.receive(&bytes.0);
                }
            }
            Step::Eof => {
                self.eof = true;
                self.client.receive_eof();
            }
            Step::TlsEstablished => {
                let accepted = self.tls_accepted;
                let result = self.client.tls_established();
                assert_eq!(
                    result.is_ok(),
                    accepted && !self.failed && !self.closed,
                    "tls_established: {result:?} (STLS accepted: {accepted})"
                );
                self.tls_accepted = false;
            }
            Step::Poll(n) => self.poll(usize::from(n) + 1),
        }
    }
}

fuzz_target!(|input: Input| {
    let mut config = if input.encrypted {
        Config::encrypted()
    } else {
        Config::default()
    };
    config = config
        .allow_plaintext_credentials(input.allow_plaintext)
        .pipeline_window(1 + usize::from(input.window % 4));
    let mut driver = Driver {
        client: Client::new(config),
        allow_plaintext: input.allow_plaintext,
        pending: HashMap::new(),
        order: Vec::new(),
        tls_accepted: false,
        eof: false,
        closed: false,
        failed: false,
        nonce: String::new(),
    };
    for step in input.steps.into_iter().take(64) {
        driver.step(step, input.with_binding);
        driver.poll(8);
    }
    // The end of the connection ends the session, whatever was pending.
    if !driver.eof {
        driver.eof = true;
        driver.client.receive_eof();
    }
    driver.poll(10_000);
    assert!(
        driver.closed || driver.failed || driver.tls_accepted,
        "no end after EOF: state {:?}",
        driver.client.state()
    );
});
