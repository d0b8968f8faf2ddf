//! C programs under `tests/c/`, built with the system C compiler against the
//! static library with AddressSanitizer, and run: the ABI as C uses it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory holding `libpop3.a` (cargo builds it into `deps/`, next to
/// the test binary).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().expect("deps directory").to_path_buf()
}

/// Builds `tests/c/<name>.c` under ASan and runs it; its output on failure.
fn run_c_test(name: &str) {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = target_dir().join("libpop3.a");
    assert!(lib.exists(), "{} was not built", lib.display());
    let exe = target_dir().join(format!("c-test-{name}"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let built = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-O1"])
        .args(["-fsanitize=address,undefined", "-fno-omit-frame-pointer"])
        .arg("-I")
        .arg(crate_dir.join("include"))
        .arg(crate_dir.join(format!("tests/c/{name}.c")))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .output()
        .expect("run the C compiler");
    assert!(
        built.status.success(),
        "{cc} failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let run = Command::new(&exe)
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:halt_on_error=1:exitcode=86:strict_string_checks=1",
        )
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        .output()
        .expect("run the C test");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success() && !stderr.contains("Sanitizer"),
        "{name} failed ({}):\n{}\n{stderr}",
        run.status,
        String::from_utf8_lossy(&run.stdout)
    );
}

/// Every way a session ends yields `POP3_EVENT_CLOSED` exactly once, last:
/// QUIT, end of stream (idle, before the greeting, in a reply, during a TLS
/// upgrade), a protocol error, an over-long greeting, injected bytes after
/// STLS, and `pop3_client_tls_failed`, which also fails the STLS handle and
/// cancels the login queued behind it.
#[test]
fn every_end_of_a_session_is_one_closed_event() {
    run_c_test("end_paths");
}
