//! Runs a real Dovecot POP3 server on loopback with one user and a filled
//! Maildir, for benchmarks and demos.
//!
//! ```text
//! local-dovecot [--user NAME] [--password PASS]
//!               [--messages N --size BYTES] [--sample] [--big-message BYTES]
//!               [--ca-out PATH]
//! ```
//!
//! * `--messages N --size BYTES`: N mail-like messages of exactly BYTES bytes
//!   each (headers, then 76-character body lines, some starting with `.`, one
//!   consisting of a lone `.`; CRLF line endings).
//! * `--sample`: about ten small, varied demo messages (plain text, MIME
//!   multipart with an attachment, encoded subject, HTML, dot lines, ...).
//! * `--big-message BYTES`: one more message of BYTES bytes, the last one,
//!   written to disk in chunks (never held in memory).
//! * `--ca-out PATH`: where to write the PEM of the CA that signed the server
//!   certificate (default: `ssl/ca.pem` in Dovecot's temporary directory).
//!
//! The order of the messages is: `--sample`, then `--messages`, then
//! `--big-message`. Once the server is up, one line of JSON goes to stdout:
//!
//! ```text
//! {"host":"127.0.0.1","plain_port":..,"tls_port":..,"user":..,"password":..,"ca":PATH,"maildir":..,"messages":N}
//! ```
//!
//! The server stays up until stdin is closed (EOF), then it is stopped and
//! its temporary directory removed. If this process is killed instead
//! (SIGTERM, SIGINT, SIGKILL), Dovecot's wrapper sees its pipe close and does
//! the same. Run it with stdin on a pipe or a terminal, not `/dev/null`.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use test_support::dovecot::{Dovecot, Mailbox};

const USAGE: &str = "usage: local-dovecot [--user NAME] [--password PASS] \
[--messages N --size BYTES] [--sample] [--big-message BYTES] [--ca-out PATH]";

struct Args {
    user: String,
    password: String,
    messages: u64,
    size: u64,
    sample: bool,
    big_message: Option<u64>,
    ca_out: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        user: "bench".into(),
        password: "bench-password".into(),
        messages: 0,
        size: 50 * 1024,
        sample: false,
        big_message: None,
        ca_out: None,
    };
    let mut size_given = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |name: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: not a number: {v:?}"))
        };
        match arg.as_str() {
            "--user" => args.user = value("--user")?,
            "--password" => args.password = value("--password")?,
            "--messages" => args.messages = number("--messages", value("--messages")?)?,
            "--size" => {
                args.size = number("--size", value("--size")?)?;
                size_given = true;
            }
            "--sample" => args.sample = true,
            "--big-message" => {
                args.big_message = Some(number("--big-message", value("--big-message")?)?)
            }
            "--ca-out" => args.ca_out = Some(value("--ca-out")?.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if size_given && args.messages == 0 {
        return Err("--size without --messages".into());
    }
    Ok(args)
}

/// A small deterministic generator (xorshift64*), so that runs are repeatable.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        // n is small: modulo bias does not matter here.
        (self.next() % n as u64) as usize
    }
}

const WORDS: &str = "the message server mailbox retrieve client octets pipelining of and a \
    to quarterly report attached please find regards meeting tomorrow agenda budget draft review \
    thanks line dot stuffing protocol transport latency bandwidth is in for with on we";

/// Body line length (without CRLF), as in RFC 2045's base64 lines.
const LINE: usize = 76;

/// Writes a mail-like message of exactly `size` bytes (or just its headers
/// and a blank line, if `size` is smaller than those; or one byte more if
/// exactly one byte would be left for the body) to `out`, line by line.
fn write_mail(out: &mut impl Write, index: u64, size: u64) -> io::Result<u64> {
    let mut rng = Rng::new(index + 1);
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let header = format!(
        "Return-Path: <sender{n}@example.org>\r\n\
         From: Sender {n} <sender{n}@example.org>\r\n\
         To: Bench User <bench@example.net>\r\n\
         Subject: Benchmark message {n}\r\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\
         Message-ID: <bench.{n}@example.org>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n",
        n = index + 1
    );
    out.write_all(header.as_bytes())?;
    let mut written = header.len() as u64;
    let mut line = Vec::with_capacity(LINE + 2);
    let mut number = 0u64;
    while written < size {
        let left = size - written;
        // Line length without CRLF; never leave exactly 1 byte behind.
        let len = if left >= (LINE + 2) as u64 + 2 || left == (LINE + 2) as u64 {
            LINE
        } else if left > (LINE + 2) as u64 {
            LINE - 3
        } else {
            left.saturating_sub(2) as usize
        };
        line.clear();
        number += 1;
        if number == 7 && left >= (LINE + 2) as u64 + 5 {
            // A line that is a lone dot: the end marker unless stuffed.
            line.extend_from_slice(b".\r\n");
            out.write_all(&line)?;
            written += line.len() as u64;
            continue;
        }
        if number.is_multiple_of(11) {
            line.extend_from_slice(if number.is_multiple_of(3) {
                b".."
            } else {
                b"."
            });
        }
        while line.len() < len {
            let word = words[rng.below(words.len())].as_bytes();
            line.extend_from_slice(word);
            line.push(b' ');
        }
        line.truncate(len);
        if line.last() == Some(&b' ') {
            // No trailing blanks (some clients strip them).
            if let Some(last) = line.last_mut() {
                *last = b'-';
            }
        }
        line.extend_from_slice(b"\r\n");
        out.write_all(&line)?;
        written += line.len() as u64;
    }
    Ok(written)
}

/// About ten small demo messages of various kinds.
fn sample_messages() -> Vec<String> {
    let m = |headers: &str, body: &str| -> String {
        let text = format!("{headers}\n\n{body}");
        let mut crlf = text.replace('\n', "\r\n");
        if !crlf.ends_with("\r\n") {
            crlf.push_str("\r\n");
        }
        crlf
    };
    vec![
        m(
            "From: Alice Example <alice@example.org>\nTo: Demo <demo@example.net>\n\
             Subject: Hello from the sample mailbox\nDate: Mon, 1 Jan 2024 09:00:00 +0000\n\
             Message-ID: <sample.1@example.org>",
            "Hi,\n\nthis is a plain text message. Nothing special here.\n\nAlice",
        ),
        m(
            "From: Bob <bob@example.org>\nTo: Demo <demo@example.net>\n\
             Subject: Lines that start with a dot\nDate: Mon, 1 Jan 2024 09:05:00 +0000\n\
             Message-ID: <sample.2@example.org>",
            ".this line starts with a dot\n..and this one with two\n.\n\
             The line above is a lone dot; POP3 must stuff it on the wire.\n.",
        ),
        m(
            "From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <juergen@example.de>\n\
             To: Demo <demo@example.net>\n\
             Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=\n\
             Date: Tue, 2 Jan 2024 10:00:00 +0100\nMessage-ID: <sample.3@example.de>\n\
             MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\
             Content-Transfer-Encoding: 8bit",
            "Grüße! Ünïcödé in the body, 8bit.\n日本語のテキストも。",
        ),
        m(
            "From: Reports <reports@example.org>\nTo: Demo <demo@example.net>\n\
             Subject: Quarterly report (with attachment)\nDate: Wed, 3 Jan 2024 08:30:00 +0000\n\
             Message-ID: <sample.4@example.org>\nMIME-Version: 1.0\n\
             Content-Type: multipart/mixed; boundary=\"b1\"",
            "This is a multi-part message in MIME format.\n\n--b1\n\
             Content-Type: text/plain; charset=us-ascii\n\nThe report is attached.\n\n--b1\n\
             Content-Type: text/csv; name=\"report.csv\"\n\
             Content-Disposition: attachment; filename=\"report.csv\"\n\
             Content-Transfer-Encoding: base64\n\n\
             cXVhcnRlcixyZXZlbnVlLGNvc3RzCjEsMTAwLDgwCjIsMTIwLDkwCjMsMTUwLDk1CjQsMTgw\n\
             LDExMAo=\n--b1--",
        ),
        m(
            "From: Newsletter <news@example.com>\nTo: Demo <demo@example.net>\n\
             Subject: This week's news\nDate: Thu, 4 Jan 2024 12:00:00 +0000\n\
             Message-ID: <sample.5@example.com>\nMIME-Version: 1.0\n\
             Content-Type: multipart/alternative; boundary=\"alt\"",
            "--alt\nContent-Type: text/plain; charset=us-ascii\n\nNews in plain text.\n\n\
             --alt\nContent-Type: text/html; charset=us-ascii\n\n\
             <html><body><h1>News</h1><p>News in <b>HTML</b>.</p></body></html>\n--alt--",
        ),
        m(
            "From: Carol <carol@example.org>\nTo: Demo <demo@example.net>,\n \
             Dave <dave@example.org>,\n Erin <erin@example.org>\n\
             Cc: team@example.org\nSubject: A subject that is long enough that it has to be\n \
             folded over more than one header line\nDate: Fri, 5 Jan 2024 16:45:00 +0000\n\
             Message-ID: <sample.6@example.org>\nIn-Reply-To: <sample.1@example.org>\n\
             References: <sample.1@example.org>",
            "Folded headers above; a reply to the first message.",
        ),
        m(
            "From: Empty <empty@example.org>\nTo: Demo <demo@example.net>\n\
             Subject: (no body)\nDate: Sat, 6 Jan 2024 07:00:00 +0000\n\
             Message-ID: <sample.7@example.org>",
            "",
        ),
        m(
            "From: Logs <logs@example.org>\nTo: Demo <demo@example.net>\n\
             Subject: Nightly job output\nDate: Sun, 7 Jan 2024 03:00:00 +0000\n\
             Message-ID: <sample.8@example.org>",
            &(1..=40)
                .map(|i| format!("2024-01-07T03:00:{i:02}Z job step {i}: ok"))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        m(
            "From: Security <security@example.org>\nTo: Demo <demo@example.net>\n\
             Subject: Your code: 123456\nDate: Mon, 8 Jan 2024 11:11:11 +0000\n\
             Message-ID: <sample.9@example.org>\nContent-Type: text/plain; charset=us-ascii\n\
             Content-Transfer-Encoding: quoted-printable",
            "Your one-time code is 123456. A soft line break follows =\nhere, and =3D is an \
             equals sign.",
        ),
        m(
            "From: Frank <frank@example.org>\nTo: Demo <demo@example.net>\n\
             Subject: Re: Lunch?\nDate: Tue, 9 Jan 2024 11:58:00 +0000\n\
             Message-ID: <sample.10@example.org>\nIn-Reply-To: <lunch@example.net>",
            "> Lunch at noon?\n> \n> -- Demo\n\nSure, see you there.\n\n-- \nFrank",
        ),
    ]
}

/// The leading decimal number of a Maildir file name.
fn leading_number(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Writes one message of `size` bytes straight into the Maildir, in chunks,
/// named like [`Mailbox::add_message`] names its files (with a larger leading
/// number, so it is the last message) plus the Maildir++ `S=`/`W=` sizes.
fn add_big_message(mailbox: &Mailbox, index: u64, size: u64) -> io::Result<PathBuf> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let number = mailbox
        .message_files()
        .iter()
        .filter_map(|p| leading_number(p))
        .max()
        .map(|n| n + 1)
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(1_700_000_000)
        });
    let tmp_name = format!("{number}.M0P{}Qbig.testhost", std::process::id());
    let tmp = mailbox.maildir().join("tmp").join(&tmp_name);
    let mut out = BufWriter::with_capacity(256 * 1024, File::create(&tmp)?);
    let written = write_mail(&mut out, index, size)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    // CRLF throughout, so the POP3 size (W=) equals the file size (S=).
    let dest = mailbox
        .maildir()
        .join("cur")
        .join(format!("{tmp_name},S={written},W={written}:2,S"));
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))?;
    let owner = fs::metadata(mailbox.maildir())?;
    std::os::unix::fs::chown(&tmp, Some(owner.uid()), Some(owner.gid()))?;
    fs::rename(&tmp, &dest)?;
    Ok(dest)
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let dovecot = Dovecot::start()?;
    let mailbox = dovecot.add_user(&args.user, &args.password);
    let mut count = 0u64;
    if args.sample {
        for message in sample_messages() {
            mailbox.add_message(message.as_bytes());
            count += 1;
        }
    }
    let mut buf = Vec::with_capacity(args.size as usize + LINE);
    for i in 0..args.messages {
        buf.clear();
        write_mail(&mut buf, i, args.size)?;
        mailbox.add_message(&buf);
        count += 1;
    }
    drop(buf);
    if let Some(size) = args.big_message {
        add_big_message(&mailbox, args.messages, size)?;
        count += 1;
    }
    let ca = match &args.ca_out {
        Some(path) => {
            fs::write(path, dovecot.ca_pem())?;
            path.clone()
        }
        None => dovecot.dir().join("ssl").join("ca.pem"),
    };
    let ca = fs::canonicalize(&ca).unwrap_or(ca);
    let mut stdout = io::stdout().lock();
    writeln!(
        stdout,
        "{{\"host\":\"127.0.0.1\",\"plain_port\":{},\"tls_port\":{},\"user\":{},\"password\":{},\"ca\":{},\"maildir\":{},\"messages\":{count}}}",
        dovecot.plain_addr().port(),
        dovecot.tls_addr().port(),
        json_string(mailbox.user()),
        json_string(mailbox.password()),
        json_string(&ca.to_string_lossy()),
        json_string(&mailbox.maildir().to_string_lossy()),
    )?;
    stdout.flush()?;
    drop(stdout);

    // Stay up until stdin is closed.
    let mut stdin = io::stdin().lock();
    let mut scratch = [0u8; 4096];
    loop {
        match stdin.read(&mut scratch) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    drop(dovecot); // stops Dovecot and removes its directory
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("local-dovecot: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_exact_size_and_crlf_lines() {
        for size in [0u64, 300, 400, 401, 402, 403, 1000, 51_200, 100_003] {
            let mut buf = Vec::new();
            let n = write_mail(&mut buf, 3, size).expect("vec write");
            assert_eq!(n, buf.len() as u64);
            if size >= 400 {
                assert_eq!(n, size, "size {size}");
            }
            assert!(buf.ends_with(b"\r\n"));
            for line in buf.split(|&b| b == b'\n') {
                assert!(line.is_empty() || line.ends_with(b"\r"), "{line:?}");
                assert!(line.len() <= LINE + 1);
            }
        }
    }

    #[test]
    fn samples_are_crlf() {
        for m in sample_messages() {
            assert!(m.ends_with("\r\n"));
            assert!(!m.replace("\r\n", "").contains('\n'));
        }
    }
}
