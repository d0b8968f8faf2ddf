//! `pop3`: a command-line POP3 client (the crate's library is the whole
//! command; see `lib.rs`).

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    pop3_cli::main()
}
