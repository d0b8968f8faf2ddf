//! Ctrl-C and SIGTERM during `fetch`: stop at the next message boundary,
//! keep what is saved, and say what that is.
//!
//! A watcher thread records the signal; the fetch checks [`pending`] as
//! data arrives, stops, commits what it has completely received and prints
//! the summary. If the fetch is stuck waiting for a silent server, the
//! watcher prints the counts itself after a grace period and exits: that is
//! as safe as being killed, because nothing is recorded before it is durable
//! and nothing is deleted before `QUIT`.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::error::Exit;

/// The signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Messages saved so far by this run (for the watcher's last word).
static SAVED: AtomicU64 = AtomicU64::new(0);

/// How long the fetch gets to stop by itself after a signal.
const GRACE: Duration = Duration::from_secs(3);

/// Starts watching for SIGINT and SIGTERM. Without it (it failed) the
/// signals keep their default effect, which is safe too.
pub(crate) fn install() {
    // Once per process, however many accounts are fetched.
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(watch);
}

fn watch() {
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    let _ = thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                SIGNAL.store(signal, Ordering::SeqCst);
                // A second signal, or the grace period, ends it here.
                let (tx, rx) = std::sync::mpsc::channel::<()>();
                let _ = thread::Builder::new().spawn(move || {
                    if signals.forever().next().is_some() {
                        let _ = tx.send(());
                    }
                });
                let _ = rx.recv_timeout(GRACE);
                eprintln!(
                    "pop3: {}: {} message(s) saved this run; the rest will be \
                     fetched next time; nothing was deleted",
                    describe(signal),
                    SAVED.load(Ordering::SeqCst)
                );
                std::process::exit(i32::from(exit_for(signal).code()));
            }
        });
}

/// The exit status for a signal.
fn exit_for(signal: i32) -> Exit {
    if signal == SIGTERM {
        Exit::Terminated
    } else {
        Exit::Interrupted
    }
}

fn describe(signal: i32) -> &'static str {
    if signal == SIGTERM {
        "stopped by SIGTERM"
    } else {
        "interrupted"
    }
}

/// The signal received, if any: its exit status and its description.
pub(crate) fn pending() -> Option<(Exit, &'static str)> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some((exit_for(signal), describe(signal))),
    }
}

/// Counts one more message saved.
pub(crate) fn saved_one() {
    SAVED.fetch_add(1, Ordering::SeqCst);
}
