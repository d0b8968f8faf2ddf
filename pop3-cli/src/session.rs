//! One blocking interface over the three transports, and the `-v` trace.
//!
//! Every command of the CLI is written once against [`Session`]; the
//! transports implement it in `transport.rs` (the async ones by blocking on
//! a current-thread runtime).

use std::io::{self, Write};

use pop3_proto::{Capabilities, Capability, Greeting, ListEntry, MsgNum, Secret, Stat, UidlEntry};

use crate::error::NetError;

/// A login method the server is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    /// `USER` / `PASS`.
    User,
    /// `APOP`.
    Apop,
    /// `AUTH PLAIN`.
    Plain,
    /// `AUTH LOGIN`.
    Login,
    /// `AUTH CRAM-MD5`.
    CramMd5,
    /// `AUTH SCRAM-SHA-1`.
    ScramSha1,
    /// `AUTH SCRAM-SHA-256`.
    ScramSha256,
    /// `AUTH XOAUTH2` (the secret is an OAuth 2.0 access token).
    XOauth2,
    /// `AUTH OAUTHBEARER` (the secret is an OAuth 2.0 access token).
    OAuthBearer,
}

impl Mechanism {
    /// How the trace and the error messages name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mechanism::User => "USER/PASS",
            Mechanism::Apop => "APOP",
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::XOauth2 => "XOAUTH2",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// Receives the messages of [`Session::retr_many`] as they arrive.
pub(crate) trait MessageSink {
    /// The next piece of message `msg` (dot-unstuffed, line endings as sent).
    /// `Err(Stop)` ends the retrieval: the sink keeps the reason itself.
    fn on_chunk(&mut self, msg: MsgNum, data: &[u8]) -> Result<(), Stop>;

    /// Message `msg` is complete (`Ok`) or failed; after a failure the chunks
    /// already given for it must be thrown away.
    fn on_end(&mut self, msg: MsgNum, result: Result<(), NetError>) -> Result<(), Stop>;
}

/// A [`MessageSink`] wants no more messages (it failed locally and keeps the
/// reason).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stop;

/// A logged-in or not yet logged-in POP3 session, whatever the runtime.
/// Each method sends its command and waits for the reply.
pub(crate) trait Session {
    /// The server's greeting.
    fn greeting(&self) -> &Greeting;
    /// Whether the connection is encrypted (implicit TLS or STLS done).
    fn is_encrypted(&self) -> bool;
    /// Whether the connection can still be used (no earlier fatal error).
    fn is_usable(&self) -> bool;
    /// The capabilities from the latest `CAPA` valid now, if known.
    fn capabilities(&self) -> Option<Capabilities>;
    /// `CAPA`.
    fn capa(&mut self) -> Result<Capabilities, NetError>;
    /// Logs in with `mechanism`.
    fn authenticate(
        &mut self,
        mechanism: Mechanism,
        user: &str,
        secret: Secret<String>,
    ) -> Result<(), NetError>;
    /// `STAT`.
    fn stat(&mut self) -> Result<Stat, NetError>;
    /// `LIST`.
    fn list(&mut self) -> Result<Vec<ListEntry>, NetError>;
    /// `LIST n`.
    fn list_one(&mut self, msg: MsgNum) -> Result<ListEntry, NetError>;
    /// `UIDL`.
    fn uidl(&mut self) -> Result<Vec<UidlEntry>, NetError>;
    /// `UIDL n`.
    fn uidl_one(&mut self, msg: MsgNum) -> Result<UidlEntry, NetError>;
    /// `RETR n` streamed into `out`; the byte count.
    fn retr_to(&mut self, msg: MsgNum, out: &mut dyn Write) -> Result<u64, NetError>;
    /// `TOP n lines` streamed into `out`; the byte count.
    fn top_to(&mut self, msg: MsgNum, lines: u32, out: &mut dyn Write) -> Result<u64, NetError>;
    /// `RETR` for every message, pipelined by the core when the server
    /// allows it, each message streamed to `sink`.
    fn retr_many(&mut self, msgs: &[MsgNum], sink: &mut dyn MessageSink) -> Result<(), NetError>;
    /// `DELE n`.
    fn dele(&mut self, msg: MsgNum) -> Result<(), NetError>;
    /// `DELE` for each message, pipelined by the core when the server
    /// allows it: one result per message; the outer `Err` ended the
    /// connection.
    fn dele_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<(), NetError>>, NetError>;
    /// `QUIT`: the server commits the deletions.
    fn quit(self: Box<Self>) -> Result<(), NetError>;
}

/// Writes a protocol trace of every call to stderr (`-v`): the commands the
/// calls send, and a summary of each reply. Secrets never appear: `PASS`,
/// `APOP` digests and SASL exchanges are shown as `<redacted>`.
pub(crate) struct Traced {
    inner: Box<dyn Session>,
}

fn trace(line: std::fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

fn trace_result<T>(result: &Result<T, NetError>, ok: impl FnOnce(&T) -> String) {
    match result {
        Ok(value) => trace(format_args!("S: +OK {}", ok(value))),
        Err(NetError::Server(e)) => trace(format_args!("S: -ERR {}", e.text)),
        Err(other) => trace(format_args!("!  {other}")),
    }
}

impl Traced {
    /// Traces `inner`, starting with its greeting.
    pub(crate) fn new(inner: Box<dyn Session>) -> Traced {
        trace(format_args!(
            "S: +OK {}{}",
            inner.greeting().text,
            if inner.is_encrypted() {
                ""
            } else {
                "  (not encrypted)"
            }
        ));
        Traced { inner }
    }
}

/// How a capability is written in a `CAPA` listing.
pub(crate) fn capability_line(capability: &Capability) -> String {
    match capability {
        Capability::Top => "TOP".to_owned(),
        Capability::User => "USER".to_owned(),
        Capability::Sasl(mechanisms) => {
            let mut line = "SASL".to_owned();
            for m in mechanisms {
                line.push(' ');
                line.push_str(m);
            }
            line
        }
        Capability::RespCodes => "RESP-CODES".to_owned(),
        Capability::AuthRespCode => "AUTH-RESP-CODE".to_owned(),
        Capability::LoginDelay { seconds, per_user } => {
            format!(
                "LOGIN-DELAY {seconds}{}",
                if *per_user { " USER" } else { "" }
            )
        }
        Capability::Pipelining => "PIPELINING".to_owned(),
        Capability::Expire { days, per_user } => format!(
            "EXPIRE {}{}",
            days.map_or_else(|| "NEVER".to_owned(), |d| d.to_string()),
            if *per_user { " USER" } else { "" }
        ),
        Capability::Uidl => "UIDL".to_owned(),
        Capability::Implementation(text) => format!("IMPLEMENTATION {text}"),
        Capability::Stls => "STLS".to_owned(),
        Capability::Utf8 { user } => format!("UTF8{}", if *user { " USER" } else { "" }),
        Capability::Lang => "LANG".to_owned(),
        Capability::Other { name, args } => {
            let mut line = name.clone();
            for a in args {
                line.push(' ');
                line.push_str(a);
            }
            line
        }
        other => format!("{other:?}"),
    }
}

fn summary_capa(c: &Capabilities) -> String {
    let names: Vec<String> = c.list.iter().map(capability_line).collect();
    format!("[{}]", names.join(", "))
}

/// Traces each message of a [`Session::retr_many`].
struct TracedSink<'a> {
    inner: &'a mut dyn MessageSink,
    bytes: u64,
}

impl MessageSink for TracedSink<'_> {
    fn on_chunk(&mut self, msg: MsgNum, data: &[u8]) -> Result<(), Stop> {
        self.bytes += data.len() as u64;
        self.inner.on_chunk(msg, data)
    }

    fn on_end(&mut self, msg: MsgNum, result: Result<(), NetError>) -> Result<(), Stop> {
        let bytes = std::mem::take(&mut self.bytes);
        match &result {
            Ok(()) => trace(format_args!("S: +OK message {msg}: {bytes} octets")),
            Err(NetError::Server(e)) => trace(format_args!("S: -ERR (RETR {msg}) {}", e.text)),
            Err(e) => trace(format_args!("!  RETR {msg}: {e}")),
        }
        self.inner.on_end(msg, result)
    }
}

impl Session for Traced {
    fn greeting(&self) -> &Greeting {
        self.inner.greeting()
    }

    fn is_encrypted(&self) -> bool {
        self.inner.is_encrypted()
    }

    fn is_usable(&self) -> bool {
        self.inner.is_usable()
    }

    fn capabilities(&self) -> Option<Capabilities> {
        self.inner.capabilities()
    }

    fn capa(&mut self) -> Result<Capabilities, NetError> {
        trace(format_args!("C: CAPA"));
        let result = self.inner.capa();
        trace_result(&result, summary_capa);
        result
    }

    fn authenticate(
        &mut self,
        mechanism: Mechanism,
        user: &str,
        secret: Secret<String>,
    ) -> Result<(), NetError> {
        match mechanism {
            Mechanism::User => {
                trace(format_args!("C: USER {user}"));
                trace(format_args!("C: PASS <redacted>"));
            }
            Mechanism::Apop => trace(format_args!("C: APOP {user} <redacted>")),
            other => trace(format_args!("C: AUTH {} <redacted>", other.name())),
        }
        let result = self.inner.authenticate(mechanism, user, secret);
        trace_result(&result, |()| "logged in".to_owned());
        result
    }

    fn stat(&mut self) -> Result<Stat, NetError> {
        trace(format_args!("C: STAT"));
        let result = self.inner.stat();
        trace_result(&result, |s| format!("{} {}", s.count, s.size));
        result
    }

    fn list(&mut self) -> Result<Vec<ListEntry>, NetError> {
        trace(format_args!("C: LIST"));
        let result = self.inner.list();
        trace_result(&result, |l| format!("({} messages)", l.len()));
        result
    }

    fn list_one(&mut self, msg: MsgNum) -> Result<ListEntry, NetError> {
        trace(format_args!("C: LIST {msg}"));
        let result = self.inner.list_one(msg);
        trace_result(&result, |e| format!("{} {}", e.msg, e.size));
        result
    }

    fn uidl(&mut self) -> Result<Vec<UidlEntry>, NetError> {
        trace(format_args!("C: UIDL"));
        let result = self.inner.uidl();
        trace_result(&result, |l| format!("({} messages)", l.len()));
        result
    }

    fn uidl_one(&mut self, msg: MsgNum) -> Result<UidlEntry, NetError> {
        trace(format_args!("C: UIDL {msg}"));
        let result = self.inner.uidl_one(msg);
        trace_result(&result, |e| format!("{} {}", e.msg, e.uid));
        result
    }

    fn retr_to(&mut self, msg: MsgNum, out: &mut dyn Write) -> Result<u64, NetError> {
        trace(format_args!("C: RETR {msg}"));
        let result = self.inner.retr_to(msg, out);
        trace_result(&result, |n| format!("message {msg}: {n} octets"));
        result
    }

    fn top_to(&mut self, msg: MsgNum, lines: u32, out: &mut dyn Write) -> Result<u64, NetError> {
        trace(format_args!("C: TOP {msg} {lines}"));
        let result = self.inner.top_to(msg, lines, out);
        trace_result(&result, |n| format!("message {msg}: {n} octets"));
        result
    }

    fn retr_many(&mut self, msgs: &[MsgNum], sink: &mut dyn MessageSink) -> Result<(), NetError> {
        for msg in msgs {
            trace(format_args!("C: RETR {msg}"));
        }
        let mut traced = TracedSink {
            inner: sink,
            bytes: 0,
        };
        let result = self.inner.retr_many(msgs, &mut traced);
        if let Err(e) = &result {
            trace(format_args!("!  {e}"));
        }
        result
    }

    fn dele(&mut self, msg: MsgNum) -> Result<(), NetError> {
        trace(format_args!("C: DELE {msg}"));
        let result = self.inner.dele(msg);
        trace_result(&result, |()| format!("message {msg} marked for deletion"));
        result
    }

    fn dele_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<(), NetError>>, NetError> {
        for msg in msgs {
            trace(format_args!("C: DELE {msg}"));
        }
        let result = self.inner.dele_many(msgs);
        match &result {
            Ok(results) => {
                for (msg, one) in msgs.iter().zip(results) {
                    trace_result(one, |()| format!("message {msg} marked for deletion"));
                }
            }
            Err(e) => trace(format_args!("!  {e}")),
        }
        result
    }

    fn quit(self: Box<Self>) -> Result<(), NetError> {
        trace(format_args!("C: QUIT"));
        let result = self.inner.quit();
        trace_result(&result, |()| "bye".to_owned());
        result
    }
}
