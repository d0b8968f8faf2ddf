//! `pop3`: a command-line POP3 client over the library's one connection
//! type, on the blocking, tokio or smol runtime.
//!
//! See the crate README for usage, exit codes and the safety properties of
//! `pop3 fetch`. In short: every failure prints one line, `pop3: <message>`,
//! on stderr and exits with a sysexits(3) code ([`error::Exit`]).

#![forbid(unsafe_code)]
// The doc comments of the argument types are also the `--help` text, written
// for a terminal (`[:port]`, `<redacted>`), not for rustdoc.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod cli;
mod commands;
mod deliver;
mod error;
mod fetch;
mod session;
mod state;
mod target;
mod transport;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use crate::error::Exit;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = error.print();
                let code = if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    Exit::Usage
                } else {
                    Exit::Ok
                };
                return ExitCode::from(code.code());
            }
            // One line: clap's first line, without its "error: " prefix.
            let text = error.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("pop3: {first} (see pop3 --help)");
            return ExitCode::from(Exit::Usage.code());
        }
    };
    match commands::run(cli) {
        Ok(()) => ExitCode::from(Exit::Ok.code()),
        Err(failure) => {
            eprintln!("pop3: {failure}");
            ExitCode::from(failure.exit.code())
        }
    }
}
