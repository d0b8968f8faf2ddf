//! Scripted profiles of the POP3 services people actually use: Microsoft 365
//! (Outlook.com / Exchange Online), Gmail, and a small Courier-like server.
//!
//! Unlike [`crate::scripted`], which follows one fixed script, a
//! [`ProviderServer`] answers by verb the way the real service does, holds a
//! mailbox shared by its sessions and accepts any number of connections (up
//! to [`MAX_SESSIONS`]) until it is finished or dropped. Each profile is
//! built from the service's published behaviour:
//!
//! | | [`Profile::Microsoft365`] | [`Profile::Gmail`] | [`Profile::Courier`] |
//! |---|---|---|---|
//! | greeting | Exchange banner with a base64 server id | `Gpop ready for requests from <ip> <id>` | `Hello there.` |
//! | `CAPA` | `TOP`, `UIDL`, `SASL PLAIN XOAUTH2`, `USER` | `USER`, `RESP-CODES`, `EXPIRE 0`, `LOGIN-DELAY 300`, `TOP`, `UIDL`, `X-GOOGLE-RICO`, `SASL PLAIN XOAUTH2 OAUTHBEARER` | `TOP`, `USER`, `LOGIN-DELAY 10`, `UIDL`, `IMPLEMENTATION` |
//! | login | two-step `AUTH XOAUTH2` only (basic auth off: `USER`/`PASS` and `PLAIN` refused) | `XOAUTH2` and `OAUTHBEARER`, inline or two-step; `USER`/`PASS` and `PLAIN` with the app password; `recent:` user names | `USER`/`PASS` |
//! | inline `AUTH XOAUTH2 <base64>` | `-ERR Protocol error. Connection is closed. 10`, then closes | accepted | — |
//! | bad token | `-ERR` | a `+ <base64 JSON>` challenge (status 400, scope `https://mail.google.com/`), the client's acknowledgement, then `-ERR [AUTH] ...` | — |
//! | UIDLs | about 48 base64 characters | `GmailId` and 16 hex digits | short |
//! | `LOGIN-DELAY` | — | advertised, not enforced | advertised, not enforced |
//! | per session | the whole mailbox | at most [`GMAIL_WINDOW`] messages ([`Provider::window`]); a message retrieved in a session that ended with `QUIT` is not offered again, except to a `recent:` name | the whole mailbox |
//!
//! [`Provider::refuse_login_delay`] makes every login that would succeed end
//! in `-ERR [LOGIN-DELAY] ...` instead (a server that enforces the delay).
//!
//! Every session runs on its own thread with hard limits: each read waits at
//! most [`Provider::timeout`] (10 s by default) and a session lasts at most
//! [`SESSION_LIMIT`]. What each session received, line by line (secrets
//! included: the tests check them), and what the client did wrong are in its
//! [`SessionLog`]; [`ProviderServer::finish`] returns them all.
//!
//! ```no_run
//! use test_support::providers::Provider;
//!
//! let server = Provider::gmail("alice@gmail.com", "ya29.token")
//!     .messages(vec![b"Subject: hi\r\n\r\nhello\r\n".to_vec()])
//!     .start();
//! // ... connect over implicit TLS to server.addr(), trusting TestPki's CA ...
//! let logs = server.finish();
//! assert!(logs[0].authenticated && logs[0].violations.is_empty());
//! ```

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::{ServerConnection, StreamOwned};

use crate::pki::{rustls_server_config, TestPki};

/// Sessions a server accepts before it stops listening.
pub const MAX_SESSIONS: usize = 64;

/// The longest a session may last, whatever the client does.
pub const SESSION_LIMIT: Duration = Duration::from_secs(60);

/// The longest client line accepted (a 16 KiB token is about 22 KiB of
/// base64; a 256 KiB one still fits).
const MAX_LINE: usize = 1 << 20;

/// The scope Gmail names in its refusal of a token.
pub const GMAIL_SCOPE: &str = "https://mail.google.com/";

/// The JSON report Gmail sends (base64-encoded) in the challenge that
/// refuses a token.
pub const GMAIL_REFUSAL_JSON: &str =
    r#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#;

/// How many messages Gmail offers in one session: about 250, the oldest
/// it has not handed out yet; the next session offers the next ones.
pub const GMAIL_WINDOW: usize = 250;

/// Gmail's final line after a refused token has been acknowledged.
pub const GMAIL_REFUSAL_ERR: &str = "-ERR [AUTH] Invalid credentials (Failure)";

/// Microsoft 365's answer to `AUTH XOAUTH2 <initial response>`, after which
/// it closes the connection.
pub const MICROSOFT_INLINE_ERR: &str = "-ERR Protocol error. Connection is closed. 10";

/// Which service a [`ProviderServer`] behaves like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Exchange Online / Outlook.com: OAuth only, two-step `AUTH XOAUTH2`.
    Microsoft365,
    /// Gmail: `XOAUTH2`, `OAUTHBEARER`, app passwords, `recent:` names.
    Gmail,
    /// A small Courier-like server: `USER`/`PASS`, `LOGIN-DELAY 10`.
    Courier,
}

/// The configuration of a provider server; [`Provider::start`] runs it.
#[derive(Debug, Clone)]
pub struct Provider {
    /// The service imitated.
    pub profile: Profile,
    /// The account (an e-mail address). Gmail also accepts it with the
    /// `recent:` prefix.
    pub user: String,
    /// The OAuth access token that logs in (Microsoft 365, Gmail).
    pub token: String,
    /// The password that logs in with `USER`/`PASS` or `AUTH PLAIN` (Gmail's
    /// app password, Courier's password); `None`: no password works.
    pub password: Option<String>,
    /// The mailbox, message 1 first. Messages should end in CRLF (one is
    /// added on the wire otherwise).
    pub messages: Vec<Vec<u8>>,
    /// Implicit TLS with [`TestPki::shared`]'s server certificate (the
    /// default), or plain TCP.
    pub tls: bool,
    /// Refuse every login that would succeed with `-ERR [LOGIN-DELAY] ...`.
    pub refuse_login_delay: bool,
    /// The limit of every read and write. Default 10 s.
    pub timeout: Duration,
    /// The most messages one session lists (Gmail: [`GMAIL_WINDOW`]);
    /// `None`: the whole mailbox.
    pub window: Option<usize>,
}

impl Provider {
    fn new(profile: Profile, user: &str) -> Provider {
        Provider {
            profile,
            user: user.to_string(),
            token: String::new(),
            password: None,
            messages: Vec::new(),
            tls: true,
            refuse_login_delay: false,
            timeout: Duration::from_secs(10),
            window: (profile == Profile::Gmail).then_some(GMAIL_WINDOW),
        }
    }

    /// Microsoft 365 for `user`, where `token` is the valid access token.
    pub fn microsoft365(user: &str, token: &str) -> Provider {
        Provider {
            token: token.to_string(),
            ..Provider::new(Profile::Microsoft365, user)
        }
    }

    /// Gmail for `user`, where `token` is the valid access token.
    pub fn gmail(user: &str, token: &str) -> Provider {
        Provider {
            token: token.to_string(),
            ..Provider::new(Profile::Gmail, user)
        }
    }

    /// The Courier-like server for `user` with `password`.
    pub fn courier(user: &str, password: &str) -> Provider {
        Provider {
            password: Some(password.to_string()),
            ..Provider::new(Profile::Courier, user)
        }
    }

    /// With these messages in the mailbox.
    pub fn messages(mut self, messages: Vec<Vec<u8>>) -> Provider {
        self.messages = messages;
        self
    }

    /// With a password (Gmail: an app password).
    pub fn password(mut self, password: &str) -> Provider {
        self.password = Some(password.to_string());
        self
    }

    /// Plain TCP instead of implicit TLS.
    pub fn plain(mut self) -> Provider {
        self.tls = false;
        self
    }

    /// Every login that would succeed is refused with `-ERR [LOGIN-DELAY]`.
    pub fn refuse_login_delay(mut self) -> Provider {
        self.refuse_login_delay = true;
        self
    }

    /// At most `messages` per session (a smaller Gmail window keeps tests
    /// fast).
    pub fn window(mut self, messages: usize) -> Provider {
        self.window = Some(messages);
        self
    }

    /// Every session lists the whole mailbox.
    pub fn without_window(mut self) -> Provider {
        self.window = None;
        self
    }

    /// With a different read and write limit.
    pub fn timeout(mut self, timeout: Duration) -> Provider {
        self.timeout = timeout;
        self
    }

    /// Binds `127.0.0.1:0` and starts accepting sessions.
    pub fn start(self) -> ProviderServer {
        ProviderServer::start(self)
    }
}

/// What one session saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionLog {
    /// Every line the client sent, without its CRLF (lossy UTF-8), secrets
    /// and SASL responses included.
    pub lines: Vec<String>,
    /// What the client did that the real service would not accept or that
    /// breaks the protocol (an inline XOAUTH2 at Microsoft 365, a missing or
    /// wrong acknowledgement of Gmail's refusal, a malformed SASL message, a
    /// timeout, ...). Empty for a well-behaved client.
    pub violations: Vec<String>,
    /// The SASL mechanism (upper case) or `USER` of each login attempt, and
    /// whether its first message came inline (`true`) or after a
    /// continuation.
    pub logins: Vec<(String, bool)>,
    /// The session reached the TRANSACTION state.
    pub authenticated: bool,
    /// The client sent `QUIT`.
    pub quit: bool,
    /// The server closed the session without a `QUIT` (Microsoft 365's
    /// protocol error, a violation or a limit).
    pub closed_by_server: bool,
}

type Mailbox = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

struct Shared {
    provider: Provider,
    mailbox: Mailbox,
    /// Gmail: the UIDs retrieved in a session that ended with `QUIT`, no
    /// longer offered (except to a `recent:` name).
    handed_out: Mutex<HashSet<String>>,
    logs: Mutex<Vec<SessionLog>>,
    stop: AtomicBool,
    sessions: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running provider server; see the [module docs](self).
pub struct ProviderServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ProviderServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderServer")
            .field("addr", &self.addr)
            .field("profile", &self.shared.provider.profile)
            .finish()
    }
}

impl ProviderServer {
    /// Starts `provider` (see [`Provider::start`]).
    pub fn start(provider: Provider) -> ProviderServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local_addr");
        let mailbox = provider
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| (uidl_for(provider.profile, i), m.clone()))
            .collect();
        let shared = Arc::new(Shared {
            provider,
            mailbox: Arc::new(Mutex::new(mailbox)),
            handed_out: Mutex::new(HashSet::new()),
            logs: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            sessions: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name(format!("provider-pop3-{}", addr.port()))
            .spawn(move || accept_loop(&listener, &s))
            .expect("spawn provider acceptor");
        ProviderServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The address to connect to (127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The profile served.
    pub fn profile(&self) -> Profile {
        self.shared.provider.profile
    }

    /// The UIDL of each message still in the mailbox, message 1 first.
    pub fn uidls(&self) -> Vec<String> {
        lock(&self.shared.mailbox)
            .iter()
            .map(|(u, _)| u.clone())
            .collect()
    }

    /// The messages still in the mailbox (deletions take effect at `QUIT`).
    pub fn mailbox(&self) -> Vec<Vec<u8>> {
        lock(&self.shared.mailbox)
            .iter()
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// The logs of the sessions so far, in the order they connected
    /// (sessions still running show what they have seen).
    pub fn sessions(&self) -> Vec<SessionLog> {
        lock(&self.shared.logs).clone()
    }

    /// Stops accepting, waits for the running sessions to end (each is
    /// bounded by the read limit and [`SESSION_LIMIT`]), and returns every
    /// session's log.
    pub fn finish(mut self) -> Vec<SessionLog> {
        self.stop();
        let handles: Vec<_> = lock(&self.shared.sessions).drain(..).collect();
        for h in handles {
            let _ = h.join();
        }
        self.sessions()
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

impl Drop for ProviderServer {
    /// Stops accepting; running sessions end on their own limits.
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut accepted = 0;
    while !shared.stop.load(Ordering::SeqCst) && accepted < MAX_SESSIONS {
        match listener.accept() {
            Ok((stream, peer)) => {
                accepted += 1;
                let index = {
                    let mut logs = lock(&shared.logs);
                    logs.push(SessionLog::default());
                    logs.len() - 1
                };
                let s = Arc::clone(shared);
                let handle = thread::Builder::new()
                    .name(format!("provider-session-{index}"))
                    .spawn(move || run_session(stream, peer, index, &s))
                    .expect("spawn provider session");
                lock(&shared.sessions).push(handle);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

// ---------------------------------------------------------------------------
// UIDLs, ids and base64
// ---------------------------------------------------------------------------

/// A deterministic 64-bit mix (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn pseudo_bytes(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .flat_map(|i| mix(seed.wrapping_mul(1000).wrapping_add(i)).to_le_bytes())
        .take(len)
        .collect()
}

/// The UIDL the profile gives message `index` (0-based).
pub fn uidl_for(profile: Profile, index: usize) -> String {
    let seed = index as u64 + 1;
    match profile {
        // Exchange: long base64 item ids, here 48 characters.
        Profile::Microsoft365 => format!("AAQkAD{}", base64_encode(&pseudo_bytes(seed, 31))),
        Profile::Gmail => format!("GmailId{:016x}", mix(seed) | (1 << 60)),
        Profile::Courier => format!("{:08X}.{:04}", 0x6550_0000 + seed * 17, seed),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Strict standard base64 with padding; `None` if malformed.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (ci, chunk) in bytes.chunks(4).enumerate() {
        let last = ci == bytes.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            let v = B64.iter().position(|&x| x == c)? as u32;
            n = (n << 6) | v;
        }
        n <<= 6 * pad as u32;
        let got = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&got[..3 - pad]);
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// The connection
// ---------------------------------------------------------------------------

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Why a session ended early.
enum End {
    /// The client closed the connection.
    Eof,
    /// A read or write failed or timed out; the text says how.
    Broken(String),
}

struct Session<'a> {
    stream: Stream,
    pending: Vec<u8>,
    shared: &'a Shared,
    index: usize,
    started: Instant,
}

impl Session<'_> {
    fn log(&self, f: impl FnOnce(&mut SessionLog)) {
        if let Some(log) = lock(&self.shared.logs).get_mut(self.index) {
            f(log);
        }
    }

    fn violation(&self, what: impl Into<String>) {
        let what = what.into();
        self.log(|l| l.violations.push(what));
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), End> {
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .map_err(|e| End::Broken(format!("write failed: {e}")))
    }

    fn line(&mut self, line: &str) -> Result<(), End> {
        let mut v = Vec::with_capacity(line.len() + 2);
        v.extend_from_slice(line.as_bytes());
        v.extend_from_slice(b"\r\n");
        self.send(&v)
    }

    /// Reads one client line (without CRLF; a bare LF ends a line too) and
    /// logs it.
    fn read_line(&mut self) -> Result<String, End> {
        let timeout = self.shared.provider.timeout;
        loop {
            if let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                let text = String::from_utf8_lossy(&line).into_owned();
                let logged = text.clone();
                self.log(|l| l.lines.push(logged));
                return Ok(text);
            }
            if self.pending.len() > MAX_LINE {
                return Err(End::Broken(format!("a line longer than {MAX_LINE} bytes")));
            }
            let left = SESSION_LIMIT.saturating_sub(self.started.elapsed());
            if left.is_zero() {
                return Err(End::Broken(format!(
                    "session longer than {SESSION_LIMIT:?}"
                )));
            }
            let wait = timeout.min(left).max(Duration::from_millis(1));
            let _ = self.stream.tcp().set_read_timeout(Some(wait));
            let mut buf = [0u8; 16 * 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(End::Eof),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(End::Broken(format!(
                        "timed out waiting {wait:?} for a line from the client"
                    )));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::UnexpectedEof
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Err(End::Eof)
                }
                Err(e) => return Err(End::Broken(format!("read failed: {e}"))),
            }
        }
    }

    /// Ends the session from the server's side: TLS `close_notify`, then
    /// whatever the client still sends is drained briefly so that the close
    /// is a FIN rather than a reset.
    fn close(mut self) {
        if let Stream::Tls(s) = &mut self.stream {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        let _ = self.stream.tcp().shutdown(Shutdown::Write);
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let _ = self
                .stream
                .tcp()
                .set_read_timeout(Some(Duration::from_millis(200)));
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
    }
}

fn run_session(tcp: TcpStream, peer: SocketAddr, index: usize, shared: &Shared) {
    let provider = &shared.provider;
    let setup = (|| -> io::Result<Stream> {
        tcp.set_nodelay(true)?;
        tcp.set_write_timeout(Some(provider.timeout))?;
        tcp.set_read_timeout(Some(provider.timeout))?;
        if !provider.tls {
            return Ok(Stream::Plain(tcp));
        }
        let conn = ServerConnection::new(rustls_server_config(&TestPki::shared().server))
            .map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(Stream::Tls(Box::new(tls)))
    })();
    let stream = match setup {
        Ok(s) => s,
        Err(e) => {
            if let Some(log) = lock(&shared.logs).get_mut(index) {
                log.violations.push(format!("TLS handshake failed: {e}"));
            }
            return;
        }
    };
    let mut session = Session {
        stream,
        pending: Vec::new(),
        shared,
        index,
        started: Instant::now(),
    };
    let mut state = State::new(provider.profile);
    match converse(&mut session, &mut state, peer) {
        Ok(Next::Quit) => {
            session.log(|l| l.quit = true);
            session.close();
        }
        Ok(Next::Close | Next::Continue) => {
            session.log(|l| l.closed_by_server = true);
            session.close();
        }
        Err(End::Eof) => {}
        Err(End::Broken(why)) => {
            session.violation(why);
            session.log(|l| l.closed_by_server = true);
            session.close();
        }
    }
}

// ---------------------------------------------------------------------------
// The conversation
// ---------------------------------------------------------------------------

/// How a session goes on after a command.
enum Next {
    Continue,
    Quit,
    Close,
}

struct State {
    profile: Profile,
    /// The name given with `USER`, waiting for `PASS`.
    user: Option<String>,
    /// Once logged in: the messages as numbered at login, deleted or not.
    drop: Option<Vec<(String, Vec<u8>, bool)>>,
    /// Logged in with a `recent:` name (Gmail).
    recent: bool,
    /// The UIDs retrieved in this session.
    retrieved: HashSet<String>,
}

impl State {
    fn new(profile: Profile) -> State {
        State {
            profile,
            user: None,
            drop: None,
            recent: false,
            retrieved: HashSet::new(),
        }
    }
}

fn greeting(profile: Profile, peer: SocketAddr) -> String {
    match profile {
        Profile::Microsoft365 => {
            // Exchange names its front end in UTF-16LE base64.
            let host: Vec<u8> = "SN6PR01CA0012.namprd04.prod.outlook.com"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect();
            format!(
                "+OK The Microsoft Exchange POP3 service is ready. [{}]",
                base64_encode(&host)
            )
        }
        Profile::Gmail => format!(
            "+OK Gpop ready for requests from {} {}mb{}pop",
            peer.ip(),
            base64_encode(&pseudo_bytes(u64::from(peer.port()), 9)).replace(['+', '/'], "x"),
            peer.port() % 97
        ),
        Profile::Courier => "+OK Hello there.".to_string(),
    }
}

fn capabilities(profile: Profile) -> &'static [&'static str] {
    match profile {
        Profile::Microsoft365 => &["TOP", "UIDL", "SASL PLAIN XOAUTH2", "USER"],
        Profile::Gmail => &[
            "USER",
            "RESP-CODES",
            "EXPIRE 0",
            "LOGIN-DELAY 300",
            "TOP",
            "UIDL",
            "X-GOOGLE-RICO",
            "SASL PLAIN XOAUTH2 OAUTHBEARER",
        ],
        Profile::Courier => &[
            "TOP",
            "USER",
            "LOGIN-DELAY 10",
            "PIPELINING",
            "UIDL",
            "IMPLEMENTATION Courier Mail Server",
        ],
    }
}

fn mechanisms(profile: Profile) -> &'static [&'static str] {
    match profile {
        Profile::Microsoft365 => &["PLAIN", "XOAUTH2"],
        Profile::Gmail => &["PLAIN", "XOAUTH2", "OAUTHBEARER"],
        Profile::Courier => &[],
    }
}

fn ok_text(profile: Profile) -> &'static str {
    match profile {
        Profile::Microsoft365 => "+OK User successfully authenticated.",
        Profile::Gmail => "+OK Welcome.",
        Profile::Courier => "+OK logged in.",
    }
}

fn bad_command(profile: Profile) -> &'static str {
    match profile {
        Profile::Microsoft365 => "-ERR Protocol error. 14",
        Profile::Gmail => "-ERR bad command",
        Profile::Courier => "-ERR Invalid command. Please check the command syntax and try again.",
    }
}

fn converse(s: &mut Session<'_>, st: &mut State, peer: SocketAddr) -> Result<Next, End> {
    s.line(&greeting(st.profile, peer))?;
    loop {
        let line = s.read_line()?;
        let (verb, rest) = match line.split_once(' ') {
            Some((v, r)) => (v.to_ascii_uppercase(), Some(r)),
            None => (line.to_ascii_uppercase(), None),
        };
        let next = if st.drop.is_none() {
            authorization(s, st, &verb, rest)?
        } else {
            transaction(s, st, &verb, rest)?
        };
        match next {
            Next::Continue => {}
            other => return Ok(other),
        }
    }
}

fn capa(s: &mut Session<'_>, profile: Profile) -> Result<(), End> {
    let mut out = String::from("+OK Capability list follows\r\n");
    if profile == Profile::Courier {
        out = String::from("+OK Here's what I can do:\r\n");
    }
    for c in capabilities(profile) {
        out.push_str(c);
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    s.send(out.as_bytes())
}

/// The account the name logs in to, if any: the address itself, and at
/// Gmail also `recent:` + the address.
fn same_user(profile: Profile, given: &str, user: &str) -> bool {
    let given = match profile {
        Profile::Gmail => given.strip_prefix("recent:").unwrap_or(given),
        _ => given,
    };
    given.eq_ignore_ascii_case(user)
}

fn authorization(
    s: &mut Session<'_>,
    st: &mut State,
    verb: &str,
    rest: Option<&str>,
) -> Result<Next, End> {
    let profile = st.profile;
    let provider = &s.shared.provider;
    match verb {
        "CAPA" => capa(s, profile)?,
        "QUIT" => {
            s.line(match profile {
                Profile::Microsoft365 => "+OK Microsoft Exchange Server POP3 server signing off.",
                Profile::Gmail => "+OK Farewell.",
                Profile::Courier => "+OK Bye-bye.",
            })?;
            return Ok(Next::Quit);
        }
        "NOOP" if profile != Profile::Courier => s.line("+OK")?,
        "USER" => {
            s.log(|l| l.logins.push(("USER".to_string(), true)));
            match rest {
                Some(name) if !name.is_empty() => {
                    st.user = Some(name.to_string());
                    s.line(match profile {
                        Profile::Courier => "+OK Password required.",
                        Profile::Gmail => "+OK send PASS",
                        Profile::Microsoft365 => "+OK",
                    })?;
                }
                _ => s.line("-ERR USER needs a name")?,
            }
        }
        "PASS" => {
            let Some(user) = st.user.take() else {
                s.line("-ERR USER first")?;
                return Ok(Next::Continue);
            };
            let good = profile != Profile::Microsoft365
                && same_user(profile, &user, &provider.user)
                && provider.password.as_deref() == rest;
            if good {
                return login_succeeded(s, st, &user);
            }
            s.line(match profile {
                Profile::Microsoft365 => "-ERR Logon failure: unknown user name or bad password.",
                Profile::Gmail => "-ERR [AUTH] Username and password not accepted.",
                Profile::Courier => "-ERR Login failed.",
            })?;
        }
        "AUTH" => return auth(s, st, rest),
        _ => s.line(bad_command(profile))?,
    }
    Ok(Next::Continue)
}

fn login_succeeded(s: &mut Session<'_>, st: &mut State, user: &str) -> Result<Next, End> {
    if s.shared.provider.refuse_login_delay {
        s.line(match st.profile {
            Profile::Gmail => "-ERR [LOGIN-DELAY] Web login required or too many logins; wait 300 seconds and try again.",
            Profile::Microsoft365 => "-ERR [LOGIN-DELAY] Too many logins in a short time; try again later.",
            Profile::Courier => "-ERR [LOGIN-DELAY] You logged in less than 10 seconds ago. Please wait before trying again.",
        })?;
        return Ok(Next::Continue);
    }
    st.recent = st.profile == Profile::Gmail
        && user
            .get(..7)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("recent:"));
    // Gmail offers the oldest messages it has not handed out yet, a window
    // at a time; a `recent:` name gets them whether handed out or not.
    let handed_out = lock(&s.shared.handed_out);
    let offered =
        |uid: &String| st.recent || st.profile != Profile::Gmail || !handed_out.contains(uid);
    let snapshot = lock(&s.shared.mailbox)
        .iter()
        .filter(|(u, _)| offered(u))
        .take(s.shared.provider.window.unwrap_or(usize::MAX))
        .map(|(u, m)| (u.clone(), m.clone(), false))
        .collect();
    drop(handed_out);
    st.drop = Some(snapshot);
    s.log(|l| l.authenticated = true);
    s.line(ok_text(st.profile))?;
    Ok(Next::Continue)
}

/// A bearer message, parsed: the user it names and its token.
fn parse_bearer(mechanism: &str, message: &[u8]) -> Result<(String, String), String> {
    let text = std::str::from_utf8(message).map_err(|_| "not UTF-8".to_string())?;
    let (user, fields) = if mechanism == "XOAUTH2" {
        let rest = text
            .strip_prefix("user=")
            .ok_or("does not start with user=")?;
        let (user, fields) = rest.split_once('\x01').ok_or("no 0x01 after the user")?;
        (user.to_string(), fields)
    } else {
        // OAUTHBEARER: a GS2 header "n,a=<authzid>," then 0x01.
        let rest = text.strip_prefix("n,").ok_or("GS2 header not n,")?;
        let (header, fields) = rest.split_once('\x01').ok_or("no 0x01 after the header")?;
        let authz = header
            .strip_suffix(',')
            .ok_or("GS2 header does not end with ,")?;
        let user = authz.strip_prefix("a=").ok_or("GS2 header without a=")?;
        (user.replace("=2C", ",").replace("=3D", "="), fields)
    };
    let fields = fields
        .strip_suffix("\x01\x01")
        .ok_or("does not end with 0x01 0x01")?;
    let mut token = None;
    for kv in fields.split('\x01') {
        if let Some(t) = kv.strip_prefix("auth=Bearer ") {
            token = Some(t.to_string());
        } else if mechanism == "XOAUTH2" || !(kv.starts_with("host=") || kv.starts_with("port=")) {
            return Err(format!("unexpected field {kv:?}"));
        }
    }
    Ok((user, token.ok_or("no auth=Bearer field")?))
}

fn auth(s: &mut Session<'_>, st: &mut State, rest: Option<&str>) -> Result<Next, End> {
    let profile = st.profile;
    let Some(rest) = rest else {
        // The old listing form of AUTH (RFC 1734 clients).
        let mut out = String::from("+OK\r\n");
        for m in mechanisms(profile) {
            out.push_str(m);
            out.push_str("\r\n");
        }
        out.push_str(".\r\n");
        s.send(out.as_bytes())?;
        return Ok(Next::Continue);
    };
    let (mechanism, initial) = match rest.split_once(' ') {
        Some((m, i)) => (m.to_ascii_uppercase(), Some(i.to_string())),
        None => (rest.to_ascii_uppercase(), None),
    };
    if !mechanisms(profile).contains(&mechanism.as_str()) {
        s.line(match profile {
            Profile::Courier => "-ERR Unsupported authentication method.",
            _ => "-ERR Unrecognized authentication type.",
        })?;
        return Ok(Next::Continue);
    }
    s.log(|l| l.logins.push((mechanism.clone(), initial.is_some())));
    if profile == Profile::Microsoft365 && mechanism == "XOAUTH2" && initial.is_some() {
        s.violation("inline AUTH XOAUTH2: Microsoft 365 wants the two-step form");
        s.line(MICROSOFT_INLINE_ERR)?;
        return Ok(Next::Close);
    }
    let response = match initial {
        Some(i) => i,
        None => {
            // Microsoft sends a bare "+", Gmail "+ ": clients must take both.
            s.line(if profile == Profile::Microsoft365 {
                "+"
            } else {
                "+ "
            })?;
            s.read_line()?
        }
    };
    if response == "*" {
        s.line("-ERR Authentication canceled.")?;
        return Ok(Next::Continue);
    }
    let Some(message) = base64_decode(&response) else {
        s.violation(format!("{mechanism} response is not base64"));
        s.line(match profile {
            Profile::Microsoft365 => MICROSOFT_INLINE_ERR,
            _ => "-ERR [AUTH] Invalid SASL argument.",
        })?;
        return Ok(if profile == Profile::Microsoft365 {
            Next::Close
        } else {
            Next::Continue
        });
    };
    let provider = &s.shared.provider;
    if mechanism == "PLAIN" {
        let parts: Vec<&[u8]> = message.split(|&b| b == 0).collect();
        let good = profile == Profile::Gmail
            && parts.len() == 3
            && same_user(profile, &String::from_utf8_lossy(parts[1]), &provider.user)
            && provider.password.as_deref().map(str::as_bytes) == Some(parts[2]);
        if good {
            let user = String::from_utf8_lossy(parts[1]).into_owned();
            return login_succeeded(s, st, &user);
        }
        s.line(match profile {
            Profile::Microsoft365 => {
                "-ERR Authentication failure: unknown user name or bad password."
            }
            _ => "-ERR [AUTH] Username and password not accepted.",
        })?;
        return Ok(Next::Continue);
    }
    let (user, token) = match parse_bearer(&mechanism, &message) {
        Ok(parsed) => parsed,
        Err(why) => {
            s.violation(format!("malformed {mechanism} message: {why}"));
            (String::new(), String::new())
        }
    };
    if same_user(profile, &user, &provider.user) && token == provider.token && !token.is_empty() {
        return login_succeeded(s, st, &user);
    }
    if profile == Profile::Gmail {
        // The refusal: a JSON report as a challenge, the client's
        // acknowledgement, then the final -ERR.
        s.line(&format!(
            "+ {}",
            base64_encode(GMAIL_REFUSAL_JSON.as_bytes())
        ))?;
        let ack = s.read_line()?;
        let want = if mechanism == "XOAUTH2" { "" } else { "AQ==" };
        if ack != want {
            s.violation(format!(
                "{mechanism}: the refusal was acknowledged with {ack:?}, not {want:?}"
            ));
        }
    }
    s.line(match profile {
        Profile::Gmail => GMAIL_REFUSAL_ERR,
        _ => "-ERR Authentication failure: unknown user name or bad password.",
    })?;
    Ok(Next::Continue)
}

fn number(rest: Option<&str>) -> Option<usize> {
    rest?.split(' ').next()?.parse().ok().filter(|&n| n > 0)
}

fn transaction(
    s: &mut Session<'_>,
    st: &mut State,
    verb: &str,
    rest: Option<&str>,
) -> Result<Next, End> {
    let profile = st.profile;
    let Some(drop) = st.drop.as_mut() else {
        return Ok(Next::Close);
    };
    let no_such = match profile {
        Profile::Gmail => "-ERR [SYS/PERM] no such message",
        Profile::Microsoft365 => "-ERR The specified message is out of range.",
        Profile::Courier => "-ERR Invalid message number.",
    };
    // The live message `n` (1-based), if any.
    let live = |drop: &Vec<(String, Vec<u8>, bool)>, n: Option<usize>| {
        n.and_then(|n| drop.get(n - 1).filter(|m| !m.2).map(|_| n - 1))
    };
    match verb {
        "CAPA" => capa(s, profile)?,
        "NOOP" => s.line("+OK")?,
        "STAT" => {
            let (count, size) = drop
                .iter()
                .filter(|m| !m.2)
                .fold((0, 0), |(c, z), m| (c + 1, z + m.1.len()));
            s.line(&format!("+OK {count} {size}"))?;
        }
        "LIST" | "UIDL" => {
            let value = |i: usize, m: &(String, Vec<u8>, bool)| {
                if verb == "LIST" {
                    format!("{} {}", i + 1, m.1.len())
                } else {
                    format!("{} {}", i + 1, m.0)
                }
            };
            if rest.is_some() {
                match live(drop, number(rest)) {
                    Some(i) => {
                        let reply = format!("+OK {}", value(i, &drop[i]));
                        s.line(&reply)?;
                    }
                    None => s.line(no_such)?,
                }
            } else {
                let mut out = String::from("+OK\r\n");
                for (i, m) in drop.iter().enumerate().filter(|(_, m)| !m.2) {
                    out.push_str(&value(i, m));
                    out.push_str("\r\n");
                }
                out.push_str(".\r\n");
                s.send(out.as_bytes())?;
            }
        }
        "RETR" | "TOP" => {
            let lines = if verb == "TOP" {
                rest.and_then(|r| r.split(' ').nth(1))
                    .and_then(|n| n.parse::<usize>().ok())
            } else {
                None
            };
            match live(drop, number(rest)) {
                Some(i) if verb == "RETR" || lines.is_some() => {
                    let body = &drop[i].1;
                    let body = match lines {
                        Some(n) => top(body, n),
                        None => body.clone(),
                    };
                    if verb == "RETR" {
                        st.retrieved.insert(drop[i].0.clone());
                    }
                    let mut out = format!("+OK {} octets\r\n", drop[i].1.len()).into_bytes();
                    out.extend_from_slice(&stuff(&body));
                    s.send(&out)?;
                }
                Some(_) => s.line("-ERR TOP needs a message and a line count")?,
                None => s.line(no_such)?,
            }
        }
        "DELE" => match live(drop, number(rest)) {
            Some(i) => {
                drop[i].2 = true;
                s.line(match profile {
                    Profile::Gmail => "+OK marked for deletion",
                    Profile::Microsoft365 => "+OK",
                    Profile::Courier => "+OK Deleted.",
                })?;
            }
            None => s.line(no_such)?,
        },
        "RSET" => {
            for m in drop.iter_mut() {
                m.2 = false;
            }
            s.line("+OK")?;
        }
        "QUIT" => {
            let gone: Vec<String> = drop.iter().filter(|m| m.2).map(|m| m.0.clone()).collect();
            lock(&s.shared.mailbox).retain(|(u, _)| !gone.contains(u));
            if profile == Profile::Gmail {
                lock(&s.shared.handed_out).extend(st.retrieved.drain());
            }
            s.line(match profile {
                Profile::Microsoft365 => "+OK Microsoft Exchange Server POP3 server signing off.",
                Profile::Gmail => "+OK Farewell.",
                Profile::Courier => "+OK Bye-bye.",
            })?;
            return Ok(Next::Quit);
        }
        _ => s.line(bad_command(profile))?,
    }
    Ok(Next::Continue)
}

/// The header and the first `lines` lines of the body.
fn top(message: &[u8], lines: usize) -> Vec<u8> {
    let head_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 4);
    let mut out = message[..head_end].to_vec();
    let mut rest = &message[head_end..];
    for _ in 0..lines {
        if rest.is_empty() {
            break;
        }
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |p| p + 1);
        out.extend_from_slice(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

/// A body on the wire: dot-stuffed, CRLF at the end, then `.CRLF`.
fn stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 50 + 5);
    let mut at_line_start = true;
    for &b in body {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    #[test]
    fn base64_round_trips() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
            let text = base64_encode(&data);
            assert_eq!(base64_decode(&text), Some(data), "{text}");
        }
        assert_eq!(base64_encode(b"\x01"), "AQ==");
        assert_eq!(base64_decode("AQ="), None);
        assert_eq!(base64_decode("A=Q="), None);
    }

    #[test]
    fn uidls_look_like_the_services() {
        let m = uidl_for(Profile::Microsoft365, 0);
        assert!(m.len() >= 40, "{m}");
        assert_ne!(m, uidl_for(Profile::Microsoft365, 1));
        let g = uidl_for(Profile::Gmail, 3);
        assert!(g.starts_with("GmailId") && g.len() == 23, "{g}");
        for p in [Profile::Microsoft365, Profile::Gmail, Profile::Courier] {
            let u = uidl_for(p, 7);
            assert!(u.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{u}");
        }
    }

    #[test]
    fn bearer_messages_parse() {
        let (u, t) = parse_bearer("XOAUTH2", b"user=a@b\x01auth=Bearer tok\x01\x01").expect("ok");
        assert_eq!((u.as_str(), t.as_str()), ("a@b", "tok"));
        let (u, t) = parse_bearer(
            "OAUTHBEARER",
            b"n,a=x=2Cy@b,\x01host=h\x01port=995\x01auth=Bearer tok\x01\x01",
        )
        .expect("ok");
        assert_eq!((u.as_str(), t.as_str()), ("x,y@b", "tok"));
        assert!(parse_bearer("XOAUTH2", b"user=a@b\x01auth=Bearer tok\x01").is_err());
    }

    #[test]
    fn stuffing_and_top() {
        assert_eq!(stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(top(b"H: 1\r\n\r\nl1\r\nl2\r\n", 1), b"H: 1\r\n\r\nl1\r\n");
    }

    /// A plain session by hand: the Microsoft 365 refusal of the inline
    /// form closes the connection; the two-step form logs in.
    #[test]
    fn microsoft365_two_step_only_over_plain_tcp() {
        let server = Provider::microsoft365("u@contoso.com", "tok")
            .messages(vec![b"Subject: a\r\n\r\n.x\r\n".to_vec()])
            .plain()
            .start();
        let payload = base64_encode(b"user=u@contoso.com\x01auth=Bearer tok\x01\x01");
        let talk = |lines: &[&str]| -> Vec<String> {
            let s = TcpStream::connect(server.addr()).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let mut got = Vec::new();
            let read = |r: &mut BufReader<TcpStream>| {
                let mut l = String::new();
                r.read_line(&mut l).expect("read");
                l
            };
            got.push(read(&mut r));
            for l in lines {
                (&s).write_all(format!("{l}\r\n").as_bytes())
                    .expect("write");
                let mut reply = read(&mut r);
                if reply.starts_with("+OK") && (l.starts_with("RETR") || *l == "UIDL") {
                    while !reply.ends_with(".\r\n") || reply.ends_with("..\r\n") {
                        let next = read(&mut r);
                        if next.is_empty() {
                            break;
                        }
                        reply.push_str(&next);
                    }
                }
                got.push(reply);
            }
            got
        };
        let inline = talk(&[&format!("AUTH XOAUTH2 {payload}"), "NOOP"]);
        assert!(inline[0].contains("Microsoft Exchange POP3"), "{inline:?}");
        assert_eq!(inline[1], format!("{MICROSOFT_INLINE_ERR}\r\n"));
        assert_eq!(inline[2], "", "closed after the protocol error");
        let two = talk(&["AUTH XOAUTH2", &payload, "RETR 1", "QUIT"]);
        assert_eq!(two[1], "+\r\n");
        assert!(two[2].starts_with("+OK"), "{two:?}");
        assert!(two[3].ends_with("\r\n..x\r\n.\r\n"), "{two:?}");
        let logs = server.finish();
        assert_eq!(logs.len(), 2);
        assert!(!logs[0].violations.is_empty() && logs[0].closed_by_server);
        assert!(logs[1].authenticated && logs[1].quit, "{:?}", logs[1]);
        assert!(logs[1].violations.is_empty(), "{:?}", logs[1]);
    }
}
