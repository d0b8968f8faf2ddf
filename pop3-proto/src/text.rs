//! Server-supplied text, made safe to print.

use alloc::string::String;
use core::fmt;

/// Text that came from the server, sanitised for display and logs.
///
/// Invalid UTF-8 is replaced with U+FFFD, and every control character (C0, DEL
/// and C1, which covers terminal escape sequences) is replaced with U+FFFD too,
/// so printing a `Text` can never drive a terminal. Tabs become spaces.
///
/// ```
/// use pop3_proto::Text;
/// let t = Text::sanitize(b"hello \x1b[31mred\x1b[0m\x00");
/// assert_eq!(t.as_str(), "hello \u{fffd}[31mred\u{fffd}[0m\u{fffd}");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Text(String);

impl Text {
    /// Sanitises raw server bytes.
    pub fn sanitize(raw: &[u8]) -> Text {
        let mut out = String::with_capacity(raw.len());
        for chunk in raw.utf8_chunks() {
            for c in chunk.valid().chars() {
                out.push(match c {
                    '\t' => ' ',
                    c if c.is_control() => char::REPLACEMENT_CHARACTER,
                    c => c,
                });
            }
            if !chunk.invalid().is_empty() {
                out.push(char::REPLACEMENT_CHARACTER);
            }
        }
        Text(out)
    }

    /// The sanitised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
