//! Group commit: the committer thread takes the messages the retrieval
//! staged, in batches, makes each batch durable together and records its
//! UIDs, while the connection keeps receiving.

use std::path::PathBuf;
use std::sync::{mpsc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pop3_proto::MsgNum;

use crate::deliver::{
    make_durable, AppendFailed, MadeDurable, MboxAppender, MboxEntry, Staged, StagedFile, Stored,
};
use crate::error::{Exit, Failure};
use crate::interrupt;
use crate::state::{clear_maildir_intent, write_maildir_intent, State};

/// The committer takes a batch once this many messages are staged...
pub(super) const BATCH_MESSAGES: usize = 128;
/// ... or this many bytes ...
pub(super) const BATCH_BYTES: u64 = 8 << 20;
/// ... or once the oldest staged message has waited this long (so that a
/// slow or stalled server does not keep complete messages from being
/// saved), or when the retrieval ends.
pub(super) const LINGER: Duration = Duration::from_millis(200);
/// The retrieval waits when this many messages (or bytes) are staged in
/// a Maildir's `tmp/` and not yet taken by the committer. Each staged file
/// stays open until the committer has synced it through that descriptor
/// (see `make_durable`), and a batch being committed holds as many again:
/// this keeps both well under the usual limit of 1024 open files.
pub(super) const MAX_STAGED: usize = 256;
/// See [`MAX_STAGED`].
pub(super) const MAX_STAGED_BYTES: u64 = 256 << 20;
/// mbox entries are staged in memory (up to 1 MiB each; a bigger one in a
/// spill file, which holds a descriptor): the retrieval waits when about
/// four batches are waiting.
pub(super) const MAX_STAGED_MBOX: usize = 4 * BATCH_MESSAGES;
/// See [`MAX_STAGED_MBOX`].
pub(super) const MAX_STAGED_MBOX_BYTES: u64 = 4 * BATCH_BYTES;

/// The state, shared with the committer thread.
pub(super) fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each update of the guarded values is complete before anything can
    // panic, so a poisoned lock still guards consistent values.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where the committer makes batches durable.
pub(crate) enum Store {
    /// The Maildir at this directory: [`make_durable`], each batch named
    /// first in the intent file at the second path.
    Maildir(PathBuf, PathBuf),
    /// An mbox: [`MboxAppender`].
    Mbox(MboxAppender),
}

impl Store {
    /// How many messages and bytes may wait for the committer before the
    /// retrieval waits too.
    pub(super) fn max_staged(&self) -> (usize, u64) {
        match self {
            Store::Maildir(..) => (MAX_STAGED, MAX_STAGED_BYTES),
            Store::Mbox(_) => (MAX_STAGED_MBOX, MAX_STAGED_MBOX_BYTES),
        }
    }

    /// The most messages and bytes the committer takes at once. A Maildir
    /// batch takes everything staged (files on disk, which cost no memory),
    /// an mbox batch at most one batch's worth, so that what is in memory
    /// stays about five batches.
    fn max_batch(&self) -> (usize, u64) {
        match self {
            Store::Maildir(..) => (usize::MAX, u64::MAX),
            Store::Mbox(_) => (BATCH_MESSAGES, BATCH_BYTES),
        }
    }

    /// Makes `batch` durable, then runs `record` on the part of it that is
    /// (which records their UIDs durably). `with_uids`: whether there are
    /// UIDs to record.
    fn commit(
        &mut self,
        batch: &[Pending],
        with_uids: bool,
        record: impl FnOnce(&[Pending]) -> Result<(), Failure>,
    ) -> Committed {
        let mixed = || Failure::new(Exit::Software, "a batch staged for another destination");
        let nothing = |failure: Failure| Committed {
            saved: Vec::new(),
            failure: Some(failure),
        };
        match self {
            Store::Maildir(root, intent) => {
                let Some(files) = batch
                    .iter()
                    .map(|p| match &p.staged {
                        Staged::File(file) => Some(file),
                        Staged::Entry(_) => None,
                    })
                    .collect::<Option<Vec<&StagedFile>>>()
                else {
                    return nothing(mixed());
                };
                if with_uids {
                    // Which UIDs the batch stores under which names, for the
                    // next fetch if this one dies before recording them.
                    let named: Vec<(&str, &str)> = batch
                        .iter()
                        .zip(&files)
                        .filter_map(|(p, f)| Some((p.uid.as_deref()?, f.name.as_str())))
                        .collect();
                    if let Err(e) = write_maildir_intent(intent, &named) {
                        return nothing(Failure::io(
                            format_args!("intent file {}", intent.display()),
                            &e,
                        ));
                    }
                }
                let MadeDurable {
                    linked,
                    durable,
                    mut failure,
                } = make_durable(root, &files);
                // What is in new/ and synced is recorded, even when the
                // batch stopped part way; what is in new/ and not recorded
                // (a failed sync or record) is named in the intent, which
                // the next fetch settles.
                if durable && !linked.is_empty() {
                    match record(&batch[..linked.len()]) {
                        Ok(()) if with_uids && failure.is_none() => {
                            // Recorded: the intent has nothing left to vouch for.
                            if let Err(e) = clear_maildir_intent(intent) {
                                failure = Some(Failure::io(
                                    format_args!("intent file {}", intent.display()),
                                    &e,
                                ));
                            }
                        }
                        Ok(()) => {}
                        Err(f) => {
                            failure.get_or_insert(f);
                        }
                    }
                }
                Committed {
                    saved: linked,
                    failure,
                }
            }
            Store::Mbox(mbox) => {
                let Some(entries) = batch
                    .iter()
                    .map(|p| match &p.staged {
                        Staged::Entry(staged) => Some(MboxEntry {
                            staged,
                            uid: p.uid.as_deref().filter(|_| with_uids),
                        }),
                        Staged::File(_) => None,
                    })
                    .collect::<Option<Vec<MboxEntry<'_>>>>()
                else {
                    return nothing(mixed());
                };
                match mbox.append(&entries, || record(batch)) {
                    Ok(()) => Committed {
                        saved: vec![Stored::New; batch.len()],
                        failure: None,
                    },
                    // In the mbox, synced, its UIDs not recorded: the next
                    // fetch records them from the intent.
                    Err(AppendFailed {
                        failure,
                        appended: true,
                    }) => Committed {
                        saved: vec![Stored::New; batch.len()],
                        failure: Some(failure),
                    },
                    Err(AppendFailed { failure, .. }) => nothing(failure),
                }
            }
        }
    }
}

/// What the committer did with a batch: its first `saved.len()` messages
/// are in the destination (all of them, unless `failure` stopped it), and
/// recorded unless `failure` says that recording failed.
pub(super) struct Committed {
    pub(super) saved: Vec<Stored>,
    pub(super) failure: Option<Failure>,
}

/// A complete message, waiting for its batch to be made durable.
pub(super) struct Pending {
    pub(super) msg: MsgNum,
    pub(super) uid: Option<String>,
    pub(super) bytes: u64,
    pub(super) staged: Staged,
}

/// What the committer did with a batch.
pub(super) struct Done {
    pub(super) batch: Vec<Pending>,
    pub(super) committed: Committed,
}

/// Messages staged by the retrieval, taken in batches by the committer.
#[derive(Default)]
pub(super) struct Queue {
    pub(super) staged: Vec<Pending>,
    pub(super) bytes: u64,
    pub(super) oldest: Option<Instant>,
    /// The retrieval is over: take everything, then stop.
    pub(super) closed: bool,
    /// The committer failed and stopped.
    pub(super) failed: bool,
}

/// The queue and its condition variable (both sides wait on it).
#[derive(Default)]
pub(super) struct Shared {
    pub(super) queue: Mutex<Queue>,
    pub(super) changed: Condvar,
}

/// The committer thread: it takes the staged messages in batches, makes
/// each batch durable together ([`Store::commit`]: the files of a Maildir,
/// the entries of an mbox), then appends their UIDs to the state and syncs
/// it once. Meanwhile the connection keeps receiving.
pub(super) fn committer(
    store: &mut Store,
    state: Option<&Mutex<State>>,
    shared: &Shared,
    done: mpsc::Sender<Done>,
) {
    let batch_messages = crate::crash::batch_messages(BATCH_MESSAGES);
    let (most, most_bytes) = store.max_batch();
    let most = crate::crash::batch_messages(most);
    loop {
        let batch = {
            let mut queue = locked(&shared.queue);
            loop {
                let due = queue.closed
                    || queue.staged.len() >= batch_messages
                    || queue.bytes >= BATCH_BYTES
                    || queue.oldest.is_some_and(|t| t.elapsed() >= LINGER);
                if !queue.staged.is_empty() && due {
                    break;
                }
                if queue.closed {
                    return;
                }
                let wait = queue
                    .oldest
                    .map_or(LINGER, |t| LINGER.saturating_sub(t.elapsed()));
                queue = shared
                    .changed
                    .wait_timeout(queue, wait.max(Duration::from_millis(1)))
                    .map_or_else(|p| p.into_inner().0, |(q, _)| q);
            }
            // For a Maildir everything staged, not one batch's worth: what
            // arrived while the last batch was syncing shares the next
            // sync, so a slow disk means bigger batches rather than a
            // growing backlog. An mbox batch is in memory: one batch's
            // worth at most ([`Store::max_batch`]).
            let mut take = 0;
            let mut bytes = 0u64;
            for pending in &queue.staged {
                if take >= most || (take > 0 && bytes.saturating_add(pending.bytes) > most_bytes) {
                    break;
                }
                take += 1;
                bytes += pending.bytes;
            }
            let batch: Vec<Pending> = queue.staged.drain(..take).collect();
            queue.bytes = queue.staged.iter().map(|p| p.bytes).sum();
            queue.oldest = (!queue.staged.is_empty()).then(Instant::now);
            shared.changed.notify_all();
            batch
        };
        let record = |saved: &[Pending]| {
            if let Some(state) = state {
                let mut state = locked(state);
                let uids = saved.iter().filter_map(|p| p.uid.as_deref());
                state.record_many(uids).map_err(|e| {
                    Failure::io(format_args!("state file {}", state.path().display()), &e)
                })?;
                crate::crash::at("recorded");
            }
            Ok(())
        };
        let committed = store.commit(&batch, state.is_some(), record);
        // Counted here, not when the retrieval next looks: it may be
        // waiting on a silent server when a signal comes.
        for _ in &committed.saved {
            interrupt::saved_one();
        }
        let failed = committed.failure.is_some();
        let gone = done.send(Done { batch, committed }).is_err();
        if failed || gone {
            locked(&shared.queue).failed = true;
            shared.changed.notify_all();
            return;
        }
    }
}

/// The retrieval's side of group commit.
pub(super) struct Group<'s> {
    pub(super) shared: &'s Shared,
    pub(super) done: mpsc::Receiver<Done>,
}
