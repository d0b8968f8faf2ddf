//! What `fetch` takes and what it leaves: sizes, `--filter`, and the
//! server's `LOGIN-DELAY`.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::error::{Exit, Failure};
use crate::state::{file_name_for, now, state_dir};

/// A size in bytes: `500000`, `512k`, `10M`, `1G` (k, M, G are powers of
/// 1024; `KiB`, `MiB`, `GiB`, `kB`, `MB`, `GB` are read the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size(pub(crate) u64);

impl FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Size, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let number: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?} is not a size (like 500000, 512k, 10M, 1G)"))?;
        let shift = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kb" | "kib" => 10,
            "m" | "mb" | "mib" => 20,
            "g" | "gb" | "gib" => 30,
            _ => return Err(format!("{text:?}: unknown unit (use k, M or G)")),
        };
        number
            .checked_mul(1 << shift)
            .map(Size)
            .ok_or_else(|| format!("{text:?} is too big"))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Size, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes, or a string like \"512k\", \"10M\", \"1G\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

/// What `--filter` decided for a message.
///
/// The verdict is a word the filter prints on stdout and confirms by
/// exiting 0: `fetch` (or nothing at all), `skip` or `delete`. An exit
/// status is not enough for a verdict that loses mail: 1 is what `false`,
/// `grep -q` without a match, a tripped `set -e` and an uncaught Python
/// exception all return, so a filter that breaks would delete every new
/// message unread. Printing `delete` and exiting 0 takes a filter that ran
/// to its end and meant it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// `fetch`, or exit 0 with nothing printed: fetch it.
    Fetch,
    /// `delete`: delete it without fetching (only acted on with `--delete`).
    Delete,
    /// `skip`: leave it on the server, unfetched.
    Skip,
}

/// The most a filter may print: one word, with room for a line ending and
/// blanks. More is not a verdict (a filter that echoes its input by
/// mistake, say), and is not kept in memory.
const MAX_FILTER_OUTPUT: usize = 256;

/// What a filter printed, read as a verdict; `None` when it is not one.
fn verdict_of(printed: &[u8]) -> Option<Verdict> {
    match std::str::from_utf8(printed).ok()?.trim() {
        "" | "fetch" => Some(Verdict::Fetch),
        "skip" => Some(Verdict::Skip),
        "delete" => Some(Verdict::Delete),
        _ => None,
    }
}

/// Reads `from` to its end if it holds at most `limit` bytes; `Err(())`
/// as soon as it has more (a filter printing without end, `yes` say, is not
/// waited for).
fn read_bounded(from: impl Read, limit: usize) -> io::Result<Result<Vec<u8>, ()>> {
    let mut kept = Vec::new();
    let allowed = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    from.take(allowed).read_to_end(&mut kept)?;
    Ok(if kept.len() > limit {
        Err(())
    } else {
        Ok(kept)
    })
}

/// Runs `sh -c command` with `headers` on stdin and the message's
/// account, number, UID and size in its environment, and reads its
/// verdict from its stdout. Anything but exit 0 with a known word (a
/// crash, a signal, another status, another word) is an error that stops
/// the fetch before anything is deleted.
pub(crate) fn run_filter(
    command: &str,
    headers: &[u8],
    account: &str,
    msg: u32,
    uid: Option<&str>,
    size: Option<u64>,
) -> Result<Verdict, Failure> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .env("POP3_ACCOUNT", account)
        .env("POP3_MSG", msg.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    match uid {
        Some(uid) => cmd.env("POP3_UID", uid),
        None => cmd.env_remove("POP3_UID"),
    };
    match size {
        Some(size) => cmd.env("POP3_SIZE", size.to_string()),
        None => cmd.env_remove("POP3_SIZE"),
    };
    crate::secrets::scrub(&mut cmd);
    #[cfg(unix)]
    {
        // Its own process group, so that a time-out kills what it started
        // too: a background child that inherited stdout would otherwise
        // keep the verdict's pipe open.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::io("--filter: cannot run sh", &e))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    // The headers are written while the verdict is read: a filter that
    // prints before it reads must not wait on a full pipe. Neither thread
    // is joined: one blocked on a pipe that something outside the killed
    // group still holds must not hold the fetch (and its lock) with it.
    if let Some(mut stdin) = stdin {
        let headers = headers.to_vec();
        // A filter may decide without reading everything.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&headers);
        });
    }
    let (sender, verdict_read) = std::sync::mpsc::channel();
    match stdout {
        Some(stdout) => {
            std::thread::spawn(move || {
                let _ = sender.send(read_bounded(stdout, MAX_FILTER_OUTPUT));
            });
        }
        None => {
            let _ = sender.send(Ok(Ok(Vec::new())));
        }
    }
    let limit = filter_time_limit();
    let deadline = Instant::now() + limit;
    let timed_out = |child: &mut std::process::Child| {
        kill_filter(child);
        let _ = child.wait();
        filter_stopped(
            msg,
            format!("did not finish within {} s", limit.as_secs_f64()),
        )
    };
    let printed =
        match verdict_read.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(read) => read,
            Err(RecvTimeoutError::Timeout) => return Err(timed_out(&mut child)),
            Err(RecvTimeoutError::Disconnected) => Err(io::Error::other("the reader stopped")),
        };
    if !matches!(printed, Ok(Ok(_))) {
        // It is not going to give a verdict: it need not finish, nor read
        // the rest of the headers.
        kill_filter(&mut child);
    }
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| Failure::io("--filter", &e))? {
            break status;
        }
        if Instant::now() >= deadline {
            return Err(timed_out(&mut child));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let printed = printed.map_err(|e| Failure::io("--filter: reading its verdict", &e))?;
    let stop = |why: String| filter_stopped(msg, why);
    let Ok(printed) = printed else {
        return Err(stop(format!("printed more than {MAX_FILTER_OUTPUT} bytes")));
    };
    if !status.success() {
        return Err(stop(format!("failed ({status})")));
    }
    verdict_of(&printed).ok_or_else(|| {
        let shown: String = String::from_utf8_lossy(&printed)
            .trim()
            .chars()
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .take(40)
            .collect();
        stop(format!("printed {shown:?}, which is not a verdict"))
    })
}

/// How long a filter may take to give its verdict. A filter stuck (on a
/// network lookup, say) would otherwise hold the fetch, and the account's
/// lock, for ever; past it the filter and what it started are killed and
/// the fetch stops as for a failed filter.
const FILTER_TIME_LIMIT: Duration = Duration::from_secs(60);

/// [`FILTER_TIME_LIMIT`], or in debug builds the seconds in
/// `POP3_TEST_FILTER_LIMIT`, so that a test of the time-out takes seconds.
fn filter_time_limit() -> Duration {
    #[cfg(debug_assertions)]
    if let Some(secs) = std::env::var("POP3_TEST_FILTER_LIMIT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        return Duration::from_secs(secs);
    }
    FILTER_TIME_LIMIT
}

/// Kills the filter and whatever it started (its process group).
fn kill_filter(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        use rustix::process::{kill_process_group, Pid, Signal};
        if kill_process_group(Pid::from_child(child), Signal::KILL).is_ok() {
            return;
        }
    }
    let _ = child.kill();
}

/// The error that stops the fetch when the filter gave no verdict for `msg`.
fn filter_stopped(msg: u32, why: String) -> Failure {
    Failure::new(
        Exit::TempFail,
        format!(
            "--filter {why} for message {msg}; nothing was fetched or deleted \
             (a filter prints fetch, skip or delete and exits 0)"
        ),
    )
}

/// The longest `LOGIN-DELAY` remembered or waited for: servers advertise
/// seconds to minutes (Courier 10, Gmail 300); a larger value (a hostile
/// `LOGIN-DELAY 18446744073709551615`) must not lock an account for ever.
const MAX_LOGIN_DELAY: u64 = 3600;

/// Where the time of the last login to `account` (`user@host:port`) is
/// kept, with the server's `LOGIN-DELAY`: `login/<account>` in the state
/// directory ([`state_dir`]).
fn login_file(account: &str) -> Option<PathBuf> {
    Some(state_dir()?.join("login").join(file_name_for(account)))
}

/// Refuses (exit 75) to log in to `account` before the `LOGIN-DELAY` the
/// server announced at the last login has passed. Only when the user asked
/// for it (`--respect-login-delay`): most servers that advertise a delay do
/// not enforce it, and one that does says so with `[LOGIN-DELAY]`.
pub(crate) fn check_login_delay(account: &str) -> Result<(), Failure> {
    let Some(path) = login_file(account) else {
        return Ok(());
    };
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(());
    };
    let mut words = text.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(last)), Some(Ok(delay))) = (words.next(), words.next()) else {
        return Ok(());
    };
    let delay = delay.min(MAX_LOGIN_DELAY);
    let elapsed = now().saturating_sub(last);
    if elapsed < delay {
        return Err(Failure::new(
            Exit::TempFail,
            format!(
                "the server allows one login every {delay} s (LOGIN-DELAY) and the last was \
                 {elapsed} s ago: try again in {} s",
                delay - elapsed
            ),
        ));
    }
    Ok(())
}

/// Remembers this login and the server's `LOGIN-DELAY` (or forgets an
/// older one when the server announces none). Failing to is not an error:
/// the server still enforces its limit.
pub(crate) fn remember_login(account: &str, delay: Option<u64>) {
    let Some(path) = login_file(account) else {
        return;
    };
    match delay {
        Some(delay) if delay > 0 => {
            if let Some(dir) = path.parent() {
                let _ = crate::private::create_dir_all(dir);
            }
            let delay = delay.min(MAX_LOGIN_DELAY);
            let _ = crate::private::file_options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .and_then(|mut file| file.write_all(format!("{} {delay}\n", now()).as_bytes()));
        }
        _ => {
            let _ = fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (text, bytes) in [
            ("0", 0),
            ("500000", 500_000),
            ("512k", 512 << 10),
            ("10M", 10 << 20),
            ("10 MiB", 10 << 20),
            ("1G", 1 << 30),
        ] {
            assert_eq!(text.parse::<Size>(), Ok(Size(bytes)), "{text}");
        }
        for bad in ["", "ten", "10X", "-1", "99999999999999999999G"] {
            assert!(bad.parse::<Size>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_known_word_is_a_verdict() {
        for (printed, verdict) in [
            (&b""[..], Some(Verdict::Fetch)),
            (b"\n", Some(Verdict::Fetch)),
            (b"fetch\n", Some(Verdict::Fetch)),
            (b" skip \r\n", Some(Verdict::Skip)),
            (b"delete\n", Some(Verdict::Delete)),
            (b"DELETE\n", None),
            (b"delete it\n", None),
            (b"1\n", None),
            (b"Traceback (most recent call last):\n", None),
            (b"\xffdelete", None),
        ] {
            assert_eq!(verdict_of(printed), verdict, "{printed:?}");
        }
        assert_eq!(
            read_bounded(&b"0123456789"[..], 10).expect("read"),
            Ok(b"0123456789".to_vec())
        );
        assert_eq!(read_bounded(&b"0123456789"[..], 9).expect("read"), Err(()));
    }
}
