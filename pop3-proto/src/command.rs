//! Commands a client sends, with their validation and wire encoding.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use crate::sasl::Mechanism;
use crate::types::MsgNum;
use crate::{Secret, UsageError};

/// A POP3 command, as submitted to [`Client::submit`](crate::Client::submit).
#[non_exhaustive]
pub enum Command {
    /// `USER name` (RFC 1939).
    User(String),
    /// `PASS password` (RFC 1939). Must follow an accepted `USER`.
    Pass(Secret<String>),
    /// `APOP name digest` (RFC 1939): the digest is computed from the greeting's
    /// timestamp when the command is sent.
    Apop {
        /// The mailbox name.
        user: String,
        /// The shared secret.
        password: Secret<String>,
    },
    /// `AUTH mechanism` with a SASL exchange (RFC 5034).
    Auth(Box<dyn Mechanism>),
    /// `STLS` (RFC 2595).
    Stls,
    /// `CAPA` (RFC 2449).
    Capa,
    /// `STAT`.
    Stat,
    /// `LIST` or `LIST n`.
    List(Option<MsgNum>),
    /// `UIDL` or `UIDL n`.
    Uidl(Option<MsgNum>),
    /// `RETR n`: the message arrives as [`Event::Body`](crate::Event::Body) chunks.
    Retr(MsgNum),
    /// `TOP n lines`: headers, blank line and the first `lines` body lines, as chunks.
    Top(MsgNum, u32),
    /// `DELE n`: marks for deletion; committed only by `QUIT` in the transaction state.
    Dele(MsgNum),
    /// `NOOP`.
    Noop,
    /// `RSET`: unmarks deleted messages.
    Rset,
    /// `QUIT`.
    Quit,
    /// `UTF8` (RFC 6856).
    Utf8,
    /// `LANG` (list the languages) or `LANG tag` (choose one) (RFC 6856).
    Lang(Option<String>),
    /// A command this library does not model (RPOP, XTND, ...). `multiline` says
    /// whether a `+OK` reply is followed by a dot-terminated body, which then
    /// arrives as [`Event::Body`](crate::Event::Body) chunks.
    Raw {
        /// The keyword: 1 to 40 ASCII letters, digits or `-`.
        verb: String,
        /// Arguments, sent separated by single spaces.
        args: Vec<String>,
        /// Whether a `+OK` reply is multi-line.
        multiline: bool,
    },
}

impl Command {
    /// The keyword, for messages and traces.
    pub fn verb(&self) -> &str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Apop { .. } => "APOP",
            Command::Auth(_) => "AUTH",
            Command::Stls => "STLS",
            Command::Capa => "CAPA",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Uidl(_) => "UIDL",
            Command::Retr(_) => "RETR",
            Command::Top(..) => "TOP",
            Command::Dele(_) => "DELE",
            Command::Noop => "NOOP",
            Command::Rset => "RSET",
            Command::Quit => "QUIT",
            Command::Utf8 => "UTF8",
            Command::Lang(_) => "LANG",
            Command::Raw { verb, .. } => verb,
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::User(u) => f.debug_tuple("User").field(u).finish(),
            Command::Pass(p) => f.debug_tuple("Pass").field(p).finish(),
            Command::Apop { user, password } => f
                .debug_struct("Apop")
                .field("user", user)
                .field("password", password)
                .finish(),
            Command::Auth(m) => f.debug_tuple("Auth").field(&m.name()).finish(),
            Command::List(n) => f.debug_tuple("List").field(n).finish(),
            Command::Uidl(n) => f.debug_tuple("Uidl").field(n).finish(),
            Command::Retr(n) => f.debug_tuple("Retr").field(n).finish(),
            Command::Top(n, l) => f.debug_tuple("Top").field(n).field(l).finish(),
            Command::Dele(n) => f.debug_tuple("Dele").field(n).finish(),
            Command::Lang(t) => f.debug_tuple("Lang").field(t).finish(),
            Command::Raw {
                verb,
                args,
                multiline,
            } => f
                .debug_struct("Raw")
                .field("verb", verb)
                .field("args", args)
                .field("multiline", multiline)
                .finish(),
            other => f.write_str(other.verb()),
        }
    }
}

/// The longest command line RFC 2449 allows, CRLF included.
pub(crate) const MAX_COMMAND_LINE: usize = 255;

/// Rejects empty arguments and any CR, LF or NUL, which would let a caller's
/// string smuggle a second command onto the wire.
pub(crate) fn check_argument(arg: &str, what: &'static str) -> Result<(), UsageError> {
    if arg.is_empty() {
        return Err(UsageError::InvalidArgument(what));
    }
    if arg.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0')) {
        return Err(UsageError::InvalidArgument(
            "argument contains CR, LF or NUL",
        ));
    }
    if arg.len() > MAX_COMMAND_LINE - 8 {
        return Err(UsageError::InvalidArgument(
            "argument longer than a command line allows",
        ));
    }
    Ok(())
}

/// A keyword for a raw command: 1 to 40 ASCII letters, digits or `-`, and none
/// of the commands whose state changes the core must track itself.
pub(crate) fn check_raw_verb(verb: &str) -> Result<(), UsageError> {
    let valid = !verb.is_empty()
        && verb.len() <= 40
        && verb.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !valid {
        return Err(UsageError::InvalidArgument("raw command keyword"));
    }
    const TRACKED: [&str; 7] = ["USER", "PASS", "APOP", "AUTH", "STLS", "QUIT", "UTF8"];
    if TRACKED.iter().any(|t| t.eq_ignore_ascii_case(verb)) {
        return Err(UsageError::InvalidArgument(
            "this keyword changes session state: use its typed command",
        ));
    }
    Ok(())
}

/// How much of an encoded line a trace may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shown {
    /// The whole line: it carries no secret.
    All,
    /// Its first words; the rest is a secret, and the send buffer is wiped
    /// after carrying it.
    Words(usize),
}

impl Command {
    /// Appends this command's line, except for `AUTH` (see [`encode_auth`]).
    /// `APOP` needs the greeting's timestamp: without one, nothing is
    /// written and the error says why.
    pub(crate) fn encode(
        &self,
        out: &mut Vec<u8>,
        apop_timestamp: Option<&str>,
    ) -> Result<Shown, UsageError> {
        let mut number = [0u8; 20];
        let mut number2 = [0u8; 20];
        match self {
            Command::User(name) => encode_line(out, "USER", &[name.as_bytes()]),
            Command::Pass(password) => {
                encode_line(out, "PASS", &[password.expose().as_bytes()]);
                return Ok(Shown::Words(1));
            }
            Command::Apop { user, password } => {
                let timestamp = apop_timestamp.ok_or(UsageError::NoApopTimestamp)?;
                let digest = apop_digest(timestamp, password.expose());
                encode_line(out, "APOP", &[user.as_bytes(), &digest]);
                return Ok(Shown::Words(2));
            }
            Command::Auth(_) => {}
            Command::Stls => encode_line(out, "STLS", &[]),
            Command::Capa => encode_line(out, "CAPA", &[]),
            Command::Stat => encode_line(out, "STAT", &[]),
            Command::List(n) | Command::Uidl(n) => match n {
                Some(n) => encode_line(out, self.verb(), &[decimal(n.get().into(), &mut number)]),
                None => encode_line(out, self.verb(), &[]),
            },
            Command::Retr(n) | Command::Dele(n) => {
                encode_line(out, self.verb(), &[decimal(n.get().into(), &mut number)])
            }
            Command::Top(n, lines) => encode_line(
                out,
                "TOP",
                &[
                    decimal(n.get().into(), &mut number),
                    decimal((*lines).into(), &mut number2),
                ],
            ),
            Command::Noop => encode_line(out, "NOOP", &[]),
            Command::Rset => encode_line(out, "RSET", &[]),
            Command::Quit => encode_line(out, "QUIT", &[]),
            Command::Utf8 => encode_line(out, "UTF8", &[]),
            Command::Lang(tag) => match tag {
                Some(tag) => encode_line(out, "LANG", &[tag.as_bytes()]),
                None => encode_line(out, "LANG", &[]),
            },
            Command::Raw { verb, args, .. } => {
                let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
                encode_line(out, verb, &args);
            }
        }
        Ok(Shown::All)
    }
}

/// Appends `AUTH mechanism[ initial-response]` (RFC 5034). An initial
/// response that would make the line longer than 255 octets is not put on
/// it: it is returned, to be sent in answer to the server's first, empty
/// challenge.
pub(crate) fn encode_auth(
    out: &mut Vec<u8>,
    mechanism: &str,
    initial: Option<Secret<Vec<u8>>>,
) -> (Shown, Option<Secret<Vec<u8>>>) {
    let Some(initial) = initial else {
        encode_line(out, "AUTH", &[mechanism.as_bytes()]);
        return (Shown::All, None);
    };
    // The encoding carries the secret as much as the bytes do: wiped too.
    let encoded = Secret::new(if initial.expose().is_empty() {
        String::from("=")
    } else {
        BASE64.encode(initial.expose())
    });
    let encoded = encoded.expose();
    let line = 5 + mechanism.len() + 1 + encoded.len() + 2;
    if line <= MAX_COMMAND_LINE {
        encode_line(out, "AUTH", &[mechanism.as_bytes(), encoded.as_bytes()]);
        (Shown::Words(2), None)
    } else {
        encode_line(out, "AUTH", &[mechanism.as_bytes()]);
        (Shown::All, Some(initial))
    }
}

/// Appends one SASL response line (RFC 5034: base64, or empty for an empty
/// response), encoded straight into `out`, with room made first, so that no copy of
/// the response is left anywhere but in `out` (which the caller wipes).
pub(crate) fn encode_sasl_response(out: &mut Vec<u8>, data: &[u8]) {
    let start = out.len();
    let encoded_len = data.len().div_ceil(3) * 4;
    out.reserve(encoded_len + 2);
    out.resize(start + encoded_len, 0);
    // Cannot fail: the room is exactly the padded encoding's length.
    let written = BASE64
        .encode_slice(data, &mut out[start..])
        .unwrap_or_default();
    out.truncate(start + written);
    out.extend_from_slice(b"\r\n");
}

/// The line that cancels a SASL exchange (RFC 5034).
pub(crate) const SASL_CANCEL: &[u8] = b"*\r\n";

/// Appends `VERB[ arg]*\r\n`.
fn encode_line(out: &mut Vec<u8>, verb: &str, args: &[&[u8]]) {
    // Room for the whole line first: growing `out` after a password is in
    // would leave a copy of it in the freed buffer, which no one wipes.
    out.reserve(verb.len() + args.iter().map(|a| 1 + a.len()).sum::<usize>() + 2);
    out.extend_from_slice(verb.as_bytes());
    for arg in args {
        out.push(b' ');
        out.extend_from_slice(arg);
    }
    out.extend_from_slice(b"\r\n");
}

/// The APOP digest: lower-case hex MD5 of the timestamp followed by the secret.
fn apop_digest(timestamp: &str, secret: &str) -> [u8; 32] {
    use md5::{Digest, Md5};
    let mut hasher = Md5::new();
    hasher.update(timestamp.as_bytes());
    hasher.update(secret.as_bytes());
    let hash = hasher.finalize();
    let mut hex = [0u8; 32];
    for (i, byte) in hash.iter().enumerate() {
        hex[2 * i] = HEX[usize::from(byte >> 4)];
        hex[2 * i + 1] = HEX[usize::from(byte & 0xf)];
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes a decimal number without allocating.
fn decimal(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_responses_are_encoded_in_place() {
        for len in 0u8..12 {
            let data: Vec<u8> = (0..len).map(|i: u8| i.wrapping_mul(37)).collect();
            let mut out = b"x".to_vec();
            encode_sasl_response(&mut out, &data);
            let mut expected = b"x".to_vec();
            expected.extend_from_slice(BASE64.encode(&data).as_bytes());
            expected.extend_from_slice(b"\r\n");
            assert_eq!(out, expected, "{len}");
        }
    }

    #[test]
    fn apop_digest_matches_rfc1939_example() {
        let digest = apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf");
        assert_eq!(&digest, b"c4c9334bac560ecc979e58001b3e22fb");
    }

    #[test]
    fn arguments_with_line_breaks_are_refused() {
        for bad in ["a\r\nDELE 1", "a\nb", "a\rb", "a\0b", ""] {
            assert!(check_argument(bad, "x").is_err(), "{bad:?}");
        }
        assert!(check_argument("name with space", "x").is_ok());
    }

    #[test]
    fn decimal_writes_numbers() {
        let mut buf = [0; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(u64::MAX, &mut buf), b"18446744073709551615");
    }
}
