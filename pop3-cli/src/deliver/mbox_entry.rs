//! An mboxrd entry made as the message arrives, in bounded memory.
//!
//! Why a spill file and not a write straight into the mbox: the batch
//! design ([`super::MboxAppender`]) must announce each entry's offset,
//! length and SHA-256 in the synced intent *before* any byte of the batch
//! reaches the mbox, and holds the mbox's locks only for the append, not
//! for the minutes a slow server takes to send a batch (the mail reader
//! and the MTA would wait that long). So each entry is complete before its
//! batch is appended; entries up to [`SPILL_AT`] are kept in memory, and a
//! bigger one goes on to an unlinked file in the mbox's own directory (not
//! `/tmp`, often memory itself), read back once when it is appended. On
//! Linux the spill file is made without a name (`O_TMPFILE`), so a kill at
//! any point leaves none behind; where that is not available it is named
//! for the instant between its creation and its unlinking.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::hex;
use super::mbox::{asctime, envelope_sender};

/// An entry bigger than this goes to a spill file.
pub(crate) const SPILL_AT: usize = 1 << 20;
/// The `From ` line's sender is looked for in this much of the message's
/// start at most (`Return-Path:` is the first header when an MTA adds it).
const HEAD_MAX: usize = 64 * 1024;

/// A finished entry, ready to be appended.
#[derive(Debug)]
pub(crate) struct MboxStaged {
    body: EntryBody,
    /// Its length in bytes.
    pub(crate) len: u64,
    /// Lowercase hex SHA-256 of its bytes.
    pub(crate) sha256: String,
}

#[derive(Debug)]
enum EntryBody {
    Memory(Vec<u8>),
    Spilled(File),
}

impl MboxStaged {
    /// Writes the entry's bytes to `out`.
    pub(crate) fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        match &self.body {
            EntryBody::Memory(bytes) => out.write_all(bytes),
            EntryBody::Spilled(file) => {
                let mut file = file;
                file.seek(SeekFrom::Start(0))?;
                let copied = io::copy(&mut file.take(self.len), out)?;
                if copied == self.len {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the spill file of an mbox entry is shorter than written",
                    ))
                }
            }
        }
    }

    /// The bytes, when they are in memory (tests).
    #[cfg(test)]
    pub(crate) fn in_memory(&self) -> Option<&[u8]> {
        match &self.body {
            EntryBody::Memory(bytes) => Some(bytes),
            EntryBody::Spilled(_) => None,
        }
    }
}

/// Whether `bytes` hold a blank line (`\n\n` or `\n\r\n`): the end of the
/// header section. Stops at the first one.
fn ends_header(bytes: &[u8]) -> bool {
    let mut at = 0;
    while let Some(found) = bytes[at..].iter().position(|&b| b == b'\n') {
        at += found + 1;
        match bytes.get(at) {
            Some(b'\n') => return true,
            Some(b'\r') if bytes.get(at + 1) == Some(&b'\n') => return true,
            _ => {}
        }
    }
    false
}

/// Where a line of the message stands in the mboxrd quoting.
#[derive(Debug, Clone, Copy)]
enum Line {
    /// At the start of a line, having seen `quotes` `>` and then the first
    /// `matched` bytes of `From ` (all held back until it is known whether
    /// the line needs one more `>`).
    Start { quotes: u64, matched: usize },
    /// Past the point where quoting is decided.
    Middle,
}

const FROM: &[u8] = b"From ";

/// Builds one mboxrd entry from the message's chunks: the `From ` line,
/// the message with CRLF turned into LF and `>*From ` lines quoted with one
/// more `>`, a final newline if it lacks one, and a blank line. Holds at
/// most [`HEAD_MAX`] bytes of the message and [`SPILL_AT`] of the entry.
pub(crate) struct EntryBuilder {
    /// The message's start, until the sender is known.
    head: Option<Vec<u8>>,
    line: Line,
    /// A `\r` that may be the start of a CRLF.
    carriage_return: bool,
    empty: bool,
    out: Output,
}

struct Output {
    memory: Vec<u8>,
    spill: Option<BufWriter<File>>,
    len: u64,
    hasher: Sha256,
    /// Where a spill file is made.
    spill_dir: PathBuf,
}

impl Output {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        if let Some(spill) = &mut self.spill {
            return spill.write_all(bytes);
        }
        if self.memory.len() + bytes.len() <= SPILL_AT {
            self.memory.extend_from_slice(bytes);
            return Ok(());
        }
        // Created nameless: nothing to clean up after a kill.
        let file = tempfile::tempfile_in(&self.spill_dir)?;
        // O_TMPFILE gives the umask's mode (0644 under 022), which a
        // `linkat` through /proc would publish; 0600 like all mail here.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(crate::private::FILE_MODE))?;
        }
        let mut spill = BufWriter::with_capacity(256 * 1024, file);
        spill.write_all(&self.memory)?;
        spill.write_all(bytes)?;
        self.memory = Vec::new();
        self.spill = Some(spill);
        Ok(())
    }
}

impl EntryBuilder {
    /// A new entry for an mbox in `dir`; a spill file, if needed, is
    /// created there.
    pub(crate) fn new(dir: &Path) -> EntryBuilder {
        EntryBuilder {
            head: Some(Vec::new()),
            line: Line::Start {
                quotes: 0,
                matched: 0,
            },
            carriage_return: false,
            empty: true,
            out: Output {
                memory: Vec::new(),
                spill: None,
                len: 0,
                hasher: Sha256::new(),
                spill_dir: dir.to_path_buf(),
            },
        }
    }

    /// The next bytes of the message.
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.empty = false;
        if let Some(head) = &mut self.head {
            // Only the new bytes (and the three before them) are searched.
            let from = head.len().saturating_sub(3);
            head.extend_from_slice(data);
            if ends_header(&head[from..]) || head.len() >= HEAD_MAX {
                return self.open_entry();
            }
            return Ok(());
        }
        self.convert(data)
    }

    /// Writes the `From ` line, then what was held of the message.
    fn open_entry(&mut self) -> io::Result<()> {
        let head = self.head.take().unwrap_or_default();
        let from = format!(
            "From {} {}\n",
            envelope_sender(&head),
            asctime(SystemTime::now())
        );
        self.out.put(from.as_bytes())?;
        self.convert(&head)
    }

    /// Writes what the line's start held back; the line goes on unquoted.
    fn flush_held(&mut self) -> io::Result<()> {
        if let Line::Start { quotes, matched } = self.line {
            self.line = Line::Middle;
            let run = [b'>'; 64];
            let mut left = quotes;
            while left > 0 {
                let n = left.min(run.len() as u64) as usize;
                self.out.put(&run[..n])?;
                left -= n as u64;
            }
            self.out.put(&FROM[..matched])?;
        }
        Ok(())
    }

    fn end_line(&mut self) -> io::Result<()> {
        self.flush_held()?;
        self.out.put(b"\n")?;
        self.line = Line::Start {
            quotes: 0,
            matched: 0,
        };
        Ok(())
    }

    fn convert(&mut self, mut data: &[u8]) -> io::Result<()> {
        while let Some((&byte, rest)) = data.split_first() {
            if self.carriage_return {
                self.carriage_return = false;
                if byte == b'\n' {
                    self.end_line()?;
                    data = rest;
                    continue;
                }
                self.flush_held()?;
                self.out.put(b"\r")?;
            }
            match (byte, self.line) {
                (b'\r', _) => {
                    self.carriage_return = true;
                    data = rest;
                }
                (b'\n', _) => {
                    self.end_line()?;
                    data = rest;
                }
                (b'>', Line::Start { quotes, matched: 0 }) => {
                    self.line = Line::Start {
                        quotes: quotes + 1,
                        matched: 0,
                    };
                    data = rest;
                }
                (_, Line::Start { quotes, matched }) if FROM.get(matched) == Some(&byte) => {
                    self.line = Line::Start {
                        quotes,
                        matched: matched + 1,
                    };
                    if matched + 1 == FROM.len() {
                        // A `>*From ` line: one more `>` in front.
                        self.out.put(b">")?;
                        self.flush_held()?;
                    }
                    data = rest;
                }
                (_, Line::Start { .. }) => self.flush_held()?,
                (_, Line::Middle) => {
                    // The rest of the line in one piece.
                    let end = data
                        .iter()
                        .position(|&b| b == b'\r' || b == b'\n')
                        .unwrap_or(data.len());
                    self.out.put(&data[..end])?;
                    data = &data[end..];
                }
            }
        }
        Ok(())
    }

    /// The message is complete: the entry, its length and its hash.
    pub(crate) fn finish(mut self) -> io::Result<MboxStaged> {
        if self.head.is_some() {
            self.open_entry()?;
        }
        // A `\r` at the very end ends the last line (which it is part of).
        let trailing_return = std::mem::take(&mut self.carriage_return);
        let at_start = matches!(
            self.line,
            Line::Start {
                quotes: 0,
                matched: 0
            }
        );
        if self.empty || !at_start || trailing_return {
            self.end_line()?;
        }
        self.out.put(b"\n")?;
        let Output {
            memory,
            spill,
            len,
            hasher,
            ..
        } = self.out;
        let body = match spill {
            None => EntryBody::Memory(memory),
            Some(spill) => EntryBody::Spilled(spill.into_inner().map_err(|e| e.into_error())?),
        };
        Ok(MboxStaged {
            body,
            len,
            sha256: hex(&hasher.finalize()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole-message conversion the streaming one must equal, at every
    /// split, From line aside.
    fn reference(message: &[u8]) -> Vec<u8> {
        let entry = crate::deliver::mbox::mbox_entry(message, std::time::UNIX_EPOCH);
        let from_line = entry.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        entry[from_line..].to_vec()
    }

    fn built(dir: &Path, chunks: &[&[u8]]) -> Vec<u8> {
        let mut builder = EntryBuilder::new(dir);
        for chunk in chunks {
            builder.write(chunk).expect("write");
        }
        let staged = builder.finish().expect("finish");
        let mut out = Vec::new();
        staged.write_to(&mut out).expect("read back");
        assert_eq!(out.len() as u64, staged.len);
        assert_eq!(hex(&Sha256::digest(&out)), staged.sha256);
        out
    }

    fn without_from_line(entry: &[u8]) -> &[u8] {
        assert!(entry.starts_with(b"From "));
        let at = entry.iter().position(|&b| b == b'\n').expect("From line");
        &entry[at + 1..]
    }

    #[test]
    fn every_split_gives_the_whole_message_conversion() {
        let dir = tempfile::tempdir().expect("tempdir");
        let samples: [&[u8]; 8] = [
            b"Return-Path: <a@b.example>\r\nSubject: x\r\n\r\nFrom here\r\n>From there\r\n>>From x\r\nFromage\r\n",
            b"Subject: y\r\n\r\nbody",
            b"",
            b"\r\n",
            b"a\r\rb\r\n>Fro\r\nFrom\r\n>>>>>\r\n\r\n",
            b"no blank line\r",
            b"x\n\nFrom  \n>From\r\n",
            b"\r\n\r\nFrom x",
        ];
        for message in samples {
            let expected = reference(message);
            for at in 0..=message.len() {
                for at2 in at..=message.len() {
                    let entry = built(
                        dir.path(),
                        &[&message[..at], &message[at..at2], &message[at2..]],
                    );
                    assert_eq!(
                        without_from_line(&entry),
                        expected,
                        "{:?} split at {at} {at2}",
                        String::from_utf8_lossy(message)
                    );
                }
            }
        }
        let entry = built(dir.path(), &[samples[0]]);
        assert!(entry.starts_with(b"From a@b.example "));
        let entry = built(dir.path(), &[samples[1]]);
        assert!(entry.starts_with(b"From MAILER-DAEMON "));
    }

    #[test]
    fn a_big_entry_spills_to_a_nameless_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let line = b"0123456789abcdef0123456789abcdef0123456789abcdef012345678901234\r\n";
        let mut message = b"Subject: big\r\n\r\n".to_vec();
        while message.len() < 3 * SPILL_AT {
            message.extend_from_slice(line);
        }
        let mut builder = EntryBuilder::new(dir.path());
        for chunk in message.chunks(4096) {
            builder.write(chunk).expect("write");
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            0,
            "the spill file has no name"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let spill = builder.out.spill.as_ref().expect("spilled");
            let mode = spill
                .get_ref()
                .metadata()
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, crate::private::FILE_MODE);
        }
        let staged = builder.finish().expect("finish");
        assert!(staged.in_memory().is_none());
        let mut out = Vec::new();
        staged.write_to(&mut out).expect("read back");
        assert_eq!(without_from_line(&out), reference(&message));
        // Appended twice (a retried batch): the same bytes.
        let mut again = Vec::new();
        staged.write_to(&mut again).expect("read back");
        assert_eq!(out, again);
    }
}
