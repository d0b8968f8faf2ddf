//! Parsers for single reply lines. Private: nom never appears in the public API.
//!
//! Every function takes one complete line with its line ending already removed
//! (framing is done elsewhere) and returns this crate's own types.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_till1, take_while, take_while1};
use nom::character::complete::{digit1, space0, space1};
use nom::combinator::{all_consuming, opt, rest};
use nom::sequence::{delimited, preceded, terminated};
use nom::{IResult, Parser};

use crate::types::{
    Capability, Language, ListEntry, MsgNum, ResponseCode, ServerError, Stat, UidlEntry,
};
use crate::Text;

/// The kind of a status line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Status<'a> {
    /// `+OK`, with the text after it.
    Ok(&'a [u8]),
    /// `-ERR`, with the text after it.
    Err(&'a [u8]),
    /// `+ challenge` (SASL continuation, RFC 5034).
    Continuation(&'a [u8]),
}

/// What went wrong when reading a reply line.
pub(crate) type Invalid = &'static str;

fn indicator(word: &'static str) -> impl Fn(&[u8]) -> IResult<&[u8], &[u8]> {
    move |i| terminated(tag_no_case(word), alt((tag(" "), nom::combinator::eof))).parse(i)
}

/// Reads `+OK text`, `-ERR text` or `+ challenge`. Servers vary in case, so the
/// indicators are matched case-insensitively.
pub(crate) fn status(line: &[u8]) -> Option<Status<'_>> {
    if let Ok((text, _)) = indicator("+OK")(line) {
        return Some(Status::Ok(text));
    }
    if let Ok((text, _)) = indicator("-ERR")(line) {
        return Some(Status::Err(text));
    }
    if let Ok((text, _)) = indicator("+")(line) {
        return Some(Status::Continuation(text));
    }
    None
}

/// Whether the first bytes of an over-long line say `+OK` (Some(true)),
/// `-ERR` (Some(false)) or neither (None).
pub(crate) fn status_prefix(prefix: &[u8]) -> Option<bool> {
    let starts =
        |word: &[u8]| prefix.len() >= word.len() && prefix[..word.len()].eq_ignore_ascii_case(word);
    if starts(b"+OK") {
        Some(true)
    } else if starts(b"-ERR") {
        Some(false)
    } else {
        None
    }
}

fn response_code(i: &[u8]) -> IResult<&[u8], &[u8]> {
    terminated(
        delimited(tag("["), take_till1(|b| b == b']' || b == b'['), tag("]")),
        space0,
    )
    .parse(i)
}

/// Splits an optional `[CODE]` (RFC 2449) off the text of a reply.
pub(crate) fn coded_text(text: &[u8]) -> (Option<ResponseCode>, Text) {
    match response_code(text) {
        Ok((rest, code)) => {
            let code = Text::sanitize(code);
            (
                Some(ResponseCode::from_name(code.as_str())),
                Text::sanitize(rest),
            )
        }
        Err(_) => (None, Text::sanitize(text)),
    }
}

/// A `-ERR` reply's text as a [`ServerError`].
pub(crate) fn server_error(text: &[u8]) -> ServerError {
    let (code, text) = coded_text(text);
    ServerError::new(code, text)
}

/// Finds the APOP timestamp (a msg-id, `<local@domain>`) in greeting text.
///
/// Linear time: one scan for `<`, one for the `>` after it. The content must be
/// printable ASCII without spaces or further angle brackets and contain an `@`
/// with something on both sides; otherwise the greeting has no usable timestamp.
pub(crate) fn apop_timestamp(text: &[u8]) -> Option<String> {
    let open = memchr::memchr(b'<', text)?;
    let close = open + memchr::memchr(b'>', &text[open..])?;
    let inner = &text[open + 1..close];
    let valid_byte = |b: &u8| (0x21..=0x7e).contains(b) && *b != b'<';
    if inner.is_empty() || inner.len() > 250 || !inner.iter().all(valid_byte) {
        return None;
    }
    let at = memchr::memrchr(b'@', inner)?;
    if at == 0 || at + 1 == inner.len() {
        return None;
    }
    // Every byte is printable ASCII, so this is valid UTF-8.
    core::str::from_utf8(&text[open..=close])
        .ok()
        .map(ToString::to_string)
}

/// At most 20 digits are read; more is an overflow whatever they say.
fn number<T: TryFrom<u64>>(digits: &[u8]) -> Result<T, Invalid> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err("not a number");
    }
    if digits.len() > 20 {
        return Err("number too large");
    }
    let mut value: u64 = 0;
    for &d in digits {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or("number too large")?;
    }
    T::try_from(value).map_err(|_| "number too large")
}

fn u64_field(i: &[u8]) -> IResult<&[u8], &[u8]> {
    digit1(i)
}

fn msg_num(digits: &[u8]) -> Result<MsgNum, Invalid> {
    MsgNum::new(number::<u32>(digits)?).ok_or("message number 0")
}

/// Runs a parser that must consume the whole line; maps nom failure to `what`.
fn whole<'a, O>(
    line: &'a [u8],
    what: Invalid,
    parser: impl Parser<&'a [u8], Output = O, Error = nom::error::Error<&'a [u8]>>,
) -> Result<O, Invalid> {
    all_consuming(parser)
        .parse(line)
        .map(|(_, o)| o)
        .map_err(|_| what)
}

/// `+OK nn mm [anything]` — the text of a STAT reply. Extra spaces are tolerated.
pub(crate) fn stat(text: &[u8]) -> Result<Stat, Invalid> {
    let (count, size) = whole(
        text,
        "malformed STAT reply",
        (
            preceded(space0, u64_field),
            preceded(space1, u64_field),
            opt(preceded(space1, rest)),
        )
            .map(|(c, s, _)| (c, s)),
    )?;
    Ok(Stat {
        count: number(count)?,
        size: number(size)?,
    })
}

/// `msg size [anything]` — one scan listing (also the text of `+OK` to `LIST n`).
pub(crate) fn list_entry(line: &[u8]) -> Result<ListEntry, Invalid> {
    let (msg, size) = whole(
        line,
        "malformed LIST entry",
        (
            preceded(space0, u64_field),
            preceded(space1, u64_field),
            opt(preceded(space1, rest)),
        )
            .map(|(m, s, _)| (m, s)),
    )?;
    Ok(ListEntry {
        msg: msg_num(msg)?,
        size: number(size)?,
    })
}

/// `msg uid` — one unique-id listing. Trailing spaces are tolerated.
pub(crate) fn uidl_entry(line: &[u8]) -> Result<UidlEntry, Invalid> {
    let (msg, uid) = whole(
        line,
        "malformed UIDL entry",
        (
            preceded(space0, u64_field),
            preceded(space1, take_while1(|b| (0x21..=0x7e).contains(&b))),
            space0,
        )
            .map(|(m, u, _)| (m, u)),
    )?;
    if uid.len() > 70 {
        return Err("UIDL unique id longer than 70 characters");
    }
    let uid = core::str::from_utf8(uid).map_err(|_| "UIDL unique id not ASCII")?;
    Ok(UidlEntry {
        msg: msg_num(msg)?,
        uid: uid.to_string(),
    })
}

fn words(line: &[u8]) -> Vec<String> {
    line.split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .map(|w| Text::sanitize(w).as_str().to_string())
        .collect()
}

/// One `CAPA` line. Never fails: anything unknown or unreadable is kept as
/// [`Capability::Other`].
pub(crate) fn capability(line: &[u8]) -> Capability {
    let mut parts = words(line);
    if parts.is_empty() {
        return Capability::Other {
            name: String::new(),
            args: Vec::new(),
        };
    }
    let name = parts.remove(0).to_ascii_uppercase();
    let args = parts;
    let per_user = |rest: &[String]| match rest {
        [] => Some(false),
        [u] if u.eq_ignore_ascii_case("USER") => Some(true),
        _ => None,
    };
    let typed = match (name.as_str(), args.as_slice()) {
        ("TOP", []) => Some(Capability::Top),
        ("USER", []) => Some(Capability::User),
        ("RESP-CODES", []) => Some(Capability::RespCodes),
        ("AUTH-RESP-CODE", []) => Some(Capability::AuthRespCode),
        ("PIPELINING", []) => Some(Capability::Pipelining),
        ("UIDL", []) => Some(Capability::Uidl),
        ("STLS", []) => Some(Capability::Stls),
        ("LANG", []) => Some(Capability::Lang),
        ("SASL", mechs) => Some(Capability::Sasl(
            mechs.iter().map(|m| m.to_ascii_uppercase()).collect(),
        )),
        ("UTF8", rest) => per_user(rest).map(|user| Capability::Utf8 { user }),
        ("LOGIN-DELAY", [secs, rest @ ..]) => number(secs.as_bytes())
            .ok()
            .zip(per_user(rest))
            .map(|(seconds, per_user)| Capability::LoginDelay { seconds, per_user }),
        ("EXPIRE", [days, rest @ ..]) => {
            let days = if days.eq_ignore_ascii_case("NEVER") {
                Some(None)
            } else {
                number(days.as_bytes()).ok().map(Some)
            };
            days.zip(per_user(rest))
                .map(|(days, per_user)| Capability::Expire { days, per_user })
        }
        ("IMPLEMENTATION", _) => {
            let text = line
                .iter()
                .position(|&b| b == b' ')
                .map_or(&[][..], |p| &line[p + 1..]);
            Some(Capability::Implementation(Text::sanitize(text)))
        }
        _ => None,
    };
    typed.unwrap_or(Capability::Other { name, args })
}

/// One `LANG` listing line: `tag SP description`.
pub(crate) fn language(line: &[u8]) -> Result<Language, Invalid> {
    let (tag_bytes, description) = whole(
        line,
        "malformed LANG entry",
        (
            take_while1(|b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'*'),
            opt(preceded(space1, take_while(|_| true))),
        ),
    )?;
    Ok(Language {
        tag: String::from_utf8_lossy(tag_bytes).into_owned(),
        description: Text::sanitize(description.unwrap_or(&[])),
    })
}
