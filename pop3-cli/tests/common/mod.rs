//! What every test of the `pop3` binary needs: running it and reading how
//! it ended.
#![allow(dead_code)] // each test file uses its own share

use std::process::{Command, Output};

/// Runs the command to its end.
pub(crate) fn run(command: &mut Command) -> Output {
    command.output().expect("run pop3")
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit code is `code`; otherwise the failure shows what it printed.
#[track_caller]
pub(crate) fn assert_code(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stderr: {}\nstdout: {}",
        stderr(output),
        stdout(output)
    );
}

/// The `--json` summary it printed.
pub(crate) fn summary(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).expect("--json summary")
}

/// The message as a server sends it after `+OK`: dot-stuffed, ending `.`.
pub(crate) fn stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b".\r\n");
    out
}
