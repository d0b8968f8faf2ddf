//! Server-supplied text, made safe to print.

use alloc::string::String;
use core::fmt;

/// Text that came from the server, sanitised for display and logs.
///
/// Invalid UTF-8 is replaced with U+FFFD, and so is every character that
/// could change how the text around it is shown ([`Text::is_unsafe_char`]):
/// control characters (C0, DEL and C1, which covers terminal escape
/// sequences), the bidirectional overrides, embeddings, isolates and marks
/// (which can make `detrusted` read as `trusted`, or reorder a warning), and
/// the invisible zero-width characters. So printing a `Text` can never drive a
/// terminal or hide what it says. Tabs become spaces.
///
/// This is the one rule for every piece of server or certificate text the
/// library hands over: [`Text::sanitize`] for bytes, [`Text::sanitize_str`]
/// for text already decoded (certificate names, say).
///
/// ```
/// use pop3_proto::Text;
/// let t = Text::sanitize(b"hello \x1b[31mred\x1b[0m\x00");
/// assert_eq!(t.as_str(), "hello \u{fffd}[31mred\u{fffd}[0m\u{fffd}");
/// let t = Text::sanitize_str("NOT \u{202e}detsurt\u{202c} \u{200b}");
/// assert_eq!(t.as_str(), "NOT \u{fffd}detsurt\u{fffd} \u{fffd}");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Text(String);

impl Text {
    /// Sanitises raw server bytes.
    pub fn sanitize(raw: &[u8]) -> Text {
        let mut out = String::with_capacity(raw.len());
        for chunk in raw.utf8_chunks() {
            push_safe(&mut out, chunk.valid());
            if !chunk.invalid().is_empty() {
                out.push(char::REPLACEMENT_CHARACTER);
            }
        }
        Text(out)
    }

    /// Sanitises text that is already a string (decoded from a certificate,
    /// or from JSON): the same rule as [`Text::sanitize`].
    pub fn sanitize_str(text: &str) -> Text {
        let mut out = String::with_capacity(text.len());
        push_safe(&mut out, text);
        Text(out)
    }

    /// Whether `c` is replaced: a control character (C0, DEL, C1); a
    /// bidirectional formatting character (the marks U+200E, U+200F and
    /// U+061C, the embeddings and overrides U+202A–U+202E, the isolates
    /// U+2066–U+2069); an invisible one (the zero-width space, non-joiner
    /// and joiner U+200B–U+200D, the word joiner, invisible operators and
    /// deprecated format characters U+2060–U+206F, the byte order mark
    /// U+FEFF, the soft hyphen U+00AD, the Mongolian vowel separator
    /// U+180E, the interlinear annotation marks U+FFF9–U+FFFB, the tag
    /// characters U+E0000–U+E007F, the variation selectors U+FE00–U+FE0F
    /// and U+E0100–U+E01EF, the Hangul fillers U+115F, U+1160, U+3164 and
    /// U+FFA0), which can hide or alter what a name or message seems to
    /// say; or a line or paragraph separator (U+2028, U+2029), which some
    /// terminals break lines at.
    pub fn is_unsafe_char(c: char) -> bool {
        c.is_control()
            || matches!(
                c,
                '\u{00AD}'
                    | '\u{061C}'
                    | '\u{115F}'
                    | '\u{1160}'
                    | '\u{180E}'
                    | '\u{200B}'..='\u{200F}'
                    | '\u{2028}'..='\u{202E}'
                    | '\u{2060}'..='\u{206F}'
                    | '\u{3164}'
                    | '\u{FE00}'..='\u{FE0F}'
                    | '\u{FEFF}'
                    | '\u{FFA0}'
                    | '\u{FFF9}'..='\u{FFFB}'
                    | '\u{E0000}'..='\u{E007F}'
                    | '\u{E0100}'..='\u{E01EF}'
            )
    }

    /// The sanitised text, owned.
    pub fn into_string(self) -> String {
        self.0
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

/// Appends `text` to `out` under the rule of [`Text::is_unsafe_char`].
fn push_safe(out: &mut String, text: &str) {
    for c in text.chars() {
        out.push(match c {
            '\t' => ' ',
            c if Text::is_unsafe_char(c) => char::REPLACEMENT_CHARACTER,
            c => c,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn bidi_and_invisible_characters_are_replaced() {
        // The format characters that only hide or alter what text seems
        // to say, as one string: soft hyphen, Hangul and Mongolian fillers,
        // variation selectors, annotation marks, tags.
        let format = "\u{AD}\u{115F}\u{1160}\u{180E}\u{3164}\u{FE00}\u{FE0F}\u{FFA0}\u{FFF9}\u{FFFA}\u{FFFB}\u{E0000}\u{E0001}\u{E0041}\u{E007F}\u{E0100}\u{E01EF}";
        for c in [
            '\u{061C}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{200E}', '\u{200F}', '\u{2028}',
            '\u{2029}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2060}',
            '\u{2061}', '\u{2064}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{FEFF}',
            '\u{1b}', '\u{7f}', '\u{9b}', '\0',
        ]
        .into_iter()
        .chain(format.chars())
        {
            let mut raw = [0u8; 4];
            let text = format!("a{}b", c.encode_utf8(&mut raw));
            assert_eq!(
                Text::sanitize(text.as_bytes()).as_str(),
                "a\u{fffd}b",
                "{c:?}"
            );
            assert_eq!(Text::sanitize_str(&text).as_str(), "a\u{fffd}b", "{c:?}");
        }
    }

    #[test]
    fn ordinary_text_is_kept() {
        // Neighbours of the replaced ranges, and scripts written right to
        // left (the characters themselves are fine; only the overrides are not).
        let kept = "caf\u{e9} \u{2010}\u{2027}\u{202F}\u{205F}\u{2070} \u{5e9}\u{5dc}\u{5d5}\u{5dd} \u{fffd} \u{AC} \u{AE} \u{FDFF}\u{FE10} \u{FFFC} \u{E0080} \u{E01F0}";
        assert_eq!(Text::sanitize_str(kept).as_str(), kept);
        assert_eq!(Text::sanitize_str("a\tb").as_str(), "a b");
    }
}
