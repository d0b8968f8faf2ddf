//! Shared pieces of the `pop3-proto` fuzz targets: structured inputs, a mirror of
//! [`Command`] that `arbitrary` can build, a heap-counting allocator, oracles
//! (reference dot-stuffing/unstuffing, expected command lines) and the inverse
//! of the input decoding, used by `examples/seeds.rs` to write seed corpora.
//!
//! Byte strings in structured inputs use [`Bytes`] and [`Str`], whose length
//! prefix is read from the front, so that seeds can be written by hand (see
//! [`Encode`]) and dictionary tokens survive mutation in one piece.

#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use arbitrary::{Arbitrary, Result as ArbResult, Unstructured};
use pop3_proto::sasl::{CramMd5, Login, Mechanism, OAuthBearer, Plain, SaslError, Scram, XOauth2};
use pop3_proto::{Action, Client, Command, Config, Limits, MsgNum, Secret, State};

// ---------------------------------------------------------------------------
// Heap accounting
// ---------------------------------------------------------------------------

/// A global allocator that counts the bytes currently allocated by Rust code,
/// so a target can assert that the client holds bounded memory whatever the
/// server sends. libFuzzer's own (C++) allocations are not counted.
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes currently allocated through the Rust global allocator.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------
// Known issues
// ---------------------------------------------------------------------------

/// Whether the assertion for a known, reported bug of `pop3-proto` is to be
/// skipped, so that a campaign can look past it until it is fixed. Set
/// `POP3_FUZZ_ALLOW_KNOWN` to a comma-separated list of issue ids (see the
/// README), or to `all`. Unset (the default, and in `smoke.sh`): every
/// assertion holds.
pub fn known_issue_allowed(id: &str) -> bool {
    static ALLOWED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let allowed = ALLOWED.get_or_init(|| {
        std::env::var("POP3_FUZZ_ALLOW_KNOWN")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    });
    allowed.iter().any(|a| a == id || a == "all")
}

// ---------------------------------------------------------------------------
// Byte strings with a front length prefix
// ---------------------------------------------------------------------------

/// Arbitrary bytes: a little-endian `u16` length, then that many bytes (fewer
/// if the input ends). As the last field of a top-level input: all the rest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Bytes {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        let len = usize::from(u16::arbitrary(u)?);
        let n = len.min(u.len());
        Ok(Bytes(u.bytes(n)?.to_vec()))
    }

    fn arbitrary_take_rest(u: Unstructured<'a>) -> ArbResult<Self> {
        Ok(Bytes(u.take_rest().to_vec()))
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (2, None)
    }
}

/// An arbitrary string: a `u8` length, then that many bytes read as UTF-8 with
/// invalid sequences replaced by U+FFFD (so it may come out longer).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Str(pub String);

impl<'a> Arbitrary<'a> for Str {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        let len = usize::from(u8::arbitrary(u)?);
        let n = len.min(u.len());
        Ok(Str(String::from_utf8_lossy(u.bytes(n)?).into_owned()))
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (1, None)
    }
}

impl Str {
    pub fn new(s: &str) -> Str {
        Str(s.to_string())
    }
}

// ---------------------------------------------------------------------------
// Mirror of Command and of the SASL mechanisms
// ---------------------------------------------------------------------------

/// The RFC 5802 / RFC 7677 test vectors: user `user`, password `pencil`.
pub const SCRAM_PASSWORD: &str = "pencil";
pub const SCRAM_SHA1_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";
pub const SCRAM_SHA256_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
/// Iteration cap used everywhere, to keep executions fast.
pub const SCRAM_MAX_ITERATIONS: u32 = 4096;

/// A SASL mechanism, as `arbitrary` can build one.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub enum FuzzMech {
    Plain {
        authzid: Option<Str>,
        user: Str,
        password: Str,
    },
    Login {
        user: Str,
        password: Str,
    },
    CramMd5 {
        user: Str,
        password: Str,
    },
    /// SCRAM-SHA-1 with the RFC 5802 password and client nonce.
    ScramSha1 {
        user: Str,
        authzid: Option<Str>,
    },
    /// SCRAM-SHA-256 with the RFC 7677 password and client nonce.
    ScramSha256 {
        user: Str,
        authzid: Option<Str>,
    },
    XOauth2 {
        user: Str,
        token: Str,
    },
    OAuthBearer {
        user: Str,
        token: Str,
    },
    /// A caller-written mechanism: arbitrary name, answers and outcome.
    Custom {
        name: Str,
        exposes: bool,
        fail_initial: bool,
        initial: Option<Bytes>,
        responses: Vec<Bytes>,
        finish_ok: bool,
    },
}

impl FuzzMech {
    /// Builds the mechanism; `None` when its constructor refuses the arguments.
    pub fn build(&self) -> Option<Box<dyn Mechanism>> {
        let s = |x: &Str| x.0.clone();
        let secret = |x: &Str| Secret::new(x.0.clone());
        Some(match self {
            FuzzMech::Plain {
                authzid,
                user,
                password,
            } => Box::new(Plain::new(authzid.as_ref().map(s), s(user), secret(password)).ok()?),
            FuzzMech::Login { user, password } => Box::new(Login::new(s(user), secret(password))),
            FuzzMech::CramMd5 { user, password } => {
                Box::new(CramMd5::new(s(user), secret(password)))
            }
            FuzzMech::ScramSha1 { user, authzid } => {
                let m = Scram::sha1(
                    s(user),
                    Secret::new(SCRAM_PASSWORD.into()),
                    SCRAM_SHA1_NONCE.into(),
                )
                .ok()?
                .with_max_iterations(SCRAM_MAX_ITERATIONS);
                Box::new(match authzid {
                    Some(a) => m.with_authzid(s(a)),
                    None => m,
                })
            }
            FuzzMech::ScramSha256 { user, authzid } => {
                let m = Scram::sha256(
                    s(user),
                    Secret::new(SCRAM_PASSWORD.into()),
                    SCRAM_SHA256_NONCE.into(),
                )
                .ok()?
                .with_max_iterations(SCRAM_MAX_ITERATIONS);
                Box::new(match authzid {
                    Some(a) => m.with_authzid(s(a)),
                    None => m,
                })
            }
            FuzzMech::XOauth2 { user, token } => {
                Box::new(XOauth2::new(s(user), secret(token)).ok()?)
            }
            FuzzMech::OAuthBearer { user, token } => {
                Box::new(OAuthBearer::new(s(user), secret(token)).ok()?)
            }
            FuzzMech::Custom {
                name,
                exposes,
                fail_initial,
                initial,
                responses,
                finish_ok,
            } => Box::new(CustomMech {
                name: s(name),
                exposes: *exposes,
                fail_initial: *fail_initial,
                initial: initial.as_ref().map(|b| b.0.clone()),
                responses: responses.iter().map(|b| b.0.clone()).collect(),
                finish_ok: *finish_ok,
            }),
        })
    }

    /// Whether the mechanism may reveal a reusable credential.
    pub fn exposes_credentials(&self) -> bool {
        match self {
            FuzzMech::Plain { .. }
            | FuzzMech::Login { .. }
            | FuzzMech::XOauth2 { .. }
            | FuzzMech::OAuthBearer { .. } => true,
            FuzzMech::CramMd5 { .. }
            | FuzzMech::ScramSha1 { .. }
            | FuzzMech::ScramSha256 { .. } => false,
            FuzzMech::Custom { exposes, .. } => *exposes,
        }
    }

    /// A generous upper bound on the credential bytes the mechanism may send.
    pub fn credential_len(&self) -> usize {
        match self {
            FuzzMech::Plain {
                authzid,
                user,
                password,
            } => authzid.as_ref().map_or(0, |a| a.0.len()) + user.0.len() + password.0.len(),
            FuzzMech::Login { user, password } | FuzzMech::CramMd5 { user, password } => {
                user.0.len() + password.0.len()
            }
            FuzzMech::ScramSha1 { user, authzid } | FuzzMech::ScramSha256 { user, authzid } => {
                3 * (user.0.len() + authzid.as_ref().map_or(0, |a| a.0.len()))
            }
            FuzzMech::XOauth2 { user, token } | FuzzMech::OAuthBearer { user, token } => {
                3 * user.0.len() + token.0.len()
            }
            FuzzMech::Custom {
                initial, responses, ..
            } => {
                initial.as_ref().map_or(0, |b| b.0.len())
                    + responses.iter().map(|b| b.0.len()).sum::<usize>()
            }
        }
    }
}

/// A mechanism whose every answer comes from the fuzz input.
pub struct CustomMech {
    pub name: String,
    pub exposes: bool,
    pub fail_initial: bool,
    pub initial: Option<Vec<u8>>,
    pub responses: VecDeque<Vec<u8>>,
    pub finish_ok: bool,
}

impl Mechanism for CustomMech {
    fn name(&self) -> &str {
        &self.name
    }

    fn exposes_credentials(&self) -> bool {
        self.exposes
    }

    fn initial_response(&mut self) -> Result<Option<Secret<Vec<u8>>>, SaslError> {
        if self.fail_initial {
            return Err(SaslError::InvalidCredential(
                "fuzz: initial response refused",
            ));
        }
        Ok(self.initial.clone().map(Secret::new))
    }

    fn respond(&mut self, _challenge: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
        self.responses
            .pop_front()
            .map(Secret::new)
            .ok_or(SaslError::UnexpectedChallenge)
    }

    fn finish(&mut self) -> Result<(), SaslError> {
        if self.finish_ok {
            Ok(())
        } else {
            Err(SaslError::Incomplete)
        }
    }
}

/// A [`Command`], as `arbitrary` can build one. Message number 0 cannot be
/// expressed by [`MsgNum`]; such commands are dropped by [`FuzzCommand::build`].
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub enum FuzzCommand {
    User(Str),
    Pass(Str),
    Apop {
        user: Str,
        password: Str,
    },
    Auth(FuzzMech),
    Stls,
    Capa,
    Stat,
    List(Option<u32>),
    Uidl(Option<u32>),
    Retr(u32),
    Top(u32, u32),
    Dele(u32),
    Noop,
    Rset,
    Quit,
    Utf8,
    Lang(Option<Str>),
    Raw {
        verb: Str,
        args: Vec<Str>,
        multiline: bool,
    },
}

fn msg(n: u32) -> Option<MsgNum> {
    let m = MsgNum::new(n);
    assert_eq!(m.is_none(), n == 0, "MsgNum::new({n})");
    assert_eq!(
        MsgNum::try_from(n).is_err(),
        n == 0,
        "MsgNum::try_from({n})"
    );
    m
}

fn opt_msg(n: Option<u32>) -> Option<Option<MsgNum>> {
    match n {
        None => Some(None),
        Some(n) => msg(n).map(Some),
    }
}

impl FuzzCommand {
    /// The command; `None` for message number 0 or a mechanism whose
    /// constructor refused its arguments.
    pub fn build(&self) -> Option<Command> {
        let s = |x: &Str| x.0.clone();
        Some(match self {
            FuzzCommand::User(u) => Command::User(s(u)),
            FuzzCommand::Pass(p) => Command::Pass(Secret::new(s(p))),
            FuzzCommand::Apop { user, password } => Command::Apop {
                user: s(user),
                password: Secret::new(s(password)),
            },
            FuzzCommand::Auth(m) => Command::Auth(m.build()?),
            FuzzCommand::Stls => Command::Stls,
            FuzzCommand::Capa => Command::Capa,
            FuzzCommand::Stat => Command::Stat,
            FuzzCommand::List(n) => Command::List(opt_msg(*n)?),
            FuzzCommand::Uidl(n) => Command::Uidl(opt_msg(*n)?),
            FuzzCommand::Retr(n) => Command::Retr(msg(*n)?),
            FuzzCommand::Top(n, l) => Command::Top(msg(*n)?, *l),
            FuzzCommand::Dele(n) => Command::Dele(msg(*n)?),
            FuzzCommand::Noop => Command::Noop,
            FuzzCommand::Rset => Command::Rset,
            FuzzCommand::Quit => Command::Quit,
            FuzzCommand::Utf8 => Command::Utf8,
            FuzzCommand::Lang(t) => Command::Lang(t.as_ref().map(s)),
            FuzzCommand::Raw {
                verb,
                args,
                multiline,
            } => Command::Raw {
                verb: s(verb),
                args: args.iter().map(s).collect(),
                multiline: *multiline,
            },
        })
    }

    /// The keyword the command is sent with.
    pub fn verb(&self) -> String {
        match self {
            FuzzCommand::User(_) => "USER".into(),
            FuzzCommand::Pass(_) => "PASS".into(),
            FuzzCommand::Apop { .. } => "APOP".into(),
            FuzzCommand::Auth(_) => "AUTH".into(),
            FuzzCommand::Stls => "STLS".into(),
            FuzzCommand::Capa => "CAPA".into(),
            FuzzCommand::Stat => "STAT".into(),
            FuzzCommand::List(_) => "LIST".into(),
            FuzzCommand::Uidl(_) => "UIDL".into(),
            FuzzCommand::Retr(_) => "RETR".into(),
            FuzzCommand::Top(..) => "TOP".into(),
            FuzzCommand::Dele(_) => "DELE".into(),
            FuzzCommand::Noop => "NOOP".into(),
            FuzzCommand::Rset => "RSET".into(),
            FuzzCommand::Quit => "QUIT".into(),
            FuzzCommand::Utf8 => "UTF8".into(),
            FuzzCommand::Lang(_) => "LANG".into(),
            FuzzCommand::Raw { verb, .. } => verb.0.clone(),
        }
    }

    /// Whether a `+OK` reply to it carries a body (RETR, TOP, multi-line raw).
    pub fn has_body(&self) -> bool {
        matches!(
            self,
            FuzzCommand::Retr(_)
                | FuzzCommand::Top(..)
                | FuzzCommand::Raw {
                    multiline: true,
                    ..
                }
        )
    }

    /// Whether the command sends a credential in the clear.
    pub fn exposes_credentials(&self) -> bool {
        match self {
            FuzzCommand::User(_) | FuzzCommand::Pass(_) | FuzzCommand::Apop { .. } => true,
            FuzzCommand::Auth(m) => m.exposes_credentials(),
            _ => false,
        }
    }

    /// The exact line the client must send for it, where it can be computed
    /// here: every command but APOP (digest) and AUTH (see [`expected_auth_line`]).
    pub fn expected_line(&self) -> Option<Vec<u8>> {
        let mut words: Vec<String> = vec![self.verb()];
        match self {
            FuzzCommand::User(x) | FuzzCommand::Pass(x) => words.push(x.0.clone()),
            FuzzCommand::Apop { .. } | FuzzCommand::Auth(_) => return None,
            FuzzCommand::List(Some(n))
            | FuzzCommand::Uidl(Some(n))
            | FuzzCommand::Retr(n)
            | FuzzCommand::Dele(n) => words.push(n.to_string()),
            FuzzCommand::Top(n, l) => {
                words.push(n.to_string());
                words.push(l.to_string());
            }
            FuzzCommand::Lang(Some(t)) => words.push(t.0.clone()),
            FuzzCommand::Raw { args, .. } => words.extend(args.iter().map(|a| a.0.clone())),
            _ => {}
        }
        let mut line = words.join(" ").into_bytes();
        line.extend_from_slice(b"\r\n");
        Some(line)
    }

    /// Upper bound on what the client may send for this command, SASL
    /// responses included (these also grow with the server's challenges,
    /// which the caller accounts for separately).
    pub fn send_budget(&self) -> usize {
        match self {
            FuzzCommand::Auth(m) => 8 * (2 * m.credential_len() + 400),
            _ => 300,
        }
    }
}

/// The AUTH line RFC 5034 asks for: `AUTH NAME [initial-response]`, where the
/// initial response is base64 (`=` when empty) and is left out when the line
/// would exceed 255 octets. `None` if the mechanism cannot be built or its
/// initial response fails.
pub fn expected_auth_line(mech: &FuzzMech) -> Option<Vec<u8>> {
    let mut m = mech.build()?;
    let name = m.name().to_string();
    let ir = m.initial_response().ok()?;
    let mut line = format!("AUTH {name}").into_bytes();
    if let Some(ir) = ir {
        let encoded = if ir.expose().is_empty() {
            "=".to_string()
        } else {
            base64_encode(ir.expose())
        };
        if 5 + name.len() + 1 + encoded.len() + 2 <= 255 {
            line.push(b' ');
            line.extend_from_slice(encoded.as_bytes());
        }
    }
    line.extend_from_slice(b"\r\n");
    Some(line)
}

// ---------------------------------------------------------------------------
// Structured inputs of the targets
// ---------------------------------------------------------------------------

/// `body_framing`: a message, how to cut its wire form, and limits.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub struct BodyInput {
    /// `Limits::max_body_line_len`, if set.
    pub body_line_limit: Option<u8>,
    /// The `max` given to `poll_body_limited` (`None`: `poll`).
    pub chunk_limit: Option<u16>,
    /// Sizes of the pieces the wire bytes are handed over in (each + 1), cycled.
    pub chunks: Vec<u8>,
    /// The message as the server stores it.
    pub message: Bytes,
}

/// `session`: how the client is configured.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub struct SessionConfig {
    pub encrypted: bool,
    pub allow_plaintext: bool,
    /// max_line_len 64, max_listing_lines 16, max_capa_lines 8.
    pub small_limits: bool,
    /// pipeline_window = 1 + window % 4.
    pub window: u8,
    pub body_line_limit: Option<u8>,
    /// read_size 64 instead of the default.
    pub small_read: bool,
}

impl SessionConfig {
    pub fn config(&self) -> Config {
        let mut config = if self.encrypted {
            Config::encrypted()
        } else {
            Config::default()
        };
        config = config.allow_plaintext_credentials(self.allow_plaintext);
        config = config.pipeline_window(1 + usize::from(self.window % 4));
        let mut limits = if self.small_limits {
            small_limits()
        } else {
            Limits::default()
        };
        limits.max_body_line_len = self.body_line_limit.map(usize::from);
        config = config.limits(limits);
        if self.small_read {
            config.read_size = 64;
        }
        config
    }
}

/// The small limits the brief asks for.
pub fn small_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_line_len = 64;
    limits.max_listing_lines = 16;
    limits.max_capa_lines = 8;
    limits
}

/// `session`: one step of the driver.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub enum Op {
    Submit(FuzzCommand),
    /// Bytes through `Client::receive`.
    Receive(Bytes),
    /// Bytes through `Client::input_buffer` / `input_written`.
    ReceiveBuffered(Bytes),
    Eof,
    TlsEstablished,
    /// Poll up to n + 1 times, stopping at NeedInput, StartTls, Closed or Err.
    PollMany(u8),
}

#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub struct SessionInput {
    pub config: SessionConfig,
    pub ops: Vec<Op>,
}

/// `sasl`: which mechanism, with what.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub enum SaslCase {
    /// user `user`, password `pencil`, RFC 5802 nonce.
    ScramSha1 {
        authzid: Option<Str>,
    },
    /// user `user`, password `pencil`, RFC 7677 nonce.
    ScramSha256 {
        authzid: Option<Str>,
    },
    CramMd5 {
        user: Str,
        password: Str,
    },
    Login {
        user: Str,
        password: Str,
    },
    Plain {
        authzid: Option<Str>,
        user: Str,
        password: Str,
    },
    XOauth2 {
        user: Str,
        token: Str,
    },
    OAuthBearer {
        user: Str,
        token: Str,
    },
}

#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub struct SaslInput {
    pub case: SaslCase,
    /// Call `initial_response` first.
    pub initial: bool,
    /// Decoded server challenges, handed to `respond` in order.
    pub challenges: Vec<Bytes>,
}

/// `command_encode`: the session the command is submitted to, and the command.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub struct EncodeInput {
    pub encrypted: bool,
    pub allow_plaintext: bool,
    /// Log in with USER/PASS first (when credentials may be sent).
    pub logged_in: bool,
    /// The greeting carries an APOP timestamp.
    pub apop_greeting: bool,
    pub command: FuzzCommand,
}

// ---------------------------------------------------------------------------
// Driving helpers and wire checks
// ---------------------------------------------------------------------------

/// Whether `err`, returned by `submit` after `poll` failed with `fatal`, says
/// so: `UsageError::Closed`, or `UsageError::Failed(fatal)` where the core has it.
/// (Compared through `Debug`, so the targets build against either version.)
pub fn refused_after_fatal(
    err: &pop3_proto::UsageError,
    fatal: &pop3_proto::ProtocolError,
) -> bool {
    let text = format!("{err:?}");
    text == "Closed" || text == format!("Failed({fatal:?})")
}

/// Polls until `NeedInput`, panicking on anything but sends and events.
pub fn settle(client: &mut Client) {
    for _ in 0..64 {
        match client.poll() {
            Ok(Action::NeedInput) => return,
            Ok(Action::Send(_) | Action::Event(_)) => {}
            other => panic!("unexpected while settling: {other:?}"),
        }
    }
    panic!("client did not settle");
}

/// A client past greeting, USER and PASS, with nothing in flight.
pub fn logged_in(config: Config) -> Client {
    let mut client = Client::new(config);
    client.receive(b"+OK\r\n");
    client.user("u").unwrap();
    client.pass(Secret::new("p".into())).unwrap();
    // One reply per read: a reply that arrives before its command was sent
    // is unsolicited data.
    settle(&mut client); // greeting; USER sent
    client.receive(b"+OK\r\n");
    settle(&mut client); // PASS sent
    client.receive(b"+OK\r\n");
    settle(&mut client);
    assert_eq!(client.state(), State::Transaction);
    assert_eq!(client.in_flight(), 0);
    client
}

/// Checks that bytes handed over in one `Action::Send` are whole CRLF lines,
/// with no NUL and no CR or LF inside a line; returns the lines without CRLF.
pub fn wire_lines(bytes: &[u8]) -> Vec<&[u8]> {
    assert!(!bytes.is_empty(), "empty Action::Send");
    assert!(
        !bytes.contains(&0),
        "NUL sent: {:?}",
        String::from_utf8_lossy(bytes)
    );
    assert!(
        bytes.ends_with(b"\r\n"),
        "send does not end with CRLF: {:?}",
        String::from_utf8_lossy(bytes)
    );
    let body = &bytes[..bytes.len() - 2];
    let mut lines = Vec::new();
    let mut rest = body;
    loop {
        match rest.windows(2).position(|w| w == b"\r\n") {
            Some(i) => {
                lines.push(&rest[..i]);
                rest = &rest[i + 2..];
            }
            None => {
                lines.push(rest);
                break;
            }
        }
    }
    for line in &lines {
        assert!(
            !line.iter().any(|&b| b == b'\r' || b == b'\n'),
            "bare CR or LF inside a sent line: {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    lines
}

// ---------------------------------------------------------------------------
// Dot-stuffing oracles
// ---------------------------------------------------------------------------

/// The message a server would deliver for `raw`: unchanged when empty or
/// ending with CRLF, otherwise with CRLF appended.
pub fn normalize_message(raw: &[u8]) -> Vec<u8> {
    let mut m = raw.to_vec();
    if !m.is_empty() && !m.ends_with(b"\r\n") {
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// Dot-stuffs a normalised message as a server does (RFC 1939 section 3):
/// a line starts at the beginning and after each CRLF; a line starting with
/// `.` gets another `.`; then the terminating `.\r\n`.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 8);
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = prev == b'\r' && b == b'\n';
        prev = b;
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// A byte-at-a-time reference decoder for a dot-stuffed body (lines end with
/// CRLF only). Returns the message and how many input bytes the body took
/// (terminator included), or `None` if the terminator never comes.
pub fn reference_unstuff(wire: &[u8]) -> Option<(Vec<u8>, usize)> {
    #[derive(Clone, Copy)]
    enum S {
        LineStart,
        Mid,
        Cr,
        Dot,
        DotCr,
    }
    let mut out = Vec::with_capacity(wire.len());
    let mut s = S::LineStart;
    for (i, &b) in wire.iter().enumerate() {
        // Where a byte after a stuffing dot goes: like a mid-line byte.
        let mid = |out: &mut Vec<u8>, b: u8| {
            out.push(b);
            if b == b'\r' {
                S::Cr
            } else {
                S::Mid
            }
        };
        s = match s {
            S::LineStart if b == b'.' => S::Dot,
            S::LineStart | S::Mid => mid(&mut out, b),
            S::Cr => {
                out.push(b);
                match b {
                    b'\n' => S::LineStart,
                    b'\r' => S::Cr,
                    _ => S::Mid,
                }
            }
            S::Dot if b == b'\r' => S::DotCr,
            S::Dot => mid(&mut out, b),
            S::DotCr if b == b'\n' => return Some((out, i + 1)),
            S::DotCr => {
                // ".\r" then something else: the dot was stuffing, the CR is data.
                out.push(b'\r');
                out.push(b);
                match b {
                    b'\n' => S::LineStart,
                    b'\r' => S::Cr,
                    _ => S::Mid,
                }
            }
        };
    }
    None
}

// ---------------------------------------------------------------------------
// Base64 (standard alphabet, padded)
// ---------------------------------------------------------------------------

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Lenient decoder for seeds: skips anything outside the alphabet.
pub fn base64_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in text {
        let Some(v) = B64.iter().position(|&x| x == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Seeds: the inverse of the `Arbitrary` decoding above
// ---------------------------------------------------------------------------

/// Writes a value so that `Arbitrary` reads it back (arbitrary 1.x layout:
/// integers little-endian from the front, `bool` as one byte, `Option` as a
/// bool then the value, collections as a `true` byte before each element and
/// a `false` after the last, enum variants as a `u32` scaled onto the variant
/// count). `examples/seeds.rs` checks every seed by decoding it again.
pub trait Encode {
    fn encode(&self, out: &mut Vec<u8>);
}

/// The `u32` that `#[derive(Arbitrary)]` maps to variant `index` of `count`.
pub fn encode_variant(out: &mut Vec<u8>, index: u32, count: u32) {
    let v = ((u64::from(index) << 32) + u64::from(count) - 1) / u64::from(count);
    let v = u32::try_from(v).unwrap();
    debug_assert_eq!((u64::from(v) * u64::from(count)) >> 32, u64::from(index));
    out.extend_from_slice(&v.to_le_bytes());
}

impl Encode for u8 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }
}
impl Encode for u16 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl Encode for u32 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}
impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
}
impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        for v in self {
            out.push(1);
            v.encode(out);
        }
        out.push(0);
    }
}
impl Encode for Str {
    fn encode(&self, out: &mut Vec<u8>) {
        let b = self.0.as_bytes();
        out.push(u8::try_from(b.len()).expect("seed string longer than 255 bytes"));
        out.extend_from_slice(b);
    }
}
impl Encode for Bytes {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            &u16::try_from(self.0.len())
                .expect("seed bytes longer than 65535")
                .to_le_bytes(),
        );
        out.extend_from_slice(&self.0);
    }
}

impl Encode for FuzzMech {
    fn encode(&self, out: &mut Vec<u8>) {
        const N: u32 = 8;
        match self {
            FuzzMech::Plain {
                authzid,
                user,
                password,
            } => {
                encode_variant(out, 0, N);
                authzid.encode(out);
                user.encode(out);
                password.encode(out);
            }
            FuzzMech::Login { user, password } => {
                encode_variant(out, 1, N);
                user.encode(out);
                password.encode(out);
            }
            FuzzMech::CramMd5 { user, password } => {
                encode_variant(out, 2, N);
                user.encode(out);
                password.encode(out);
            }
            FuzzMech::ScramSha1 { user, authzid } => {
                encode_variant(out, 3, N);
                user.encode(out);
                authzid.encode(out);
            }
            FuzzMech::ScramSha256 { user, authzid } => {
                encode_variant(out, 4, N);
                user.encode(out);
                authzid.encode(out);
            }
            FuzzMech::XOauth2 { user, token } => {
                encode_variant(out, 5, N);
                user.encode(out);
                token.encode(out);
            }
            FuzzMech::OAuthBearer { user, token } => {
                encode_variant(out, 6, N);
                user.encode(out);
                token.encode(out);
            }
            FuzzMech::Custom {
                name,
                exposes,
                fail_initial,
                initial,
                responses,
                finish_ok,
            } => {
                encode_variant(out, 7, N);
                name.encode(out);
                exposes.encode(out);
                fail_initial.encode(out);
                initial.encode(out);
                responses.encode(out);
                finish_ok.encode(out);
            }
        }
    }
}

impl Encode for FuzzCommand {
    fn encode(&self, out: &mut Vec<u8>) {
        const N: u32 = 18;
        match self {
            FuzzCommand::User(s) => {
                encode_variant(out, 0, N);
                s.encode(out);
            }
            FuzzCommand::Pass(s) => {
                encode_variant(out, 1, N);
                s.encode(out);
            }
            FuzzCommand::Apop { user, password } => {
                encode_variant(out, 2, N);
                user.encode(out);
                password.encode(out);
            }
            FuzzCommand::Auth(m) => {
                encode_variant(out, 3, N);
                m.encode(out);
            }
            FuzzCommand::Stls => encode_variant(out, 4, N),
            FuzzCommand::Capa => encode_variant(out, 5, N),
            FuzzCommand::Stat => encode_variant(out, 6, N),
            FuzzCommand::List(n) => {
                encode_variant(out, 7, N);
                n.encode(out);
            }
            FuzzCommand::Uidl(n) => {
                encode_variant(out, 8, N);
                n.encode(out);
            }
            FuzzCommand::Retr(n) => {
                encode_variant(out, 9, N);
                n.encode(out);
            }
            FuzzCommand::Top(n, l) => {
                encode_variant(out, 10, N);
                n.encode(out);
                l.encode(out);
            }
            FuzzCommand::Dele(n) => {
                encode_variant(out, 11, N);
                n.encode(out);
            }
            FuzzCommand::Noop => encode_variant(out, 12, N),
            FuzzCommand::Rset => encode_variant(out, 13, N),
            FuzzCommand::Quit => encode_variant(out, 14, N),
            FuzzCommand::Utf8 => encode_variant(out, 15, N),
            FuzzCommand::Lang(t) => {
                encode_variant(out, 16, N);
                t.encode(out);
            }
            FuzzCommand::Raw {
                verb,
                args,
                multiline,
            } => {
                encode_variant(out, 17, N);
                verb.encode(out);
                args.encode(out);
                multiline.encode(out);
            }
        }
    }
}

impl Encode for SessionConfig {
    fn encode(&self, out: &mut Vec<u8>) {
        self.encrypted.encode(out);
        self.allow_plaintext.encode(out);
        self.small_limits.encode(out);
        self.window.encode(out);
        self.body_line_limit.encode(out);
        self.small_read.encode(out);
    }
}

impl Encode for Op {
    fn encode(&self, out: &mut Vec<u8>) {
        const N: u32 = 6;
        match self {
            Op::Submit(c) => {
                encode_variant(out, 0, N);
                c.encode(out);
            }
            Op::Receive(b) => {
                encode_variant(out, 1, N);
                b.encode(out);
            }
            Op::ReceiveBuffered(b) => {
                encode_variant(out, 2, N);
                b.encode(out);
            }
            Op::Eof => encode_variant(out, 3, N),
            Op::TlsEstablished => encode_variant(out, 4, N),
            Op::PollMany(n) => {
                encode_variant(out, 5, N);
                n.encode(out);
            }
        }
    }
}

impl Encode for SessionInput {
    fn encode(&self, out: &mut Vec<u8>) {
        self.config.encode(out);
        self.ops.encode(out);
    }
}

impl Encode for BodyInput {
    fn encode(&self, out: &mut Vec<u8>) {
        self.body_line_limit.encode(out);
        self.chunk_limit.encode(out);
        self.chunks.encode(out);
        // Last field of the top-level input: `arbitrary_take_rest`, all the rest.
        out.extend_from_slice(&self.message.0);
    }
}

impl Encode for SaslCase {
    fn encode(&self, out: &mut Vec<u8>) {
        const N: u32 = 7;
        match self {
            SaslCase::ScramSha1 { authzid } => {
                encode_variant(out, 0, N);
                authzid.encode(out);
            }
            SaslCase::ScramSha256 { authzid } => {
                encode_variant(out, 1, N);
                authzid.encode(out);
            }
            SaslCase::CramMd5 { user, password } => {
                encode_variant(out, 2, N);
                user.encode(out);
                password.encode(out);
            }
            SaslCase::Login { user, password } => {
                encode_variant(out, 3, N);
                user.encode(out);
                password.encode(out);
            }
            SaslCase::Plain {
                authzid,
                user,
                password,
            } => {
                encode_variant(out, 4, N);
                authzid.encode(out);
                user.encode(out);
                password.encode(out);
            }
            SaslCase::XOauth2 { user, token } => {
                encode_variant(out, 5, N);
                user.encode(out);
                token.encode(out);
            }
            SaslCase::OAuthBearer { user, token } => {
                encode_variant(out, 6, N);
                user.encode(out);
                token.encode(out);
            }
        }
    }
}

impl Encode for SaslInput {
    fn encode(&self, out: &mut Vec<u8>) {
        self.case.encode(out);
        self.initial.encode(out);
        self.challenges.encode(out);
    }
}

impl Encode for EncodeInput {
    fn encode(&self, out: &mut Vec<u8>) {
        self.encrypted.encode(out);
        self.allow_plaintext.encode(out);
        self.logged_in.encode(out);
        self.apop_greeting.encode(out);
        self.command.encode(out);
    }
}

/// Encodes `value` and checks that `Arbitrary` decodes the bytes back to it.
pub fn encode_checked<T>(value: &T) -> Vec<u8>
where
    T: Encode + for<'a> Arbitrary<'a> + PartialEq + std::fmt::Debug,
{
    let mut out = Vec::new();
    value.encode(&mut out);
    let back = T::arbitrary_take_rest(Unstructured::new(&out)).expect("seed does not decode");
    assert_eq!(
        &back, value,
        "seed does not decode to the value it was written from"
    );
    out
}
