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

use crate::cli::FetchArgs;
use crate::deliver::{Deliver, Incoming, Maildir, Mbox, Mda, NotStored, Stored};
use crate::error::{Exit, Failure, NetError};
use crate::session::{MessageSink, Session, Stop};
use crate::state::{file_name_for, with_suffix, State};

/// Where the state of `account` is kept for these arguments.
fn state_path(args: &FetchArgs, account: &str) -> Result<PathBuf, Failure> {
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
struct Summary {
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
        let incoming = Incoming {
            msg: msg.get(),
            uid: self.uids.get(&msg).cloned(),
        };
        self.current = Some(msg);
        self.deliver
            .begin(incoming)
            .map_err(|e| self.stop(Failure::io("storing a message", &e)))
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
        match how {
            Stored::New => self.summary.fetched += 1,
            Stored::AlreadyThere => self.summary.recovered += 1,
        }
        if let Some(bar) = &self.progress {
            bar.set_message(format!(
                "{}/{} messages",
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
        self.start(msg)?;
        self.summary.bytes += data.len() as u64;
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

/// Runs `fetch` on a logged-in session. Whether to pipeline is the
/// library's decision (its core asks `CAPA` before a burst when needed).
pub(crate) fn fetch(
    mut session: Box<dyn Session>,
    args: &FetchArgs,
    account: &str,
    verbose: bool,
    json: bool,
) -> Result<(), Failure> {
    let path = state_path(args, account)?;
    let mut state = State::open(&path)?;
    let mut deliver: Box<dyn Deliver> = match (&args.maildir, &args.mbox, &args.mda) {
        (Some(dir), _, _) => Box::new(Maildir::open(dir, account)?),
        (_, Some(mbox), _) => Box::new(Mbox::new(mbox)),
        (_, _, Some(command)) => Box::new(Mda::new(command, account)),
        _ => return Err(Failure::usage("fetch needs --maildir, --mbox or --mda")),
    };

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
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>16} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("0/{} messages", to_fetch.len()));
        bar
    });

    let mut engine = Engine {
        deliver: deliver.as_mut(),
        state: listing.is_some().then_some(&mut state),
        uids: &uids,
        current: None,
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
        return Err(failure);
    }
    retrieved.map_err(|e| Failure::from(e).context("RETR"))?;

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
        // Pipelined by the library when the server allows it.
        let results = session.dele_many(&deletable).map_err(|e| {
            Failure::from(e).context("DELE (nothing was deleted; the messages are saved)")
        })?;
        for (msg, result) in deletable.into_iter().zip(results) {
            match result {
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
    } else if verbose || io::stderr().is_terminal() {
        eprintln!(
            "pop3: {} fetched ({} bytes), {} recovered, {} failed, {} deleted, {} on the server",
            summary.fetched,
            summary.bytes,
            summary.recovered,
            summary.failed,
            summary.deleted,
            summary.on_server
        );
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
