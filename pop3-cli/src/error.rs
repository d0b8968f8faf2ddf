//! Exit codes and the one-line error every failure ends in.

use std::fmt;
use std::io;

use pop3_proto::{ProtocolError, ResponseCode, ServerError, UsageError};
use pop3_transport::{CertificateInfo, Error, IoSubject, Phase};

use crate::advice::tls_advice;

/// How `pop3` exits (sysexits(3) numbers). The table is repeated in
/// `--help` and in the README; keep the three in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 0: everything worked.
    Ok = 0,
    /// 64 `EX_USAGE`: the command line is wrong.
    Usage = 64,
    /// 65 `EX_DATAERR`: the server broke the protocol (a malformed or
    /// unexpected reply).
    DataErr = 65,
    /// 69 `EX_UNAVAILABLE`: the server is there but unusable: it closed
    /// the connection, rejected the greeting, said nothing after
    /// connecting, or a proxy failed its handshake.
    Unavailable = 69,
    /// 70 `EX_SOFTWARE`: a bug in pop3 (the library refused a call).
    Software = 70,
    /// 74 `EX_IOERR`: a local file or stream failed (the Maildir, the mbox,
    /// the state file, stdout, the CA file).
    IoErr = 74,
    /// 75 `EX_TEMPFAIL`: try again later: the network is not there now
    /// (the name does not resolve, the connection is refused, no route, a
    /// time limit ran out), some messages were not delivered (MDA failure,
    /// a message the server would not send), the mailbox is in use
    /// (`[IN-USE]`, `[LOGIN-DELAY]`, `[SYS/TEMP]`), or another fetch for the
    /// same account is running.
    TempFail = 75,
    /// 76 `EX_PROTOCOL`: the server refused a command with `-ERR` (for
    /// example no such message).
    Refused = 76,
    /// 77 `EX_NOPERM`: the credentials were refused, or pop3 refused to send
    /// them over an unencrypted connection.
    NoPerm = 77,
    /// 78: TLS failed: the certificate could not be verified, the handshake
    /// failed, `--tls starttls` and the server does not offer STLS, or port
    /// 995 reached without TLS said nothing (it expects implicit TLS).
    Tls = 78,
    /// 130: stopped by Ctrl-C (SIGINT), after saying what was saved.
    Interrupted = 130,
    /// 143: stopped by SIGTERM, after saying what was saved.
    Terminated = 143,
}

impl Exit {
    /// The process exit status.
    pub(crate) fn code(self) -> u8 {
        self as u8
    }
}

/// The exit-code table shown at the end of `--help`.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0   success
  64  usage error (bad command line)
  65  the server broke the protocol
  69  the server is unusable: it closed the connection, rejected the
      greeting, or said nothing at all
  70  internal error (a bug in pop3)
  74  local I/O error (Maildir, mbox, state file, stdout, CA file)
  75  temporary: offline (unknown host, connection refused, no route, a
      time limit ran out), some messages not delivered (retried next
      time), the session ran past --session-timeout (what was stored is
      kept), mailbox in use, or another fetch for this account is running
  76  the server refused a command (-ERR), e.g. no such message
  77  credentials refused, or not sent over an unencrypted connection
      (see --allow-plaintext-credentials)
  78  TLS failure: certificate not trusted, handshake failed, STLS not
      offered, or port 995 silent without TLS (use pop3s://)
  130  interrupted by Ctrl-C (what was saved is kept)
  143  stopped by SIGTERM (what was saved is kept)";

/// A failure: what to print after `pop3: ` and how to exit.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The exit status.
    pub(crate) exit: Exit,
    /// One line, without the `pop3: ` prefix.
    pub(crate) message: String,
}

impl Failure {
    /// A failure with this exit status and message.
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: message.into(),
        }
    }

    /// A command-line mistake (64).
    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Usage, message)
    }

    /// A local I/O failure (74), with what was being done.
    pub(crate) fn io(context: impl fmt::Display, error: &io::Error) -> Failure {
        Failure::new(Exit::IoErr, format!("{context}: {error}"))
    }

    /// Appends what else the user should know (what was saved, ...).
    pub(crate) fn note(mut self, note: impl fmt::Display) -> Failure {
        self.message = format!("{}; {note}", self.message);
        self
    }

    /// Prefixes the message with some context.
    pub(crate) fn context(mut self, context: impl fmt::Display) -> Failure {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Always one line, whatever the server or the OS put in the text.
        for c in self.message.chars() {
            if c.is_control() {
                f.write_str(" ")?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// The library's refusal of a `SSL_CERT_FILE` it cannot use: a trust
/// problem, not a network one.
fn cert_file_error(error: &std::io::Error) -> Option<&pop3_transport::CertFileError> {
    error.get_ref()?.downcast_ref()
}

/// The library's error as the command reports it: its exit status and one
/// line. The one place that reads [`Error`]; `presented` is the certificate
/// the server showed in the handshake that failed, if known, which a TLS
/// error is explained with.
pub(crate) fn net_failure(error: &Error, presented: Option<&CertificateInfo>) -> Failure {
    let lost_in_reply = "the connection was lost (the server closed it in the middle of a reply)";
    let (exit, message) = match error {
        Error::Io(e) if cert_file_error(e).is_some() => (Exit::Tls, format!("TLS: {e}")),
        Error::Io(e) if is_lost(e) => (
            Exit::Unavailable,
            format!("the connection was lost: {}", without_server(error, e)),
        ),
        Error::Io(e) => (
            network_exit(e),
            format!("network: {}", without_server(error, e)),
        ),
        Error::Tls(e) => {
            let advice = error
                .tls_diagnosis(presented)
                .map_or_else(|| e.to_string(), |d| tls_advice(&d));
            (Exit::Tls, format!("TLS: {advice}"))
        }
        Error::Protocol(ProtocolError::UnexpectedEof) => {
            (Exit::Unavailable, lost_in_reply.to_owned())
        }
        Error::Protocol(e) => {
            let exit = match e {
                ProtocolError::TlsInsteadOfGreeting => Exit::Tls,
                ProtocolError::GreetingRejected(e) => temporary_or(e, Exit::Unavailable),
                _ => Exit::DataErr,
            };
            (exit, format!("the server broke the protocol: {e}"))
        }
        Error::BadReply(e) => (Exit::DataErr, format!("unusable reply: {e}")),
        Error::Sink(e) => (Exit::IoErr, e.to_string()),
        Error::Usage(UsageError::PlaintextCredentials) => (Exit::NoPerm, plaintext_message()),
        Error::Usage(e @ UsageError::Closed) => (Exit::Unavailable, e.to_string()),
        Error::Usage(e) => (Exit::Software, e.to_string()),
        Error::Server(e) => (temporary_or(e, Exit::Refused), server_said(e)),
        // Without TLS on port 995, after ten seconds rather than the idle
        // limit (the library decides): a misconfiguration, not a server to
        // try again later.
        Error::Timeout(phase @ Phase::GreetingOnImplicitTlsPort) => (
            Exit::Tls,
            format!(
                "timed out {phase}: the server said nothing; this port may expect TLS \
                 (implicit TLS, 995): use pop3s:// or --tls implicit"
            ),
        ),
        // Elsewhere the whole read limit passed without a word.
        Error::Timeout(phase @ Phase::Greeting) => (
            Exit::Unavailable,
            format!(
                "timed out {phase}: the server said nothing; if this port expects \
                 implicit TLS, use pop3s:// or --tls implicit"
            ),
        ),
        // The overall deadline is no sign of a dead server: what was stored
        // is kept, and the next run goes on from there.
        Error::Timeout(Phase::Session) => (
            Exit::TempFail,
            "the session ran past its overall time limit (--session-timeout, \
             key session_timeout); what was already stored is kept, and the next \
             run goes on from there"
                .to_owned(),
        ),
        // A slow or absent network: the next run may well get through.
        Error::Timeout(phase) => (
            Exit::TempFail,
            format!("timed out ({phase}; the idle limit of --timeout)"),
        ),
        Error::Closed => (
            Exit::Unavailable,
            "the connection was lost (the server closed it)".to_owned(),
        ),
        Error::StlsUnavailable => (
            Exit::Tls,
            "the server does not offer STLS (refusing to continue without TLS)".to_owned(),
        ),
        Error::Proxy(e) => {
            use pop3_transport::socks5::{ReplyCode, Socks5ConnectError, Socks5Error};
            let exit = match e {
                Socks5ConnectError::Io(e) => network_exit(e),
                // The proxy could not reach the mail server: as offline.
                Socks5ConnectError::Socks5(Socks5Error::ConnectFailed(
                    ReplyCode::NetworkUnreachable
                    | ReplyCode::HostUnreachable
                    | ReplyCode::ConnectionRefused
                    | ReplyCode::TtlExpired,
                )) => Exit::TempFail,
                _ => Exit::Unavailable,
            };
            (exit, format!("proxy: {e}"))
        }
        other => (Exit::Software, other.to_string()),
    };
    Failure::new(exit, message)
}

/// An I/O error's text without the `host:port` the library puts first:
/// the command names the server itself (`host:port: network: ...`), and
/// would otherwise say it twice.
fn without_server(error: &Error, io: &io::Error) -> String {
    match error.io_context() {
        Some(context) if matches!(context.subject, IoSubject::Server { .. }) => {
            context.error.to_string()
        }
        _ => io.to_string(),
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        net_failure(&error, None)
    }
}

/// `-ERR` as the command words it.
fn server_said(error: &ServerError) -> String {
    match &error.code {
        Some(code) => format!("the server said -ERR [{code}] {}", error.text),
        None => format!("the server said -ERR {}", error.text),
    }
}

/// `[IN-USE]`, `[LOGIN-DELAY]` and `[SYS/TEMP]` mean "later"; anything else
/// gets `otherwise`.
fn temporary_or(error: &ServerError, otherwise: Exit) -> Exit {
    match &error.code {
        Some(code) if code.is_temporary() => Exit::TempFail,
        _ => otherwise,
    }
}

/// How a socket error that is not a lost connection exits: 75 when it may
/// pass by itself (no network now: the name does not resolve, the
/// connection is refused, no route, a time limit), so that cron and systemd
/// count an offline laptop's run as "later" rather than failed; 69 for what
/// will not (the firewall forbids it, an address that cannot be used).
fn network_exit(error: &io::Error) -> Exit {
    match error.kind() {
        io::ErrorKind::PermissionDenied
        | io::ErrorKind::InvalidInput
        | io::ErrorKind::InvalidData
        | io::ErrorKind::Unsupported
        | io::ErrorKind::AddrInUse => Exit::Unavailable,
        // Lost mid-session: the server's doing as often as the network's.
        _ if is_lost(error) => Exit::Unavailable,
        // Refused, unreachable, timed out, and the resolver's failures
        // (which std reports without a kind of their own).
        _ => Exit::TempFail,
    }
}

/// Whether a socket error means the connection went away.
fn is_lost(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// The message for credentials that would go out unencrypted.
pub(crate) fn plaintext_message() -> String {
    "refusing to send credentials over an unencrypted connection \
     (use --tls implicit or --tls starttls, or pass --allow-plaintext-credentials)"
        .to_owned()
}

/// A failure of login or authentication: a plain `-ERR` means the
/// credentials were refused (77); a temporary response code means try later
/// (75). `mechanism` names what was tried (`A, then B` when `auto` went on
/// after a refusal: each was refused); `login_delay` is the server's
/// advertised `LOGIN-DELAY`, if known, to say when to try again.
pub(crate) fn auth_failure(error: Error, mechanism: &str, login_delay: Option<u64>) -> Failure {
    match error {
        Error::Server(e) => {
            let exit = temporary_or(&e, Exit::NoPerm);
            if let (Exit::NoPerm, Some(refusal)) = (exit, &e.token_refusal) {
                // The report says more than the -ERR: put it first.
                let code = e
                    .code
                    .as_ref()
                    .map(|c| format!("[{c}] "))
                    .unwrap_or_default();
                return Failure::new(
                    exit,
                    format!("{mechanism}: {refusal} (the server said: {code}{})", e.text),
                );
            }
            let when = match login_delay {
                Some(seconds) if seconds > 0 => format!("try again in {seconds} s"),
                _ => "try again later".to_owned(),
            };
            let what = match &e.code {
                _ if exit == Exit::NoPerm => format!("{mechanism}: credentials refused"),
                Some(ResponseCode::InUse) => format!(
                    "{mechanism}: the mailbox is in use by another session (IN-USE); try again later"
                ),
                Some(ResponseCode::LoginDelay) => format!(
                    "{mechanism}: the server refuses to log in again so soon (LOGIN-DELAY); {when}"
                ),
                _ => format!("{mechanism}: login not possible now"),
            };
            Failure::new(exit, format!("{what}: {}", server_said(&e)))
        }
        Error::Usage(UsageError::NoApopTimestamp) => Failure::new(
            Exit::NoPerm,
            "APOP: the server's greeting has no timestamp; choose another --auth",
        ),
        Error::Usage(UsageError::Sasl(e)) => Failure::new(Exit::Usage, format!("{mechanism}: {e}")),
        Error::Protocol(ProtocolError::Sasl(e)) | Error::BadReply(ProtocolError::Sasl(e)) => {
            Failure::new(
                Exit::NoPerm,
                format!("{mechanism}: authentication failed: {e}"),
            )
        }
        other => Failure::from(other).context(mechanism),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let all = [
            Exit::Ok,
            Exit::Usage,
            Exit::DataErr,
            Exit::Unavailable,
            Exit::Software,
            Exit::IoErr,
            Exit::TempFail,
            Exit::Refused,
            Exit::NoPerm,
            Exit::Tls,
            Exit::Interrupted,
            Exit::Terminated,
        ];
        let mut codes: Vec<u8> = all.iter().map(|e| e.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        for code in codes.iter().skip(1) {
            assert!(EXIT_CODES_HELP.contains(&format!("  {code}  ")), "{code}");
        }
    }

    #[test]
    fn messages_are_one_line() {
        let f = Failure::new(Exit::Refused, "a\r\nb\x1b[31m");
        assert_eq!(f.to_string(), "a  b [31m");
    }

    #[test]
    fn auth_codes() {
        let refused = ServerError::new(Some(ResponseCode::Auth), pop3_proto::Text::sanitize(b"no"));
        assert_eq!(
            auth_failure(Error::Server(refused), "PASS", None).exit,
            Exit::NoPerm
        );
        let busy = ServerError::new(
            Some(ResponseCode::InUse),
            pop3_proto::Text::sanitize(b"locked"),
        );
        assert_eq!(
            auth_failure(Error::Server(busy), "PASS", None).exit,
            Exit::TempFail
        );
        assert_eq!(
            Failure::from(Error::Usage(UsageError::PlaintextCredentials)).exit,
            Exit::NoPerm
        );
    }
}
