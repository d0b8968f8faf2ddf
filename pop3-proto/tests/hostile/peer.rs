//! A scripted server in memory, and the pump that runs the core against it.
//!
//! The script is the one the socket suite gave its scripted server: bytes to
//! send, lines to expect, and where to close. The pump is what every driver
//! does (write what `poll` says to send, read when it asks for input, hand
//! events back), with the reads cut where the script's writes are, so that
//! what a socket would deliver in one read arrives in one piece here too.
//! A client that waits for bytes the script never sends is `Stalled`: over a
//! socket, that is a time-out.

use std::collections::{HashMap, VecDeque};

use pop3_proto::sasl::Mechanism;
use pop3_proto::{
    Action, AuthMethod, Client, Command, Config, Credentials, Event, Greeting, Handle,
    ProtocolError, Reply, ServerError, UsageError,
};

/// One step of the scripted server.
#[derive(Debug)]
pub(crate) enum Step {
    /// Write these bytes (one read's worth for the client, or several reads
    /// of its input buffer's size).
    Send(Vec<u8>),
    /// The client's next line must be this one (without CRLF).
    Expect(String),
    /// Close the connection (end of stream for the client).
    Close,
}

impl Step {
    /// A line and its CRLF.
    pub(crate) fn send_line(line: &str) -> Step {
        Step::Send(format!("{line}\r\n").into_bytes())
    }

    pub(crate) fn expect_line(line: &str) -> Step {
        Step::Expect(line.to_owned())
    }
}

/// What became of a command, or of the session while waiting for it.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// `+OK` with what it carried.
    Ok(Reply),
    /// `-ERR`: the session goes on.
    Err(ServerError),
    /// One unusable reply, read to its end: the session goes on.
    Failed(ProtocolError),
    /// Never sent, because something before it failed.
    Cancelled(UsageError),
    /// Refused when submitted: nothing queued, nothing sent.
    Refused(UsageError),
    /// From `poll`: the server broke the protocol and the session is over.
    Fatal(ProtocolError),
    /// The core wants bytes that the script never sends.
    Stalled,
    /// The session closed before the command completed.
    Closed,
}

/// The core, the scripted server, and what the caller saw.
pub(crate) struct Session {
    pub(crate) client: Client,
    steps: VecDeque<Step>,
    /// Writes of the server not yet read by the client, and how far each was read.
    ready: VecDeque<(Vec<u8>, usize)>,
    eof_given: bool,
    /// Every byte the client sent.
    sent: Vec<u8>,
    /// Where the first line the server has not read yet starts in `sent`.
    unread: usize,
    seen: Seen,
}

/// What the caller was told.
#[derive(Default)]
struct Seen {
    outcomes: HashMap<Handle, Outcome>,
    bodies: HashMap<Handle, Vec<u8>>,
    greeting: Option<Greeting>,
}

enum Progress {
    Going,
    Stalled,
    Fatal(ProtocolError),
    Closed,
}

impl Session {
    /// A client with `config` on a connection to a server running `steps`.
    pub(crate) fn new(config: Config, steps: Vec<Step>) -> Session {
        Session {
            client: Client::new(config),
            steps: steps.into(),
            ready: VecDeque::new(),
            eof_given: false,
            sent: Vec::new(),
            unread: 0,
            seen: Seen::default(),
        }
    }

    /// Pumps until the greeting is in, as a driver's connect does.
    pub(crate) fn greet(&mut self) -> Result<Greeting, Outcome> {
        loop {
            if let Some(greeting) = &self.seen.greeting {
                return Ok(greeting.clone());
            }
            match self.step() {
                Progress::Going => {}
                Progress::Stalled => return Err(Outcome::Stalled),
                Progress::Fatal(e) => return Err(Outcome::Fatal(e)),
                Progress::Closed => return Err(Outcome::Closed),
            }
        }
    }

    /// The greeting, once [`Session::greet`] has read it.
    #[track_caller]
    pub(crate) fn greeting(&self) -> &Greeting {
        self.seen.greeting.as_ref().expect("greeted")
    }

    /// Pumps until `handle` completes.
    pub(crate) fn run(&mut self, handle: Handle) -> Outcome {
        loop {
            if let Some(outcome) = self.seen.outcomes.remove(&handle) {
                return outcome;
            }
            match self.step() {
                Progress::Going => {}
                Progress::Stalled => return Outcome::Stalled,
                Progress::Fatal(e) => return Outcome::Fatal(e),
                Progress::Closed => return Outcome::Closed,
            }
        }
    }

    /// Submits `command` and runs it to its outcome.
    pub(crate) fn command(&mut self, command: Command) -> Outcome {
        match self.client.submit(command) {
            Ok(handle) => self.run(handle),
            Err(e) => Outcome::Refused(e),
        }
    }

    /// Logs in with `method`, as a driver's `login_with` does.
    pub(crate) fn login_with(&mut self, user: &str, password: &str, method: AuthMethod) -> Outcome {
        match self
            .client
            .login_with(Credentials::new(user, password), method)
        {
            Ok(handle) => self.run(handle),
            Err(e) => Outcome::Refused(e),
        }
    }

    /// Logs in with `credentials` of the caller's making and `method`.
    pub(crate) fn login_with_credentials(
        &mut self,
        credentials: Credentials,
        method: AuthMethod,
    ) -> Outcome {
        match self.client.login_with(credentials, method) {
            Ok(handle) => self.run(handle),
            Err(e) => Outcome::Refused(e),
        }
    }

    /// Logs in with a mechanism of the caller's own, as a driver's `auth` does.
    pub(crate) fn auth(&mut self, mechanism: Box<dyn Mechanism>) -> Outcome {
        match self
            .client
            .login_with(Credentials::new("", ""), AuthMethod::Mechanism(mechanism))
        {
            Ok(handle) => self.run(handle),
            Err(e) => Outcome::Refused(e),
        }
    }

    /// Runs each of `handles` (submitted together) to its outcome, in order.
    pub(crate) fn run_all(&mut self, handles: &[Handle]) -> Vec<Outcome> {
        handles.iter().map(|&h| self.run(h)).collect()
    }

    /// The body a `RETR` or `TOP` streamed, once it has ended.
    pub(crate) fn body(&mut self, handle: Handle) -> Vec<u8> {
        self.seen.bodies.remove(&handle).unwrap_or_default()
    }

    /// Everything the client sent, and whether the script was followed to
    /// its end.
    pub(crate) fn finish(self) -> (Vec<u8>, Result<(), String>) {
        let result = match self.steps.front() {
            None => Ok(()),
            Some(step) => Err(format!(
                "the script stopped at {step:?} ({} steps left)",
                self.steps.len()
            )),
        };
        (self.sent, result)
    }

    fn step(&mut self) -> Progress {
        match self.client.poll() {
            Ok(Action::Send(bytes)) => {
                self.sent.extend_from_slice(bytes);
                self.advance();
            }
            Ok(Action::Event(event)) => self.seen.record(event),
            Ok(Action::NeedInput) => {
                if !self.feed() {
                    return Progress::Stalled;
                }
            }
            Ok(Action::StartTls) => panic!("no case here starts TLS"),
            Ok(Action::Closed) => return Progress::Closed,
            Err(e) => return Progress::Fatal(e),
        }
        Progress::Going
    }

    /// The server reads the client's complete lines and writes whatever its
    /// script says comes next.
    fn advance(&mut self) {
        loop {
            match self.steps.front() {
                Some(Step::Send(_)) => {
                    let Some(Step::Send(bytes)) = self.steps.pop_front() else {
                        unreachable!("the front step is a Send");
                    };
                    self.ready.push_back((bytes, 0));
                }
                Some(Step::Expect(want)) => {
                    let rest = &self.sent[self.unread..];
                    let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
                        return;
                    };
                    let line = String::from_utf8_lossy(&rest[..end]).into_owned();
                    assert_eq!(
                        &line,
                        want,
                        "the client sent the wrong line; all it sent: {}",
                        show(&self.sent)
                    );
                    self.unread += end + 2;
                    self.steps.pop_front();
                }
                Some(Step::Close) | None => return,
            }
        }
    }

    /// Gives the client the next piece of what the server wrote, or the end
    /// of the stream. False if the server has nothing more to say yet.
    fn feed(&mut self) -> bool {
        self.advance();
        if let Some((bytes, read)) = self.ready.front_mut() {
            let buffer = self.client.input_buffer();
            let n = buffer.len().min(bytes.len() - *read);
            buffer[..n].copy_from_slice(&bytes[*read..*read + n]);
            *read += n;
            if *read == bytes.len() {
                self.ready.pop_front();
            }
            self.client.input_written(n);
            return true;
        }
        if matches!(self.steps.front(), Some(Step::Close)) && !self.eof_given {
            self.steps.pop_front();
            self.eof_given = true;
            self.client.receive_eof();
            return true;
        }
        false
    }
}

impl Seen {
    fn record(&mut self, event: Event<'_>) {
        match event {
            Event::Greeting(greeting) => self.greeting = Some(greeting),
            Event::Ok { handle, reply } => {
                self.outcomes.insert(handle, Outcome::Ok(reply));
            }
            Event::Err { handle, error } => {
                self.outcomes.insert(handle, Outcome::Err(error));
            }
            Event::Failed { handle, error } => {
                // Chunks already given for it are to be discarded.
                self.bodies.remove(&handle);
                self.outcomes.insert(handle, Outcome::Failed(error));
            }
            Event::Cancelled { handle, reason } => {
                self.outcomes.insert(handle, Outcome::Cancelled(reason));
            }
            Event::BodyStart { handle } => {
                self.bodies.insert(handle, Vec::new());
            }
            Event::Body { handle, data } => {
                self.bodies
                    .entry(handle)
                    .or_default()
                    .extend_from_slice(data);
            }
            _ => {}
        }
    }
}

/// Bytes as text, escapes shown, long runs shortened (for failure messages).
pub(crate) fn show(bytes: &[u8]) -> String {
    let text = bytes.escape_ascii().to_string();
    if text.len() > 400 {
        format!("{}... ({} bytes)", &text[..400], bytes.len())
    } else {
        text
    }
}
