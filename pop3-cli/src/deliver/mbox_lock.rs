//! The locks an mbox is guarded with by the programs that write mboxes:
//! a dotlock (`FILE.lock`), an `fcntl` (POSIX record) lock on the whole
//! file, and `flock`.
//!
//! Postfix local(8) takes fcntl and a dotlock, procmail a dotlock and a
//! kernel lock, mutt and Dovecot a dotlock and fcntl; another `pop3` takes
//! flock. A writer that skipped any one of them could interleave with the
//! programs that use only that one, so all three are taken, in that order,
//! and none is given up before the last write and its sync are done.
//!
//! Except flock where it is not a lock of its own: on the BSDs and macOS,
//! and on Linux over NFS, flock is carried out as an fcntl lock on the
//! whole file, owned by the open file rather than the process, so our own
//! fcntl lock would make our flock wait, and the append give up after the
//! whole wait. There flock adds nothing that fcntl does not hold already,
//! and only the dotlock and fcntl are taken (as Postfix and Dovecot do).
//!
//! Waiting is bounded: each lock is tried without blocking and retried with
//! a growing pause until [`LockWait::total`] has passed, then the append is
//! refused (exit 75, nothing written) rather than hanging a cron job behind
//! a mail reader left open on the mailbox. A dotlock whose file was not
//! touched for [`LockWait::stale_after`] is taken to be left by a program
//! that died, and removed, as those programs do (they wait between two and
//! about eight minutes); ours is touched while it is held long.

use std::cell::Cell;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Exit, Failure};
use crate::state::with_suffix;

/// How long to wait for the locks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LockWait {
    /// The whole wait, for all three locks together.
    pub(crate) total: Duration,
    /// A dotlock not modified for this long is removed.
    pub(crate) stale_after: Duration,
}

impl LockWait {
    /// Two minutes in all; a dotlock untouched for five minutes is stale.
    pub(crate) const DEFAULT: LockWait = LockWait {
        total: Duration::from_secs(120),
        stale_after: Duration::from_secs(300),
    };
}

/// The first pause between two tries; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// How often a held dotlock's time is refreshed.
const TOUCH_EVERY: Duration = Duration::from_secs(10);

/// The mbox's open file with all three locks held: released, and the
/// dotlock removed, when dropped.
pub(crate) struct MboxLock {
    // Declared first so it is closed first: closing the file releases the
    // fcntl and flock locks, and only then is the dotlock removed.
    file: File,
    dotlock: DotLock,
}

impl MboxLock {
    /// Takes the three locks on the mbox `path`, opened as `file` (for an
    /// exclusive lock it must be open for writing, for a shared one for
    /// reading).
    pub(crate) fn acquire(
        path: &Path,
        file: File,
        exclusive: bool,
        wait: LockWait,
    ) -> Result<MboxLock, Failure> {
        let deadline = Instant::now() + wait.total;
        let dotlock = DotLock::acquire(path, deadline, wait)?;
        let busy = |what: &str| {
            Failure::new(
                Exit::TempFail,
                format!(
                    "mbox {}: another program holds its {what} lock (waited {} s); \
                     nothing was appended",
                    path.display(),
                    wait.total.as_secs()
                ),
            )
        };
        let failed = |e: io::Error| Failure::io(format_args!("mbox {} (lock)", path.display()), &e);
        let fcntl = if exclusive {
            rustix::fs::FlockOperation::NonBlockingLockExclusive
        } else {
            rustix::fs::FlockOperation::NonBlockingLockShared
        };
        let got = retry(deadline, || match rustix::fs::fcntl_lock(&file, fcntl) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::ACCESS) => Ok(false),
            Err(e) => Err(failed(e.into())),
        })?;
        if !got {
            return Err(busy("fcntl"));
        }
        if !flock_is_its_own_lock(&file) {
            return Ok(MboxLock { file, dotlock });
        }
        let got = retry(deadline, || {
            let tried = if exclusive {
                file.try_lock()
            } else {
                file.try_lock_shared()
            };
            match tried {
                Ok(()) => Ok(true),
                Err(fs::TryLockError::WouldBlock) => Ok(false),
                Err(fs::TryLockError::Error(e)) => Err(failed(e)),
            }
        })?;
        if !got {
            return Err(busy("flock"));
        }
        Ok(MboxLock { file, dotlock })
    }

    /// The locked mbox.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Keeps the dotlock from looking stale during a long append.
    pub(crate) fn touch(&self) {
        self.dotlock.touch();
    }
}

/// Whether flock on `file` is a lock apart from fcntl: only on Linux, and
/// not over NFS, where Linux turns flock into fcntl locks (see the module's
/// documentation). When the file system cannot be told, it is not taken.
fn flock_is_its_own_lock(file: &File) -> bool {
    #[cfg(target_os = "linux")]
    {
        rustix::fs::fstatfs(file).is_ok_and(|fs| fs.f_type != rustix::fs::NFS_SUPER_MAGIC)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        false
    }
}

/// Runs `attempt` until it returns `Ok(true)` or `deadline` passes
/// (`Ok(false)`), pausing longer each time.
fn retry(
    deadline: Instant,
    mut attempt: impl FnMut() -> Result<bool, Failure>,
) -> Result<bool, Failure> {
    let mut pause = FIRST_PAUSE;
    loop {
        if attempt()? {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// `FILE.lock`, created with `O_EXCL`, removed when dropped (if it is still
/// ours).
struct DotLock {
    path: PathBuf,
    /// Open on the lock file: its identity tells ours from a successor's,
    /// and its time is what keeps it from looking stale.
    file: File,
    touched: Cell<Instant>,
}

impl DotLock {
    fn acquire(mbox: &Path, deadline: Instant, wait: LockWait) -> Result<DotLock, Failure> {
        let path = with_suffix(mbox, ".lock");
        let failed = |e: io::Error| cannot_create_dotlock(mbox, &e);
        let mut taken = None;
        retry(deadline, || {
            match crate::private::file_options()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    taken = Some(file);
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    remove_if_stale(&path, wait.stale_after);
                    Ok(false)
                }
                Err(e) => Err(failed(e)),
            }
        })?;
        let Some(mut file) = taken else {
            return Err(Failure::new(
                Exit::TempFail,
                format!(
                    "mbox {}: locked by another program ({} exists; waited {} s); \
                     nothing was appended",
                    mbox.display(),
                    path.display(),
                    wait.total.as_secs()
                ),
            ));
        };
        // Who holds it, as Dovecot writes it, so that a lock whose holder
        // died can be told at once; should this write fail, the lock is
        // only judged by its age.
        let _ = writeln!(file, "{}:{}", std::process::id(), host_name());
        Ok(DotLock {
            path,
            file,
            touched: Cell::new(Instant::now()),
        })
    }

    fn touch(&self) {
        if self.touched.get().elapsed() >= TOUCH_EVERY {
            let _ = self.file.set_modified(SystemTime::now());
            self.touched.set(Instant::now());
        }
    }
}

/// The error for a dotlock of `mbox` that cannot be created: its directory
/// not writable is said as such, the usual cause.
pub(crate) fn cannot_create_dotlock(mbox: &Path, e: &io::Error) -> Failure {
    let dir = match mbox.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir.display().to_string(),
        None => ".".to_owned(),
    };
    let why = match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => format!(
            "the directory {dir} is not writable, and mail programs lock an \
             mbox with a FILE.lock beside it"
        ),
        _ => e.to_string(),
    };
    Failure::new(
        Exit::IoErr,
        format!(
            "mbox {}: cannot create {}: {why}; nothing was appended",
            mbox.display(),
            with_suffix(mbox, ".lock").display()
        ),
    )
}

/// This host's name, as written in a dotlock.
fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The process that holds the dotlock whose content is `content`, when the
/// lock says it is one of this host's (`PID:HOST`) and that process is gone.
fn gone_holder(content: &[u8]) -> Option<i32> {
    let text = std::str::from_utf8(content).ok()?;
    let (pid, host) = text.trim_end().split_once(':')?;
    let pid: i32 = pid.parse().ok().filter(|&p| p > 0)?;
    if host != host_name() || pid == i32::try_from(std::process::id()).ok()? {
        return None;
    }
    let process = rustix::process::Pid::from_raw(pid)?;
    match rustix::process::test_kill_process(process) {
        Err(rustix::io::Errno::SRCH) => Some(pid),
        _ => None,
    }
}

/// What a dotlock was when it was judged stale: the same file, untouched
/// since, is the only one that may be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Judged {
    dev: u64,
    ino: u64,
    modified: Option<SystemTime>,
}

impl Judged {
    fn of(meta: &fs::Metadata) -> Judged {
        use std::os::unix::fs::MetadataExt;
        Judged {
            dev: meta.dev(),
            ino: meta.ino(),
            modified: meta.modified().ok(),
        }
    }
}

/// Removes the dotlock at `path` if it was not modified for `stale_after`,
/// or if its holder is a process of this host that is gone.
fn remove_if_stale(path: &Path, stale_after: Duration) {
    let Some((judged, why)) = judge_stale(path, stale_after) else {
        return;
    };
    if remove_judged(path, judged) {
        eprintln!("pop3: removed the stale lock {} ({why})", path.display());
    }
}

/// The identity of the dotlock at `path` and why it is stale, if it is.
fn judge_stale(path: &Path, stale_after: Duration) -> Option<(Judged, String)> {
    let meta = fs::metadata(path).ok()?;
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    let why = if age >= stale_after {
        format!("{} s old", age.as_secs())
    } else {
        let mut content = Vec::new();
        let read = File::open(path).and_then(|f| f.take(256).read_to_end(&mut content));
        let pid = read.ok().and_then(|_| gone_holder(&content))?;
        format!("its holder, process {pid}, is gone")
    };
    Some((Judged::of(&meta), why))
}

/// Removes the dotlock at `path` if it is still the file `judged` stale.
///
/// Removing it by name would not do: two processes may judge the same lock
/// stale; the first removes it and takes a fresh one, which the second then
/// removes by the same name, and both hold the lock (`O_EXCL` only keeps
/// two creations apart, not a removal from a creation). So the lock is
/// first renamed to a name of this process's own, which takes it away from
/// every other process atomically, and only then looked at: the stale one
/// is removed, anything else (a fresh lock taken in between, or the stale
/// one touched by a holder that was alive after all) is linked back under
/// the lock's name.
fn remove_judged(path: &Path, judged: Judged) -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static TRIES: AtomicU64 = AtomicU64::new(0);
    let aside = with_suffix(
        path,
        &format!(
            ".stale.{}.{}",
            std::process::id(),
            TRIES.fetch_add(1, Ordering::Relaxed)
        ),
    );
    if fs::rename(path, &aside).is_err() {
        return false;
    }
    let stale = fs::metadata(&aside).is_ok_and(|meta| Judged::of(&meta) == judged);
    if !stale {
        // Linked, not renamed, back: a rename would replace a lock created
        // at the name meanwhile. Should the link fail (the name was taken
        // again), the renamed lock's holder has lost it already.
        if fs::hard_link(&aside, path).is_err() && !path.exists() {
            let _ = fs::rename(&aside, path);
            return false;
        }
    }
    let _ = fs::remove_file(&aside);
    stale
}

impl Drop for DotLock {
    fn drop(&mut self) {
        // Only ours: a lock that someone took for stale and replaced is
        // theirs now.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let same = match (self.file.metadata(), fs::metadata(&self.path)) {
                (Ok(ours), Ok(there)) => ours.dev() == there.dev() && ours.ino() == there.ino(),
                _ => false,
            };
            if !same {
                return;
            }
        }
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> LockWait {
        LockWait {
            total: Duration::from_millis(300),
            stale_after: Duration::from_secs(60),
        }
    }

    fn open(path: &Path) -> File {
        crate::private::file_options()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .expect("open")
    }

    #[test]
    fn a_fresh_dotlock_is_waited_for_then_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mbox = dir.path().join("box");
        let lock = dir.path().join("box.lock");
        fs::write(&lock, "12345\n").expect("w");
        let started = Instant::now();
        let refused = MboxLock::acquire(&mbox, open(&mbox), true, quick())
            .err()
            .expect("refused");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(refused.exit, Exit::TempFail);
        assert!(
            refused.message.contains("box.lock exists"),
            "{}",
            refused.message
        );
        assert!(lock.exists(), "someone else's lock is left alone");
    }

    #[test]
    fn a_stale_dotlock_is_removed_and_ours_goes_when_done() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mbox = dir.path().join("box");
        let lock = dir.path().join("box.lock");
        let old = File::create(&lock).expect("create");
        old.set_modified(SystemTime::now() - Duration::from_secs(600))
            .expect("mtime");
        drop(old);
        let held = MboxLock::acquire(&mbox, open(&mbox), true, quick()).expect("taken");
        assert_eq!(
            fs::read_to_string(&lock).expect("ours"),
            format!("{}:{}\n", std::process::id(), host_name())
        );
        drop(held);
        assert!(!lock.exists());
    }

    /// A fresh lock whose holder on this host is gone (a fetch killed
    /// while appending) is removed at once; one of a live process, or of
    /// another host, is waited for.
    #[test]
    fn a_dead_holders_dotlock_is_removed_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mbox = dir.path().join("box");
        let lock = dir.path().join("box.lock");
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let dead = child.id();
        child.wait().expect("wait");
        fs::write(&lock, format!("{dead}:{}\n", host_name())).expect("w");
        let started = Instant::now();
        drop(MboxLock::acquire(&mbox, open(&mbox), true, quick()).expect("taken"));
        assert!(started.elapsed() < Duration::from_millis(300));
        let mut alive = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        for holder in [
            format!("{}:{}\n", alive.id(), host_name()),
            format!("{dead}:another-host.example\n"),
            format!("{dead}\n"),
        ] {
            fs::write(&lock, &holder).expect("w");
            assert!(
                MboxLock::acquire(&mbox, open(&mbox), true, quick()).is_err(),
                "{holder}"
            );
        }
        let _ = alive.kill();
        let _ = alive.wait();
    }

    /// A lock judged stale but replaced before it is removed (another
    /// process removed it and took a fresh one) is left in place: removing
    /// by name used to let two processes hold the lock.
    #[test]
    fn a_lock_replaced_after_it_was_judged_stale_is_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = dir.path().join("box.lock");
        let old = File::create(&lock).expect("create");
        old.set_modified(SystemTime::now() - Duration::from_secs(600))
            .expect("mtime");
        drop(old);
        let (judged, _) = judge_stale(&lock, Duration::from_secs(60)).expect("stale");
        // Meanwhile another process removes it and takes a fresh one.
        fs::remove_file(&lock).expect("rm");
        fs::write(&lock, "fresh\n").expect("fresh");
        assert!(!remove_judged(&lock, judged));
        assert_eq!(fs::read_to_string(&lock).expect("kept"), "fresh\n");
        // The same file touched since it was judged is left too.
        let (judged, _) = judge_stale(&lock, Duration::ZERO).expect("stale");
        File::options()
            .write(true)
            .open(&lock)
            .expect("open")
            .set_modified(SystemTime::now() + Duration::from_secs(5))
            .expect("touch");
        assert!(!remove_judged(&lock, judged));
        assert!(lock.exists());
        // Untouched, it goes; nothing is left aside either way.
        let (judged, _) = judge_stale(&lock, Duration::ZERO).expect("stale");
        assert!(remove_judged(&lock, judged));
        assert!(!lock.exists());
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 0);
    }

    /// On a local Linux file system flock is taken along with fcntl: a
    /// second exclusive flock on the mbox is refused while it is held.
    #[cfg(target_os = "linux")]
    #[test]
    fn flock_is_taken_where_it_is_a_lock_of_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mbox = dir.path().join("box");
        let held = MboxLock::acquire(&mbox, open(&mbox), true, quick()).expect("taken");
        assert!(flock_is_its_own_lock(held.file()));
        assert!(matches!(
            open(&mbox).try_lock(),
            Err(fs::TryLockError::WouldBlock)
        ));
    }

    #[cfg(unix)]
    #[test]
    fn an_unwritable_directory_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let mbox = dir.path().join("box");
        let file = open(&mbox);
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o500)).expect("chmod");
        let refused = MboxLock::acquire(&mbox, file, true, quick());
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
        // root may write anywhere: then the lock is simply taken.
        if let Err(refused) = refused {
            assert_eq!(refused.exit, Exit::IoErr);
            assert!(
                refused.message.contains("is not writable"),
                "{}",
                refused.message
            );
        }
    }
}
