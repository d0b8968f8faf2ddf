//! `pop3 fetch`: download what was not downloaded before, never lose a
//! message, never store one twice.
//!
//! The order of events for each message is what makes that true:
//!
//! 1. `RETR` streams the message into the sink (a Maildir `tmp/` file, or
//!    memory for mbox and MDA).
//! 2. The sink makes it durable: fsync, link into `new/`, fsync `new/`
//!    (or append + fsync the mbox, or the MDA exits 0).
//! 3. Only then is the UID appended to the state file and fsynced.
//! 4. Only after every retrieval, and only for messages whose UID is
//!    recorded, `DELE`; then `QUIT` commits the deletions.
//!
//! Killed between 1 and 2: the `tmp/` file is removed by the next fetch,
//! and the message is fetched again. Killed between 2 and 3: the Maildir
//! file's name is a hash of the account and the UID, so the next fetch finds
//! it in `new/` or `cur/`, records the UID and does not download it again
//! (for mbox and MDA this window remains: the message would be delivered a
//! second time). Killed before 4 completes: nothing is deleted, and the next
//! `fetch --delete` deletes what is recorded.

use std::collections::{HashMap, HashSet};
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use pop3_proto::MsgNum;
use serde::Serialize;

use crate::deliver::{
    prepare_maildir, prepare_mbox, Deliver, Incoming, Maildir, Mbox, Mda, NotStored, Stored,
};
use crate::error::{Exit, Failure, NetError};
use crate::interrupt;
use crate::session::{MessageSink, Session, Stop};
use crate::state::{file_name_for, with_suffix, State};

/// What `fetch` does for one account (the command line over the config
/// file).
#[derive(Debug, Clone, Default)]
pub(crate) struct FetchOptions {
    /// `--maildir`.
    pub(crate) maildir: Option<PathBuf>,
    /// `--mbox`.
    pub(crate) mbox: Option<PathBuf>,
    /// `--mda`.
    pub(crate) mda: Option<String>,
    /// `--delete` (otherwise keep).
    pub(crate) delete: bool,
    /// `--state`.
    pub(crate) state: Option<PathBuf>,
}

/// A fetch made ready before connecting: the destination checked (and a
/// missing Maildir created), the state locked and loaded.
pub(crate) struct Prepared {
    state: State,
    deliver: Box<dyn Deliver>,
}

/// Checks the destination and takes the account's state, before anything
/// connects: a mistyped path or a fetch already running stops here.
pub(crate) fn prepare(args: &FetchOptions, account: &str) -> Result<Prepared, Failure> {
    match (&args.maildir, &args.mbox, &args.mda) {
        (Some(dir), None, None) => prepare_maildir(dir)?,
        (None, Some(mbox), None) => prepare_mbox(mbox)?,
        (None, None, Some(_)) => {}
        (None, None, None) => {
            return Err(Failure::usage(
                "fetch needs a destination: --maildir DIR, --mbox FILE or --mda CMD",
            ))
        }
        _ => {
            return Err(Failure::usage(
                "give only one of --maildir, --mbox and --mda",
            ))
        }
    }
    let path = state_path(args, account)?;
    let state = State::open(&path)?;
    let deliver: Box<dyn Deliver> = match (&args.maildir, &args.mbox, &args.mda) {
        (Some(dir), _, _) => Box::new(Maildir::open(dir, account)?),
        (_, Some(mbox), _) => Box::new(Mbox::new(mbox)),
        (_, _, Some(command)) => Box::new(Mda::new(command, account)),
        _ => return Err(Failure::usage("fetch needs --maildir, --mbox or --mda")),
    };
    Ok(Prepared { state, deliver })
}

/// Where the state of `account` is kept for these arguments.
fn state_path(args: &FetchOptions, account: &str) -> Result<PathBuf, Failure> {
    let name = file_name_for(account);
    if let Some(path) = &args.state {
        return Ok(path.clone());
    }
    if let Some(dir) = &args.maildir {
        // Not a dot-directory: Maildir++ readers would list it as a folder.
        return Ok(dir.join("pop3-state").join(name));
    }
    if let Some(mbox) = &args.mbox {
        return Ok(with_suffix(mbox, ".pop3-state").join(name));
    }
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".local").join("state"),
            None => {
                return Err(Failure::usage(
                    "no place for the state: set XDG_STATE_HOME or HOME, or use --state FILE",
                ))
            }
        },
    };
    Ok(base.join("pop3").join(name))
}

/// What a fetch did (the `--json` output).
#[derive(Debug, Default, Serialize)]
pub(crate) struct Summary {
    /// The account, when several are fetched from the config file.
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    /// Messages on the server.
    on_server: usize,
    /// Messages downloaded and stored by this fetch.
    fetched: usize,
    /// Bytes of those.
    bytes: u64,
    /// Messages found already stored (saved by an interrupted fetch).
    recovered: usize,
    /// Messages that could not be stored; fetched again next time.
    failed: usize,
    /// Messages deleted from the server.
    deleted: usize,
    /// Messages left on the server after this fetch.
    left_on_server: usize,
    /// Whether the server has UIDL (without it every fetch gets everything).
    uidl: bool,
}

/// Receives the messages from the session and stores them.
struct Engine<'a> {
    deliver: &'a mut dyn Deliver,
    /// `None` without UIDL.
    state: Option<&'a mut State>,
    uids: &'a HashMap<MsgNum, String>,
    current: Option<MsgNum>,
    /// Bytes of the current message so far.
    current_bytes: u64,
    /// Stored by this fetch (new or already there).
    stored: Vec<MsgNum>,
    failures: Vec<(MsgNum, String)>,
    fatal: Option<Failure>,
    summary: &'a mut Summary,
    progress: Option<ProgressBar>,
    to_fetch: usize,
}

impl Engine<'_> {
    fn start(&mut self, msg: MsgNum) -> Result<(), Stop> {
        if self.current == Some(msg) {
            return Ok(());
        }
        self.deliver.abort();
        self.current_bytes = 0;
        let incoming = Incoming {
            msg: msg.get(),
            uid: self.uids.get(&msg).cloned(),
        };
        self.current = Some(msg);
        self.deliver
            .begin(incoming)
            .map_err(|e| self.stop(Failure::io("storing a message", &e)))
    }

    /// A signal asks to stop: end here, keeping what is stored.
    fn interrupted(&mut self) -> Result<(), Stop> {
        match interrupt::pending() {
            Some((exit, what)) => Err(self.stop(Failure::new(exit, what))),
            None => Ok(()),
        }
    }

    fn stop(&mut self, failure: Failure) -> Stop {
        self.deliver.abort();
        self.current = None;
        self.fatal.get_or_insert(failure);
        Stop
    }

    fn stored(&mut self, msg: MsgNum, how: Stored) -> Result<(), Stop> {
        if let (Some(state), Some(uid)) = (self.state.as_deref_mut(), self.uids.get(&msg)) {
            if let Err(e) = state.record(uid) {
                let path = state.path().display().to_string();
                return Err(self.stop(Failure::io(format_args!("state file {path}"), &e)));
            }
        }
        self.stored.push(msg);
        self.summary.bytes += std::mem::take(&mut self.current_bytes);
        interrupt::saved_one();
        match how {
            Stored::New => self.summary.fetched += 1,
            Stored::AlreadyThere => self.summary.recovered += 1,
        }
        if let Some(bar) = &self.progress {
            bar.set_message(format!(
                "{}/{}",
                self.stored.len() + self.failures.len(),
                self.to_fetch
            ));
        }
        Ok(())
    }

    /// Throws away a message that did not arrive completely.
    fn abandon(&mut self) {
        if self.current.take().is_some() {
            self.deliver.abort();
        }
    }
}

impl MessageSink for Engine<'_> {
    fn on_chunk(&mut self, msg: MsgNum, data: &[u8]) -> Result<(), Stop> {
        if self.fatal.is_some() {
            return Err(Stop);
        }
        self.interrupted()?;
        self.start(msg)?;
        self.current_bytes += data.len() as u64;
        if let Some(bar) = &self.progress {
            bar.inc(data.len() as u64);
        }
        self.deliver
            .write(data)
            .map_err(|e| self.stop(Failure::io("storing a message", &e)))
    }

    fn on_end(&mut self, msg: MsgNum, result: Result<(), NetError>) -> Result<(), Stop> {
        if self.fatal.is_some() {
            return Err(Stop);
        }
        match result {
            Ok(()) => {
                self.start(msg)?;
                self.current = None;
                match self.deliver.commit() {
                    Ok(how) => self.stored(msg, how),
                    Err(NotStored::Refused(why)) => {
                        self.failures.push((msg, why));
                        Ok(())
                    }
                    Err(NotStored::Fatal(failure)) => Err(self.stop(failure)),
                }
            }
            Err(error) => {
                if self.current == Some(msg) {
                    self.abandon();
                }
                self.failures.push((msg, error.to_string()));
                Ok(())
            }
        }
    }
}

/// Binary units, one decimal: `512 B`, `1.5 KiB`, `3.2 MiB`.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `what` cut to `max` characters (with `…`), so that lines fit.
fn clip(what: &str, max: usize) -> String {
    if what.chars().count() <= max {
        what.to_owned()
    } else {
        let mut out: String = what.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

impl Summary {
    /// One line of at most 80 columns: what is new, what is left.
    fn line(&self, label: Option<&str>) -> String {
        let mut parts = vec![format!("{} new ({})", self.fetched, human(self.bytes))];
        if self.recovered > 0 {
            parts.push(format!("{} recovered", self.recovered));
        }
        if self.failed > 0 {
            parts.push(format!("{} failed", self.failed));
        }
        let mut body = parts.join(", ");
        body.push_str("; server: ");
        if self.deleted > 0 {
            body.push_str(&format!("{} deleted, ", self.deleted));
        }
        body.push_str(&format!("{} left", self.left_on_server));
        match label {
            // "pop3: " + label + ": " + body within 80 columns.
            Some(label) => {
                let room = 80usize.saturating_sub(8 + body.chars().count()).max(8);
                format!("{}: {body}", clip(label, room))
            }
            None => body,
        }
    }

    /// What was kept, for the message of an interrupted fetch.
    fn saved_note(&self, to_fetch: usize) -> String {
        let left = to_fetch.saturating_sub(self.fetched + self.recovered);
        format!(
            "{} message(s) saved ({}), {left} left for the next fetch, nothing deleted",
            self.fetched + self.recovered,
            human(self.bytes)
        )
    }
}

/// Runs `fetch` on a logged-in session. `capa_asked`: whether login asked
/// for the capabilities already (so pipelining is known). `label` names
/// the account in the summary when several are fetched.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fetch(
    mut session: Box<dyn Session>,
    capa_asked: bool,
    prepared: Prepared,
    args: &FetchOptions,
    verbose: bool,
    json: bool,
    label: Option<&str>,
) -> Result<(), Failure> {
    let Prepared {
        mut state,
        mut deliver,
    } = prepared;
    let path = state.path().to_owned();

    // Pipelining needs the capabilities of the logged-in session.
    if !capa_asked && session.capabilities().is_none() {
        match session.capa() {
            Ok(_) => {}
            Err(e) if !e.is_fatal() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let listing = match session.uidl() {
        Ok(entries) => Some(entries),
        Err(NetError::Server(_)) => None,
        Err(e) => return Err(Failure::from(e).context("UIDL")),
    };
    let sizes: HashMap<MsgNum, u64> = match session.list() {
        Ok(entries) => entries.into_iter().map(|e| (e.msg, e.size)).collect(),
        Err(e) if !e.is_fatal() => HashMap::new(),
        Err(e) => return Err(Failure::from(e).context("LIST")),
    };
    let mut summary = Summary {
        account: label.map(str::to_owned),
        uidl: listing.is_some(),
        ..Summary::default()
    };
    let mut uids = HashMap::new();
    let mut to_fetch = Vec::new();
    match &listing {
        Some(entries) => {
            summary.on_server = entries.len();
            let mut seen = HashSet::new();
            for entry in entries {
                if !seen.insert(entry.uid.as_str()) {
                    // A server listing one UID twice: take the first only.
                    continue;
                }
                uids.insert(entry.msg, entry.uid.clone());
                if state.contains(&entry.uid) {
                    continue;
                }
                if deliver.has_uid(&entry.uid) {
                    // Stored by a fetch that died before recording it.
                    state.record(&entry.uid).map_err(|e| {
                        Failure::io(format_args!("state file {}", path.display()), &e)
                    })?;
                    summary.recovered += 1;
                    continue;
                }
                to_fetch.push(entry.msg);
            }
        }
        None => {
            if verbose || io::stderr().is_terminal() {
                eprintln!(
                    "pop3: the server has no UIDL: fetching every message{}",
                    if args.delete {
                        ""
                    } else {
                        " (use --delete to avoid fetching them again)"
                    }
                );
            }
            let mut all: Vec<MsgNum> = sizes.keys().copied().collect();
            if all.is_empty() {
                let stat = session
                    .stat()
                    .map_err(|e| Failure::from(e).context("STAT"))?;
                all = (1..=stat.count).filter_map(MsgNum::new).collect();
            }
            all.sort_unstable();
            summary.on_server = all.len();
            to_fetch = all;
        }
    }

    let progress = (io::stderr().is_terminal() && !verbose && !to_fetch.is_empty()).then(|| {
        let total: u64 = to_fetch.iter().filter_map(|m| sizes.get(m)).sum();
        let bar = ProgressBar::new(total);
        // At most about 75 columns, whatever the numbers.
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:20}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("0/{}", to_fetch.len()));
        bar
    });

    let mut engine = Engine {
        deliver: deliver.as_mut(),
        state: listing.is_some().then_some(&mut state),
        uids: &uids,
        current: None,
        current_bytes: 0,
        stored: Vec::new(),
        failures: Vec::new(),
        fatal: None,
        summary: &mut summary,
        progress,
        to_fetch: to_fetch.len(),
    };
    let retrieved = if to_fetch.is_empty() {
        Ok(())
    } else {
        session.retr_many(&to_fetch, &mut engine)
    };
    engine.abandon();
    if let Some(bar) = engine.progress.take() {
        bar.finish_and_clear();
    }
    let stored_now: Vec<MsgNum> = std::mem::take(&mut engine.stored);
    let failures = std::mem::take(&mut engine.failures);
    let fatal = engine.fatal.take();
    drop(engine);
    summary.failed = failures.len();
    if let Some(failure) = fatal {
        return Err(failure.note(summary.saved_note(to_fetch.len())));
    }
    retrieved.map_err(|e| {
        Failure::from(e)
            .context("RETR")
            .note(summary.saved_note(to_fetch.len()))
    })?;

    // Deletion: only what is durably stored, only now.
    let mut deleted = Vec::new();
    if args.delete {
        let deletable: Vec<MsgNum> = match &listing {
            Some(entries) => {
                let mut seen = HashSet::new();
                entries
                    .iter()
                    .filter(|e| state.contains(&e.uid) && seen.insert(e.uid.as_str()))
                    .map(|e| e.msg)
                    .collect()
            }
            None => stored_now.clone(),
        };
        for msg in deletable {
            match session.dele(msg) {
                Ok(()) => deleted.push(msg),
                Err(e) if !e.is_fatal() => {
                    eprintln!("pop3: DELE {msg}: {e}");
                }
                Err(e) => {
                    return Err(Failure::from(e).context(format_args!(
                        "DELE {msg} (nothing was deleted; the messages are saved)"
                    )))
                }
            }
        }
    }
    session.quit().map_err(|e| {
        let failure = Failure::from(e);
        if deleted.is_empty() {
            failure.context("QUIT")
        } else {
            failure.context("QUIT (deletions may not have been committed)")
        }
    })?;
    summary.deleted = deleted.len();
    summary.left_on_server = summary.on_server.saturating_sub(summary.deleted);

    // The server has committed: forget UIDs it no longer has.
    if let Some(entries) = &listing {
        let deleted: HashSet<MsgNum> = deleted.into_iter().collect();
        let remaining: HashSet<&str> = entries
            .iter()
            .filter(|e| !deleted.contains(&e.msg))
            .map(|e| e.uid.as_str())
            .collect();
        state
            .retain(|uid| remaining.contains(uid))
            .map_err(|e| Failure::io(format_args!("state file {}", path.display()), &e))?;
    }

    if json {
        let mut out = io::stdout().lock();
        serde_json::to_writer(&mut out, &summary)
            .map_err(|e| Failure::io("stdout", &io::Error::other(e)))?;
        writeln!(out).map_err(|e| Failure::io("stdout", &e))?;
    } else if verbose || label.is_some() || io::stderr().is_terminal() {
        eprintln!("pop3: {}", summary.line(label));
    }
    if let Some((msg, why)) = failures.first() {
        return Err(Failure::new(
            Exit::TempFail,
            format!(
                "{} message(s) not stored, will be fetched again next time (message {msg}: {why})",
                failures.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_fits_80_columns() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(5 * 1024 * 1024 * 1024), "5.0 GiB");
        let mut summary = Summary {
            on_server: 10_000,
            fetched: 10_000,
            bytes: 12 << 30,
            recovered: 1,
            failed: 1,
            deleted: 10_000,
            left_on_server: 0,
            ..Summary::default()
        };
        assert_eq!(
            summary.line(None),
            "10000 new (12.0 GiB), 1 recovered, 1 failed; server: 10000 deleted, 0 left"
        );
        assert!(summary.line(None).chars().count() + 6 <= 80);
        (summary.recovered, summary.failed) = (0, 0);
        let label = "a-very-long-account-name-that-goes-on-and-on@example.org";
        let line = summary.line(Some(label));
        assert!(line.chars().count() + 6 <= 80, "{line}");
        assert!(line.starts_with("a-very-long-acc"), "{line}");
    }
}
