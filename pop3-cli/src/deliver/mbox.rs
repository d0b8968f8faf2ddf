//! An mbox (mboxrd): entries appended in batches under a lock, each batch
//! announced first in a synced intent file so that the next fetch can
//! settle a batch a crash interrupted.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::{hex, Deliver, Incoming, NotStored, Staged, Stored};
use crate::error::Failure;
use crate::state::{sync_dir, State};

/// Checks, before anything connects, that the mbox `path` can be appended
/// to: a regular file, or a missing one in an existing directory.
pub(crate) fn prepare_mbox(path: &Path) -> Result<(), Failure> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(Failure::new(
            crate::error::Exit::IoErr,
            format!("mbox {}: not a regular file", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if parent.is_dir() {
                Ok(())
            } else {
                Err(Failure::new(
                    crate::error::Exit::IoErr,
                    format!(
                        "mbox {}: the directory {} does not exist",
                        path.display(),
                        parent.display()
                    ),
                ))
            }
        }
        Err(e) => Err(Failure::io(format_args!("mbox {}", path.display()), &e)),
    }
}

/// An mbox file (mboxrd): each message becomes an entry ([`mbox_entry`]):
/// a `From ` line, the message with CRLF turned into LF and `>*From ` lines
/// quoted with one more `>`, a blank line. A fetch stages the entries in
/// memory and the committer appends them a batch at a time
/// ([`MboxAppender`]).
pub(crate) struct Mbox {
    path: PathBuf,
    message: Vec<u8>,
}

impl Mbox {
    /// Appends to `path` (created when the first message comes).
    pub(crate) fn new(path: &Path) -> Mbox {
        Mbox {
            path: path.to_owned(),
            message: Vec::new(),
        }
    }
}

/// The envelope sender from `Return-Path:` (before the body), or
/// `MAILER-DAEMON`.
fn envelope_sender(message: &[u8]) -> String {
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

/// One mboxrd entry: `From ` line, quoted body with LF endings, blank line.
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
        self.message.clear();
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.message.extend_from_slice(data);
        Ok(())
    }

    fn commit(&mut self) -> Result<Stored, NotStored> {
        let entry = mbox_entry(&self.message, SystemTime::now());
        self.message.clear();
        // On its own, with no UID to record: no intent is needed.
        let entries = [MboxEntry {
            bytes: &entry,
            uid: None,
        }];
        MboxAppender::new(&self.path, None)
            .append(&entries, || Ok(()))
            .map(|()| Stored::New)
            .map_err(NotStored::Fatal)
    }

    fn stage(&mut self) -> Result<Option<Staged>, NotStored> {
        let entry = mbox_entry(&self.message, SystemTime::now());
        // Not kept: the next message reuses the buffer.
        self.message.clear();
        Ok(Some(Staged::Entry(entry)))
    }

    fn abort(&mut self) {
        self.message.clear();
    }
}

/// One entry of an mbox batch.
pub(crate) struct MboxEntry<'a> {
    /// Its bytes ([`mbox_entry`]).
    pub(crate) bytes: &'a [u8],
    /// The UID to record once it is durable (`None` without UIDL).
    pub(crate) uid: Option<&'a str>,
}

/// Appends batches of entries to an mbox so that a fetch killed at any
/// point neither loses nor repeats one. Per batch, under an exclusive lock
/// on the mbox, whose length is then the batch's offset:
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

/// Lowercase hex SHA-256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

impl MboxAppender {
    /// Appends to the mbox at `path` (created by the first batch), with its
    /// intent at `intent` (see [`intent_path`]).
    pub(crate) fn new(path: &Path, intent: Option<PathBuf>) -> MboxAppender {
        MboxAppender {
            path: path.to_owned(),
            intent_path: intent,
            intent: None,
        }
    }

    /// Appends one batch: steps 1 and 2, then `record` (which records the
    /// UIDs durably), then step 4. On an error before `record` nothing of
    /// the batch is left in the mbox, and nothing is to be recorded.
    pub(crate) fn append(
        &mut self,
        entries: &[MboxEntry<'_>],
        record: impl FnOnce() -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let path = self.path.clone();
        let mbox = |e: io::Error| Failure::io(format_args!("mbox {}", path.display()), &e);
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(mbox)?;
        file.lock().map_err(mbox)?;
        let before = file.metadata().map_err(mbox)?.len();
        let mut tail = [0u8; 2];
        let tail = if before >= 2 {
            file.seek(SeekFrom::Start(before - 2)).map_err(mbox)?;
            file.read_exact(&mut tail).map_err(mbox)?;
            &tail[..]
        } else if before == 1 {
            file.seek(SeekFrom::Start(0)).map_err(mbox)?;
            file.read_exact(&mut tail[..1]).map_err(mbox)?;
            &tail[..1]
        } else {
            &tail[..0]
        };
        let separator = separator(before, tail);

        // 1. The intent, durable before any byte of the batch is appended.
        let mut offset = before + separator.len() as u64;
        let mut text = String::new();
        for entry in entries {
            let len = entry.bytes.len() as u64;
            if let Some(uid) = entry.uid {
                text.push_str(&format!(
                    "{offset} {len} {} {uid}\n",
                    sha256_hex(entry.bytes)
                ));
            }
            offset += len;
        }
        let with_intent = self.intent_path.is_some() && !text.is_empty();
        if with_intent {
            self.write_intent(text.as_bytes())?;
            crate::crash::at("intent");
        }

        // 2. The entries, then one sync.
        let written = (|| {
            let mut out = BufWriter::with_capacity(256 * 1024, &file);
            out.write_all(separator)?;
            for entry in entries {
                out.write_all(entry.bytes)?;
            }
            out.flush()?;
            drop(out);
            crate::crash::at("written");
            file.sync_data()
        })();
        if let Err(e) = written {
            // Leave no half batch behind: the lock kept others from
            // appending after it. (Recovery never cuts the mbox, as it
            // holds no lock between the crash and the next fetch.)
            let _ = file.set_len(before);
            let _ = file.sync_data();
            return Err(mbox(e));
        }
        if before == 0 {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                sync_dir(dir).map_err(mbox)?;
            }
        }
        crate::crash::at("synced");

        // 3. The caller records the UIDs; `file` keeps the lock meanwhile.
        record()?;
        drop(file);

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
            let file = OpenOptions::new()
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
fn holds(mbox: &mut File, size: u64, offset: u64, len: u64, hash: &str) -> io::Result<bool> {
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
    let mut file = match File::open(mbox) {
        Ok(file) => Some(file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(ctx(e)),
    };
    let mut found = Vec::new();
    if let Some(file) = &mut file {
        // Whoever rewrites the mbox (a mail reader expunging) waits.
        file.lock_shared().map_err(ctx)?;
        let size = file.metadata().map_err(ctx)?.len();
        let mut lines = text.split(|&b| b == b'\n').peekable();
        while let Some(line) = lines.next() {
            if lines.peek().is_none() {
                // After the last '\n': empty, or a write cut short (before
                // the intent was synced, so nothing of it was appended).
                break;
            }
            let Some((offset, len, hash, uid)) = parse_intent_line(line) else {
                continue;
            };
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
    drop(file);
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
        let one = mbox_entry(b"Subject: one\r\n\r\n1\r\n", UNIX_EPOCH);
        let two = mbox_entry(b"Subject: two\r\n\r\n2\r\n", UNIX_EPOCH);
        let mut appender = MboxAppender::new(&mbox, Some(intent.clone()));
        let entries = [
            MboxEntry {
                bytes: &one,
                uid: Some("U1"),
            },
            MboxEntry {
                bytes: &two,
                uid: Some("U2"),
            },
        ];
        // A batch whose UIDs could not be recorded: its intent stays.
        let refused = appender.append(&entries, || Err(Failure::usage("no")));
        assert!(refused.is_err());
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
        let three = mbox_entry(b"Subject: three\r\n\r\n3\r\n", UNIX_EPOCH);
        let entries = [MboxEntry {
            bytes: &three,
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
