//! An mbox (mboxrd): entries appended in batches under a lock, each batch
//! announced first in a synced intent file so that the next fetch can
//! settle a batch a crash interrupted.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::mbox_entry::{EntryBuilder, MboxStaged};
use super::mbox_lock::{LockWait, MboxLock};
use super::{hex, Deliver, Incoming, NotStored, Staged, Stored};
use crate::error::Failure;
use crate::state::{sync_dir, whole_lines, State};

/// Checks, before anything connects, that the mbox `path` can be appended
/// to: a regular file, or a missing one in an existing directory, and that
/// directory writable (for the dotlock).
pub(crate) fn prepare_mbox(path: &Path) -> Result<(), Failure> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => {
            rustix::fs::access(path, rustix::fs::Access::WRITE_OK)
                .map_err(|e| Failure::io(format_args!("mbox {}", path.display()), &e.into()))?;
            writable_for_dotlock(path, dir)
        }
        Ok(_) => Err(Failure::new(
            crate::error::Exit::IoErr,
            format!("mbox {}: not a regular file", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if dir.is_dir() {
                writable_for_dotlock(path, dir)
            } else {
                Err(Failure::new(
                    crate::error::Exit::IoErr,
                    format!(
                        "mbox {}: the directory {} does not exist",
                        path.display(),
                        dir.display()
                    ),
                ))
            }
        }
        Err(e) => Err(Failure::io(format_args!("mbox {}", path.display()), &e)),
    }
}

/// Refuses, before anything is downloaded, an mbox whose directory `dir`
/// cannot be written: its dotlock (`FILE.lock`) could not be created, and
/// the fetch would find it out only with the first batch in hand.
fn writable_for_dotlock(mbox: &Path, dir: &Path) -> Result<(), Failure> {
    rustix::fs::access(dir, rustix::fs::Access::WRITE_OK)
        .map_err(|e| super::mbox_lock::cannot_create_dotlock(mbox, &e.into()))
}

/// An mbox file (mboxrd): each message becomes an entry ([`EntryBuilder`]):
/// a `From ` line, the message with CRLF turned into LF and `>*From ` lines
/// quoted with one more `>`, a blank line. A fetch stages the entries (in
/// memory, or a spill file when big) and the committer appends them a batch
/// at a time ([`MboxAppender`]).
pub(crate) struct Mbox {
    path: PathBuf,
    current: Option<EntryBuilder>,
}

impl Mbox {
    /// Appends to `path` (created when the first message comes).
    pub(crate) fn new(path: &Path) -> Mbox {
        Mbox {
            path: path.to_owned(),
            current: None,
        }
    }

    /// The current message's entry, complete.
    fn finish(&mut self) -> Result<MboxStaged, NotStored> {
        let fatal = |e: io::Error| {
            NotStored::Fatal(Failure::io(
                format_args!("mbox {} (staging a message)", self.path.display()),
                &e,
            ))
        };
        let builder = self
            .current
            .take()
            .ok_or_else(|| fatal(io::Error::other("no message started")))?;
        builder.finish().map_err(fatal)
    }
}

/// The envelope sender from `Return-Path:` (before the body), or
/// `MAILER-DAEMON`.
pub(super) fn envelope_sender(message: &[u8]) -> String {
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.len() > 12 && line[..12].eq_ignore_ascii_case(b"return-path:") {
            let value = String::from_utf8_lossy(&line[12..]);
            let addr = value
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim();
            if !addr.is_empty() && !addr.contains(char::is_whitespace) {
                return addr.to_owned();
            }
            break;
        }
    }
    "MAILER-DAEMON".to_owned()
}

/// `Thu Jan  1 00:00:00 1970` (asctime, UTC).
pub(crate) fn asctime(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = (days + 4).rem_euclid(7); // 1970-01-01 was a Thursday
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[weekday as usize],
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        year
    )
}

/// One mboxrd entry: `From ` line, quoted body with LF endings, blank line
/// (the whole-message form of [`EntryBuilder`], which the tests compare it
/// with).
#[cfg(test)]
pub(crate) fn mbox_entry(message: &[u8], received: SystemTime) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 100);
    out.extend_from_slice(
        format!("From {} {}\n", envelope_sender(message), asctime(received)).as_bytes(),
    );
    let body = message.strip_suffix(b"\n").unwrap_or(message);
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let unquoted = line.iter().position(|&b| b != b'>').map(|i| &line[i..]);
        if unquoted.is_some_and(|rest| rest.starts_with(b"From ")) {
            out.push(b'>');
        }
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

impl Deliver for Mbox {
    fn begin(&mut self, _incoming: Incoming) -> io::Result<()> {
        let dir = match self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => dir,
            None => Path::new("."),
        };
        crate::crash::fail("message")?;
        self.current = Some(EntryBuilder::new(dir));
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let written = match &mut self.current {
            Some(builder) => builder.write(data),
            None => Err(io::Error::other("no message started")),
        };
        // Only a big message's spill file is written here.
        written.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "mbox {} (spill file of a message): {e}",
                    self.path.display()
                ),
            )
        })
    }

    fn commit(&mut self) -> Result<Stored, NotStored> {
        let staged = self.finish()?;
        // On its own, with no UID to record: no intent is needed.
        let entries = [MboxEntry {
            staged: &staged,
            uid: None,
        }];
        MboxAppender::new(&self.path, None)
            .append(&entries, || Ok(()))
            .map(|()| Stored::New)
            .map_err(|failed| NotStored::Fatal(failed.failure))
    }

    fn stage(&mut self) -> Result<Option<Staged>, NotStored> {
        self.finish().map(|staged| Some(Staged::Entry(staged)))
    }

    fn abort(&mut self) {
        self.current = None;
    }
}

/// One entry of an mbox batch.
pub(crate) struct MboxEntry<'a> {
    /// Its bytes, length and hash.
    pub(crate) staged: &'a MboxStaged,
    /// The UID to record once it is durable (`None` without UIDL).
    pub(crate) uid: Option<&'a str>,
}

/// Appends batches of entries to an mbox so that a fetch killed at any
/// point neither loses nor repeats one. Per batch, under the mbox's locks
/// (a dotlock, fcntl, and flock where it is a lock of its own:
/// [`MboxLock`]), its length then being the
/// batch's offset:
///
/// 1. the intent file (next to the state) gets, per entry with a UID, its
///    offset, length, SHA-256 and UID, and is synced;
/// 2. the entries are appended and the mbox synced (and its directory, when
///    the mbox is new);
/// 3. the caller records the UIDs in the state and syncs it, still under
///    the lock, so that no other program rewrites the mbox before they are
///    recorded;
/// 4. the intent is emptied, without a sync.
///
/// Killed before 1 completes: nothing was appended. Between 1 and 3:
/// [`recover_mbox`] finds, per UID, whether its exact bytes are in the mbox
/// at its offset, and records it if they are (a message only partly
/// appended is fetched again). After 3: the intent names recorded UIDs
/// only, and recovery skips them.
pub(crate) struct MboxAppender {
    path: PathBuf,
    /// `None`: no intent (and so nothing recovered), for UIDs that are not
    /// recorded.
    intent_path: Option<PathBuf>,
    /// Open (and its directory entry synced) from the first batch on.
    intent: Option<File>,
    wait: LockWait,
}

/// Why [`MboxAppender::append`] did not append and record a batch.
#[derive(Debug)]
pub(crate) struct AppendFailed {
    /// What failed.
    pub(crate) failure: Failure,
    /// Whether the batch is in the mbox all the same (synced; only its UIDs
    /// are not recorded, which the next fetch does from the intent).
    pub(crate) appended: bool,
}

/// How many bytes to write before an entry appended to an mbox whose last
/// bytes are `tail`: mboxrd wants a blank line before each `From ` line,
/// and an mbox left without one (by another program, or by a torn append)
/// would otherwise merge our first entry into its last message.
fn separator(len: u64, tail: &[u8]) -> &'static [u8] {
    if len == 0 || tail.ends_with(b"\n\n") {
        b""
    } else if tail.ends_with(b"\n") {
        b"\n"
    } else {
        b"\n\n"
    }
}

impl MboxAppender {
    /// Appends to the mbox at `path` (created by the first batch), with its
    /// intent at `intent` (see [`intent_path`]).
    pub(crate) fn new(path: &Path, intent: Option<PathBuf>) -> MboxAppender {
        MboxAppender {
            path: path.to_owned(),
            intent_path: intent,
            intent: None,
            wait: LockWait::DEFAULT,
        }
    }

    /// Waits for the mbox's locks as `wait` says (tests wait less).
    #[cfg(test)]
    pub(crate) fn waiting(mut self, wait: LockWait) -> MboxAppender {
        self.wait = wait;
        self
    }

    /// Appends one batch: steps 1 and 2, then `record` (which records the
    /// UIDs durably), then step 4. On an error before the batch is synced
    /// nothing of it is left in the mbox, and nothing is to be recorded;
    /// [`AppendFailed::appended`] says whether the error came after.
    pub(crate) fn append(
        &mut self,
        entries: &[MboxEntry<'_>],
        record: impl FnOnce() -> Result<(), Failure>,
    ) -> Result<(), AppendFailed> {
        let not_appended = |failure: Failure| AppendFailed {
            failure,
            appended: false,
        };
        let path = self.path.clone();
        let mbox = |e: io::Error| Failure::io(format_args!("mbox {}", path.display()), &e);
        // A new mbox is private; an existing one keeps its mode.
        let file = crate::private::file_options()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| not_appended(mbox(e)))?;
        let lock = MboxLock::acquire(&path, file, true, self.wait).map_err(not_appended)?;
        self.append_locked(&lock, entries, record)
    }

    /// [`MboxAppender::append`] under the mbox's locks.
    fn append_locked(
        &mut self,
        lock: &MboxLock,
        entries: &[MboxEntry<'_>],
        record: impl FnOnce() -> Result<(), Failure>,
    ) -> Result<(), AppendFailed> {
        let not_appended = |failure: Failure| AppendFailed {
            failure,
            appended: false,
        };
        let path = self.path.clone();
        let mbox = |e: io::Error| Failure::io(format_args!("mbox {}", path.display()), &e);
        let mut file = lock.file();
        let before = file.metadata().map_err(|e| not_appended(mbox(e)))?.len();
        let mut tail = [0u8; 2];
        let tail = if before >= 2 {
            file.seek(SeekFrom::Start(before - 2))
                .and_then(|_| file.read_exact(&mut tail))
                .map_err(|e| not_appended(mbox(e)))?;
            &tail[..]
        } else if before == 1 {
            file.seek(SeekFrom::Start(0))
                .and_then(|_| file.read_exact(&mut tail[..1]))
                .map_err(|e| not_appended(mbox(e)))?;
            &tail[..1]
        } else {
            &tail[..0]
        };
        let separator = separator(before, tail);

        // 1. The intent, durable before any byte of the batch is appended.
        let mut offset = before + separator.len() as u64;
        let mut text = String::new();
        for entry in entries {
            let len = entry.staged.len;
            if let Some(uid) = entry.uid {
                text.push_str(&format!("{offset} {len} {} {uid}\n", entry.staged.sha256));
            }
            offset += len;
        }
        let with_intent = self.intent_path.is_some() && !text.is_empty();
        if with_intent {
            self.write_intent(text.as_bytes()).map_err(not_appended)?;
            crate::crash::at("intent");
        }

        // 2. The entries, then one sync (of this very descriptor, so that
        // its write-back errors are ours to see).
        let written = (|| {
            let mut out = BufWriter::with_capacity(256 * 1024, lock.file());
            crate::crash::fail("write-message")?;
            out.write_all(separator)?;
            for entry in entries {
                entry.staged.write_to(&mut out)?;
                lock.touch();
            }
            out.flush()?;
            drop(out);
            crate::crash::at("written");
            crate::crash::fail("mbox-sync")?;
            lock.file().sync_data()
        })();
        if let Err(e) = written {
            // Leave no half batch behind. Only down to the length found
            // under the locks, and only while they are all still held, so
            // that nothing another program appended is ever cut: any
            // program that locks an mbox at all waits for one of ours.
            // (Recovery never cuts the mbox: it holds no lock between the
            // crash and the next fetch.)
            let file = lock.file();
            if file.metadata().is_ok_and(|m| m.len() > before) {
                let _ = file.set_len(before);
                let _ = file.sync_data();
            }
            return Err(not_appended(mbox(e)));
        }
        // From here on the batch is in the mbox, synced: a failure leaves
        // it there, and the intent settles its UIDs at the next fetch.
        let appended = |failure: Failure| AppendFailed {
            failure,
            appended: true,
        };
        if before == 0 {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                sync_dir(dir).map_err(|e| {
                    appended(Failure::io(
                        format_args!("mbox {}: fsync {}", path.display(), dir.display()),
                        &e,
                    ))
                })?;
            }
        }
        crate::crash::at("synced");

        // 3. The caller records the UIDs; the locks are held meanwhile.
        record().map_err(appended)?;

        // 4. Not synced, and a failure is harmless: the entries are all
        // recorded now, and recovery skips recorded UIDs.
        if with_intent {
            if let Some(intent) = &self.intent {
                let _ = intent.set_len(0);
            }
        }
        Ok(())
    }

    /// Replaces the intent's content with `text`, durably. The file is
    /// created (and its directory synced, so that it is found after a
    /// power loss) by the first batch of a fetch.
    fn write_intent(&mut self, text: &[u8]) -> Result<(), Failure> {
        let Some(path) = &self.intent_path else {
            return Ok(());
        };
        let ctx =
            |e: io::Error| Failure::io(format_args!("mbox intent file {}", path.display()), &e);
        if self.intent.is_none() {
            let file = crate::private::file_options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .map_err(ctx)?;
            let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
                Some(dir) => dir,
                None => Path::new("."),
            };
            sync_dir(dir).map_err(ctx)?;
            self.intent = Some(file);
        }
        let Some(mut file) = self.intent.as_ref() else {
            return Ok(());
        };
        file.set_len(0).map_err(ctx)?;
        file.seek(SeekFrom::Start(0)).map_err(ctx)?;
        file.write_all(text).map_err(ctx)?;
        file.sync_data().map_err(ctx)
    }
}

/// Where the mbox intent of the state at `state` is kept.
pub(crate) fn intent_path(state: &Path) -> PathBuf {
    crate::state::with_suffix(state, ".mbox-pending")
}

/// The entries (offset, length, SHA-256, UID) of an mbox intent's bytes.
/// What follows the last `\n` is not read: empty, or a write a crash cut
/// short, before the intent was synced and so before anything of its batch
/// was appended. A line that is not an entry is skipped.
pub(crate) fn parse_intent(text: &[u8]) -> Vec<(u64, u64, &str, &str)> {
    whole_lines(text).filter_map(parse_intent_line).collect()
}

/// One line of an intent: offset, length, SHA-256 (hex) and UID.
fn parse_intent_line(line: &[u8]) -> Option<(u64, u64, &str, &str)> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.splitn(4, ' ');
    let offset = parts.next()?.parse().ok()?;
    let len = parts.next()?.parse().ok()?;
    let hash = parts.next()?;
    let uid = parts.next()?;
    (hash.len() == 64 && !uid.is_empty()).then_some((offset, len, hash, uid))
}

/// Whether the mbox holds exactly the bytes whose SHA-256 is `hash` at
/// `offset..offset + len`.
fn holds(mut mbox: &File, size: u64, offset: u64, len: u64, hash: &str) -> io::Result<bool> {
    if offset.checked_add(len).is_none_or(|end| end > size) {
        return Ok(false);
    }
    mbox.seek(SeekFrom::Start(offset))?;
    let mut hasher = Sha256::new();
    let mut left = len;
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let got = mbox.read(&mut buf[..want])?;
        if got == 0 {
            return Ok(false);
        }
        hasher.update(&buf[..got]);
        left -= got as u64;
    }
    Ok(hex(&hasher.finalize()) == hash)
}

/// Settles the batch a fetch into the mbox at `mbox` was appending when it
/// died, before this fetch starts (the caller holds the account's lock):
/// each UID of the intent that the state lacks is recorded if its entry is
/// in the mbox, byte for byte at its offset; otherwise it was not stored and
/// is fetched again. The mbox is only read, never cut: another program may
/// have appended to it since. Then the intent is removed. Returns how many
/// UIDs were recorded.
pub(crate) fn recover_mbox(
    mbox: &Path,
    intent: &Path,
    state: &mut State,
) -> Result<usize, Failure> {
    let text = match fs::read(intent) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(Failure::io(
                format_args!("mbox intent file {}", intent.display()),
                &e,
            ))
        }
    };
    let ctx = |e: io::Error| Failure::io(format_args!("mbox {}", mbox.display()), &e);
    let lock = match File::open(mbox) {
        // Whoever rewrites the mbox (a mail reader expunging) waits.
        Ok(file) => Some(MboxLock::acquire(mbox, file, false, LockWait::DEFAULT)?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(ctx(e)),
    };
    let mut found = Vec::new();
    if let Some(lock) = &lock {
        let file = lock.file();
        let size = file.metadata().map_err(ctx)?.len();
        for (offset, len, hash, uid) in parse_intent(&text) {
            if state.contains(uid) || found.contains(&uid) {
                continue;
            }
            if holds(file, size, offset, len, hash).map_err(ctx)? {
                found.push(uid);
            }
        }
    }
    let count = found.len();
    let state_path = state.path().to_owned();
    state
        .record_many(found)
        .map_err(|e| Failure::io(format_args!("state file {}", state_path.display()), &e))?;
    drop(lock);
    // Not synced: should the intent come back after a power loss, its UIDs
    // are recorded now and it is settled again at no cost.
    match fs::remove_file(intent) {
        Ok(()) => Ok(count),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(count),
        Err(e) => Err(Failure::io(
            format_args!("mbox intent file {}", intent.display()),
            &e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An intent is read as the next fetch reads it: whole lines only (the
    /// last one, cut short by a crash before the intent was synced, is
    /// not an entry even when it parses), lines that are not entries
    /// skipped.
    #[test]
    fn an_intent_s_torn_last_line_is_not_an_entry() {
        let hash = "a".repeat(64);
        let text = format!("0 10 {hash} u1\njunk\n10 20 {hash} u2\n30 5 {hash} u3");
        assert_eq!(
            parse_intent(text.as_bytes()),
            vec![(0, 10, hash.as_str(), "u1"), (10, 20, hash.as_str(), "u2")]
        );
        assert!(parse_intent(b"").is_empty());
    }
    use std::fs::OpenOptions;

    #[test]
    fn asctime_known_values() {
        assert_eq!(asctime(UNIX_EPOCH), "Thu Jan  1 00:00:00 1970");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096); // 2024-02-29 12:34:56
        assert_eq!(asctime(t), "Thu Feb 29 12:34:56 2024");
    }

    #[test]
    fn mboxrd_quoting() {
        let msg = b"Return-Path: <a@b.example>\r\nSubject: x\r\n\r\nFrom here\r\n>From there\r\nFromage\r\n";
        let entry = mbox_entry(msg, UNIX_EPOCH);
        assert_eq!(
            entry,
            b"From a@b.example Thu Jan  1 00:00:00 1970\n\
              Return-Path: <a@b.example>\nSubject: x\n\n>From here\n>>From there\nFromage\n\n"
                .to_vec()
        );
        let entry = mbox_entry(b"Subject: y\r\n\r\nbody", UNIX_EPOCH);
        assert!(entry.starts_with(b"From MAILER-DAEMON "));
        assert!(entry.ends_with(b"\nbody\n\n"));
    }

    fn patient() -> LockWait {
        LockWait {
            total: Duration::from_secs(15),
            stale_after: Duration::from_secs(60),
        }
    }

    /// Another program's append under a dotlock (as mutt, procmail or
    /// Postfix take) comes whole before ours, and ours removes its own
    /// dotlock when done.
    #[test]
    fn an_append_waits_for_a_dotlock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mbox = dir.path().join("box");
        let lock = dir.path().join("box.lock");
        fs::write(&lock, "4242\n").expect("dotlock");
        let theirs = b"From other Thu Jan  1 00:00:00 1970\nSubject: theirs\n\nT\n\n";
        let other = {
            let (mbox, lock) = (mbox.clone(), lock.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(500));
                let mut file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&mbox)
                    .expect("open");
                file.write_all(&theirs[..20]).expect("w");
                std::thread::sleep(Duration::from_millis(300));
                file.write_all(&theirs[20..]).expect("w");
                fs::remove_file(&lock).expect("unlock");
            })
        };
        let (ours, ours_staged) = staged(dir.path(), b"Subject: ours\r\n\r\nO\r\n");
        let entries = [MboxEntry {
            staged: &ours_staged,
            uid: None,
        }];
        MboxAppender::new(&mbox, None)
            .waiting(patient())
            .append(&entries, || Ok(()))
            .expect("append");
        other.join().expect("thread");
        assert_eq!(
            fs::read(&mbox).expect("mbox"),
            [&theirs[..], &ours].concat()
        );
        assert!(!lock.exists(), "our dotlock is removed after the append");
    }

    /// The same with an fcntl lock held by another process (Python's
    /// `fcntl.lockf`, as Dovecot and Postfix lock).
    #[test]
    fn an_append_waits_for_an_fcntl_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mbox = dir.path().join("box");
        let script = r#"
import fcntl, sys, time
f = open(sys.argv[1], "ab")
fcntl.lockf(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(0.5)
f.write(b"From other Thu Jan  1 00:00:00 1970\n"); f.flush()
time.sleep(0.3)
f.write(b"Subject: theirs\n\nT\n\n"); f.flush()
fcntl.lockf(f, fcntl.LOCK_UN)
"#;
        let mut child = match std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&mbox)
            .stdout(std::process::Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                eprintln!("python3 not available ({e}): test skipped");
                return;
            }
        };
        let mut said = [0u8; 7];
        child
            .stdout
            .take()
            .expect("stdout")
            .read_exact(&mut said)
            .expect("locked");
        assert_eq!(&said, b"locked\n");
        let (ours, ours_staged) = staged(dir.path(), b"Subject: ours\r\n\r\nO\r\n");
        let entries = [MboxEntry {
            staged: &ours_staged,
            uid: None,
        }];
        MboxAppender::new(&mbox, None)
            .waiting(patient())
            .append(&entries, || Ok(()))
            .expect("append");
        assert!(child.wait().expect("python").success());
        let theirs = b"From other Thu Jan  1 00:00:00 1970\nSubject: theirs\n\nT\n\n";
        assert_eq!(
            fs::read(&mbox).expect("mbox"),
            [&theirs[..], &ours].concat()
        );
    }

    /// A message's entry as staged, and its bytes.
    fn staged(dir: &Path, message: &[u8]) -> (Vec<u8>, MboxStaged) {
        let mut builder = EntryBuilder::new(dir);
        builder.write(message).expect("write");
        let staged = builder.finish().expect("finish");
        let bytes = staged.in_memory().expect("small").to_vec();
        (bytes, staged)
    }

    #[test]
    fn mbox_batches_and_their_recovery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mbox = dir.path().join("box");
        let state_path = dir.path().join("state");
        let intent = intent_path(&state_path);
        let mut state = State::open(&state_path).expect("state");
        // Another program left the mbox without a final blank line.
        fs::write(
            &mbox,
            b"From x Thu Jan  1 00:00:00 1970\nSubject: a\n\nno end",
        )
        .expect("w");
        let (one, one_staged) = staged(dir.path(), b"Subject: one\r\n\r\n1\r\n");
        let (two, two_staged) = staged(dir.path(), b"Subject: two\r\n\r\n2\r\n");
        let mut appender = MboxAppender::new(&mbox, Some(intent.clone()));
        let entries = [
            MboxEntry {
                staged: &one_staged,
                uid: Some("U1"),
            },
            MboxEntry {
                staged: &two_staged,
                uid: Some("U2"),
            },
        ];
        // A batch whose UIDs could not be recorded: its intent stays.
        let refused = appender.append(&entries, || Err(Failure::usage("no")));
        // In the mbox all the same: counted as saved, settled next time.
        assert!(refused.is_err_and(|failed| failed.appended));
        let text = fs::read(&mbox).expect("mbox");
        assert!(text.ends_with(&[&b"no end\n\n"[..], &one, &two].concat()));
        let lines = fs::read_to_string(&intent).expect("intent");
        assert_eq!(lines.lines().count(), 2, "{lines}");
        // A torn last line, a line of garbage, and an entry past the end.
        let mut torn = lines.clone();
        torn.push_str(&format!("999999 10 {} U3\nnonsense\n5 5", "0".repeat(64)));
        fs::write(&intent, torn).expect("w");
        assert_eq!(
            recover_mbox(&mbox, &intent, &mut state).expect("recover"),
            2
        );
        assert!(state.contains("U1") && state.contains("U2") && !state.contains("U3"));
        assert!(!intent.exists());
        // Settled twice, nothing more; the mbox was only read.
        fs::write(&intent, lines).expect("w");
        assert_eq!(
            recover_mbox(&mbox, &intent, &mut state).expect("recover"),
            0
        );
        assert_eq!(fs::read(&mbox).expect("mbox"), text);
        // A batch that completes leaves an empty intent. (A fetch settles
        // the intent before it opens one.)
        let mut appender = MboxAppender::new(&mbox, Some(intent.clone()));
        let (three, three_staged) = staged(dir.path(), b"Subject: three\r\n\r\n3\r\n");
        let entries = [MboxEntry {
            staged: &three_staged,
            uid: Some("U4"),
        }];
        appender
            .append(&entries, || {
                state.record("U4").map_err(|e| Failure::io("s", &e))
            })
            .expect("append");
        assert_eq!(fs::read(&intent).expect("intent"), b"");
        assert!(fs::read(&mbox)
            .expect("mbox")
            .ends_with(&[&two[..], &three].concat()));
        assert_eq!(separator(0, b""), b"");
        assert_eq!(separator(3, b"a\n"), b"\n");
        assert_eq!(separator(3, b"\n\n"), b"");
    }
}
