//! `pop3 fetch`: download what was not downloaded before, never lose a
//! message, never store one twice.
//!
//! The order of events for each message is what makes that true:
//!
//! 1. `RETR` streams the message into the sink (a Maildir `tmp/` file, or
//!    memory for mbox and MDA).
//! 2. The sink makes it durable. A Maildir and an mbox do it for a batch
//!    at a time on a committer thread (group commit, while the connection
//!    keeps receiving). A Maildir: one `syncfs` for the batch's files, each
//!    linked into `new/`, one fsync of `new/`. An mbox, under its lock: an
//!    intent file next to the state (offset, length, SHA-256 and UID of
//!    each entry) synced, the entries appended, the mbox synced once. An
//!    MDA must exit 0, one message at a time.
//! 3. Only then are the UIDs appended to the state file and synced (once
//!    per batch; for an mbox still under its lock, and then the intent is
//!    emptied).
//! 4. Only after every retrieval, and only for messages whose UID is
//!    recorded (or that a policy deletes unfetched), `DELE`, pipelined;
//!    then `QUIT` commits the deletions.
//!
//! Killed between 1 and 2: the `tmp/` files are removed by the next fetch
//! (an mbox batch was only in memory), and those messages are fetched
//! again. Killed between 2 and 3: the Maildir file names are a hash of the
//! account and the UID, so the next fetch finds them in `new/` or `cur/`,
//! records the UIDs and does not download them again; for an mbox, the
//! next fetch reads the intent and records each UID whose exact bytes are
//! in the mbox at its offset (the others, never or only partly appended,
//! are fetched again; the mbox is never cut, since another program may
//! have appended since). For an MDA this window remains: a delivery agent's
//! run can be neither undone nor checked, so the message would be
//! delivered a second time. Killed before 4 completes: nothing is deleted,
//! and the next `fetch --delete` deletes what is recorded.
//!
//! What remains for an mbox is outside what a fetch controls: a program
//! that rewrites the mbox between the crash and the next fetch (a mail
//! reader expunging) moves the entries, and those messages are fetched
//! again; and after a power loss in the middle of an append, the torn
//! entry stays in front of its complete copy.

use std::collections::{HashMap, HashSet};
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{mpsc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use pop3_proto::{Capabilities, MsgNum, ServerError};
use pop3_transport::runtime::{MessageSink, Runtime as LibraryRuntime, StartTls, WriteTo};
use pop3_transport::{Error, MaybeTls};
use serde::Serialize;

use crate::deliver::{
    intent_path, make_durable, prepare_maildir, prepare_mbox, recover_mbox, Deliver, Incoming,
    Maildir, Mbox, MboxAppender, MboxEntry, Mda, NotStored, Staged, StagedFile, Stored,
};
use crate::error::{net_failure, Exit, Failure};
use crate::interrupt;
use crate::policy::{run_filter, Verdict};
use crate::state::{file_name_for, now, with_suffix, State};
use crate::transport::{Exec, Session};

/// What `fetch` does for one account (the command line over the config
/// file).
#[derive(Debug, Clone, Default)]
pub(crate) struct FetchOptions {
    /// `--maildir`.
    pub(crate) maildir: Option<PathBuf>,
    /// `--mbox`.
    pub(crate) mbox: Option<PathBuf>,
    /// `--mda`.
    pub(crate) mda: Option<String>,
    /// `--delete` (otherwise keep).
    pub(crate) delete: bool,
    /// `--state`.
    pub(crate) state: Option<PathBuf>,
    /// `--keep-days`.
    pub(crate) keep_days: Option<u32>,
    /// `--max-size`, in bytes.
    pub(crate) max_size: Option<u64>,
    /// `--delete-bigger-than`, in bytes.
    pub(crate) delete_bigger_than: Option<u64>,
    /// `--max-messages`.
    pub(crate) max_messages: Option<u32>,
    /// `--filter`.
    pub(crate) filter: Option<String>,
}

/// A fetch made ready before connecting: the destination checked (and a
/// missing Maildir created), the state locked and loaded.
pub(crate) struct Prepared {
    account: String,
    state: State,
    deliver: Box<dyn Deliver>,
    /// Where batches are made durable (`None`: one message at a time).
    store: Option<Store>,
    /// UIDs of an mbox batch, interrupted before they were recorded, found
    /// stored in the mbox and recorded now.
    recovered: usize,
}

/// Checks the destination and takes the account's state, before anything
/// connects: a mistyped path or a fetch already running stops here.
pub(crate) fn prepare(args: &FetchOptions, account: &str) -> Result<Prepared, Failure> {
    match (&args.maildir, &args.mbox, &args.mda) {
        (Some(dir), None, None) => prepare_maildir(dir)?,
        (None, Some(mbox), None) => prepare_mbox(mbox)?,
        (None, None, Some(_)) => {}
        (None, None, None) => {
            return Err(Failure::usage(
                "fetch needs a destination: --maildir DIR, --mbox FILE or --mda CMD",
            ))
        }
        _ => {
            return Err(Failure::usage(
                "give only one of --maildir, --mbox and --mda",
            ))
        }
    }
    let path = state_path(args, account)?;
    let mut state = State::open(&path)?;
    let mut recovered = 0;
    let (deliver, store): (Box<dyn Deliver>, _) = match (&args.maildir, &args.mbox, &args.mda) {
        (Some(dir), _, _) => (
            Box::new(Maildir::open(dir, account)?),
            Some(Store::Maildir(dir.clone())),
        ),
        (_, Some(mbox), _) => {
            // The lock is held: no other fetch of the account is appending.
            let intent = intent_path(&path);
            recovered = recover_mbox(mbox, &intent, &mut state)?;
            (
                Box::new(Mbox::new(mbox)),
                Some(Store::Mbox(MboxAppender::new(mbox, Some(intent)))),
            )
        }
        (_, _, Some(command)) => (Box::new(Mda::new(command, account)), None),
        _ => return Err(Failure::usage("fetch needs --maildir, --mbox or --mda")),
    };
    Ok(Prepared {
        account: account.to_owned(),
        state,
        deliver,
        store,
        recovered,
    })
}

/// Where the state of `account` is kept for these arguments.
fn state_path(args: &FetchOptions, account: &str) -> Result<PathBuf, Failure> {
    let name = file_name_for(account);
    if let Some(path) = &args.state {
        return Ok(path.clone());
    }
    if let Some(dir) = &args.maildir {
        // Not a dot-directory: Maildir++ readers would list it as a folder.
        return Ok(dir.join("pop3-state").join(name));
    }
    if let Some(mbox) = &args.mbox {
        return Ok(with_suffix(mbox, ".pop3-state").join(name));
    }
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".local").join("state"),
            None => {
                return Err(Failure::usage(
                    "no place for the state: set XDG_STATE_HOME or HOME, or use --state FILE",
                ))
            }
        },
    };
    Ok(base.join("pop3").join(name))
}

/// What a fetch did (the `--json` output).
#[derive(Debug, Default, Serialize)]
pub(crate) struct Summary {
    /// The account, when several are fetched from the config file.
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    /// Messages on the server.
    on_server: usize,
    /// Messages downloaded and stored by this fetch.
    fetched: usize,
    /// Bytes of those.
    bytes: u64,
    /// Messages found already stored (saved by an interrupted fetch).
    recovered: usize,
    /// Messages that could not be stored; fetched again next time.
    failed: usize,
    /// Messages left on the server because of `--max-size`.
    too_big: usize,
    /// Messages `--filter` skipped, or left for a later run by
    /// `--max-messages`.
    skipped: usize,
    /// Messages deleted from the server.
    deleted: usize,
    /// Messages left on the server after this fetch.
    left_on_server: usize,
    /// Whether the server has UIDL (without it every fetch gets everything).
    uidl: bool,
}

/// The committer takes a batch once this many messages are staged...
const BATCH_MESSAGES: usize = 128;
/// ... or this many bytes ...
const BATCH_BYTES: u64 = 8 << 20;
/// ... or once the oldest staged message has waited this long (so that a
/// slow or stalled server does not keep complete messages from being
/// saved), or when the retrieval ends.
const LINGER: Duration = Duration::from_millis(200);
/// The retrieval waits when this many messages (or bytes) are staged in
/// a Maildir's `tmp/` and not yet taken by the committer.
const MAX_STAGED: usize = 4096;
/// See [`MAX_STAGED`].
const MAX_STAGED_BYTES: u64 = 256 << 20;
/// mbox entries are staged in memory: the retrieval waits when about four
/// batches are waiting.
const MAX_STAGED_MBOX: usize = 4 * BATCH_MESSAGES;
/// See [`MAX_STAGED_MBOX`].
const MAX_STAGED_MBOX_BYTES: u64 = 4 * BATCH_BYTES;

/// The state, shared with the committer thread.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each update of the guarded values is complete before anything can
    // panic, so a poisoned lock still guards consistent values.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where the committer makes batches durable.
pub(crate) enum Store {
    /// The Maildir at this directory: [`make_durable`].
    Maildir(PathBuf),
    /// An mbox: [`MboxAppender`].
    Mbox(MboxAppender),
}

impl Store {
    /// How many messages and bytes may wait for the committer before the
    /// retrieval waits too.
    fn max_staged(&self) -> (usize, u64) {
        match self {
            Store::Maildir(_) => (MAX_STAGED, MAX_STAGED_BYTES),
            Store::Mbox(_) => (MAX_STAGED_MBOX, MAX_STAGED_MBOX_BYTES),
        }
    }

    /// The most messages and bytes the committer takes at once. A Maildir
    /// batch takes everything staged (files on disk, which cost no memory),
    /// an mbox batch at most one batch's worth, so that what is in memory
    /// stays about five batches.
    fn max_batch(&self) -> (usize, u64) {
        match self {
            Store::Maildir(_) => (usize::MAX, u64::MAX),
            Store::Mbox(_) => (BATCH_MESSAGES, BATCH_BYTES),
        }
    }

    /// Makes `batch` durable, then runs `record` (which records its UIDs
    /// durably). `with_uids`: whether there are UIDs to record.
    fn commit(
        &mut self,
        batch: &[Pending],
        with_uids: bool,
        record: impl FnOnce() -> Result<(), Failure>,
    ) -> Result<Vec<Stored>, Failure> {
        let mixed = || Failure::new(Exit::Software, "a batch staged for another destination");
        match self {
            Store::Maildir(root) => {
                let files = batch
                    .iter()
                    .map(|p| match &p.staged {
                        Staged::File(file) => Some(file),
                        Staged::Entry(_) => None,
                    })
                    .collect::<Option<Vec<&StagedFile>>>()
                    .ok_or_else(mixed)?;
                let stored = make_durable(root, &files)?;
                record()?;
                Ok(stored)
            }
            Store::Mbox(mbox) => {
                let entries = batch
                    .iter()
                    .map(|p| match &p.staged {
                        Staged::Entry(bytes) => Some(MboxEntry {
                            bytes,
                            uid: p.uid.as_deref().filter(|_| with_uids),
                        }),
                        Staged::File(_) => None,
                    })
                    .collect::<Option<Vec<MboxEntry<'_>>>>()
                    .ok_or_else(mixed)?;
                mbox.append(&entries, record)?;
                Ok(vec![Stored::New; batch.len()])
            }
        }
    }
}

/// A complete message, waiting for its batch to be made durable.
struct Pending {
    msg: MsgNum,
    uid: Option<String>,
    bytes: u64,
    staged: Staged,
}

/// What the committer did with a batch.
struct Done {
    batch: Vec<Pending>,
    result: Result<Vec<Stored>, Failure>,
}

/// Messages staged by the retrieval, taken in batches by the committer.
#[derive(Default)]
struct Queue {
    staged: Vec<Pending>,
    bytes: u64,
    oldest: Option<Instant>,
    /// The retrieval is over: take everything, then stop.
    closed: bool,
    /// The committer failed and stopped.
    failed: bool,
}

/// The queue and its condition variable (both sides wait on it).
#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

/// The committer thread: it takes the staged messages in batches, makes
/// each batch durable together ([`Store::commit`]: the files of a Maildir,
/// the entries of an mbox), then appends their UIDs to the state and syncs
/// it once. Meanwhile the connection keeps receiving.
fn committer(
    mut store: Store,
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
        let record = || {
            if let Some(state) = state {
                let mut state = locked(state);
                let uids = batch.iter().filter_map(|p| p.uid.as_deref());
                state.record_many(uids).map_err(|e| {
                    Failure::io(format_args!("state file {}", state.path().display()), &e)
                })?;
                crate::crash::at("recorded");
            }
            Ok(())
        };
        let result = store
            .commit(&batch, state.is_some(), record)
            .inspect(|stored| {
                // Counted here, not when the retrieval next looks: it may be
                // waiting on a silent server when a signal comes.
                for _ in stored {
                    interrupt::saved_one();
                }
            });
        let failed = result.is_err();
        let gone = done.send(Done { batch, result }).is_err();
        if failed || gone {
            locked(&shared.queue).failed = true;
            shared.changed.notify_all();
            return;
        }
    }
}

/// The engine wants no more messages: it failed locally and keeps the
/// reason ([`Engine::fatal`]).
#[derive(Debug, Clone, Copy)]
struct Stop;

/// The library sees a stop as the sink's error, which ends the retrieval
/// cleanly.
fn stopped(Stop: Stop) -> io::Error {
    io::Error::other("the delivery stopped")
}

/// The retrieval's side of group commit.
struct Group<'s> {
    shared: &'s Shared,
    done: mpsc::Receiver<Done>,
}

/// Receives the messages from the session and stores them.
struct Engine<'a> {
    deliver: &'a mut dyn Deliver,
    /// `None` without UIDL.
    state: Option<&'a Mutex<State>>,
    uids: &'a HashMap<MsgNum, String>,
    current: Option<MsgNum>,
    /// Bytes of the current message so far.
    current_bytes: u64,
    /// Stored by this fetch (new or already there).
    stored: Vec<MsgNum>,
    failures: Vec<(MsgNum, String)>,
    fatal: Option<Failure>,
    /// The committer failed: stage nothing more.
    commit_failed: bool,
    summary: &'a mut Summary,
    progress: Option<ProgressBar>,
    to_fetch: usize,
    /// Messages whose retrieval ended (stored or not).
    ended: usize,
    /// For a Maildir or an mbox: batches made durable by another thread.
    group: Option<Group<'a>>,
    /// See [`Store::max_staged`].
    max_staged: (usize, u64),
}

impl Engine<'_> {
    fn start(&mut self, msg: MsgNum) -> Result<(), Stop> {
        if self.current == Some(msg) {
            return Ok(());
        }
        self.deliver.abort();
        self.current_bytes = 0;
        let incoming = Incoming {
            msg: msg.get(),
            uid: self.uids.get(&msg).cloned(),
        };
        self.current = Some(msg);
        self.deliver
            .begin(incoming)
            .map_err(|e| self.stop(Failure::io("storing a message", &e)))
    }

    /// A signal asks to stop: end here, keeping what is stored.
    fn interrupted(&mut self) -> Result<(), Stop> {
        match interrupt::pending() {
            Some((exit, what)) => Err(self.stop(Failure::new(exit, what))),
            None => Ok(()),
        }
    }

    fn stop(&mut self, failure: Failure) -> Stop {
        self.deliver.abort();
        self.current = None;
        self.fatal.get_or_insert(failure);
        Stop
    }

    /// Message `msg` is durable and its UID recorded (if it has one).
    fn counted(&mut self, msg: MsgNum, how: Stored, bytes: u64) {
        self.stored.push(msg);
        match how {
            Stored::New => {
                self.summary.fetched += 1;
                self.summary.bytes += bytes;
            }
            Stored::AlreadyThere => self.summary.recovered += 1,
        }
        if let Some(bar) = &self.progress {
            bar.set_message(format!(
                "{}/{}",
                self.stored.len() + self.failures.len(),
                self.to_fetch
            ));
        }
    }

    /// Records a message stored on its own (MDA, or found in the Maildir
    /// already).
    fn stored(&mut self, msg: MsgNum, how: Stored) -> Result<(), Stop> {
        if let (Some(state), Some(uid)) = (self.state, self.uids.get(&msg)) {
            let mut state = locked(state);
            if let Err(e) = state.record(uid) {
                let path = state.path().display().to_string();
                drop(state);
                return Err(self.stop(Failure::io(format_args!("state file {path}"), &e)));
            }
        }
        let bytes = std::mem::take(&mut self.current_bytes);
        interrupt::saved_one();
        self.counted(msg, how, bytes);
        Ok(())
    }

    /// Throws away a message that did not arrive completely.
    fn abandon(&mut self) {
        if self.current.take().is_some() {
            self.deliver.abort();
        }
    }

    /// Stages the complete current message for its batch.
    fn stage(&mut self, msg: MsgNum) -> Result<(), Stop> {
        let (max_messages, max_bytes) = self.max_staged;
        match self.deliver.stage() {
            Ok(Some(staged)) => {
                crate::crash::at("received");
                let bytes = std::mem::take(&mut self.current_bytes);
                let pending = Pending {
                    msg,
                    uid: self.uids.get(&msg).cloned(),
                    bytes,
                    staged,
                };
                if let Some(group) = &self.group {
                    let shared = group.shared;
                    let mut queue = locked(&shared.queue);
                    while !queue.failed
                        && (queue.staged.len() >= max_messages || queue.bytes >= max_bytes)
                    {
                        queue = shared
                            .changed
                            .wait(queue)
                            .unwrap_or_else(|p| p.into_inner());
                    }
                    if queue.failed {
                        self.commit_failed = true;
                    } else {
                        queue.bytes += bytes;
                        queue.oldest.get_or_insert_with(Instant::now);
                        queue.staged.push(pending);
                        if queue.staged.len() >= BATCH_MESSAGES || queue.bytes >= BATCH_BYTES {
                            shared.changed.notify_all();
                        }
                    }
                }
                self.collect(false)
            }
            Ok(None) => self.stored(msg, Stored::AlreadyThere),
            Err(NotStored::Fatal(failure)) => Err(self.stop(failure)),
            Err(NotStored::Refused(why)) => {
                self.failures.push((msg, why));
                Ok(())
            }
        }
    }

    /// Takes in the batches the committer finished; with `all`, tells it
    /// that nothing more comes and waits for the last one.
    fn collect(&mut self, all: bool) -> Result<(), Stop> {
        let Some(group) = &self.group else {
            return Ok(());
        };
        let mut finished = Vec::new();
        if all {
            Self::close_queue(group);
            // The committer drops its sender when it stops.
            finished.extend(group.done.iter());
        } else {
            finished.extend(group.done.try_iter());
        }
        for done in finished {
            self.finish_batch(done);
        }
        if self.commit_failed {
            if self.fatal.is_none() {
                self.fatal = Some(Failure::new(Exit::Software, "the commit thread stopped"));
            }
            return Err(Stop);
        }
        Ok(())
    }

    fn finish_batch(&mut self, done: Done) {
        match done.result {
            Ok(stored) => {
                for (pending, how) in done.batch.into_iter().zip(stored) {
                    self.deliver.committed(&pending.staged);
                    self.counted(pending.msg, how, pending.bytes);
                }
            }
            Err(failure) => {
                // A Maildir batch's files stay in tmp/: the next fetch
                // removes them and fetches those messages again. An mbox
                // batch was cut off again, or is settled by its intent.
                self.commit_failed = true;
                self.fatal = Some(failure);
            }
        }
    }

    fn close_queue(group: &Group<'_>) {
        locked(&group.shared.queue).closed = true;
        group.shared.changed.notify_all();
    }

    /// Tells the committer that nothing more comes: it takes what is staged
    /// at once, without waiting for a full batch.
    fn close(&mut self) {
        if let Some(group) = &self.group {
            Self::close_queue(group);
        }
    }

    /// Makes everything completely received durable (also after an
    /// interruption or a lost connection), and stops the committer.
    fn flush(&mut self) {
        let _ = self.collect(true);
    }
}

impl MessageSink for Engine<'_> {
    fn on_chunk(&mut self, msg: MsgNum, data: &[u8]) -> io::Result<()> {
        self.chunk(msg, data).map_err(stopped)
    }

    fn on_end(&mut self, msg: MsgNum, result: Result<u64, &Error>) -> io::Result<()> {
        if self.fatal.is_some() {
            return Err(stopped(Stop));
        }
        self.ended += 1;
        let outcome = self.end(msg, result);
        if self.ended == self.to_fetch {
            // The last one: the committer need not wait for a full batch.
            self.close();
        }
        outcome.map_err(stopped)
    }
}

impl Engine<'_> {
    fn chunk(&mut self, msg: MsgNum, data: &[u8]) -> Result<(), Stop> {
        if self.fatal.is_some() {
            return Err(Stop);
        }
        self.interrupted()?;
        self.start(msg)?;
        self.current_bytes += data.len() as u64;
        if let Some(bar) = &self.progress {
            bar.inc(data.len() as u64);
        }
        self.deliver
            .write(data)
            .map_err(|e| self.stop(Failure::io("storing a message", &e)))
    }

    fn end(&mut self, msg: MsgNum, result: Result<u64, &Error>) -> Result<(), Stop> {
        match result {
            Ok(_) => {
                self.start(msg)?;
                self.current = None;
                if self.group.is_some() {
                    return self.stage(msg);
                }
                match self.deliver.commit() {
                    Ok(how) => self.stored(msg, how),
                    Err(NotStored::Refused(why)) => {
                        self.failures.push((msg, why));
                        Ok(())
                    }
                    Err(NotStored::Fatal(failure)) => Err(self.stop(failure)),
                }
            }
            Err(error) => {
                if self.current == Some(msg) {
                    self.abandon();
                }
                self.failures.push((msg, net_failure(error, None).message));
                Ok(())
            }
        }
    }
}

/// Binary units, one decimal: `512 B`, `1.5 KiB`, `3.2 MiB`.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `what` cut to `max` characters (with `…`), so that lines fit.
fn clip(what: &str, max: usize) -> String {
    if what.chars().count() <= max {
        what.to_owned()
    } else {
        let mut out: String = what.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

impl Summary {
    /// One line of at most 80 columns: what is new, what is left.
    fn line(&self, label: Option<&str>) -> String {
        let mut parts = vec![format!("{} new ({})", self.fetched, human(self.bytes))];
        if self.recovered > 0 {
            parts.push(format!("{} recovered", self.recovered));
        }
        if self.failed > 0 {
            parts.push(format!("{} failed", self.failed));
        }
        if self.too_big > 0 {
            parts.push(format!("{} too big", self.too_big));
        }
        if self.skipped > 0 {
            parts.push(format!("{} skipped", self.skipped));
        }
        let mut body = parts.join(", ");
        body.push_str("; server: ");
        if self.deleted > 0 {
            body.push_str(&format!("{} deleted, ", self.deleted));
        }
        body.push_str(&format!("{} left", self.left_on_server));
        match label {
            // "pop3: " + label + ": " + body within 80 columns.
            Some(label) => {
                let room = 80usize.saturating_sub(8 + body.chars().count()).max(8);
                format!("{}: {body}", clip(label, room))
            }
            None => body,
        }
    }

    /// What was kept, for the message of an interrupted fetch.
    fn saved_note(&self, to_fetch: usize) -> String {
        let left = to_fetch.saturating_sub(self.fetched + self.recovered);
        format!(
            "{} message(s) saved ({}), {left} left for the next fetch, nothing deleted",
            self.fetched + self.recovered,
            human(self.bytes)
        )
    }
}

/// Runs `fetch` on a logged-in session. Whether to pipeline is the
/// library's decision (its core asks `CAPA` before a burst when needed).
/// `label` names the account in the summary when several are fetched.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fetch<X, Y, R, E: Exec>(
    mut session: Session<X, Y, R, E>,
    prepared: Prepared,
    args: &FetchOptions,
    verbose: bool,
    json: bool,
    label: Option<&str>,
) -> Result<(), Failure>
where
    MaybeTls<X, Y>: StartTls,
    R: LibraryRuntime + WriteTo<Vec<u8>>,
{
    let Prepared {
        account,
        mut state,
        mut deliver,
        store,
        recovered: recovered_before,
    } = prepared;
    let path = state.path().to_owned();

    // One round trip for both when the server pipelines.
    let (uidl, list) = session
        .run(|c| c.uidl_and_list())
        .map_err(|e| Failure::from(e).context("UIDL"))?;
    let listing = match uidl {
        Ok(entries) => Some(entries),
        Err(Error::Server(e)) if lacks_uidl(&e, session.conn().capabilities()) => None,
        Err(e) => return Err(Failure::from(e).context("UIDL")),
    };
    let sizes: HashMap<MsgNum, u64> = match list {
        Ok(entries) => entries.into_iter().map(|e| (e.msg, e.size)).collect(),
        Err(e) if !e.is_fatal() => HashMap::new(),
        Err(e) => return Err(Failure::from(e).context("LIST")),
    };
    let mut summary = Summary {
        account: label.map(str::to_owned),
        uidl: listing.is_some(),
        recovered: recovered_before,
        ..Summary::default()
    };
    let mut uids = HashMap::new();
    let mut to_fetch = Vec::new();
    let mut recovered = Vec::new();
    match &listing {
        Some(entries) => {
            summary.on_server = entries.len();
            let mut seen = HashSet::new();
            for entry in entries {
                if !seen.insert(entry.uid.as_str()) {
                    // A server listing one UID twice: take the first only.
                    continue;
                }
                uids.insert(entry.msg, entry.uid.clone());
                if state.contains(&entry.uid) {
                    continue;
                }
                if deliver.has_uid(&entry.uid) {
                    // Stored by a fetch that died before recording it.
                    recovered.push(entry.uid.as_str());
                    continue;
                }
                to_fetch.push(entry.msg);
            }
        }
        None => {
            if verbose || io::stderr().is_terminal() {
                eprintln!(
                    "pop3: the server has no UIDL: fetching every message{}",
                    if args.delete {
                        ""
                    } else {
                        " (use --delete to avoid fetching them again)"
                    }
                );
            }
            let mut all: Vec<MsgNum> = sizes.keys().copied().collect();
            if all.is_empty() {
                let stat = session
                    .run(|c| c.stat())
                    .map_err(|e| Failure::from(e).context("STAT"))?;
                all = (1..=stat.count).filter_map(MsgNum::new).collect();
            }
            all.sort_unstable();
            summary.on_server = all.len();
            to_fetch = all;
        }
    }

    // Policies: what is too big, what the filter says, how many.
    let mut delete_unfetched: Vec<MsgNum> = Vec::new();
    to_fetch.retain(|msg| {
        let size = sizes.get(msg).copied();
        if let (Some(limit), Some(size)) = (args.delete_bigger_than, size) {
            if size > limit {
                delete_unfetched.push(*msg);
                return false;
            }
        }
        if let (Some(limit), Some(size)) = (args.max_size, size) {
            if size > limit {
                summary.too_big += 1;
                if verbose {
                    eprintln!(
                        "pop3: message {msg} ({}) is over --max-size: left on the server",
                        human(size)
                    );
                }
                return false;
            }
        }
        true
    });
    let limit = args.max_messages.map_or(usize::MAX, |n| n as usize);
    if args.filter.is_some() || to_fetch.len() > limit {
        let mut chosen = Vec::new();
        for &msg in &to_fetch {
            if chosen.len() >= limit {
                summary.skipped += 1;
                continue;
            }
            let Some(command) = &args.filter else {
                chosen.push(msg);
                continue;
            };
            let mut headers = Vec::new();
            session
                .run(|c| c.top_to(msg, 0, &mut headers))
                .map_err(|e| {
                    Failure::from(e).context(format_args!("TOP {msg} 0 (for --filter)"))
                })?;
            let uid = uids.get(&msg).map(String::as_str);
            match run_filter(
                command,
                &headers,
                &account,
                msg.get(),
                uid,
                sizes.get(&msg).copied(),
            )? {
                Verdict::Fetch => chosen.push(msg),
                Verdict::Delete if args.delete => delete_unfetched.push(msg),
                Verdict::Delete | Verdict::Skip => summary.skipped += 1,
            }
        }
        to_fetch = chosen;
    }

    if !recovered.is_empty() {
        summary.recovered += recovered.len();
        state
            .record_many(recovered)
            .map_err(|e| Failure::io(format_args!("state file {}", path.display()), &e))?;
    }

    let progress = (io::stderr().is_terminal() && !verbose && !to_fetch.is_empty()).then(|| {
        let total: u64 = to_fetch.iter().filter_map(|m| sizes.get(m)).sum();
        let bar = ProgressBar::new(total);
        // At most about 75 columns, whatever the numbers.
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:20}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("0/{}", to_fetch.len()));
        bar
    });

    let state = Mutex::new(state);
    let state_ref = listing.is_some().then_some(&state);
    let max_staged = store
        .as_ref()
        .map_or((MAX_STAGED, MAX_STAGED_BYTES), Store::max_staged);
    let shared = Shared::default();
    let cutoff = args
        .keep_days
        .map(|days| now().saturating_sub(u64::from(days) * 86_400));
    let may_delete = args.delete || cutoff.is_some() || !delete_unfetched.is_empty();
    let mut session = Some(session);
    let (retrieved, stored_now, failures, fatal, quit_sent) = thread::scope(|scope| {
        let group = store.map(|store| {
            let (done_tx, done_rx) = mpsc::channel();
            let shared = &shared;
            scope.spawn(move || committer(store, state_ref, shared, done_tx));
            Group {
                shared,
                done: done_rx,
            }
        });
        let mut engine = Engine {
            deliver: deliver.as_mut(),
            state: state_ref,
            uids: &uids,
            current: None,
            current_bytes: 0,
            stored: Vec::new(),
            failures: Vec::new(),
            fatal: None,
            commit_failed: false,
            summary: &mut summary,
            progress,
            to_fetch: to_fetch.len(),
            ended: 0,
            group,
            max_staged,
        };
        let (retrieved, quit_sent) = match session.take() {
            // Nothing will be deleted: QUIT rides with the RETRs, and the
            // session ends with the last message, while its batch is being
            // made durable. (A session that deleted nothing commits nothing.)
            // Each message's outcome went to the engine already; a stop of
            // the engine is its own business (it keeps the reason).
            Some(live) if !may_delete && !to_fetch.is_empty() => {
                match live.finish(|c| c.retr_many_and_quit(&to_fetch, &mut engine)) {
                    Ok((_, quit)) => (Ok(()), Some(quit)),
                    Err(Error::Sink(_)) => (Ok(()), Some(Ok(()))),
                    Err(error) => (Err(error), None),
                }
            }
            Some(mut live) if !to_fetch.is_empty() => {
                let retrieved = match live.run(|c| c.retr_many(&to_fetch, &mut engine)) {
                    Ok(_) | Err(Error::Sink(_)) => Ok(()),
                    Err(error) => Err(error),
                };
                session = Some(live);
                (retrieved, None)
            }
            other => {
                session = other;
                (Ok(()), None)
            }
        };
        engine.abandon();
        engine.flush();
        if let Some(bar) = engine.progress.take() {
            bar.finish_and_clear();
        }
        (
            retrieved,
            std::mem::take(&mut engine.stored),
            std::mem::take(&mut engine.failures),
            engine.fatal.take(),
            quit_sent,
        )
    });
    let mut state = state.into_inner().unwrap_or_else(|p| p.into_inner());
    summary.failed = failures.len();
    if let Some(failure) = fatal {
        return Err(failure.note(summary.saved_note(to_fetch.len())));
    }
    retrieved.map_err(|e| {
        Failure::from(e)
            .context("RETR")
            .note(summary.saved_note(to_fetch.len()))
    })?;

    // Deletion: only what is durably stored, only now.
    let mut deleted = Vec::new();
    let quit = match session {
        Some(session) if may_delete => {
            // Stored and recorded (all of them with --delete, the old enough
            // with --keep-days), and what the policies delete unfetched.
            let old_enough = |uid: &str| match (args.delete, cutoff) {
                (true, _) => true,
                (false, Some(cutoff)) => state.first_stored(uid).is_some_and(|t| t <= cutoff),
                (false, None) => false,
            };
            let mut deletable: Vec<MsgNum> = match &listing {
                Some(entries) => {
                    let mut seen = HashSet::new();
                    entries
                        .iter()
                        .filter(|e| {
                            state.contains(&e.uid)
                                && old_enough(&e.uid)
                                && seen.insert(e.uid.as_str())
                        })
                        .map(|e| e.msg)
                        .collect()
                }
                None if args.delete => stored_now.clone(),
                None => Vec::new(),
            };
            deletable.extend(delete_unfetched.iter().copied());
            deletable.sort_unstable();
            deletable.dedup();
            if deletable.is_empty() {
                session.finish(|c| c.quit())
            } else {
                // The DELEs and the QUIT that commits them: one round trip.
                let deleting = session.finish(|c| c.dele_many_and_quit(&deletable));
                let (results, quit) = deleting.map_err(|e| {
                    Failure::from(e).context("DELE (nothing was deleted; the messages are saved)")
                })?;
                for (msg, result) in deletable.iter().zip(results) {
                    match result {
                        Ok(()) => deleted.push(*msg),
                        Err(e) => eprintln!("pop3: DELE {msg}: {}", Failure::from(e).message),
                    }
                }
                quit
            }
        }
        Some(session) => session.finish(|c| c.quit()),
        // Sent with the RETRs; answered with the last message.
        None => quit_sent.unwrap_or(Ok(())),
    };
    quit.map_err(|e| {
        let failure = Failure::from(e);
        if deleted.is_empty() {
            failure.context("QUIT")
        } else {
            failure.context("QUIT (deletions may not have been committed)")
        }
    })?;
    summary.deleted = deleted.len();
    summary.left_on_server = summary.on_server.saturating_sub(summary.deleted);

    // The server has committed: forget UIDs it no longer has.
    if let Some(entries) = &listing {
        let deleted: HashSet<MsgNum> = deleted.into_iter().collect();
        let remaining: HashSet<&str> = entries
            .iter()
            .filter(|e| !deleted.contains(&e.msg))
            .map(|e| e.uid.as_str())
            .collect();
        state
            .retain(|uid| remaining.contains(uid))
            .map_err(|e| Failure::io(format_args!("state file {}", path.display()), &e))?;
    }

    if json {
        let mut out = io::stdout().lock();
        serde_json::to_writer(&mut out, &summary)
            .map_err(|e| Failure::io("stdout", &io::Error::other(e)))?;
        writeln!(out).map_err(|e| Failure::io("stdout", &e))?;
    } else if verbose || io::stderr().is_terminal() {
        eprintln!("pop3: {}", summary.line(label));
    }
    if let Some((msg, why)) = failures.first() {
        return Err(Failure::new(
            Exit::TempFail,
            format!(
                "{} message(s) not stored, will be fetched again next time (message {msg}: {why})",
                failures.len()
            ),
        ));
    }
    Ok(())
}

/// Whether `-ERR` to `UIDL` means that the server has no UIDL: only a
/// plain refusal from a server whose `CAPA` does not list UIDL. A response
/// code (`[SYS/TEMP]`, ...) says why this one failed, and a server that lists
/// UIDL has it: either way the fetch stops, as the reply says.
fn lacks_uidl(refusal: &ServerError, capabilities: Option<&Capabilities>) -> bool {
    refusal.code.is_none() && !capabilities.is_some_and(Capabilities::uidl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_fits_80_columns() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(5 * 1024 * 1024 * 1024), "5.0 GiB");
        let mut summary = Summary {
            on_server: 10_000,
            fetched: 10_000,
            bytes: 12 << 30,
            recovered: 1,
            failed: 1,
            deleted: 10_000,
            left_on_server: 0,
            ..Summary::default()
        };
        assert_eq!(
            summary.line(None),
            "10000 new (12.0 GiB), 1 recovered, 1 failed; server: 10000 deleted, 0 left"
        );
        assert!(summary.line(None).chars().count() + 6 <= 80);
        (summary.recovered, summary.failed) = (0, 0);
        let label = "a-very-long-account-name-that-goes-on-and-on@example.org";
        let line = summary.line(Some(label));
        assert!(line.chars().count() + 6 <= 80, "{line}");
        assert!(line.starts_with("a-very-long-acc"), "{line}");
    }

    #[test]
    fn only_a_plain_refusal_without_uidl_in_capa_means_no_uidl() {
        let plain = ServerError::new(None, pop3_proto::Text::sanitize(b"no"));
        let busy = ServerError::new(
            Some(pop3_proto::ResponseCode::SysTemp),
            pop3_proto::Text::sanitize(b"later"),
        );
        let listed = Capabilities {
            list: vec![pop3_proto::Capability::Uidl],
        };
        assert!(lacks_uidl(&plain, None));
        assert!(lacks_uidl(&plain, Some(&Capabilities::default())));
        assert!(!lacks_uidl(&plain, Some(&listed)));
        assert!(!lacks_uidl(&busy, None));
    }
}
