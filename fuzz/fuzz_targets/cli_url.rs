//! The command's `pop3://` / `pop3s://` URL parser, on arbitrary text
//! (properties in `pop3_cli::fuzzing::url`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| pop3_cli::fuzzing::url(text));
