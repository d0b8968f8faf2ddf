//! RFC-style conversation transcripts (`C:` / `S:` lines).
//!
//! Format, one entry per line:
//!
//! * `C: text` — the client sends `text` followed by CRLF;
//! * `S: text` — the server sends `text` followed by CRLF;
//! * `C:` / `S:` alone — an empty line (just CRLF);
//! * blank lines and lines whose first non-blank character is `#` are
//!   comments. Leading spaces/tabs before `C:`/`S:` are ignored, so examples
//!   indented as in the RFCs can be pasted verbatim; exactly one space after
//!   the colon is the separator, anything after it (including further spaces)
//!   is data.
//!
//! Escapes (in both `C:` and `S:` lines; a raw CR or LF can only be written
//! as an escape):
//!
//! * `\xNN` — the byte with hex value NN (e.g. `\xff`, `\x00`);
//! * `\r`, `\n`, `\t`, `\\`;
//! * a single `\` as the very last character of the line means "do not
//!   append CRLF" (e.g. `S: +OK partial\` sends `+OK partial` without line
//!   end, so the next `S:` entry continues the same line on the wire).
//!
//! ```
//! use test_support::transcript::{Dir, Transcript};
//!
//! let t = Transcript::parse(r"
//!     S: +OK POP3 server ready
//!     C: STAT
//!     S: +OK 2 320
//!     ## an 8-bit byte and no CRLF:
//!     S: \xe9\
//! ").unwrap();
//! assert_eq!(t.entries[1], (Dir::Client, b"STAT\r\n".to_vec()));
//! assert_eq!(t.server_bytes(), b"+OK POP3 server ready\r\n+OK 2 320\r\n\xe9");
//! ```

use crate::scripted::Step;

/// Who sends an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// A `C:` line: bytes the client sends.
    Client,
    /// An `S:` line: bytes the server sends.
    Server,
}

/// A parsed transcript; see the [module docs](self) for the format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    /// The entries in file order, with escapes resolved and CRLF appended
    /// (unless the line ended with a lone `\`).
    pub entries: Vec<(Dir, Vec<u8>)>,
}

impl Transcript {
    /// Parses transcript text. Errors name the 1-based line number.
    pub fn parse(text: &str) -> Result<Transcript, String> {
        let mut entries = Vec::new();
        for (idx, raw) in text.split('\n').enumerate() {
            let lineno = idx + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let trimmed = line.trim_start_matches([' ', '\t']);
            if trimmed.trim().is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (dir, rest) = if let Some(rest) = trimmed.strip_prefix("C:") {
                (Dir::Client, rest)
            } else if let Some(rest) = trimmed.strip_prefix("S:") {
                (Dir::Server, rest)
            } else {
                return Err(format!(
                    "line {lineno}: expected `C: `, `S: `, `#` comment or blank line, got {line:?}"
                ));
            };
            let data = if rest.is_empty() {
                rest
            } else if let Some(data) = rest.strip_prefix(' ') {
                data
            } else {
                return Err(format!(
                    "line {lineno}: expected a space after the `C:`/`S:` marker, got {line:?}"
                ));
            };
            let bytes = unescape(data).map_err(|e| format!("line {lineno}: {e}"))?;
            entries.push((dir, bytes));
        }
        Ok(Transcript { entries })
    }

    /// All `S:` bytes concatenated: what the server writes in total.
    pub fn server_bytes(&self) -> Vec<u8> {
        self.bytes(Dir::Server)
    }

    /// All `C:` bytes concatenated: what the client writes in total.
    pub fn client_bytes(&self) -> Vec<u8> {
        self.bytes(Dir::Client)
    }

    fn bytes(&self, dir: Dir) -> Vec<u8> {
        self.entries
            .iter()
            .filter(|(d, _)| *d == dir)
            .flat_map(|(_, b)| b.iter().copied())
            .collect()
    }

    /// Steps that make a [`ScriptedServer`](crate::scripted::ScriptedServer)
    /// play the server side: consecutive `S:` entries become one
    /// [`Step::Send`] (one write), each `C:` entry becomes
    /// [`Step::Expect`] (so every `C:` entry should be exactly one line
    /// ending in CRLF). Append e.g. [`Step::ExpectClose`] yourself if the
    /// client is expected to disconnect afterwards.
    pub fn to_steps(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut send: Vec<u8> = Vec::new();
        for (dir, bytes) in &self.entries {
            match dir {
                Dir::Server => send.extend_from_slice(bytes),
                Dir::Client => {
                    if !send.is_empty() {
                        steps.push(Step::Send(std::mem::take(&mut send)));
                    }
                    steps.push(Step::Expect(bytes.clone()));
                }
            }
        }
        if !send.is_empty() {
            steps.push(Step::Send(send));
        }
        steps
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn unescape(data: &str) -> Result<Vec<u8>, String> {
    let src = data.as_bytes();
    let mut out = Vec::with_capacity(src.len() + 2);
    let mut crlf = true;
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        match src.get(i + 1) {
            None => {
                crlf = false;
                i += 1;
            }
            Some(b'r') => {
                out.push(b'\r');
                i += 2;
            }
            Some(b'n') => {
                out.push(b'\n');
                i += 2;
            }
            Some(b't') => {
                out.push(b'\t');
                i += 2;
            }
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hi = src.get(i + 2).copied().and_then(hex);
                let lo = src.get(i + 3).copied().and_then(hex);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => {
                        return Err(format!(
                            "bad \\x escape at column {}: need two hex digits",
                            i + 1
                        ))
                    }
                }
                i += 4;
            }
            Some(&other) => {
                return Err(format!(
                "unknown escape \\{} at column {} (known: \\xNN \\r \\n \\t \\\\ and a final \\)",
                char::from(other).escape_default(),
                i + 1
            ))
            }
        }
    }
    if crlf {
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}

/// Escapes bytes into transcript notation (the inverse of parsing one entry):
/// printable ASCII stays as is except `\`, a trailing CRLF is dropped, and if
/// there is no trailing CRLF a final `\` is added.
pub fn escape(bytes: &[u8]) -> String {
    let (body, crlf) = match bytes.strip_suffix(b"\r\n") {
        Some(body) => (body, true),
        None => (bytes, false),
    };
    let mut s = String::with_capacity(body.len() + 1);
    for &b in body {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    if !crlf {
        s.push('\\');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_rfc1939_example() {
        // From RFC 1939 section 10, indented as in the RFC.
        let t = Transcript::parse(
            "      S: <wait for connection on TCP port 110>\n\
             \n\
             # comment\n\
             \x20     C: <open connection>\n\
             \x20     S:    +OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\n\
             \x20     C:    APOP mrose c4c9334bac560ecc979e58001b3e22fb\n\
             \x20     S:    +OK mrose's maildrop has 2 messages (320 octets)\n\
             \x20     S:\n",
        )
        .expect("parse");
        assert_eq!(t.entries.len(), 6);
        assert_eq!(
            t.entries[2],
            (
                Dir::Server,
                b"   +OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n".to_vec()
            )
        );
        assert_eq!(t.entries[5], (Dir::Server, b"\r\n".to_vec()));
    }

    #[test]
    fn escapes_and_no_crlf() {
        let t = Transcript::parse(
            "S: +OK 3 octets\nS: .dot \\xE9\\xff\\x00\nS: bare\\nLF\\\nS: tab\\there \\\\ \\r\\n\\\nC: QUIT\r\n",
        )
        .expect("parse");
        assert_eq!(
            t.server_bytes(),
            b"+OK 3 octets\r\n.dot \xe9\xff\x00\r\nbare\nLFtab\there \\ \r\n".to_vec()
        );
        assert_eq!(t.client_bytes(), b"QUIT\r\n");
    }

    #[test]
    fn errors_name_the_line() {
        let err = Transcript::parse("S: ok\nX: what\n").expect_err("bad prefix");
        assert!(err.starts_with("line 2:"), "{err}");
        let err = Transcript::parse("S: \\q").expect_err("bad escape");
        assert!(err.contains("unknown escape"), "{err}");
        let err = Transcript::parse("S: \\x4").expect_err("short hex");
        assert!(err.contains("two hex digits"), "{err}");
        let err = Transcript::parse("S:+OK").expect_err("no space");
        assert!(err.contains("space"), "{err}");
    }

    #[test]
    fn to_steps_merges_server_runs() {
        let t = Transcript::parse("S: +OK hi\nC: CAPA\nS: +OK\nS: TOP\nS: .\nC: QUIT\n")
            .expect("parse");
        let steps = format!("{:?}", t.to_steps());
        assert_eq!(
            steps,
            r#"[Send("+OK hi\r\n"), Expect("CAPA\r\n"), Send("+OK\r\nTOP\r\n.\r\n"), Expect("QUIT\r\n")]"#
        );
    }

    #[test]
    fn drives_the_scripted_server() {
        use std::io::{BufRead, BufReader, Write};
        let t = Transcript::parse("S: +OK hi\nC: NOOP\nS: +OK\n").expect("parse");
        let mut steps = t.to_steps();
        steps.push(Step::ExpectClose);
        let server = crate::scripted::ScriptedServer::start(steps);
        let s = std::net::TcpStream::connect(server.addr()).expect("connect");
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        let mut line = String::new();
        r.read_line(&mut line).expect("read");
        assert_eq!(line, "+OK hi\r\n");
        (&s).write_all(b"NOOP\r\n").expect("write");
        line.clear();
        r.read_line(&mut line).expect("read");
        assert_eq!(line, "+OK\r\n");
        drop(r);
        drop(s);
        assert_eq!(server.join().expect("ok"), t.client_bytes());
    }

    proptest! {
        #[test]
        fn escape_roundtrips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let line = format!("S: {}", escape(&bytes));
            let t = Transcript::parse(&line).expect("parse escaped");
            prop_assert_eq!(t.entries.len(), 1);
            prop_assert_eq!(&t.entries[0].1, &bytes);
        }
    }
}
