//! The receiving side of a fetch: the library's message sink, which hands
//! each message to the destination and stages it for the committer.

use std::collections::HashMap;
use std::io;
use std::sync::Mutex;
use std::time::Instant;

use crate::progress::Progress;
use pop3_proto::MsgNum;
use pop3_transport::runtime::{IoStream, MessageSink, Runtime};
use pop3_transport::{Connection, Error};

use super::commit::{locked, Committed, Done, Group, Pending, BATCH_BYTES, BATCH_MESSAGES};
use super::Summary;
use crate::deliver::{Deliver, Incoming, NotStored, Stored};
use crate::error::{net_failure, Exit, Failure};
use crate::interrupt;
use crate::state::State;

/// At most this much of a message's header section (`TOP n 0`) is read for
/// `--filter`: a server may send an endless "header", and a real one is
/// rarely past a few KiB. The filter gets the first bytes of a longer one.
pub(super) const FILTER_HEADER_MAX: usize = 256 * 1024;

/// `TOP msg 0`, at most [`FILTER_HEADER_MAX`] bytes of it; the rest is
/// dropped by the library as it arrives.
pub(super) async fn headers_for_filter<S: IoStream, R: Runtime>(
    conn: &mut Connection<S, R>,
    msg: MsgNum,
) -> Result<Vec<u8>, Error> {
    let mut reader = conn.top(msg, 0).await?;
    let mut headers = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    while headers.len() < FILTER_HEADER_MAX {
        let room = (FILTER_HEADER_MAX - headers.len()).min(buf.len());
        let n = reader.read_chunk(&mut buf[..room]).await?;
        if n == 0 {
            break;
        }
        headers.extend_from_slice(&buf[..n]);
    }
    Ok(headers)
}

/// The engine wants no more messages: it failed locally and keeps the
/// reason ([`Engine::fatal`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Stop;

/// The library sees a stop as the sink's error, which ends the retrieval
/// cleanly.
pub(super) fn stopped(Stop: Stop) -> io::Error {
    io::Error::other("the delivery stopped")
}

/// Receives the messages from the session and stores them.
pub(super) struct Engine<'a> {
    pub(super) deliver: &'a mut dyn Deliver,
    /// `None` without UIDL.
    pub(super) state: Option<&'a Mutex<State>>,
    pub(super) uids: &'a HashMap<MsgNum, String>,
    pub(super) current: Option<MsgNum>,
    /// Bytes of the current message so far.
    pub(super) current_bytes: u64,
    /// Stored by this fetch (new or already there).
    pub(super) stored: Vec<MsgNum>,
    pub(super) failures: Vec<(MsgNum, String)>,
    pub(super) fatal: Option<Failure>,
    /// The committer failed: stage nothing more.
    pub(super) commit_failed: bool,
    pub(super) summary: &'a mut Summary,
    pub(super) progress: Option<Progress>,
    pub(super) to_fetch: usize,
    /// Messages whose retrieval ended (stored or not).
    pub(super) ended: usize,
    /// For a Maildir or an mbox: batches made durable by another thread.
    pub(super) group: Option<Group<'a>>,
    /// See [`Store::max_staged`].
    pub(super) max_staged: (usize, u64),
    /// `--max-size`, held against the bytes that actually arrive: the size
    /// LIST gave is only the server's word.
    pub(super) max_size: Option<u64>,
    /// The current message passed `max_size`: the rest of it is dropped as
    /// it arrives, and it is left on the server.
    pub(super) oversized: Option<MsgNum>,
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
            .map_err(|e| self.stop(Failure::io(format_args!("storing message {msg}"), &e)))
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
            bar.set_done(self.stored.len() + self.failures.len());
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
    pub(super) fn abandon(&mut self) {
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

    /// Counts what a batch saved: only the messages that are in the
    /// destination now, so that the summary says what is there. The rest
    /// of a batch that failed is dropped (a Maildir's files are removed
    /// from `tmp/`; an mbox batch was cut off again) and fetched again next
    /// time.
    fn finish_batch(&mut self, done: Done) {
        let Committed { saved, failure } = done.committed;
        for (pending, how) in done.batch.into_iter().zip(saved) {
            self.deliver.committed(&pending.staged);
            self.counted(pending.msg, how, pending.bytes);
        }
        if let Some(failure) = failure {
            self.commit_failed = true;
            // The first failure is the cause (a full disk shows first in
            // the message being written).
            self.fatal.get_or_insert(failure);
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
    pub(super) fn flush(&mut self) {
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
        if let Some(bar) = &self.progress {
            bar.inc(data.len() as u64);
        }
        if self.oversized == Some(msg) {
            return Ok(());
        }
        self.start(msg)?;
        self.current_bytes += data.len() as u64;
        if let Some(limit) = self.max_size.filter(|&limit| self.current_bytes > limit) {
            // The server listed it smaller. Dropping the rest as it comes
            // (rather than ending the retrieval) keeps the session in step,
            // so the other messages are still fetched; this one is treated
            // as one LIST showed too big: left on the server, not deleted.
            self.deliver.abort();
            self.oversized = Some(msg);
            self.summary.too_big += 1;
            eprintln!(
                "pop3: message {msg}: the server sent more than --max-size ({}) although \
                 it listed it smaller: not stored, left on the server",
                super::human(limit)
            );
            return Ok(());
        }
        self.deliver
            .write(data)
            .map_err(|e| self.stop(Failure::io(format_args!("storing message {msg}"), &e)))
    }

    fn end(&mut self, msg: MsgNum, result: Result<u64, &Error>) -> Result<(), Stop> {
        if self.oversized == Some(msg) {
            self.oversized = None;
            self.current = None;
            self.current_bytes = 0;
            return Ok(());
        }
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
