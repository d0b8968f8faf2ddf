//! The scenario suite that every POP3 transport (`pop3-blocking`,
//! `pop3-tokio`, `pop3-smol`) runs against a real Dovecot and against
//! scripted fault-injecting servers.
//!
//! Every transport is an alias of one generic type,
//! [`pop3_transport::Connection`], so the scenarios are written once against
//! it: async functions that `.await` the real methods. A transport plugs in
//! through the small [`Transport`] trait (its stream and runtime types, an
//! executor, and its three connect functions), and its `tests/scenarios.rs`
//! expands [`scenario_tests!`](crate::scenario_tests):
//!
//! ```ignore
//! struct Blocking;
//! impl test_support::scenarios::Transport for Blocking { /* ... */ }
//! test_support::scenario_tests!(Blocking);
//! ```
//!
//! which becomes one `#[test]` per scenario function of this module, each
//! run to its end with [`Transport::block_on`].
//!
//! Every scenario bounds its waiting: scripted servers use a 5 s
//! [`ScriptConfig`] timeout, clients in fault tests use 1–3 s time limits, and
//! Dovecot clients use 20 s limits.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pop3_proto::{AuthMethod, MsgNum, ProtocolError, ResponseCode, ServerError, UsageError};
use pop3_transport::runtime::{MessageSink, Runtime, StartTls, WriteTo};
pub use pop3_transport::{Connection, Error, Options, Result, Timeouts, TlsOptions};

use crate::dovecot::{unique_user, Dovecot, Mailbox};
use crate::pki::{rustls_server_config, CertKey, TestPki};
use crate::scripted::{show, ScriptConfig, ScriptedServer, Step};
use crate::socks5::{Socks5Config, Socks5Server};

// ---------------------------------------------------------------------------
// How a transport plugs in
// ---------------------------------------------------------------------------

/// A transport under test: which stream and runtime its `Connection` alias
/// fills in, how to run a future on that runtime, and its connect functions.
/// Each transport's implementation is a few lines in its `tests/common`.
pub trait Transport {
    /// The stream of the transport's `Connection` (its `MaybeTls`).
    type Stream: StartTls;
    /// The runtime marker; writing into a `Vec<u8>` is how `retr_to` and
    /// `top_to` are checked.
    type Runtime: Runtime + WriteTo<Vec<u8>>;

    /// Runs `future` to its end on this transport's executor.
    fn block_on<F: Future>(&self, future: F) -> F::Output;

    /// The transport's `connect_plain(host, port, options)`.
    fn connect_plain(
        &self,
        host: &str,
        port: u16,
        options: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>>;

    /// The transport's `connect_tls(host, port, options)` (implicit TLS).
    fn connect_tls(
        &self,
        host: &str,
        port: u16,
        options: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>>;

    /// The transport's `connect_starttls(host, port, options)`.
    fn connect_starttls(
        &self,
        host: &str,
        port: u16,
        options: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>>;
}

/// The connection type of the transport `T`: its `Connection` alias.
pub type Conn<T> = Connection<<T as Transport>::Stream, <T as Transport>::Runtime>;

/// Expands to one `#[test]` per scenario of [`crate::scenarios`], each running
/// the scenario with `&$transport` on the transport's executor.
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
            capabilities_current_right_after_login,
            capabilities_current_right_after_stls,
            quit_sends_close_notify,
            quit_sends_close_notify_after_stls,
            set_timeouts_returns_result,
            reader_not_finished_after_failure,
            same_failure_same_report,
            sink_error_stops_retr_many_cleanly,
            retr_many_and_quit_after_the_replies,
            dele_many_and_quit_after_the_replies,
            fault_disconnect_mid_body,
            fault_stalled_server_times_out,
            fault_garbage_greeting,
            fault_greeting_rejected,
            fault_stls_missing_from_capa,
            fault_stls_method_missing_from_capa,
            fault_stls_refused,
            fault_data_after_stls,
            fault_starttls_wrong_host,
            fault_tls_wrong_host,
            fault_tls_unknown_ca,
            fault_tls_expired,
            fault_tls_self_signed,
            proxy_plain_login,
            proxy_implicit_tls_login,
            proxy_starttls_login,
            proxy_tls_names_the_mail_server,
        );
    };
    (@each $transport:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let transport = $transport;
                $crate::scenarios::Transport::block_on(
                    &transport,
                    $crate::scenarios::$name(&transport),
                );
            }
        )*
    };
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// The same `limit` for every step (fault tests).
pub fn timeouts(limit: Duration) -> Timeouts {
    Timeouts {
        connect: Some(limit),
        tls_handshake: Some(limit),
        read: Some(limit),
        write: Some(limit),
        session: Some(Timeouts::DEFAULT_SESSION),
    }
}

/// Options with 20 s limits and the default roots only.
pub fn base_options() -> Options {
    Options::new().timeouts(timeouts(Duration::from_secs(20)))
}

/// [`base_options`] that also trust `ca_pem`.
pub fn trusting(ca_pem: &str) -> Options {
    let tls = TlsOptions::new()
        .add_root_pem(ca_pem.as_bytes())
        .expect("the test CA is valid PEM");
    base_options().tls(tls)
}

// ---------------------------------------------------------------------------
// Reading messages into vectors, the same way on every runtime
// ---------------------------------------------------------------------------

/// `retr_to(msg, &mut Vec)`, checking the returned count.
pub async fn retr_bytes<S: StartTls, R: Runtime + WriteTo<Vec<u8>>>(
    s: &mut Connection<S, R>,
    msg: MsgNum,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let count = s.retr_to(msg, &mut out).await?;
    assert_eq!(count, out.len() as u64, "retr_to's count");
    Ok(out)
}

/// `top_to(msg, lines, &mut Vec)`, checking the returned count.
pub async fn top_bytes<S: StartTls, R: Runtime + WriteTo<Vec<u8>>>(
    s: &mut Connection<S, R>,
    msg: MsgNum,
    lines: u32,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let count = s.top_to(msg, lines, &mut out).await?;
    assert_eq!(count, out.len() as u64, "top_to's count");
    Ok(out)
}

/// `retr(msg)` read to its end through the `MessageReader`, with reads of at
/// most `buf_size` bytes.
pub async fn retr_streamed<S: StartTls, R: Runtime>(
    s: &mut Connection<S, R>,
    msg: MsgNum,
    buf_size: usize,
) -> Result<Vec<u8>> {
    let mut reader = s.retr(msg).await?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; buf_size];
    loop {
        let k = reader.read_chunk(&mut buf).await?;
        if k == 0 {
            assert!(reader.is_finished(), "a reader at its end is finished");
            return Ok(out);
        }
        out.extend_from_slice(&buf[..k]);
    }
}

/// `retr(msg)`, about `bytes` bytes read (100 at most at a time), then the
/// `MessageReader` dropped before the end of the message. Returns what was
/// read.
pub async fn retr_partial<S: StartTls, R: Runtime>(
    s: &mut Connection<S, R>,
    msg: MsgNum,
    bytes: usize,
) -> Result<Vec<u8>> {
    let mut reader = s.retr(msg).await?;
    let mut out = Vec::new();
    let mut buf = [0u8; 100];
    while out.len() < bytes {
        let want = buf.len().min(bytes - out.len());
        let k = reader.read_chunk(&mut buf[..want]).await?;
        if k == 0 {
            break;
        }
        out.extend_from_slice(&buf[..k]);
    }
    Ok(out)
}

/// Collects `retr_many` output per position; a message that failed is
/// emptied, as the sink contract asks.
struct Collect {
    msgs: Vec<MsgNum>,
    messages: Vec<Vec<u8>>,
}

impl Collect {
    fn index(&self, msg: MsgNum) -> Option<usize> {
        self.msgs.iter().position(|&m| m == msg)
    }
}

impl MessageSink for Collect {
    fn on_chunk(&mut self, msg: MsgNum, chunk: &[u8]) -> std::io::Result<()> {
        if let Some(i) = self.index(msg) {
            self.messages[i].extend_from_slice(chunk);
        }
        Ok(())
    }

    fn on_end(&mut self, msg: MsgNum, result: Result<u64, &Error>) -> std::io::Result<()> {
        if let Some(i) = self.index(msg) {
            match result {
                Ok(size) => assert_eq!(size, self.messages[i].len() as u64, "size of {msg:?}"),
                Err(_) => self.messages[i].clear(),
            }
        }
        Ok(())
    }
}

/// `retr_many(msgs, sink)`: one result per message, in order (the bytes, or
/// why that message failed); the outer error is the call's.
#[allow(clippy::type_complexity)]
pub async fn retr_many_bytes<S: StartTls, R: Runtime>(
    s: &mut Connection<S, R>,
    msgs: &[MsgNum],
) -> Result<Vec<Result<Vec<u8>>>> {
    let mut sink = Collect {
        msgs: msgs.to_vec(),
        messages: vec![Vec::new(); msgs.len()],
    };
    let results = s.retr_many(msgs, &mut sink).await?;
    Ok(results
        .into_iter()
        .zip(sink.messages)
        .map(|(result, message)| result.map(|_| message))
        .collect())
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

fn tls_opts() -> Options {
    trusting(dovecot().ca_pem())
}

async fn tls<T: Transport>(t: &T) -> Conn<T> {
    let port = dovecot().tls_addr().port();
    match t.connect_tls(HOST, port, &tls_opts()).await {
        Ok(c) => c,
        Err(e) => panic!("connect_tls to Dovecot: {e:?}\n{}", dovecot().log()),
    }
}

async fn tls_login<T: Transport>(t: &T, mb: &Mailbox) -> Conn<T> {
    let mut s = tls(t).await;
    expect_ok(s.login(mb.user(), mb.password()).await, "login");
    s
}

#[track_caller]
fn expect_ok<V>(result: Result<V>, what: &str) -> V {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

#[track_caller]
fn expect_err<V: fmt::Debug>(result: Result<V>, what: &str) -> Error {
    match result {
        Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
        Err(e) => e,
    }
}

#[track_caller]
fn expect_server_error<V: fmt::Debug>(result: Result<V>, what: &str) -> ServerError {
    match expect_err(result, what) {
        Error::Server(e) => e,
        other => panic!("{what}: expected a -ERR (Error::Server), got {other:?}"),
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

fn fault_opts() -> Options {
    trusting(&TestPki::shared().ca_pem)
        .allow_plaintext_credentials(true)
        .timeouts(timeouts(Duration::from_secs(3)))
}

fn credential_bytes(received: &[u8]) -> Vec<&'static str> {
    let text = String::from_utf8_lossy(received).to_ascii_uppercase();
    ["USER", "PASS", "AUTH", "APOP"]
        .into_iter()
        .filter(|verb| text.contains(verb))
        .collect()
}

fn assert_tls_failure(failure: &Error, what: &str) {
    match failure {
        Error::Tls(rustls::Error::InvalidCertificate(_)) => {}
        Error::Tls(other) => panic!("{what}: TLS error, but not a certificate error: {other:?}"),
        other => panic!("{what}: expected a TLS error, got {other:?}"),
    }
}

fn assert_stream_failure(failure: &Error, what: &str) {
    match failure {
        Error::Protocol(ProtocolError::UnexpectedEof) | Error::Closed | Error::Io(_) => {}
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
pub async fn greeting_and_capa<T: Transport>(t: &T) {
    let d = dovecot();
    let mut s = expect_ok(
        t.connect_plain(HOST, d.plain_addr().port(), &base_options())
            .await,
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
    assert!(!s.client().is_encrypted());
    let capa = expect_ok(s.capa().await, "capa");
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
        s.capabilities().cloned().as_ref(),
        Some(&capa),
        "capabilities() caches CAPA"
    );
    assert!(s.client().is_pipelining());
    expect_ok(s.quit().await, "quit");
}

/// USER/PASS over plaintext when explicitly allowed.
pub async fn plain_login_with_plaintext_allowed<T: Transport>(t: &T) {
    let d = dovecot();
    let mb = new_user("plain-login");
    mb.add_message(b"Subject: one\r\n\r\nbody\r\n");
    let opts = base_options().allow_plaintext_credentials(true);
    let mut s = expect_ok(
        t.connect_plain(HOST, d.plain_addr().port(), &opts).await,
        "connect_plain",
    );
    expect_ok(s.login(mb.user(), mb.password()).await, "login");
    let stat = expect_ok(s.stat().await, "stat");
    assert_eq!(stat.count, 1);
    expect_ok(s.quit().await, "quit");
}

/// Without `allow_plaintext_credentials`, credentials never leave on a plaintext
/// connection, and the session stays usable.
pub async fn plaintext_auth_refused_by_default<T: Transport>(t: &T) {
    let d = dovecot();
    let mb = new_user("plain-refused");
    let mut s = expect_ok(
        t.connect_plain(HOST, d.plain_addr().port(), &base_options())
            .await,
        "connect_plain",
    );
    for (what, result) in [
        ("login", s.login(mb.user(), mb.password()).await),
        ("apop", s.apop(mb.user(), mb.password()).await),
        (
            "AUTH PLAIN",
            s.login_with(mb.user(), mb.password(), AuthMethod::Plain)
                .await,
        ),
        (
            "AUTH LOGIN",
            s.login_with(mb.user(), mb.password(), AuthMethod::Login)
                .await,
        ),
    ] {
        match result {
            Err(Error::Usage(UsageError::PlaintextCredentials)) => {}
            other => {
                panic!("{what} over plaintext: expected Usage(PlaintextCredentials), got {other:?}")
            }
        }
    }
    // Nothing was sent: the session goes on.
    expect_ok(s.capa().await, "capa after the refusals");
    match s.stat().await {
        Err(Error::Usage(UsageError::WrongState { .. })) => {}
        other => panic!("stat before login: expected Usage(WrongState), got {other:?}"),
    }
    expect_ok(s.quit().await, "quit");
}

/// Implicit TLS with the test CA; no STLS offered over TLS.
pub async fn implicit_tls_login<T: Transport>(t: &T) {
    let mb = new_user("tls-login");
    let body = b"Subject: tls\r\n\r\nover TLS\r\n";
    mb.add_message(body);
    let mut s = tls(t).await;
    assert!(s.client().is_encrypted());
    let capa = expect_ok(s.capa().await, "capa");
    assert!(!capa.stls(), "STLS offered over TLS: {capa:?}");
    expect_ok(s.login(mb.user(), mb.password()).await, "login");
    assert_eq!(expect_ok(retr_bytes(&mut s, n(1)).await, "retr"), body);
    expect_ok(s.quit().await, "quit");
}

/// STLS upgrade with the test CA; credentials allowed afterwards by default.
pub async fn starttls_login<T: Transport>(t: &T) {
    let d = dovecot();
    let mb = new_user("stls-login");
    let body = b"Subject: stls\r\n\r\nupgraded\r\n";
    mb.add_message(body);
    let mut s = expect_ok(
        t.connect_starttls(HOST, d.plain_addr().port(), &tls_opts())
            .await,
        "connect_starttls",
    );
    assert!(s.client().is_encrypted());
    let capa = expect_ok(s.capa().await, "capa after STLS");
    assert!(
        !capa.stls(),
        "STLS still offered after the upgrade: {capa:?}"
    );
    expect_ok(s.login(mb.user(), mb.password()).await, "login");
    assert_eq!(expect_ok(retr_bytes(&mut s, n(1)).await, "retr"), body);
    expect_ok(s.quit().await, "quit");
}

/// STAT, LIST, LIST n, UIDL, UIDL n, RETR, TOP, DELE, RSET, NOOP, QUIT.
pub async fn every_command<T: Transport>(t: &T) {
    let mb = new_user("every-command");
    let bodies: Vec<Vec<u8>> = vec![
        b"Subject: first\r\nFrom: a@example.org\r\n\r\nline 1\r\nline 2\r\nline 3\r\n".to_vec(),
        b"Subject: second\r\n\r\nhello\r\n".to_vec(),
        big_message(10_000, 3),
    ];
    let files: Vec<PathBuf> = bodies.iter().map(|b| mb.add_message(b)).collect();
    let sizes: Vec<u64> = files.iter().map(|f| read_file(f).len() as u64).collect();
    let mut s = tls_login(t, &mb).await;

    let stat = expect_ok(s.stat().await, "stat");
    assert_eq!(stat.count, 3);
    assert_eq!(stat.size, sizes.iter().sum::<u64>());

    let list = expect_ok(s.list().await, "list");
    let got: Vec<(u32, u64)> = list.iter().map(|e| (e.msg.get(), e.size)).collect();
    assert_eq!(got, vec![(1, sizes[0]), (2, sizes[1]), (3, sizes[2])]);
    let one = expect_ok(s.list_one(n(2)).await, "list_one");
    assert_eq!((one.msg, one.size), (n(2), sizes[1]));

    let uidl = expect_ok(s.uidl().await, "uidl");
    assert_eq!(uidl.len(), 3);
    for e in &uidl {
        assert_eq!(e.uid.len(), 16, "Dovecot's %08Xu%08Xv: {e:?}");
    }
    let mut uids: Vec<&str> = uidl.iter().map(|e| e.uid.as_str()).collect();
    uids.sort_unstable();
    uids.dedup();
    assert_eq!(uids.len(), 3, "unique ids differ: {uidl:?}");
    let uid3 = expect_ok(s.uidl_one(n(3)).await, "uidl_one");
    assert_eq!(uid3, uidl[2]);

    for (i, body) in bodies.iter().enumerate() {
        let got = expect_ok(retr_bytes(&mut s, n(i as u32 + 1)).await, "retr");
        assert_bytes_eq(&got, body, &format!("RETR {}", i + 1));
    }
    let top0 = expect_ok(top_bytes(&mut s, n(1), 0).await, "top 0");
    assert_bytes_eq(
        &top0,
        b"Subject: first\r\nFrom: a@example.org\r\n\r\n",
        "TOP 1 0",
    );
    let top2 = expect_ok(top_bytes(&mut s, n(1), 2).await, "top 2");
    assert_bytes_eq(
        &top2,
        b"Subject: first\r\nFrom: a@example.org\r\n\r\nline 1\r\nline 2\r\n",
        "TOP 1 2",
    );

    expect_ok(s.dele(n(1)).await, "dele");
    let stat = expect_ok(s.stat().await, "stat after dele");
    assert_eq!((stat.count, stat.size), (2, sizes[1] + sizes[2]));
    expect_server_error(s.list_one(n(1)).await, "list_one of a deleted message");
    expect_server_error(retr_bytes(&mut s, n(1)).await, "retr of a deleted message");
    expect_server_error(s.dele(n(1)).await, "dele twice");
    expect_ok(s.rset().await, "rset");
    assert_eq!(expect_ok(s.stat().await, "stat after rset").count, 3);
    expect_ok(s.noop().await, "noop");
    expect_ok(s.quit().await, "quit");
    assert_eq!(mb.count(), 3, "RSET undid the deletion");
}

/// UTF8 and LANG (RFC 6856): Dovecot 2.3 implements neither and answers
/// `-ERR` (before login `-ERR Unknown command.`; its login process drops the
/// connection after three bad commands, so this sends only two before
/// login); the session goes on.
pub async fn utf8_and_lang<T: Transport>(t: &T) {
    let mb = new_user("utf8-lang");
    let mut s = tls(t).await;
    let capa = expect_ok(s.capa().await, "capa");
    if capa.utf8() {
        expect_ok(s.utf8().await, "utf8 (advertised)");
    } else {
        let e = expect_server_error(s.utf8().await, "utf8 (not advertised)");
        eprintln!("UTF8 before login: {e:?}");
    }
    if capa.lang() {
        let languages = expect_ok(s.lang(None).await, "lang (advertised)");
        assert!(!languages.is_empty());
    } else {
        let e = expect_server_error(s.lang(None).await, "lang (not advertised)");
        eprintln!("LANG before login: {e:?}");
    }
    expect_ok(
        s.login(mb.user(), mb.password()).await,
        "login after UTF8/LANG",
    );
    if !capa.lang() {
        let e = expect_server_error(s.lang(Some("en")).await, "lang en (not advertised)");
        eprintln!("LANG en after login: {e:?}");
    }
    match s.utf8().await {
        Err(Error::Usage(UsageError::WrongState { .. })) => {}
        other => panic!("utf8 after login: expected Usage(WrongState), got {other:?}"),
    }
    expect_ok(s.noop().await, "noop");
    expect_ok(s.quit().await, "quit");
}

// ---------------------------------------------------------------------------
// Dovecot: authentication
// ---------------------------------------------------------------------------

/// A wrong password is a `-ERR [AUTH]`; the session can then log in properly.
pub async fn wrong_password_gets_auth_code<T: Transport>(t: &T) {
    let mb = new_user("wrong-password");
    let mut s = tls(t).await;
    let e = expect_server_error(
        s.login(mb.user(), "not the password").await,
        "login with a wrong password",
    );
    assert_eq!(e.code, Some(ResponseCode::Auth), "{e:?}");
    expect_ok(
        s.login(mb.user(), mb.password()).await,
        "login after a failure",
    );
    expect_ok(s.stat().await, "stat");
    expect_ok(s.quit().await, "quit");
}

async fn auth_scenario<T: Transport>(
    t: &T,
    name: &str,
    run: impl AsyncFnOnce(&mut Conn<T>, &Mailbox) -> Result<()>,
) {
    let mb = new_user(name);
    let body = format!("Subject: {name}\r\n\r\nauthenticated\r\n").into_bytes();
    mb.add_message(&body);
    let mut s = tls(t).await;
    expect_ok(run(&mut s, &mb).await, name);
    assert_eq!(expect_ok(s.stat().await, "stat").count, 1);
    assert_eq!(expect_ok(retr_bytes(&mut s, n(1)).await, "retr"), body);
    expect_ok(s.quit().await, "quit");
}

/// APOP with the greeting's timestamp.
pub async fn auth_apop<T: Transport>(t: &T) {
    auth_scenario(t, "apop", async |s, mb| {
        s.apop(mb.user(), mb.password()).await
    })
    .await;
}

/// `AUTH PLAIN`.
pub async fn auth_plain<T: Transport>(t: &T) {
    auth_scenario(t, "plain", async |s, mb| {
        s.login_with(mb.user(), mb.password(), AuthMethod::Plain)
            .await
    })
    .await;
}

/// `AUTH LOGIN`.
pub async fn auth_login<T: Transport>(t: &T) {
    auth_scenario(t, "login", async |s, mb| {
        s.login_with(mb.user(), mb.password(), AuthMethod::Login)
            .await
    })
    .await;
}

/// `AUTH CRAM-MD5`.
pub async fn auth_cram_md5<T: Transport>(t: &T) {
    auth_scenario(t, "cram-md5", async |s, mb| {
        s.login_with(mb.user(), mb.password(), AuthMethod::CramMd5)
            .await
    })
    .await;
}

/// `AUTH SCRAM-SHA-1` (the transport makes the nonce).
pub async fn auth_scram_sha1<T: Transport>(t: &T) {
    auth_scenario(t, "scram-sha-1", async |s, mb| {
        s.login_with(mb.user(), mb.password(), AuthMethod::ScramSha1)
            .await
    })
    .await;
}

/// `AUTH SCRAM-SHA-256` (the transport makes the nonce).
pub async fn auth_scram_sha256<T: Transport>(t: &T) {
    auth_scenario(t, "scram-sha-256", async |s, mb| {
        s.login_with(mb.user(), mb.password(), AuthMethod::ScramSha256)
            .await
    })
    .await;
}

/// A wrong SCRAM password is refused by the server (`-ERR`, with `[AUTH]`
/// when Dovecot sends it); the session can log in afterwards.
pub async fn auth_scram_wrong_password<T: Transport>(t: &T) {
    let mb = new_user("scram-wrong");
    let mut s = tls(t).await;
    let e = expect_server_error(
        s.login_with(mb.user(), "wrong", AuthMethod::ScramSha256)
            .await,
        "SCRAM-SHA-256 with a wrong password",
    );
    assert_eq!(e.code, Some(ResponseCode::Auth), "{e:?}");
    expect_ok(
        s.login_with(mb.user(), mb.password(), AuthMethod::ScramSha256)
            .await,
        "SCRAM-SHA-256 after a failure",
    );
    expect_ok(s.noop().await, "noop");
    expect_ok(s.quit().await, "quit");
}

/// `auth(Box<dyn Mechanism>)` with a mechanism built by the caller.
pub async fn auth_boxed_mechanism<T: Transport>(t: &T) {
    auth_scenario(t, "boxed", async |s, mb| {
        let mechanism = pop3_proto::sasl::CramMd5::new(mb.user().to_owned(), mb.password().into());
        s.auth(Box::new(mechanism)).await
    })
    .await;
}

// ---------------------------------------------------------------------------
// Dovecot: message bytes
// ---------------------------------------------------------------------------

/// RETR of framing-hostile messages and a 1 MiB one equals the files on disk.
pub async fn retr_is_byte_exact<T: Transport>(t: &T) {
    let mb = new_user("byte-exact");
    let mut messages = tricky_messages();
    messages.push(("1 MiB", big_message(1 << 20, 1)));
    let files: Vec<PathBuf> = messages.iter().map(|(_, m)| mb.add_message(m)).collect();
    let mut s = tls_login(t, &mb).await;
    for (i, ((what, _), file)) in messages.iter().zip(&files).enumerate() {
        let want = read_file(file);
        let got = expect_ok(retr_bytes(&mut s, n(i as u32 + 1)).await, what);
        assert_bytes_eq(&got, &want, what);
        let listed = expect_ok(s.list_one(n(i as u32 + 1)).await, "list_one");
        assert_eq!(listed.size, want.len() as u64, "{what}: LIST size");
    }
    expect_ok(s.quit().await, "quit");
}

/// Reading through the MessageReader 7 bytes at a time gives the same bytes.
pub async fn retr_streamed_with_tiny_buffer<T: Transport>(t: &T) {
    let mb = new_user("streamed");
    let mut messages = tricky_messages();
    messages.push(("100 KiB", big_message(100 * 1024, 2)));
    let files: Vec<PathBuf> = messages.iter().map(|(_, m)| mb.add_message(m)).collect();
    let mut s = tls_login(t, &mb).await;
    for (i, ((what, _), file)) in messages.iter().zip(&files).enumerate() {
        let want = read_file(file);
        let got = expect_ok(retr_streamed(&mut s, n(i as u32 + 1), 7).await, what);
        assert_bytes_eq(&got, &want, &format!("{what}, 7-byte reads"));
        let got = expect_ok(retr_streamed(&mut s, n(i as u32 + 1), 1).await, what);
        assert_bytes_eq(&got, &want, &format!("{what}, 1-byte reads"));
    }
    expect_ok(s.quit().await, "quit");
}

/// Dropping a MessageReader half way leaves the connection usable.
pub async fn dropped_reader_leaves_connection_usable<T: Transport>(t: &T) {
    let mb = new_user("dropped-reader");
    let big = mb.add_message(&big_message(1 << 20, 7));
    let small = mb.add_message(b"Subject: small\r\n\r\nafter the big one\r\n");
    let mut s = tls_login(t, &mb).await;
    let want = read_file(&big);
    let part = expect_ok(retr_partial(&mut s, n(1), 1000).await, "partial retr");
    assert!(!part.is_empty() && part.len() < want.len());
    assert_bytes_eq(&part, &want[..part.len()], "the part read");
    let stat = expect_ok(s.stat().await, "stat after dropping the reader");
    assert_eq!(stat.count, 2);
    // Again, then a different command, then the whole message.
    expect_ok(retr_partial(&mut s, n(1), 10).await, "partial retr 2");
    let got = expect_ok(
        retr_bytes(&mut s, n(2)).await,
        "retr 2 after dropping the reader",
    );
    assert_bytes_eq(&got, &read_file(&small), "message 2");
    expect_ok(
        retr_partial(&mut s, n(2), 3).await,
        "partial retr of the small one",
    );
    let got = expect_ok(retr_bytes(&mut s, n(1)).await, "retr 1 in full");
    assert_bytes_eq(&got, &want, "message 1");
    expect_ok(s.quit().await, "quit");
}

/// RETR of a message that does not exist is `-ERR`, from `retr` itself.
pub async fn retr_missing_message_is_server_error<T: Transport>(t: &T) {
    let mb = new_user("retr-missing");
    mb.add_message(b"Subject: only\r\n\r\none\r\n");
    let mut s = tls_login(t, &mb).await;
    expect_server_error(retr_bytes(&mut s, n(2)).await, "retr 2");
    expect_server_error(retr_streamed(&mut s, n(99), 7).await, "streamed retr 99");
    expect_server_error(top_bytes(&mut s, n(5), 1).await, "top 5");
    expect_server_error(s.uidl_one(n(2)).await, "uidl_one 2");
    assert_eq!(expect_ok(s.stat().await, "stat").count, 1);
    expect_ok(s.quit().await, "quit");
}

/// DELE then QUIT removes the file.
pub async fn dele_then_quit_deletes<T: Transport>(t: &T) {
    let mb = new_user("dele-quit");
    let first = mb.add_message(b"Subject: doomed\r\n\r\nbye\r\n");
    let second = mb.add_message(b"Subject: kept\r\n\r\nstay\r\n");
    let mut s = tls_login(t, &mb).await;
    expect_ok(s.dele(n(1)).await, "dele");
    expect_ok(s.quit().await, "quit");
    assert!(!first.exists(), "QUIT after DELE must delete the file");
    assert!(second.exists());
    assert_eq!(mb.count(), 1);
}

/// DELE then dropping the connection (no QUIT) deletes nothing.
pub async fn dele_then_drop_keeps<T: Transport>(t: &T) {
    let mb = new_user("dele-drop");
    let file = mb.add_message(b"Subject: survivor\r\n\r\nstill here\r\n");
    let mut s = tls_login(t, &mb).await;
    expect_ok(s.dele(n(1)).await, "dele");
    assert_eq!(expect_ok(s.stat().await, "stat").count, 0);
    drop(s);
    // Give the server time to notice the disconnect (it would delete now if
    // it entered the UPDATE state).
    std::thread::sleep(Duration::from_millis(300));
    assert!(file.exists(), "dropping without QUIT must not delete");
    let mut s = tls_login(t, &mb).await;
    assert_eq!(expect_ok(s.stat().await, "stat in a new session").count, 1);
    expect_ok(s.quit().await, "quit");
    assert!(file.exists());
}

/// 1000 messages through `retr_many`, pipelined, byte-exact; a message that
/// does not exist fails alone.
pub async fn pipelined_retr_of_1000_messages<T: Transport>(t: &T) {
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
    let mut s = tls(t).await;
    // CAPA before login, so the core asks again after login by itself.
    expect_ok(s.capa().await, "capa");
    expect_ok(s.login(mb.user(), mb.password()).await, "login");
    let mut numbers: Vec<MsgNum> = (1..=1000).map(n).collect();
    numbers.push(n(1001));
    let started = Instant::now();
    let got = expect_ok(retr_many_bytes(&mut s, &numbers).await, "retr_many");
    let took = started.elapsed();
    assert!(
        s.client().is_pipelining(),
        "retr_many did not run with PIPELINING"
    );
    assert_eq!(got.len(), 1001);
    for (i, (got, file)) in got.iter().zip(&files).enumerate() {
        match got {
            Ok(got) => assert_bytes_eq(got, &read_file(file), &format!("message {}", i + 1)),
            Err(e) => panic!("message {}: {e:?}", i + 1),
        }
    }
    match &got[1000] {
        Err(Error::Server(_)) => {}
        other => panic!("RETR 1001 of 1000: expected a Server error, got {other:?}"),
    }
    eprintln!("retr_many of 1000 messages took {took:?}");
    expect_ok(s.noop().await, "noop after retr_many");
    expect_ok(s.quit().await, "quit");
}

/// `dele_many` of 200 messages, pipelined; QUIT removes them all.
pub async fn pipelined_dele_many<T: Transport>(t: &T) {
    let mb = new_user("dele-many");
    for i in 0..201u32 {
        mb.add_message(format!("Subject: {i}\r\n\r\nmessage {i}\r\n").as_bytes());
    }
    let mut s = tls(t).await;
    expect_ok(s.capa().await, "capa");
    expect_ok(s.login(mb.user(), mb.password()).await, "login");
    let numbers: Vec<MsgNum> = (1..=200).map(n).collect();
    let results = expect_ok(s.dele_many(&numbers).await, "dele_many");
    assert_eq!(results.len(), 200);
    for (i, r) in results.iter().enumerate() {
        assert!(r.is_ok(), "DELE {}: {r:?}", i + 1);
    }
    assert!(s.client().is_pipelining());
    assert_eq!(expect_ok(s.stat().await, "stat").count, 1);
    // One already deleted: -ERR for it alone.
    let results = expect_ok(
        s.dele_many(&[n(5), n(201)]).await,
        "dele_many with a deleted message",
    );
    assert!(matches!(results[0], Err(Error::Server(_))), "{results:?}");
    assert!(results[1].is_ok(), "{results:?}");
    assert_eq!(expect_ok(s.stat().await, "stat").count, 0);
    expect_ok(s.quit().await, "quit");
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

async fn scripted_login<T: Transport>(t: &T, server: &ScriptedServer, opts: &Options) -> Conn<T> {
    let addr: SocketAddr = server.addr();
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", addr.port(), opts).await,
        "connect_plain",
    );
    expect_ok(s.login("alice", "secret").await, "login");
    s
}

/// The server closes the connection in the middle of a message body.
pub async fn fault_disconnect_mid_body<T: Transport>(t: &T) {
    let mut steps = login_steps();
    steps.extend([
        Step::expect_line("RETR 1"),
        Step::Send(
            b"+OK 100 octets\r\nSubject: cut\r\n\r\nthe first line\r\nand half a li".to_vec(),
        ),
        Step::Close,
    ]);
    let server = script(steps);
    let mut s = scripted_login(t, &server, &fault_opts()).await;
    let started = Instant::now();
    let e = expect_err(retr_bytes(&mut s, n(1)).await, "retr cut short");
    assert_stream_failure(&e, "retr cut short");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let e = expect_err(s.stat().await, "stat after the disconnect");
    assert!(
        matches!(
            e,
            Error::Closed | Error::Protocol(_) | Error::Io(_) | Error::Usage(UsageError::Closed)
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
    let mut s = scripted_login(t, &server, &fault_opts()).await;
    let e = expect_err(
        retr_streamed(&mut s, n(1), 7).await,
        "streamed retr cut short",
    );
    assert_stream_failure(&e, "streamed retr cut short");
    drop(s);
    finish(server).1.expect("script followed");
}

/// A server that stops answering: the 1 s read limit fires.
pub async fn fault_stalled_server_times_out<T: Transport>(t: &T) {
    let mut steps = login_steps();
    steps.extend([
        Step::expect_line("STAT"),
        Step::Send(b"+OK 1".to_vec()),
        Step::Stall,
    ]);
    let server = script(steps);
    let opts = fault_opts().timeouts(timeouts(Duration::from_secs(1)));
    let mut s = scripted_login(t, &server, &opts).await;
    let started = Instant::now();
    let e = expect_err(s.stat().await, "stat against a stalled server");
    let took = started.elapsed();
    assert!(
        matches!(e, Error::Timeout(_)),
        "expected Timeout, got {e:?}"
    );
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
            .await
            .map(|_| ()),
        "connect to a server that never greets",
    );
    assert!(
        matches!(e, Error::Timeout(_)),
        "expected Timeout, got {e:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    finish(server).1.expect("script followed");
}

/// A greeting that is not POP3.
pub async fn fault_garbage_greeting<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line("220 smtp.example.org ESMTP"),
        Step::ExpectClose,
    ]);
    let e = expect_err(
        t.connect_plain("127.0.0.1", server.addr().port(), &fault_opts())
            .await
            .map(|_| ()),
        "connect with a garbage greeting",
    );
    assert!(
        matches!(e, Error::Protocol(ProtocolError::InvalidGreeting(_))),
        "{e:?}"
    );
    let (received, result) = finish(server);
    assert!(received.is_empty(), "client sent {}", show(&received));
    result.expect("client closed");
}

/// A `-ERR` greeting.
pub async fn fault_greeting_rejected<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line("-ERR [SYS/TEMP] go away"),
        Step::ExpectClose,
    ]);
    let e = expect_err(
        t.connect_plain("127.0.0.1", server.addr().port(), &fault_opts())
            .await
            .map(|_| ()),
        "connect with a -ERR greeting",
    );
    match e {
        Error::Protocol(ProtocolError::GreetingRejected(e)) => {
            assert_eq!(e.code, Some(ResponseCode::SysTemp));
        }
        other => panic!("expected GreetingRejected, got {other:?}"),
    }
    finish(server).1.expect("client closed");
}

const CAPA_WITHOUT_STLS: &[u8] = b"+OK\r\nTOP\r\nUSER\r\nUIDL\r\nSASL PLAIN\r\n.\r\n";
const CAPA_WITH_STLS: &[u8] = b"+OK\r\nTOP\r\nUSER\r\nSTLS\r\nUIDL\r\n.\r\n";

/// STLS not in CAPA: `StlsUnavailable`, and nothing but CAPA was sent.
pub async fn fault_stls_missing_from_capa<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::Send(CAPA_WITHOUT_STLS.to_vec()),
        Step::ExpectClose,
    ]);
    let e = expect_err(
        t.connect_starttls("127.0.0.1", server.addr().port(), &fault_opts())
            .await
            .map(|_| ()),
        "connect_starttls without STLS",
    );
    assert!(matches!(e, Error::StlsUnavailable), "{e:?}");
    let (received, result) = finish(server);
    assert_eq!(received, b"CAPA\r\n", "client sent {}", show(&received));
    assert!(credential_bytes(&received).is_empty());
    result.expect("client closed");
}

/// STLS refused: a server error, and no credentials sent.
pub async fn fault_stls_refused<T: Transport>(t: &T) {
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
            .await
            .map(|_| ()),
        "connect_starttls with STLS refused",
    );
    match e {
        Error::Server(e) => assert_eq!(e.code, Some(ResponseCode::SysTemp)),
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
pub async fn fault_data_after_stls<T: Transport>(t: &T) {
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
            .await
            .map(|_| ()),
        "connect_starttls with injected data",
    );
    assert!(
        matches!(e, Error::Protocol(ProtocolError::DataAfterStls)),
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
pub async fn fault_starttls_wrong_host<T: Transport>(t: &T) {
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
            .await
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

async fn implicit_tls_with<T: Transport>(t: &T, cert: &CertKey, what: &str) {
    let server = script(vec![
        Step::StartTls(rustls_server_config(cert)),
        Step::send_line("+OK ready"),
        Step::ExpectClose,
    ]);
    let started = Instant::now();
    let e = expect_err(
        t.connect_tls("localhost", server.addr().port(), &fault_opts())
            .await
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
pub async fn fault_tls_wrong_host<T: Transport>(t: &T) {
    implicit_tls_with(t, &TestPki::shared().wrong_host, "implicit TLS, wrong host").await;
}

/// Implicit TLS, certificate from an unknown CA.
pub async fn fault_tls_unknown_ca<T: Transport>(t: &T) {
    implicit_tls_with(t, &TestPki::shared().unknown_ca, "implicit TLS, unknown CA").await;
}

/// Implicit TLS, expired certificate.
pub async fn fault_tls_expired<T: Transport>(t: &T) {
    implicit_tls_with(t, &TestPki::shared().expired, "implicit TLS, expired").await;
}

/// Implicit TLS, self-signed certificate.
pub async fn fault_tls_self_signed<T: Transport>(t: &T) {
    implicit_tls_with(
        t,
        &TestPki::shared().self_signed,
        "implicit TLS, self-signed",
    )
    .await;
}

// ---------------------------------------------------------------------------
// One behaviour on every transport (where two implementations once drifted)
// ---------------------------------------------------------------------------

/// Right after `login` returns, `capabilities()` is already the post-login
/// `CAPA` that the core asked for by itself, with no other call in between:
/// against a scripted server whose two lists differ, and against Dovecot
/// (the cached list equals a fresh `CAPA`).
pub async fn capabilities_current_right_after_login<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line("+OK scripted server ready"),
        Step::expect_line("CAPA"),
        Step::Send(b"+OK\r\nUSER\r\nX-BEFORE-LOGIN\r\n.\r\n".to_vec()),
        Step::expect_line("USER alice"),
        Step::send_line("+OK"),
        Step::expect_line("PASS secret"),
        Step::send_line("+OK logged in"),
        Step::expect_line("CAPA"),
        Step::Send(b"+OK\r\nTOP\r\nPIPELINING\r\nX-AFTER-LOGIN\r\n.\r\n".to_vec()),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]);
    let port = server.addr().port();
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", port, &fault_opts()).await,
        "connect_plain",
    );
    let before = expect_ok(s.capa().await, "capa before login");
    assert!(
        before.user() && !before.top() && !before.pipelining(),
        "{before:?}"
    );
    expect_ok(s.login("alice", "secret").await, "login");
    let after = s
        .capabilities()
        .cloned()
        .expect("capabilities right after login");
    assert!(
        after.top() && after.pipelining() && !after.user(),
        "capabilities() right after login must be the post-login CAPA: {after:?}"
    );
    assert!(s.client().is_pipelining());
    expect_ok(s.quit().await, "quit");
    let (received, result) = finish(server);
    assert_eq!(
        received,
        b"CAPA\r\nUSER alice\r\nPASS secret\r\nCAPA\r\nQUIT\r\n",
        "{}",
        show(&received)
    );
    result.expect("script followed");

    let mb = new_user("capa-after-login");
    let mut s = tls(t).await;
    expect_ok(s.capa().await, "capa before login");
    expect_ok(s.login(mb.user(), mb.password()).await, "login");
    let cached = s.capabilities().cloned();
    let fresh = expect_ok(s.capa().await, "capa after login");
    assert_eq!(cached, Some(fresh), "capabilities() right after login");
    expect_ok(s.quit().await, "quit");
}

/// `stls` (the public method, not only `connect_starttls`) returns once the
/// core's post-TLS `CAPA` is in: `capabilities()` describes the encrypted
/// session at once, and again right after login.
pub async fn capabilities_current_right_after_stls<T: Transport>(t: &T) {
    let d = dovecot();
    let mb = new_user("capa-after-stls");
    let mut s = expect_ok(
        t.connect_plain(HOST, d.plain_addr().port(), &tls_opts())
            .await,
        "connect_plain",
    );
    assert!(!s.client().is_encrypted());
    expect_ok(s.start_tls(HOST).await, "stls");
    assert!(s.client().is_encrypted());
    let cached = s
        .capabilities()
        .cloned()
        .expect("capabilities right after stls");
    assert!(!cached.stls(), "STLS listed after the upgrade: {cached:?}");
    assert_eq!(cached, expect_ok(s.capa().await, "capa after stls"));
    expect_ok(s.login(mb.user(), mb.password()).await, "login");
    let cached = s.capabilities().cloned();
    assert_eq!(cached, Some(expect_ok(s.capa().await, "capa after login")));
    expect_ok(s.quit().await, "quit");
}

/// `quit` ends TLS properly: the server sees a `close_notify` before the TCP
/// close (implicit TLS).
pub async fn quit_sends_close_notify<T: Transport>(t: &T) {
    let server = script(vec![
        Step::StartTls(rustls_server_config(&TestPki::shared().server)),
        Step::send_line("+OK ready"),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
        Step::ExpectCloseNotify,
    ]);
    let s = expect_ok(
        t.connect_tls("localhost", server.addr().port(), &fault_opts())
            .await,
        "connect_tls",
    );
    expect_ok(s.quit().await, "quit");
    let (received, result) = finish(server);
    assert_eq!(received, b"QUIT\r\n", "{}", show(&received));
    result.expect("QUIT, then close_notify, then the close");
}

/// The same after `STLS`.
pub async fn quit_sends_close_notify_after_stls<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::Send(CAPA_WITH_STLS.to_vec()),
        Step::expect_line("STLS"),
        Step::send_line("+OK begin TLS"),
        Step::StartTls(rustls_server_config(&TestPki::shared().server)),
        Step::expect_line("CAPA"),
        Step::Send(b"+OK\r\nTOP\r\nUSER\r\n.\r\n".to_vec()),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
        Step::ExpectCloseNotify,
    ]);
    let s = expect_ok(
        t.connect_starttls("localhost", server.addr().port(), &fault_opts())
            .await,
        "connect_starttls",
    );
    expect_ok(s.quit().await, "quit");
    let (received, result) = finish(server);
    assert_eq!(
        received,
        b"CAPA\r\nSTLS\r\nCAPA\r\nQUIT\r\n",
        "{}",
        show(&received)
    );
    result.expect("QUIT, then close_notify, then the close");
}

/// `set_timeouts` returns `Result` and takes effect on the next read, on
/// every transport: a 3 s read limit lowered to 1 s fires after about 1 s.
pub async fn set_timeouts_returns_result<T: Transport>(t: &T) {
    let mut steps = login_steps();
    steps.extend([
        Step::expect_line("STAT"),
        Step::Send(b"+OK 1".to_vec()),
        Step::Stall,
    ]);
    let server = script(steps);
    let mut s = scripted_login(t, &server, &fault_opts()).await;
    let short = timeouts(Duration::from_secs(1));
    let result: Result<()> = s.set_timeouts(short);
    expect_ok(result, "set_timeouts");
    assert_eq!(s.timeouts(), short);
    let started = Instant::now();
    let e = expect_err(s.stat().await, "stat with the lowered limit");
    let took = started.elapsed();
    assert!(
        matches!(e, Error::Timeout(pop3_transport::Phase::Read)),
        "{e:?}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "the new 1 s limit fired after {took:?}"
    );
    drop(s);
    finish(server).1.expect("script followed");
}

/// A `MessageReader` whose message was cut short reports the failure and is
/// not finished afterwards (one answer on every transport); the session is
/// over.
pub async fn reader_not_finished_after_failure<T: Transport>(t: &T) {
    let mut steps = login_steps();
    steps.extend([
        Step::expect_line("RETR 1"),
        Step::Send(b"+OK\r\nSubject: cut\r\n\r\nsome text\r\n".to_vec()),
        Step::Close,
    ]);
    let server = script(steps);
    let mut s = scripted_login(t, &server, &fault_opts()).await;
    {
        let mut reader = expect_ok(s.retr(n(1)).await, "retr");
        assert!(!reader.is_finished());
        let mut buf = [0u8; 7];
        let mut got = Vec::new();
        let e = loop {
            match reader.read_chunk(&mut buf).await {
                Ok(0) => panic!("a cut message must not end cleanly: {}", show(&got)),
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(e) => break e,
            }
        };
        assert_stream_failure(&e, "read of a cut message");
        assert_bytes_eq(&got, b"Subject: cut\r\n\r\nsome text\r\n", "what arrived");
        assert!(!reader.is_finished(), "finished after a failure");
        assert!(
            reader.read_chunk(&mut buf).await.is_err(),
            "a read after the failure"
        );
        assert!(!reader.is_finished(), "finished after a second read");
    }
    assert!(s.is_poisoned());
    assert!(matches!(s.stat().await, Err(Error::Closed)));
    drop(s);
    finish(server).1.expect("script followed");
}

/// The same failure is the same error, with the same text, on every
/// transport (the texts below are the whole report).
pub async fn same_failure_same_report<T: Transport>(t: &T) {
    // -ERR to PASS: not fatal, the server's text as it is.
    let server = script(vec![
        Step::send_line("+OK scripted server ready"),
        Step::expect_line("USER alice"),
        Step::send_line("+OK"),
        Step::expect_line("PASS secret"),
        Step::send_line("-ERR [AUTH] wrong password"),
        Step::expect_line("STAT"),
        Step::send_line("+OK 1 10"),
        Step::ExpectClose,
    ]);
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", server.addr().port(), &fault_opts())
            .await,
        "connect_plain",
    );
    let e = expect_err(s.login("alice", "secret").await, "login refused");
    assert!(matches!(&e, Error::Server(_)) && !e.is_fatal(), "{e:?}");
    assert_eq!(e.to_string(), "server refused: [AUTH] wrong password");
    // STAT before a login is refused by the core, nothing sent.
    let e = expect_err(s.list().await, "list before login");
    assert!(matches!(&e, Error::Usage(_)) && !e.is_fatal(), "{e:?}");
    let usage = e.to_string();
    drop(s);
    let (received, _) = finish(server);
    assert_eq!(
        received,
        b"USER alice\r\nPASS secret\r\n",
        "{}",
        show(&received)
    );
    assert!(usage.starts_with("usage error: "), "{usage}");

    // The server hangs up instead of answering STAT.
    let mut steps = login_steps();
    steps.extend([Step::expect_line("STAT"), Step::Close]);
    let server = script(steps);
    let mut s = scripted_login(t, &server, &fault_opts()).await;
    let e = expect_err(s.stat().await, "stat, server gone");
    assert!(e.is_fatal(), "{e:?}");
    assert_eq!(
        e.to_string(),
        "protocol error: server closed the connection in the middle of a reply"
    );
    let e = expect_err(s.noop().await, "noop after the end");
    assert!(matches!(e, Error::Closed), "{e:?}");
    assert_eq!(e.to_string(), "the POP3 session has ended");
    drop(s);
    finish(server).1.expect("script followed");
}

/// A `MessageSink` that fails stops `retr_many` with `Error::Sink`: the rest
/// of the message is read and dropped, and the session goes on.
pub async fn sink_error_stops_retr_many_cleanly<T: Transport>(t: &T) {
    struct FullDisk(usize);
    impl MessageSink for FullDisk {
        fn on_chunk(&mut self, _: MsgNum, chunk: &[u8]) -> std::io::Result<()> {
            self.0 += chunk.len();
            Err(std::io::Error::other("disk full"))
        }
    }
    let mut body = b"+OK\r\n".to_vec();
    body.extend_from_slice(&big_message(50_000, 9));
    body.extend_from_slice(b".\r\n");
    let mut steps = login_steps();
    steps.extend([
        Step::expect_line("RETR 1"),
        Step::Send(body),
        Step::expect_line("NOOP"),
        Step::send_line("+OK"),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]);
    let server = script(steps);
    let mut s = scripted_login(t, &server, &fault_opts()).await;
    let mut sink = FullDisk(0);
    let e = expect_err(
        s.retr_many(&[n(1)], &mut sink).await,
        "retr_many into a full disk",
    );
    match &e {
        Error::Sink(io) => assert_eq!(io.to_string(), "disk full"),
        other => panic!("expected Error::Sink, got {other:?}"),
    }
    assert!(!e.is_fatal());
    assert!(sink.0 > 0);
    expect_ok(s.noop().await, "noop after the sink failed");
    expect_ok(s.quit().await, "quit");
    let (received, result) = finish(server);
    assert_eq!(
        received,
        b"USER alice\r\nPASS secret\r\nRETR 1\r\nNOOP\r\nQUIT\r\n",
        "{}",
        show(&received)
    );
    result.expect("script followed");
}

/// Login, then the core's `CAPA` (asked because several commands wait),
/// answered with PIPELINING.
fn pipelining_login_steps() -> Vec<Step> {
    let mut steps = login_steps();
    steps.extend([
        Step::expect_line("CAPA"),
        Step::Send(b"+OK\r\nPIPELINING\r\nUIDL\r\n.\r\n".to_vec()),
    ]);
    steps
}

/// `retr_many_and_quit` (chunks to a sink) and `retr_many_to_and_quit` (a
/// writer per message): the `RETR`s go out together (the script reads all
/// of them before it answers any, so waiting for a reply first would time
/// out), `QUIT` only once their replies are in (a server may drop unsent
/// replies when it reads `QUIT`), the bodies arrive whole, and the session
/// ends.
pub async fn retr_many_and_quit_after_the_replies<T: Transport>(t: &T) {
    for to_writers in [false, true] {
        let mut steps = pipelining_login_steps();
        steps.extend([
            Step::expect_line("RETR 1"),
            Step::expect_line("RETR 2"),
            Step::Send(b"+OK\r\nfirst\r\n.\r\n-ERR no such message\r\n".to_vec()),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ]);
        let server = script(steps);
        let s = scripted_login(t, &server, &fault_opts()).await;
        let msgs = [n(1), n(2)];
        let retrieval = if to_writers {
            let mut opened = Vec::new();
            let retrieval = s
                .retr_many_to_and_quit(&msgs, |msg| {
                    opened.push(msg);
                    Ok(Vec::new())
                })
                .await;
            // A writer is opened when its message starts: never for the refused one.
            assert_eq!(opened, [n(1)]);
            retrieval
        } else {
            let mut sink = Collect {
                msgs: msgs.to_vec(),
                messages: vec![Vec::new(); msgs.len()],
            };
            let retrieval = s.retr_many_and_quit(&msgs, &mut sink).await;
            assert_eq!(sink.messages[0], b"first\r\n");
            retrieval
        };
        let pop3_transport::BulkRetrieval {
            per_message: results,
            quit,
        } = expect_ok(retrieval, "retr_many_and_quit");
        assert!(matches!(results[0], Ok(7)), "{results:?}");
        assert!(matches!(results[1], Err(Error::Server(_))), "{results:?}");
        expect_ok(quit, "QUIT");
        let (received, result) = finish(server);
        assert_eq!(
            received,
            b"USER alice\r\nPASS secret\r\nCAPA\r\nRETR 1\r\nRETR 2\r\nQUIT\r\n",
            "{}",
            show(&received)
        );
        result.expect("script followed");
    }
}

/// `dele_many_and_quit`: the `DELE`s in one flight, then the `QUIT` that
/// commits them once their replies are in; one result per `DELE` and
/// `QUIT`'s own, which tells whether the server committed.
pub async fn dele_many_and_quit_after_the_replies<T: Transport>(t: &T) {
    let mut steps = pipelining_login_steps();
    steps.extend([
        Step::expect_line("DELE 1"),
        Step::expect_line("DELE 2"),
        Step::Send(b"+OK\r\n-ERR already deleted\r\n".to_vec()),
        Step::expect_line("QUIT"),
        Step::send_line("-ERR [SYS/TEMP] not committed"),
    ]);
    let server = script(steps);
    let s = scripted_login(t, &server, &fault_opts()).await;
    let pop3_transport::BulkDeletion {
        per_message: results,
        quit,
    } = expect_ok(
        s.dele_many_and_quit(&[n(1), n(2)]).await,
        "dele_many_and_quit",
    );
    assert!(results[0].is_ok(), "{results:?}");
    assert!(matches!(results[1], Err(Error::Server(_))), "{results:?}");
    assert!(matches!(quit, Err(Error::Server(_))), "{quit:?}");
    let (received, result) = finish(server);
    assert_eq!(
        received,
        b"USER alice\r\nPASS secret\r\nCAPA\r\nDELE 1\r\nDELE 2\r\nQUIT\r\n",
        "{}",
        show(&received)
    );
    result.expect("script followed");
}

/// The public `stls` method on a server whose `CAPA` lacks `STLS`:
/// `StlsUnavailable`, not fatal, nothing but `CAPA` sent; asked again with
/// the capabilities known, nothing at all is sent.
pub async fn fault_stls_method_missing_from_capa<T: Transport>(t: &T) {
    let server = script(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::Send(CAPA_WITHOUT_STLS.to_vec()),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]);
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", server.addr().port(), &fault_opts())
            .await,
        "connect_plain",
    );
    for attempt in ["first stls", "second stls"] {
        let e = expect_err(s.start_tls("localhost").await, attempt);
        assert!(matches!(e, Error::StlsUnavailable), "{attempt}: {e:?}");
        assert!(!e.is_fatal());
        assert!(!s.is_poisoned() && !s.client().is_encrypted());
    }
    expect_ok(s.quit().await, "quit");
    let (received, result) = finish(server);
    assert_eq!(received, b"CAPA\r\nQUIT\r\n", "{}", show(&received));
    result.expect("script followed");
}

// ---------------------------------------------------------------------------
// Through a SOCKS5 proxy
// ---------------------------------------------------------------------------

/// How a connection is secured: the three connect functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `connect_plain`.
    Plain,
    /// `connect_tls` (implicit TLS).
    ImplicitTls,
    /// `connect_starttls`.
    Stls,
}

impl Mode {
    /// All three.
    pub const ALL: [Mode; 3] = [Mode::Plain, Mode::ImplicitTls, Mode::Stls];
}

/// Connects with the connect function of `mode`.
pub async fn connect_in<T: Transport>(
    t: &T,
    mode: Mode,
    host: &str,
    port: u16,
    options: &Options,
) -> Result<Conn<T>> {
    match mode {
        Mode::Plain => t.connect_plain(host, port, options).await,
        Mode::ImplicitTls => t.connect_tls(host, port, options).await,
        Mode::Stls => t.connect_starttls(host, port, options).await,
    }
}

/// Parses a proxy URL of the scripted proxy.
pub fn proxy_url(url: &str) -> pop3_transport::socks5::Socks5Proxy {
    match url.parse() {
        Ok(proxy) => proxy,
        Err(e) => panic!("{url}: {e}"),
    }
}

/// Proxy credentials as the scripted proxy requires them and as the URL
/// gives them: none, a user name and password, and a user name alone (sent
/// with an empty password, as Tor's per-user circuits use it).
const PROXY_LOGINS: [Option<(&str, Option<&str>)>; 3] = [
    None,
    Some(("proxy-user", Some("proxy-pw:@%"))),
    Some(("tor-circuit-7", None)),
];

/// Logs in to Dovecot by the name `localhost` through the scripted proxy in
/// `mode`, once per entry of [`PROXY_LOGINS`]: the proxy receives the name
/// unresolved (address type 3), the methods offered match the credentials,
/// and they arrive intact; the session is encrypted exactly when `mode` says
/// so, and a message comes back byte-exact.
async fn dovecot_through_proxy<T: Transport>(t: &T, mode: Mode) {
    let d = dovecot();
    let port = match mode {
        Mode::ImplicitTls => d.tls_addr().port(),
        Mode::Plain | Mode::Stls => d.plain_addr().port(),
    };
    for login in PROXY_LOGINS {
        let what = format!("{mode:?} through the proxy, proxy login {login:?}");
        let password = login.map(|(_, password)| password.unwrap_or(""));
        let config = match login {
            None => Socks5Config::relay(),
            Some((user, _)) => Socks5Config::relay().require_auth(user, password.unwrap_or("")),
        };
        let proxy = Socks5Server::start(config);
        let url = match login {
            None => format!("socks5://{}", proxy.addr()),
            Some((user, None)) => format!("socks5://{user}@{}", proxy.addr()),
            Some((user, Some(password))) => {
                // `:`, `@` and `%` are escaped in a URL's password.
                let escaped = password
                    .replace('%', "%25")
                    .replace(':', "%3A")
                    .replace('@', "%40");
                format!("socks5h://{user}:{escaped}@{}", proxy.addr())
            }
        };
        let options = tls_opts()
            .allow_plaintext_credentials(mode == Mode::Plain)
            .proxy(proxy_url(&url));
        let mb = new_user("proxy");
        let body = b"Subject: proxied\r\n\r\nthrough SOCKS5\r\n";
        mb.add_message(body);
        let mut s = match connect_in(t, mode, HOST, port, &options).await {
            Ok(s) => s,
            Err(e) => panic!("{what}: {e:?}\n{}", d.log()),
        };
        assert!(
            s.greeting().text.as_str().contains("Dovecot"),
            "{what}: {:?}",
            s.greeting()
        );
        assert_eq!(s.client().is_encrypted(), mode != Mode::Plain, "{what}");
        expect_ok(s.login(mb.user(), mb.password()).await, &what);
        assert_eq!(expect_ok(retr_bytes(&mut s, n(1)).await, &what), body);
        expect_ok(s.quit().await, &what);

        let requests = proxy.requests();
        assert_eq!(requests.len(), 1, "{what}: {requests:?}");
        let request = &requests[0];
        assert_eq!(
            (request.address_type, request.host.as_str(), request.port),
            (3, HOST, port),
            "{what}: the proxy is sent the name, to resolve it itself"
        );
        let (methods, credentials) = match (login, password) {
            (Some((user, _)), Some(password)) => {
                (vec![0, 2], Some((user.to_owned(), password.to_owned())))
            }
            _ => (vec![0], None),
        };
        assert_eq!(request.methods, methods, "{what}: methods offered");
        assert_eq!(request.credentials, credentials, "{what}: credentials");
    }
}

/// Plain POP3 to Dovecot through a SOCKS5 proxy, with and without proxy
/// authentication.
pub async fn proxy_plain_login<T: Transport>(t: &T) {
    dovecot_through_proxy(t, Mode::Plain).await;
}

/// Implicit TLS to Dovecot through a SOCKS5 proxy, with and without proxy
/// authentication.
pub async fn proxy_implicit_tls_login<T: Transport>(t: &T) {
    dovecot_through_proxy(t, Mode::ImplicitTls).await;
}

/// STLS to Dovecot through a SOCKS5 proxy, with and without proxy
/// authentication.
pub async fn proxy_starttls_login<T: Transport>(t: &T) {
    dovecot_through_proxy(t, Mode::Stls).await;
}

/// Through the proxy to `wrong.example`, a name only the proxy can resolve
/// (`.example` is reserved), whose server presents a certificate for that
/// name alone, not for the proxy's `127.0.0.1`: the connection succeeds in
/// implicit TLS and with STLS, so the name went to the proxy unresolved and
/// TLS verified the mail server's name, not the proxy's.
pub async fn proxy_tls_names_the_mail_server<T: Transport>(t: &T) {
    const NAME: &str = "wrong.example";
    let cert = &TestPki::shared().wrong_host;
    for mode in [Mode::ImplicitTls, Mode::Stls] {
        let what = format!("{mode:?} to {NAME} through the proxy");
        let mut steps = match mode {
            Mode::ImplicitTls => vec![
                Step::StartTls(rustls_server_config(cert)),
                Step::send_line("+OK ready"),
            ],
            _ => vec![
                Step::send_line("+OK ready"),
                Step::expect_line("CAPA"),
                Step::Send(CAPA_WITH_STLS.to_vec()),
                Step::expect_line("STLS"),
                Step::send_line("+OK begin TLS"),
                Step::StartTls(rustls_server_config(cert)),
                Step::expect_line("CAPA"),
                Step::Send(b"+OK\r\nUSER\r\n.\r\n".to_vec()),
            ],
        };
        steps.extend([
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
            Step::Close,
        ]);
        let server = script(steps);
        let proxy = Socks5Server::start(
            Socks5Config::relay().resolve(NAME, std::net::Ipv4Addr::LOCALHOST.into()),
        );
        let options = fault_opts().proxy(proxy_url(&proxy.url(None)));
        let s = expect_ok(
            connect_in(t, mode, NAME, server.addr().port(), &options).await,
            &what,
        );
        assert!(s.client().is_encrypted(), "{what}");
        expect_ok(s.quit().await, &what);
        let request = &proxy.requests()[0];
        assert_eq!(
            (request.address_type, request.host.as_str()),
            (3, NAME),
            "{what}"
        );
        let (_, result) = finish(server);
        result.unwrap_or_else(|e| panic!("{what}: script not followed: {e}"));
    }
}
