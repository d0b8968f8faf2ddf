//! Framing: finding line and message boundaries in the received bytes.
//!
//! Framing is kept apart from parsing so that a malformed or over-long line is
//! consumed to its end before it is reported, and the stream never loses step.

use alloc::vec::Vec;
use core::ops::Range;

use memchr::memmem;

/// The receive buffer. The transport reads straight into its free tail
/// ([`Rx::spare`]), so body bytes are written once by the OS and then handed to
/// the caller as slices of this buffer: no copy in between.
pub(crate) struct Rx {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Set while discarding the rest of an over-long line: the first bytes of
    /// that line, so that the reader can still tell `+OK` from `-ERR`.
    skipping: Option<Prefix>,
    /// Every stuffed line and the terminator start right after `\r\n.`.
    line_dot: memmem::Finder<'static>,
}

/// The first bytes of an over-long line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prefix {
    bytes: [u8; 4],
    len: usize,
}

impl Prefix {
    fn of(data: &[u8]) -> Prefix {
        let len = data.len().min(4);
        let mut bytes = [0; 4];
        bytes[..len].copy_from_slice(&data[..len]);
        Prefix { bytes, len }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// One step of line framing.
pub(crate) enum LineRead {
    /// A complete line, without its CRLF (or bare LF).
    Line(Range<usize>),
    /// A line longer than the limit has been consumed to its end.
    TooLong(Prefix),
    /// No complete line yet.
    Pending,
}

/// One step of body decoding.
pub(crate) enum BodyRead {
    /// Body bytes, unstuffed, to hand to the caller.
    Data(Range<usize>),
    /// A line of the body is longer than the limit; the rest of the body is being
    /// consumed without being handed out.
    LineTooLong,
    /// The terminating `.` line has been consumed.
    End,
    /// More input is needed.
    Pending,
}

/// Position within a dot-stuffed, dot-terminated body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyDecoder {
    at_line_start: bool,
    /// The last byte handed out was a CR, so an LF first in the next input ends a line.
    prev_cr: bool,
    /// Length of the current line so far; tracked only with a line limit.
    line_len: usize,
    /// After an over-long line, the body is consumed but no longer handed out.
    discarding: bool,
}

impl BodyDecoder {
    pub(crate) fn new() -> BodyDecoder {
        BodyDecoder {
            at_line_start: true,
            prev_cr: false,
            line_len: 0,
            discarding: false,
        }
    }
}

impl Rx {
    pub(crate) fn new() -> Rx {
        Rx {
            buf: Vec::new(),
            start: 0,
            end: 0,
            skipping: None,
            line_dot: memmem::Finder::new(b"\r\n."),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The start of the over-long line being discarded, if any.
    pub(crate) fn skipping(&self) -> Option<Prefix> {
        self.skipping
    }

    pub(crate) fn bytes(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Frees the buffer when nothing is unread, so that an idle session
    /// holds no read buffer (it is allocated again by the next read).
    pub(crate) fn release(&mut self) {
        if self.start == self.end && self.skipping.is_none() {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }

    /// The unread bytes.
    pub(crate) fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Free space to read into: at least `want` bytes. Unread bytes are moved to
    /// the front first; at that point they are at most a partial line (framing
    /// keeps that bounded) or a few bytes of a body's line start.
    pub(crate) fn spare(&mut self, want: usize) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < want && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < want {
            self.buf.resize(self.end + want, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes of [`Rx::spare`] as received.
    pub(crate) fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Copies received bytes in (for callers that do not read into [`Rx::spare`]).
    pub(crate) fn push(&mut self, data: &[u8]) {
        let spare = self.spare(data.len());
        spare[..data.len()].copy_from_slice(data);
        self.filled(data.len());
    }

    /// Frames the next line. A line with more than `max` octets before its line
    /// ending is consumed to its end and reported as [`LineRead::TooLong`]; the
    /// buffer never holds more than about `max` octets of one line.
    pub(crate) fn line(&mut self, max: usize) -> LineRead {
        let data = &self.buf[self.start..self.end];
        match memchr::memchr(b'\n', data) {
            Some(lf) => {
                let first = self.start;
                self.start += lf + 1;
                if let Some(prefix) = self.skipping.take() {
                    return LineRead::TooLong(prefix);
                }
                let mut last = first + lf;
                if last > first && self.buf[last - 1] == b'\r' {
                    last -= 1;
                }
                if last - first > max {
                    return LineRead::TooLong(Prefix::of(&self.buf[first..last]));
                }
                LineRead::Line(first..last)
            }
            None => {
                if self.skipping.is_some() {
                    self.start = self.end;
                } else if data.len() > max.saturating_add(1) {
                    // Too long whatever follows (one byte may be the CR).
                    self.skipping = Some(Prefix::of(data));
                    self.start = self.end;
                }
                LineRead::Pending
            }
        }
    }

    /// Decodes the next piece of a dot-stuffed body (RFC 1939 section 3).
    ///
    /// Lines end with CRLF only: a bare LF is message data, and a `.` after it
    /// neither ends the body nor is unstuffed. That way a message whose author
    /// planted `\n.\r\n` cannot end the body early on a server that stuffs
    /// only CRLF lines, and inject replies of its own.
    ///
    /// Without a line limit, bytes between stuffed lines come out as one range,
    /// found with a single `memmem` scan for `\r\n.`; lines that do not start
    /// with a dot cost nothing.
    pub(crate) fn body(
        &mut self,
        dec: &mut BodyDecoder,
        max_line: Option<usize>,
        max_chunk: usize,
    ) -> BodyRead {
        loop {
            let data = &self.buf[self.start..self.end];
            if data.is_empty() {
                return BodyRead::Pending;
            }
            if dec.at_line_start && data[0] == b'.' {
                match data.get(..3) {
                    Some(b".\r\n") => {
                        self.start += 3;
                        return BodyRead::End;
                    }
                    None if b".\r".starts_with(data) => return BodyRead::Pending,
                    // A stuffed line: the first dot is not part of the message.
                    _ => {
                        self.start += 1;
                        dec.at_line_start = false;
                        dec.prev_cr = false;
                        dec.line_len = 1;
                        continue;
                    }
                }
            }
            let mut len = if dec.prev_cr && data[0] == b'\n' {
                // The CR ended the previous piece: this LF completes a line.
                1
            } else {
                match self.line_dot.find(data) {
                    Some(i) => i + 2,
                    None => data.len(),
                }
            };
            if max_line.is_some() {
                len = memchr::memchr(b'\n', &data[..len]).map_or(len, |i| i + 1);
            }
            len = len.min(max_chunk.max(1));
            let chunk = &data[..len];
            dec.at_line_start = chunk.ends_with(b"\r\n") || (dec.prev_cr && chunk == b"\n");
            dec.prev_cr = chunk.last() == Some(&b'\r');
            let range = self.start..self.start + len;
            self.start += len;
            if let Some(max) = max_line {
                dec.line_len = dec.line_len.saturating_add(len);
                let too_long = dec.line_len > max.saturating_add(2);
                if dec.at_line_start {
                    dec.line_len = 0;
                }
                if too_long && !dec.discarding {
                    dec.discarding = true;
                    return BodyRead::LineTooLong;
                }
            }
            if dec.discarding {
                continue;
            }
            return BodyRead::Data(range);
        }
    }
}
