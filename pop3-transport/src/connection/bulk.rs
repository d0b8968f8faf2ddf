//! The bookkeeping of a bulk operation (`retr_many`, `dele_many`, a command
//! pipelined with others): one result per handle, in the order asked, and
//! what is left to drop when the caller's sink fails.

use std::collections::HashMap;
use std::io;

use pop3_proto::{Client, Handle};

use crate::{Error, Result};

/// The results of the commands `handles`, collected as their completions
/// arrive in any order.
pub(super) struct Bulk<'h, T> {
    handles: &'h [Handle],
    /// Where each handle is in `handles`: looked up once per event of a bulk
    /// retrieval, so not by a linear search (thousands of messages).
    positions: HashMap<Handle, usize>,
    results: Vec<Option<Result<T>>>,
    left: usize,
}

impl<'h, T> Bulk<'h, T> {
    pub(super) fn new(handles: &'h [Handle]) -> Self {
        Bulk {
            handles,
            positions: handles.iter().enumerate().map(|(i, &h)| (h, i)).collect(),
            results: handles.iter().map(|_| None).collect(),
            left: handles.len(),
        }
    }

    /// Where `handle` is among the handles, if it is one of them.
    pub(super) fn index(&self, handle: Handle) -> Option<usize> {
        self.positions.get(&handle).copied()
    }

    /// The command at `index` completed with `result` (only its first
    /// completion counts).
    pub(super) fn complete(&mut self, index: usize, result: Result<T>) {
        if let Some(slot @ None) = self.results.get_mut(index) {
            *slot = Some(result);
            self.left -= 1;
        }
    }

    /// Every command has completed.
    pub(super) fn is_done(&self) -> bool {
        self.left == 0
    }

    /// The caller's sink failed with `error`: the core reads and drops the
    /// replies not yet complete, so the connection stays usable, and the
    /// operation returns [`Error::Sink`].
    pub(super) fn sink_failed(self, client: &mut Client, error: io::Error) -> Error {
        for (handle, result) in self.handles.iter().zip(&self.results) {
            if result.is_none() {
                client.discard(*handle);
            }
        }
        Error::Sink(error)
    }

    /// One result per handle, in order; a command that never completed is
    /// [`Error::Closed`].
    pub(super) fn finish(self) -> Vec<Result<T>> {
        self.results
            .into_iter()
            .map(|r| r.unwrap_or(Err(Error::Closed)))
            .collect()
    }
}
