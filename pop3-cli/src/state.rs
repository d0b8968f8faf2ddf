//! The per-account list of fetched UIDs.
//!
//! One UID per line. The file is rewritten atomically (write `FILE.tmp`,
//! fsync, rename over `FILE`, fsync the directory) when a fetch starts and
//! when it ends; in between, each UID is appended and fsynced as soon as its
//! message is durable, so a rewrite per message is not needed. A line
//! without its final `\n` (a crash in the middle of an append) is ignored
//! when the file is read, and the rewrite at the start drops it before
//! anything is appended again. `FILE.lock` is held with an exclusive lock
//! for the whole fetch, so two fetches of one account cannot interleave.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Exit, Failure};

/// The UIDs fetched for one account.
#[derive(Debug)]
pub(crate) struct State {
    path: PathBuf,
    uids: Vec<String>,
    known: HashSet<String>,
    journal: File,
    /// Held locked until dropped.
    _lock: File,
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

fn read_uids(path: &Path) -> io::Result<Vec<String>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut uids = Vec::new();
    let mut lines = bytes.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if lines.peek().is_none() {
            // After the last '\n': empty, or an append cut short.
            break;
        }
        if !line.is_empty() {
            uids.push(String::from_utf8_lossy(line).into_owned());
        }
    }
    Ok(uids)
}

impl State {
    /// Locks and loads the state at `path` (creating its directory), and
    /// rewrites it cleanly. A second fetch of the same account while this
    /// one runs fails with exit code 75.
    pub(crate) fn open(path: &Path) -> Result<State, Failure> {
        let ctx = |e: io::Error| Failure::io(format_args!("state file {}", path.display()), &e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                fs::create_dir_all(dir).map_err(ctx)?;
                if let Some(parent) = dir.parent().filter(|d| !d.as_os_str().is_empty()) {
                    sync_dir(parent).map_err(ctx)?;
                }
            }
        }
        let lock_path = with_suffix(path, ".lock");
        let lock = OpenOptions::new()
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
        let uids = read_uids(path).map_err(ctx)?;
        let mut known = HashSet::with_capacity(uids.len());
        let uids: Vec<String> = uids
            .into_iter()
            .filter(|u| known.insert(u.clone()))
            .collect();
        write_atomically(path, &uids).map_err(ctx)?;
        let journal = OpenOptions::new().append(true).open(path).map_err(ctx)?;
        Ok(State {
            path: path.to_owned(),
            uids,
            known,
            journal,
            _lock: lock,
        })
    }

    /// Whether `uid` was fetched before.
    pub(crate) fn contains(&self, uid: &str) -> bool {
        self.known.contains(uid)
    }

    /// Records `uid` durably (append + fsync).
    pub(crate) fn record(&mut self, uid: &str) -> io::Result<()> {
        if self.known.contains(uid) {
            return Ok(());
        }
        let mut line = Vec::with_capacity(uid.len() + 1);
        line.extend_from_slice(uid.as_bytes());
        line.push(b'\n');
        self.journal.write_all(&line)?;
        self.journal.sync_data()?;
        self.known.insert(uid.to_owned());
        self.uids.push(uid.to_owned());
        Ok(())
    }

    /// Rewrites the file atomically with only the UIDs `keep` accepts.
    pub(crate) fn retain(&mut self, keep: impl Fn(&str) -> bool) -> io::Result<()> {
        let uids: Vec<String> = self.uids.iter().filter(|u| keep(u)).cloned().collect();
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
}

/// tmp + fsync + rename + fsync dir.
fn write_atomically(path: &Path, uids: &[String]) -> io::Result<()> {
    let tmp = with_suffix(path, ".tmp");
    let mut text = String::with_capacity(uids.iter().map(|u| u.len() + 1).sum());
    for uid in uids {
        text.push_str(uid);
        text.push('\n');
    }
    {
        let mut file = File::create(&tmp)?;
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
        assert_eq!(fs::read(&path).expect("read"), b"a\nb\n");
        // Simulate a crash in the middle of an append.
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"c").expect("write");
        drop(f);
        let mut state = State::open(&path).expect("open");
        assert!(state.contains("a") && state.contains("b") && !state.contains("c"));
        assert_eq!(fs::read(&path).expect("read"), b"a\nb\n");
        state.record("d").expect("record");
        state.retain(|u| u != "a").expect("retain");
        assert_eq!(fs::read(&path).expect("read"), b"b\nd\n");
        state.record("e").expect("record");
        assert_eq!(fs::read(&path).expect("read"), b"b\nd\ne\n");
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
