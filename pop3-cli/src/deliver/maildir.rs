//! A Maildir: messages streamed into `tmp/`, made durable in batches, named
//! after the account, the UID and the content so that nothing is stored
//! twice and a reused UID is still a new message.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::{digest, hex, Deliver, Incoming, LineEndings, NotStored, Staged, Stored, ToUnix};
use crate::error::Failure;
use crate::state::sync_dir;

/// A Maildir (`tmp/`, `new/`, `cur/`).
///
/// File names are `pop3-<u>.<c>`, where `<u>` is a hash of the account and
/// the message's UID and `<c>` one of its content (without UIDL, `pop3-<h>`
/// with `<h>` a hash of the account and the content). A UID says which
/// message it is only while that message is on the server: RFC 1939 lets a
/// server give it to a new message once the old one is gone, so the name
/// tells the two apart by their content. A message fetched again after an
/// interrupted fetch has the same content, hence the same name, and is not
/// stored twice (in `new/`, or renamed by a mail reader to
/// `pop3-<u>.<c>:2,FLAGS` in `cur/`).
///
/// Which UIDs an interrupted fetch stored without recording them is told
/// by its intent ([`Maildir::recover`]): never by the mere presence of a
/// file, which may be an older message with the same UID. Files named
/// `pop3-<u>` by older versions of pop3 are still recognised as left by an
/// interrupted fetch when they were written after the state was last
/// written.
pub(crate) struct Maildir {
    root: PathBuf,
    account: String,
    /// The `pop3-...` names present in `new/` and `cur/`, without flags.
    present: HashSet<String>,
    /// The older `pop3-<u>` names present, with when each was last written.
    legacy: HashMap<String, SystemTime>,
    /// UIDs stored by an interrupted fetch and not recorded ([`Maildir::recover`]).
    recovered: HashSet<String>,
    /// Older names written after this were left by an interrupted fetch
    /// (`None`: there was no state, so every one was).
    legacy_after: Option<SystemTime>,
    /// `pop3-<account hash>-`: this account's temporary files.
    tmp_prefix: String,
    seq: u64,
    current: Option<MaildirMessage>,
    line_endings: LineEndings,
}

struct MaildirMessage {
    tmp: PathBuf,
    file: BufWriter<File>,
    name: Naming,
    /// `None`: the bytes as received.
    to_unix: Option<ToUnix>,
}

/// Where the final file name comes from.
enum Naming {
    /// The UID's part of the name (`pop3-<u>`) and the content, whose hash
    /// completes it at the end.
    Uid(String, Sha256),
    /// No UIDL: the name is a hash of the content, known at the end.
    Content(Sha256),
}

/// Whether the directory `dir` exists and this process may create and
/// remove files in it (write and search permission, a file system mounted
/// read-write), as `access(2)` says: the check that root passes
/// everywhere except on a read-only file system.
fn check_writable_dir(dir: &Path, what: &str) -> Result<(), Failure> {
    let refuse = |why: String| Failure::new(crate::error::Exit::IoErr, why);
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(refuse(format!("{what} {}: not a directory", dir.display()))),
        Err(e) => return Err(Failure::io(format_args!("{what} {}", dir.display()), &e)),
    }
    rustix::fs::access(
        dir,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .map_err(|e| {
        refuse(format!(
            "{what} {}: not writable ({}); nothing was downloaded",
            dir.display(),
            io::Error::from(e)
        ))
    })
}

/// Checks, before anything connects, that `root` is a Maildir this process
/// can deliver into, or can become one; creates nothing (a new Maildir is
/// made only once the server has accepted the login: [`Maildir::open`]).
/// An existing directory must hold `new/`, `cur/` and `tmp/`, each
/// writable (a missing part is created, so the directory must then be
/// writable), or be empty; a missing one needs a writable parent. A
/// mistyped path whose parent does not exist is an error, not a new tree.
/// Returns whether the Maildir exists already.
pub(crate) fn check_maildir(root: &Path) -> Result<bool, Failure> {
    let ctx = |e: io::Error| Failure::io(format_args!("Maildir {}", root.display()), &e);
    match fs::metadata(root) {
        Ok(meta) if meta.is_dir() => {
            let parts = ["new", "cur", "tmp"].map(|d| root.join(d));
            let present = parts
                .iter()
                .filter(|p| p.symlink_metadata().is_ok())
                .count();
            let empty = fs::read_dir(root).map_err(ctx)?.next().is_none();
            if present == 0 && !empty {
                return Err(Failure::new(
                    crate::error::Exit::IoErr,
                    format!(
                        "{} is a directory but not a Maildir (no new/, cur/ or tmp/ in it)",
                        root.display()
                    ),
                ));
            }
            for part in &parts {
                if part.symlink_metadata().is_ok() {
                    check_writable_dir(part, "Maildir")?;
                }
            }
            if present < parts.len() {
                check_writable_dir(root, "Maildir")?;
            }
            Ok(true)
        }
        Ok(_) => Err(Failure::new(
            crate::error::Exit::IoErr,
            format!("Maildir {}: not a directory", root.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = parent_of(root);
            if !parent.is_dir() {
                return Err(Failure::new(
                    crate::error::Exit::IoErr,
                    format!(
                        "Maildir {}: neither it nor {} exists (create the parent first)",
                        root.display(),
                        parent.display()
                    ),
                ));
            }
            check_writable_dir(parent, "the Maildir's parent directory")?;
            Ok(false)
        }
        Err(e) => Err(ctx(e)),
    }
}

/// The directory `path` is in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `error` with `path` in front of its text (its kind kept), so that every
/// message about a file says which one.
fn at_path(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

/// A message written completely into `tmp/`, not yet synced nor visible.
/// Dropped before it was moved into `new/` (its batch failed, or was never
/// committed), its file is removed from `tmp/`.
#[derive(Debug)]
pub(crate) struct StagedFile {
    /// The file in `tmp/`.
    pub(crate) tmp: PathBuf,
    /// Its name in `new/`.
    pub(crate) name: String,
    /// The descriptor it was written through, kept open until it is synced:
    /// a write-back error is reported to the descriptors open when it
    /// happens, and the sync before the close reports what the close would
    /// (which `drop` ignores).
    file: File,
    /// Moved into `new/` (or found there already, and removed from `tmp/`).
    published: AtomicBool,
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.published.load(Ordering::Relaxed) {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// What [`make_durable`] did with a batch.
#[derive(Debug)]
pub(crate) struct MadeDurable {
    /// The first messages of the batch, each now in `new/` (or found there
    /// already): all of them unless `failure` says why not.
    pub(crate) linked: Vec<Stored>,
    /// Whether `new/` was synced after they were linked: only then may
    /// their UIDs be recorded.
    pub(crate) durable: bool,
    /// What stopped the batch.
    pub(crate) failure: Option<Failure>,
}

/// Makes a batch of staged messages durable together, in the order that
/// keeps every promise: each file synced (`fsync` through the descriptor
/// it was written with, several at once so that the file system can
/// commit them together), then each linked into `new/` (never replacing a
/// file), then `new/` synced once. Only the messages it reports
/// [`MadeDurable::linked`] and `durable` may have their UIDs recorded. A
/// link that fails (a full disk, ...) stops the batch there, and the files
/// linked before it are still synced into `new/`, so that what is counted
/// saved is what is there.
///
/// Not `syncfs(2)`: before Linux 5.8 it reports no write-back error at
/// all, and since then an error it reports may already have been taken by
/// another caller; an `fsync` of the file itself is the one answer that
/// speaks of this file.
pub(crate) fn make_durable(root: &Path, batch: &[&StagedFile]) -> MadeDurable {
    let new_dir = root.join("new");
    if let Err(e) = sync_files(batch) {
        return MadeDurable {
            linked: Vec::new(),
            durable: false,
            failure: Some(Failure::io("Maildir fsync", &e)),
        };
    }
    crate::crash::at("synced");
    let mut linked = Vec::with_capacity(batch.len());
    let mut failure = None;
    for staged in batch {
        let target = new_dir.join(&staged.name);
        match publish(&staged.tmp, &target) {
            Ok(how) => {
                staged.published.store(true, Ordering::Relaxed);
                linked.push(how);
            }
            Err(e) => {
                failure = Some(Failure::io(
                    format_args!(
                        "Maildir: moving {} into {}",
                        staged.tmp.display(),
                        new_dir.display()
                    ),
                    &e,
                ));
                break;
            }
        }
    }
    crate::crash::at("linked");
    let mut durable = true;
    if !linked.is_empty() {
        if let Err(e) = sync_dir(&new_dir) {
            durable = false;
            failure.get_or_insert(Failure::io(
                format_args!("Maildir fsync {}", new_dir.display()),
                &e,
            ));
        }
    }
    crate::crash::at("dir-synced");
    MadeDurable {
        linked,
        durable,
        failure,
    }
}

/// How many files are synced at once: concurrent `fsync`s on one file
/// system share its journal commits.
const SYNC_THREADS: usize = 8;

/// Syncs every staged file through its own descriptor; the first error
/// wins.
fn sync_files(batch: &[&StagedFile]) -> io::Result<()> {
    let sync = |staged: &StagedFile| -> io::Result<()> {
        crate::crash::fail("fsync-message")
            .and_then(|()| staged.file.sync_all())
            .map_err(|e| at_path(&staged.tmp, e))
    };
    if batch.len() <= 1 {
        return batch.iter().try_for_each(|staged| sync(staged));
    }
    let per_thread = batch.len().div_ceil(SYNC_THREADS);
    std::thread::scope(|scope| {
        let workers: Vec<_> = batch
            .chunks(per_thread)
            .map(|share| scope.spawn(move || share.iter().try_for_each(|staged| sync(staged))))
            .collect();
        let mut result = Ok(());
        for worker in workers {
            let outcome = worker
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a sync thread panicked")));
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    })
}

/// Moves a complete file from `tmp/` to `target` in `new/`, never replacing
/// a file there (one that is there already is the same message, stored by
/// an earlier fetch: the copy in `tmp/` is removed). On Linux one
/// `renameat2(RENAME_NOREPLACE)`; elsewhere, and on file systems without
/// it, `link(2)` and `unlink(2)` (the classic Maildir delivery), and plain
/// rename where hard links do not work either.
fn publish(tmp: &Path, target: &Path) -> io::Result<Stored> {
    crate::crash::fail("link-message")?;
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        match renameat_with(CWD, tmp, CWD, target, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(Stored::New),
            Err(rustix::io::Errno::EXIST) => {
                let _ = fs::remove_file(tmp);
                return Ok(Stored::AlreadyThere);
            }
            // Not supported here (EINVAL, ENOSYS): the portable way below.
            Err(_) => {}
        }
    }
    match fs::hard_link(tmp, target) {
        Ok(()) => {
            let _ = fs::remove_file(tmp);
            Ok(Stored::New)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(tmp);
            Ok(Stored::AlreadyThere)
        }
        Err(_) => fs::rename(tmp, target).map(|()| Stored::New),
    }
}

impl Maildir {
    /// Finishes the current message in `tmp/` without syncing it, for
    /// [`make_durable`]. `Ok(None)`: the Maildir has it already (the file
    /// in `tmp/` is removed).
    fn stage_file(&mut self) -> Result<Option<StagedFile>, NotStored> {
        self.finish_file(false)
    }

    /// Closes the current message's file in `tmp/` (synced first with
    /// `sync`) and names it; `Ok(None)` when the Maildir has that message
    /// already (the file in `tmp/` is then removed).
    fn finish_file(&mut self, sync: bool) -> Result<Option<StagedFile>, NotStored> {
        let Some(current) = self.current.take() else {
            return Err(NotStored::Fatal(Failure::io(
                "Maildir",
                &io::Error::other("no message started"),
            )));
        };
        let MaildirMessage {
            tmp,
            file,
            name,
            to_unix,
        } = current;
        let fatal = |what: &str, e: io::Error| {
            let _ = fs::remove_file(&tmp);
            NotStored::Fatal(Failure::io(
                format_args!("Maildir {what} {}", tmp.display()),
                &e,
            ))
        };
        let mut file = file;
        if let Some(mut to_unix) = to_unix {
            to_unix
                .finish(|end| file.write_all(end))
                .map_err(|e| fatal("write", e))?;
        }
        let file = file
            .into_inner()
            .map_err(|e| fatal("write", e.into_error()))?;
        if sync {
            crate::crash::fail("fsync-message").map_err(|e| fatal("fsync", e))?;
            file.sync_all().map_err(|e| fatal("fsync", e))?;
        }
        let name = match name {
            Naming::Uid(prefix, hasher) => format!("{prefix}.{}", hex(&hasher.finalize()[..8])),
            Naming::Content(hasher) => format!(
                "pop3-{}",
                digest(&[self.account.as_bytes(), b"content", &hasher.finalize()])
            ),
        };
        if self.present.contains(&name) {
            drop(file);
            let _ = fs::remove_file(&tmp);
            return Ok(None);
        }
        Ok(Some(StagedFile {
            tmp,
            name,
            file,
            published: AtomicBool::new(false),
        }))
    }

    /// Opens the Maildir at `root` (creating it, or its missing parts; its
    /// parent must exist), and removes the temporary files an interrupted
    /// fetch of `account` left in `tmp/`. The caller holds the account's
    /// state lock, so none of them is in use. Messages are stored with
    /// `line_endings`.
    pub(crate) fn open(
        root: &Path,
        account: &str,
        line_endings: LineEndings,
    ) -> Result<Maildir, Failure> {
        let ctx =
            |what: &Path, e: io::Error| Failure::io(format_args!("Maildir {}", what.display()), &e);
        let existed = root.join("new").is_dir();
        if !root.is_dir() {
            crate::private::create_dir(root).map_err(|e| ctx(root, e))?;
        }
        for sub in ["tmp", "new", "cur"] {
            let dir = root.join(sub);
            if !dir.is_dir() {
                crate::private::create_dir(&dir).map_err(|e| ctx(&dir, e))?;
            }
        }
        if !existed {
            // A new Maildir: make its directories durable before any message.
            sync_dir(root).map_err(|e| ctx(root, e))?;
        }
        let tmp_prefix = format!("pop3-{}-", &digest(&[account.as_bytes()])[..16]);
        let tmp = root.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(|e| ctx(&tmp, e))? {
            let entry = entry.map_err(|e| ctx(&tmp, e))?;
            if entry.file_name().to_string_lossy().starts_with(&tmp_prefix) {
                let path = entry.path();
                fs::remove_file(&path).map_err(|e| ctx(&path, e))?;
            }
        }
        let mut present = HashSet::new();
        let mut legacy = HashMap::new();
        for sub in ["new", "cur"] {
            let dir = root.join(sub);
            for entry in fs::read_dir(&dir).map_err(|e| ctx(&dir, e))? {
                let entry = entry.map_err(|e| ctx(&dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("pop3-") {
                    let base = name.split(':').next().unwrap_or_default();
                    if is_legacy_name(base) {
                        let written = match entry.metadata().and_then(|m| m.modified()) {
                            Ok(written) => written,
                            // A mail reader removed it meanwhile: not there.
                            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(ctx(&dir, e)),
                        };
                        let newest = legacy.entry(base.to_owned()).or_insert(written);
                        *newest = (*newest).max(written);
                    }
                    present.insert(base.to_owned());
                }
            }
        }
        Ok(Maildir {
            root: root.to_owned(),
            account: account.to_owned(),
            present,
            legacy,
            recovered: HashSet::new(),
            legacy_after: None,
            tmp_prefix,
            seq: 0,
            current: None,
            line_endings,
        })
    }

    /// `pop3-<u>`: the UID's part of a file name (the whole name, for
    /// older versions of pop3).
    fn uid_name(&self, uid: &str) -> String {
        format!(
            "pop3-{}",
            digest(&[self.account.as_bytes(), b"uid", uid.as_bytes()])
        )
    }

    /// Takes what an interrupted fetch left: `intent` lists, for its last
    /// batch, each UID and the name its file was given, and the UIDs whose
    /// file is in `new/` or `cur/` count as stored ([`Deliver::has_uid`]).
    /// The caller passes only UIDs the state has not recorded.
    /// `state_written` is when the state was last written before this fetch:
    /// a file with an older name written after it was left by an
    /// interrupted fetch of an older pop3, which kept no intent.
    ///
    /// The interrupted fetch may have stopped before it synced `new/`, so
    /// the files it linked are made durable here (both directories synced)
    /// before anything counts them as stored, and so before a `--delete`
    /// could remove them from the server.
    pub(crate) fn recover(
        &mut self,
        intent: impl IntoIterator<Item = (String, String)>,
        state_written: Option<SystemTime>,
    ) -> io::Result<()> {
        for (uid, name) in intent {
            if self.present.contains(&name) {
                self.recovered.insert(uid);
            }
        }
        self.legacy_after = state_written;
        for dir in ["new", "cur"] {
            let dir = self.root.join(dir);
            crate::crash::fail("recover-sync").map_err(|e| at_path(&dir, e))?;
            sync_dir(&dir).map_err(|e| at_path(&dir, e))?;
        }
        Ok(())
    }
}

/// Whether `base` is a name older versions gave: `pop3-` and 32 hex digits.
fn is_legacy_name(base: &str) -> bool {
    base.strip_prefix("pop3-")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Deliver for Maildir {
    fn begin(&mut self, incoming: Incoming) -> io::Result<()> {
        self.abort();
        self.seq += 1;
        let tmp = self.root.join("tmp").join(format!(
            "{}{}.{}.{}",
            self.tmp_prefix,
            std::process::id(),
            self.seq,
            incoming.msg
        ));
        crate::crash::fail("message").map_err(|e| at_path(&tmp, e))?;
        let file = crate::private::file_options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| at_path(&tmp, e))?;
        let name = match incoming.uid.as_deref() {
            Some(uid) => Naming::Uid(self.uid_name(uid), Sha256::new()),
            None => Naming::Content(Sha256::new()),
        };
        self.current = Some(MaildirMessage {
            tmp,
            file: BufWriter::with_capacity(64 * 1024, file),
            name,
            to_unix: (self.line_endings == LineEndings::Unix).then(ToUnix::default),
        });
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let current = self
            .current
            .as_mut()
            .ok_or_else(|| io::Error::other("no message started"))?;
        // The name hashes the bytes as received, whatever is stored: a
        // message is recognised whichever line endings it was stored
        // with (by an older pop3, or with --exact-bytes), and the names in
        // an intent file stay what they were.
        match &mut current.name {
            Naming::Uid(_, hasher) | Naming::Content(hasher) => hasher.update(data),
        }
        let file = &mut current.file;
        let written =
            crate::crash::fail("write-message").and_then(|()| match &mut current.to_unix {
                Some(to_unix) => to_unix.convert(data, |piece| file.write_all(piece)),
                None => file.write_all(data),
            });
        written.map_err(|e| at_path(&current.tmp, e))
    }

    fn commit(&mut self) -> Result<Stored, NotStored> {
        let Some(staged) = self.finish_file(true)? else {
            return Ok(Stored::AlreadyThere);
        };
        let new_dir = self.root.join("new");
        let fatal = |what: String, e: io::Error| NotStored::Fatal(Failure::io(what, &e));
        let how = publish(&staged.tmp, &new_dir.join(&staged.name)).map_err(|e| {
            fatal(
                format!(
                    "Maildir: moving {} into {}",
                    staged.tmp.display(),
                    new_dir.display()
                ),
                e,
            )
        })?;
        staged.published.store(true, Ordering::Relaxed);
        if how == Stored::New {
            sync_dir(&new_dir)
                .map_err(|e| fatal(format!("Maildir fsync {}", new_dir.display()), e))?;
        }
        self.present.insert(staged.name.clone());
        Ok(how)
    }

    fn abort(&mut self) {
        if let Some(current) = self.current.take() {
            drop(current.file);
            let _ = fs::remove_file(&current.tmp);
        }
    }

    fn has_uid(&self, uid: &str) -> bool {
        self.recovered.contains(uid)
            || self.legacy.get(&self.uid_name(uid)).is_some_and(|written| {
                self.legacy_after
                    .is_none_or(|state_written| *written > state_written)
            })
    }

    fn stage(&mut self) -> Result<Option<Staged>, NotStored> {
        self.stage_file().map(|file| file.map(Staged::File))
    }

    fn committed(&mut self, staged: &Staged) {
        if let Staged::File(file) = staged {
            self.present.insert(file.name.clone());
        }
    }
}

impl Drop for Maildir {
    fn drop(&mut self) {
        self.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(md: &mut Maildir, msg: u32, uid: Option<&str>, content: &[u8]) -> Stored {
        md.begin(Incoming {
            msg,
            uid: uid.map(str::to_owned),
        })
        .expect("begin");
        md.write(content).expect("write");
        md.commit().expect("commit")
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn maildir_names_are_stable_and_tmp_is_cleaned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut md = Maildir::open(dir.path(), "u@h:995", LineEndings::Unix).expect("open");
        assert_eq!(store(&mut md, 1, Some("X1"), b"hello\r\n"), Stored::New);
        let [name] = &names_in(&dir.path().join("new"))[..] else {
            panic!("one file")
        };
        assert!(
            name.starts_with(&format!("{}.", md.uid_name("X1"))),
            "{name}"
        );
        // An interrupted message leaves a tmp file; reopening removes it.
        md.begin(Incoming {
            msg: 2,
            uid: Some("X2".into()),
        })
        .expect("begin");
        md.write(b"partial").expect("write");
        std::mem::forget(md.current.take());
        assert_eq!(names_in(&dir.path().join("tmp")).len(), 1);
        let mut md = Maildir::open(dir.path(), "u@h:995", LineEndings::Unix).expect("open");
        assert!(names_in(&dir.path().join("tmp")).is_empty());
        // A file alone does not say its UID is stored: only an intent does.
        md.recover([], Some(SystemTime::now())).expect("sync");
        assert!(!md.has_uid("X1"));
        // A mail reader moved it to cur/ with flags: still recognised.
        fs::rename(
            dir.path().join("new").join(name),
            dir.path().join("cur").join(format!("{name}:2,S")),
        )
        .expect("rename");
        let mut md2 = Maildir::open(dir.path(), "u@h:995", LineEndings::Unix).expect("open");
        md2.recover(
            [
                ("X1".to_owned(), name.clone()),
                ("X2".to_owned(), "pop3-x".into()),
            ],
            Some(SystemTime::now()),
        )
        .expect("sync");
        assert!(md2.has_uid("X1") && !md2.has_uid("X2"));
        // The same message again (fetched again after a crash): not stored twice.
        assert_eq!(
            store(&mut md2, 1, Some("X1"), b"hello\r\n"),
            Stored::AlreadyThere
        );
        // A new message under the same UID: a file of its own.
        assert_eq!(store(&mut md2, 1, Some("X1"), b"other\r\n"), Stored::New);
        assert_eq!(names_in(&dir.path().join("new")).len(), 1);
        // Without UIDL the content names the file.
        for _ in 0..2 {
            store(&mut md, 3, None, b"same content");
        }
        assert_eq!(names_in(&dir.path().join("new")).len(), 2);
        assert!(names_in(&dir.path().join("tmp")).is_empty());
    }

    /// LF by default, the bytes as received with `AsReceived`, under one
    /// name either way (it hashes the bytes received), so that a message
    /// stored before the change, or with the other setting, is not stored
    /// twice.
    #[test]
    fn line_endings_change_the_bytes_not_the_name() {
        let message = b"Subject: one\r\n\r\nbody\r\nlone\rcr\r";
        let unix_dir = tempfile::tempdir().expect("tempdir");
        let exact_dir = tempfile::tempdir().expect("tempdir");
        let mut unix = Maildir::open(unix_dir.path(), "u@h", LineEndings::Unix).expect("open");
        let mut exact =
            Maildir::open(exact_dir.path(), "u@h", LineEndings::AsReceived).expect("open");
        for md in [&mut unix, &mut exact] {
            md.begin(Incoming {
                msg: 1,
                uid: Some("U".into()),
            })
            .expect("begin");
            // Split inside a CRLF.
            md.write(&message[..13]).expect("write");
            md.write(&message[13..]).expect("write");
            assert_eq!(md.commit().expect("commit"), Stored::New);
        }
        let [unix_name] = &names_in(&unix_dir.path().join("new"))[..] else {
            panic!("one file")
        };
        let [exact_name] = &names_in(&exact_dir.path().join("new"))[..] else {
            panic!("one file")
        };
        assert_eq!(unix_name, exact_name);
        let read = |dir: &Path, name: &str| fs::read(dir.join("new").join(name)).expect("read");
        assert_eq!(
            read(unix_dir.path(), unix_name),
            b"Subject: one\n\nbody\nlone\rcr\r"
        );
        assert_eq!(read(exact_dir.path(), exact_name), message);
        // Stored as received earlier: the same message is there already.
        fs::rename(
            exact_dir.path().join("new").join(exact_name),
            unix_dir.path().join("new").join(unix_name),
        )
        .expect("swap");
        let mut unix = Maildir::open(unix_dir.path(), "u@h", LineEndings::Unix).expect("open");
        assert_eq!(
            store(&mut unix, 1, Some("U"), message),
            Stored::AlreadyThere
        );
    }

    /// A staged file its batch never moved into `new/` is removed from
    /// `tmp/`; a published one is left alone.
    #[test]
    fn an_unpublished_staged_file_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut md = Maildir::open(dir.path(), "u@h", LineEndings::Unix).expect("open");
        let mut stage = |msg: u32| {
            md.begin(Incoming {
                msg,
                uid: Some(format!("U{msg}")),
            })
            .expect("begin");
            md.write(format!("m{msg}\r\n").as_bytes()).expect("write");
            md.stage_file().expect("stage").expect("new")
        };
        let (one, two) = (stage(1), stage(2));
        assert_eq!(names_in(&dir.path().join("tmp")).len(), 2);
        let made = make_durable(dir.path(), &[&one]);
        assert_eq!(made.linked, [Stored::New]);
        assert!(made.durable && made.failure.is_none());
        drop((one, two));
        assert!(names_in(&dir.path().join("tmp")).is_empty());
        assert_eq!(names_in(&dir.path().join("new")).len(), 1);
    }

    /// Before connecting: a Maildir part that is a file, or a missing
    /// Maildir whose parent is a file, is refused with its path; nothing
    /// is created by the check.
    #[test]
    fn the_check_names_the_path_and_creates_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fresh = dir.path().join("Mail");
        assert!(!check_maildir(&fresh).expect("can be made"));
        assert!(!fresh.exists(), "the check creates nothing");
        Maildir::open(&fresh, "u@h", LineEndings::Unix).expect("open");
        assert!(check_maildir(&fresh).expect("a Maildir"));
        fs::remove_dir(fresh.join("new")).expect("rmdir");
        fs::write(fresh.join("new"), b"").expect("a file");
        let refused = check_maildir(&fresh).expect_err("new/ is a file");
        assert!(
            refused
                .message
                .contains(&format!("{}: not a directory", fresh.join("new").display())),
            "{}",
            refused.message
        );
        let file = dir.path().join("file");
        fs::write(&file, b"").expect("file");
        let refused = check_maildir(&file.join("Mail")).expect_err("parent is a file");
        let named = format!("Maildir {}: ", file.join("Mail").display());
        assert!(
            refused.message.starts_with(&named) && refused.message.contains("Not a directory"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn older_names_count_only_when_written_after_the_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let md = Maildir::open(dir.path(), "u@h:995", LineEndings::Unix).expect("open");
        let old = md.uid_name("OLD");
        fs::write(dir.path().join("cur").join(format!("{old}:2,S")), "x").expect("write");
        let written = fs::metadata(dir.path().join("cur").join(format!("{old}:2,S")))
            .and_then(|m| m.modified())
            .expect("mtime");
        let earlier = written - std::time::Duration::from_secs(60);
        let later = written + std::time::Duration::from_secs(60);
        for (state_written, recognised) in
            [(Some(earlier), true), (Some(later), false), (None, true)]
        {
            let mut md = Maildir::open(dir.path(), "u@h:995", LineEndings::Unix).expect("open");
            md.recover([], state_written).expect("sync");
            assert_eq!(md.has_uid("OLD"), recognised, "{state_written:?}");
            assert!(!md.has_uid("NEW"));
        }
    }
}
