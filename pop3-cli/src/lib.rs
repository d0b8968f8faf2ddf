//! `pop3`: a command-line POP3 client over the library's one connection
//! type, on the blocking, tokio or smol runtime.
//!
//! See the crate README for usage, exit codes and the safety properties of
//! `pop3 fetch`. In short: every failure prints one line, `pop3: <message>`,
//! on stderr and exits with a sysexits(3) code ([`error::Exit`]).
//!
//! The command is a library with one entry point, [`main`], so that the fuzz
//! targets can reach its parsers ([`fuzzing`]); the `pop3` binary only calls
//! [`main`]. Nothing here is an API.

#![forbid(unsafe_code)]
// The doc comments of the argument types are also the `--help` text, written
// for a terminal (`[:port]`, `<redacted>`), not for rustdoc.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod advice;
mod cli;
mod commands;
mod config;
mod crash;
mod deliver;
mod error;
mod fetch;
mod interrupt;
mod manual;
mod oauth;
mod policy;
mod private;
mod progress;
mod secrets;
mod serverinfo;
mod state;
mod target;
mod trace;
mod transport;

#[doc(hidden)]
pub mod fuzzing;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use crate::error::Exit;

/// Runs the command with the process's arguments; returns its exit code.
pub fn main() -> ExitCode {
    let args = cli::relocate_url(std::env::args_os().collect());
    let cli = match cli::Cli::try_parse_from(args) {
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
            eprintln!("pop3: {} (see pop3 --help)", cli::one_line(&error));
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
