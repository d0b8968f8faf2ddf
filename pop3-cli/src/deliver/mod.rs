//! Where fetched messages go: a Maildir, an mbox, or an MDA.
//!
//! A message is streamed in with [`Deliver::begin`] / [`Deliver::write`],
//! and is stored by [`Deliver::commit`], which returns only once the message
//! is durable (or was refused by the MDA). [`Deliver::abort`] throws away a
//! message that did not arrive completely.
//!
//! A Maildir and an mbox can instead [`Deliver::stage`] a complete message
//! for a batch, which the fetch's committer thread makes durable together
//! with others: [`make_durable`] for a Maildir, [`MboxAppender::append`]
//! for an mbox. An mbox batch is bracketed by an intent file next to the
//! state, so that a fetch killed at any point neither loses nor repeats a
//! message: [`recover_mbox`] settles it at the start of the next fetch.

use std::io;

use sha2::{Digest, Sha256};

use crate::error::{Exit, Failure};

/// The line endings a destination receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum LineEndings {
    /// CRLF turned into LF (a lone CR is kept): the default.
    #[default]
    Unix,
    /// The bytes exactly as `RETR` sent them (dot-unstuffed, CRLF kept):
    /// `--exact-bytes`.
    AsReceived,
}

/// Turns CRLF into LF in a stream of chunks. A CR that ends a chunk is
/// held until the next one shows whether an LF follows; a lone CR is kept.
#[derive(Debug, Default)]
pub(crate) struct ToUnix {
    held_cr: bool,
}

impl ToUnix {
    /// Converts `data`, handing the converted bytes to `emit` in pieces.
    pub(crate) fn convert(
        &mut self,
        mut data: &[u8],
        mut emit: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if std::mem::take(&mut self.held_cr) && data[0] != b'\n' {
            emit(b"\r")?;
        }
        while let Some(at) = memchr::memchr(b'\r', data) {
            match data.get(at + 1) {
                // CRLF: the CR goes, the LF starts the next piece.
                Some(b'\n') => {
                    emit(&data[..at])?;
                    data = &data[at + 1..];
                }
                // A lone CR stays.
                Some(_) => {
                    emit(&data[..=at])?;
                    data = &data[at + 1..];
                }
                None => {
                    emit(&data[..at])?;
                    self.held_cr = true;
                    return Ok(());
                }
            }
        }
        emit(data)
    }

    /// The end of the message: a CR held back is a lone one, and is kept.
    pub(crate) fn finish(&mut self, emit: impl FnOnce(&[u8]) -> io::Result<()>) -> io::Result<()> {
        if std::mem::take(&mut self.held_cr) {
            emit(b"\r")?;
        }
        Ok(())
    }

    /// A whole buffer converted at once (the filter's header view).
    pub(crate) fn whole(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut to_unix = ToUnix::default();
        let mut put = |piece: &[u8]| {
            out.extend_from_slice(piece);
            Ok(())
        };
        // Writing into a Vec cannot fail.
        let _ = to_unix.convert(bytes, &mut put);
        let _ = to_unix.finish(put);
        out
    }
}

/// What [`Deliver::commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    /// The message is now stored durably.
    New,
    /// The Maildir already had this message (saved by an earlier fetch that
    /// stopped before recording its UID): nothing was written.
    AlreadyThere,
}

/// Why a message was not stored.
#[derive(Debug)]
pub(crate) enum NotStored {
    /// A local failure that stops the fetch (disk full, permissions, ...).
    Fatal(Failure),
    /// This message only (the MDA refused it): the fetch goes on, and the
    /// message is fetched again next time.
    Refused(String),
}

/// The message being delivered.
#[derive(Debug, Clone)]
pub(crate) struct Incoming {
    /// Its number in this session.
    pub(crate) msg: u32,
    /// Its UID, when the server has UIDL.
    pub(crate) uid: Option<String>,
}

/// A delivery target.
pub(crate) trait Deliver {
    /// Starts receiving a message.
    fn begin(&mut self, incoming: Incoming) -> io::Result<()>;
    /// The next bytes of the current message.
    fn write(&mut self, data: &[u8]) -> io::Result<()>;
    /// Stores the current message durably.
    fn commit(&mut self) -> Result<Stored, NotStored>;
    /// Throws away the current message (incomplete).
    fn abort(&mut self);
    /// Finishes the current message for a batch, without making it
    /// durable (the committer does that for the whole batch). `Ok(None)`:
    /// the destination has it already. Only a Maildir and an mbox can.
    fn stage(&mut self) -> Result<Option<Staged>, NotStored> {
        Err(NotStored::Fatal(Failure::new(
            Exit::Software,
            "this destination stores one message at a time",
        )))
    }
    /// The committer made `staged` durable.
    fn committed(&mut self, staged: &Staged) {
        let _ = staged;
    }
    /// Whether a message with this UID is already stored (only a Maildir
    /// can tell).
    fn has_uid(&self, uid: &str) -> bool {
        let _ = uid;
        false
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 hex digits of SHA-256 over the parts, each followed by a NUL.
fn digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
        hasher.update([0u8]);
    }
    hex(&hasher.finalize()[..16])
}

/// A complete message waiting for its batch to be made durable.
#[derive(Debug)]
pub(crate) enum Staged {
    /// A Maildir message.
    File(StagedFile),
    /// An mbox entry, in memory or (when big) in a spill file, until its
    /// batch is appended.
    Entry(MboxStaged),
}

mod maildir;
mod mbox;
mod mbox_entry;
mod mbox_lock;
mod mda;

pub(crate) use mbox_entry::MboxStaged;

pub(crate) use maildir::{check_maildir, make_durable, MadeDurable, Maildir, StagedFile};
pub(crate) use mbox::{
    intent_path, parse_intent, prepare_mbox, recover_mbox, AppendFailed, Mbox, MboxAppender,
    MboxEntry,
};
pub(crate) use mda::Mda;

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole-buffer conversion every split must equal.
    fn reference(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                i += 1;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        out
    }

    fn streamed(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut to_unix = ToUnix::default();
        for chunk in chunks {
            to_unix
                .convert(chunk, |piece| {
                    out.extend_from_slice(piece);
                    Ok(())
                })
                .expect("into a Vec");
        }
        to_unix
            .finish(|piece| {
                out.extend_from_slice(piece);
                Ok(())
            })
            .expect("into a Vec");
        out
    }

    /// A CR at the end of a chunk (the next one starting with LF, or not,
    /// or empty) converts as in one piece, at every pair of splits.
    #[test]
    fn crlf_becomes_lf_whatever_the_chunks() {
        let samples: [&[u8]; 6] = [
            b"Subject: message 1\r\n\r\nbody\r\n",
            b"a\r\rb\r\n\r\n\r",
            b"\r",
            b"\r\r\n\n\r\n",
            b"no line end",
            b"",
        ];
        for message in samples {
            let expected = reference(message);
            assert_eq!(ToUnix::whole(message), expected);
            for at in 0..=message.len() {
                for at2 in at..=message.len() {
                    let got = streamed(&[&message[..at], b"", &message[at..at2], &message[at2..]]);
                    assert_eq!(
                        got,
                        expected,
                        "{:?} split at {at} {at2}",
                        String::from_utf8_lossy(message)
                    );
                }
            }
        }
        assert_eq!(
            ToUnix::whole(b"Subject: message 1\r\n"),
            b"Subject: message 1\n"
        );
    }
}
