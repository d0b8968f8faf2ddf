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

pub(crate) use maildir::{make_durable, prepare_maildir, Maildir, StagedFile};
pub(crate) use mbox::{
    intent_path, parse_intent, prepare_mbox, recover_mbox, Mbox, MboxAppender, MboxEntry,
};
pub(crate) use mda::Mda;
