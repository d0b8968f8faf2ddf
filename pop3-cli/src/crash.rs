//! A crash on purpose, for the tests that prove a fetch killed between any
//! two steps of storing a batch loses nothing and stores nothing twice.
//!
//! `POP3_TEST_CRASH_AT=STEP:N` aborts the process the N-th time the fetch
//! reaches STEP. A Maildir batch passes `received` (per message), `synced`,
//! `linked`, `dir-synced`, `appended` and `recorded`; an mbox batch
//! `received` (per message), `intent`, `written`, `synced`, `appended` and
//! `recorded`. Only debug builds read it: a release build compiles [`at`]
//! to nothing.

/// Aborts here if `POP3_TEST_CRASH_AT` names this step and its count.
#[cfg(debug_assertions)]
pub(crate) fn at(step: &str) {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    static SPEC: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static SEEN: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);
    let spec = SPEC.get_or_init(|| {
        let value = std::env::var("POP3_TEST_CRASH_AT").ok()?;
        let (name, n) = value.split_once(':')?;
        Some((name.to_owned(), n.parse().ok()?))
    });
    let Some((name, n)) = spec else { return };
    if name != step {
        return;
    }
    let Ok(mut seen) = SEEN.lock() else { return };
    let count = seen
        .get_or_insert_with(HashMap::new)
        .entry(step.to_owned())
        .or_insert(0);
    *count += 1;
    if *count == *n {
        // Like SIGKILL: no destructor, no flush.
        std::process::abort();
    }
}

/// `POP3_TEST_FAIL_AT=STEP:N` (debug builds only): the N-th time the fetch
/// reaches STEP, an I/O error is returned as the disk would: for the tests
/// that prove a failing sync records nothing and deletes nothing, and that
/// what a fetch counts saved is what is there. Steps: `fsync-message` (a
/// Maildir message's file) and `mbox-sync` fail with EIO; `link-message`
/// (a Maildir message moved into `new/`) and `record` (UIDs appended to
/// the state) with ENOSPC. `disk-full:N`: the disk fills up while the N-th
/// message is stored: from then on every write fails with ENOSPC (a
/// message's bytes, `write-message`; a Maildir intent, `write-intent`;
/// `link-message`; `record`), syncs and reads still work.
#[cfg(debug_assertions)]
pub(crate) fn fail(step: &str) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::OnceLock;

    const EIO: i32 = 5;
    const ENOSPC: i32 = 28;
    static SPEC: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    static FULL: AtomicBool = AtomicBool::new(false);
    let spec = SPEC.get_or_init(|| {
        let value = std::env::var("POP3_TEST_FAIL_AT").ok()?;
        let (name, n) = value.split_once(':')?;
        Some((name.to_owned(), n.parse().ok()?))
    });
    let Some((name, n)) = spec else {
        return Ok(());
    };
    let nth = |counted: &str| step == counted && SEEN.fetch_add(1, Ordering::SeqCst) + 1 == *n;
    if name == "disk-full" {
        if nth("message") {
            FULL.store(true, Ordering::SeqCst);
        }
        let writes = ["write-message", "write-intent", "link-message", "record"];
        return if FULL.load(Ordering::SeqCst) && writes.contains(&step) {
            Err(std::io::Error::from_raw_os_error(ENOSPC))
        } else {
            Ok(())
        };
    }
    if !nth(name) {
        return Ok(());
    }
    let errno = match step {
        "fsync-message" | "mbox-sync" => EIO,
        _ => ENOSPC,
    };
    Err(std::io::Error::from_raw_os_error(errno))
}

/// Release builds: never fails.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub(crate) fn fail(_step: &str) -> std::io::Result<()> {
    Ok(())
}

/// `POP3_TEST_BATCH=N` (debug builds only): batches of exactly N messages
/// (both the size that starts a batch and the most one takes), so that a
/// test with few messages has several batches.
#[cfg(debug_assertions)]
pub(crate) fn batch_messages(default: usize) -> usize {
    std::env::var("POP3_TEST_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// Release builds: the default.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub(crate) fn batch_messages(default: usize) -> usize {
    default
}

/// Release builds: nothing.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub(crate) fn at(_step: &str) {}
