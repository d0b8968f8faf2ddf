//! The wire trace ([`Config::trace`]): every line as it went, secrets
//! replaced by `<redacted>`.

use alloc::string::String;

#[cfg(doc)]
use super::Config;
use super::{Client, Direction, TraceLine};
use crate::Text;

impl Client {
    /// Records a line sent, showing its first `shown_words` words and
    /// `<redacted>` for the rest.
    pub(super) fn trace_sent(&mut self, line: &[u8], shown_words: usize) {
        let end = match shown_words.checked_sub(1) {
            None => 0,
            Some(skip) => {
                let mut spaces = line.iter().enumerate().filter(|(_, &b)| b == b' ');
                spaces.nth(skip).map_or(line.len(), |(i, _)| i)
            }
        };
        let mut text = String::from(Text::sanitize(&line[..end]).as_str());
        if end < line.len() || shown_words == 0 {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str("<redacted>");
        }
        self.trace.push_back(TraceLine {
            direction: Direction::Sent,
            line: Text::sanitize(text.as_bytes()),
        });
    }

    pub(super) fn trace_received(&mut self, line: &[u8]) {
        if self.config.trace {
            self.trace.push_back(TraceLine {
                direction: Direction::Received,
                line: Text::sanitize(line),
            });
        }
    }
}
