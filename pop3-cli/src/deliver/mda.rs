//! An MDA: a command run once per message, the message on its stdin.

use std::io::{self, Write};
use std::process::{Command, Stdio};

use super::{Deliver, Incoming, NotStored, Stored};
use crate::error::Failure;

/// Runs a command per message (`sh -c CMD`) with the message, as received,
/// on its stdin; exit status 0 means delivered. Its stdout and stderr go to
/// pop3's stderr. `POP3_ACCOUNT`, `POP3_MSG` and `POP3_UID` (when known) are
/// set in its environment.
pub(crate) struct Mda {
    command: String,
    account: String,
    message: Vec<u8>,
    incoming: Option<Incoming>,
}

impl Mda {
    /// An MDA running `command`.
    pub(crate) fn new(command: &str, account: &str) -> Mda {
        Mda {
            command: command.to_owned(),
            account: account.to_owned(),
            message: Vec::new(),
            incoming: None,
        }
    }
}

impl Deliver for Mda {
    fn begin(&mut self, incoming: Incoming) -> io::Result<()> {
        self.message.clear();
        self.incoming = Some(incoming);
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.message.extend_from_slice(data);
        Ok(())
    }

    fn commit(&mut self) -> Result<Stored, NotStored> {
        let incoming = self.incoming.take();
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(&self.command)
            .env("POP3_ACCOUNT", &self.account)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(io::stderr()))
            .stderr(Stdio::inherit());
        crate::secrets::scrub(&mut command);
        if let Some(incoming) = &incoming {
            command.env("POP3_MSG", incoming.msg.to_string());
            match &incoming.uid {
                Some(uid) => command.env("POP3_UID", uid),
                None => command.env_remove("POP3_UID"),
            };
        }
        let mut child = command
            .spawn()
            .map_err(|e| NotStored::Fatal(Failure::io("--mda: cannot run sh", &e)))?;
        if let Some(mut stdin) = child.stdin.take() {
            // An MDA that exits without reading everything is judged by its
            // exit status alone.
            match stdin.write_all(&self.message) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(NotStored::Refused(format!("writing to the MDA: {e}")));
                }
            }
        }
        self.message.clear();
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

    fn abort(&mut self) {
        self.message.clear();
        self.incoming = None;
    }
}
