//! The files a fetch leaves beside its state (the state, the Maildir and
//! mbox batch intents), read from arbitrary bytes as after a crash or a
//! disk error (properties in `pop3_cli::fuzzing::state_files`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| pop3_cli::fuzzing::state_files(bytes));
