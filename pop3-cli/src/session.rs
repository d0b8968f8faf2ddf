//! The blocking interface the commands are written against, and the `-v`
//! trace.
//!
//! `transport.rs` implements [`Session`] once, over the library's one
//! connection type on any runtime. The `-v` trace is the library's own wire
//! trace (from the core, secrets redacted), printed as it happens.

use std::io::{self, Write};

use pop3_proto::{
    AuthMethod, Capabilities, Capability, Greeting, ListEntry, MsgNum, Secret, Stat, UidlEntry,
};

use crate::error::NetError;

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

/// What the TLS layer of a session negotiated, and the certificates the
/// server presented (for `serverinfo`).
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsDetails {
    /// The protocol version, as `TLSv1.3`.
    pub(crate) version: Option<String>,
    /// The cipher suite's IANA name, as `TLS13_AES_256_GCM_SHA384`.
    pub(crate) cipher: Option<String>,
    /// The server's certificate chain (DER), its own certificate first.
    pub(crate) chain: Vec<Vec<u8>>,
}

/// A logged-in or not yet logged-in POP3 session, whatever the runtime.
/// Each method sends its command and waits for the reply.
pub(crate) trait Session {
    /// The server's greeting.
    fn greeting(&self) -> &Greeting;
    /// The TLS layer's details, once TLS is on.
    fn tls(&self) -> Option<TlsDetails>;
    /// `STLS` and the TLS handshake (the core asks `CAPA` first if it must,
    /// and again over TLS).
    fn stls(&mut self) -> Result<(), NetError>;
    /// Whether the connection is encrypted (implicit TLS or STLS done).
    fn is_encrypted(&self) -> bool;
    /// `CAPA`.
    fn capa(&mut self) -> Result<Capabilities, NetError>;
    /// The capabilities from the latest `CAPA` valid now, if known.
    fn capabilities(&self) -> Option<Capabilities>;
    /// Every method the latest login tried, in order.
    fn login_attempts(&self) -> Vec<String>;
    /// Logs in with `method` (`Auto`: the core picks the strongest offered).
    fn authenticate(
        &mut self,
        method: AuthMethod,
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
    /// `UIDL` and `LIST`, pipelined when the server allows; one result each.
    #[allow(clippy::type_complexity)]
    fn uidl_and_list(
        &mut self,
    ) -> Result<
        (
            Result<Vec<UidlEntry>, NetError>,
            Result<Vec<ListEntry>, NetError>,
        ),
        NetError,
    >;
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
    /// `QUIT`: the server commits the deletions.
    fn quit(self: Box<Self>) -> Result<(), NetError>;
    /// [`Session::dele_many`] with `QUIT` in the same flight: one result per
    /// `DELE`, and `QUIT`'s (only when that is `Ok` were they committed).
    #[allow(clippy::type_complexity)]
    fn dele_many_and_quit(
        self: Box<Self>,
        msgs: &[MsgNum],
    ) -> Result<(Vec<Result<(), NetError>>, Result<(), NetError>), NetError>;
    /// [`Session::retr_many`] with `QUIT` in the same flight, for a session
    /// that deletes nothing: the outer result is the retrieval's, the inner
    /// one `QUIT`'s.
    fn retr_many_and_quit(
        self: Box<Self>,
        msgs: &[MsgNum],
        sink: &mut dyn MessageSink,
    ) -> Result<Result<(), NetError>, NetError>;
}

/// Prints the library's wire trace (`-v`): every line sent and every status
/// line received, in wire order, as `C: ...` and `S: ...` on stderr. The
/// lines come from the core with passwords and SASL responses already
/// `<redacted>`, so every runtime prints the same trace.
pub(crate) fn install_wire_trace() {
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry().with(WireTrace);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// A tracing layer writing the `pop3::wire` events' messages to stderr.
struct WireTrace;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for WireTrace {
    fn enabled(
        &self,
        metadata: &tracing::Metadata<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        metadata.target() == "pop3::wire"
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let mut err = io::stderr().lock();
        let _ = writeln!(err, "{}", message.0);
    }
}

/// How a capability is written in a `CAPA` listing.
pub(crate) fn capability_line(capability: &Capability) -> String {
    capability.to_string()
}
