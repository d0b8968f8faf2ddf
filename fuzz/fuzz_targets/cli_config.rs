//! The command's config file parser and account resolution, on arbitrary
//! text (properties in `pop3_cli::fuzzing::config`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| pop3_cli::fuzzing::config(text));
