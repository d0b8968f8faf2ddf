//! Events as JSON text: one string crosses into JavaScript per event, which
//! `JSON.parse` turns into a plain object, instead of one boundary call per
//! field. Handles are written as decimal strings, since a `u64` does not fit
//! a JavaScript number.

use std::fmt::Write as _;

/// A JSON object being written.
pub(crate) struct Object {
    text: String,
    empty: bool,
}

impl Object {
    /// `{"kind":"<kind>"`, more fields to follow.
    pub(crate) fn new(kind: &str) -> Object {
        let mut object = Object {
            text: String::with_capacity(64),
            empty: true,
        };
        object.text.push('{');
        object.string("kind", kind);
        object
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.text.push(',');
        }
        self.empty = false;
        quote(&mut self.text, key);
        self.text.push(':');
    }

    pub(crate) fn string(&mut self, key: &str, value: &str) -> &mut Object {
        self.key(key);
        quote(&mut self.text, value);
        self
    }

    pub(crate) fn optional_string(&mut self, key: &str, value: Option<&str>) -> &mut Object {
        match value {
            Some(value) => self.string(key, value),
            None => self.raw(key, "null"),
        }
    }

    pub(crate) fn number(&mut self, key: &str, value: u64) -> &mut Object {
        self.key(key);
        let _ = write!(self.text, "{value}");
        self
    }

    pub(crate) fn boolean(&mut self, key: &str, value: bool) -> &mut Object {
        self.raw(key, if value { "true" } else { "false" })
    }

    pub(crate) fn handle(&mut self, value: Option<u64>) -> &mut Object {
        match value {
            Some(id) => {
                self.key("handle");
                let _ = write!(self.text, "\"{id}\"");
                self
            }
            None => self.raw("handle", "null"),
        }
    }

    /// A value that is JSON text already.
    pub(crate) fn raw(&mut self, key: &str, json: &str) -> &mut Object {
        self.key(key);
        self.text.push_str(json);
        self
    }

    pub(crate) fn finish(&mut self) -> String {
        self.text.push('}');
        std::mem::take(&mut self.text)
    }
}

/// Appends `value` as a JSON string. Server text reaches here sanitised by
/// the core, but every character JSON needs escaped is escaped anyway.
pub(crate) fn quote(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON array of strings.
pub(crate) fn string_array<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        quote(&mut out, item);
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_quotes_and_backslashes_are_escaped() {
        let mut out = String::new();
        quote(&mut out, "a\"b\\c\r\n\u{1}é");
        assert_eq!(out, r#""a\"b\\c\r\n\u0001é""#);
    }

    #[test]
    fn objects_hold_handles_as_strings() {
        let text = Object::new("ok")
            .handle(Some(u64::MAX))
            .string("text", "fine")
            .number("size", 7)
            .boolean("last", true)
            .finish();
        assert_eq!(
            text,
            r#"{"kind":"ok","handle":"18446744073709551615","text":"fine","size":7,"last":true}"#
        );
    }
}
