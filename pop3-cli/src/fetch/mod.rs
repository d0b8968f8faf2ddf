//! `pop3 fetch`: download what was not downloaded before, never lose a
//! message, never store one twice.
//!
//! The order of events for each message is what makes that true:
//!
//! 1. `RETR` streams the message into the sink (a Maildir `tmp/` file, an
//!    mbox entry in memory or a spill file, or the MDA's stdin).
//! 2. The sink makes it durable. A Maildir and an mbox do it for a batch
//!    at a time on a committer thread (group commit, while the connection
//!    keeps receiving). A Maildir: an fsync of each file of the batch, each
//!    linked into `new/`, one fsync of `new/`. An mbox, under its lock: an
//!    intent file next to the state (offset, length, SHA-256 and UID of
//!    each entry) synced, the entries appended, the mbox synced once. An
//!    MDA must exit 0, one message at a time.
//! 3. Only then are the UIDs appended to the state file and synced (once
//!    per batch; for an mbox still under its lock, and then the intent is
//!    emptied).
//! 4. Only after every retrieval, and only for messages whose UID is
//!    recorded (or that a policy deletes unfetched), `DELE`, pipelined;
//!    then `QUIT` commits the deletions.
//!
//! Killed between 1 and 2: the `tmp/` files are removed by the next fetch
//! (an mbox batch was only in memory), and those messages are fetched
//! again. Killed between 2 and 3: a Maildir batch is named first in an
//! intent file (UID and file name of each message), so the next fetch finds
//! those files in `new/` or `cur/`, records the UIDs and does not download
//! them again; the file names hash the account, the UID and the content, so
//! a message downloaded again anyway is not stored twice, and a new message
//! reusing an old UID is stored beside the old one; for an mbox, the
//! next fetch reads the intent and records each UID whose exact bytes are
//! in the mbox at its offset (the others, never or only partly appended,
//! are fetched again; the mbox is never cut, since another program may
//! have appended since). For an MDA this window remains: a delivery agent's
//! run can be neither undone nor checked, so the message would be
//! delivered a second time. Killed before 4 completes: nothing is deleted,
//! and the next `fetch --delete` deletes what is recorded.
//!
//! What remains for an mbox is outside what a fetch controls: a program
//! that rewrites the mbox between the crash and the next fetch (a mail
//! reader expunging) moves the entries, and those messages are fetched
//! again; and after a power loss in the middle of an append, the torn
//! entry stays in front of its complete copy.
//!
//! [`fetch`] is the orchestration; what to fetch and what to delete is
//! decided in `plan.rs`, messages are received and staged by `engine.rs`,
//! and made durable in batches by `commit.rs`.

use std::collections::{HashMap, HashSet};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};
use std::thread;

use pop3_proto::{Capabilities, Capability, MsgNum};
use pop3_transport::runtime::{Runtime as LibraryRuntime, StartTls, WriteTo};
use pop3_transport::{Error, MaybeTls};
use serde::Serialize;

use crate::deliver::{
    check_maildir, intent_path, prepare_mbox, recover_mbox, Deliver, LineEndings, Maildir, Mbox,
    MboxAppender, Mda, ToUnix,
};
use crate::error::{Exit, Failure};
use crate::policy::{run_filter, Verdict};
use crate::state::{
    clear_maildir_intent, file_name_for, maildir_intent_path, now, read_maildir_intent, state_dir,
    with_suffix, State,
};
use crate::transport::{Exec, Session};

mod commit;
mod engine;
mod plan;

use commit::{committer, Group, Shared, Store, MAX_STAGED, MAX_STAGED_BYTES};
use engine::Engine;

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
    /// `--keep-days`.
    pub(crate) keep_days: Option<u32>,
    /// `--max-size`, in bytes.
    pub(crate) max_size: Option<u64>,
    /// `--delete-bigger-than`, in bytes.
    pub(crate) delete_bigger_than: Option<u64>,
    /// `--max-messages`, over all the sessions of the fetch.
    pub(crate) max_messages: Option<u32>,
    /// `--max-sessions` (else [`DEFAULT_MAX_SESSIONS`]).
    pub(crate) max_sessions: Option<u32>,
    /// `--filter`.
    pub(crate) filter: Option<String>,
    /// LF (the default) or, with `--exact-bytes`, the bytes as received.
    pub(crate) line_endings: LineEndings,
}

/// A fetch made ready before connecting: the destination checked, the
/// state locked and loaded (unless it is to be kept in a Maildir not made
/// yet).
pub(crate) struct Prepared {
    account: String,
    /// `None` while it waits for the new Maildir it is to be kept in.
    state: Option<State>,
    state_path: PathBuf,
    destination: Destination,
    /// UIDs of an mbox batch, interrupted before they were recorded, found
    /// stored in the mbox and recorded now.
    recovered: usize,
}

enum Destination {
    Ready(Ready),
    /// A Maildir that does not exist yet, made only once the server has
    /// accepted the login: a refused login leaves no empty Maildir behind.
    NewMaildir(PathBuf, LineEndings),
}

/// A destination ready to receive.
struct Ready {
    deliver: Box<dyn Deliver>,
    /// Where batches are made durable (`None`: one message at a time).
    store: Option<Store>,
    /// A Maildir's intent file: emptied once what it names is recorded.
    maildir_intent: Option<PathBuf>,
}

/// Checks the destination and takes the account's state, before anything
/// connects: a mistyped path, a destination that cannot be written or a
/// fetch already running stops here, before anything is downloaded.
pub(crate) fn prepare(args: &FetchOptions, account: &str) -> Result<Prepared, Failure> {
    let maildir_exists = match (&args.maildir, &args.mbox, &args.mda) {
        (Some(dir), None, None) => check_maildir(dir)?,
        (None, Some(mbox), None) => {
            if args.line_endings == LineEndings::AsReceived {
                return Err(Failure::usage(
                    "--exact-bytes: an mbox is always written with LF line endings \
                     (mboxrd); use --maildir or --mda for the bytes as received",
                ));
            }
            prepare_mbox(mbox)?;
            true
        }
        (None, None, Some(_)) => true,
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
    };
    let path = state_path(args, account)?;
    let mut recovered = 0;
    if let (Some(dir), false) = (&args.maildir, maildir_exists) {
        // Its state may be kept in it: opened with it, once logged in.
        let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let state = if absolute(&path).starts_with(absolute(dir)) {
            None
        } else {
            Some(State::open(&path)?)
        };
        return Ok(Prepared {
            account: account.to_owned(),
            state,
            state_path: path,
            destination: Destination::NewMaildir(dir.clone(), args.line_endings),
            recovered,
        });
    }
    let mut state = State::open(&path)?;
    let ready = match (&args.maildir, &args.mbox, &args.mda) {
        (Some(dir), _, _) => {
            let maildir = Maildir::open(dir, account, args.line_endings)?;
            maildir_ready(maildir, dir, &state)?
        }
        (_, Some(mbox), _) => {
            // The lock is held: no other fetch of the account is appending.
            let intent = intent_path(&path);
            recovered = recover_mbox(mbox, &intent, &mut state)?;
            Ready {
                deliver: Box::new(Mbox::new(mbox)),
                store: Some(Store::Mbox(MboxAppender::new(mbox, Some(intent)))),
                maildir_intent: None,
            }
        }
        (_, _, Some(command)) => Ready {
            deliver: Box::new(Mda::new(command, account, args.line_endings)),
            store: None,
            maildir_intent: None,
        },
        _ => return Err(Failure::usage("fetch needs --maildir, --mbox or --mda")),
    };
    Ok(Prepared {
        account: account.to_owned(),
        state: Some(state),
        state_path: path,
        destination: Destination::Ready(ready),
        recovered,
    })
}

/// The Maildir `maildir` at `dir`, told what an interrupted fetch left in
/// the intent beside `state`.
fn maildir_ready(mut maildir: Maildir, dir: &Path, state: &State) -> Result<Ready, Failure> {
    let intent = maildir_intent_path(state.path());
    let named = read_maildir_intent(&intent)
        .map_err(|e| Failure::io(format_args!("intent file {}", intent.display()), &e))?;
    maildir
        .recover(
            named.into_iter().filter(|(uid, _)| !state.contains(uid)),
            state.written_before(),
        )
        .map_err(|e| Failure::io("Maildir fsync", &e))?;
    Ok(Ready {
        deliver: Box::new(maildir),
        store: Some(Store::Maildir(dir.to_owned(), intent.clone())),
        maildir_intent: Some(intent),
    })
}

impl Prepared {
    /// Once logged in: makes a new Maildir (then opens the state kept in
    /// it).
    fn ready(self) -> Result<(String, State, Ready, usize), Failure> {
        let Prepared {
            account,
            state,
            state_path,
            destination,
            recovered,
        } = self;
        let (state, ready) = match destination {
            Destination::Ready(ready) => match state {
                Some(state) => (state, ready),
                None => (State::open(&state_path)?, ready),
            },
            Destination::NewMaildir(dir, line_endings) => {
                // The state (and the account's lock) before the Maildir:
                // opening it removes the account's files in tmp/, which
                // must not be those of another fetch under way.
                let state = match state {
                    Some(state) => state,
                    None => {
                        crate::private::create_dir_all(&dir).map_err(|e| {
                            Failure::io(format_args!("Maildir {}", dir.display()), &e)
                        })?;
                        State::open(&state_path)?
                    }
                };
                let maildir = Maildir::open(&dir, &account, line_endings)?;
                let ready = maildir_ready(maildir, &dir, &state)?;
                (state, ready)
            }
        };
        Ok((account, state, ready, recovered))
    }
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
    match state_dir() {
        Some(dir) => Ok(dir.join(name)),
        None => Err(Failure::usage(
            "no place for the state: set XDG_STATE_HOME or HOME, or use --state FILE",
        )),
    }
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
    /// Messages left on the server because of `--max-size`.
    too_big: usize,
    /// Messages `--filter` skipped, or left for a later run by
    /// `--max-messages`.
    skipped: usize,
    /// Messages deleted from the server.
    deleted: usize,
    /// Messages left on the server after this fetch.
    left_on_server: usize,
    /// Messages the next fetch will download: those this one was to fetch
    /// and did not store (it failed or stopped), and those
    /// `--max-messages` left for later.
    left_to_fetch: usize,
    /// Whether the server has UIDL (without it every fetch gets everything).
    uidl: bool,
    /// Sessions this fetch opened: more than one with a server that hands
    /// out its mail a batch per session ([`another_session`]).
    sessions: usize,
    /// Why no further session was opened although the last one brought a
    /// full batch of new mail: `max_sessions` or `login_delay`.
    #[serde(skip_serializing_if = "Option::is_none")]
    more_waiting: Option<&'static str>,
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
        if self.too_big > 0 {
            parts.push(format!("{} too big", self.too_big));
        }
        if self.skipped > 0 {
            parts.push(format!("{} skipped", self.skipped));
        }
        let mut body = parts.join(", ");
        body.push_str("; server: ");
        if self.deleted > 0 {
            body.push_str(&format!("{} deleted, ", self.deleted));
        }
        body.push_str(&format!("{} left", self.left_on_server));
        if self.sessions > 1 {
            body.push_str(&format!("; {} sessions", self.sessions));
        }
        match label {
            // "pop3: " + label + ": " + body within 80 columns.
            Some(label) => {
                let room = 80usize.saturating_sub(8 + body.chars().count()).max(8);
                format!("{}: {body}", clip(label, room))
            }
            None => body,
        }
    }

    /// What the limits left on the server, if anything: the one line a
    /// fetch prints when stderr is not a terminal and it succeeded.
    fn left_behind(&self, label: Option<&str>) -> Option<String> {
        let mut parts = Vec::new();
        if self.too_big > 0 {
            parts.push(format!("{} over --max-size", self.too_big));
        }
        if self.skipped > 0 {
            parts.push(format!(
                "{} skipped by --filter or kept for later by --max-messages",
                self.skipped
            ));
        }
        if parts.is_empty() {
            return None;
        }
        let prefix = label.map_or_else(String::new, |label| format!("{label}: "));
        Some(format!(
            "{prefix}{} message(s) left on the server, not fetched: {}",
            self.too_big + self.skipped,
            parts.join(", ")
        ))
    }

    /// What was kept, for the message of an interrupted fetch: what is in
    /// the destination, and what the next fetch will download.
    fn saved_note(&self) -> String {
        let mut note = format!("{} message(s) saved ({})", self.fetched, human(self.bytes));
        if self.recovered > 0 {
            note.push_str(&format!(
                ", {} found stored by an earlier fetch",
                self.recovered
            ));
        }
        note.push_str(&format!(
            ", {} left for the next fetch, ",
            self.left_to_fetch
        ));
        if self.deleted == 0 {
            note.push_str("nothing deleted");
        } else {
            // Committed by the QUIT of an earlier session.
            note.push_str(&format!(
                "{} deleted by the earlier sessions, none by the last",
                self.deleted
            ));
        }
        note
    }

    /// Why the fetch opened no further session although the server may
    /// offer more, if so.
    fn more_waiting_note(&self, label: Option<&str>) -> Option<String> {
        let why = match self.more_waiting? {
            "login_delay" => "the server's LOGIN-DELAY (--respect-login-delay)".to_owned(),
            _ => format!("--max-sessions {}", self.sessions),
        };
        let prefix = label.map_or_else(String::new, |label| format!("{label}: "));
        Some(format!(
            "{prefix}stopped after {} session(s) because of {why}: the server may offer \
             more new mail, which the next fetch gets",
            self.sessions
        ))
    }

    /// Prints the summary: the `--json` object on stdout, or the line on
    /// stderr when someone may read it.
    fn report(&self, json: bool, verbose: bool, label: Option<&str>) -> Result<(), Failure> {
        if json {
            let mut out = io::stdout().lock();
            serde_json::to_writer(&mut out, self)
                .map_err(|e| Failure::io("stdout", &io::Error::other(e)))?;
            writeln!(out).map_err(|e| Failure::io("stdout", &e))?;
        } else if verbose || io::stderr().is_terminal() {
            eprintln!("pop3: {}", self.line(label));
            if let Some(note) = self.more_waiting_note(label) {
                eprintln!("pop3: {note}");
            }
        } else {
            // Under cron the summary is not printed: mail left on the server
            // by a limit would otherwise go unnoticed.
            for note in [self.left_behind(label), self.more_waiting_note(label)]
                .into_iter()
                .flatten()
            {
                eprintln!("pop3: {note}");
            }
        }
        Ok(())
    }

    /// A fetch that stopped: its last session deleted nothing (what an
    /// earlier session deleted is counted). With `--json` the summary is
    /// printed all the same (before the error), so that what was saved is
    /// counted there too.
    fn stopped(&mut self, failure: Failure, json: bool) -> Failure {
        self.left_on_server = self.on_server.saturating_sub(self.deleted);
        if json {
            if let Err(e) = self.report(true, false, None) {
                return e;
            }
        }
        failure.note(self.saved_note())
    }
}

/// How many sessions one fetch opens at most, unless `--max-sessions`
/// says: enough for about 5,000 messages from a server that hands out 250
/// per session (Gmail), while a cron job still ends in minutes.
pub(crate) const DEFAULT_MAX_SESSIONS: u32 = 20;

/// A fetch from one account: one session, or several in a row from a
/// server that hands out its mail a batch per session ([`another_session`]).
/// The destination and the state (and its lock) are kept from one session
/// to the next; the summary counts them all.
pub(crate) struct Run {
    /// Taken by each session, given back when it ends well.
    prepared: Option<Prepared>,
    totals: Summary,
    /// Every UID a session listed, so that a message listed again by a
    /// later session counts once on the server.
    listed: HashSet<String>,
    /// The first message that could not be stored, for the exit status.
    first_failure: Option<(MsgNum, String)>,
    /// The UIDs the sessions deleted.
    gone: HashSet<String>,
    /// The summary was printed already, by a session that stopped.
    reported: bool,
    /// Sessions that ended well.
    completed: usize,
}

impl Run {
    /// A fetch about to open its first session; `label` names the account
    /// in the summary when several are fetched.
    pub(crate) fn new(prepared: Prepared, label: Option<&str>) -> Run {
        Run {
            prepared: Some(prepared),
            totals: Summary {
                account: label.map(str::to_owned),
                ..Summary::default()
            },
            listed: HashSet::new(),
            first_failure: None,
            gone: HashSet::new(),
            reported: false,
            completed: 0,
        }
    }

    /// The sessions opened so far.
    pub(crate) fn sessions(&self) -> usize {
        self.totals.sessions
    }

    /// A later session failed outside the retrieval (connecting, logging
    /// in, listing): what the earlier ones saved is said with the failure.
    /// The failure of a first session is returned as it is.
    pub(crate) fn failed(&mut self, failure: Failure, json: bool) -> Failure {
        if self.reported || self.completed == 0 {
            return failure;
        }
        self.reported = true;
        self.totals.stopped(failure, json)
    }

    /// The last session of a fetch that stopped: counted, and the summary
    /// printed with `--json`.
    fn stop(&mut self, session: &Summary, listed: usize, failure: Failure, json: bool) -> Failure {
        self.totals.absorb(session, listed);
        self.reported = true;
        self.totals.stopped(failure, json)
    }

    /// Every session has ended: prints the summary. `more_waiting` says why
    /// no further session was opened although the last one asked for it.
    pub(crate) fn finish(
        mut self,
        json: bool,
        verbose: bool,
        label: Option<&str>,
        more_waiting: Option<&'static str>,
    ) -> Result<(), Failure> {
        self.totals.more_waiting = more_waiting;
        self.totals.report(json, verbose, label)?;
        if let Some((msg, why)) = &self.first_failure {
            return Err(Failure::new(
                Exit::TempFail,
                format!(
                    "{} message(s) not stored, will be fetched again next time (message {msg}: {why})",
                    self.totals.failed
                ),
            ));
        }
        Ok(())
    }
}

impl Summary {
    /// Adds what one session did; `listed` is how many of its messages no
    /// earlier session listed.
    fn absorb(&mut self, session: &Summary, listed: usize) {
        self.on_server += listed;
        self.fetched += session.fetched;
        self.bytes += session.bytes;
        self.recovered += session.recovered;
        self.failed += session.failed;
        self.too_big += session.too_big;
        self.skipped += session.skipped;
        self.deleted += session.deleted;
        self.left_to_fetch += session.left_to_fetch;
        self.left_on_server = self.on_server.saturating_sub(self.deleted);
        self.uidl = session.uidl;
    }
}

/// Whether a server lets retrieved messages go from the sessions that
/// follow: `EXPIRE 0` (RFC 2449), which Gmail advertises. Such a server can
/// hand out mail in turns (Gmail: about 250 messages per session, then no
/// more until the next session); a server that keeps mail lists the same
/// mailbox again, and a second session would bring nothing.
fn hands_out_in_turns(capabilities: Option<&Capabilities>) -> bool {
    capabilities.is_some_and(|caps| {
        caps.list
            .iter()
            .any(|c| matches!(c, Capability::Expire { days: Some(0), .. }))
    })
}

/// Whether the session that just ended calls for another one, on its own
/// evidence (the command cannot know the server's window in advance): the
/// server hands out mail in turns ([`hands_out_in_turns`]); it listed
/// something, with UIDs; every message it listed was new; and every one was
/// stored (or deleted unfetched by a policy) — a full batch of new mail.
/// A session that listed a message already fetched, left one on the server
/// (a limit, a filter, a failure) or brought nothing new ends the fetch:
/// the server is showing its whole mailbox, or nothing more comes now.
/// `--max-messages` counts over all sessions. The caller bounds the number
/// of sessions.
fn another_session(
    turns: bool,
    new_listed: usize,
    session: &Summary,
    stored: usize,
    deleted_unfetched: usize,
    max_messages: Option<u32>,
    fetched_in_all: usize,
) -> bool {
    let listed = session.on_server;
    turns
        && listed > 0
        && new_listed == listed
        && session.uidl
        && session.failed == 0
        && session.too_big == 0
        && session.skipped == 0
        && session.left_to_fetch == 0
        && session.fetched > 0
        && stored + deleted_unfetched >= listed
        && max_messages.is_none_or(|most| fetched_in_all < most as usize)
}

/// Runs one session of `fetch` on a logged-in session: `Ok(true)` when the
/// server may offer more new mail to another session ([`another_session`]).
/// Whether to pipeline is the library's decision (its core asks `CAPA`
/// before a burst when needed).
pub(crate) fn fetch<X, Y, R, E: Exec>(
    mut session: Session<X, Y, R, E>,
    run: &mut Run,
    args: &FetchOptions,
    verbose: bool,
    json: bool,
) -> Result<bool, Failure>
where
    MaybeTls<X, Y>: StartTls,
    R: LibraryRuntime + WriteTo<Vec<u8>>,
{
    let prepared = run
        .prepared
        .take()
        .ok_or_else(|| Failure::new(Exit::Software, "fetch was not prepared"))?;
    run.totals.sessions += 1;
    let (
        account,
        mut state,
        Ready {
            mut deliver,
            mut store,
            maildir_intent,
        },
        recovered_before,
    ) = prepared.ready()?;
    let path = state.path().to_owned();

    // One round trip for both when the server pipelines.
    let (uidl, list) = session
        .run(|c| c.uidl_and_list())
        .map_err(|e| Failure::from(e).context("UIDL"))?;
    let listing = match uidl {
        Ok(entries) => Some(entries),
        Err(Error::Server(e)) if plan::lacks_uidl(&e, session.conn().capabilities()) => None,
        Err(e) => return Err(Failure::from(e).context("UIDL")),
    };
    let sizes: HashMap<MsgNum, u64> = match list {
        Ok(entries) => entries.into_iter().map(|e| (e.msg, e.size)).collect(),
        Err(e) if !e.is_fatal() => HashMap::new(),
        Err(e) => return Err(Failure::from(e).context("LIST")),
    };
    let mut summary = Summary {
        uidl: listing.is_some(),
        recovered: recovered_before,
        ..Summary::default()
    };
    // Of what this session lists: how many no earlier session listed, and
    // how many are new (not fetched before).
    let first_listed;
    let mut new_listed = 0;
    let mut turns = false;
    let (uids, mut to_fetch, recovered) = match &listing {
        Some(entries) => {
            summary.on_server = entries.len();
            first_listed = entries
                .iter()
                .filter(|e| !run.listed.contains(&e.uid))
                .count();
            run.listed.extend(entries.iter().map(|e| e.uid.clone()));
            let deletes = args.delete || args.keep_days.is_some();
            let new = plan::new_messages(entries, &state, deliver.as_ref(), deletes);
            new_listed = new.to_fetch.len();
            if new_listed == entries.len() && new_listed > 0 {
                // Only new mail: the server may be handing it out in turns.
                // Its CAPA says; asked now if the login did not (a refusal
                // means no).
                turns = match session.conn().capabilities() {
                    Some(caps) => hands_out_in_turns(Some(caps)),
                    None if session.conn().client().capa_refused() => false,
                    None => session
                        .run(|c| c.capa())
                        .is_ok_and(|caps| hands_out_in_turns(Some(&caps))),
                };
            }
            (new.uids, new.to_fetch, new.recovered)
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
                    .run(|c| c.stat())
                    .map_err(|e| Failure::from(e).context("STAT"))?;
                all = (1..=stat.count).filter_map(MsgNum::new).collect();
            }
            all.sort_unstable();
            summary.on_server = all.len();
            first_listed = all.len();
            (HashMap::new(), all, Vec::new())
        }
    };

    // Policies: what is too big, what the filter says, how many.
    let mut delete_unfetched =
        plan::size_limits(&mut to_fetch, &sizes, args, verbose, &mut summary);
    // Over all the sessions of this fetch.
    let limit = args.max_messages.map_or(usize::MAX, |n| {
        (n as usize).saturating_sub(run.totals.fetched)
    });
    if args.filter.is_some() || to_fetch.len() > limit {
        let mut chosen = Vec::new();
        for &msg in &to_fetch {
            if chosen.len() >= limit {
                summary.skipped += 1;
                summary.left_to_fetch += 1;
                continue;
            }
            let Some(command) = &args.filter else {
                chosen.push(msg);
                continue;
            };
            let headers = session
                .run(|c| engine::headers_for_filter(c, msg))
                .map_err(|e| {
                    Failure::from(e).context(format_args!("TOP {msg} 0 (for --filter)"))
                })?;
            // The filter sees the headers as the destination will.
            let headers = match args.line_endings {
                LineEndings::Unix => ToUnix::whole(&headers),
                LineEndings::AsReceived => headers,
            };
            let uid = uids.get(&msg).map(String::as_str);
            match run_filter(
                command,
                &headers,
                &account,
                msg.get(),
                uid,
                sizes.get(&msg).copied(),
            )? {
                Verdict::Fetch => chosen.push(msg),
                Verdict::Delete if args.delete => delete_unfetched.push(msg),
                Verdict::Delete | Verdict::Skip => summary.skipped += 1,
            }
        }
        to_fetch = chosen;
    }

    if !recovered.is_empty() {
        summary.recovered += recovered.len();
        state
            .record_many(recovered)
            .map_err(|e| Failure::io(format_args!("state file {}", path.display()), &e))?;
    }
    if let Some(intent) = &maildir_intent {
        // What it named is recorded now, or no longer on the server: kept,
        // it would vouch for a later message that reuses one of its UIDs.
        clear_maildir_intent(intent)
            .map_err(|e| Failure::io(format_args!("intent file {}", intent.display()), &e))?;
    }

    let progress = (io::stderr().is_terminal() && !verbose && !to_fetch.is_empty()).then(|| {
        let total: u64 = to_fetch.iter().filter_map(|m| sizes.get(m)).sum();
        // As wide as the terminal, redrawn to its width as it changes.
        crate::progress::Progress::new(total, to_fetch.len())
    });

    let state = Mutex::new(state);
    let state_ref = listing.is_some().then_some(&state);
    let max_staged = store
        .as_ref()
        .map_or((MAX_STAGED, MAX_STAGED_BYTES), Store::max_staged);
    let shared = Shared::default();
    let cutoff = args
        .keep_days
        .map(|days| now().saturating_sub(u64::from(days) * 86_400));
    let may_delete = args.delete || cutoff.is_some() || !delete_unfetched.is_empty();
    let mut session = Some(session);
    let (retrieved, stored_now, failures, fatal, quit_sent) = thread::scope(|scope| {
        let group = store.as_mut().map(|store| {
            let (done_tx, done_rx) = mpsc::channel();
            let shared = &shared;
            scope.spawn(move || committer(store, state_ref, shared, done_tx));
            Group {
                shared,
                done: done_rx,
            }
        });
        let mut engine = Engine {
            deliver: deliver.as_mut(),
            state: state_ref,
            uids: &uids,
            current: None,
            current_bytes: 0,
            stored: Vec::new(),
            failures: Vec::new(),
            fatal: None,
            commit_failed: false,
            summary: &mut summary,
            progress,
            to_fetch: to_fetch.len(),
            ended: 0,
            group,
            max_staged,
            max_size: args.max_size,
            oversized: None,
        };
        let (retrieved, quit_sent) = match session.take() {
            // Nothing will be deleted: QUIT rides with the RETRs, and the
            // session ends with the last message, while its batch is being
            // made durable. (A session that deleted nothing commits nothing.)
            // Each message's outcome went to the engine already; a stop of
            // the engine is its own business (it keeps the reason).
            Some(live) if !may_delete && !to_fetch.is_empty() => {
                match live.finish(|c| c.retr_many_and_quit(&to_fetch, &mut engine)) {
                    Ok(retrieval) => (Ok(()), Some(retrieval.quit)),
                    Err(Error::Sink(_)) => (Ok(()), Some(Ok(()))),
                    Err(error) => (Err(error), None),
                }
            }
            Some(mut live) if !to_fetch.is_empty() => {
                let retrieved = match live.run(|c| c.retr_many(&to_fetch, &mut engine)) {
                    Ok(_) | Err(Error::Sink(_)) => Ok(()),
                    Err(error) => Err(error),
                };
                session = Some(live);
                (retrieved, None)
            }
            other => {
                session = other;
                (Ok(()), None)
            }
        };
        engine.abandon();
        engine.flush();
        if let Some(bar) = engine.progress.take() {
            bar.finish_and_clear();
        }
        (
            retrieved,
            std::mem::take(&mut engine.stored),
            std::mem::take(&mut engine.failures),
            engine.fatal.take(),
            quit_sent,
        )
    });
    let mut state = state.into_inner().unwrap_or_else(|p| p.into_inner());
    summary.failed = failures.len();
    // What was to be fetched and is not in the destination now.
    summary.left_to_fetch += to_fetch.len().saturating_sub(stored_now.len());
    if let Some(failure) = fatal {
        return Err(run.stop(&summary, first_listed, failure, json));
    }
    if let Err(e) = retrieved {
        return Err(run.stop(
            &summary,
            first_listed,
            Failure::from(e).context("RETR"),
            json,
        ));
    }

    // Deletion: only what is durably stored, only now.
    let mut deleted = Vec::new();
    let quit = match session {
        Some(session) if may_delete => {
            let deletable = plan::deletable(
                listing.as_deref(),
                &state,
                args,
                cutoff,
                &stored_now,
                &delete_unfetched,
            );
            if deletable.is_empty() {
                session.finish(|c| c.quit())
            } else {
                // The DELEs and the QUIT that commits them: one round trip.
                let deleting = session.finish(|c| c.dele_many_and_quit(&deletable));
                let deletion = deleting.map_err(|e| {
                    run.stop(
                        &summary,
                        first_listed,
                        Failure::from(e)
                            .context("DELE (nothing was deleted; the messages are saved)"),
                        json,
                    )
                })?;
                for (msg, result) in deletable.iter().zip(deletion.per_message) {
                    match result {
                        Ok(()) => deleted.push(*msg),
                        Err(e) => eprintln!("pop3: DELE {msg}: {}", Failure::from(e).message),
                    }
                }
                deletion.quit
            }
        }
        Some(session) => session.finish(|c| c.quit()),
        // Sent with the RETRs; answered with the last message.
        None => quit_sent.unwrap_or(Ok(())),
    };
    quit.map_err(|e| {
        let failure = Failure::from(e);
        if deleted.is_empty() {
            failure.context("QUIT")
        } else {
            failure.context("QUIT (deletions may not have been committed)")
        }
    })?;
    summary.deleted = deleted.len();
    summary.left_on_server = summary.on_server.saturating_sub(summary.deleted);

    // The server has committed: forget UIDs it no longer has. An empty
    // listing forgets nothing, but what it kept no longer vouches for a
    // message (`state::UNVERIFIED`).
    let state_failure =
        |e: io::Error| Failure::io(format_args!("state file {}", path.display()), &e);
    run.gone
        .extend(deleted.iter().filter_map(|msg| uids.get(msg).cloned()));
    if let Some(entries) = listing.as_deref() {
        if run.totals.sessions == 1 {
            match plan::still_listed(entries, &deleted) {
                Some(remaining) => state.retain(|uid| remaining.contains(uid)),
                None => state.mark_unverified(),
            }
            .map_err(state_failure)?;
        } else {
            // A later session lists only what the server offers it: what
            // the earlier sessions listed is still on the server too.
            let remaining: HashSet<&str> = run
                .listed
                .iter()
                .filter(|uid| !run.gone.contains(*uid))
                .map(String::as_str)
                .collect();
            state
                .retain(|uid| remaining.contains(uid))
                .map_err(state_failure)?;
        }
    }

    if let Some(first) = failures.into_iter().next() {
        run.first_failure.get_or_insert(first);
    }
    run.totals.absorb(&summary, first_listed);
    let more = another_session(
        turns,
        new_listed,
        &summary,
        stored_now.len(),
        delete_unfetched.len(),
        args.max_messages,
        run.totals.fetched,
    );
    // Kept, with the state's lock, for the next session.
    run.prepared = Some(Prepared {
        account,
        state: Some(state),
        state_path: path,
        destination: Destination::Ready(Ready {
            deliver,
            store,
            maildir_intent,
        }),
        recovered: 0,
    });
    run.completed += 1;
    Ok(more)
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
        // Several sessions (a server that hands out mail in turns) are
        // counted on the line, which still fits.
        summary.sessions = 40;
        let line = summary.line(Some(label));
        assert!(line.ends_with("; 40 sessions"), "{line}");
        assert!(line.chars().count() + 6 <= 80, "{line}");
    }
}
