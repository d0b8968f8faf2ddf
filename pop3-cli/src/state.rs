//! The per-account list of fetched UIDs, with when each was first stored.
//!
//! One UID per line, followed by a space and the time it was first stored
//! (seconds since 1970; `--keep-days` counts from it). A line holding only a
//! UID comes from an older version of pop3: it is read as stored now, which
//! can only delay a `--keep-days` deletion, never hasten it.
//!
//! The file is rewritten atomically (write `FILE.tmp`, fsync, rename over
//! `FILE`, fsync the directory) when a fetch starts and when it ends; in
//! between, the UIDs of each batch of durable messages are appended and
//! synced once, so a rewrite per message is not needed. A line without its
//! final `\n` (a crash in the middle of an append) is ignored when the file
//! is read, and the rewrite at the start drops it before anything is
//! appended again. `FILE.lock` is held with an exclusive lock for the whole
//! fetch, so two fetches of one account cannot interleave.
//!
//! A fetch into an mbox keeps `FILE.mbox-pending` beside it: the intent of
//! the batch being appended (`OFFSET LENGTH SHA256 UID` per entry), synced
//! before the entries are appended and emptied once their UIDs are
//! recorded here. It is what lets the next fetch tell which messages of an
//! interrupted batch reached the mbox (`deliver::recover_mbox`).
//!
//! A fetch into a Maildir keeps `FILE.maildir-pending` beside it: the UID
//! and file name of each message of the batch being linked into `new/`
//! (`UID NAME` per line), written before the links. A fetch that dies
//! between the links and the recording of the UIDs leaves it, and the next
//! fetch records the UIDs whose file it finds (`Maildir::recover`) instead
//! of downloading them again. It is removed once the batch's UIDs are
//! recorded, and by the next fetch once it has been read, so it never
//! outlives the UIDs it names (which the state may drop later). A file in
//! the Maildir alone never says that a UID is stored: a server may give the
//! UID of a deleted message to a new one (RFC 1939). The intent is not
//! synced on its own: if it is lost, the messages are downloaded again and,
//! their file names being derived from their content, not stored twice.
//!
//! State files used to be named `user@host:port`; they are now
//! `user@host`, so that switching between `pop3://` and `pop3s://` does not
//! download everything again. [`State::open`] merges the older files of the
//! account into the new one, then removes them.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Exit, Failure};

/// The UIDs fetched for one account.
#[derive(Debug)]
pub(crate) struct State {
    path: PathBuf,
    /// In the order they were stored, with the time (seconds) of that.
    uids: Vec<(String, u64)>,
    known: HashMap<String, u64>,
    journal: File,
    /// When the state was last written before this fetch opened it.
    written_before: Option<SystemTime>,
    /// Held locked until dropped.
    _lock: File,
}

/// The time a UID is given when the server listed nothing (an empty
/// mailbox, or a passing fault): it is kept, so that a mailbox back from a
/// fault is not fetched again, but it no longer proves that the message now
/// listed under it is the one stored (RFC 1939 lets a server reuse the UID
/// of a deleted message). Such a UID is never a reason to delete; a fetch
/// that deletes downloads its message again first (a Maildir recognises
/// the same content).
pub(crate) const UNVERIFIED: u64 = 0;

/// One entry per UID, in the order first stored: a UID recorded again
/// after it became [`UNVERIFIED`] takes its new time.
fn merge_lines(all: Vec<(String, u64)>) -> Vec<(String, u64)> {
    let mut at: HashMap<String, usize> = HashMap::with_capacity(all.len());
    let mut uids: Vec<(String, u64)> = Vec::with_capacity(all.len());
    for (uid, time) in all {
        match at.get(&uid) {
            Some(&i) if uids[i].1 == UNVERIFIED => uids[i].1 = time,
            Some(_) => {}
            None => {
                at.insert(uid.clone(), uids.len());
                uids.push((uid, time));
            }
        }
    }
    uids
}

/// Seconds since 1970, now.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Makes the directory entry changes in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Where `pop3` keeps what it remembers when no `--state` (or Maildir or
/// mbox beside which to keep it) says otherwise: `$XDG_STATE_HOME/pop3`,
/// or `~/.local/state/pop3`; `None` without either variable.
pub(crate) fn state_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?)
            .join(".local")
            .join("state"),
    };
    Some(base.join("pop3"))
}

/// A file name for the account: `%XX` for everything but
/// `[A-Za-z0-9._@:+-]` (and a leading `.`).
pub(crate) fn file_name_for(account: &str) -> String {
    let mut name = String::with_capacity(account.len());
    for (i, b) in account.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b"_@:+-".contains(&b) || (b == b'.' && i > 0);
        if plain {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    name
}

/// The state files an older pop3 kept for the account whose state is now
/// at `path`: `<same name>:<port>` in the same directory.
fn legacy_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Ok(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let prefix = format!("{name}:");
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let is_port = file
            .strip_prefix(&prefix)
            .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
        if is_port && entry.file_type()?.is_file() {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

fn read_uids(path: &Path, default_time: u64) -> io::Result<Vec<(String, u64)>> {
    match fs::read(path) {
        Ok(bytes) => Ok(parse_uids(&bytes, default_time)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The UIDs of a state file, each with the time it was first stored
/// (`default_time` where a line has none or an unreadable one). A line cut
/// short by a crash (no `\n`) is ignored.
pub(crate) fn parse_uids(bytes: &[u8], default_time: u64) -> Vec<(String, u64)> {
    let mut uids = Vec::new();
    for line in whole_lines(bytes) {
        let line = String::from_utf8_lossy(line);
        // UIDs are printable ASCII without spaces (RFC 1939).
        let (uid, time) = match line.split_once(' ') {
            Some((uid, time)) => (uid, time.trim().parse().unwrap_or(default_time)),
            None => (line.as_ref(), default_time),
        };
        if !uid.is_empty() {
            uids.push((uid.to_owned(), time));
        }
    }
    uids
}

/// The lines of a file this command appends to, without what follows the
/// last `\n` (nothing, or a write a crash cut short).
pub(crate) fn whole_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let complete = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map(|end| &bytes[..end]);
    complete
        .into_iter()
        .flat_map(|text| text.split(|&b| b == b'\n'))
}

/// A state file's text for `uids`: what [`parse_uids`] reads back.
pub(crate) fn format_uids(uids: &[(String, u64)]) -> String {
    let mut text = String::with_capacity(uids.iter().map(|(u, _)| u.len() + 12).sum());
    for (uid, time) in uids {
        text.push_str(&format!("{uid} {time}\n"));
    }
    text
}

impl State {
    /// Locks and loads the state at `path` (creating its directory; merging
    /// the account's state files of older versions), and rewrites it
    /// cleanly. A second fetch of the same account while this one runs
    /// fails with exit code 75.
    pub(crate) fn open(path: &Path) -> Result<State, Failure> {
        let ctx = |e: io::Error| Failure::io(format_args!("state file {}", path.display()), &e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                crate::private::create_dir_all(dir).map_err(ctx)?;
                if let Some(parent) = dir.parent().filter(|d| !d.as_os_str().is_empty()) {
                    sync_dir(parent).map_err(ctx)?;
                }
            }
        }
        let lock_path = with_suffix(path, ".lock");
        let lock = crate::private::file_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(ctx)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Failure::new(
                    Exit::TempFail,
                    format!(
                        "another fetch for this account is running (lock {})",
                        lock_path.display()
                    ),
                ))
            }
            Err(TryLockError::Error(e)) => return Err(ctx(e)),
        }
        let started = now();
        let mut all = read_uids(path, started).map_err(ctx)?;
        let legacy = legacy_files(path).map_err(ctx)?;
        let mut written_before = modified(path).map_err(ctx)?;
        for old in &legacy {
            all.extend(read_uids(old, started).map_err(ctx)?);
            written_before = written_before.max(modified(old).map_err(ctx)?);
        }
        let uids = merge_lines(all);
        let known: HashMap<String, u64> = uids.iter().cloned().collect();
        write_atomically(path, &uids).map_err(ctx)?;
        if !legacy.is_empty() {
            // Only once the merged file is durable.
            for old in &legacy {
                fs::remove_file(old).map_err(ctx)?;
                let _ = fs::remove_file(with_suffix(old, ".lock"));
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                sync_dir(dir).map_err(ctx)?;
            }
        }
        let journal = OpenOptions::new().append(true).open(path).map_err(ctx)?;
        Ok(State {
            path: path.to_owned(),
            uids,
            known,
            journal,
            written_before,
            _lock: lock,
        })
    }

    /// Whether `uid` was fetched before.
    pub(crate) fn contains(&self, uid: &str) -> bool {
        self.known.contains_key(uid)
    }

    /// Whether `uid` was fetched before and not [`UNVERIFIED`] since: only
    /// then does it vouch for the message listed under it.
    pub(crate) fn is_verified(&self, uid: &str) -> bool {
        self.known.get(uid).is_some_and(|&t| t != UNVERIFIED)
    }

    /// Marks every UID [`UNVERIFIED`] (the server listed nothing), with one
    /// atomic rewrite; nothing to do when none is verified.
    pub(crate) fn mark_unverified(&mut self) -> io::Result<()> {
        if !self.uids.iter().any(|(_, t)| *t != UNVERIFIED) {
            return Ok(());
        }
        let uids: Vec<(String, u64)> = self
            .uids
            .iter()
            .map(|(u, _)| (u.clone(), UNVERIFIED))
            .collect();
        self.replace(uids)
    }

    /// When `uid` was first stored (seconds since 1970).
    pub(crate) fn first_stored(&self, uid: &str) -> Option<u64> {
        self.known.get(uid).copied()
    }

    /// Records `uid` durably (append + sync).
    pub(crate) fn record(&mut self, uid: &str) -> io::Result<()> {
        self.record_many([uid])
    }

    /// Records several UIDs durably with one append and one sync.
    pub(crate) fn record_many<'a>(
        &mut self,
        uids: impl IntoIterator<Item = &'a str>,
    ) -> io::Result<()> {
        let time = now();
        let mut text = Vec::new();
        let mut added = Vec::new();
        for uid in uids {
            if self.is_verified(uid) || added.iter().any(|u: &String| u == uid) {
                continue;
            }
            text.extend_from_slice(format!("{uid} {time}\n").as_bytes());
            added.push(uid.to_owned());
        }
        if added.is_empty() {
            return Ok(());
        }
        crate::crash::fail("record")?;
        self.journal.write_all(&text)?;
        crate::crash::at("appended");
        self.journal.sync_data()?;
        for uid in added {
            if self.known.insert(uid.clone(), time).is_some() {
                // Verified again: the appended line takes over (`merge_lines`).
                if let Some(entry) = self.uids.iter_mut().find(|(u, _)| *u == uid) {
                    entry.1 = time;
                }
            } else {
                self.uids.push((uid, time));
            }
        }
        Ok(())
    }

    /// Rewrites the file atomically with only the UIDs `keep` accepts.
    pub(crate) fn retain(&mut self, keep: impl Fn(&str) -> bool) -> io::Result<()> {
        let uids: Vec<(String, u64)> = self.uids.iter().filter(|(u, _)| keep(u)).cloned().collect();
        self.replace(uids)
    }

    fn replace(&mut self, uids: Vec<(String, u64)>) -> io::Result<()> {
        write_atomically(&self.path, &uids)?;
        self.journal = OpenOptions::new().append(true).open(&self.path)?;
        self.known = uids.iter().cloned().collect();
        self.uids = uids;
        Ok(())
    }

    /// Where the state is kept.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// When the state was last written before this fetch (`None`: there
    /// was none): by the last fetch's last recording or its end.
    pub(crate) fn written_before(&self) -> Option<SystemTime> {
        self.written_before
    }
}

/// When `path` was last written; `None` if it does not exist.
fn modified(path: &Path) -> io::Result<Option<SystemTime>> {
    match fs::metadata(path) {
        Ok(meta) => meta.modified().map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where a Maildir fetch keeps the intent of its batch, beside the state
/// at `state`.
pub(crate) fn maildir_intent_path(state: &Path) -> PathBuf {
    with_suffix(state, ".maildir-pending")
}

/// Replaces the intent at `path` with `entries` (UID, file name), before
/// the batch is linked into the Maildir. Not synced: see the module docs.
pub(crate) fn write_maildir_intent(path: &Path, entries: &[(&str, &str)]) -> io::Result<()> {
    crate::crash::fail("write-intent")?;
    let mut text = Vec::new();
    for (uid, name) in entries {
        text.extend_from_slice(format!("{uid} {name}\n").as_bytes());
    }
    crate::private::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?
        .write_all(&text)
}

/// The entries of the intent at `path` (none if there is none). A line
/// cut short by a crash is ignored.
pub(crate) fn read_maildir_intent(path: &Path) -> io::Result<Vec<(String, String)>> {
    match fs::read(path) {
        Ok(bytes) => Ok(parse_maildir_intent(&bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The entries (UID, file name) of a Maildir intent's bytes. Only names
/// this command gives (`pop3-…`, no space, `/` or NUL) are taken. A name
/// is never opened as a path: it is only looked up among the names of the
/// files found in `new/` and `cur/` (`Maildir::recover`), so one that is
/// not such a name could match nothing, and is refused should it ever be
/// made a path.
pub(crate) fn parse_maildir_intent(bytes: &[u8]) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    for line in whole_lines(bytes) {
        let line = String::from_utf8_lossy(line);
        if let Some((uid, name)) = line.split_once(' ') {
            if !uid.is_empty() && name.starts_with("pop3-") && !name.contains([' ', '/', '\0']) {
                entries.push((uid.to_owned(), name.to_owned()));
            }
        }
    }
    entries
}

/// Forgets the intent at `path`, once what it names is recorded.
pub(crate) fn clear_maildir_intent(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// tmp + fsync + rename + fsync dir.
fn write_atomically(path: &Path, uids: &[(String, u64)]) -> io::Result<()> {
    let tmp = with_suffix(path, ".tmp");
    let text = format_uids(uids);
    {
        let mut file = crate::private::file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => sync_dir(dir),
        None => sync_dir(Path::new(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_lines_are_dropped_and_records_survive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("alice@h:995");
        {
            let mut state = State::open(&path).expect("open");
            state.record("a").expect("record");
            state.record("b").expect("record");
            state.record("a").expect("record");
            // A second fetch of the same account is refused meanwhile.
            let busy = State::open(&path).expect_err("locked");
            assert_eq!(busy.exit, Exit::TempFail);
        }
        assert_eq!(uids_in(&path), ["a", "b"]);
        // Simulate a crash in the middle of an append.
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"c").expect("write");
        drop(f);
        let mut state = State::open(&path).expect("open");
        assert!(state.contains("a") && state.contains("b") && !state.contains("c"));
        assert_eq!(uids_in(&path), ["a", "b"]);
        state.record("d").expect("record");
        state.retain(|u| u != "a").expect("retain");
        assert_eq!(uids_in(&path), ["b", "d"]);
        state.record_many(["e", "f", "e"]).expect("record");
        assert_eq!(uids_in(&path), ["b", "d", "e", "f"]);
    }

    fn uids_in(path: &Path) -> Vec<String> {
        let text = fs::read_to_string(path).expect("read");
        assert!(text.is_empty() || text.ends_with('\n'));
        text.lines()
            .map(|l| {
                let (uid, time) = l.split_once(' ').expect("uid and time");
                assert!(time.parse::<u64>().expect("time") > 1_600_000_000);
                uid.to_owned()
            })
            .collect()
    }

    #[test]
    fn older_state_files_are_merged_and_dated_now() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("alice@h:995"), "a\nb\n").expect("write");
        fs::write(dir.path().join("alice@h:110"), "b\nc 1000\n").expect("write");
        fs::write(dir.path().join("alice@other:995"), "z\n").expect("write");
        fs::write(dir.path().join("alice@h:995.lock"), "").expect("write");
        let before = now();
        let state = State::open(&dir.path().join("alice@h")).expect("open");
        for uid in ["a", "b", "c"] {
            assert!(state.contains(uid), "{uid}");
        }
        assert!(!state.contains("z"));
        assert!(state.first_stored("a").expect("a") >= before);
        assert_eq!(state.first_stored("c"), Some(1000));
        assert!(!dir.path().join("alice@h:995").exists());
        assert!(!dir.path().join("alice@h:110").exists());
        assert!(!dir.path().join("alice@h:995.lock").exists());
        assert!(dir.path().join("alice@other:995").exists());
    }

    #[test]
    fn the_maildir_intent_round_trips_and_a_torn_line_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = maildir_intent_path(&dir.path().join("alice@h"));
        assert_eq!(read_maildir_intent(&path).expect("none"), []);
        write_maildir_intent(&path, &[("a", "pop3-1.2"), ("b", "pop3-3.4")]).expect("write");
        let mut text = fs::read(&path).expect("read");
        text.extend_from_slice(b"c pop3-5");
        fs::write(&path, text).expect("write");
        assert_eq!(
            read_maildir_intent(&path).expect("read"),
            [
                ("a".into(), "pop3-1.2".into()),
                ("b".into(), "pop3-3.4".into())
            ]
        );
        clear_maildir_intent(&path).expect("clear");
        clear_maildir_intent(&path).expect("clear again");
        assert_eq!(read_maildir_intent(&path).expect("none"), []);
    }

    #[test]
    fn the_time_of_the_last_write_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("alice@h");
        let first = State::open(&path).expect("open");
        assert_eq!(first.written_before(), None);
        drop(first);
        let written = fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime");
        let second = State::open(&path).expect("open");
        assert_eq!(second.written_before(), Some(written));
    }

    #[test]
    fn account_file_names() {
        assert_eq!(
            file_name_for("alice@mail.example:995"),
            "alice@mail.example:995"
        );
        assert_eq!(file_name_for("../x/y@h:1"), "%2E.%2Fx%2Fy@h:1");
    }
}
