//! The plan of a fetch: which messages are new, which the size policies
//! leave on the server or delete unfetched, and which may be deleted once
//! everything is stored.

use std::collections::{HashMap, HashSet};

use pop3_proto::{Capabilities, MsgNum, ServerError, UidlEntry};

use super::{human, FetchOptions, Summary};
use crate::deliver::Deliver;
use crate::state::State;

/// The messages a UIDL listing names, sorted out against the state.
pub(super) struct New<'a> {
    /// Each message's UID (the first message of a UID listed twice).
    pub(super) uids: HashMap<MsgNum, String>,
    /// Neither recorded nor stored: to fetch.
    pub(super) to_fetch: Vec<MsgNum>,
    /// Stored by a fetch that died before recording them: to record.
    pub(super) recovered: Vec<&'a str>,
}

/// What of `entries` is new, what is recorded in `state`, and what is
/// already stored in `deliver` without being recorded. A fetch that
/// `deletes` downloads again what an [`UNVERIFIED`] UID names, so that it
/// deletes only what it knows is stored.
///
/// [`UNVERIFIED`]: crate::state::UNVERIFIED
pub(super) fn new_messages<'a>(
    entries: &'a [UidlEntry],
    state: &State,
    deliver: &dyn Deliver,
    deletes: bool,
) -> New<'a> {
    let mut new = New {
        uids: HashMap::new(),
        to_fetch: Vec::new(),
        recovered: Vec::new(),
    };
    let mut seen = HashSet::new();
    for entry in entries {
        if !seen.insert(entry.uid.as_str()) {
            // A server listing one UID twice: take the first only.
            continue;
        }
        new.uids.insert(entry.msg, entry.uid.clone());
        if state.is_verified(&entry.uid) || (state.contains(&entry.uid) && !deletes) {
            continue;
        }
        if deliver.has_uid(&entry.uid) {
            // Stored by a fetch that died before recording it.
            new.recovered.push(entry.uid.as_str());
            continue;
        }
        new.to_fetch.push(entry.msg);
    }
    new
}

/// `--delete-bigger-than` and `--max-size`: takes out of `to_fetch` what
/// is too big (counted in `summary`), and returns what is to be deleted
/// unfetched.
pub(super) fn size_limits(
    to_fetch: &mut Vec<MsgNum>,
    sizes: &HashMap<MsgNum, u64>,
    args: &FetchOptions,
    verbose: bool,
    summary: &mut Summary,
) -> Vec<MsgNum> {
    let mut delete_unfetched = Vec::new();
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
    delete_unfetched
}

/// What to delete at the end: stored and recorded (all of them with
/// `--delete`, those first stored before `cutoff` with `--keep-days`; without
/// UIDL, what this fetch stored, with `--delete` only), and what the
/// policies delete unfetched. Sorted, each once.
pub(super) fn deletable(
    listing: Option<&[UidlEntry]>,
    state: &State,
    args: &FetchOptions,
    cutoff: Option<u64>,
    stored_now: &[MsgNum],
    delete_unfetched: &[MsgNum],
) -> Vec<MsgNum> {
    let old_enough = |uid: &str| match (args.delete, cutoff) {
        (true, _) => true,
        (false, Some(cutoff)) => state.first_stored(uid).is_some_and(|t| t <= cutoff),
        (false, None) => false,
    };
    let mut deletable: Vec<MsgNum> = match listing {
        Some(entries) => {
            let mut seen = HashSet::new();
            entries
                .iter()
                .filter(|e| {
                    state.is_verified(&e.uid) && old_enough(&e.uid) && seen.insert(e.uid.as_str())
                })
                .map(|e| e.msg)
                .collect()
        }
        None if args.delete => stored_now.to_vec(),
        None => Vec::new(),
    };
    deletable.extend(delete_unfetched.iter().copied());
    deletable.sort_unstable();
    deletable.dedup();
    deletable
}

/// The UIDs to keep in the state once the server has committed: those of
/// `entries` not deleted now. `None` (keep every UID) when the server
/// listed nothing: an empty listing is as often a server's passing fault
/// (a mailbox not mounted yet, a migration) as an empty mailbox, and
/// forgetting every UID would fetch everything again once it is back. A
/// mailbox this fetch emptied itself is pruned as usual.
pub(super) fn still_listed<'a>(
    entries: &'a [UidlEntry],
    deleted: &[MsgNum],
) -> Option<HashSet<&'a str>> {
    if entries.is_empty() {
        return None;
    }
    let deleted: HashSet<MsgNum> = deleted.iter().copied().collect();
    Some(
        entries
            .iter()
            .filter(|e| !deleted.contains(&e.msg))
            .map(|e| e.uid.as_str())
            .collect(),
    )
}

/// Whether `-ERR` to `UIDL` means that the server has no UIDL: only a
/// plain refusal from a server whose `CAPA` does not list UIDL. A response
/// code (`[SYS/TEMP]`, ...) says why this one failed, and a server that lists
/// UIDL has it: either way the fetch stops, as the reply says.
pub(super) fn lacks_uidl(refusal: &ServerError, capabilities: Option<&Capabilities>) -> bool {
    refusal.code.is_none() && !capabilities.is_some_and(Capabilities::uidl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_listing_keeps_every_uid() {
        let entry = |n: u32, uid: &str| UidlEntry {
            msg: MsgNum::new(n).expect("non-zero"),
            uid: uid.to_owned(),
        };
        assert_eq!(still_listed(&[], &[]), None);
        let entries = [entry(1, "a"), entry(2, "b")];
        let one = MsgNum::new(1).expect("non-zero");
        assert_eq!(still_listed(&entries, &[one]), Some(HashSet::from(["b"])));
        // Deleting everything it listed empties the state: that was us.
        let two = MsgNum::new(2).expect("non-zero");
        assert_eq!(still_listed(&entries, &[one, two]), Some(HashSet::new()));
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
