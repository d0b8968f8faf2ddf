//! The scenario suite that every POP3 transport (`pop3-blocking`,
//! `pop3-tokio`, `pop3-smol`) runs against a real Dovecot and against
//! scripted fault-injecting servers.
//!
//! A transport's `tests/scenarios.rs` implements two small blocking traits —
//! [`Transport`] (connecting) and [`Session`] (one method per POP3 operation;
//! async transports wrap each call in `block_on`) — classifies its error type
//! into the shared [`Failure`], and expands [`scenario_tests!`](crate::scenario_tests):
//!
//! ```ignore
//! struct Blocking;
//! impl test_support::scenarios::Transport for Blocking { /* ... */ }
//! test_support::scenario_tests!(Blocking);
//! ```
//!
//! which becomes one `#[test]` per scenario function of this module.
//!
//! Every scenario bounds its waiting: scripted servers use a 5 s
//! [`ScriptConfig`] timeout, clients in fault tests use 1–3 s time limits, and
//! Dovecot clients use 20 s limits.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pop3_proto::sasl::Mechanism;
use pop3_proto::{
    Capabilities, Greeting, Language, Limits, ListEntry, MsgNum, ProtocolError, ResponseCode,
    ServerError, Stat, UidlEntry, UsageError,
};

use crate::dovecot::{unique_user, Dovecot, Mailbox};
use crate::pki::{rustls_server_config, CertKey, TestPki};
use crate::scripted::{show, ScriptConfig, ScriptedServer, Step};

// ---------------------------------------------------------------------------
// The traits a transport implements
// ---------------------------------------------------------------------------

/// A transport's error, classified so that scenarios can assert its kind.
///
/// A transport's classify function also hands the error to
/// [`hostile::note_error`](crate::hostile::note_error) first, so that the
/// hostile-server suite can check its `Display` text.
#[derive(Debug)]
pub enum Failure {
    /// An I/O error of the socket.
    Io(std::io::Error),
    /// A TLS error (certificate verification, handshake).
    Tls(rustls::Error),
    /// The server broke the protocol, or one reply was unusable.
    Protocol(ProtocolError),
    /// The call did not fit the session; nothing was sent.
    Usage(UsageError),
    /// `-ERR` from the server.
    Server(ServerError),
    /// A time limit ran out.
    Timeout,
    /// The session has ended.
    Closed,
    /// STARTTLS was required but the server does not offer `STLS`.
    StlsUnavailable,
    /// Anything else (describe it).
    Other(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for Failure {}

/// What scenarios pass to the connect functions; each transport turns it into
/// its own options.
#[derive(Debug, Clone)]
pub struct ConnectOpts {
    /// An extra trusted root certificate (PEM), on top of the default roots.
    pub ca_pem: Option<String>,
    /// Allow credentials over an unencrypted connection.
    pub allow_plaintext_auth: bool,
    /// TLS server name override (default: the host passed to connect).
    pub server_name: Option<String>,
    /// TCP connect time limit.
    pub connect_timeout: Duration,
    /// TLS handshake time limit.
    pub tls_handshake_timeout: Duration,
    /// Read time limit.
    pub read_timeout: Duration,
    /// Write time limit.
    pub write_timeout: Duration,
    /// Reply size limits (default: the core's defaults).
    pub limits: Option<Limits>,
}

impl Default for ConnectOpts {
    fn default() -> Self {
        ConnectOpts {
            ca_pem: None,
            allow_plaintext_auth: false,
            server_name: None,
            connect_timeout: Duration::from_secs(20),
            tls_handshake_timeout: Duration::from_secs(20),
            read_timeout: Duration::from_secs(20),
            write_timeout: Duration::from_secs(20),
            limits: None,
        }
    }
}

impl ConnectOpts {
    /// Trusts `ca_pem` in addition to the default roots.
    pub fn trusting(ca_pem: &str) -> ConnectOpts {
        ConnectOpts {
            ca_pem: Some(ca_pem.to_owned()),
            ..ConnectOpts::default()
        }
    }

    /// Sets [`ConnectOpts::allow_plaintext_auth`].
    pub fn plaintext_auth(mut self, allow: bool) -> ConnectOpts {
        self.allow_plaintext_auth = allow;
        self
    }

    /// The same short limit for every step (fault tests).
    pub fn all_timeouts(mut self, limit: Duration) -> ConnectOpts {
        self.connect_timeout = limit;
        self.tls_handshake_timeout = limit;
        self.read_timeout = limit;
        self.write_timeout = limit;
        self
    }
}

/// The SASL mechanisms whose convenience methods the scenarios exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMech {
    /// `AUTH PLAIN`.
    Plain,
    /// `AUTH LOGIN`.
    Login,
    /// `AUTH CRAM-MD5`.
    CramMd5,
    /// `AUTH SCRAM-SHA-1` (the transport generates the nonce).
    ScramSha1,
    /// `AUTH SCRAM-SHA-256` (the transport generates the nonce).
    ScramSha256,
}

/// How a transport connects. Implemented by each transport's test file.
pub trait Transport {
    /// An open session.
    type Conn: Session;

    /// `connect_plain(host, port, options)`.
    fn connect_plain(
        &self,
        host: &str,
        port: u16,
        opts: &ConnectOpts,
    ) -> Result<Self::Conn, Failure>;

    /// `connect_tls(host, port, options)` (implicit TLS).
    fn connect_tls(&self, host: &str, port: u16, opts: &ConnectOpts)
        -> Result<Self::Conn, Failure>;

    /// `connect_starttls(host, port, options)`.
    fn connect_starttls(
        &self,
        host: &str,
        port: u16,
        opts: &ConnectOpts,
    ) -> Result<Self::Conn, Failure>;
}

/// One POP3 session, blocking. Each method maps to the transport's method of
/// the same name.
pub trait Session {
    /// The greeting.
    fn greeting(&self) -> Greeting;
    /// The cached capabilities (`capabilities()`).
    fn capabilities(&self) -> Option<Capabilities>;
    /// `client().is_encrypted()`.
    fn is_encrypted(&self) -> bool;
    /// `client().is_pipelining()`.
    fn is_pipelining(&self) -> bool;

    /// `capa()`.
    fn capa(&mut self) -> Result<Capabilities, Failure>;
    /// `login(user, password)` (USER/PASS).
    fn login(&mut self, user: &str, password: &str) -> Result<(), Failure>;
    /// `apop(user, password)`.
    fn apop(&mut self, user: &str, password: &str) -> Result<(), Failure>;
    /// `auth(mechanism)`.
    fn auth(&mut self, mechanism: Box<dyn Mechanism>) -> Result<(), Failure>;
    /// The convenience method for `mech` (`auth_plain`, `auth_scram_sha256`, ...).
    fn auth_with(&mut self, mech: SaslMech, user: &str, password: &str) -> Result<(), Failure>;
    /// `utf8()`.
    fn utf8(&mut self) -> Result<(), Failure>;
    /// `lang(tag)`.
    fn lang(&mut self, tag: Option<&str>) -> Result<Vec<Language>, Failure>;

    /// `stat()`.
    fn stat(&mut self) -> Result<Stat, Failure>;
    /// `list()`.
    fn list(&mut self) -> Result<Vec<ListEntry>, Failure>;
    /// `list_one(n)`.
    fn list_one(&mut self, msg: MsgNum) -> Result<ListEntry, Failure>;
    /// `uidl()`.
    fn uidl(&mut self) -> Result<Vec<UidlEntry>, Failure>;
    /// `uidl_one(n)`.
    fn uidl_one(&mut self, msg: MsgNum) -> Result<UidlEntry, Failure>;
    /// `retr_to(n, &mut Vec)`.
    fn retr(&mut self, msg: MsgNum) -> Result<Vec<u8>, Failure>;
    /// `retr(n)` read to the end through the `MessageReader` with reads of at
    /// most `buf_size` bytes.
    fn retr_streamed(&mut self, msg: MsgNum, buf_size: usize) -> Result<Vec<u8>, Failure>;
    /// `retr(n)`, read about `bytes` bytes (in small reads), then drop the
    /// `MessageReader` before the end of the message. Returns what was read.
    fn retr_partial(&mut self, msg: MsgNum, bytes: usize) -> Result<Vec<u8>, Failure>;
    /// `top_to(n, lines, &mut Vec)`.
    fn top(&mut self, msg: MsgNum, lines: u32) -> Result<Vec<u8>, Failure>;
    /// `dele(n)`.
    fn dele(&mut self, msg: MsgNum) -> Result<(), Failure>;
    /// `rset()`.
    fn rset(&mut self) -> Result<(), Failure>;
    /// `noop()`.
    fn noop(&mut self) -> Result<(), Failure>;
    /// `retr_many(msgs, sink)`: one result per message, in order (the bytes,
    /// or why that message failed); the outer error ended the connection.
    #[allow(clippy::type_complexity)]
    fn retr_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<Vec<u8>, Failure>>, Failure>;
    /// `dele_many(msgs)`: one result per message, in order.
    #[allow(clippy::type_complexity)]
    fn dele_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<(), Failure>>, Failure>;
    /// `quit()`.
    fn quit(self) -> Result<(), Failure>
    where
        Self: Sized;
    /// Drops the session without `QUIT`.
    fn drop_without_quit(self)
    where
        Self: Sized,
    {
        drop(self);
    }
}

/// Expands to one `#[test]` per scenario of [`crate::scenarios`], each calling
/// the scenario with `&$transport`.
#[macro_export]
macro_rules! scenario_tests {
    ($transport:expr) => {
        $crate::scenario_tests!(@each $transport;
            greeting_and_capa,
            plain_login_with_plaintext_allowed,
            plaintext_auth_refused_by_default,
            implicit_tls_login,
            starttls_login,
            every_command,
            utf8_and_lang,
            wrong_password_gets_auth_code,
            auth_apop,
            auth_plain,
            auth_login,
            auth_cram_md5,
            auth_scram_sha1,
            auth_scram_sha256,
            auth_scram_wrong_password,
            auth_boxed_mechanism,
            retr_is_byte_exact,
            retr_streamed_with_tiny_buffer,
            dropped_reader_leaves_connection_usable,
            retr_missing_message_is_server_error,
            dele_then_quit_deletes,
            dele_then_drop_keeps,
            pipelined_retr_of_1000_messages,
            pipelined_dele_many,
            fault_disconnect_mid_body,
            fault_stalled_server_times_out,
            fault_garbage_greeting,
            fault_greeting_rejected,
            fault_stls_missing_from_capa,
            fault_stls_refused,
            fault_data_after_stls,
            fault_starttls_wrong_host,
            fault_tls_wrong_host,
            fault_tls_unknown_ca,
            fault_tls_expired,
            fault_tls_self_signed,
        );
    };
    (@each $transport:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::scenarios::$name(&$transport);
            }
        )*
    };
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A message number (panics on 0).
pub fn n(number: u32) -> MsgNum {
    MsgNum::new(number).expect("message numbers start at 1")
}

const HOST: &str = "localhost";

fn dovecot() -> &'static Dovecot {
    Dovecot::shared()
}

fn new_user(prefix: &str) -> Mailbox {
    let user = unique_user(prefix);
    dovecot().add_user(&user, &format!("pw-{user}"))
}

fn tls_opts() -> ConnectOpts {
    ConnectOpts::trusting(dovecot().ca_pem())
}

fn tls<T: Transport>(t: &T) -> T::Conn {
    let port = dovecot().tls_addr().port();
    match t.connect_tls(HOST, port, &tls_opts()) {
        Ok(c) => c,
        Err(e) => panic!("connect_tls to Dovecot: {e:?}\n{}", dovecot().log()),
    }
}

fn tls_login<T: Transport>(t: &T, mb: &Mailbox) -> T::Conn {
    let mut s = tls(t);
    expect_ok(s.login(mb.user(), mb.password()), "login");
    s
}

#[track_caller]
fn expect_ok<V>(result: Result<V, Failure>, what: &str) -> V {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

#[track_caller]
fn expect_err<V: fmt::Debug>(result: Result<V, Failure>, what: &str) -> Failure {
    match result {
        Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
        Err(e) => e,
    }
}

#[track_caller]
fn expect_server_error<V: fmt::Debug>(result: Result<V, Failure>, what: &str) -> ServerError {
    match expect_err(result, what) {
        Failure::Server(e) => e,
        other => panic!("{what}: expected a -ERR (Failure::Server), got {other:?}"),
    }
}

#[track_caller]
fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        let from = at.saturating_sub(40);
        panic!(
            "{what}: {} bytes received, {} expected; first difference at byte {at}:\n got  {}\n want {}",
            got.len(),
            want.len(),
            show(&got[from..got.len().min(at + 40)]),
            show(&want[from..want.len().min(at + 40)]),
        );
    }
}

fn read_file(path: &PathBuf) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Messages that stress the framing: dot-stuffing, a lone dot, a trailing dot,
/// 8-bit bytes, an empty body, long lines.
pub fn tricky_messages() -> Vec<(&'static str, Vec<u8>)> {
    let mut eight_bit =
        b"Subject: 8bit\r\nContent-Type: text/plain; charset=latin1\r\n\r\n".to_vec();
    eight_bit.extend_from_slice(b"caf\xe9 na\xefve \xff\xfe\x80\x81\r\n");
    eight_bit.extend((0x80u8..=0xff).filter(|b| *b != b'\r' && *b != b'\n'));
    eight_bit.extend_from_slice(b"\r\n");
    let mut long_lines = b"Subject: long lines\r\n\r\n".to_vec();
    for i in 0..4 {
        long_lines.extend(std::iter::repeat_n(b'a' + i, 5000 + usize::from(i)));
        long_lines.extend_from_slice(b"\r\n");
    }
    vec![
        (
            "dots",
            b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n...\r\n.\r\ntext.\r\n. \r\n.\r\nend\r\n"
                .to_vec(),
        ),
        ("lone dot last", b"Subject: lone dot\r\n\r\nbefore\r\n.\r\n".to_vec()),
        ("8-bit", eight_bit),
        ("empty body", b"Subject: empty body\r\n\r\n".to_vec()),
        ("long lines", long_lines),
        (
            "crlf dot crlf inside",
            b"Subject: x\r\n\r\na\r\n.\r\n\r\n.\r\nb\r\n".to_vec(),
        ),
    ]
}

/// A message of exactly `size` bytes (CRLF lines of printable text, some
/// starting with a dot), ending in CRLF.
pub fn big_message(size: usize, seed: u32) -> Vec<u8> {
    let mut m = format!("Subject: big {seed}\r\nX-Size: {size}\r\n\r\n").into_bytes();
    let mut line = 0u32;
    while m.len() < size {
        let remaining = size - m.len();
        if remaining <= 2 {
            // Pad the previous line instead of leaving a short tail.
            m.truncate(m.len() - 2);
            m.extend(std::iter::repeat_n(b'z', remaining));
            m.extend_from_slice(b"\r\n");
            break;
        }
        let len = (60 + (line.wrapping_mul(7919) ^ seed) % 60) as usize;
        let len = len.min(remaining - 2);
        // Every fifth line starts with a dot.
        let start = if line.is_multiple_of(5) {
            b'.'
        } else {
            b'a' + (line % 26) as u8
        };
        m.push(start);
        for i in 1..len {
            m.push(b' ' + ((line as usize + i) % 94) as u8);
        }
        m.extend_from_slice(b"\r\n");
        line += 1;
    }
    m
}

fn script(steps: Vec<Step>) -> ScriptedServer {
    ScriptedServer::start_with(
        steps,
        ScriptConfig {
            timeout: Duration::from_secs(5),
            stall_limit: Duration::from_secs(10),
        },
    )
}

fn fault_opts() -> ConnectOpts {
    ConnectOpts::trusting(&TestPki::shared().ca_pem)
        .plaintext_auth(true)
        .all_timeouts(Duration::from_secs(3))
}

fn credential_bytes(received: &[u8]) -> Vec<&'static str> {
    let text = String::from_utf8_lossy(received).to_ascii_uppercase();
    ["USER", "PASS", "AUTH", "APOP"]
        .into_iter()
        .filter(|verb| text.contains(verb))
        .collect()
}

fn assert_tls_failure(failure: &Failure, what: &str) {
    match failure {
        Failure::Tls(rustls::Error::InvalidCertificate(_)) => {}
        Failure::Tls(other) => panic!("{what}: TLS error, but not a certificate error: {other:?}"),
        other => panic!("{what}: expected a TLS error, got {other:?}"),
    }
}

fn assert_stream_failure(failure: &Failure, what: &str) {
    match failure {
        Failure::Protocol(ProtocolError::UnexpectedEof) | Failure::Closed | Failure::Io(_) => {}
        other => panic!("{what}: expected UnexpectedEof, Closed or Io, got {other:?}"),
    }
}

/// The connection attempt and the scripted server both end without a hang.
/// The bytes are read after the server has finished, so none that it had
/// yet to read are missed.
fn finish(server: ScriptedServer) -> (Vec<u8>, Result<(), String>) {
    server.join_all()
}

// ---------------------------------------------------------------------------
// Dovecot: commands, login, TLS
// ---------------------------------------------------------------------------

/// Greeting with an APOP timestamp; CAPA lists what Dovecot offers, STLS on
/// the plain port.
pub fn greeting_and_capa<T: Transport>(t: &T) {
    let d = dovecot();
    let mut s = expect_ok(
        t.connect_plain(HOST, d.plain_addr().port(), &ConnectOpts::default()),
        "connect_plain",
    );
    let greeting = s.greeting();
    assert!(greeting.text.as_str().contains("Dovecot"), "{greeting:?}");
    let stamp = greeting
        .apop_timestamp
        .clone()
        .expect("Dovecot sends an APOP timestamp");
    assert!(
        stamp.starts_with('<') && stamp.ends_with('>') && stamp.contains('@'),
        "{stamp}"
    );
    assert!(!s.is_encrypted());
    let capa = expect_ok(s.capa(), "capa");
    for (what, present) in [
        ("TOP", capa.top()),
        ("UIDL", capa.uidl()),
        ("USER", capa.user()),
        ("PIPELINING", capa.pipelining()),
        ("STLS", capa.stls()),
    ] {
        assert!(present, "CAPA lacks {what}: {capa:?}");
    }
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"] {
        assert!(capa.has_sasl(mech), "CAPA lacks SASL {mech}: {capa:?}");
    }
    assert_eq!(
        s.capabilities().as_ref(),
        Some(&capa),
        "capabilities() caches CAPA"
    );
    assert!(s.is_pipelining());
    expect_ok(s.quit(), "quit");
}

/// USER/PASS over plaintext when explicitly allowed.
pub fn plain_login_with_plaintext_allowed<T: Transport>(t: &T) {
    let d = dovecot();
    let mb = new_user("plain-login");
    mb.add_message(b"Subject: one\r\n\r\nbody\r\n");
    let opts = ConnectOpts::default().plaintext_auth(true);
    let mut s = expect_ok(
        t.connect_plain(HOST, d.plain_addr().port(), &opts),
        "connect_plain",
    );
    expect_ok(s.login(mb.user(), mb.password()), "login");
    let stat = expect_ok(s.stat(), "stat");
    assert_eq!(stat.count, 1);
    expect_ok(s.quit(), "quit");
}

/// Without `allow_plaintext_auth`, credentials never leave on a plaintext
/// connection, and the session stays usable.
pub fn plaintext_auth_refused_by_default<T: Transport>(t: &T) {
    let d = dovecot();
    let mb = new_user("plain-refused");
    let mut s = expect_ok(
        t.connect_plain(HOST, d.plain_addr().port(), &ConnectOpts::default()),
        "connect_plain",
    );
    for (what, result) in [
        ("login", s.login(mb.user(), mb.password())),
        ("apop", s.apop(mb.user(), mb.password())),
        (
            "auth_plain",
            s.auth_with(SaslMech::Plain, mb.user(), mb.password()),
        ),
        (
            "auth_login",
            s.auth_with(SaslMech::Login, mb.user(), mb.password()),
        ),
    ] {
        match result {
            Err(Failure::Usage(UsageError::PlaintextCredentials)) => {}
            other => {
                panic!("{what} over plaintext: expected Usage(PlaintextCredentials), got {other:?}")
            }
        }
    }
    // Nothing was sent: the session goes on.
    expect_ok(s.capa(), "capa after the refusals");
    match s.stat() {
        Err(Failure::Usage(UsageError::WrongState { .. })) => {}
        other => panic!("stat before login: expected Usage(WrongState), got {other:?}"),
    }
    expect_ok(s.quit(), "quit");
}

/// Implicit TLS with the test CA; no STLS offered over TLS.
pub fn implicit_tls_login<T: Transport>(t: &T) {
    let mb = new_user("tls-login");
    let body = b"Subject: tls\r\n\r\nover TLS\r\n";
    mb.add_message(body);
    let mut s = tls(t);
    assert!(s.is_encrypted());
    let capa = expect_ok(s.capa(), "capa");
    assert!(!capa.stls(), "STLS offered over TLS: {capa:?}");
    expect_ok(s.login(mb.user(), mb.password()), "login");
    assert_eq!(expect_ok(s.retr(n(1)), "retr"), body);
    expect_ok(s.quit(), "quit");
}

/// STLS upgrade with the test CA; credentials allowed afterwards by default.
pub fn starttls_login<T: Transport>(t: &T) {
    let d = dovecot();
    let mb = new_user("stls-login");
    let body = b"Subject: stls\r\n\r\nupgraded\r\n";
    mb.add_message(body);
    let mut s = expect_ok(
        t.connect_starttls(HOST, d.plain_addr().port(), &tls_opts()),
        "connect_starttls",
    );
    assert!(s.is_encrypted());
    let capa = expect_ok(s.capa(), "capa after STLS");
    assert!(
        !capa.stls(),
        "STLS still offered after the upgrade: {capa:?}"
    );
    expect_ok(s.login(mb.user(), mb.password()), "login");
    assert_eq!(expect_ok(s.retr(n(1)), "retr"), body);
    expect_ok(s.quit(), "quit");
}

/// STAT, LIST, LIST n, UIDL, UIDL n, RETR, TOP, DELE, RSET, NOOP, QUIT.
pub fn every_command<T: Transport>(t: &T) {
    let mb = new_user("every-command");
    let bodies: Vec<Vec<u8>> = vec![
        b"Subject: first\r\nFrom: a@example.org\r\n\r\nline 1\r\nline 2\r\nline 3\r\n".to_vec(),
        b"Subject: second\r\n\r\nhello\r\n".to_vec(),
        big_message(10_000, 3),
    ];
    let files: Vec<PathBuf> = bodies.iter().map(|b| mb.add_message(b)).collect();
    let sizes: Vec<u64> = files.iter().map(|f| read_file(f).len() as u64).collect();
    let mut s = tls_login(t, &mb);

    let stat = expect_ok(s.stat(), "stat");
    assert_eq!(stat.count, 3);
    assert_eq!(stat.size, sizes.iter().sum::<u64>());

    let list = expect_ok(s.list(), "list");
    let got: Vec<(u32, u64)> = list.iter().map(|e| (e.msg.get(), e.size)).collect();
    assert_eq!(got, vec![(1, sizes[0]), (2, sizes[1]), (3, sizes[2])]);
    let one = expect_ok(s.list_one(n(2)), "list_one");
    assert_eq!((one.msg, one.size), (n(2), sizes[1]));

    let uidl = expect_ok(s.uidl(), "uidl");
    assert_eq!(uidl.len(), 3);
    for e in &uidl {
        assert_eq!(e.uid.len(), 16, "Dovecot's %08Xu%08Xv: {e:?}");
    }
    let mut uids: Vec<&str> = uidl.iter().map(|e| e.uid.as_str()).collect();
    uids.sort_unstable();
    uids.dedup();
    assert_eq!(uids.len(), 3, "unique ids differ: {uidl:?}");
    let uid3 = expect_ok(s.uidl_one(n(3)), "uidl_one");
    assert_eq!(uid3, uidl[2]);

    for (i, body) in bodies.iter().enumerate() {
        let got = expect_ok(s.retr(n(i as u32 + 1)), "retr");
        assert_bytes_eq(&got, body, &format!("RETR {}", i + 1));
    }
    let top0 = expect_ok(s.top(n(1), 0), "top 0");
    assert_bytes_eq(
        &top0,
        b"Subject: first\r\nFrom: a@example.org\r\n\r\n",
        "TOP 1 0",
    );
    let top2 = expect_ok(s.top(n(1), 2), "top 2");
    assert_bytes_eq(
        &top2,
        b"Subject: first\r\nFrom: a@example.org\r\n\r\nline 1\r\nline 2\r\n",
        "TOP 1 2",
    );

    expect_ok(s.dele(n(1)), "dele");
    let stat = expect_ok(s.stat(), "stat after dele");
    assert_eq!((stat.count, stat.size), (2, sizes[1] + sizes[2]));
    expect_server_error(s.list_one(n(1)), "list_one of a deleted message");
    expect_server_error(s.retr(n(1)), "retr of a deleted message");
    expect_server_error(s.dele(n(1)), "dele twice");
    expect_ok(s.rset(), "rset");
    assert_eq!(expect_ok(s.stat(), "stat after rset").count, 3);
    expect_ok(s.noop(), "noop");
    expect_ok(s.quit(), "quit");
    assert_eq!(mb.count(), 3, "RSET undid the deletion");
}

/// UTF8 and LANG (RFC 6856): Dovecot 2.3 implements neither and answers
/// `-ERR` (before login `-ERR Unknown command.`; its login process drops the
/// connection after three bad commands, so this sends only two before
/// login); the session goes on.
pub fn utf8_and_lang<T: Transport>(t: &T) {
    let mb = new_user("utf8-lang");
    let mut s = tls(t);
    let capa = expect_ok(s.capa(), "capa");
    if capa.utf8() {
        expect_ok(s.utf8(), "utf8 (advertised)");
    } else {
        let e = expect_server_error(s.utf8(), "utf8 (not advertised)");
        eprintln!("UTF8 before login: {e:?}");
    }
    if capa.lang() {
        let languages = expect_ok(s.lang(None), "lang (advertised)");
        assert!(!languages.is_empty());
    } else {
        let e = expect_server_error(s.lang(None), "lang (not advertised)");
        eprintln!("LANG before login: {e:?}");
    }
    expect_ok(s.login(mb.user(), mb.password()), "login after UTF8/LANG");
    if !capa.lang() {
        let e = expect_server_error(s.lang(Some("en")), "lang en (not advertised)");
        eprintln!("LANG en after login: {e:?}");
    }
    match s.utf8() {
        Err(Failure::Usage(UsageError::WrongState { .. })) => {}
        other => panic!("utf8 after login: expected Usage(WrongState), got {other:?}"),
    }
    expect_ok(s.noop(), "noop");
    expect_ok(s.quit(), "quit");
}

// ---------------------------------------------------------------------------
// Dovecot: authentication
// ---------------------------------------------------------------------------

/// A wrong password is a `-ERR [AUTH]`; the session can then log in properly.
pub fn wrong_password_gets_auth_code<T: Transport>(t: &T) {
    let mb = new_user("wrong-password");
    let mut s = tls(t);
    let e = expect_server_error(
        s.login(mb.user(), "not the password"),
        "login with a wrong password",
    );
    assert_eq!(e.code, Some(ResponseCode::Auth), "{e:?}");
    expect_ok(s.login(mb.user(), mb.password()), "login after a failure");
    expect_ok(s.stat(), "stat");
    expect_ok(s.quit(), "quit");
}

fn auth_scenario<T: Transport>(
    t: &T,
    name: &str,
    run: impl FnOnce(&mut T::Conn, &Mailbox) -> Result<(), Failure>,
) {
    let mb = new_user(name);
    let body = format!("Subject: {name}\r\n\r\nauthenticated\r\n").into_bytes();
    mb.add_message(&body);
    let mut s = tls(t);
    expect_ok(run(&mut s, &mb), name);
    assert_eq!(expect_ok(s.stat(), "stat").count, 1);
    assert_eq!(expect_ok(s.retr(n(1)), "retr"), body);
    expect_ok(s.quit(), "quit");
}

/// APOP with the greeting's timestamp.
pub fn auth_apop<T: Transport>(t: &T) {
    auth_scenario(t, "apop", |s, mb| s.apop(mb.user(), mb.password()));
}

/// `AUTH PLAIN`.
pub fn auth_plain<T: Transport>(t: &T) {
    auth_scenario(t, "plain", |s, mb| {
        s.auth_with(SaslMech::Plain, mb.user(), mb.password())
    });
}

/// `AUTH LOGIN`.
pub fn auth_login<T: Transport>(t: &T) {
    auth_scenario(t, "login", |s, mb| {
        s.auth_with(SaslMech::Login, mb.user(), mb.password())
    });
}

/// `AUTH CRAM-MD5`.
pub fn auth_cram_md5<T: Transport>(t: &T) {
    auth_scenario(t, "cram-md5", |s, mb| {
        s.auth_with(SaslMech::CramMd5, mb.user(), mb.password())
    });
}

/// `AUTH SCRAM-SHA-1` (the transport makes the nonce).
pub fn auth_scram_sha1<T: Transport>(t: &T) {
    auth_scenario(t, "scram-sha-1", |s, mb| {
        s.auth_with(SaslMech::ScramSha1, mb.user(), mb.password())
    });
}

/// `AUTH SCRAM-SHA-256` (the transport makes the nonce).
pub fn auth_scram_sha256<T: Transport>(t: &T) {
    auth_scenario(t, "scram-sha-256", |s, mb| {
        s.auth_with(SaslMech::ScramSha256, mb.user(), mb.password())
    });
}

/// A wrong SCRAM password is refused by the server (`-ERR`, with `[AUTH]`
/// when Dovecot sends it); the session can log in afterwards.
pub fn auth_scram_wrong_password<T: Transport>(t: &T) {
    let mb = new_user("scram-wrong");
    let mut s = tls(t);
    let e = expect_server_error(
        s.auth_with(SaslMech::ScramSha256, mb.user(), "wrong"),
        "SCRAM-SHA-256 with a wrong password",
    );
    assert_eq!(e.code, Some(ResponseCode::Auth), "{e:?}");
    expect_ok(
        s.auth_with(SaslMech::ScramSha256, mb.user(), mb.password()),
        "SCRAM-SHA-256 after a failure",
    );
    expect_ok(s.noop(), "noop");
    expect_ok(s.quit(), "quit");
}

/// `auth(Box<dyn Mechanism>)` with a mechanism built by the caller.
pub fn auth_boxed_mechanism<T: Transport>(t: &T) {
    auth_scenario(t, "boxed", |s, mb| {
        let mechanism = pop3_proto::sasl::CramMd5::new(mb.user().to_owned(), mb.password().into());
        s.auth(Box::new(mechanism))
    });
}

// ---------------------------------------------------------------------------
// Dovecot: message bytes
// ---------------------------------------------------------------------------

/// RETR of framing-hostile messages and a 1 MiB one equals the files on disk.
pub fn retr_is_byte_exact<T: Transport>(t: &T) {
    let mb = new_user("byte-exact");
    let mut messages = tricky_messages();
    messages.push(("1 MiB", big_message(1 << 20, 1)));
    let files: Vec<PathBuf> = messages.iter().map(|(_, m)| mb.add_message(m)).collect();
    let mut s = tls_login(t, &mb);
    for (i, ((what, _), file)) in messages.iter().zip(&files).enumerate() {
        let want = read_file(file);
        let got = expect_ok(s.retr(n(i as u32 + 1)), what);
        assert_bytes_eq(&got, &want, what);
        let listed = expect_ok(s.list_one(n(i as u32 + 1)), "list_one");
        assert_eq!(listed.size, want.len() as u64, "{what}: LIST size");
    }
    expect_ok(s.quit(), "quit");
}

/// Reading through the MessageReader 7 bytes at a time gives the same bytes.
pub fn retr_streamed_with_tiny_buffer<T: Transport>(t: &T) {
    let mb = new_user("streamed");
    let mut messages = tricky_messages();
    messages.push(("100 KiB", big_message(100 * 1024, 2)));
    let files: Vec<PathBuf> = messages.iter().map(|(_, m)| mb.add_message(m)).collect();
    let mut s = tls_login(t, &mb);
    for (i, ((what, _), file)) in messages.iter().zip(&files).enumerate() {
        let want = read_file(file);
        let got = expect_ok(s.retr_streamed(n(i as u32 + 1), 7), what);
        assert_bytes_eq(&got, &want, &format!("{what}, 7-byte reads"));
        let got = expect_ok(s.retr_streamed(n(i as u32 + 1), 1), what);
        assert_bytes_eq(&got, &want, &format!("{what}, 1-byte reads"));
    }
    expect_ok(s.quit(), "quit");
}

/// Dropping a MessageReader half way leaves the connection usable.
pub fn dropped_reader_leaves_connection_usable<T: Transport>(t: &T) {
    let mb = new_user("dropped-reader");
    let big = mb.add_message(&big_message(1 << 20, 7));
    let small = mb.add_message(b"Subject: small\r\n\r\nafter the big one\r\n");
    let mut s = tls_login(t, &mb);
    let want = read_file(&big);
    let part = expect_ok(s.retr_partial(n(1), 1000), "partial retr");
    assert!(!part.is_empty() && part.len() < want.len());
    assert_bytes_eq(&part, &want[..part.len()], "the part read");
    let stat = expect_ok(s.stat(), "stat after dropping the reader");
    assert_eq!(stat.count, 2);
    // Again, then a different command, then the whole message.
    expect_ok(s.retr_partial(n(1), 10), "partial retr 2");
    let got = expect_ok(s.retr(n(2)), "retr 2 after dropping the reader");
    assert_bytes_eq(&got, &read_file(&small), "message 2");
    expect_ok(s.retr_partial(n(2), 3), "partial retr of the small one");
    let got = expect_ok(s.retr(n(1)), "retr 1 in full");
    assert_bytes_eq(&got, &want, "message 1");
    expect_ok(s.quit(), "quit");
}

/// RETR of a message that does not exist is `-ERR`, from `retr` itself.
pub fn retr_missing_message_is_server_error<T: Transport>(t: &T) {
    let mb = new_user("retr-missing");
    mb.add_message(b"Subject: only\r\n\r\none\r\n");
    let mut s = tls_login(t, &mb);
    expect_server_error(s.retr(n(2)), "retr 2");
    expect_server_error(s.retr_streamed(n(99), 7), "streamed retr 99");
    expect_server_error(s.top(n(5), 1), "top 5");
    expect_server_error(s.uidl_one(n(2)), "uidl_one 2");
    assert_eq!(expect_ok(s.stat(), "stat").count, 1);
    expect_ok(s.quit(), "quit");
}

/// DELE then QUIT removes the file.
pub fn dele_then_quit_deletes<T: Transport>(t: &T) {
    let mb = new_user("dele-quit");
    let first = mb.add_message(b"Subject: doomed\r\n\r\nbye\r\n");
    let second = mb.add_message(b"Subject: kept\r\n\r\nstay\r\n");
    let mut s = tls_login(t, &mb);
    expect_ok(s.dele(n(1)), "dele");
    expect_ok(s.quit(), "quit");
    assert!(!first.exists(), "QUIT after DELE must delete the file");
    assert!(second.exists());
    assert_eq!(mb.count(), 1);
}

/// DELE then dropping the connection (no QUIT) deletes nothing.
pub fn dele_then_drop_keeps<T: Transport>(t: &T) {
    let mb = new_user("dele-drop");
    let file = mb.add_message(b"Subject: survivor\r\n\r\nstill here\r\n");
    let mut s = tls_login(t, &mb);
    expect_ok(s.dele(n(1)), "dele");
    assert_eq!(expect_ok(s.stat(), "stat").count, 0);
    s.drop_without_quit();
    // Give the server time to notice the disconnect (it would delete now if
    // it entered the UPDATE state).
    std::thread::sleep(Duration::from_millis(300));
    assert!(file.exists(), "dropping without QUIT must not delete");
    let mut s = tls_login(t, &mb);
    assert_eq!(expect_ok(s.stat(), "stat in a new session").count, 1);
    expect_ok(s.quit(), "quit");
    assert!(file.exists());
}

/// 1000 messages through `retr_many`, pipelined, byte-exact; a message that
/// does not exist fails alone.
pub fn pipelined_retr_of_1000_messages<T: Transport>(t: &T) {
    let mb = new_user("pipeline-1000");
    let tricky = tricky_messages();
    let messages: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| {
            if i % 100 == 0 {
                let (_, m) = &tricky[(i / 100) as usize % tricky.len()];
                m.clone()
            } else {
                big_message(300 + (i as usize * 37) % 3000, i)
            }
        })
        .collect();
    let files: Vec<PathBuf> = messages.iter().map(|m| mb.add_message(m)).collect();
    let mut s = tls(t);
    // CAPA before login, so the core asks again after login by itself.
    expect_ok(s.capa(), "capa");
    expect_ok(s.login(mb.user(), mb.password()), "login");
    let mut numbers: Vec<MsgNum> = (1..=1000).map(n).collect();
    numbers.push(n(1001));
    let started = Instant::now();
    let got = expect_ok(s.retr_many(&numbers), "retr_many");
    let took = started.elapsed();
    assert!(s.is_pipelining(), "retr_many did not run with PIPELINING");
    assert_eq!(got.len(), 1001);
    for (i, (got, file)) in got.iter().zip(&files).enumerate() {
        match got {
            Ok(got) => assert_bytes_eq(got, &read_file(file), &format!("message {}", i + 1)),
            Err(e) => panic!("message {}: {e:?}", i + 1),
        }
    }
    match &got[1000] {
        Err(Failure::Server(_)) => {}
        other => panic!("RETR 1001 of 1000: expected a Server error, got {other:?}"),
    }
    eprintln!("retr_many of 1000 messages took {took:?}");
    expect_ok(s.noop(), "noop after retr_many");
    expect_ok(s.quit(), "quit");
}

/// `dele_many` of 200 messages, pipelined; QUIT removes them all.
pub fn pipelined_dele_many<T: Transport>(t: &T) {
    let mb = new_user("dele-many");
    for i in 0..201u32 {
        mb.add_message(format!("Subject: {i}\r\n\r\nmessage {i}\r\n").as_bytes());
    }
    let mut s = tls(t);
    expect_ok(s.capa(), "capa");
    expect_ok(s.login(mb.user(), mb.password()), "login");
    let numbers: Vec<MsgNum> = (1..=200).map(n).collect();
    let results = expect_ok(s.dele_many(&numbers), "dele_many");
    assert_eq!(results.len(), 200);
    for (i, r) in results.iter().enumerate() {
        assert!(r.is_ok(), "DELE {}: {r:?}", i + 1);
    }
    assert!(s.is_pipelining());
    assert_eq!(expect_ok(s.stat(), "stat").count, 1);
    // One already deleted: -ERR for it alone.
    let results = expect_ok(
        s.dele_many(&[n(5), n(201)]),
        "dele_many with a deleted message",
    );
    assert!(matches!(results[0], Err(Failure::Server(_))), "{results:?}");
    assert!(results[1].is_ok(), "{results:?}");
    assert_eq!(expect_ok(s.stat(), "stat").count, 0);
    expect_ok(s.quit(), "quit");
    assert_eq!(mb.count(), 0);
}

// ---------------------------------------------------------------------------
// Scripted faults
// ---------------------------------------------------------------------------

fn login_steps() -> Vec<Step> {
    vec![
        Step::send_line("+OK scripted server ready"),
        Step::expect_line("USER alice"),
        Step::send_line("+OK"),
        Step::expect_line("PASS secret"),
        Step::send_line("+OK logged in"),
    ]
}

fn scripted_login<T: Transport>(t: &T, server: &ScriptedServer, opts: &ConnectOpts) -> T::Conn {
    let addr: SocketAddr = server.addr();
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", addr.port(), opts),
        "connect_plain",
    );
    expect_ok(s.login("alice", "secret"), "login");
    s
}

/// The server closes the connection in the middle of a message body.
pub fn fault_disconnect_mid_body<T: Transport>(t: &T) {
    let mut steps = login_steps();
    steps.extend([
        Step::expect_line("RETR 1"),
        Step::Send(
            b"+OK 100 octets\r\nSubject: cut\r\n\r\nthe first line\r\nand half a li".to_vec(),
        ),
        Step::Close,
    ]);
    let server = script(steps);
    let mut s = scripted_login(t, &server, &fault_opts());
    let started = Instant::now();
    let e = expect_err(s.retr(n(1)), "retr cut short");
    assert_stream_failure(&e, "retr cut short");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let e = expect_err(s.stat(), "stat after the disconnect");
    assert!(
        matches!(
            e,
            Failure::Closed
                | Failure::Protocol(_)
                | Failure::Io(_)
                | Failure::Usage(UsageError::Closed)
        ),
        "{e:?}"
    );
    drop(s);
    let (_, result) = finish(server);
    result.expect("script followed");

    // The same through the streaming reader.
    let mut steps = login_steps();
    steps.extend([
        Step::expect_line("RETR 1"),
        Step::Send(b"+OK\r\nSubject: cut\r\n\r\nsome text\r\n".to_vec()),
        Step::Close,
    ]);
    let server = script(steps);
    let mut s = scripted_login(t, &server, &fault_opts());
    let e = expect_err(s.retr_streamed(n(1), 7), "streamed retr cut short");
    assert_stream_failure(&e, "streamed retr cut short");
    drop(s);
    finish(server).1.expect("script followed");
}

/// A server that stops answering: the 1 s read limit fires.
pub fn fault_stalled_server_times_out<T: Transport>(t: &T) {
    let mut steps = login_steps();
    steps.extend([
        Step::expect_line("STAT"),
        Step::Send(b"+OK 1".to_vec()),
        Step::Stall,
    ]);
    let server = script(steps);
    let opts = fault_opts().all_timeouts(Duration::from_secs(1));
    let mut s = scripted_login(t, &server, &opts);
    let started = Instant::now();
    let e = expect_err(s.stat(), "stat against a stalled server");
    let took = started.elapsed();
    assert!(matches!(e, Failure::Timeout), "expected Timeout, got {e:?}");
    assert!(
        took >= Duration::from_millis(900),
        "timed out too early: {took:?}"
    );
    assert!(
        took < Duration::from_secs(4),
        "timed out too late: {took:?}"
    );
    drop(s);
    finish(server).1.expect("script followed");

    // A greeting that never comes.
    let server = script(vec![Step::Stall]);
    let started = Instant::now();
    let e = expect_err(
        t.connect_plain("127.0.0.1", server.addr().port(), &opts)
            .map(|_| ()),
        "connect to a server that never greets",
    );
    assert!(matches!(e, Failure::Timeout), "expected Timeout, got {e:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
    finish(server).1.expect("script followed");
}

/// A greeting that is not POP3.
pub fn fault_garbage_greeting<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line("220 smtp.example.org ESMTP"),
        Step::ExpectClose,
    ]);
    let e = expect_err(
        t.connect_plain("127.0.0.1", server.addr().port(), &fault_opts())
            .map(|_| ()),
        "connect with a garbage greeting",
    );
    assert!(
        matches!(e, Failure::Protocol(ProtocolError::InvalidGreeting(_))),
        "{e:?}"
    );
    let (received, result) = finish(server);
    assert!(received.is_empty(), "client sent {}", show(&received));
    result.expect("client closed");
}

/// A `-ERR` greeting.
pub fn fault_greeting_rejected<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line("-ERR [SYS/TEMP] go away"),
        Step::ExpectClose,
    ]);
    let e = expect_err(
        t.connect_plain("127.0.0.1", server.addr().port(), &fault_opts())
            .map(|_| ()),
        "connect with a -ERR greeting",
    );
    match e {
        Failure::Protocol(ProtocolError::GreetingRejected(e)) => {
            assert_eq!(e.code, Some(ResponseCode::SysTemp));
        }
        other => panic!("expected GreetingRejected, got {other:?}"),
    }
    finish(server).1.expect("client closed");
}

const CAPA_WITHOUT_STLS: &[u8] = b"+OK\r\nTOP\r\nUSER\r\nUIDL\r\nSASL PLAIN\r\n.\r\n";
const CAPA_WITH_STLS: &[u8] = b"+OK\r\nTOP\r\nUSER\r\nSTLS\r\nUIDL\r\n.\r\n";

/// STLS not in CAPA: `StlsUnavailable`, and nothing but CAPA was sent.
pub fn fault_stls_missing_from_capa<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::Send(CAPA_WITHOUT_STLS.to_vec()),
        Step::ExpectClose,
    ]);
    let e = expect_err(
        t.connect_starttls("127.0.0.1", server.addr().port(), &fault_opts())
            .map(|_| ()),
        "connect_starttls without STLS",
    );
    assert!(matches!(e, Failure::StlsUnavailable), "{e:?}");
    let (received, result) = finish(server);
    assert_eq!(received, b"CAPA\r\n", "client sent {}", show(&received));
    assert!(credential_bytes(&received).is_empty());
    result.expect("client closed");
}

/// STLS refused: a server error, and no credentials sent.
pub fn fault_stls_refused<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::Send(CAPA_WITH_STLS.to_vec()),
        Step::expect_line("STLS"),
        Step::send_line("-ERR [SYS/TEMP] TLS not available now"),
        Step::ExpectClose,
    ]);
    let e = expect_err(
        t.connect_starttls("127.0.0.1", server.addr().port(), &fault_opts())
            .map(|_| ()),
        "connect_starttls with STLS refused",
    );
    match e {
        Failure::Server(e) => assert_eq!(e.code, Some(ResponseCode::SysTemp)),
        other => panic!("expected a Server error, got {other:?}"),
    }
    let (received, result) = finish(server);
    assert!(
        credential_bytes(&received).is_empty(),
        "client sent {}",
        show(&received)
    );
    assert_eq!(received, b"CAPA\r\nSTLS\r\n");
    result.expect("client closed");
}

/// Bytes after the STLS `+OK`, in the same write: an injection attempt.
pub fn fault_data_after_stls<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::Send(CAPA_WITH_STLS.to_vec()),
        Step::expect_line("STLS"),
        Step::Send(b"+OK begin TLS\r\n+OK injected\r\n".to_vec()),
        Step::ExpectClose,
    ]);
    let e = expect_err(
        t.connect_starttls("127.0.0.1", server.addr().port(), &fault_opts())
            .map(|_| ()),
        "connect_starttls with injected data",
    );
    assert!(
        matches!(e, Failure::Protocol(ProtocolError::DataAfterStls)),
        "{e:?}"
    );
    let (received, _) = finish(server);
    assert_eq!(
        received,
        b"CAPA\r\nSTLS\r\n",
        "client sent {}",
        show(&received)
    );
}

/// STLS accepted, but the certificate is for another host.
pub fn fault_starttls_wrong_host<T: Transport>(t: &T) {
    let pki = TestPki::shared();
    let server = script(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::Send(CAPA_WITH_STLS.to_vec()),
        Step::expect_line("STLS"),
        Step::send_line("+OK begin TLS"),
        Step::StartTls(rustls_server_config(&pki.wrong_host)),
        Step::ExpectClose,
    ]);
    let e = expect_err(
        t.connect_starttls("localhost", server.addr().port(), &fault_opts())
            .map(|_| ()),
        "connect_starttls to a wrong-host certificate",
    );
    assert_tls_failure(&e, "STLS, wrong host");
    let (received, _) = finish(server);
    assert_eq!(
        received,
        b"CAPA\r\nSTLS\r\n",
        "client sent {}",
        show(&received)
    );
}

fn implicit_tls_with(t: &impl Transport, cert: &CertKey, what: &str) {
    let server = script(vec![
        Step::StartTls(rustls_server_config(cert)),
        Step::send_line("+OK ready"),
        Step::ExpectClose,
    ]);
    let started = Instant::now();
    let e = expect_err(
        t.connect_tls("localhost", server.addr().port(), &fault_opts())
            .map(|_| ()),
        what,
    );
    assert_tls_failure(&e, what);
    assert!(started.elapsed() < Duration::from_secs(3));
    let (received, result) = finish(server);
    assert!(
        received.is_empty(),
        "{what}: the server received {}",
        show(&received)
    );
    assert!(
        result.is_err(),
        "{what}: the server's handshake should fail"
    );
}

/// Implicit TLS, certificate valid only for another name.
pub fn fault_tls_wrong_host<T: Transport>(t: &T) {
    implicit_tls_with(t, &TestPki::shared().wrong_host, "implicit TLS, wrong host");
}

/// Implicit TLS, certificate from an unknown CA.
pub fn fault_tls_unknown_ca<T: Transport>(t: &T) {
    implicit_tls_with(t, &TestPki::shared().unknown_ca, "implicit TLS, unknown CA");
}

/// Implicit TLS, expired certificate.
pub fn fault_tls_expired<T: Transport>(t: &T) {
    implicit_tls_with(t, &TestPki::shared().expired, "implicit TLS, expired");
}

/// Implicit TLS, self-signed certificate.
pub fn fault_tls_self_signed<T: Transport>(t: &T) {
    implicit_tls_with(
        t,
        &TestPki::shared().self_signed,
        "implicit TLS, self-signed",
    );
}
