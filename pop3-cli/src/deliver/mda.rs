//! An MDA: a command run once per message, the message on its stdin.

use std::io::{self, Write};
use std::process::{Child, ChildStdin, Command, Stdio};

use super::{Deliver, Incoming, LineEndings, NotStored, Stored, ToUnix};
use crate::error::Failure;

/// Runs a command per message (`sh -c CMD`) with the message on its stdin
/// (LF line endings unless `--exact-bytes`: [`LineEndings`]); exit status
/// 0 means delivered. Its stdout and stderr go to
/// pop3's stderr. `POP3_ACCOUNT`, `POP3_MSG` and `POP3_UID` (when known) are
/// set in its environment.
///
/// The message is piped to the command as it arrives, so memory stays
/// bounded whatever the message's size. A message that does not arrive
/// whole (a lost connection, `--max-size` passed, a signal) is never
/// ended on the command's stdin: the command is killed before it sees
/// end-of-file, so that an MDA that delivers at end-of-file (procmail,
/// maildrop, `dovecot-lda`) delivers nothing; one that writes as it reads
/// may leave the part it had. The command runs in a process group of its
/// own and the whole group is killed: a program that `sh` started (and did
/// not replace itself with) would otherwise outlive `sh`, see end-of-file
/// and deliver the part.
pub(crate) struct Mda {
    command: String,
    account: String,
    line_endings: LineEndings,
    running: Option<Running>,
    /// The converted bytes of a chunk, written to the pipe at once.
    converted: Vec<u8>,
}

/// The command for the current message.
struct Running {
    /// Spawning failed: said at the commit.
    child: io::Result<Child>,
    stdin: Option<ChildStdin>,
    /// Writing to it failed other than by its closing its stdin.
    broken: Option<io::Error>,
    /// `None`: the bytes as received.
    to_unix: Option<ToUnix>,
}

impl Mda {
    /// An MDA running `command`, fed messages with `line_endings`.
    pub(crate) fn new(command: &str, account: &str, line_endings: LineEndings) -> Mda {
        Mda {
            command: command.to_owned(),
            account: account.to_owned(),
            line_endings,
            running: None,
            converted: Vec::new(),
        }
    }

    fn spawn(&self, incoming: &Incoming) -> io::Result<Child> {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(&self.command)
            .env("POP3_ACCOUNT", &self.account)
            .env("POP3_MSG", incoming.msg.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::from(io::stderr()))
            .stderr(Stdio::inherit());
        crate::secrets::scrub(&mut command);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        match &incoming.uid {
            Some(uid) => command.env("POP3_UID", uid),
            None => command.env_remove("POP3_UID"),
        };
        command.spawn()
    }
}

impl Deliver for Mda {
    fn begin(&mut self, incoming: Incoming) -> io::Result<()> {
        self.abort();
        let mut child = self.spawn(&incoming);
        let stdin = child.as_mut().ok().and_then(|c| c.stdin.take());
        self.running = Some(Running {
            child,
            stdin,
            broken: None,
            to_unix: (self.line_endings == LineEndings::Unix).then(ToUnix::default),
        });
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let Some(running) = &mut self.running else {
            return Err(io::Error::other("no message started"));
        };
        let data = match &mut running.to_unix {
            Some(to_unix) => {
                self.converted.clear();
                let converted = &mut self.converted;
                to_unix.convert(data, |piece| {
                    converted.extend_from_slice(piece);
                    Ok(())
                })?;
                &self.converted[..]
            }
            None => data,
        };
        running.feed(data);
        Ok(())
    }

    fn commit(&mut self) -> Result<Stored, NotStored> {
        let Some(mut running) = self.running.take() else {
            return Err(NotStored::Fatal(Failure::new(
                crate::error::Exit::Software,
                "--mda: no message started",
            )));
        };
        // A lone CR at the very end, held back until now.
        if let Some(mut to_unix) = running.to_unix.take() {
            let mut end = Vec::new();
            let _ = to_unix.finish(|cr| {
                end.extend_from_slice(cr);
                Ok(())
            });
            running.feed(&end);
        }
        running.commit()
    }

    fn abort(&mut self) {
        if let Some(running) = self.running.take() {
            // Killed before its stdin is closed: it never sees the end of
            // an incomplete message.
            if let Ok(mut child) = running.child {
                kill(&mut child);
                drop(running.stdin);
                let _ = child.wait();
            }
        }
    }
}

impl Running {
    /// Writes `data` to the MDA's stdin.
    fn feed(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if let Some(stdin) = &mut self.stdin {
            match stdin.write_all(data) {
                Ok(()) => {}
                // An MDA that exits without reading everything is judged
                // by its exit status alone: the rest is dropped.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => self.stdin = None,
                Err(e) => {
                    self.stdin = None;
                    self.broken = Some(e);
                }
            }
        }
    }

    /// Ends the MDA's input and judges it by its exit status.
    fn commit(mut self) -> Result<Stored, NotStored> {
        // End of file: the message is complete.
        drop(self.stdin.take());
        let mut child = match self.child {
            Ok(child) => child,
            Err(e) => return Err(NotStored::Fatal(Failure::io("--mda: cannot run sh", &e))),
        };
        if let Some(e) = self.broken.take() {
            kill(&mut child);
            let _ = child.wait();
            return Err(NotStored::Refused(format!("writing to the MDA: {e}")));
        }
        let status = child
            .wait()
            .map_err(|e| NotStored::Fatal(Failure::io("--mda", &e)))?;
        if status.success() {
            Ok(Stored::New)
        } else if matches!(status.code(), Some(126 | 127)) {
            // sh could not run the command: every message would fail the
            // same way, on every run.
            Err(NotStored::Fatal(Failure::usage(format!(
                "--mda: the command cannot be run (sh exit status {}: {}); \
                 nothing more is fetched",
                status.code().unwrap_or_default(),
                if status.code() == Some(127) {
                    "command not found"
                } else {
                    "not executable"
                }
            ))))
        } else {
            Err(NotStored::Refused(format!("the MDA failed ({status})")))
        }
    }
}

/// Kills the MDA and whatever it started (its process group).
fn kill(child: &mut Child) {
    #[cfg(unix)]
    {
        use rustix::process::{kill_process_group, Pid, Signal};
        if kill_process_group(Pid::from_child(child), Signal::KILL).is_ok() {
            return;
        }
    }
    let _ = child.kill();
}

impl Drop for Mda {
    fn drop(&mut self) {
        self.abort();
    }
}
